/*
 * match.c - matchers used by scenario rules
 *
 * DESCRIPTION  See match.h.
 *
 * SPDX-License-Identifier: MIT
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "match.h"
#include "util.h"

int
cidr_parse(const char *s, struct cidr *c)
{
	char buf[64], *slash;
	long bits = -1;
	int max;

	if (strlen(s) >= sizeof(buf))
		return -1;
	strcpy(buf, s);
	if ((slash = strchr(buf, '/')) != NULL) {
		*slash++ = '\0';
		if (util_parse_long(slash, 0, 128, &bits) == -1)
			return -1;
	}
	memset(c, 0, sizeof(*c));
	if (inet_pton(AF_INET, buf, c->addr) == 1) {
		c->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, buf, c->addr) == 1) {
		c->family = AF_INET6;
		max = 128;
	} else {
		return -1;
	}
	if (bits > max)
		return -1;
	c->bits = bits < 0 ? max : (int)bits;
	return 0;
}

static int
bits_equal(const unsigned char *a, const unsigned char *b, int bits)
{
	int full = bits / 8, rest = bits % 8;

	if (memcmp(a, b, (size_t)full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	return ((a[full] ^ b[full]) & (0xff << (8 - rest))) == 0;
}

int
cidr_list_match(const struct cidr_list *l, const struct sockaddr_storage *sa)
{
	unsigned char a4[4], a6[16];
	int has4 = 0;
	size_t i;

	if (sa->ss_family == AF_INET) {
		memcpy(a4, &((const struct sockaddr_in *)(const void *)sa)->
		    sin_addr, 4);
		has4 = 1;
		memset(a6, 0, 10);
		a6[10] = a6[11] = 0xff;
		memcpy(a6 + 12, a4, 4);
	} else {
		memcpy(a6, &((const struct sockaddr_in6 *)(const void *)sa)->
		    sin6_addr, 16);
		if (IN6_IS_ADDR_V4MAPPED((struct in6_addr *)(void *)a6)) {
			memcpy(a4, a6 + 12, 4);
			has4 = 1;
		}
	}
	for (i = 0; i < l->n; i++) {
		const struct cidr *c = &l->v[i];

		if (c->family == AF_INET && has4 &&
		    bits_equal(c->addr, a4, c->bits))
			return 1;
		if (c->family == AF_INET6 && bits_equal(c->addr, a6, c->bits))
			return 1;
	}
	return 0;
}

void
cidr_list_free(struct cidr_list *l)
{
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* Call fn for each entry of a value: comma/blank separated, or @file. */
typedef int (*entry_fn)(void *, const char *, char *, size_t);

static int
each_entry(const char *val, const char *basedir, int at_pattern, entry_fn fn,
    void *arg, char *err, size_t errlen)
{
	char buf[1100], *tok, *save = NULL, path[4096], line[1024];
	int lineno = 0, rc = 0;
	FILE *fp;

	/*
	 * "@file" is a list file.  Where "@example.com" is also a valid
	 * pattern (globs), a list file needs a '/': "@./senders.txt".
	 */
	if (val[0] != '@' || (at_pattern && strchr(val, '/') == NULL)) {
		if (strlen(val) >= sizeof(buf)) {
			snprintf(err, errlen, "value too long");
			return -1;
		}
		strcpy(buf, val);
		for (tok = strtok_r(buf, ", \t", &save); tok;
		    tok = strtok_r(NULL, ", \t", &save))
			if (fn(arg, tok, err, errlen) == -1)
				return -1;
		return 0;
	}
	/* relative to the file that names it, else to the working dir */
	fp = NULL;
	if (val[1] != '/' && basedir != NULL && basedir[0] != '\0') {
		snprintf(path, sizeof(path), "%s/%s", basedir, val + 1);
		fp = fopen(path, "r");
	}
	if (fp == NULL) {
		snprintf(path, sizeof(path), "%s", val + 1);
		fp = fopen(path, "r");
	}
	if (fp == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), fp) != NULL) {
		char *p = line, *e, *hash;
		char why[256];

		lineno++;
		if ((hash = strchr(p, '#')) != NULL)
			*hash = '\0';
		while (isspace((unsigned char)*p))
			p++;
		e = p + strlen(p);
		while (e > p && isspace((unsigned char)e[-1]))
			*--e = '\0';
		if (*p == '\0')
			continue;
		if (fn(arg, p, why, sizeof(why)) == -1) {
			snprintf(err, errlen, "%s:%d: %s", path, lineno, why);
			rc = -1;
			break;
		}
	}
	fclose(fp);
	return rc;
}

static int
add_cidr(void *arg, const char *s, char *err, size_t errlen)
{
	struct cidr_list *l = arg;
	struct cidr c, *v;

	if (cidr_parse(s, &c) == -1) {
		snprintf(err, errlen, "bad address or CIDR \"%.80s\"", s);
		return -1;
	}
	if ((v = realloc(l->v, sizeof(*v) * (l->n + 1))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	l->v = v;
	l->v[l->n++] = c;
	return 0;
}

int
cidr_list_parse(struct cidr_list *l, const char *val, const char *basedir,
    char *err, size_t errlen)
{
	memset(l, 0, sizeof(*l));
	if (each_entry(val, basedir, 0, add_cidr, l, err, errlen) == -1) {
		cidr_list_free(l);
		return -1;
	}
	if (l->n == 0) {
		snprintf(err, errlen, "empty address list");
		return -1;
	}
	return 0;
}

static int
add_glob(void *arg, const char *s, char *err, size_t errlen)
{
	struct glob_list *l = arg;
	char **v;

	if ((v = realloc(l->v, sizeof(*v) * (l->n + 1))) == NULL ||
	    (l->v = v, (v[l->n] = strdup(s)) == NULL)) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	l->n++;
	return 0;
}

int
glob_list_parse(struct glob_list *l, const char *val, const char *basedir,
    char *err, size_t errlen)
{
	memset(l, 0, sizeof(*l));
	if (each_entry(val, basedir, 1, add_glob, l, err, errlen) == -1) {
		glob_list_free(l);
		return -1;
	}
	if (l->n == 0) {
		snprintf(err, errlen, "empty pattern list");
		return -1;
	}
	return 0;
}

int
glob_list_match(const struct glob_list *l, const char *s)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		const char *p = l->v[i];

		/* "example.com" or "@example.com" also match a whole domain */
		if (strchr(p, '*') == NULL && strchr(p, '?') == NULL &&
		    strchr(p, '@') == NULL) {
			const char *at = strrchr(s, '@');

			if (strcasecmp(p, s) == 0 ||
			    (at != NULL && strcasecmp(p, at + 1) == 0))
				return 1;
			continue;
		}
		if (p[0] == '@' && strchr(p + 1, '@') == NULL &&
		    strchr(p, '*') == NULL) {
			const char *at = strrchr(s, '@');

			if (at != NULL && strcasecmp(p, at) == 0)
				return 1;
			continue;
		}
		if (util_glob(p, s))
			return 1;
	}
	return 0;
}

void
glob_list_free(struct glob_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static int
parse_u64(const char *s, uint64_t *v)
{
	long x;

	if (util_parse_long(s, 0, 2000000000L, &x) == -1)
		return -1;
	*v = (uint64_t)x;
	return 0;
}

int
range_parse(const char *s, struct range *r)
{
	char buf[64], *dash;
	uint64_t v;

	while (*s == ' ')
		s++;
	if (strlen(s) >= sizeof(buf))
		return -1;
	if (strncmp(s, ">=", 2) == 0 && parse_u64(s + 2, &v) == 0) {
		r->lo = v;
		r->hi = UINT64_MAX;
	} else if (strncmp(s, "<=", 2) == 0 && parse_u64(s + 2, &v) == 0) {
		r->lo = 0;
		r->hi = v;
	} else if (s[0] == '>' && parse_u64(s + 1, &v) == 0) {
		r->lo = v + 1;
		r->hi = UINT64_MAX;
	} else if (s[0] == '<' && parse_u64(s + 1, &v) == 0 && v > 0) {
		r->lo = 0;
		r->hi = v - 1;
	} else {
		strcpy(buf, s);
		if ((dash = strchr(buf, '-')) != NULL) {
			*dash++ = '\0';
			if (parse_u64(buf, &r->lo) == -1 ||
			    parse_u64(dash, &r->hi) == -1 || r->lo > r->hi)
				return -1;
		} else {
			if (parse_u64(buf, &r->lo) == -1)
				return -1;
			r->hi = r->lo;
		}
	}
	return 0;
}

int
range_match(const struct range *r, uint64_t v)
{
	return v >= r->lo && v <= r->hi;
}

int
window_parse(const char *s, struct window *w)
{
	char buf[64], *dash;
	double v;

	while (*s == ' ')
		s++;
	if (strlen(s) >= sizeof(buf))
		return -1;
	if (strncmp(s, ">=", 2) == 0 && util_parse_dur(s + 2, &v) == 0) {
		w->lo = v;
		w->hi = 1e18;
	} else if (strncmp(s, "<=", 2) == 0 && util_parse_dur(s + 2, &v) == 0) {
		w->lo = 0;
		w->hi = v;
	} else if (s[0] == '>' && util_parse_dur(s + 1, &v) == 0) {
		w->lo = v + 1e-6;
		w->hi = 1e18;
	} else if (s[0] == '<' && util_parse_dur(s + 1, &v) == 0 && v > 0) {
		w->lo = 0;
		w->hi = v - 1e-6;
	} else {
		strcpy(buf, s);
		if ((dash = strchr(buf, '-')) == NULL)
			return -1;
		*dash++ = '\0';
		if (util_parse_dur(buf, &w->lo) == -1 ||
		    util_parse_dur(dash, &w->hi) == -1 || w->lo > w->hi)
			return -1;
	}
	return 0;
}

int
window_match(const struct window *w, double v)
{
	return v >= w->lo && v <= w->hi;
}

void
addr_mask(const struct sockaddr_storage *sa, int v4bits, int v6bits,
    char *out, size_t outlen)
{
	unsigned char a[16];
	char txt[INET6_ADDRSTRLEN];
	int fam, bits, i;

	if (sa->ss_family == AF_INET6) {
		memcpy(a, &((const struct sockaddr_in6 *)(const void *)sa)->
		    sin6_addr, 16);
		fam = AF_INET6;
		bits = v6bits;
		if (IN6_IS_ADDR_V4MAPPED((struct in6_addr *)(void *)a)) {
			memmove(a, a + 12, 4);
			fam = AF_INET;
			bits = v4bits;
		}
	} else {
		memcpy(a, &((const struct sockaddr_in *)(const void *)sa)->
		    sin_addr, 4);
		fam = AF_INET;
		bits = v4bits;
	}
	for (i = bits; i < (fam == AF_INET ? 32 : 128); i++)
		a[i / 8] &= (unsigned char)~(0x80 >> (i % 8));
	inet_ntop(fam, a, txt, sizeof(txt));
	if (bits == (fam == AF_INET ? 32 : 128))
		snprintf(out, outlen, "%s", txt);
	else
		snprintf(out, outlen, "%s/%d", txt, bits);
}
