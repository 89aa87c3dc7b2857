/*
 * cmd.h - SMTP command line parser and command table (no I/O)
 *
 * DESCRIPTION  Splits a command line into verb and argument, says in which
 *              session states a verb is legal, and parses MAIL/RCPT paths
 *              with their ESMTP parameters (RFC 5321, 1870, 6152, 6531,
 *              3461) and BDAT arguments (RFC 3030).
 * OWNERSHIP    Parsers work in place on the caller's line: returned
 *              strings point into it and live as long as the line does.
 * ERRORS       A parse failure fills struct cmd_err with the reply the
 *              session must send; nothing is allocated.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef CMD_H
#define CMD_H

#include <stddef.h>
#include <stdint.h>

enum cmd_id {
	CMD_UNKNOWN = 0,
	CMD_HELO, CMD_EHLO, CMD_MAIL, CMD_RCPT, CMD_DATA, CMD_BDAT,
	CMD_RSET, CMD_NOOP, CMD_QUIT, CMD_VRFY, CMD_EXPN, CMD_HELP,
	CMD_STARTTLS, CMD_AUTH, CMD_XCLIENT, CMD_NOTIMPL,
	CMD__COUNT
};

/* Session states, shared with session.c so the table can name them. */
enum sess_state {
	SS_GREETING,	/* connected, banner not yet sent */
	SS_INIT,	/* banner sent, no HELO/EHLO */
	SS_READY,	/* HELO/EHLO seen, no transaction */
	SS_MAIL,	/* MAIL accepted */
	SS_RCPT,	/* at least one RCPT accepted */
	SS_DATA,	/* reading a DATA body */
	SS_BDAT,	/* inside a BDAT sequence (between chunks) */
	SS_TLS,		/* TLS handshake in progress */
	SS_CLOSING,
	SS__COUNT
};
#define SS_BIT(s) (1u << (s))

struct cmd_def {
	const char	*name;
	enum cmd_id	 id;
	unsigned	 states;	/* SS_BIT()s where legal */
};

/*
 * Look the verb of line up (case-insensitive; the verb ends at the first
 * space or the end).  Returns the table entry (CMD_UNKNOWN for unknown
 * verbs, never NULL); *arg points past the single space after the verb,
 * or at the terminating NUL.
 */
const struct cmd_def *cmd_lookup(char *line, char **arg);
const char *cmd_name(enum cmd_id id);
const char *cmd_state_name(enum sess_state st);

struct cmd_err {
	int		 code;		/* 501, 553, 555, 552 ... */
	const char	*ecode;		/* "5.5.4" */
	const char	*text;
};

enum cmd_body { CMD_BODY_NONE, CMD_BODY_7BIT, CMD_BODY_8BITMIME,
	CMD_BODY_BINARYMIME };

struct cmd_path {
	char		*addr;		/* without <>; "" for the null path */
	int		 utf8;		/* addr has bytes >= 0x80 */
	/* MAIL parameters */
	int		 has_size;
	uint64_t	 size;
	enum cmd_body	 body;
	int		 smtputf8;
	const char	*ret;		/* "FULL" / "HDRS" or NULL */
	const char	*envid;
	/* RCPT parameters */
	const char	*notify;
	const char	*orcpt;
};

/* Which ESMTP extensions the session advertised; parameters of others
 * are refused with 555. */
#define CMD_EXT_SIZE		0x01
#define CMD_EXT_8BITMIME	0x02
#define CMD_EXT_SMTPUTF8	0x04
#define CMD_EXT_DSN		0x08
#define CMD_EXT_CHUNKING	0x10

/*
 * Parse "FROM:<path> params" (MAIL) or "TO:<path> params" (RCPT).  The
 * argument is modified in place.  A space after the colon is tolerated,
 * as Postfix does.  Returns 0, or -1 with *e filled.
 */
int cmd_parse_mail(char *arg, unsigned exts, struct cmd_path *p,
    struct cmd_err *e);
int cmd_parse_rcpt(char *arg, unsigned exts, struct cmd_path *p,
    struct cmd_err *e);

/* Parse "size [LAST]" of BDAT.  Returns 0, or -1 with *e filled. */
int cmd_parse_bdat(const char *arg, uint64_t *size, int *last,
    struct cmd_err *e);

/* Parse a HELO/EHLO argument: one token, no spaces.  0 or -1. */
int cmd_parse_helo(char *arg, char **name, struct cmd_err *e);

#endif
