/*
 * test_match.c - unit tests for match.[ch]: CIDR and glob lists, ranges,
 *                time windows and address masks
 *
 * DESCRIPTION  Table-driven: each row is one value with its expected
 *              parse result and the addresses, strings or numbers that
 *              must and must not match.  List files live in
 *              tests/unit/data/ (*.cidr, *.glob) and are named "@file"
 *              relative to that directory (the basedir argument).
 *
 * SPDX-License-Identifier: MIT
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>

#include "match.h"
#include "unit.h"
#include "util.h"

#define MAXM	6

/* cidr_parse */

static const struct {
	const char	*in;
	int		 rc;
	int		 family;
	int		 bits;
} cidr_cases[] = {
	{ "10.0.0.0/8", 0, AF_INET, 8 },
	{ "192.0.2.1", 0, AF_INET, 32 },
	{ "0.0.0.0/0", 0, AF_INET, 0 },
	{ "10.1.2.3/32", 0, AF_INET, 32 },
	{ "::1", 0, AF_INET6, 128 },
	{ "2001:db8::/32", 0, AF_INET6, 32 },
	{ "::/0", 0, AF_INET6, 0 },
	{ "::ffff:10.0.0.0/104", 0, AF_INET6, 104 },
	{ "10.0.0.0/33", -1, 0, 0 },
	{ "::1/129", -1, 0, 0 },
	{ "10.0.0.0/", -1, 0, 0 },
	{ "10.0.0.0/-1", -1, 0, 0 },
	{ "10.0.0.0/8x", -1, 0, 0 },
	{ "10.0.0.0/ 8", -1, 0, 0 },
	{ "10.0.0.0/0x8", -1, 0, 0 },
	{ "10.0.0.0/08", -1, 0, 0 },		/* leading zero: util.h */
	{ "300.1.1.1", -1, 0, 0 },
	{ "10.0.0", -1, 0, 0 },
	{ "example.com", -1, 0, 0 },
	{ "", -1, 0, 0 },
	{ "/8", -1, 0, 0 },
	{ " 10.0.0.1", -1, 0, 0 },
	{ "2001:db8::/32/1", -1, 0, 0 },
	{ "1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb:cccc:dddd"
	    "/64", -1, 0, 0 },
};

static void
test_cidr_parse(void)
{
	size_t i;

	for (i = 0; i < NELEM(cidr_cases); i++) {
		struct cidr	 c;
		int		 rc;

		memset(&c, 0xa5, sizeof(c));
		rc = cidr_parse(cidr_cases[i].in, &c);
		T_CHECKF(rc == cidr_cases[i].rc,
		    "cidr_parse %s: rc %d, want %d",
		    t_shows(cidr_cases[i].in), rc, cidr_cases[i].rc);
		if (rc != 0 || cidr_cases[i].rc != 0)
			continue;
		T_CHECKF(c.family == cidr_cases[i].family &&
		    c.bits == cidr_cases[i].bits,
		    "cidr_parse %s: family %d bits %d, want %d /%d",
		    t_shows(cidr_cases[i].in), c.family, c.bits,
		    cidr_cases[i].family, cidr_cases[i].bits);
	}
}

/* cidr_list_parse + cidr_list_match */

struct list_case {
	const char	*name;
	const char	*val;
	int		 rc;
	const char	*yes[MAXM];	/* must match */
	const char	*no[MAXM];	/* must not match */
	/* on error: "FILE:LINE: " prefix (FILE in data/), then why */
	const char	*errfile;
	int		 errline;
	const char	*why;
};

static const struct list_case cidr_list_cases[] = {
	{ "v4 net and v6 host", "10.0.0.0/8, ::1", 0,
	    .yes = { "10.1.2.3", "10.255.255.255", "::1", "::ffff:10.9.9.9" },
	    .no = { "11.0.0.1", "9.255.255.255", "::2", "192.168.0.1",
	      "::ffff:11.0.0.1" } },
	{ "blank separated", "192.0.2.0/24 198.51.100.7\t2001:db8::/33", 0,
	    .yes = { "192.0.2.0", "192.0.2.255", "198.51.100.7",
	      "2001:db8:7fff::1" },
	    .no = { "192.0.3.0", "198.51.100.8", "2001:db8:8000::1", "::" } },
	{ "host bits set: prefix decides", "10.1.2.3/20", 0,
	    .yes = { "10.1.0.1", "10.1.15.255" },
	    .no = { "10.1.16.0", "10.0.255.255" } },
	{ "single host", "10.0.0.1", 0,
	    .yes = { "10.0.0.1", "::ffff:10.0.0.1" },
	    .no = { "10.0.0.2", "10.0.0.0" } },
	{ "v4 /0 is every v4 client, not v6", "0.0.0.0/0", 0,
	    .yes = { "1.2.3.4", "255.255.255.255", "::ffff:1.2.3.4" },
	    .no = { "::1", "2001:db8::1" } },
	{ "v4-mapped prefix matches plain v4 clients", "::ffff:0:0/96", 0,
	    .yes = { "1.2.3.4", "::ffff:192.0.2.1" },
	    .no = { "2001:db8::1", "::1" } },
	{ "v6 /128", "2001:db8::1/128", 0,
	    .yes = { "2001:db8::1", "2001:DB8:0::1" },
	    .no = { "2001:db8::2", "10.0.0.1" } },
	{ "list file via basedir", "@clients.cidr", 0,
	    .yes = { "10.5.5.5", "192.0.2.1", "2001:db8:1::1" },
	    .no = { "192.0.2.2", "2001:db9::1", "11.0.0.0" } },
	{ "list file with CRLF line ends", "@clients_crlf.cidr", 0,
	    .yes = { "198.51.100.77", "::1" },
	    .no = { "198.51.101.1", "::2" } },
	{ "empty value", "", -1, .why = "empty address list" },
	{ "separators only", " , \t,", -1, .why = "empty address list" },
	{ "prefix too long", "10.0.0.0/33", -1,
	    .why = "bad address or CIDR \"10.0.0.0/33\"" },
	{ "second entry bad", "10.0.0.0/8, bogus", -1,
	    .why = "bad address or CIDR \"bogus\"" },
	{ "v6 prefix too long", "::1/129", -1, .why = "bad address or CIDR" },
	{ "bad octet", "300.1.1.1", -1, .why = "bad address or CIDR" },
	{ "bad line in list file", "@bad.cidr", -1, .errfile = "bad.cidr",
	    .errline = 4, .why = "bad address or CIDR \"192.0.2.300\"" },
	{ "list file with comments only", "@empty.cidr", -1,
	    .why = "empty address list" },
	{ "missing list file", "@no-such-list.cidr", -1,
	    .why = "no-such-list.cidr: No such file or directory" },
};

/* err must be "FILE:LINE: ..." (when errfile) and contain why. */
static int
err_ok(const struct list_case *tc, const char *err)
{
	char pre[4200];

	if (tc->errfile != NULL) {
		snprintf(pre, sizeof(pre), "%s:%d: ",
		    t_data_path(tc->errfile), tc->errline);
		if (strncmp(err, pre, strlen(pre)) != 0)
			return 0;
	}
	return tc->why == NULL || strstr(err, tc->why) != NULL;
}

static void
test_cidr_list(void)
{
	size_t i, k;

	for (i = 0; i < NELEM(cidr_list_cases); i++) {
		const struct list_case	*tc = &cidr_list_cases[i];
		struct cidr_list	 l;
		char			 err[512] = "";
		int			 rc;

		rc = cidr_list_parse(&l, tc->val, t_data_dir(), err,
		    sizeof(err));
		T_CHECKF(rc == tc->rc, "cidr list %s: %s -> rc %d, want %d "
		    "(err %s)", tc->name, t_shows(tc->val), rc, tc->rc,
		    t_shows(err));
		if (rc == -1) {
			T_CHECKF(l.n == 0 && l.v == NULL,
			    "cidr list %s: entries left after error", tc->name);
			if (tc->rc == -1)
				T_CHECKF(err_ok(tc, err), "cidr list %s: error "
				    "%s, want %s:%d: ...%s", tc->name,
				    t_shows(err), tc->errfile ? tc->errfile :
				    "-", tc->errline, tc->why);
			continue;
		}
		for (k = 0; k < MAXM; k++) {
			struct sockaddr_storage sa;

			if (tc->yes[k] != NULL) {
				T_CHECKF(t_sa(tc->yes[k], &sa) == 0,
				    "cidr list %s: bad test address %s",
				    tc->name, tc->yes[k]);
				T_CHECKF(cidr_list_match(&l, &sa) == 1,
				    "cidr list %s: %s should match",
				    tc->name, tc->yes[k]);
			}
			if (tc->no[k] != NULL) {
				T_CHECKF(t_sa(tc->no[k], &sa) == 0,
				    "cidr list %s: bad test address %s",
				    tc->name, tc->no[k]);
				T_CHECKF(cidr_list_match(&l, &sa) == 0,
				    "cidr list %s: %s should not match",
				    tc->name, tc->no[k]);
			}
		}
		cidr_list_free(&l);
		T_CHECKF(l.n == 0 && l.v == NULL, "cidr list %s: free resets",
		    tc->name);
	}
}

/* "@/absolute/path" and "@relative/to/cwd" need no basedir. */
static void
test_list_paths(void)
{
	struct cidr_list	 l;
	struct glob_list	 g;
	struct sockaddr_storage	 sa;
	char			 val[4200], err[512];
	int			 rc;

	snprintf(val, sizeof(val), "@%s", t_data_path("clients.cidr"));
	rc = cidr_list_parse(&l, val, NULL, err, sizeof(err));
	T_CHECKF(rc == 0 && l.n == 3, "list path %s without basedir: rc %d, "
	    "%zu entries (err %s)", t_shows(val), rc, l.n,
	    rc ? t_shows(err) : "-");
	t_sa("10.0.0.1", &sa);
	if (rc == 0)
		T_CHECK(cidr_list_match(&l, &sa), "list path without "
		    "basedir: 10.0.0.1 matches");
	cidr_list_free(&l);

	/* a basedir without the file: an absolute path ignores it, a
	 * relative one falls back to the working directory */
	rc = cidr_list_parse(&l, val, "/nonexistent-dir", err, sizeof(err));
	T_CHECKF(rc == 0 && l.n == 3, "list path with wrong basedir: rc %d "
	    "(err %s)", rc, rc ? t_shows(err) : "-");
	cidr_list_free(&l);

	snprintf(val, sizeof(val), "@%s", t_data_path("bad.cidr"));
	rc = cidr_list_parse(&l, val, NULL, err, sizeof(err));
	snprintf(val, sizeof(val), "%s:4: ", t_data_path("bad.cidr"));
	T_CHECKF(rc == -1 && strncmp(err, val, strlen(val)) == 0,
	    "bad list file without basedir: rc %d err %s, want prefix %s",
	    rc, t_shows(err), t_shows(val));

	snprintf(val, sizeof(val), "@%s", t_data_path("senders.glob"));
	rc = glob_list_parse(&g, val, NULL, err, sizeof(err));
	T_CHECKF(rc == 0 && g.n == 4, "glob list path without basedir: "
	    "rc %d, %zu entries", rc, g.n);
	glob_list_free(&g);
}

/* glob_list_parse + glob_list_match */

static const struct list_case glob_cases[] = {
	{ "any sender at a domain", "*@example.com", 0,
	    .yes = { "a@example.com", "A@EXAMPLE.COM", "@example.com" },
	    .no = { "a@example.org", "a@sub.example.com", "example.com",
	      "a@example.com.evil" } },
	{ "bare domain matches the domain and its addresses", "example.com",
	    0, .yes = { "example.com", "user@example.com", "User@Example.COM" },
	    .no = { "user@sub.example.com", "example.com.evil",
	      "user@example.company", "notexample.com", "sub.example.com" } },
	{ "@domain matches a whole domain", "@example.com", 0,
	    .yes = { "u@example.com", "u@EXAMPLE.com",
	      "\"a b\"@example.com" },
	    .no = { "u@sub.example.com", "u@example.com.au",
	      "u@example.co" } },
	{ "glob in the middle", "*.outbound.*", 0,
	    .yes = { "mx1.outbound.protection.outlook.com", "a.outbound.b" },
	    .no = { "outbound.com", "mx.inbound.example" } },
	{ "question mark is one character", "mx?.example.com", 0,
	    .yes = { "mx1.example.com", "MXa.example.com" },
	    .no = { "mx10.example.com", "mx.example.com" } },
	{ "exact address, case-insensitive", "postmaster@example.com", 0,
	    .yes = { "postmaster@example.com", "Postmaster@Example.Com" },
	    .no = { "x@example.com", "postmaster@example.org" } },
	{ "two patterns", "a@b.example, *@d.example", 0,
	    .yes = { "a@b.example", "z@d.example" },
	    .no = { "b@b.example", "d.example" } },
	{ "star matches everything", "*", 0,
	    .yes = { "", "a@b", "anything at all" } },
	{ "list file", "@./senders.glob", 0,
	    .yes = { "x@example.com", "y@example.org", "z@example.net",
	      "example.net", "postmaster@mx.example.info" },
	    .no = { "x@example.info", "x@sub.example.org", "example.org.uk" } },
	{ "empty value", "", -1, .why = "empty pattern list" },
	{ "separators only", ",, ", -1, .why = "empty pattern list" },
	{ "missing list file", "@./no-such.glob", -1,
	    .why = "no-such.glob: No such file or directory" },
	{ "comment-only list file", "@./empty.cidr", -1,
	    .why = "empty pattern list" },
};

static void
test_glob_list(void)
{
	size_t i, k;

	for (i = 0; i < NELEM(glob_cases); i++) {
		const struct list_case	*tc = &glob_cases[i];
		struct glob_list	 l;
		char			 err[512] = "";
		int			 rc;

		rc = glob_list_parse(&l, tc->val, t_data_dir(), err,
		    sizeof(err));
		T_CHECKF(rc == tc->rc, "glob list %s: %s -> rc %d, want %d "
		    "(err %s)", tc->name, t_shows(tc->val), rc, tc->rc,
		    t_shows(err));
		if (rc == -1) {
			T_CHECKF(l.n == 0 && l.v == NULL,
			    "glob list %s: entries left after error", tc->name);
			if (tc->rc == -1)
				T_CHECKF(err_ok(tc, err), "glob list %s: error "
				    "%s, want ...%s", tc->name, t_shows(err),
				    tc->why);
			continue;
		}
		for (k = 0; k < MAXM; k++) {
			if (tc->yes[k] != NULL)
				T_CHECKF(glob_list_match(&l, tc->yes[k]) == 1,
				    "glob list %s: %s should match %s",
				    tc->name, t_shows(tc->yes[k]),
				    t_shows(tc->val));
			if (tc->no[k] != NULL)
				T_CHECKF(glob_list_match(&l, tc->no[k]) == 0,
				    "glob list %s: %s should not match %s",
				    tc->name, t_shows(tc->no[k]),
				    t_shows(tc->val));
		}
		glob_list_free(&l);
		T_CHECKF(l.n == 0 && l.v == NULL, "glob list %s: free resets",
		    tc->name);
	}
}

/* An inline value longer than the parser's buffer is an error. */
static void
test_list_too_long(void)
{
	struct glob_list	 g;
	struct cidr_list	 c;
	char			 val[2000], err[256] = "";
	size_t			 i;

	for (i = 0; i + 12 < sizeof(val); i += 11)
		memcpy(val + i, "10.0.0.1,  ", 11);
	val[i] = '\0';
	T_CHECKF(cidr_list_parse(&c, val, NULL, err, sizeof(err)) == -1 &&
	    strstr(err, "too long") != NULL,
	    "cidr list of %zu bytes: err %s", strlen(val), t_shows(err));
	err[0] = '\0';
	T_CHECKF(glob_list_parse(&g, val, NULL, err, sizeof(err)) == -1 &&
	    strstr(err, "too long") != NULL,
	    "glob list of %zu bytes: err %s", strlen(val), t_shows(err));
}

/* range_parse + range_match */

#define NOHI	UINT64_MAX

static const struct {
	const char	*in;
	int		 rc;
	uint64_t	 lo, hi;
	uint64_t	 yes[3], no[3];	/* 99999 = unused */
} range_cases[] = {
	{ "1-3", 0, 1, 3, { 1, 2, 3 }, { 0, 4, 99999 } },
	{ "3", 0, 3, 3, { 3, 99999, 99999 }, { 2, 4, 99999 } },
	{ "0", 0, 0, 0, { 0, 99999, 99999 }, { 1, 99999, 99999 } },
	{ ">=5", 0, 5, NOHI, { 5, 6, 1000000 }, { 4, 0, 99999 } },
	{ ">5", 0, 6, NOHI, { 6, 7, 99999 }, { 5, 0, 99999 } },
	{ "<2", 0, 0, 1, { 0, 1, 99999 }, { 2, 3, 99999 } },
	{ "<=2", 0, 0, 2, { 0, 2, 99999 }, { 3, 99999, 99999 } },
	{ "<1", 0, 0, 0, { 0, 99999, 99999 }, { 1, 99999, 99999 } },
	{ "0-0", 0, 0, 0, { 0, 99999, 99999 }, { 1, 99999, 99999 } },
	{ "2-2", 0, 2, 2, { 2, 99999, 99999 }, { 1, 3, 99999 } },
	{ " 4", 0, 4, 4, { 4, 99999, 99999 }, { 3, 99999, 99999 } },
	{ "2000000000", 0, 2000000000, 2000000000, { 99999, 99999, 99999 },
	    { 99999, 99999, 99999 } },
	{ "", -1, 0, 0, { 0 }, { 0 } },
	{ "3-1", -1, 0, 0, { 0 }, { 0 } },
	{ "<0", -1, 0, 0, { 0 }, { 0 } },
	{ "abc", -1, 0, 0, { 0 }, { 0 } },
	{ "1-", -1, 0, 0, { 0 }, { 0 } },
	{ "-3", -1, 0, 0, { 0 }, { 0 } },
	{ "1-3-5", -1, 0, 0, { 0 }, { 0 } },
	{ "1.5", -1, 0, 0, { 0 }, { 0 } },
	{ "0x10", -1, 0, 0, { 0 }, { 0 } },
	{ "010", -1, 0, 0, { 0 }, { 0 } },	/* leading zero: util.h */
	{ "1-03", -1, 0, 0, { 0 }, { 0 } },
	{ ">=", -1, 0, 0, { 0 }, { 0 } },
	{ ">=-1", -1, 0, 0, { 0 }, { 0 } },
	{ "=3", -1, 0, 0, { 0 }, { 0 } },
	{ "=>3", -1, 0, 0, { 0 }, { 0 } },
	{ "3 ", -1, 0, 0, { 0 }, { 0 } },
	{ "1 - 3", -1, 0, 0, { 0 }, { 0 } },
	{ ">= 5", -1, 0, 0, { 0 }, { 0 } },
	{ "2000000001", -1, 0, 0, { 0 }, { 0 } },
	{ "99999999999999999999", -1, 0, 0, { 0 }, { 0 } },
	{ "11111111111111111111111111111111111111111111111111111111111111111"
	    "1111", -1, 0, 0, { 0 }, { 0 } },
};

static void
test_range(void)
{
	size_t i, k;

	for (i = 0; i < NELEM(range_cases); i++) {
		struct range	 r = { 7777, 7777 };
		int		 rc;

		rc = range_parse(range_cases[i].in, &r);
		T_CHECKF(rc == range_cases[i].rc, "range %s: rc %d, want %d",
		    t_shows(range_cases[i].in), rc, range_cases[i].rc);
		if (rc != 0 || range_cases[i].rc != 0)
			continue;
		T_CHECKF(r.lo == range_cases[i].lo && r.hi == range_cases[i].hi,
		    "range %s: %llu-%llu, want %llu-%llu",
		    t_shows(range_cases[i].in), (unsigned long long)r.lo,
		    (unsigned long long)r.hi,
		    (unsigned long long)range_cases[i].lo,
		    (unsigned long long)range_cases[i].hi);
		for (k = 0; k < 3; k++) {
			if (range_cases[i].yes[k] != 99999)
				T_CHECKF(range_match(&r, range_cases[i].yes[k]),
				    "range %s: %llu should match",
				    t_shows(range_cases[i].in),
				    (unsigned long long)range_cases[i].yes[k]);
			if (range_cases[i].no[k] != 99999)
				T_CHECKF(!range_match(&r, range_cases[i].no[k]),
				    "range %s: %llu should not match",
				    t_shows(range_cases[i].in),
				    (unsigned long long)range_cases[i].no[k]);
		}
	}
}

/* window_parse + window_match */

#define NONE	-1.0

static const struct {
	const char	*in;
	int		 rc;
	double		 yes[3], no[3];	/* NONE = unused */
} window_cases[] = {
	{ "<24h", 0, { 0, 3600, 86399.99 }, { 86400, 86401, NONE } },
	{ "<=24h", 0, { 0, 86400, NONE }, { 86400.01, NONE, NONE } },
	{ ">=2m", 0, { 120, 1e9, NONE }, { 119.99, 0, NONE } },
	{ ">2m", 0, { 120.01, 86400, NONE }, { 120, 0, NONE } },
	{ "5m-1h", 0, { 300, 1000, 3600 }, { 299.99, 3600.01, 0 } },
	{ "250ms-1.5s", 0, { 0.25, 1, 1.5 }, { 0.249, 1.51, NONE } },
	{ "0-0", 0, { 0, NONE, NONE }, { 0.001, NONE, NONE } },
	{ "300-600", 0, { 300, 600, NONE }, { 299, 601, NONE } },
	{ " <1d", 0, { 86399, NONE, NONE }, { 86400, NONE, NONE } },
	{ "<2M", 0, { 119, NONE, NONE }, { 120, NONE, NONE } },
	{ "5m", -1, { NONE }, { NONE } },
	{ "300", -1, { NONE }, { NONE } },
	{ "1h-5m", -1, { NONE }, { NONE } },
	{ "", -1, { NONE }, { NONE } },
	{ "<", -1, { NONE }, { NONE } },
	{ "<x", -1, { NONE }, { NONE } },
	{ "<2x", -1, { NONE }, { NONE } },
	{ ">=5 m", -1, { NONE }, { NONE } },
	{ "5m-", -1, { NONE }, { NONE } },
	{ "-5m", -1, { NONE }, { NONE } },
	{ "5m-1h-2h", -1, { NONE }, { NONE } },
	{ "<-1s", -1, { NONE }, { NONE } },
	/* an empty window, like range "<0": nothing could ever match */
	{ "<0s", -1, { NONE }, { NONE } },
	{ "<111111111111111111111111111111111111111111111111111111111111111"
	    "111s", -1, { NONE }, { NONE } },
};

static void
test_window(void)
{
	size_t i, k;

	for (i = 0; i < NELEM(window_cases); i++) {
		struct window	 w = { -5, -5 };
		int		 rc;

		rc = window_parse(window_cases[i].in, &w);
		T_CHECKF(rc == window_cases[i].rc, "window %s: rc %d (%g-%g), "
		    "want %d", t_shows(window_cases[i].in), rc, w.lo, w.hi,
		    window_cases[i].rc);
		if (rc != 0 || window_cases[i].rc != 0)
			continue;
		for (k = 0; k < 3; k++) {
			if (window_cases[i].yes[k] != NONE)
				T_CHECKF(window_match(&w,
				    window_cases[i].yes[k]),
				    "window %s: %g should match (%g-%g)",
				    t_shows(window_cases[i].in),
				    window_cases[i].yes[k], w.lo, w.hi);
			if (window_cases[i].no[k] != NONE)
				T_CHECKF(!window_match(&w,
				    window_cases[i].no[k]),
				    "window %s: %g should not match (%g-%g)",
				    t_shows(window_cases[i].in),
				    window_cases[i].no[k], w.lo, w.hi);
		}
	}
}

/* addr_mask */

static const struct {
	const char	*addr;
	int		 v4, v6;
	const char	*want;
} mask_cases[] = {
	{ "192.0.2.77", 24, 64, "192.0.2.0/24" },
	{ "192.0.2.77", 32, 64, "192.0.2.77" },
	{ "192.0.2.77", 16, 64, "192.0.0.0/16" },
	{ "10.1.255.3", 20, 64, "10.1.240.0/20" },
	{ "10.1.2.3", 0, 64, "0.0.0.0/0" },
	{ "255.255.255.255", 25, 64, "255.255.255.128/25" },
	{ "2001:db8:1:2:3:4:5:6", 24, 64, "2001:db8:1:2::/64" },
	{ "2001:db8:1:2:3:4:5:6", 24, 48, "2001:db8:1::/48" },
	{ "2001:db8:1:2:3:4:5:6", 24, 56, "2001:db8:1::/56" },
	{ "2001:db8:1:2ff:3:4:5:6", 24, 56, "2001:db8:1:200::/56" },
	{ "2001:db8::1", 24, 128, "2001:db8::1" },
	{ "::1", 24, 64, "::/64" },
	{ "::ffff:192.0.2.77", 24, 64, "192.0.2.0/24" },
	{ "::ffff:192.0.2.77", 32, 64, "192.0.2.77" },
	{ "::ffff:192.0.2.77", 8, 128, "192.0.0.0/8" },
};

static void
test_addr_mask(void)
{
	size_t i;

	for (i = 0; i < NELEM(mask_cases); i++) {
		struct sockaddr_storage	 sa;
		char			 out[80] = "unset";

		if (t_sa(mask_cases[i].addr, &sa) == -1) {
			T_CHECKF(0, "addr_mask: bad test address %s",
			    mask_cases[i].addr);
			continue;
		}
		addr_mask(&sa, mask_cases[i].v4, mask_cases[i].v6, out,
		    sizeof(out));
		T_CHECKF(strcmp(out, mask_cases[i].want) == 0,
		    "addr_mask %s /%d /%d: %s, want %s", mask_cases[i].addr,
		    mask_cases[i].v4, mask_cases[i].v6, t_shows(out),
		    mask_cases[i].want);
	}
}

CU_TestInfo match_tests[] = {
	{ "cidr_parse", test_cidr_parse },
	{ "cidr lists", test_cidr_list },
	{ "list file paths", test_list_paths },
	{ "glob lists", test_glob_list },
	{ "inline list too long", test_list_too_long },
	{ "ranges", test_range },
	{ "windows", test_window },
	{ "addr_mask", test_addr_mask },
	CU_TEST_INFO_NULL,
};
