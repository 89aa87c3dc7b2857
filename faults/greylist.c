/*
 * greylist.c - greylisting with Postgrey semantics (and its peers' profiles)
 *
 * DESCRIPTION  See greylist.h.  The sender normalisation follows Postgrey's
 *              do_sender_substitutions(): BATV "prvs=TAG=" (and the
 *              msprvs1/btv1 variants) removed, "+extension" removed, every
 *              digit run that stands alone between non-word characters
 *              replaced by '#', so VERP bounce addresses of one list share
 *              one triplet.
 *
 * SPDX-License-Identifier: MIT
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "greylist.h"
#include "match.h"
#include "store.h"
#include "util.h"

#define AWL_FLAG_PASSED 1

static const char *const result_names[] = {
	[GL_NEW] = "new", [GL_EARLY] = "early_retry", [GL_PASSED] = "passed",
	[GL_KNOWN] = "known", [GL_WHITELISTED] = "whitelisted",
};

const char *
greylist_result_name(enum greylist_result r)
{
	return r <= GL_WHITELISTED ? result_names[r] : "?";
}

static int
wordc(int c)
{
	return isalnum(c) || c == '_';
}

void
greylist_sender(const char *in, char *out, size_t len)
{
	static const char *const batv[] = { "prvs=", "msprvs1=", "btv1=" };
	char user[320], *at, *eq;
	const char *domain = "";
	size_t i, o = 0, n;

	if (len == 0)
		return;
	snprintf(user, sizeof(user), "%s", in);
	for (i = 0; user[i]; i++)
		user[i] = (char)tolower((unsigned char)user[i]);
	if ((at = strrchr(user, '@')) == NULL) {
		/* Postgrey leaves an address without a domain alone */
		snprintf(out, len, "%s", user);
		return;
	}
	*at = '\0';
	domain = at + 1;
	if (strncmp(user, "btv1==", 6) == 0 &&
	    (eq = strstr(user + 6, "==")) != NULL)
		memmove(user, eq + 2, strlen(eq + 2) + 1);	/* Barracuda */
	for (i = 0; i < sizeof(batv) / sizeof(batv[0]); i++) {
		n = strlen(batv[i]);
		if (strncmp(user, batv[i], n) == 0 &&
		    (eq = strchr(user + n, '=')) != NULL) {
			memmove(user, eq + 1, strlen(eq + 1) + 1);
			break;
		}
	}
	if ((eq = strchr(user, '+')) != NULL)
		*eq = '\0';
	for (i = 0; user[i] && o + 1 < len;) {
		if (isdigit((unsigned char)user[i]) &&
		    (i == 0 || !wordc((unsigned char)user[i - 1]))) {
			size_t j = i;

			while (isdigit((unsigned char)user[j]))
				j++;
			if (!wordc((unsigned char)user[j])) {
				out[o++] = '#';
				i = j;
				continue;
			}
		}
		out[o++] = user[i++];
	}
	if (o + 1 < len) {
		out[o++] = '@';
		for (i = 0; domain[i] && o + 1 < len; i++)
			out[o++] = domain[i];
	}
	out[o] = '\0';
}

/* Count one pass of the client toward the auto-whitelist. */
static unsigned
awl_count(struct store *st, const struct greylist_conf *gc, const char *net,
    double now, int count_it)
{
	char key[96];
	struct frec r;

	snprintf(key, sizeof(key), "a|%s", net);
	if (store_get(st, key, &r) != 0) {
		memset(&r, 0, sizeof(r));
		r.first_seen = now;
		if (!count_it)
			return 0;
	}
	if (count_it && (r.passes == 0 ||
	    now - r.passed_at >= gc->awl_interval)) {
		r.passes++;
		r.passed_at = now;
	}
	r.last_seen = now;
	if (count_it || r.passes > 0)
		store_put(st, key, &r);
	return r.passes;
}

int
greylist_check(struct store *st, const struct greylist_conf *gc,
    const struct sockaddr_storage *sa, const char *helo, const char *from,
    const char *rcpt, double now, struct greylist_outcome *o)
{
	char net[64], snd[320], rc[320], h[256], key[1024];
	struct frec r;
	unsigned awl;

	memset(o, 0, sizeof(*o));
	addr_mask(sa, gc->host ? 32 : gc->v4bits, gc->host ? 128 : gc->v6bits,
	    net, sizeof(net));
	greylist_sender(from ? from : "", snd, sizeof(snd));
	util_lower(rc, sizeof(rc), rcpt ? rcpt : "");
	util_lower(h, sizeof(h), gc->helo_in_key && helo ? helo : "");
	/* build it whole, so the digest of a long key sees every byte */
	snprintf(key, sizeof(key), "g|%s|%s|%s%s%s", net, snd, rc,
	    gc->helo_in_key ? "|" : "", h);
	store_fit_key(key);		/* now at most STORE_KEY_MAX */
	memcpy(o->key, key, strlen(key) + 1);
	if (gc->auto_whitelist > 0) {
		awl = awl_count(st, gc, net, now, 0);
		o->awl = awl;
		if (awl >= (unsigned)gc->auto_whitelist) {
			o->result = GL_WHITELISTED;
			awl_count(st, gc, net, now, 1);
			return 0;
		}
	}
	if (store_get(st, o->key, &r) != 0) {
		memset(&r, 0, sizeof(r));
		r.first_seen = now;
		o->result = GL_NEW;
	} else if (r.flags & AWL_FLAG_PASSED) {
		o->result = GL_KNOWN;
	} else if (now - r.first_seen > gc->retry_window) {
		/* too late for the first retry: Postgrey starts over */
		r.first_seen = now;
		r.attempts = 0;
		o->result = GL_NEW;
		o->restarted = 1;
	} else if (now - r.first_seen < gc->delay) {
		o->result = GL_EARLY;
	} else {
		o->result = GL_PASSED;
		o->waited = now - r.first_seen;
		r.flags |= AWL_FLAG_PASSED;
		r.passed_at = now;
	}
	r.attempts++;
	r.last_seen = now;
	store_put(st, o->key, &r);
	if (o->result == GL_NEW || o->result == GL_EARLY) {
		o->left = gc->delay - (now - r.first_seen);
		if (o->left < 0)
			o->left = 0;
		return 1;
	}
	if (gc->auto_whitelist > 0)
		o->awl = awl_count(st, gc, net, now, 1);
	return 0;
}

long
greylist_expire(struct store *st, double max_age, double now)
{
	long n = store_expire(st, now - max_age, "g|");

	return n + store_expire(st, now - max_age, "a|");
}
