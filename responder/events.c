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
	return evt_fd != -1;
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

static void
put(const char *s, size_t n)
{
	if (llen + n + 2 > lcap) {
		size_t nc = lcap ? lcap : 512;
		char *p;

		while (llen + n + 2 > nc)
			nc *= 2;
		if ((p = realloc(line, nc)) == NULL)
			return;
		line = p;
		lcap = nc;
	}
	memcpy(line + llen, s, n);
	llen += n;
}

static void
puts_(const char *s)
{
	put(s, strlen(s));
}

size_t
evt_json_quote(char *dst, size_t dstlen, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, o = 0;
	char tmp[8];

#define OUT(c) do { if (o < dstlen) dst[o] = (c); o++; } while (0)
	OUT('"');
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		size_t k, n = 0;

		if (c == '"' || c == '\\') {
			tmp[n++] = '\\';
			tmp[n++] = (char)c;
		} else if (c == '\n' || c == '\r' || c == '\t') {
			tmp[n++] = '\\';
			tmp[n++] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
		} else if (c < 0x20 || c == 0x7f || c >= 0x80) {
			/* Bytes >= 0x80 are not checked for valid UTF-8,
			 * so they are escaped as \u00XX to keep JSON valid. */
			tmp[n++] = '\\';
			tmp[n++] = 'u';
			tmp[n++] = '0';
			tmp[n++] = '0';
			tmp[n++] = hex[c >> 4];
			tmp[n++] = hex[c & 15];
		} else {
			tmp[n++] = (char)c;
		}
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

static void
put_quoted(const char *s, size_t len)
{
	char small[600], *big;
	size_t n = evt_json_quote(small, sizeof(small), s, len);

	if (n < sizeof(small)) {
		put(small, n);
		return;
	}
	if ((big = malloc(n + 1)) == NULL)
		return;
	evt_json_quote(big, n + 1, s, len);
	put(big, n);
	free(big);
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
	char stamp[48];

	if (evt_fd == -1)
		return;
	gettimeofday(&tv, NULL);
	if (tv.tv_sec != last_sec) {
		struct tm tm;

		gmtime_r(&tv.tv_sec, &tm);
		strftime(last_stamp, sizeof(last_stamp), "%Y-%m-%dT%H:%M:%S",
		    &tm);
		last_sec = tv.tv_sec;
	}
	snprintf(stamp, sizeof(stamp), "%s.%06ldZ", last_stamp,
	    (long)tv.tv_usec);
	llen = 0;
	first_field = 1;
	put("{", 1);
	key_("time");
	put("\"", 1);
	puts_(stamp);
	put("\"", 1);
	evt_uint("seq", ++evt_seq);
	evt_str("event", name);
}

void
evt_str(const char *key, const char *val)
{
	if (evt_fd == -1)
		return;
	key_(key);
	if (val == NULL)
		puts_("null");
	else
		put_quoted(val, strlen(val));
}

void
evt_strn(const char *key, const char *val, size_t len)
{
	if (evt_fd == -1)
		return;
	key_(key);
	put_quoted(val, len > evt_max_arg ? evt_max_arg : len);
}

void
evt_int(const char *key, long long v)
{
	char buf[32];

	if (evt_fd == -1)
		return;
	key_(key);
	put(buf, (size_t)snprintf(buf, sizeof(buf), "%lld", v));
}

void
evt_uint(const char *key, uint64_t v)
{
	char buf[32];

	if (evt_fd == -1)
		return;
	key_(key);
	put(buf, (size_t)snprintf(buf, sizeof(buf), "%" PRIu64, v));
}

void
evt_bool(const char *key, int v)
{
	if (evt_fd == -1)
		return;
	key_(key);
	puts_(v ? "true" : "false");
}

void
evt_num(const char *key, double v)
{
	char buf[48];

	if (evt_fd == -1)
		return;
	key_(key);
	put(buf, (size_t)snprintf(buf, sizeof(buf), "%.6f", v));
}

void
evt_raw(const char *key, const char *json)
{
	if (evt_fd == -1)
		return;
	key_(key);
	puts_(json);
}

void
evt_end(void)
{
	if (evt_fd == -1 || line == NULL)
		return;
	put("}\n", 2);
	if (blen + llen > EVT_BLOCK)
		evt_flush();
	if (evt_fd == -1)
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
