/*
 * test_iobuf.c - unit tests for iobuf.[ch]: bounded FIFO and CRLF lines
 *
 * DESCRIPTION  Limits (ENOBUFS, nothing appended), CRLF-only line ends,
 *              lines split across appends, consume/clear/reserve/commit,
 *              and storage released whenever the buffer drains.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "iobuf.h"
#include "unit.h"
#include "util.h"

/* Buffer content equals p[0..n). */
static int
holds(struct iobuf *b, const char *p, size_t n)
{
	if (iobuf_len(b) != n)
		return 0;
	if (n == 0)
		return 1;
	return iobuf_data(b) != NULL && memcmp(iobuf_data(b), p, n) == 0;
}

static void
test_init_empty(void)
{
	struct iobuf b;

	iobuf_init(&b, 100);
	T_CHECK(b.buf == NULL, "init: no storage before first use");
	T_CHECK(iobuf_len(&b) == 0, "init: len 0");
	T_CHECK(iobuf_room(&b) == 100, "init: room == max");
	T_CHECK(iobuf_getline(&b, &(size_t){ 0 }) == NULL,
	    "init: getline on empty is NULL");
	T_CHECK(b.buf == NULL, "init: getline on empty allocates nothing");
	iobuf_free(&b);
	T_CHECK(b.buf == NULL && iobuf_len(&b) == 0, "free of empty buffer");
}

static void
test_append_limits(void)
{
	struct iobuf	 b;
	int		 rc;

	iobuf_init(&b, 8);
	T_CHECK(iobuf_append(&b, "abc", 3) == 0, "append within max");
	T_CHECK(holds(&b, "abc", 3), "append: content");
	T_CHECK(iobuf_room(&b) == 5, "append: room == max - len");

	errno = 0;
	rc = iobuf_append(&b, "123456", 6);
	T_CHECK(rc == -1, "append past max fails");
	T_CHECK(errno == ENOBUFS, "append past max sets ENOBUFS");
	T_CHECK(holds(&b, "abc", 3), "append past max: nothing appended");

	T_CHECK(iobuf_append(&b, "12345", 5) == 0, "append up to max");
	T_CHECK(holds(&b, "abc12345", 8), "append up to max: content");
	T_CHECK(iobuf_room(&b) == 0, "full: room 0");
	errno = 0;
	rc = iobuf_append(&b, "x", 1);
	T_CHECK(rc == -1 && errno == ENOBUFS, "full: one more byte ENOBUFS");
	T_CHECK(iobuf_len(&b) == 8, "full: len never exceeds max");
	T_CHECK(iobuf_append(&b, "", 0) == 0, "full: empty append is fine");
	iobuf_free(&b);
	T_CHECK(b.buf == NULL && iobuf_len(&b) == 0, "free releases storage");

	iobuf_init(&b, 4);
	errno = 0;
	rc = iobuf_append(&b, "12345", 5);
	T_CHECK(rc == -1 && errno == ENOBUFS,
	    "first append past max: ENOBUFS");
	T_CHECK(iobuf_len(&b) == 0 && b.buf == NULL,
	    "first append past max: nothing kept, nothing allocated");
	iobuf_free(&b);
}

static void
test_printf(void)
{
	struct iobuf	 b;
	int		 rc;

	iobuf_init(&b, 32);
	T_CHECK(iobuf_printf(&b, "%d %s\r\n", 250, "OK") == 0,
	    "printf within max");
	T_CHECK(holds(&b, "250 OK\r\n", 8), "printf: content");
	errno = 0;
	rc = iobuf_printf(&b, "%s", "0123456789012345678901234567890");
	T_CHECK(rc == -1, "printf past max fails");
	T_CHECK(errno == ENOBUFS, "printf past max sets ENOBUFS");
	T_CHECK(holds(&b, "250 OK\r\n", 8), "printf past max: nothing kept");
	T_CHECK(iobuf_printf(&b, "%s", "012345678901234567890123") == 0,
	    "printf exactly to max");
	T_CHECK(iobuf_len(&b) == 32, "printf exactly to max: len");
	iobuf_free(&b);

	/* longer than any small stack buffer an implementation may use */
	iobuf_init(&b, 4096);
	T_CHECK(iobuf_printf(&b, "%0*d|", 2000, 7) == 0, "printf 2001 bytes");
	T_CHECK(iobuf_len(&b) == 2001 && iobuf_data(&b)[0] == '0' &&
	    iobuf_data(&b)[1999] == '7' && iobuf_data(&b)[2000] == '|',
	    "printf 2001 bytes: content");
	errno = 0;
	rc = iobuf_printf(&b, "%0*d", 3000, 1);
	T_CHECK(rc == -1 && errno == ENOBUFS && iobuf_len(&b) == 2001,
	    "printf long past max: ENOBUFS, nothing kept");
	iobuf_free(&b);
}

/* Lines: input bytes -> the lines getline must return, in order. */
static const struct {
	const char	*name;
	const char	*in;
	size_t		 inlen;
	const char	*lines[4];
	size_t		 lens[4];
	size_t		 left;		/* bytes still buffered at the end */
} line_cases[] = {
	{ "one line", "HELO x\r\n", 8, { "HELO x" }, { 6 }, 0 },
	{ "empty line", "\r\n", 2, { "" }, { 0 }, 0 },
	{ "two lines", "A\r\nBC\r\n", 7, { "A", "BC" }, { 1, 2 }, 0 },
	{ "no end yet", "HELO x", 6, { NULL }, { 0 }, 6 },
	{ "bare LF does not end", "HELO x\n", 7, { NULL }, { 0 }, 7 },
	{ "bare CR does not end", "HELO x\r", 7, { NULL }, { 0 }, 7 },
	{ "LF CR is not CRLF", "ab\n\r", 4, { NULL }, { 0 }, 4 },
	{ "bare LF kept in line", "a\nb\r\n", 5, { "a\nb" }, { 3 }, 0 },
	{ "bare CR kept in line", "a\rb\r\n", 5, { "a\rb" }, { 3 }, 0 },
	{ "CR CR LF", "a\r\r\n", 4, { "a\r" }, { 2 }, 0 },
	{ "LF CR LF", "a\n\r\n", 4, { "a\n" }, { 2 }, 0 },
	{ "LF then line", "\nX\r\n", 4, { "\nX" }, { 2 }, 0 },
	{ "embedded NUL", "a\0b\r\n", 5, { "a\0b" }, { 3 }, 0 },
	{ "line then partial", "A\r\nB", 4, { "A" }, { 1 }, 1 },
	{ "smuggle-looking dot", "a\n.\nb\r\n", 7, { "a\n.\nb" }, { 5 },
	    0 },
};

static void
test_getline_table(void)
{
	size_t i, k;

	for (i = 0; i < NELEM(line_cases); i++) {
		struct iobuf	 b;
		char		*l;
		size_t		 len;

		iobuf_init(&b, 64);
		T_CHECKF(iobuf_append(&b, line_cases[i].in,
		    line_cases[i].inlen) == 0, "getline %s: append",
		    line_cases[i].name);
		for (k = 0; k < 4 && line_cases[i].lines[k] != NULL; k++) {
			len = 999;
			l = iobuf_getline(&b, &len);
			T_CHECKF(l != NULL, "getline %s: line %zu missing",
			    line_cases[i].name, k);
			if (l == NULL)
				break;
			T_CHECKF(len == line_cases[i].lens[k] &&
			    memcmp(l, line_cases[i].lines[k], len) == 0 &&
			    l[len] == '\0',
			    "getline %s: line %zu got %s, want %s",
			    line_cases[i].name, k, t_show(l, len),
			    t_show(line_cases[i].lines[k],
			    line_cases[i].lens[k]));
		}
		l = iobuf_getline(&b, &len);
		T_CHECKF(l == NULL, "getline %s: unexpected extra line %s",
		    line_cases[i].name, l ? t_show(l, len) : "");
		T_CHECKF(iobuf_len(&b) == line_cases[i].left,
		    "getline %s: %zu bytes left, want %zu",
		    line_cases[i].name, iobuf_len(&b), line_cases[i].left);
		if (line_cases[i].left == 0)
			T_CHECKF(b.buf == NULL,
			    "getline %s: storage not freed after draining",
			    line_cases[i].name);
		iobuf_free(&b);
	}
}

/* A line arriving one byte at a time, and in every 2-way split. */
static void
test_getline_split(void)
{
	static const char line[] = "MAIL FROM:<a@b>\r\nRCPT";
	const size_t	  n = sizeof(line) - 1, want = 15;
	struct iobuf	  b;
	size_t		  i, cut, len, bad = 0, first = 0;
	char		 *l;

	iobuf_init(&b, 64);
	for (i = 0; i < n; i++) {
		iobuf_append(&b, line + i, 1);
		l = iobuf_getline(&b, &len);
		if (i == 16) {		/* the LF of CRLF just arrived */
			T_CHECK(l != NULL && len == want &&
			    memcmp(l, line, want) == 0,
			    "getline byte by byte: line when LF arrives");
		} else if (l != NULL) {
			T_CHECKF(0, "getline byte by byte: early line at %zu",
			    i);
		}
	}
	T_CHECK(holds(&b, "RCPT", 4), "getline byte by byte: rest kept");
	iobuf_free(&b);

	for (cut = 0; cut <= n; cut++) {
		int got = 0;

		iobuf_init(&b, 64);
		iobuf_append(&b, line, cut);
		if ((l = iobuf_getline(&b, &len)) != NULL) {
			if (cut < 17 || len != want)
				goto bad;
			got = 1;
		}
		iobuf_append(&b, line + cut, n - cut);
		if ((l = iobuf_getline(&b, &len)) != NULL) {
			if (got || len != want || memcmp(l, line, want) != 0)
				goto bad;
			got = 1;
		}
		if (!got || !holds(&b, "RCPT", 4))
			goto bad;
		iobuf_free(&b);
		continue;
bad:
		if (bad++ == 0)
			first = cut;
		iobuf_free(&b);
	}
	T_CHECKF(bad == 0, "getline 2-way splits: %zu bad, first at %zu",
	    bad, first);
}

/* A line that exactly fills max is still returned. */
static void
test_getline_at_max(void)
{
	struct iobuf	 b;
	size_t		 len = 0;
	char		*l;

	iobuf_init(&b, 8);
	T_CHECK(iobuf_append(&b, "123456\r\n", 8) == 0,
	    "line at max: append");
	l = iobuf_getline(&b, &len);
	T_CHECK(l != NULL && len == 6 && strcmp(l, "123456") == 0,
	    "line at max: returned");
	T_CHECK(iobuf_getline(&b, &len) == NULL && b.buf == NULL,
	    "line at max: drained and freed");

	/* No CRLF and full: caller sees len >= max (house style 10.2). */
	T_CHECK(iobuf_append(&b, "12345678", 8) == 0, "full no line: append");
	T_CHECK(iobuf_getline(&b, &len) == NULL && iobuf_len(&b) == 8 &&
	    iobuf_room(&b) == 0, "full no line: NULL, len stays max");
	iobuf_free(&b);
}

static void
test_consume_clear(void)
{
	struct iobuf b;

	iobuf_init(&b, 16);
	iobuf_append(&b, "abcdef", 6);
	iobuf_consume(&b, 2);
	T_CHECK(holds(&b, "cdef", 4), "consume 2: rest");
	T_CHECK(iobuf_room(&b) == 12, "consume 2: room back");
	iobuf_consume(&b, 4);
	T_CHECK(iobuf_len(&b) == 0, "consume all: len 0");
	T_CHECK(b.buf == NULL, "consume all: storage freed");
	T_CHECK(iobuf_room(&b) == 16, "consume all: room == max");

	iobuf_append(&b, "xyz", 3);
	T_CHECK(holds(&b, "xyz", 3), "append after drain");
	iobuf_clear(&b);
	T_CHECK(iobuf_len(&b) == 0 && b.buf == NULL, "clear frees storage");
	T_CHECK(iobuf_room(&b) == 16, "clear: room == max");
	iobuf_clear(&b);
	T_CHECK(b.buf == NULL, "clear of empty buffer");
	iobuf_consume(&b, 0);
	T_CHECK(b.buf == NULL && iobuf_len(&b) == 0, "consume 0 on empty");

	/* Consumed front space is reusable: max is on len, not cap. */
	iobuf_init(&b, 4);
	iobuf_append(&b, "abcd", 4);
	iobuf_consume(&b, 2);
	T_CHECK(iobuf_append(&b, "ef", 2) == 0,
	    "append into consumed front space");
	T_CHECK(holds(&b, "cdef", 4), "append after consume: content");
	iobuf_free(&b);
}

static void
test_reserve_commit(void)
{
	struct iobuf	 b;
	char		*p;
	size_t		 avail;

	iobuf_init(&b, 64);
	avail = 0;
	p = iobuf_reserve(&b, 10, &avail);
	T_CHECK(p != NULL, "reserve on empty");
	T_CHECK(avail >= 10 && avail <= 64, "reserve: want <= avail <= room");
	if (p != NULL) {
		memcpy(p, "hello", 5);
		iobuf_commit(&b, 5);
	}
	T_CHECK(holds(&b, "hello", 5), "commit 5: content");

	p = iobuf_reserve(&b, 100, &avail);
	T_CHECK(p != NULL && avail <= 59 && avail > 0,
	    "reserve more than room: capped at room");
	if (p != NULL) {
		memset(p, 'x', avail);
		iobuf_commit(&b, avail);
	}
	T_CHECK(iobuf_len(&b) <= 64, "commit avail: len <= max");
	if (iobuf_len(&b) < 64) {
		char fill[64];

		memset(fill, 'y', sizeof(fill));
		iobuf_append(&b, fill, 64 - iobuf_len(&b));
	}
	T_CHECK(iobuf_len(&b) == 64, "filled to max");
	errno = 0;
	p = iobuf_reserve(&b, 1, &avail);
	T_CHECK(p == NULL && errno == ENOBUFS, "reserve when full: ENOBUFS");
	T_CHECK(memcmp(iobuf_data(&b), "hello", 5) == 0,
	    "reserve/commit kept the front");

	/* After a consume the freed front must be usable by reserve. */
	iobuf_consume(&b, 60);
	p = iobuf_reserve(&b, 50, &avail);
	T_CHECK(p != NULL && avail >= 50 && avail <= 60,
	    "reserve after consume: front space reused");
	if (p != NULL) {
		memcpy(p, "Z", 1);
		iobuf_commit(&b, 1);
	}
	T_CHECK(iobuf_len(&b) == 5 && iobuf_data(&b)[4] == 'Z',
	    "commit after consume: appended at the end");

	p = iobuf_reserve(&b, 8, &avail);
	iobuf_commit(&b, 0);
	T_CHECK(iobuf_len(&b) == 5, "commit 0 changes nothing");
	iobuf_clear(&b);
	T_CHECK(b.buf == NULL, "clear after reserve frees");
	iobuf_free(&b);
}

/* The getline pointer stays valid until the next call, even when the
 * line drained the buffer; the next call then finds it empty and freed. */
static void
test_getline_drain(void)
{
	struct iobuf	 b;
	size_t		 len;
	char		*l;

	iobuf_init(&b, 32);
	iobuf_append(&b, "QUIT\r\n", 6);
	l = iobuf_getline(&b, &len);
	T_CHECK(l != NULL && len == 4 && memcmp(l, "QUIT", 4) == 0 &&
	    l[4] == '\0', "drain: last line still readable");
	T_CHECK(iobuf_len(&b) == 0, "drain: len 0 after last line");
	T_CHECK(iobuf_getline(&b, &len) == NULL, "drain: then NULL");
	T_CHECK(b.buf == NULL, "drain: storage freed once drained");
	iobuf_free(&b);
}

/* Many appends, growth up to a large max, data intact. */
static void
test_growth(void)
{
	struct iobuf	 b;
	char		 chunk[1000];
	size_t		 i, bad = 0;

	iobuf_init(&b, 1000000);
	for (i = 0; i < 1000; i++) {
		memset(chunk, 'a' + (int)(i % 26), sizeof(chunk));
		if (iobuf_append(&b, chunk, sizeof(chunk)) != 0)
			bad++;
	}
	T_CHECK(bad == 0 && iobuf_len(&b) == 1000000,
	    "growth: 1000 x 1000 bytes appended up to max");
	for (i = 0; i < 1000 && iobuf_len(&b) == 1000000; i++)
		if (iobuf_data(&b)[i * 1000 + 999] != 'a' + (int)(i % 26))
			bad++;
	T_CHECK(bad == 0, "growth: content intact");
	T_CHECK(iobuf_append(&b, "x", 1) == -1 && errno == ENOBUFS,
	    "growth: max still enforced");
	iobuf_free(&b);
}

CU_TestInfo iobuf_tests[] = {
	{ "init empty", test_init_empty },
	{ "append limits", test_append_limits },
	{ "printf", test_printf },
	{ "getline table", test_getline_table },
	{ "getline split", test_getline_split },
	{ "getline at max", test_getline_at_max },
	{ "getline drain", test_getline_drain },
	{ "consume clear", test_consume_clear },
	{ "reserve commit", test_reserve_commit },
	{ "growth", test_growth },
	CU_TEST_INFO_NULL,
};
