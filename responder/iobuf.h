/*
 * iobuf.h - bounded byte buffers
 *
 * DESCRIPTION  A FIFO of bytes with a hard maximum.  Storage is allocated
 *              on first use and released whenever the buffer drains, so an
 *              idle session holds no buffer memory at all.
 * OWNERSHIP    The iobuf owns buf.  Pointers returned by iobuf_data(),
 *              iobuf_getline() and iobuf_reserve() stay valid until the next
 *              iobuf_* call on the same buffer.
 * LIMITS       len never exceeds max; growth past max fails with ENOBUFS.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef IOBUF_H
#define IOBUF_H

#include <stddef.h>

struct iobuf {
	char	*buf;
	size_t	 off;	/* first unread byte */
	size_t	 len;	/* unread bytes from off */
	size_t	 cap;	/* allocated bytes */
	size_t	 max;	/* hard limit on len */
};

void	 iobuf_init(struct iobuf *b, size_t max);
void	 iobuf_free(struct iobuf *b);
size_t	 iobuf_len(const struct iobuf *b);
size_t	 iobuf_room(const struct iobuf *b);
char	*iobuf_data(struct iobuf *b);

/* Append n bytes; -1 (ENOBUFS) if that would pass max, nothing appended. */
int	 iobuf_append(struct iobuf *b, const void *p, size_t n);
int	 iobuf_printf(struct iobuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Drop n bytes from the front; frees the storage when empty. */
void	 iobuf_consume(struct iobuf *b, size_t n);
void	 iobuf_clear(struct iobuf *b);

/*
 * Space for at least want (at most room) bytes at the end, for read();
 * *avail gets the usable size.  NULL with ENOBUFS when full.  Follow with
 * iobuf_commit(b, n) for the n bytes actually written.
 */
char	*iobuf_reserve(struct iobuf *b, size_t want, size_t *avail);
void	 iobuf_commit(struct iobuf *b, size_t n);

/*
 * Next line ended by CRLF (a bare CR or LF never ends a line).  Returns a
 * NUL-terminated pointer to the line without its CRLF and consumes it, or
 * NULL when no complete line is buffered.  *len gets the length without
 * CRLF.  A buffer drained by this call keeps its storage until the next
 * iobuf_* call, so the line stays valid until then.  Embedded NUL bytes are kept; use *len, not strlen().
 */
char	*iobuf_getline(struct iobuf *b, size_t *len);

#endif
