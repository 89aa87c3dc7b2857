/*
 * capture.c - Maildir capture of accepted messages
 *
 * DESCRIPTION  See capture.h.  Names follow the Maildir convention
 *              "SECONDS.M<usec>P<pid>Q<seq>.HOST" so they are unique per
 *              process and sort by arrival.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "capture.h"

#define CAP_WB (64 * 1024)

static unsigned long cap_seq;

static int
mkdir_p(const char *path)
{
	if (mkdir(path, 0755) == -1 && errno != EEXIST)
		return -1;
	return 0;
}

int
capture_prepare(const char *dir)
{
	static const char *const sub[] = { "tmp", "new", "cur" };
	char path[4096];
	size_t i;

	if (mkdir_p(dir) == -1)
		return -1;
	for (i = 0; i < 3; i++) {
		if (snprintf(path, sizeof(path), "%s/%s", dir, sub[i]) >=
		    (int)sizeof(path)) {
			errno = ENAMETOOLONG;
			return -1;
		}
		if (mkdir_p(path) == -1)
			return -1;
	}
	return 0;
}

void
capture_tx_init(struct capture_tx *t)
{
	memset(t, 0, sizeof(*t));
	t->fd = -1;
	iobuf_init(&t->wb, CAP_WB);
}

int
capture_active(const struct capture_tx *t)
{
	return t->fd != -1;
}

int
capture_begin(struct capture_tx *t, const char *dir, const char *host)
{
	struct timeval tv;
	char name[256];

	capture_tx_init(t);
	gettimeofday(&tv, NULL);
	snprintf(name, sizeof(name), "%ld.M%06ldP%ldQ%lu.%s",
	    (long)tv.tv_sec, (long)tv.tv_usec, (long)getpid(), ++cap_seq,
	    host);
	if ((t->name = strdup(name)) == NULL ||
	    asprintf(&t->tmp, "%s/tmp/%s", dir, name) == -1) {
		t->tmp = NULL;
		goto fail;
	}
	t->fd = open(t->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (t->fd == -1)
		goto fail;
	return 0;
fail:
	t->err = errno ? errno : ENOMEM;
	free(t->name);
	free(t->tmp);
	t->name = t->tmp = NULL;
	errno = t->err;
	return -1;
}

static void
wb_flush(struct capture_tx *t)
{
	char *p = iobuf_data(&t->wb);
	size_t len = iobuf_len(&t->wb), off = 0;

	while (off < len && t->err == 0) {
		ssize_t n = write(t->fd, p + off, len - off);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			t->err = errno;
		else
			off += (size_t)n;
	}
	iobuf_clear(&t->wb);
}

void
capture_write(struct capture_tx *t, const void *p, size_t n)
{
	if (t->fd == -1 || t->err != 0)
		return;
	if (n > iobuf_room(&t->wb))
		wb_flush(t);
	if (n > iobuf_room(&t->wb)) {
		/* larger than the buffer: write it through */
		const char *c = p;

		while (n > 0 && t->err == 0) {
			ssize_t w = write(t->fd, c, n);

			if (w == -1 && errno == EINTR)
				continue;
			if (w == -1)
				t->err = errno;
			else {
				c += w;
				n -= (size_t)w;
			}
		}
		return;
	}
	iobuf_append(&t->wb, p, n);
}

static void
tx_release(struct capture_tx *t)
{
	if (t->fd != -1)
		close(t->fd);
	t->fd = -1;
	iobuf_free(&t->wb);
	free(t->tmp);
	free(t->name);
	t->tmp = t->name = NULL;
}

void
capture_abort(struct capture_tx *t)
{
	if (t->tmp != NULL)
		unlink(t->tmp);
	tx_release(t);
}

int
capture_commit(struct capture_tx *t, const char *dir, int do_fsync,
    char **path)
{
	char *dst = NULL, *newdir = NULL;
	int dfd = -1, saved;

	*path = NULL;
	if (t->fd == -1) {
		errno = t->err ? t->err : EBADF;
		return -1;
	}
	wb_flush(t);
	if (t->err != 0)
		goto fail;
	if (do_fsync && fsync(t->fd) == -1)
		goto fail_errno;
	if (close(t->fd) == -1) {
		t->fd = -1;
		goto fail_errno;
	}
	t->fd = -1;
	if (asprintf(&dst, "%s/new/%s", dir, t->name) == -1) {
		dst = NULL;
		goto fail_errno;
	}
	if (rename(t->tmp, dst) == -1)
		goto fail_errno;
	if (do_fsync) {
		/* make the rename itself durable before we say 250 */
		if (asprintf(&newdir, "%s/new", dir) == -1) {
			newdir = NULL;
			goto fail_renamed;
		}
		if ((dfd = open(newdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) ==
		    -1 || fsync(dfd) == -1)
			goto fail_renamed;
		close(dfd);
		free(newdir);
	}
	tx_release(t);
	*path = dst;
	return 0;
fail_renamed:
	saved = errno;
	unlink(dst);
	errno = saved;
	goto fail_errno;
fail_errno:
	t->err = errno;
fail:
	saved = t->err;
	if (dfd != -1)
		close(dfd);
	free(newdir);
	free(dst);
	capture_abort(t);
	errno = saved;
	return -1;
}
