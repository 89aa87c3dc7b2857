/*
 * iobuf.c - bounded byte buffers
 *
 * DESCRIPTION  See iobuf.h.  Storage starts at IOBUF_MIN bytes, doubles up
 *              to max, and is freed as soon as the buffer drains.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iobuf.h"

#define IOBUF_MIN 1024

void
iobuf_init(struct iobuf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
}

void
iobuf_free(struct iobuf *b)
{
	free(b->buf);
	b->buf = NULL;
	b->off = b->len = b->cap = 0;
}

size_t
iobuf_len(const struct iobuf *b)
{
	return b->len;
}

size_t
iobuf_room(const struct iobuf *b)
{
	return b->max - b->len;
}

char *
iobuf_data(struct iobuf *b)
{
	return b->buf ? b->buf + b->off : NULL;
}

/* Make room for n more bytes at the end (after compacting or growing). */
static int
iobuf_grow(struct iobuf *b, size_t n)
{
	size_t need, cap;
	char *p;

	if (n > b->max - b->len) {
		errno = ENOBUFS;
		return -1;
	}
	need = b->len + n;
	if (b->off + need <= b->cap)
		return 0;
	if (need <= b->cap) {
		memmove(b->buf, b->buf + b->off, b->len);
		b->off = 0;
		return 0;
	}
	cap = b->cap ? b->cap : IOBUF_MIN;
	while (cap < need)
		cap *= 2;
	/* +1 keeps room for the NUL iobuf_getline() may write */
	if (cap > b->max + 1)
		cap = b->max + 1;
	if (b->off > 0) {
		memmove(b->buf, b->buf + b->off, b->len);
		b->off = 0;
	}
	if ((p = realloc(b->buf, cap)) == NULL)
		return -1;
	b->buf = p;
	b->cap = cap;
	return 0;
}

int
iobuf_append(struct iobuf *b, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	if (iobuf_grow(b, n) == -1)
		return -1;
	memcpy(b->buf + b->off + b->len, p, n);
	b->len += n;
	return 0;
}

int
iobuf_printf(struct iobuf *b, const char *fmt, ...)
{
	char small[512], *big = NULL;
	va_list ap;
	int n, r;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n < sizeof(small))
		return iobuf_append(b, small, (size_t)n);
	if ((big = malloc((size_t)n + 1)) == NULL)
		return -1;
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	r = iobuf_append(b, big, (size_t)n);
	free(big);
	return r;
}

void
iobuf_consume(struct iobuf *b, size_t n)
{
	if (n >= b->len) {
		iobuf_free(b);
		return;
	}
	b->off += n;
	b->len -= n;
}

void
iobuf_clear(struct iobuf *b)
{
	iobuf_free(b);
}

char *
iobuf_reserve(struct iobuf *b, size_t want, size_t *avail)
{
	size_t room = b->max - b->len;

	if (room == 0) {
		errno = ENOBUFS;
		return NULL;
	}
	if (want > room)
		want = room;
	if (iobuf_grow(b, want) == -1)
		return NULL;
	*avail = b->cap - b->off - b->len;
	if (*avail > room)
		*avail = room;
	return b->buf + b->off + b->len;
}

void
iobuf_commit(struct iobuf *b, size_t n)
{
	b->len += n;
}

char *
iobuf_getline(struct iobuf *b, size_t *len)
{
	char *start, *p, *end;

	if (b->len == 0 && b->buf != NULL)
		iobuf_free(b);	/* drained by the previous call */
	if (b->len < 2)
		return NULL;
	start = b->buf + b->off;
	end = start + b->len;
	p = start;
	while ((p = memchr(p, '\r', (size_t)(end - p - 1))) != NULL) {
		if (p[1] == '\n') {
			*p = '\0';
			*len = (size_t)(p - start);
			b->off += *len + 2;
			b->len -= *len + 2;
			/* Storage stays allocated while the caller uses the
			 * line; the next iobuf_* call releases it if drained. */
			return start;
		}
		if (++p >= end - 1)
			break;
	}
	return NULL;
}
