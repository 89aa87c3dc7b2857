/*
 * dscan.c - DATA body scanner: end-of-data detection and dot-unstuffing
 *
 * DESCRIPTION  See dscan.h.  The state machine only ever treats CR LF as
 *              a line end, so no bare-LF or bare-CR variant of the
 *              terminator can end the message (SMTP smuggling).
 *
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include "dscan.h"

enum {
	DS_BOL,		/* at the start of a line */
	DS_MID,		/* inside a line */
	DS_CR,		/* inside a line, just after CR */
	DS_DOT,		/* a line that began with "." */
	DS_DOTCR,	/* "." then CR at the start of a line */
};

void
dscan_init(struct dscan *d, size_t line_max)
{
	memset(d, 0, sizeof(*d));
	d->st = DS_BOL;
	d->line_max = line_max;
}

static void
line_end(struct dscan *d)
{
	if (d->line > d->longest)
		d->longest = d->line;
	if (d->line_max && d->line > d->line_max)
		d->long_line = 1;
	d->line = 0;
}

size_t
dscan_feed(struct dscan *d, const char *in, size_t n, char *out,
    size_t *outlen)
{
	size_t i = 0, o = 0;

	while (i < n && !d->done) {
		char c;

		if (d->st == DS_MID) {
			/* fast path: copy up to the next CR in one go */
			const char *cr = memchr(in + i, '\r', n - i);
			size_t run = cr ? (size_t)(cr - (in + i)) : n - i;

			if (run > 0) {
				if (memchr(in + i, '\n', run) != NULL)
					d->bare_cr_lf = 1;
				memcpy(out + o, in + i, run);
				o += run;
				i += run;
				d->line += run;
				continue;
			}
		}
		c = in[i++];
		d->line++;
		switch (d->st) {
		case DS_BOL:
			if (c == '.') {
				d->st = DS_DOT;
				break;
			}
			/* FALLTHROUGH */
		case DS_MID:
		mid:
			out[o++] = c;
			if (c == '\r')
				d->st = DS_CR;
			else {
				if (c == '\n')
					d->bare_cr_lf = 1;
				d->st = DS_MID;
			}
			break;
		case DS_CR:
			out[o++] = c;
			if (c == '\n') {
				line_end(d);
				d->st = DS_BOL;
			} else if (c != '\r') {
				d->bare_cr_lf = 1;
				d->st = DS_MID;
			} else {
				d->bare_cr_lf = 1;
			}
			break;
		case DS_DOT:
			/* The stuffed dot is dropped (RFC 5321 4.5.2). */
			if (c == '\r') {
				d->st = DS_DOTCR;
				break;
			}
			goto mid;
		case DS_DOTCR:
			if (c == '\n') {
				line_end(d);
				d->done = 1;
				break;
			}
			/* ".\r" then something else: the line was ".\r..." */
			out[o++] = '\r';
			d->bare_cr_lf = 1;
			d->st = DS_CR;
			i--;
			d->line--;
			break;
		}
	}
	d->octets += o;
	*outlen = o;
	return i;
}
