/*
 * dscan.h - DATA body scanner: end-of-data detection and dot-unstuffing
 *
 * DESCRIPTION  Feeds raw DATA bytes, in pieces of any size, through a
 *              state machine that finds the one true terminator CRLF.CRLF
 *              (RFC 5321 4.1.1.4), removes the stuffed leading dot of each
 *              line (4.5.2) and counts octets and line lengths.  A bare CR
 *              or LF never ends a line, so "\n.\n", "\r.\r", "\n.\r\n" and
 *              "\r\n.\n" are message content, not terminators.
 * OWNERSHIP    No allocation; the caller supplies the output buffer.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef DSCAN_H
#define DSCAN_H

#include <stddef.h>
#include <stdint.h>

struct dscan {
	int		 st;
	size_t		 line;		/* octets of the current input line */
	size_t		 line_max;	/* text line limit incl. CRLF; 0 = none */
	uint64_t	 octets;	/* unstuffed message octets so far */
	size_t		 longest;	/* longest input line seen, incl. CRLF */
	int		 long_line;	/* a line passed line_max */
	int		 bare_cr_lf;	/* a bare CR or LF was seen */
	int		 done;		/* terminator seen */
};

void dscan_init(struct dscan *d, size_t line_max);

/*
 * Scan n input bytes.  Unstuffed message bytes are written to out, which
 * must hold at least n + 1 bytes (a CR held back after a line's leading
 * dot may be released by this call); *outlen gets their count.  Returns the
 * number of input bytes consumed: all n, or fewer when the terminator
 * ends inside the input (d->done is then set and the return value counts
 * the terminator's last byte).
 */
size_t dscan_feed(struct dscan *d, const char *in, size_t n, char *out,
    size_t *outlen);

#endif
