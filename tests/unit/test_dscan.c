/*
 * test_dscan.c - unit tests for dscan.[ch]: end of DATA and dot-unstuffing
 *
 * DESCRIPTION  Each table case is fed whole, byte by byte, in every 2-way
 *              and every 3-way split; all must give the same result,
 *              which must equal the expected one.  Out buffers are exactly
 *              n + 1 bytes plus a canary (dscan.h: "out must hold at least n + 1
 *              bytes").  A final test compares the scanner with a simple
 *              whole-input reference model on every string over
 *              { '.', CR, LF, 'a' } up to 8 bytes, followed by CRLF.CRLF.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dscan.h"
#include "unit.h"
#include "util.h"

#define CANARY	0x5a
#define NCANARY	8

#define S(x)	x, sizeof(x) - 1

struct dres {
	char		 out[8192];
	size_t		 outlen;
	size_t		 consumed;
	int		 done;
	uint64_t	 octets;
	size_t		 longest;
	int		 long_line;
	int		 bare;
	int		 broken;	/* contract violated during feeding */
	char		 why[128];
};

/*
 * Feed in[0..n) cut at cuts[0..ncuts) (strictly increasing, inside
 * 1..n-1).  Stops at the piece in which the terminator ends.
 */
static void
feed(const char *in, size_t n, size_t line_max, const size_t *cuts,
    size_t ncuts, struct dres *r)
{
	struct dscan	 d;
	size_t		 start = 0, k, end, len, ret, olen, c;
	char		*ib, *ob;

	memset(r, 0, sizeof(*r));
	dscan_init(&d, line_max);
	for (k = 0; k <= ncuts && start < n; k++) {
		end = k < ncuts ? cuts[k] : n;
		len = end - start;
		/* exact-size copies so ASan sees any over-read/-write */
		ib = malloc(len);
		ob = malloc(len + 1 + NCANARY);
		if (ib == NULL || ob == NULL) {
			free(ib);
			free(ob);
			r->broken = 1;
			snprintf(r->why, sizeof(r->why), "malloc");
			return;
		}
		memcpy(ib, in + start, len);
		memset(ob, CANARY, len + 1 + NCANARY);
		olen = (size_t)-1;
		ret = dscan_feed(&d, ib, len, ob, &olen);
		/* dscan.h: out holds n + 1 (a held-back CR may come out) */
		for (c = len + 1; c < len + 1 + NCANARY; c++)
			if ((unsigned char)ob[c] != CANARY && !r->broken) {
				r->broken = 1;
				snprintf(r->why, sizeof(r->why),
				    "wrote past out[%zu] in piece at %zu",
				    len + 1, start);
			}
		if (olen > len + 1 && !r->broken) {
			r->broken = 1;
			snprintf(r->why, sizeof(r->why),
			    "outlen %zu > n + 1 (%zu) in piece at %zu", olen,
			    len + 1, start);
		}
		if (ret > len || (!d.done && ret != len)) {
			if (!r->broken) {
				r->broken = 1;
				snprintf(r->why, sizeof(r->why),
				    "returned %zu of %zu (done %d) at %zu",
				    ret, len, d.done, start);
			}
			if (ret > len)
				ret = len;
		}
		/* keep what was written even past n, so the content is
		 * still compared after an overflow is recorded */
		if (olen <= len + NCANARY &&
		    r->outlen + olen <= sizeof(r->out)) {
			memcpy(r->out + r->outlen, ob, olen);
			r->outlen += olen;
		}
		free(ib);
		free(ob);
		r->consumed = start + ret;
		if (d.done)
			break;
		start = end;
	}
	r->done = d.done;
	r->octets = d.octets;
	r->longest = d.longest;
	r->long_line = d.long_line;
	r->bare = d.bare_cr_lf;
}

static const struct dcase {
	const char	*name;
	const char	*in;
	size_t		 inlen;
	size_t		 line_max;
	const char	*out;
	size_t		 outlen;
	int		 done;
	size_t		 consumed;
	long		 longest;	/* -1: not checked */
	int		 long_line;
	int		 bare;
} dcases[] = {
	{ "terminator at start", S(".\r\n"), 1000, S(""), 1, 3, -1, 0, 0 },
	{ "normal message", S("Subject: x\r\n\r\nbody\r\n.\r\n"), 1000,
	    S("Subject: x\r\n\r\nbody\r\n"), 1, 23, 12, 0, 0 },
	{ "dot-unstuffing ..x", S("..x\r\n.\r\n"), 1000, S(".x\r\n"), 1, 8,
	    5, 0, 0 },
	{ "stuffed lone dot", S("a\r\n..\r\n.\r\n"), 1000, S("a\r\n.\r\n"),
	    1, 10, 4, 0, 0 },
	{ "three dots", S("...\r\n.\r\n"), 1000, S("..\r\n"), 1, 8, 5, 0,
	    0 },
	{ "dot inside line kept", S("a.b\r\n.\r\n"), 1000, S("a.b\r\n"), 1,
	    8, 5, 0, 0 },
	{ "dot at end of line kept", S("ab.\r\n.\r\n"), 1000, S("ab.\r\n"),
	    1, 8, 5, 0, 0 },
	{ "lone dot not at BOL kept", S("x .\r\n.\r\n"), 1000,
	    S("x .\r\n"), 1, 8, 5, 0, 0 },
	{ "smuggle LF.LF", S("a\n.\nb\r\n.\r\n"), 1000, S("a\n.\nb\r\n"), 1,
	    10, 7, 0, 1 },
	{ "smuggle LF.CRLF", S("a\n.\r\nb\r\n.\r\n"), 1000,
	    S("a\n.\r\nb\r\n"), 1, 11, 5, 0, 1 },
	{ "smuggle CRLF.LF", S("a\r\n.\nb\r\n.\r\n"), 1000,
	    S("a\r\n\nb\r\n"), 1, 11, 5, 0, 1 },
	{ "smuggle CR.CR", S("a\r.\rb\r\n.\r\n"), 1000, S("a\r.\rb\r\n"), 1,
	    10, 7, 0, 1 },
	{ "smuggle CRLF.CR", S("a\r\n.\rb\r\n.\r\n"), 1000,
	    S("a\r\n\rb\r\n"), 1, 11, 5, 0, 1 },
	{ "CRLF.CR CRLF", S("a\r\n.\r\r\n.\r\n"), 1000, S("a\r\n\r\r\n"), 1,
	    10, 4, 0, 1 },
	{ "CR CRLF then end", S("a\r\r\n.\r\n"), 1000, S("a\r\r\n"), 1, 7,
	    4, 0, 1 },
	{ "LF CR . CRLF is not BOL", S("a\n\r.\r\nx\r\n.\r\n"), 1000,
	    S("a\n\r.\r\nx\r\n"), 1, 12, 6, 0, 1 },
	{ "LF.LF alone: not done", S("a\n.\n"), 1000, S("a\n.\n"), 0, 4, -1,
	    0, 1 },
	{ "CR.CR then text: not done", S("a\r.\rX"), 1000, S("a\r.\rX"), 0,
	    5, -1, 0, 1 },
	{ "stuffed dot line: not done", S("a\r\n..\r\n"), 1000,
	    S("a\r\n.\r\n"), 0, 7, -1, 0, 0 },
	{ "pipelined QUIT stays", S("x\r\n.\r\nQUIT\r\n"), 1000, S("x\r\n"),
	    1, 6, 3, 0, 0 },
	{ "pipelined MAIL after empty", S(".\r\nMAIL FROM:<>\r\n"), 1000,
	    S(""), 1, 3, -1, 0, 0 },
	{ "double terminator", S(".\r\n.\r\n"), 1000, S(""), 1, 3, -1, 0,
	    0 },
	{ "empty line before end", S("a\r\n\r\n.\r\n"), 1000,
	    S("a\r\n\r\n"), 1, 8, 3, 0, 0 },
	{ "ends after CRLF: not done", S("abc\r\n"), 1000, S("abc\r\n"), 0,
	    5, -1, 0, 0 },
	{ "ends with BOL dot: not done", S("abc\r\n."), 1000, S("abc\r\n"),
	    0, 6, -1, 0, 0 },
	{ "NUL bytes kept", S("a\0b\r\n.\r\n"), 1000, S("a\0b\r\n"), 1, 8,
	    5, 0, 0 },
	{ "bare CR in line", S("a\rb\r\n.\r\n"), 1000, S("a\rb\r\n"), 1, 8,
	    5, 0, 1 },
	{ "high bytes kept", S("\xc3\xa9\xff\r\n.\r\n"), 1000,
	    S("\xc3\xa9\xff\r\n"), 1, 8, 5, 0, 0 },
	{ "line over line_max", S("123456789\r\n.\r\n"), 10,
	    S("123456789\r\n"), 1, 14, 11, 1, 0 },
	{ "line at line_max", S("12345678\r\n.\r\n"), 10,
	    S("12345678\r\n"), 1, 13, 10, 0, 0 },
	{ "bare LF does not reset line length",
	    S("aaaa\naaaa\naa\r\n.\r\n"), 10, S("aaaa\naaaa\naa\r\n"), 1, 17,
	    14, 1, 1 },
	{ "stuffed line counts input octets", S("..ab\r\n.\r\n"), 1000,
	    S(".ab\r\n"), 1, 9, 6, 0, 0 },
	{ "short lines, long one later", S("a\r\nb\r\n0123456789AB\r\n.\r\n"),
	    12, S("a\r\nb\r\n0123456789AB\r\n"), 1, 23, 14, 1, 0 },
};

/* 0 when r matches the case; else a description in why. */
static int
check(const struct dcase *c, const struct dres *r, char *why, size_t wl)
{
	if (r->outlen != c->outlen ||
	    memcmp(r->out, c->out, c->outlen) != 0)
		snprintf(why, wl, "out %s, want %s", t_show(r->out, r->outlen),
		    t_show(c->out, c->outlen));
	else if (r->done != c->done)
		snprintf(why, wl, "done %d, want %d", r->done, c->done);
	else if (r->consumed != c->consumed)
		snprintf(why, wl, "consumed %zu, want %zu", r->consumed,
		    c->consumed);
	else if (r->octets != c->outlen)
		snprintf(why, wl, "octets %llu, want %zu",
		    (unsigned long long)r->octets, c->outlen);
	else if (c->longest >= 0 && r->longest != (size_t)c->longest)
		snprintf(why, wl, "longest %zu, want %ld", r->longest,
		    c->longest);
	else if (r->long_line != c->long_line)
		snprintf(why, wl, "long_line %d, want %d", r->long_line,
		    c->long_line);
	else if (r->bare != c->bare)
		snprintf(why, wl, "bare_cr_lf %d, want %d", r->bare, c->bare);
	else if (r->broken)
		snprintf(why, wl, "%s", r->why);
	else
		return 0;
	return -1;
}

static void
test_whole(void)
{
	size_t i;

	for (i = 0; i < NELEM(dcases); i++) {
		const struct dcase	*c = &dcases[i];
		struct dres		 r;
		char			 why[512];

		feed(c->in, c->inlen, c->line_max, NULL, 0, &r);
		T_CHECKF(check(c, &r, why, sizeof(why)) == 0,
		    "dscan whole %s: %s", c->name, why);
	}
}

static void
test_bytewise(void)
{
	size_t i, k, cuts[64];

	for (i = 0; i < NELEM(dcases); i++) {
		const struct dcase	*c = &dcases[i];
		struct dres		 r;
		char			 why[512];

		for (k = 1; k < c->inlen; k++)
			cuts[k - 1] = k;
		feed(c->in, c->inlen, c->line_max, cuts, c->inlen - 1, &r);
		T_CHECKF(check(c, &r, why, sizeof(why)) == 0,
		    "dscan byte by byte %s: %s", c->name, why);
	}
}

static void
test_split2(void)
{
	size_t i, k;

	for (i = 0; i < NELEM(dcases); i++) {
		const struct dcase	*c = &dcases[i];
		struct dres		 r, whole;
		char			 why[512], first[600] = "";
		size_t			 bad = 0;

		feed(c->in, c->inlen, c->line_max, NULL, 0, &whole);
		for (k = 1; k < c->inlen; k++) {
			feed(c->in, c->inlen, c->line_max, &k, 1, &r);
			if (check(c, &r, why, sizeof(why)) != 0 ||
			    r.longest != whole.longest) {
				if (bad++ == 0)
					snprintf(first, sizeof(first),
					    "cut %zu: %s%s", k, why,
					    r.longest != whole.longest ?
					    " (longest differs)" : "");
			}
		}
		T_CHECKF(bad == 0, "dscan 2-way splits %s: %zu bad, first %s",
		    c->name, bad, first);
	}
}

static void
test_split3(void)
{
	size_t i, a, b;

	for (i = 0; i < NELEM(dcases); i++) {
		const struct dcase	*c = &dcases[i];
		struct dres		 r;
		char			 why[512], first[600] = "";
		size_t			 bad = 0, cuts[2];

		for (a = 1; a < c->inlen; a++)
			for (b = a + 1; b < c->inlen; b++) {
				cuts[0] = a;
				cuts[1] = b;
				feed(c->in, c->inlen, c->line_max, cuts, 2, &r);
				if (check(c, &r, why, sizeof(why)) != 0 &&
				    bad++ == 0)
					snprintf(first, sizeof(first),
					    "cuts %zu,%zu: %s", a, b, why);
			}
		T_CHECKF(bad == 0, "dscan 3-way splits %s: %zu bad, first %s",
		    c->name, bad, first);
	}
}

/* The return value stops at the terminator; the tail is left alone. */
static void
test_trailing_unconsumed(void)
{
	static const char in[] = "Hi\r\n.\r\nMAIL FROM:<a@b>\r\n";
	struct dscan	 d;
	char		 out[sizeof(in)];
	size_t		 olen, ret;

	dscan_init(&d, 1000);
	ret = dscan_feed(&d, in, sizeof(in) - 1, out, &olen);
	T_CHECK(d.done, "pipelined tail: done");
	T_CHECKF(ret == 7, "pipelined tail: returned %zu, want 7", ret);
	T_CHECK(olen == 4 && memcmp(out, "Hi\r\n", 4) == 0,
	    "pipelined tail: only the message is output");
	T_CHECK(strcmp(in + ret, "MAIL FROM:<a@b>\r\n") == 0,
	    "pipelined tail: next command starts at the return value");
}

static void
test_init(void)
{
	struct dscan d;

	memset(&d, 0xff, sizeof(d));
	dscan_init(&d, 1000);
	T_CHECK(d.line_max == 1000, "init: line_max kept");
	T_CHECK(d.octets == 0 && d.longest == 0 && d.long_line == 0 &&
	    d.bare_cr_lf == 0 && d.done == 0 && d.line == 0,
	    "init: counters and flags cleared");
}

/* line_max 0 means no limit; a 3000-byte line is fine then. */
static void
test_no_limit(void)
{
	size_t		 n = 3000;
	char		*in = malloc(n + 5);
	struct dres	*r = malloc(sizeof(*r));

	if (in == NULL || r == NULL) {
		T_CHECK(0, "no limit: malloc");
		free(in);
		free(r);
		return;
	}
	memset(in, 'x', n);
	memcpy(in + n, "\r\n.\r\n", 5);
	feed(in, n + 5, 0, NULL, 0, r);
	T_CHECK(!r->broken && r->done && r->consumed == n + 5,
	    "no limit: terminated");
	T_CHECK(r->long_line == 0, "no limit: line_max 0 flags nothing");
	T_CHECKF(r->longest == n + 2, "no limit: longest %zu, want %zu",
	    r->longest, n + 2);
	T_CHECK(r->octets == n + 2 && r->outlen == n + 2, "no limit: octets");
	feed(in, n + 5, 1000, NULL, 0, r);
	T_CHECK(r->long_line == 1 && r->done, "line_max 1000: flagged");
	free(in);
	free(r);
}

/*
 * Reference model over the whole input: lines end only at CRLF; a line
 * that is exactly ".\r\n" ends the message; otherwise a leading dot is
 * removed.  Fills r like feed() does.
 */
static void
reference(const char *in, size_t n, size_t line_max, struct dres *r)
{
	size_t	 bol = 0, i;

	memset(r, 0, sizeof(*r));
	r->consumed = n;
	for (i = 0; i < n; i++) {
		if (in[i] == '\r' && (i + 1 >= n || in[i + 1] != '\n'))
			r->bare = 1;
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
			r->bare = 1;
		if (!(in[i] == '\n' && i > 0 && in[i - 1] == '\r'))
			continue;
		/* line bol..i inclusive */
		if (i - bol + 1 == 3 && in[bol] == '.') {
			r->done = 1;
			r->consumed = i + 1;
			break;
		}
		if (i - bol + 1 > r->longest)
			r->longest = i - bol + 1;
		if (line_max != 0 && i - bol + 1 > line_max)
			r->long_line = 1;
		memcpy(r->out + r->outlen, in + bol + (in[bol] == '.'),
		    i + 1 - bol - (in[bol] == '.'));
		r->outlen += i + 1 - bol - (in[bol] == '.');
		bol = i + 1;
	}
	r->octets = r->outlen;
}

static int
same(const struct dres *a, const struct dres *ref)
{
	size_t la = a->longest < 3 ? 3 : a->longest;
	size_t lr = ref->longest < 3 ? 3 : ref->longest;

	return a->outlen == ref->outlen &&
	    memcmp(a->out, ref->out, ref->outlen) == 0 &&
	    a->done == ref->done && a->consumed == ref->consumed &&
	    a->octets == ref->octets && la == lr &&
	    a->long_line == ref->long_line && a->bare == ref->bare;
}

static void
test_exhaustive(void)
{
	static const char alpha[4] = { '.', '\r', '\n', 'a' };
	struct dres	*r = malloc(sizeof(*r)), *ref = malloc(sizeof(*ref));
	char		 in[32], first[700] = "", firstov[300] = "";
	size_t		 len, n, k, cuts[32], bad = 0, over = 0, total = 0;
	unsigned long	 code, ncodes;

	if (r == NULL || ref == NULL) {
		T_CHECK(0, "exhaustive: malloc");
		free(r);
		free(ref);
		return;
	}
	for (len = 0; len <= 8; len++) {
		ncodes = 1UL << (2 * len);
		for (code = 0; code < ncodes; code++) {
			for (k = 0; k < len; k++)
				in[k] = alpha[(code >> (2 * k)) & 3];
			memcpy(in + len, "\r\n.\r\n", 5);
			n = len + 5;
			reference(in, n, 4, ref);
			for (k = 1; k < n; k++)
				cuts[k - 1] = k;
			/* whole, byte by byte, then every 2-way split */
			for (k = 0; k <= n; k++) {
				const char *mode = k == 0 ? "whole" :
				    k == n ? "bytewise" : "split";

				if (k == 0)
					feed(in, n, 4, NULL, 0, r);
				else if (k == n)
					feed(in, n, 4, cuts, n - 1, r);
				else
					feed(in, n, 4, &k, 1, r);
				total++;
				if (r->broken && over++ == 0)
					snprintf(firstov, sizeof(firstov),
					    "input %s (%s): %s", t_show(in, n),
					    mode, r->why);
				if (same(r, ref))
					continue;
				if (bad++ == 0)
					snprintf(first, sizeof(first),
					    "input %s (%s%s%d): out %s done %d "
					    "consumed %zu bare %d long %d; "
					    "want out %s done %d consumed %zu "
					    "bare %d long %d",
					    t_show(in, n), mode,
					    k > 0 && k < n ? " at " : " ",
					    (int)k, t_show(r->out, r->outlen),
					    r->done, r->consumed, r->bare,
					    r->long_line, t_show(ref->out,
					    ref->outlen), ref->done,
					    ref->consumed, ref->bare,
					    ref->long_line);
			}
		}
	}
	T_CHECKF(bad == 0, "dscan vs reference: %zu of %zu feeds differ; "
	    "first: %s", bad, total, first);
	T_CHECKF(over == 0, "dscan contract (outlen <= n + 1, ret): %zu of %zu "
	    "feeds broke it; first: %s", over, total, firstov);
	free(r);
	free(ref);
}

CU_TestInfo dscan_tests[] = {
	{ "init", test_init },
	{ "table whole", test_whole },
	{ "table byte by byte", test_bytewise },
	{ "table 2-way splits", test_split2 },
	{ "table 3-way splits", test_split3 },
	{ "trailing bytes unconsumed", test_trailing_unconsumed },
	{ "line_max 0 no limit", test_no_limit },
	{ "exhaustive vs reference", test_exhaustive },
	CU_TEST_INFO_NULL,
};
