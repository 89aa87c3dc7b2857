/*
 * test_util.c - unit tests for util.[ch]: strict parsers, escaping, glob
 *
 * DESCRIPTION  Table-driven: each row is one input with its expected
 *              result; the row name is what a failure prints.
 *
 * SPDX-License-Identifier: MIT
 */
#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "unit.h"
#include "util.h"

#define KB	1024ULL
#define MB	(1024ULL * KB)
#define GB	(1024ULL * MB)

/* util_parse_long */

static const struct {
	const char	*name;
	const char	*in;
	long		 min, max;
	int		 rc;
	long		 want;
} long_cases[] = {
	{ "plain", "42", 0, 100, 0, 42 },
	{ "zero", "0", 0, 100, 0, 0 },
	{ "leading zero refused (octal to some)", "042", 0, 100, -1, 0 },
	{ "010 refused, never read as 8", "010", 0, 100, -1, 0 },
	{ "-0 refused", "-05", -10, 10, -1, 0 },
	{ "negative in range", "-5", -10, 10, 0, -5 },
	{ "at min", "1", 1, 65535, 0, 1 },
	{ "at max", "65535", 1, 65535, 0, 65535 },
	{ "LONG_MAX", "9223372036854775807", 0, LONG_MAX, 0, LONG_MAX },
	{ "LONG_MIN", "-9223372036854775808", LONG_MIN, 0, 0, LONG_MIN },
	{ "hex rejected", "0x1f", 0, 1000, -1, 0 },
	{ "hex upper rejected", "0X1F", 0, 1000, -1, 0 },
	{ "suffix k rejected", "10k", 0, 100000, -1, 0 },
	{ "trailing junk", "12abc", 0, 100, -1, 0 },
	{ "exponent rejected", "1e3", 0, 10000, -1, 0 },
	{ "fraction rejected", "1.5", 0, 100, -1, 0 },
	{ "empty", "", 0, 100, -1, 0 },
	{ "leading blank", " 5", 0, 100, -1, 0 },
	{ "leading tab", "\t5", 0, 100, -1, 0 },
	{ "trailing blank", "5 ", 0, 100, -1, 0 },
	{ "trailing newline", "5\n", 0, 100, -1, 0 },
	{ "sign only", "-", -10, 10, -1, 0 },
	{ "letters", "abc", 0, 100, -1, 0 },
	{ "below min", "0", 1, 100, -1, 0 },
	{ "above max", "101", 0, 100, -1, 0 },
	{ "negative below min 0", "-1", 0, 100, -1, 0 },
	{ "overflow LONG_MAX+1", "9223372036854775808", 0, LONG_MAX, -1, 0 },
	{ "overflow 20 digits", "99999999999999999999", 0, LONG_MAX, -1, 0 },
	{ "underflow", "-9223372036854775809", LONG_MIN, 0, -1, 0 },
	{ "overflow wraps into range?", "18446744073709551658", 0, 100,
	    -1, 0 },
};

static void
test_parse_long(void)
{
	size_t i;

	for (i = 0; i < NELEM(long_cases); i++) {
		long	 v = -12345;
		int	 rc;

		rc = util_parse_long(long_cases[i].in, long_cases[i].min,
		    long_cases[i].max, &v);
		T_CHECKF(rc == long_cases[i].rc,
		    "parse_long %s: %s -> rc %d, want %d",
		    long_cases[i].name, t_shows(long_cases[i].in), rc,
		    long_cases[i].rc);
		if (rc == 0 && long_cases[i].rc == 0)
			T_CHECKF(v == long_cases[i].want,
			    "parse_long %s: %s -> %ld, want %ld",
			    long_cases[i].name, t_shows(long_cases[i].in), v,
			    long_cases[i].want);
	}
}

/* util_parse_dur */

static const struct {
	const char	*name;
	const char	*in;
	int		 rc;
	double		 want;
} dur_cases[] = {
	{ "bare seconds", "300", 0, 300 },
	{ "seconds", "300s", 0, 300 },
	{ "5s", "5s", 0, 5 },
	{ "zero", "0", 0, 0 },
	{ "milliseconds", "250ms", 0, 0.25 },
	{ "minutes", "5m", 0, 300 },
	{ "hours", "2h", 0, 7200 },
	{ "days", "1d", 0, 86400 },
	{ "fractional seconds", "1.5s", 0, 1.5 },
	{ "fractional bare", "1.5", 0, 1.5 },
	{ "fractional minutes", "1.5m", 0, 90 },
	{ "leading zero decimal", "010s", 0, 10 },
	{ "bad unit", "5x", -1, 0 },
	{ "negative", "-1s", -1, 0 },
	{ "negative bare", "-1", -1, 0 },
	{ "empty", "", -1, 0 },
	{ "unit only", "s", -1, 0 },
	{ "ms only", "ms", -1, 0 },
	{ "leading blank", " 5s", -1, 0 },
	{ "trailing blank", "5s ", -1, 0 },
	{ "blank before unit", "5 s", -1, 0 },
	{ "double unit", "5mm", -1, 0 },
	{ "two units", "5sm", -1, 0 },
	{ "two dots", "1.5.2s", -1, 0 },
	{ "letters", "abc", -1, 0 },
	{ "nan", "nan", -1, 0 },
	{ "inf", "inf", -1, 0 },
	{ "hex", "0x10", -1, 0 },
	{ "hex seconds", "0x10s", -1, 0 },
};

static void
test_parse_dur(void)
{
	size_t i;

	for (i = 0; i < NELEM(dur_cases); i++) {
		double	 v = -1;
		int	 rc;

		rc = util_parse_dur(dur_cases[i].in, &v);
		T_CHECKF(rc == dur_cases[i].rc,
		    "parse_dur %s: %s -> rc %d (value %g), want %d",
		    dur_cases[i].name, t_shows(dur_cases[i].in), rc, v,
		    dur_cases[i].rc);
		if (rc == 0 && dur_cases[i].rc == 0)
			T_CHECKF(fabs(v - dur_cases[i].want) < 1e-9,
			    "parse_dur %s: %s -> %g, want %g",
			    dur_cases[i].name, t_shows(dur_cases[i].in), v,
			    dur_cases[i].want);
	}
}

/* util_parse_size */

static const struct {
	const char	*name;
	const char	*in;
	int		 rc;
	uint64_t	 want;
} size_cases[] = {
	{ "bytes", "100", 0, 100 },
	{ "zero", "0", 0, 0 },
	{ "kibi", "512k", 0, 512 * KB },
	{ "kibi upper", "512K", 0, 512 * KB },
	{ "mebi", "10M", 0, 10 * MB },
	{ "mebi lower", "10m", 0, 10 * MB },
	{ "gibi", "1G", 0, GB },
	{ "MB suffix", "10MB", 0, 10 * MB },
	{ "mb suffix lower", "10mb", 0, 10 * MB },
	{ "kB suffix", "1kB", 0, KB },
	{ "bytes with B", "100B", 0, 100 },
	{ "leading zero decimal", "010", 0, 10 },
	{ "large but fits", "16G", 0, 16 * GB },
	{ "empty", "", -1, 0 },
	{ "bad unit", "10X", -1, 0 },
	{ "negative", "-1", -1, 0 },
	{ "negative with unit", "-1k", -1, 0 },
	{ "blank before unit", "10 M", -1, 0 },
	{ "leading blank", " 10", -1, 0 },
	{ "trailing blank", "10 ", -1, 0 },
	{ "double B", "10MBB", -1, 0 },
	{ "unit only", "k", -1, 0 },
	{ "B only", "B", -1, 0 },
	{ "letters", "abc", -1, 0 },
	{ "hex", "0x10", -1, 0 },
	{ "overflow 2^64", "18446744073709551616", -1, 0 },
	{ "overflow 20 nines", "99999999999999999999", -1, 0 },
	{ "multiply overflow 2^64", "17179869184G", -1, 0 },
	{ "multiply overflow wraps to 1G", "17179869185G", -1, 0 },
};

static void
test_parse_size(void)
{
	size_t i;

	for (i = 0; i < NELEM(size_cases); i++) {
		uint64_t v = 12345;
		int	 rc;

		rc = util_parse_size(size_cases[i].in, &v);
		T_CHECKF(rc == size_cases[i].rc,
		    "parse_size %s: %s -> rc %d (value %llu), want %d",
		    size_cases[i].name, t_shows(size_cases[i].in), rc,
		    (unsigned long long)v, size_cases[i].rc);
		if (rc == 0 && size_cases[i].rc == 0)
			T_CHECKF(v == size_cases[i].want,
			    "parse_size %s: %s -> %llu, want %llu",
			    size_cases[i].name, t_shows(size_cases[i].in),
			    (unsigned long long)v,
			    (unsigned long long)size_cases[i].want);
	}
}

/* util_parse_bool */

static const struct {
	const char	*name;
	const char	*in;
	int		 rc;
	int		 want;
} bool_cases[] = {
	{ "yes", "yes", 0, 1 },
	{ "no", "no", 0, 0 },
	{ "on", "on", 0, 1 },
	{ "off", "off", 0, 0 },
	{ "true", "true", 0, 1 },
	{ "false", "false", 0, 0 },
	{ "1", "1", 0, 1 },
	{ "0", "0", 0, 0 },
	{ "YES", "YES", 0, 1 },
	{ "On", "On", 0, 1 },
	{ "OFF", "OFF", 0, 0 },
	{ "True", "True", 0, 1 },
	{ "FALSE", "FALSE", 0, 0 },
	{ "maybe", "maybe", -1, 0 },
	{ "empty", "", -1, 0 },
	{ "2", "2", -1, 0 },
	{ "prefix o", "o", -1, 0 },
	{ "prefix of", "of", -1, 0 },
	{ "yess", "yess", -1, 0 },
	{ "nope", "nope", -1, 0 },
	{ "10", "10", -1, 0 },
	{ "leading blank", " yes", -1, 0 },
	{ "trailing blank", "yes ", -1, 0 },
};

static void
test_parse_bool(void)
{
	size_t i;

	for (i = 0; i < NELEM(bool_cases); i++) {
		int v = -7, rc;

		rc = util_parse_bool(bool_cases[i].in, &v);
		T_CHECKF(rc == bool_cases[i].rc,
		    "parse_bool %s: %s -> rc %d, want %d",
		    bool_cases[i].name, t_shows(bool_cases[i].in), rc,
		    bool_cases[i].rc);
		if (rc == 0 && bool_cases[i].rc == 0)
			T_CHECKF(v == bool_cases[i].want,
			    "parse_bool %s: %s -> %d, want %d",
			    bool_cases[i].name, t_shows(bool_cases[i].in), v,
			    bool_cases[i].want);
	}
}

/* util_parse_prob */

static const struct {
	const char	*name;
	const char	*in;
	int		 rc;
	double		 want;
} prob_cases[] = {
	{ "zero", "0", 0, 0 },
	{ "one", "1", 0, 1 },
	{ "fraction", "0.25", 0, 0.25 },
	{ "percent", "20%", 0, 0.2 },
	{ "zero percent", "0%", 0, 0 },
	{ "hundred percent", "100%", 0, 1 },
	{ "fractional percent", "12.5%", 0, 0.125 },
	{ "above one", "1.5", -1, 0 },
	{ "negative", "-0.1", -1, 0 },
	{ "above 100%", "101%", -1, 0 },
	{ "empty", "", -1, 0 },
	{ "percent only", "%", -1, 0 },
	{ "blank before %", "20 %", -1, 0 },
	{ "letters", "abc", -1, 0 },
	{ "nan", "nan", -1, 0 },
	{ "double percent", "20%%", -1, 0 },
};

static void
test_parse_prob(void)
{
	size_t i;

	for (i = 0; i < NELEM(prob_cases); i++) {
		double	 v = -1;
		int	 rc;

		rc = util_parse_prob(prob_cases[i].in, &v);
		T_CHECKF(rc == prob_cases[i].rc,
		    "parse_prob %s: %s -> rc %d (value %g), want %d",
		    prob_cases[i].name, t_shows(prob_cases[i].in), rc, v,
		    prob_cases[i].rc);
		if (rc == 0 && prob_cases[i].rc == 0)
			T_CHECKF(fabs(v - prob_cases[i].want) < 1e-9,
			    "parse_prob %s: %s -> %g, want %g",
			    prob_cases[i].name, t_shows(prob_cases[i].in), v,
			    prob_cases[i].want);
	}
}

/* util_escape */

/* Exact compare, except the two hex digits of \xNN are case-blind. */
static int
esc_equal(const char *got, const char *want)
{
	size_t i, n = strlen(want);

	if (strlen(got) != n)
		return 0;
	for (i = 0; i < n; i++) {
		if (want[i] == '\\' && i + 1 < n && want[i + 1] == '\\') {
			if (got[i] != '\\' || got[i + 1] != '\\')
				return 0;
			i++;
			continue;
		}
		if (want[i] == '\\' && i + 3 < n && want[i + 1] == 'x') {
			if (got[i] != '\\' || got[i + 1] != 'x' ||
			    tolower((unsigned char)got[i + 2]) != want[i + 2] ||
			    tolower((unsigned char)got[i + 3]) != want[i + 3])
				return 0;
			i += 3;
			continue;
		}
		if (got[i] != want[i])
			return 0;
	}
	return 1;
}

static const struct {
	const char	*name;
	const char	*src;
	size_t		 srclen;
	size_t		 dstlen;
	const char	*want;		/* hex digits in lower case */
} esc_cases[] = {
	{ "plain", "abc", 3, 64, "abc" },
	{ "empty", "", 0, 64, "" },
	{ "space and tilde kept", " ~", 2, 64, " ~" },
	{ "CRLF", "a\r\n", 3, 64, "a\\x0d\\x0a" },
	{ "tab", "\t", 1, 64, "\\x09" },
	{ "NUL in the middle", "a\0b", 3, 64, "a\\x00b" },
	{ "DEL", "\x7f", 1, 64, "\\x7f" },
	{ "ESC", "\x1b[2J", 4, 64, "\\x1b[2J" },
	{ "high bytes", "\xff\x80", 2, 64, "\\xff\\x80" },
	{ "UTF-8 bytes", "j\xc3\xb6", 3, 64, "j\\xc3\\xb6" },
	{ "backslash doubled", "a\\b", 3, 64, "a\\\\b" },
	{ "srclen respected", "abcdef", 3, 64, "abc" },
	{ "cut plain", "abcdef", 6, 4, "abc" },
	{ "dstlen 1 gives empty", "abc", 3, 1, "" },
	{ "escape exactly fits", "ab\r", 3, 7, "ab\\x0d" },
	{ "escape would not fit", "ab\r", 3, 6, "ab" },
	{ "escape never cut (3 of 4)", "\r", 1, 4, "" },
	{ "backslash pair fits", "\\", 1, 3, "\\\\" },
	{ "backslash pair cut", "\\", 1, 2, "" },
	{ "text after cut escape dropped", "a\nbc", 4, 5, "a" },
};

static void
test_escape_table(void)
{
	size_t i;

	for (i = 0; i < NELEM(esc_cases); i++) {
		char	 dst[80];
		size_t	 n, k;
		int	 canary_ok = 1;

		memset(dst, '#', sizeof(dst));
		n = util_escape(dst, esc_cases[i].dstlen, esc_cases[i].src,
		    esc_cases[i].srclen);
		for (k = esc_cases[i].dstlen; k < sizeof(dst); k++)
			if (dst[k] != '#')
				canary_ok = 0;
		T_CHECKF(canary_ok, "escape %s: wrote past dstlen %zu",
		    esc_cases[i].name, esc_cases[i].dstlen);
		dst[sizeof(dst) - 1] = '\0';
		T_CHECKF(esc_equal(dst, esc_cases[i].want),
		    "escape %s: got %s, want %s", esc_cases[i].name,
		    t_shows(dst), t_shows(esc_cases[i].want));
		T_CHECKF(n == strlen(esc_cases[i].want) && n == strlen(dst),
		    "escape %s: returned %zu, strlen %zu, want %zu",
		    esc_cases[i].name, n, strlen(dst),
		    strlen(esc_cases[i].want));
	}
}

/*
 * Every dstlen from 1 to the full size: the output must be the escape of
 * some prefix of src (never a partial \xNN), the longest one that fits.
 */
static void
test_escape_every_cut(void)
{
	static const char src[] = "A\\b\r\n\0\xfe~ z\x01";
	const size_t	 srclen = sizeof(src) - 1;
	char		 full[128], dst[128], pre[128];
	size_t		 fulllen, dstlen, n, k, plen, bad = 0;
	char		 first[200] = "";

	fulllen = util_escape(full, sizeof(full), src, srclen);
	T_CHECKF(fulllen == strlen(full) && fulllen > srclen,
	    "escape every-cut: full escape length %zu", fulllen);
	for (dstlen = 1; dstlen <= fulllen + 1; dstlen++) {
		memset(dst, '#', sizeof(dst));
		n = util_escape(dst, dstlen, src, srclen);
		/* longest prefix of src whose escape fits in dstlen-1 */
		plen = 0;
		for (k = 0; k <= srclen; k++) {
			size_t e = util_escape(pre, sizeof(pre), src, k);

			if (e <= dstlen - 1)
				plen = e;
		}
		if (dst[dstlen] != '#' || n >= dstlen || dst[n] != '\0' ||
		    n != plen || strncmp(dst, full, n) != 0) {
			if (bad++ == 0)
				snprintf(first, sizeof(first),
				    "dstlen %zu: got %zu bytes, want %zu",
				    dstlen, n, plen);
		}
	}
	T_CHECKF(bad == 0, "escape every-cut: %zu bad cuts, first %s", bad,
	    first);
}

/* util_glob */

static const struct {
	const char	*name;
	const char	*pat, *s;
	int		 want;
} glob_cases[] = {
	{ "star matches empty", "*", "", 1 },
	{ "star matches all", "*", "abc", 1 },
	{ "prefix star", "a*", "abc", 1 },
	{ "suffix star", "*c", "abc", 1 },
	{ "inner star", "a*c", "abxyzc", 1 },
	{ "inner star empty", "a*c", "ac", 1 },
	{ "two stars", "a*b*c", "aXbYc", 1 },
	{ "double star", "**", "a", 1 },
	{ "star needs suffix", "a*b", "aXbY", 0 },
	{ "star absent char", "*x*", "abc", 0 },
	{ "question one char", "a?c", "abc", 1 },
	{ "question not zero chars", "a?c", "ac", 0 },
	{ "question not two chars", "a?c", "abbc", 0 },
	{ "question on empty", "?", "", 0 },
	{ "literal equal", "abc", "abc", 1 },
	{ "literal longer string", "abc", "abcd", 0 },
	{ "literal shorter string", "abcd", "abc", 0 },
	{ "empty pattern empty string", "", "", 1 },
	{ "empty pattern", "", "a", 0 },
	{ "case-insensitive literal", "abc", "ABC", 1 },
	{ "case-insensitive pattern", "*@EXAMPLE.com", "user@example.COM",
	    1 },
	{ "case-insensitive domain miss", "*@example.com", "u@example.org",
	    0 },
	{ "rule name", "rcpt-*", "rcpt-tempfail", 1 },
	{ "star question", "*?", "", 0 },
	{ "star question one", "*?", "x", 1 },
	{ "backtracking", "*aab", "aaaab", 1 },
	{ "pathological no match", "a*a*a*a*a*a*b",
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0 },
};

static void
test_glob(void)
{
	size_t i;

	for (i = 0; i < NELEM(glob_cases); i++) {
		int got = util_glob(glob_cases[i].pat, glob_cases[i].s) != 0;

		T_CHECKF(got == glob_cases[i].want,
		    "glob %s: %s vs %s -> %d, want %d", glob_cases[i].name,
		    t_shows(glob_cases[i].pat), t_shows(glob_cases[i].s), got,
		    glob_cases[i].want);
	}
}

CU_TestInfo util_tests[] = {
	{ "parse_long", test_parse_long },
	{ "parse_dur", test_parse_dur },
	{ "parse_size", test_parse_size },
	{ "parse_bool", test_parse_bool },
	{ "parse_prob", test_parse_prob },
	{ "escape table", test_escape_table },
	{ "escape every cut", test_escape_every_cut },
	{ "glob", test_glob },
	CU_TEST_INFO_NULL,
};
