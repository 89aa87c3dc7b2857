/*
 * fault.h - the fault engine: which action a hook point gets
 *
 * DESCRIPTION  The session describes where it is (struct fault_ctx) and
 *              asks fault_eval(); the engine walks the scenario's rules in
 *              order, first match wins, and returns the decision.  It
 *              keeps per-triplet state (attempt counters, first-seen times)
 *              in the store and draws every random number from one seeded
 *              generator, so the same seed and the same client actions give
 *              the same faults.  No sockets, no libev.
 * OWNERSHIP    One global engine (fault); the scenario is owned by the
 *              active configuration and passed in.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef FAULT_H
#define FAULT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "scenario.h"
#include "store.h"

struct fault_engine {
	struct store	*st;
	uint64_t	 seed;
	uint64_t	 s[4];		/* xoshiro256** state */
	int		 v4bits, v6bits;	/* triplet network masks */
	double		 (*now)(void);	/* wall clock; tests inject one */
	enum fault_hook	 gl_stage;	/* greylist rules with no hook */
};

extern struct fault_engine fault;

struct fault_ctx {
	enum fault_hook		 hook;
	const struct sockaddr_storage *sa;
	const char		*client;	/* address text */
	const char		*listener;	/* listener name */
	const char		*hostname;	/* ours, for %H */
	const char		*helo;
	const char		*from;		/* NULL before MAIL */
	const char		*rcpt;		/* at rcpt: this recipient */
	char *const		*rcpts;		/* accepted recipients */
	int			 nrcpt;
	uint64_t		 size;		/* SIZE= or actual at data_end */
	int			 tls;
	const unsigned char	*hits;		/* data_end: per-rule matches */
	size_t			 nhits;
};

struct fault_decision {
	struct fault_rule	*rule;		/* NULL: no rule matched */
	enum fault_act		 act;
	unsigned		 attempt;	/* of this triplet (0: untracked) */
	double			 delay;		/* with jitter applied */
	double			 left;		/* seconds left in a window */
};

/* Start the engine: state in dir (NULL: memory), generator from seed. */
int	 fault_init(const char *state_dir, uint64_t seed, int v4bits,
    int v6bits, char *err, size_t errlen);
void	 fault_close(void);
void	 fault_seed(uint64_t seed);
uint64_t fault_rand(void);
double	 fault_uniform(void);		/* [0, 1) */
/* A seed from the clock and pid, for runs without --seed. */
uint64_t fault_clock_seed(void);

/*
 * Evaluate the hook.  Counts an attempt of the key the hook knows
 * (connect: client net; mail: + sender; rcpt: + recipient) when the
 * scenario uses state.  Returns 1 with *d filled when a rule matched,
 * else 0 (d->act = FA_NONE, d->attempt still set).
 */
int	 fault_eval(struct scenario *scn, const struct fault_ctx *ctx,
    struct fault_decision *d);

/* Expand %c %h %f %r %D %s %a %H %% in the rule's reply text into buf. */
void	 fault_reply_text(const struct fault_rule *r,
    const struct fault_ctx *ctx, const struct fault_decision *d, char *buf,
    size_t len);

/* Record header/body pattern hits of one message line (no CRLF). */
void	 fault_scan_line(const struct scenario *scn, unsigned char *hits,
    const char *line, int in_headers);

/* Drop state records not seen for max_age seconds; returns how many. */
long	 fault_expire(double max_age);

/* Triplet key "net|sender|recipient" (lower-cased) into buf. */
void	 fault_key(const struct sockaddr_storage *sa, const char *from,
    const char *rcpt, char *buf, size_t len);

#endif
