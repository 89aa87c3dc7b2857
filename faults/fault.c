/*
 * fault.c - the fault engine: which action a hook point gets
 *
 * DESCRIPTION  See fault.h.  The generator is xoshiro256** seeded through
 *              splitmix64; it is drawn only when a rule that needs it is
 *              reached (probability, jitter), in rule order, so a replay
 *              with the same seed and the same client actions draws the
 *              same numbers.
 *
 * SPDX-License-Identifier: MIT
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fault.h"
#include "util.h"

struct fault_engine fault = { .v4bits = 24, .v6bits = 64, .now = util_now,
	.gl_stage = FH_RCPT };

static uint64_t
splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void
fault_seed(uint64_t seed)
{
	uint64_t x = seed;
	int i;

	fault.seed = seed;
	for (i = 0; i < 4; i++)
		fault.s[i] = splitmix64(&x);
}

static uint64_t
rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t
fault_rand(void)
{
	uint64_t *s = fault.s, r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return r;
}

double
fault_uniform(void)
{
	return (double)(fault_rand() >> 11) * 0x1.0p-53;
}

uint64_t
fault_clock_seed(void)
{
	struct timespec ts;
	uint64_t x;

	clock_gettime(CLOCK_REALTIME, &ts);
	x = (uint64_t)ts.tv_sec * 1000000007ULL ^ (uint64_t)ts.tv_nsec ^
	    ((uint64_t)getpid() << 32);
	/* keep seeds short enough to type back in */
	return splitmix64(&x) % 1000000000000ULL;
}

int
fault_init(const char *state_dir, uint64_t seed, int v4bits, int v6bits,
    char *err, size_t errlen)
{
	struct store *st = store_open(state_dir, err, errlen);

	if (st == NULL)
		return -1;
	store_close(fault.st);
	fault.st = st;
	fault.v4bits = v4bits;
	fault.v6bits = v6bits;
	fault_seed(seed);
	return 0;
}

void
fault_close(void)
{
	store_close(fault.st);
	fault.st = NULL;
}

long
fault_expire(double max_age)
{
	if (fault.st == NULL)
		return 0;
	return store_expire(fault.st, fault.now() - max_age, NULL);
}

void
fault_key(const struct sockaddr_storage *sa, const char *from,
    const char *rcpt, char *buf, size_t len)
{
	char net[64], f[300], r[300];

	addr_mask(sa, fault.v4bits, fault.v6bits, net, sizeof(net));
	util_lower(f, sizeof(f), from ? from : "");
	util_lower(r, sizeof(r), rcpt ? rcpt : "");
	snprintf(buf, len, "%s|%s|%s", net, f, r);
	if (len > STORE_KEY_MAX)
		store_fit_key(buf);
}

/* Count (bump) or read the record of key; returns it in *r. */
static void
touch(const char *key, int bump, struct frec *r)
{
	double now = fault.now();

	if (fault.st == NULL || store_get(fault.st, key, r) != 0) {
		memset(r, 0, sizeof(*r));
		r->first_seen = now;
		if (!bump) {
			r->last_seen = now;
			return;		/* a read does not create records */
		}
	}
	if (bump) {
		r->attempts++;
		r->last_seen = now;
		if (fault.st != NULL)
			store_put(fault.st, key, r);
	}
}

/*
 * The attempt number and first-seen time that rules at this hook see:
 * connect/helo/starttls/auth use the client network, mail adds the
 * sender, rcpt the recipient; later hooks take the recipients of the
 * transaction (the lowest attempt, the latest first-seen, so every
 * triplet gets its full share of faults).
 */
static void
state_of(const struct fault_ctx *c, unsigned *attempt, double *first)
{
	char key[700];
	struct frec r;
	int i, bump = 0;

	*attempt = 0;
	*first = fault.now();
	switch (c->hook) {
	case FH_CONNECT:
		bump = 1;
		/* FALLTHROUGH */
	case FH_HELO:
	case FH_STARTTLS:
	case FH_AUTH:
		fault_key(c->sa, NULL, NULL, key, sizeof(key));
		break;
	case FH_MAIL:
		fault_key(c->sa, c->from, NULL, key, sizeof(key));
		bump = 1;
		break;
	case FH_RCPT:
		fault_key(c->sa, c->from, c->rcpt, key, sizeof(key));
		bump = 1;
		break;
	default:
		if (c->nrcpt > 0) {
			for (i = 0; i < c->nrcpt; i++) {
				fault_key(c->sa, c->from, c->rcpts[i], key,
				    sizeof(key));
				touch(key, 0, &r);
				if (i == 0 || r.attempts < *attempt)
					*attempt = r.attempts;
				if (i == 0 || r.first_seen > *first)
					*first = r.first_seen;
			}
			return;
		}
		fault_key(c->sa, c->from, NULL, key, sizeof(key));
		break;
	}
	touch(key, bump, &r);
	*attempt = r.attempts;
	*first = r.first_seen;
}

static int
rcpts_match(const struct glob_list *g, const struct fault_ctx *c)
{
	int i;

	if (c->hook == FH_RCPT)
		return c->rcpt != NULL && glob_list_match(g, c->rcpt);
	for (i = 0; i < c->nrcpt; i++)
		if (glob_list_match(g, c->rcpts[i]))
			return 1;
	return 0;
}

/* Every matcher but probability; those need no random draw. */
static int
rule_matches(const struct fault_rule *r, const struct fault_ctx *c,
    unsigned attempt, double age)
{
	if (!r->enabled || !(r->hooks & FH_BIT(c->hook)))
		return 0;
	if (r->stage_auto && c->hook != fault.gl_stage)
		return 0;
	if ((r->has & RM_TIMES) && r->fired >= r->times)
		return 0;
	if ((r->has & RM_LISTENER) && !glob_list_match(&r->listener,
	    c->listener ? c->listener : ""))
		return 0;
	if ((r->has & RM_CLIENT) && !cidr_list_match(&r->client, c->sa))
		return 0;
	if ((r->has & RM_HELO) && (c->helo == NULL ||
	    !glob_list_match(&r->helo, c->helo)))
		return 0;
	if ((r->has & RM_FROM) && (c->from == NULL ||
	    !glob_list_match(&r->from, c->from)))
		return 0;
	if ((r->has & RM_TO) && !rcpts_match(&r->to, c))
		return 0;
	if ((r->has & RM_SIZE) && c->size <= r->size_over)
		return 0;
	if ((r->has & RM_TLS) && r->tls != c->tls)
		return 0;
	if ((r->has & (RM_HEADER | RM_BODY)) && (c->hits == NULL ||
	    (size_t)r->index >= c->nhits ||
	    ((r->has & RM_HEADER) && !(c->hits[r->index] & 1)) ||
	    ((r->has & RM_BODY) && !(c->hits[r->index] & 2))))
		return 0;
	if ((r->has & RM_ATTEMPT) && !range_match(&r->attempt, attempt))
		return 0;
	if ((r->has & RM_SINCE) && !window_match(&r->since, age))
		return 0;
	return 1;
}

int
fault_eval(struct scenario *scn, const struct fault_ctx *ctx,
    struct fault_decision *d)
{
	double first, age;
	size_t i;

	memset(d, 0, sizeof(*d));
	d->act = FA_NONE;
	if (scn == NULL || scn->n == 0)
		return 0;
	if (scn->uses_state) {
		state_of(ctx, &d->attempt, &first);
		age = fault.now() - first;
	} else {
		age = 0;
	}
	for (i = 0; i < scn->n; i++) {
		struct fault_rule *r = scn->v[i];

		if (!rule_matches(r, ctx, d->attempt, age))
			continue;
		if ((r->has & RM_PROB) && !(fault_uniform() < r->prob))
			continue;
		r->fired++;
		d->rule = r;
		d->act = r->act;
		d->delay = r->delay;
		if (r->jitter > 0)
			d->delay += r->jitter * (2 * fault_uniform() - 1);
		if (d->delay < 0)
			d->delay = 0;
		if (r->has & RM_SINCE) {
			d->left = r->since.hi - age;
			if (d->left < 0 || d->left > 1e17)
				d->left = 0;
		}
		return 1;
	}
	return 0;
}

void
fault_reply_text(const struct fault_rule *r, const struct fault_ctx *ctx,
    const struct fault_decision *d, char *buf, size_t len)
{
	const char *p = r->text ? r->text : "";
	size_t o = 0;

	if (len == 0)
		return;
	while (*p && o + 1 < len) {
		const char *ins = NULL;
		char num[32];

		if (*p != '%' || p[1] == '\0') {
			buf[o++] = *p++;
			continue;
		}
		switch (p[1]) {
		case 'c': ins = ctx->client; break;
		case 'h': ins = ctx->helo; break;
		case 'f': ins = ctx->from; break;
		case 'r': ins = ctx->rcpt ? ctx->rcpt :
		    ctx->nrcpt > 0 ? ctx->rcpts[0] : NULL; break;
		case 'H': ins = ctx->hostname; break;
		case 'D':
			ins = ctx->rcpt ? ctx->rcpt : ctx->nrcpt > 0 ?
			    ctx->rcpts[0] : NULL;
			if (ins != NULL && strrchr(ins, '@') != NULL)
				ins = strrchr(ins, '@') + 1;
			break;
		case 's':
			snprintf(num, sizeof(num), "%.0f", d->left + 0.499);
			ins = num;
			break;
		case 'a':
			snprintf(num, sizeof(num), "%u", d->attempt);
			ins = num;
			break;
		case '%': ins = "%"; break;
		default:
			buf[o++] = *p++;
			continue;
		}
		p += 2;
		for (ins = ins ? ins : ""; *ins && o + 1 < len; ins++)
			buf[o++] = (unsigned char)*ins < 0x20 ? '?' : *ins;
	}
	buf[o] = '\0';
}

void
fault_scan_line(const struct scenario *scn, unsigned char *hits,
    const char *line, int in_headers)
{
	size_t i;

	for (i = 0; i < scn->n; i++) {
		const struct fault_rule *r = scn->v[i];

		if (in_headers && (r->has & RM_HEADER) && !(hits[i] & 1) &&
		    regexec(&r->header, line, 0, NULL, 0) == 0)
			hits[i] |= 1;
		if (!in_headers && (r->has & RM_BODY) && !(hits[i] & 2) &&
		    regexec(&r->body, line, 0, NULL, 0) == 0)
			hits[i] |= 2;
	}
}
