/*
 * capture.h - Maildir capture of accepted messages
 *
 * DESCRIPTION  A message is written to DIR/tmp/NAME, fsynced, renamed to
 *              DIR/new/NAME and DIR/new fsynced, all before the session
 *              sends its 250: nothing acknowledged is lost.
 * OWNERSHIP    struct capture_tx owns its fd and write buffer until
 *              capture_commit() or capture_abort(); either releases all.
 * ERRORS       -1 with errno; ENOSPC/EDQUOT mean "disk full" (452 4.3.1),
 *              anything else 451 4.3.0.  A failed message leaves no file.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef CAPTURE_H
#define CAPTURE_H

#include <stddef.h>
#include <stdint.h>

#include "iobuf.h"

struct capture_tx {
	int		 fd;		/* -1 when not open */
	int		 err;		/* first errno seen, 0 if none */
	char		*tmp;		/* DIR/tmp/NAME */
	char		*name;		/* NAME */
	struct iobuf	 wb;		/* write-behind buffer */
};

/* Create DIR, DIR/tmp, DIR/new, DIR/cur as needed. 0 or -1 + errno. */
int	 capture_prepare(const char *dir);

void	 capture_tx_init(struct capture_tx *t);
int	 capture_begin(struct capture_tx *t, const char *dir,
    const char *host);
/* Buffered write; errors are remembered and reported by commit. */
void	 capture_write(struct capture_tx *t, const void *p, size_t n);
/*
 * Flush, fsync (when do_fsync), rename into new/ and fsync new/.
 * On success *path (malloc'd "DIR/new/NAME") is set and 0 returned; on
 * failure the tmp file is removed and -1 returned with errno set.
 */
int	 capture_commit(struct capture_tx *t, const char *dir, int do_fsync,
    char **path);
void	 capture_abort(struct capture_tx *t);
int	 capture_active(const struct capture_tx *t);

#endif
