/*
 * util.c - small helpers shared by the responder and the fault engine
 *
 * DESCRIPTION  See util.h.  Pure functions, no I/O beyond util_panic().
 *
 * SPDX-License-Identifier: MIT
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#include "util.h"

void
util_panic(const char *file, int line, const char *what)
{
	fprintf(stderr, "smtpfault: PANIC at %s:%d: %s\n", file, line, what);
	abort();
}

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL) {
		fprintf(stderr, "smtpfault: out of memory\n");
		exit(2);
	}
	return p;
}

void *
xcalloc(size_t n, size_t m)
{
	void *p = calloc(n ? n : 1, m ? m : 1);

	if (p == NULL) {
		fprintf(stderr, "smtpfault: out of memory\n");
		exit(2);
	}
	return p;
}

char *
xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;

	return memcpy(xmalloc(n), s, n);
}

int
util_parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	if (s == NULL || *s == '\0' || !(isdigit((unsigned char)*s) ||
	    (*s == '-' && isdigit((unsigned char)s[1]))))
		return -1;
	/* "042" is octal to some readers: refuse rather than guess */
	if ((s[0] == '0' && s[1] != '\0') ||
	    (s[0] == '-' && s[1] == '0' && s[2] != '\0'))
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* A non-negative decimal with an optional fraction; *end past it. */
static int
parse_decimal(const char *s, double *v, const char **end)
{
	const char *p = s;
	double x = 0, scale = 1;
	int digits = 0;

	while (isdigit((unsigned char)*p)) {
		x = x * 10 + (*p++ - '0');
		digits++;
	}
	if (*p == '.') {
		p++;
		while (isdigit((unsigned char)*p)) {
			scale /= 10;
			x += (*p++ - '0') * scale;
			digits++;
		}
	}
	if (digits == 0 || !isfinite(x))
		return -1;
	*v = x;
	*end = p;
	return 0;
}

int
util_parse_dur(const char *s, double *out)
{
	static const struct { const char *u; double mul; } units[] = {
		{ "", 1 }, { "s", 1 }, { "ms", 0.001 }, { "m", 60 },
		{ "h", 3600 }, { "d", 86400 }, { "w", 604800 },
	};
	const char *end;
	double v;
	size_t i;

	if (s == NULL || parse_decimal(s, &v, &end) == -1)
		return -1;
	for (i = 0; i < NELEM(units); i++) {
		if (strcasecmp(end, units[i].u) == 0) {
			v *= units[i].mul;
			if (v > 1e9)
				return -1;
			*out = v;
			return 0;
		}
	}
	return -1;
}

int
util_parse_size(const char *s, uint64_t *out)
{
	const char *p = s;
	uint64_t v = 0, mul = 1;

	if (s == NULL || !isdigit((unsigned char)*p))
		return -1;
	while (isdigit((unsigned char)*p)) {
		unsigned d = (unsigned)(*p++ - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	switch (tolower((unsigned char)*p)) {
	case '\0':
		break;
	case 'k':
		mul = 1024ULL;
		p++;
		break;
	case 'm':
		mul = 1024ULL * 1024;
		p++;
		break;
	case 'g':
		mul = 1024ULL * 1024 * 1024;
		p++;
		break;
	case 'b':
		break;
	default:
		return -1;
	}
	if (tolower((unsigned char)*p) == 'b')
		p++;
	if (*p != '\0' || (v != 0 && v > UINT64_MAX / mul))
		return -1;
	*out = v * mul;
	return 0;
}

int
util_parse_bool(const char *s, int *out)
{
	static const char *yes[] = { "yes", "true", "on", "1" };
	static const char *no[] = { "no", "false", "off", "0" };
	size_t i;

	if (s == NULL)
		return -1;
	for (i = 0; i < NELEM(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}

int
util_parse_prob(const char *s, double *out)
{
	const char *end;
	double v;

	if (s == NULL || parse_decimal(s, &v, &end) == -1)
		return -1;
	if (*end == '%') {
		v /= 100;
		end++;
	}
	if (*end != '\0' || v < 0 || v > 1)
		return -1;
	*out = v;
	return 0;
}

size_t
util_escape(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, o = 0;

	if (dstlen == 0)
		return 0;
	for (i = 0; i < srclen; i++) {
		unsigned char c = (unsigned char)src[i];

		if (c == '\\') {
			if (o + 2 >= dstlen)
				break;
			dst[o++] = '\\';
			dst[o++] = '\\';
		} else if (c >= 0x20 && c < 0x7f) {
			if (o + 1 >= dstlen)
				break;
			dst[o++] = (char)c;
		} else {
			if (o + 4 >= dstlen)
				break;
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 15];
		}
	}
	dst[o] = '\0';
	return o;
}

void
util_lower(char *dst, size_t len, const char *src)
{
	size_t i;

	if (len == 0)
		return;
	for (i = 0; i + 1 < len && src[i]; i++)
		dst[i] = (char)tolower((unsigned char)src[i]);
	dst[i] = '\0';
}

int
util_glob(const char *pat, const char *s)
{
	const char *star = NULL, *mark = NULL;

	while (*s != '\0') {
		if (*pat == '*') {
			star = pat++;
			mark = s;
		} else if (*pat == '?' || (*pat != '\0' &&
		    tolower((unsigned char)*pat) == tolower((unsigned char)*s))) {
			pat++;
			s++;
		} else if (star != NULL) {
			pat = star + 1;
			s = ++mark;
		} else {
			return 0;
		}
	}
	while (*pat == '*')
		pat++;
	return *pat == '\0';
}

double
util_now(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec + tv.tv_usec / 1e6;
}
