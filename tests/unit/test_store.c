/*
 * test_store.c - unit tests for store.[ch]: memory and LMDB backends
 *
 * DESCRIPTION  Table-driven: a row is a script of operations (put, get,
 *              del, expire, each, count, reopen) with the expected result
 *              of each; every script runs on both backends unless it is
 *              LMDB-only (reopen: the memory store starts empty by
 *              design).  LMDB stores live in a mkdtemp() directory under
 *              /tmp that is removed afterwards.  A write that LMDB
 *              refuses must not wedge the store: that check runs in a
 *              child with an alarm, so a hang fails the test instead of
 *              the run.
 *
 * SPDX-License-Identifier: MIT
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "store.h"
#include "unit.h"
#include "util.h"

enum sop { S_END, S_PUT, S_GET, S_DEL, S_EXPIRE, S_COUNT, S_EACH, S_REOPEN };

struct sstep {
	enum sop	 op;
	const char	*key;
	double		 t;		/* put: last_seen; expire: before */
	uint32_t	 att;		/* put: attempts; get: expected */
	long		 want;		/* get/del/expire/count/each result */
	int		 stop;		/* each: stop after this many calls */
};

struct scase {
	const char	*name;
	int		 lmdb_only;
	struct sstep	 s[24];
};

#define PUT(k, t, a)	{ S_PUT, k, t, a, 0, 0 }
#define GET(k, a)	{ S_GET, k, 0, a, 0, 0 }
#define MISS(k)		{ S_GET, k, 0, 0, 1, 0 }
#define DEL(k)		{ S_DEL, k, 0, 0, 0, 0 }
#define EXPIRE(b, n)	{ S_EXPIRE, NULL, b, 0, n, 0 }
#define COUNT(n)	{ S_COUNT, NULL, 0, 0, n, 0 }
#define EACH(n, a)	{ S_EACH, NULL, 0, a, n, 0 }
#define EACH_STOP(s)	{ S_EACH, NULL, 0, 0, 1, s }
#define REOPEN		{ S_REOPEN, NULL, 0, 0, 0, 0 }

static const struct scase store_cases[] = {
	{ "empty store", 0, { COUNT(0), MISS("a"), EACH(0, 0), EXPIRE(1e12, 0),
	    DEL("a"), COUNT(0) } },
	{ "put then get", 0, { PUT("a", 100, 1), GET("a", 1), MISS("b"),
	    MISS("A"), MISS("a "), COUNT(1) } },
	{ "put overwrites", 0, { PUT("a", 100, 1), PUT("a", 200, 5),
	    GET("a", 5), COUNT(1) } },
	{ "del", 0, { PUT("a", 100, 1), PUT("b", 100, 2), DEL("a"), MISS("a"),
	    GET("b", 2), COUNT(1), DEL("a"), COUNT(1), DEL("b"), COUNT(0) } },
	{ "del missing key", 0, { PUT("a", 100, 1), DEL("zz"), COUNT(1) } },
	{ "keys that share a prefix", 0, { PUT("192.0.2.0/24||", 1, 1),
	    PUT("192.0.2.0/24|a@b|", 1, 2), PUT("192.0.2.0/24|a@b|c@d", 1, 3),
	    GET("192.0.2.0/24||", 1), GET("192.0.2.0/24|a@b|", 2),
	    GET("192.0.2.0/24|a@b|c@d", 3), MISS("192.0.2.0/24|a@b"),
	    COUNT(3), DEL("192.0.2.0/24|a@b|"), GET("192.0.2.0/24||", 1),
	    GET("192.0.2.0/24|a@b|c@d", 3), COUNT(2) } },
	{ "expire by last_seen, strictly before", 0, { PUT("a", 100, 1),
	    PUT("b", 200, 2), PUT("c", 300, 3), PUT("d", 150, 4),
	    EXPIRE(200, 2), COUNT(2), MISS("a"), MISS("d"), GET("b", 2),
	    GET("c", 3), EXPIRE(200, 0), EXPIRE(1000, 2), COUNT(0) } },
	{ "expire neighbours in key order", 0, { PUT("k1", 1, 1),
	    PUT("k2", 1, 1), PUT("k3", 1, 1), PUT("k4", 9, 1), PUT("k5", 1, 1),
	    PUT("k6", 1, 1), PUT("k7", 9, 1), PUT("k8", 1, 1), EXPIRE(5, 6),
	    COUNT(2), GET("k4", 1), GET("k7", 1), EACH(2, 2) } },
	{ "expire nothing", 0, { PUT("a", 100, 1), EXPIRE(100, 0),
	    EXPIRE(0, 0), COUNT(1) } },
	{ "each visits every record", 0, { PUT("a", 1, 1), PUT("b", 1, 2),
	    PUT("c", 1, 4), EACH(3, 7) } },
	{ "each stops when fn returns non-zero", 0, { PUT("a", 1, 1),
	    PUT("b", 1, 2), PUT("c", 1, 4), EACH_STOP(1), EACH_STOP(2),
	    COUNT(3) } },
	{ "LMDB keeps records across close and open", 1, { PUT("a", 100, 3),
	    PUT("b", 200, 4), REOPEN, GET("a", 3), GET("b", 4), COUNT(2),
	    EACH(2, 7) } },
	{ "LMDB keeps deletions and expiry across close and open", 1, {
	    PUT("a", 100, 1), PUT("b", 200, 2), PUT("c", 300, 3), DEL("a"),
	    EXPIRE(250, 1), REOPEN, MISS("a"), MISS("b"), GET("c", 3),
	    COUNT(1), REOPEN, REOPEN, GET("c", 3) } },
	{ "LMDB overwrite after reopen", 1, { PUT("a", 100, 1), REOPEN,
	    PUT("a", 200, 2), REOPEN, GET("a", 2), COUNT(1) } },
};

/* A record whose every field depends on (t, att), to catch mix-ups. */
static struct frec
mkrec(double t, uint32_t att)
{
	struct frec r;

	memset(&r, 0, sizeof(r));
	r.first_seen = t - 50;
	r.last_seen = t;
	r.attempts = att;
	r.passes = att * 2 + 1;
	r.passed_at = t + 0.25;
	r.flags = att ^ 0x5a;
	r.spare = 7;
	return r;
}

struct each_acc {
	long		 calls;
	uint64_t	 sum;
	int		 stop;
};

static int
each_fn(void *arg, const char *key, const struct frec *r)
{
	struct each_acc *a = arg;

	(void)key;
	a->calls++;
	a->sum += r->attempts;
	return a->stop && a->calls >= a->stop ? 1 : 0;
}

/* Records put by the script, for checking a get of any field. */
struct putrec {
	const char	*key;
	struct frec	 r;
};

static int
frec_eq(const struct frec *a, const struct frec *b)
{
	return a->first_seen == b->first_seen &&
	    a->last_seen == b->last_seen && a->attempts == b->attempts &&
	    a->passes == b->passes && a->passed_at == b->passed_at &&
	    a->flags == b->flags && a->spare == b->spare;
}

static void
run_case(const struct scase *tc, const char *dir)
{
	const char	*kind = dir ? "lmdb" : "memory";
	struct store	*st;
	struct putrec	 puts[24];
	char		 err[256] = "";
	int		 np = 0, i, j;

	if ((st = store_open(dir, err, sizeof(err))) == NULL) {
		T_CHECKF(0, "store %s [%s]: open: %s", tc->name, kind, err);
		return;
	}
	T_CHECKF(strcmp(store_kind(st), kind) == 0, "store %s: kind %s, "
	    "want %s", tc->name, store_kind(st), kind);
	for (i = 0; i < 24 && tc->s[i].op != S_END; i++) {
		const struct sstep	*s = &tc->s[i];
		struct frec		 r, w;
		struct each_acc		 acc = { 0, 0, s->stop };
		long			 n;
		int			 rc;

		switch (s->op) {
		case S_PUT:
			w = mkrec(s->t, s->att);
			rc = store_put(st, s->key, &w);
			T_CHECKF(rc == 0,
			    "store %s [%s] step %d: put %s: rc %d",
			    tc->name, kind, i, s->key, rc);
			for (j = 0; j < np; j++)
				if (strcmp(puts[j].key, s->key) == 0)
					break;
			puts[j].key = s->key;
			puts[j].r = w;
			if (j == np)
				np++;
			break;
		case S_GET:
			memset(&r, 0, sizeof(r));
			rc = store_get(st, s->key, &r);
			T_CHECKF(rc == s->want,
			    "store %s [%s] step %d: get %s: rc %d, want %ld",
			    tc->name, kind, i, t_shows(s->key), rc, s->want);
			if (rc != 0 || s->want != 0)
				break;
			for (j = 0; j < np; j++)
				if (strcmp(puts[j].key, s->key) == 0)
					break;
			T_CHECKF(r.attempts == s->att && j < np &&
			    frec_eq(&r, &puts[j].r), "store %s [%s] step %d: "
			    "get %s: attempts %u (want %u), record %s",
			    tc->name, kind, i, s->key, r.attempts, s->att,
			    j < np && frec_eq(&r, &puts[j].r) ? "same" :
			    "differs from the one put");
			break;
		case S_DEL:
			rc = store_del(st, s->key);
			T_CHECKF(rc == 0,
			    "store %s [%s] step %d: del %s: rc %d",
			    tc->name, kind, i, s->key, rc);
			break;
		case S_EXPIRE:
			n = store_expire(st, s->t, NULL);
			T_CHECKF(n == s->want, "store %s [%s] step %d: expire "
			    "before %g: %ld, want %ld", tc->name, kind, i, s->t,
			    n, s->want);
			break;
		case S_COUNT:
			n = store_count(st);
			T_CHECKF(n == s->want,
			    "store %s [%s] step %d: count %ld, want %ld",
			    tc->name, kind, i, n, s->want);
			break;
		case S_EACH:
			rc = store_each(st, each_fn, &acc);
			if (s->stop)
				T_CHECKF(rc != 0 && acc.calls == s->stop,
				    "store %s [%s] step %d: each stop after "
				    "%d: rc %d, %ld calls", tc->name, kind, i,
				    s->stop, rc, acc.calls);
			else
				T_CHECKF(rc == 0 && acc.calls == s->want &&
				    acc.sum == s->att, "store %s [%s] step %d: "
				    "each: rc %d, %ld calls (want %ld), "
				    "attempts sum %llu (want %u)", tc->name,
				    kind, i, rc, acc.calls, s->want,
				    (unsigned long long)acc.sum, s->att);
			break;
		case S_REOPEN:
			store_close(st);
			if ((st = store_open(dir, err, sizeof(err))) == NULL) {
				T_CHECKF(0, "store %s [%s] step %d: reopen: %s",
				    tc->name, kind, i, err);
				return;
			}
			break;
		case S_END:
			break;
		}
	}
	store_close(st);
}

static void
test_scripts(void)
{
	size_t i;

	for (i = 0; i < NELEM(store_cases); i++) {
		char dir[64];

		if (!store_cases[i].lmdb_only)
			run_case(&store_cases[i], NULL);
		if (t_tmpdir(dir, sizeof(dir), "store") == -1) {
			T_CHECKF(0, "store %s: mkdtemp failed",
			    store_cases[i].name);
			continue;
		}
		run_case(&store_cases[i], dir);
		T_CHECKF(t_rmtree(dir) == 0, "store %s: remove %s",
		    store_cases[i].name, dir);
	}
}

/* Many keys: hash chains (memory) and B-tree pages (LMDB). */
static void
test_many(void)
{
	static const int N = 3000;
	char	 dir[64];
	int	 b;

	if (t_tmpdir(dir, sizeof(dir), "store") == -1) {
		T_CHECK(0, "many: mkdtemp");
		return;
	}
	for (b = 0; b < 2; b++) {
		const char	*kind = b ? "lmdb" : "memory";
		struct store	*st;
		char		 err[256], key[64];
		struct frec	 r, w;
		int		 i, bad = 0;
		long		 n;

		if ((st = store_open(b ? dir : NULL, err, sizeof(err))) ==
		    NULL) {
			T_CHECKF(0, "many [%s]: open: %s", kind, err);
			continue;
		}
		for (i = 0; i < N; i++) {
			snprintf(key, sizeof(key), "10.%d.%d.0/24|s%d@x|r@y",
			    i / 256, i % 256, i);
			w = mkrec(i % 2 ? 1000 : 10, (uint32_t)i);
			if (store_put(st, key, &w) != 0)
				bad++;
		}
		T_CHECKF(bad == 0 && store_count(st) == N,
		    "many [%s]: %d failed puts, count %ld", kind, bad,
		    store_count(st));
		for (i = 0, bad = 0; i < N; i++) {
			snprintf(key, sizeof(key), "10.%d.%d.0/24|s%d@x|r@y",
			    i / 256, i % 256, i);
			if (store_get(st, key, &r) != 0 ||
			    r.attempts != (uint32_t)i)
				bad++;
		}
		T_CHECKF(bad == 0, "many [%s]: %d gets wrong", kind, bad);
		n = store_expire(st, 500, NULL);
		T_CHECKF(n == N / 2 && store_count(st) == N - N / 2,
		    "many [%s]: expired %ld, count %ld", kind, n,
		    store_count(st));
		store_close(st);
	}
	T_CHECKF(t_rmtree(dir) == 0, "many: remove %s", dir);
}

static void
test_open(void)
{
	struct store	*st;
	char		 dir[64], path[128], err[256];
	int		 fd;
	struct stat	 sb;

	/* "" means memory, like NULL */
	err[0] = '\0';
	st = store_open("", err, sizeof(err));
	T_CHECK(st != NULL && strcmp(store_kind(st), "memory") == 0,
	    "open \"\": memory store");
	store_close(st);
	store_close(NULL);
	store_sync(NULL);

	if (t_tmpdir(dir, sizeof(dir), "store") == -1) {
		T_CHECK(0, "open: mkdtemp");
		return;
	}
	/* a missing directory is created (one level) */
	snprintf(path, sizeof(path), "%s/state", dir);
	st = store_open(path, err, sizeof(err));
	T_CHECKF(st != NULL && stat(path, &sb) == 0 && S_ISDIR(sb.st_mode),
	    "open creates %s: %s", path, st ? "ok" : err);
	if (st != NULL) {
		struct frec w = mkrec(1, 1);

		T_CHECK(store_put(st, "k", &w) == 0, "open: put");
		store_sync(st);
		store_close(st);
	}
	/* a missing parent is an error, with the path in the message */
	snprintf(path, sizeof(path), "%s/no/such", dir);
	err[0] = '\0';
	st = store_open(path, err, sizeof(err));
	T_CHECKF(st == NULL && strstr(err, path) != NULL,
	    "open under a missing parent: %s, err %s", st ? "opened" : "NULL",
	    t_shows(err));
	store_close(st);
	/* a regular file is not a state directory */
	snprintf(path, sizeof(path), "%s/file", dir);
	if ((fd = open(path, O_CREAT | O_WRONLY, 0600)) != -1)
		close(fd);
	err[0] = '\0';
	st = store_open(path, err, sizeof(err));
	T_CHECKF(st == NULL && strstr(err, path) != NULL,
	    "open a regular file: %s, err %s", st ? "opened" : "NULL",
	    t_shows(err));
	store_close(st);
	T_CHECKF(t_rmtree(dir) == 0, "open: remove %s", dir);
}

/*
 * LMDB refuses keys over 511 bytes (MDB_BAD_VALSIZE).  store_put() must
 * then fail cleanly and leave the store usable: the next put and get of
 * an ordinary key work.  Run in a child with an alarm: a write
 * transaction left open holds LMDB's writer lock and the next put would
 * block forever.  Exit codes: 0 ok, 3 long put said 0 but get missed,
 * 4 short put failed, 5 short get failed, 6 open failed.
 */
static int
long_key_child(const char *dir)
{
	struct store	*st;
	struct frec	 w = mkrec(100, 3), r;
	char		 err[256], key[700];
	int		 fd;

	alarm(5);
	if ((fd = open("/dev/null", O_WRONLY)) != -1)
		dup2(fd, 2);	/* the store logs the LMDB error */
	if ((st = store_open(dir, err, sizeof(err))) == NULL)
		return 6;
	memset(key, 'k', 600);
	key[600] = '\0';
	if (store_put(st, key, &w) == 0 && store_get(st, key, &r) != 0)
		return 3;
	if (store_put(st, "short", &w) != 0)
		return 4;
	if (store_get(st, "short", &r) != 0 || r.attempts != 3)
		return 5;
	store_close(st);
	return 0;
}

static void
test_long_key(void)
{
	char	 dir[64];
	pid_t	 pid;
	int	 status = 0;

	if (t_tmpdir(dir, sizeof(dir), "store") == -1) {
		T_CHECK(0, "long key: mkdtemp");
		return;
	}
	fflush(NULL);
	if ((pid = fork()) == 0)
		_exit(long_key_child(dir));
	if (pid == -1 || waitpid(pid, &status, 0) != pid) {
		T_CHECK(0, "long key: fork/wait");
	} else {
		T_CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		    "LMDB put of a 600-byte key must fail cleanly, then a put "
		    "of \"short\" must work: %s %d%s",
		    WIFEXITED(status) ? "child exit" : "child killed by signal",
		    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
		    WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM ?
		    " (SIGALRM: the second put hung)" : "");
	}
	T_CHECKF(t_rmtree(dir) == 0, "long key: remove %s", dir);
}

/* The memory store takes any key length. */
static void
test_long_key_memory(void)
{
	struct store	*st;
	struct frec	 w = mkrec(100, 9), r;
	char		 err[64], key[2000];

	if ((st = store_open(NULL, err, sizeof(err))) == NULL) {
		T_CHECK(0, "memory long key: open");
		return;
	}
	memset(key, 'k', sizeof(key) - 1);
	key[sizeof(key) - 1] = '\0';
	T_CHECK(store_put(st, key, &w) == 0 && store_get(st, key, &r) == 0 &&
	    r.attempts == 9, "memory store: 1999-byte key round trip");
	store_close(st);
}

CU_TestInfo store_tests[] = {
	{ "scripts on both backends", test_scripts },
	{ "many keys", test_many },
	{ "open", test_open },
	{ "LMDB long key does not wedge the store", test_long_key },
	{ "memory long key", test_long_key_memory },
	CU_TEST_INFO_NULL,
};
