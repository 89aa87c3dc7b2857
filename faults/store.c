/*
 * store.c - persistent fault state (memory and LMDB backends)
 *
 * DESCRIPTION  See store.h.  LMDB was chosen over a hand-written file
 *              format because a committed write transaction is crash-safe
 *              by construction (copy-on-write B+tree, no recovery step) and
 *              reads need no locking; Debian ships it as liblmdb-dev.
 *              MDB_NOSYNC keeps each commit cheap: data is in the page
 *              cache when mdb_txn_commit() returns, which is what a kill -9
 *              needs; store_sync() makes it durable against power loss.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lmdb.h>

#include "log.h"
#include "store.h"

#define MEM_BUCKETS 4096

struct mem_ent {
	struct mem_ent	*next;
	struct frec	 rec;
	char		 key[];
};

struct store {
	int		 lmdb;
	/* memory */
	struct mem_ent	*b[MEM_BUCKETS];
	long		 n;
	/* lmdb */
	MDB_env		*env;
	MDB_dbi		 dbi;
};

static unsigned
mem_hash(const char *k)
{
	unsigned h = 2166136261u;

	while (*k)
		h = (h ^ (unsigned char)*k++) * 16777619u;
	return h % MEM_BUCKETS;
}

struct store *
store_open(const char *dir, char *err, size_t errlen)
{
	struct store *st = calloc(1, sizeof(*st));
	MDB_txn *txn = NULL, *txn2;
	int rc;

	if (st == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (dir == NULL || dir[0] == '\0')
		return st;
	st->lmdb = 1;
	if (mkdir(dir, 0755) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		goto fail;
	}
	if ((rc = mdb_env_create(&st->env)) != 0 ||
	    (rc = mdb_env_set_mapsize(st->env, 1UL << 30)) != 0 ||
	    (rc = mdb_env_open(st->env, dir, MDB_NOSYNC | MDB_NOTLS,
	    0644)) != 0 ||
	    (rc = mdb_txn_begin(st->env, NULL, 0, &txn)) != 0 ||
	    (rc = mdb_dbi_open(txn, NULL, 0, &st->dbi)) != 0 ||
	    (rc = (txn2 = txn, txn = NULL, mdb_txn_commit(txn2))) != 0) {
		/* a failed commit has freed its transaction already */
		if (txn != NULL)
			mdb_txn_abort(txn);
		snprintf(err, errlen, "%s: %s", dir, mdb_strerror(rc));
		goto fail;
	}
	return st;
fail:
	if (st->env != NULL)
		mdb_env_close(st->env);
	free(st);
	return NULL;
}

void
store_close(struct store *st)
{
	int i;

	if (st == NULL)
		return;
	if (st->lmdb) {
		mdb_env_sync(st->env, 1);
		mdb_env_close(st->env);
	}
	for (i = 0; i < MEM_BUCKETS; i++) {
		while (st->b[i] != NULL) {
			struct mem_ent *e = st->b[i];

			st->b[i] = e->next;
			free(e);
		}
	}
	free(st);
}

const char *
store_kind(const struct store *st)
{
	return st->lmdb ? "lmdb" : "memory";
}

int
store_get(struct store *st, const char *key, struct frec *out)
{
	if (st->lmdb) {
		MDB_txn *txn;
		MDB_val k = { strlen(key), (void *)(uintptr_t)key }, v;
		int rc;

		if (mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn) != 0)
			return -1;
		rc = mdb_get(txn, st->dbi, &k, &v);
		if (rc == 0 && v.mv_size == sizeof(*out))
			memcpy(out, v.mv_data, sizeof(*out));
		mdb_txn_abort(txn);
		if (rc == MDB_NOTFOUND || (rc == 0 &&
		    v.mv_size != sizeof(*out)))
			return 1;
		return rc == 0 ? 0 : -1;
	} else {
		struct mem_ent *e;

		for (e = st->b[mem_hash(key)]; e != NULL; e = e->next)
			if (strcmp(e->key, key) == 0) {
				*out = e->rec;
				return 0;
			}
		return 1;
	}
}

int
store_put(struct store *st, const char *key, const struct frec *r)
{
	if (st->lmdb) {
		MDB_txn *txn;
		MDB_val k = { strlen(key), (void *)(uintptr_t)key };
		MDB_val v = { sizeof(*r), (void *)(uintptr_t)r };
		int rc;

		if ((rc = mdb_txn_begin(st->env, NULL, 0, &txn)) != 0) {
			log_warnx("state: %s", mdb_strerror(rc));
			return -1;
		}
		if ((rc = mdb_put(txn, st->dbi, &k, &v, 0)) != 0) {
			/* release the writer lock, or the next put waits */
			mdb_txn_abort(txn);
			log_warnx("state: %s", mdb_strerror(rc));
			return -1;
		}
		if ((rc = mdb_txn_commit(txn)) != 0) {
			log_warnx("state: %s", mdb_strerror(rc));
			return -1;
		}
		return 0;
	} else {
		unsigned h = mem_hash(key);
		struct mem_ent *e;
		size_t kl = strlen(key) + 1;

		for (e = st->b[h]; e != NULL; e = e->next)
			if (strcmp(e->key, key) == 0) {
				e->rec = *r;
				return 0;
			}
		if ((e = malloc(sizeof(*e) + kl)) == NULL)
			return -1;
		memcpy(e->key, key, kl);
		e->rec = *r;
		e->next = st->b[h];
		st->b[h] = e;
		st->n++;
		return 0;
	}
}

int
store_del(struct store *st, const char *key)
{
	if (st->lmdb) {
		MDB_txn *txn;
		MDB_val k = { strlen(key), (void *)(uintptr_t)key };
		int rc;

		if (mdb_txn_begin(st->env, NULL, 0, &txn) != 0)
			return -1;
		rc = mdb_del(txn, st->dbi, &k, NULL);
		if (rc != 0) {
			mdb_txn_abort(txn);
			return rc == MDB_NOTFOUND ? 0 : -1;
		}
		return mdb_txn_commit(txn) == 0 ? 0 : -1;
	} else {
		struct mem_ent **pp, *e;

		for (pp = &st->b[mem_hash(key)]; (e = *pp) != NULL;
		    pp = &e->next)
			if (strcmp(e->key, key) == 0) {
				*pp = e->next;
				free(e);
				st->n--;
				return 0;
			}
		return 0;
	}
}

static int
expire_key(const char *key, size_t len, const char *prefix)
{
	if (prefix == NULL)
		return !(len >= 2 && key[1] == '|');
	return len >= strlen(prefix) && memcmp(key, prefix, strlen(prefix)) == 0;
}

long
store_expire(struct store *st, double before, const char *prefix)
{
	long n = 0;

	if (st->lmdb) {
		MDB_txn *txn;
		MDB_cursor *cur;
		MDB_val k, v;
		int rc;

		if (mdb_txn_begin(st->env, NULL, 0, &txn) != 0)
			return -1;
		if (mdb_cursor_open(txn, st->dbi, &cur) != 0) {
			mdb_txn_abort(txn);
			return -1;
		}
		for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
		    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			struct frec r;

			if (v.mv_size != sizeof(r))
				continue;
			memcpy(&r, v.mv_data, sizeof(r));
			if (r.last_seen < before &&
			    expire_key(k.mv_data, k.mv_size, prefix) &&
			    mdb_cursor_del(cur, 0) == 0)
				n++;
		}
		mdb_cursor_close(cur);
		if (mdb_txn_commit(txn) != 0)
			return -1;
	} else {
		int i;

		for (i = 0; i < MEM_BUCKETS; i++) {
			struct mem_ent **pp = &st->b[i], *e;

			while ((e = *pp) != NULL) {
				if (e->rec.last_seen < before && expire_key(e->key,
				    strlen(e->key), prefix)) {
					*pp = e->next;
					free(e);
					st->n--;
					n++;
				} else {
					pp = &e->next;
				}
			}
		}
	}
	return n;
}

int
store_each(struct store *st, int (*fn)(void *, const char *,
    const struct frec *), void *arg)
{
	int r = 0;

	if (st->lmdb) {
		MDB_txn *txn;
		MDB_cursor *cur;
		MDB_val k, v;
		char key[1024];
		int rc;

		if (mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn) != 0)
			return -1;
		if (mdb_cursor_open(txn, st->dbi, &cur) != 0) {
			mdb_txn_abort(txn);
			return -1;
		}
		for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
		    rc == 0 && r == 0;
		    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			struct frec rec;

			if (v.mv_size != sizeof(rec) || k.mv_size >= sizeof(key))
				continue;
			memcpy(&rec, v.mv_data, sizeof(rec));
			memcpy(key, k.mv_data, k.mv_size);
			key[k.mv_size] = '\0';
			r = fn(arg, key, &rec);
		}
		mdb_cursor_close(cur);
		mdb_txn_abort(txn);
	} else {
		int i;

		for (i = 0; i < MEM_BUCKETS && r == 0; i++) {
			struct mem_ent *e;

			for (e = st->b[i]; e != NULL && r == 0; e = e->next)
				r = fn(arg, e->key, &e->rec);
		}
	}
	return r;
}

long
store_count(struct store *st)
{
	if (st->lmdb) {
		MDB_txn *txn;
		MDB_stat s;
		long n = -1;

		if (mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn) != 0)
			return -1;
		if (mdb_stat(txn, st->dbi, &s) == 0)
			n = (long)s.ms_entries;
		mdb_txn_abort(txn);
		return n;
	}
	return st->n;
}

void
store_sync(struct store *st)
{
	if (st != NULL && st->lmdb)
		mdb_env_sync(st->env, 1);
}

void
store_fit_key(char *key)
{
	uint64_t h1 = 14695981039346656037ULL, h2 = 0x9e3779b97f4a7c15ULL;
	const unsigned char *p;
	size_t keep = 0, i;

	if (strlen(key) <= STORE_KEY_MAX)
		return;
	for (p = (const unsigned char *)key; *p; p++) {
		h1 = (h1 ^ *p) * 1099511628211ULL;
		h2 = (h2 ^ *p) * 0xff51afd7ed558ccdULL;
		h2 ^= h2 >> 33;
	}
	/* keep the namespace and client network: they stay searchable */
	for (i = 0; i < 100 && key[i]; i++)
		if (key[i] == '|' && (i > 1 || keep == 0))
			keep = i + 1;
	snprintf(key + keep, STORE_KEY_MAX + 1 - keep, "#%016llx%016llx",
	    (unsigned long long)h1, (unsigned long long)h2);
}
