/*
 * events.c - the event stream: one JSON object per line
 *
 * DESCRIPTION  See events.h and docs/events.md.  Events are built in one
 *              static line buffer and appended to a block buffer that is
 *              written when it fills and once per loop iteration, so a
 *              busy server makes one write() per wake-up, not per event.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "events.h"
#include "log.h"

#define EVT_BLOCK (64 * 1024)

static int	 evt_fd = -1;
static int	 evt_own;
static size_t	 evt_max_arg = 256;
static uint64_t	 evt_seq;
static char	*blk;		/* pending output */
static size_t	 blen;
static char	*line;		/* event being built */
static size_t	 llen, lcap;
static int	 first_field;
static time_t	 last_sec = -1;
static char	 last_stamp[32];

/* Recent events for the control API: a ring of lines, oldest first. */
static char	**ring;
static size_t	 ring_cap, ring_len, ring_head;
static uint64_t	 ring_first_seq;	/* seq of the oldest line kept */
static void	 (*ring_notify)(void);

int
evt_open(const char *path, size_t max_arg)
{
	evt_close();
	evt_max_arg = max_arg;
	if (path == NULL || *path == '\0')
		return 0;
	if (strcmp(path, "-") == 0) {
		evt_fd = STDOUT_FILENO;
		evt_own = 0;
	} else {
		evt_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
		    0644);
		if (evt_fd == -1)
			return -1;
		evt_own = 1;
	}
	if (blk == NULL && (blk = malloc(EVT_BLOCK)) == NULL)
		return -1;
	return 0;
}

int
evt_enabled(void)
{
	return evt_fd != -1 || ring_cap > 0;
}

void
evt_ring_init(size_t cap, void (*notify)(void))
{
	evt_ring_free();
	if (cap == 0)
		return;
	ring = calloc(cap, sizeof(*ring));
	ring_cap = ring ? cap : 0;
	ring_notify = notify;
}

void
evt_ring_notify(void (*notify)(void))
{
	ring_notify = notify;
}

void
evt_ring_free(void)
{
	size_t i;

	for (i = 0; i < ring_cap; i++)
		free(ring[i]);
	free(ring);
	ring = NULL;
	ring_cap = ring_len = ring_head = 0;
}

uint64_t
evt_last_seq(void)
{
	return evt_seq;
}

size_t
evt_ring_get(uint64_t since, size_t limit, const char **lines, uint64_t *seqs)
{
	uint64_t seq;
	size_t n = 0;

	if (ring_len == 0)
		return 0;
	seq = since + 1 < ring_first_seq ? ring_first_seq : since + 1;
	for (; seq < ring_first_seq + ring_len && n < limit; seq++) {
		size_t idx = (ring_head + (size_t)(seq - ring_first_seq)) %
		    ring_cap;

		lines[n] = ring[idx];
		seqs[n] = seq;
		n++;
	}
	return n;
}

/* Keep a copy of the finished line (without its newline). */
static void
ring_add(const char *l, size_t len)
{
	size_t idx;
	char *copy;

	if ((copy = malloc(len + 1)) == NULL)
		return;
	memcpy(copy, l, len);
	copy[len] = '\0';
	if (ring_len == ring_cap) {
		free(ring[ring_head]);
		ring[ring_head] = copy;
		ring_head = (ring_head + 1) % ring_cap;
		ring_first_seq++;
	} else {
		idx = (ring_head + ring_len) % ring_cap;
		ring[idx] = copy;
		if (ring_len == 0)
			ring_first_seq = evt_seq;
		ring_len++;
	}
	if (ring_notify != NULL)
		ring_notify();
}

void
evt_flush(void)
{
	size_t off = 0;

	while (evt_fd != -1 && off < blen) {
		ssize_t n = write(evt_fd, blk + off, blen - off);

		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* A reader that went away must not stop the server:
			 * drop the stream, keep serving. */
			log_warn("events: write failed, events disabled");
			evt_close();
			break;
		}
		off += (size_t)n;
	}
	blen = 0;
}

void
evt_close(void)
{
	int fd = evt_fd;

	if (fd == -1)
		return;
	evt_fd = -1;
	if (blen > 0) {
		evt_fd = fd;
		evt_flush();
		if (evt_fd == -1)
			fd = -1;
		evt_fd = -1;
	}
	if (evt_own && fd != -1)
		close(fd);
	evt_own = 0;
	free(blk);
	blk = NULL;
	blen = 0;
	free(line);
	line = NULL;
	llen = lcap = 0;
}

/* Grow the line buffer to hold n more bytes (plus "}\n"). */
static int
reserve(size_t n)
{
	size_t nc;
	char *p;

	if (llen + n + 2 <= lcap)
		return 0;
	nc = lcap ? lcap : 1024;
	while (llen + n + 2 > nc)
		nc *= 2;
	if ((p = realloc(line, nc)) == NULL)
		return -1;
	line = p;
	lcap = nc;
	return 0;
}

static void
put(const char *s, size_t n)
{
	if (reserve(n) == -1)
		return;
	memcpy(line + llen, s, n);
	llen += n;
}

static void
puts_(const char *s)
{
	put(s, strlen(s));
}

/* Decimal without printf: events are written for every command. */
static void
put_u64(uint64_t v)
{
	char buf[24], *p = buf + sizeof(buf);

	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	put(p, (size_t)(buf + sizeof(buf) - p));
}

/* The JSON escape of one byte that needs one; returns its length. */
static size_t
esc1(unsigned char c, char *o)
{
	static const char hex[] = "0123456789abcdef";

	o[0] = '\\';
	switch (c) {
	case '"': case '\\':
		o[1] = (char)c;
		return 2;
	case '\n':
		o[1] = 'n';
		return 2;
	case '\r':
		o[1] = 'r';
		return 2;
	case '\t':
		o[1] = 't';
		return 2;
	}
	/* Bytes >= 0x80 are not checked for valid UTF-8, so they are
	 * escaped as \u00XX to keep every line valid JSON. */
	o[1] = 'u';
	o[2] = '0';
	o[3] = '0';
	o[4] = hex[c >> 4];
	o[5] = hex[c & 15];
	return 6;
}

static int
plain(unsigned char c)
{
	return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

size_t
evt_json_quote(char *dst, size_t dstlen, const char *s, size_t len)
{
	size_t i, k, n, o = 0;
	char tmp[8];

#define OUT(c) do { if (o < dstlen) dst[o] = (c); o++; } while (0)
	OUT('"');
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (plain(c)) {
			OUT((char)c);
			continue;
		}
		n = esc1(c, tmp);
		for (k = 0; k < n; k++)
			OUT(tmp[k]);
	}
	OUT('"');
	if (o < dstlen)
		dst[o] = '\0';
	else if (dstlen > 0)
		dst[dstlen - 1] = '\0';
#undef OUT
	return o;
}

/* Escape straight into the line: at most 6 output bytes per input byte. */
static void
put_escaped(const char *s, size_t len)
{
	size_t i, run;

	if (reserve(len * 6) == -1)
		return;
	for (i = 0; i < len; i = run + 1) {
		for (run = i; run < len && plain((unsigned char)s[run]); run++)
			;
		memcpy(line + llen, s + i, run - i);
		llen += run - i;
		if (run == len)
			break;
		llen += esc1((unsigned char)s[run], line + llen);
	}
}

static void
put_quoted(const char *s, size_t len)
{
	put("\"", 1);
	put_escaped(s, len);
	put("\"", 1);
}

static void
key_(const char *key)
{
	if (!first_field)
		put(",", 1);
	first_field = 0;
	put("\"", 1);
	puts_(key);
	put("\":", 2);
}

void
evt_begin(const char *name)
{
	struct timeval tv;
	char us[8];
	long u;
	int i;

	if (!evt_enabled())
		return;
	gettimeofday(&tv, NULL);
	if (tv.tv_sec != last_sec) {
		struct tm tm;

		gmtime_r(&tv.tv_sec, &tm);
		strftime(last_stamp, sizeof(last_stamp), "%Y-%m-%dT%H:%M:%S",
		    &tm);
		last_sec = tv.tv_sec;
	}
	u = (long)tv.tv_usec;
	us[0] = '.';
	for (i = 6; i >= 1; i--) {
		us[i] = (char)('0' + u % 10);
		u /= 10;
	}
	us[7] = 'Z';
	llen = 0;
	put("{\"time\":\"", 9);
	puts_(last_stamp);
	put(us, 8);
	put("\",\"seq\":", 8);
	put_u64(++evt_seq);
	put(",\"event\":\"", 10);
	puts_(name);
	put("\"", 1);
	first_field = 0;
}

void
evt_str(const char *key, const char *val)
{
	if (!evt_enabled())
		return;
	key_(key);
	if (val == NULL)
		puts_("null");
	else
		put_quoted(val, strlen(val));
}

void
evt_str2(const char *key, const char *a, const char *b)
{
	if (!evt_enabled())
		return;
	key_(key);
	put("\"", 1);
	if (a != NULL) {
		put_escaped(a, strlen(a));
		put(" ", 1);
	}
	put_escaped(b, strlen(b));
	put("\"", 1);
}

void
evt_strn(const char *key, const char *val, size_t len)
{
	if (!evt_enabled())
		return;
	key_(key);
	put_quoted(val, len > evt_max_arg ? evt_max_arg : len);
}

void
evt_int(const char *key, long long v)
{
	if (!evt_enabled())
		return;
	key_(key);
	if (v < 0) {
		put("-", 1);
		put_u64((uint64_t)0 - (uint64_t)v);
	} else {
		put_u64((uint64_t)v);
	}
}

void
evt_uint(const char *key, uint64_t v)
{
	if (!evt_enabled())
		return;
	key_(key);
	put_u64(v);
}

void
evt_bool(const char *key, int v)
{
	if (!evt_enabled())
		return;
	key_(key);
	puts_(v ? "true" : "false");
}

void
evt_num(const char *key, double v)
{
	char buf[48];

	if (!evt_enabled())
		return;
	key_(key);
	put(buf, (size_t)snprintf(buf, sizeof(buf), "%.6f", v));
}

void
evt_raw(const char *key, const char *json)
{
	if (!evt_enabled())
		return;
	key_(key);
	puts_(json);
}

void
evt_end(void)
{
	if (!evt_enabled() || line == NULL)
		return;
	put("}\n", 2);
	if (ring_cap > 0)
		ring_add(line, llen - 1);
	if (evt_fd == -1)
		return;
	if (blen + llen > EVT_BLOCK)
		evt_flush();
	if (!evt_enabled())
		return;
	if (llen > EVT_BLOCK) {
		/* one event larger than the block: write it through */
		size_t off = 0;

		while (off < llen) {
			ssize_t n = write(evt_fd, line + off, llen - off);

			if (n == -1 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			off += (size_t)n;
		}
		return;
	}
	memcpy(blk + blen, line, llen);
	blen += llen;
}
