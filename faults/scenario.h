/*
 * scenario.h - scenario rules: load and validate "[rule NAME]" sections
 *
 * DESCRIPTION  A scenario is an ordered list of rules read from INI
 *              sections "[rule NAME]" (the main configuration, then the
 *              scenario file).  Each rule has optional matchers (all must
 *              hold) and one action.  The rule language is documented in
 *              docs/scenarios.md.
 * OWNERSHIP    struct scenario owns its rules; scn_free() releases them.
 * ERRORS       Every problem is reported as "FILE:LINE: [rule NAME] key:
 *              reason" through the caller's error function.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef SCENARIO_H
#define SCENARIO_H

#include <regex.h>
#include <stddef.h>
#include <stdint.h>

#include "match.h"

enum fault_hook {
	FH_CONNECT, FH_HELO, FH_STARTTLS, FH_AUTH, FH_MAIL, FH_RCPT,
	FH_DATA, FH_DATA_END, FH_RSET, FH_QUIT,
	FH__COUNT
};
#define FH_BIT(h) (1u << (h))
#define FH_ANY ((1u << FH__COUNT) - 1)

enum fault_act {
	FA_NONE,		/* no rule matched: normal behaviour */
	FA_REPLY,		/* answer with the rule's reply */
	FA_DELAY,		/* wait, then behave normally */
	FA_HANG,		/* never answer; hold until hold_max */
	FA_CLOSE,		/* FIN, no reply */
	FA_RESET,		/* RST, no reply */
	FA_TARPIT,		/* send the reply a few bytes at a time */
	FA_ACCEPT,		/* stop evaluating; normal behaviour */
	FA_DISCARD,		/* data_end: 250, but keep nothing */
	FA_DROP_AFTER_DATA,	/* data_end: store, then close, no reply */
	FA_DISCONNECT_AFTER_BYTES, /* data: close after N body bytes */
	FA_TLS_ABORT,		/* starttls: 220, then close before any TLS */
	FA_TLS_RESET,		/* starttls: 220, RST when the ClientHello comes */
	FA_TLS_STALL,		/* starttls: 220, then never answer the hello */
	FA_TLS_FAULT,		/* starttls: handshake with a bad certificate,
				 * protocol or cipher set (tls_fault = NAME) */
	FA_GREYLIST,		/* rcpt/data_end: greylist the triplet */
	FA__COUNT
};

/* Which matchers a rule has. */
#define RM_LISTENER	0x0001
#define RM_CLIENT	0x0002
#define RM_HELO		0x0004
#define RM_FROM		0x0008
#define RM_TO		0x0010
#define RM_SIZE		0x0020
#define RM_HEADER	0x0040
#define RM_BODY		0x0080
#define RM_TLS		0x0100
#define RM_ATTEMPT	0x0200
#define RM_SINCE	0x0400
#define RM_PROB		0x0800
#define RM_TIMES	0x1000

struct fault_rule {
	char			*name;
	int			 index;		/* position in the scenario */
	int			 enabled;
	unsigned		 hooks;		/* FH_BIT()s */
	unsigned		 has;		/* RM_* */
	struct glob_list	 listener, helo, from, to;
	struct cidr_list	 client;
	uint64_t		 size_over;
	regex_t			 header, body;
	int			 tls;
	struct range		 attempt;
	struct window		 since;
	double			 prob;
	long			 times;
	long			 fired;		/* how often it fired */

	enum fault_act		 act;
	int			 code;		/* reply code, 0 = none */
	char			*ecode;		/* "4.7.1" or NULL */
	char			*text;		/* may hold \n for multi-line */
	double			 delay, jitter;
	double			 hold;		/* hang: 0 = [faults] hold_max */
	long			 tarpit_bytes;
	double			 tarpit_interval;
	uint64_t		 after_bytes;
	int			 tls_fault;	/* index in scn_tls_names */
	int			 stage_auto;	/* greylist: hook from [greylist] */

	char			*file;
	int			 line;
};

struct scenario {
	struct fault_rule	**v;
	size_t			 n;
	int			 uses_state;	/* hooks count attempts */
	int			 uses_content;	/* header/body rules */
};

/* Resolves "[rule NAME] key" to a line number for messages. */
typedef int (*scn_line_fn)(void *ctx, const char *section, const char *key);
typedef void (*scn_err_fn)(void *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

struct scn_src {
	const char	*file;
	const char	*basedir;	/* for @list files */
	scn_line_fn	 line;
	scn_err_fn	 err;
	void		*ctx;
};

struct scenario *scn_new(void);
void	 scn_free(struct scenario *s);

/*
 * Add the rule of section sec ("rule NAME") with its keys (full
 * "section:key" strings and values, n of them).  Errors go to src->err;
 * returns 0 or -1.
 */
int	 scn_add_rule(struct scenario *s, const char *sec, const char **keys,
    const char **vals, int n, const struct scn_src *src);

struct fault_rule *scn_find(struct scenario *s, const char *name);
const char *scn_hook_name(enum fault_hook h);

/*
 * TLS fault names, in the order of tlsio's enum tls_variant:
 * good, expired, not_yet_valid, wrong_host, self_signed, unknown_ca,
 * tls1, tls1_1, weak_ciphers.
 */
extern const char *const scn_tls_names[];
int	 scn_tls_index(const char *name);
const char *scn_act_name(enum fault_act a);

/* Parse "451 4.7.1 text" into code/ecode/text (malloc'd).  0 or -1. */
int	 scn_parse_reply(const char *s, int *code, char **ecode, char **text);

#endif
