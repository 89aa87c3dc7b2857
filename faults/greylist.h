/*
 * greylist.h - greylisting with Postgrey semantics (and its peers' profiles)
 *
 * DESCRIPTION  A triplet (client network, normalised sender, recipient;
 *              plus the HELO name for spamd) is deferred when first seen,
 *              deferred again when it returns before `delay`, passed when
 *              it returns between `delay` and `retry_window`, and starts
 *              over when it returns later than that.  A passed triplet
 *              stays passed while it keeps coming within `max_age`.  A
 *              client whose triplets passed `auto_whitelist` times (counted
 *              at most once per `awl_interval`) is let through at once.
 *              State lives in the fault engine's store under "g|" (triplets)
 *              and "a|" (clients), so it survives a restart.
 * OWNERSHIP    No allocation; the caller owns every buffer.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef GREYLIST_H
#define GREYLIST_H

#include <stddef.h>
#include <sys/socket.h>

struct store;

struct greylist_conf {
	double	 delay;		/* seconds a triplet must wait */
	double	 retry_window;	/* a first retry later than this restarts */
	double	 max_age;	/* passed triplets unseen this long expire */
	long	 auto_whitelist; /* passes that whitelist a client; 0 = off */
	double	 awl_interval;	/* count at most one pass per client per ... */
	int	 host;		/* key on the exact address */
	int	 v4bits, v6bits; /* client network; 32/128 = exact address */
	int	 helo_in_key;	/* spamd: the HELO name is part of the key */
};

enum greylist_result {
	GL_NEW,		/* first seen (or after retry_window): deferred */
	GL_EARLY,	/* came back before delay: deferred */
	GL_PASSED,	/* came back after delay: passes from now on */
	GL_KNOWN,	/* passed before: passes */
	GL_WHITELISTED,	/* client auto-whitelisted: passes */
};

struct greylist_outcome {
	enum greylist_result	 result;
	double			 left;		/* seconds until it would pass */
	double			 waited;	/* passed: seconds it took */
	unsigned		 awl;		/* client's pass count */
	int			 restarted;	/* NEW because retry_window ran out */
	char			 key[512];	/* the triplet key */
};

/* Postgrey's sender normalisation: lower case, BATV prefix and
 * +extension stripped, VERP digit runs folded to '#'. */
void	 greylist_sender(const char *in, char *out, size_t len);

/*
 * Decide for one triplet at time now.  Returns 1 to defer, 0 to pass;
 * *o says why.  Updates the store.
 */
int	 greylist_check(struct store *st, const struct greylist_conf *gc,
    const struct sockaddr_storage *sa, const char *helo, const char *from,
    const char *rcpt, double now, struct greylist_outcome *o);

/* Drop triplets and clients not seen for max_age.  Returns how many. */
long	 greylist_expire(struct store *st, double max_age, double now);

const char *greylist_result_name(enum greylist_result r);

#endif
