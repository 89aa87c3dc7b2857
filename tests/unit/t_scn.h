/*
 * t_scn.h - build scenarios for the unit tests without an INI file
 *
 * DESCRIPTION  A rule is written as its name and "key=value" strings;
 *              t_scn_add() turns them into the "rule NAME:key" arrays
 *              scn_add_rule() takes, with a struct scn_src whose line()
 *              callback reports T_SCN_SECLINE for the section header and
 *              T_SCN_SECLINE + 1 + i for key i, and whose err() callback
 *              collects the messages.  List files ("@x.cidr") resolve in
 *              tests/unit/data/.
 * OWNERSHIP    The caller owns the scenario (scn_free()).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef T_SCN_H
#define T_SCN_H

#include <stddef.h>

#include "scenario.h"

#define T_SCN_FILE	"test.ini"
#define T_SCN_SECLINE	10
#define T_SCN_MAXKV	12
#define T_SCN_MAXMSG	8

struct t_rule {
	const char	*name;
	const char	*kv[T_SCN_MAXKV];	/* "key=value", NULL ends */
};

struct t_errs {
	int		 n;		/* reported; may exceed those kept */
	char		 msg[T_SCN_MAXMSG][800];
};

/* Add one rule; messages are appended to e.  Returns scn_add_rule()'s. */
int	 t_scn_add(struct scenario *s, const struct t_rule *r,
    struct t_errs *e);

/*
 * A scenario of the rules up to the first without a name (at most n).
 * NULL if one is refused; then why holds the messages.
 */
struct scenario *t_scn_build(const struct t_rule *rules, size_t n,
    char *why, size_t wl);

/* All messages in one line, for failure output (static buffer). */
const char *t_errs_join(const struct t_errs *e);

#endif
