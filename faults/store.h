/*
 * store.h - persistent fault state: attempt counters and first-seen times
 *
 * DESCRIPTION  A small key/value interface (get, put, del, expire, each)
 *              keyed like Postgrey, "client-net|sender|recipient", so the
 *              embedded backends can later be joined by a shared one
 *              (Redis, say) without touching the engine.  Two backends:
 *              in memory (no state_dir), and LMDB in a directory, which
 *              survives a restart and a kill -9 (writes reach the page
 *              cache at commit; the file is synced on a timer and at exit).
 * OWNERSHIP    The store copies keys and records; nothing returned points
 *              into it.
 * ERRORS       -1 with a message in err (open) or on stderr (run time).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef STORE_H
#define STORE_H

#include <stddef.h>
#include <stdint.h>

struct frec {
	double		 first_seen;	/* wall clock, seconds */
	double		 last_seen;
	uint32_t	 attempts;	/* hook evaluations counted */
	uint32_t	 passes;	/* accepted deliveries (greylist AWL) */
	double		 passed_at;	/* greylist: when it first passed */
	uint32_t	 flags;
	uint32_t	 spare;
};

struct store;

struct store *store_open(const char *dir, char *err, size_t errlen);
void	 store_close(struct store *st);
/* 0 found, 1 not found, -1 error */
int	 store_get(struct store *st, const char *key, struct frec *out);
int	 store_put(struct store *st, const char *key, const struct frec *r);
int	 store_del(struct store *st, const char *key);
/*
 * Delete records with last_seen < before; returns how many.  With prefix
 * NULL only plain keys are looked at: keys "X|..." (one character, then
 * '|') are namespaces their owners expire by prefix ("g|" greylist).
 */
long	 store_expire(struct store *st, double before, const char *prefix);
/* Call fn for each record until it returns non-zero. */
int	 store_each(struct store *st, int (*fn)(void *, const char *,
    const struct frec *), void *arg);
long	 store_count(struct store *st);

/*
 * LMDB keys stop at 511 bytes and RFC 5321 allows 254-byte addresses, so
 * a key longer than STORE_KEY_MAX keeps its head up to and including the
 * last '|' before that limit that ends a short field (namespace, client
 * network) and replaces the rest with '#' and a 128-bit digest of the
 * whole key.  key must hold at least STORE_KEY_MAX + 1 bytes.
 */
#define STORE_KEY_MAX 400
void	 store_fit_key(char *key);
void	 store_sync(struct store *st);
const char *store_kind(const struct store *st);

#endif
