/*
 * cmd.c - SMTP command line parser and command table (no I/O)
 *
 * DESCRIPTION  See cmd.h.  The table is the single place that says where a
 *              command is legal; the session answers 503 from it.
 *
 * SPDX-License-Identifier: MIT
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "cmd.h"
#include "util.h"

#define ANY_STATE (SS_BIT(SS_INIT) | SS_BIT(SS_READY) | SS_BIT(SS_MAIL) | \
    SS_BIT(SS_RCPT) | SS_BIT(SS_BDAT))
#define SESSION (SS_BIT(SS_READY) | SS_BIT(SS_MAIL) | SS_BIT(SS_RCPT))

static const struct cmd_def cmd_table[] = {
	{ "HELO",	CMD_HELO,	ANY_STATE & ~SS_BIT(SS_BDAT) },
	{ "EHLO",	CMD_EHLO,	ANY_STATE & ~SS_BIT(SS_BDAT) },
	{ "MAIL",	CMD_MAIL,	SS_BIT(SS_READY) },
	{ "RCPT",	CMD_RCPT,	SS_BIT(SS_MAIL) | SS_BIT(SS_RCPT) },
	{ "DATA",	CMD_DATA,	SS_BIT(SS_RCPT) },
	/* BDAT is legal everywhere: a refused BDAT must still have its
	 * chunk read, so the handler checks the state itself. */
	{ "BDAT",	CMD_BDAT,	ANY_STATE },
	{ "RSET",	CMD_RSET,	ANY_STATE },
	{ "NOOP",	CMD_NOOP,	ANY_STATE },
	{ "QUIT",	CMD_QUIT,	ANY_STATE },
	{ "VRFY",	CMD_VRFY,	ANY_STATE & ~SS_BIT(SS_BDAT) },
	{ "EXPN",	CMD_EXPN,	ANY_STATE },
	{ "HELP",	CMD_HELP,	ANY_STATE },
	{ "STARTTLS",	CMD_STARTTLS,	SS_BIT(SS_INIT) | SS_BIT(SS_READY) },
	{ "AUTH",	CMD_AUTH,	ANY_STATE },
	{ "TURN",	CMD_NOTIMPL,	ANY_STATE },
	{ "ETRN",	CMD_NOTIMPL,	ANY_STATE },
	{ "ATRN",	CMD_NOTIMPL,	ANY_STATE },
	{ "SEND",	CMD_NOTIMPL,	ANY_STATE },
	{ "SOML",	CMD_NOTIMPL,	ANY_STATE },
	{ "SAML",	CMD_NOTIMPL,	ANY_STATE },
	{ "XCLIENT",	CMD_XCLIENT,	SS_BIT(SS_INIT) | SS_BIT(SS_READY) },
	{ "XFORWARD",	CMD_NOTIMPL,	ANY_STATE },
};

static const struct cmd_def cmd_unknown = { "?", CMD_UNKNOWN, ANY_STATE };

static const char *const state_names[SS__COUNT] = {
	[SS_GREETING] = "GREETING", [SS_INIT] = "INIT", [SS_READY] = "READY",
	[SS_MAIL] = "MAIL", [SS_RCPT] = "RCPT", [SS_DATA] = "DATA",
	[SS_BDAT] = "BDAT", [SS_TLS] = "TLS", [SS_CLOSING] = "CLOSING",
};

const struct cmd_def *
cmd_lookup(char *line, char **arg)
{
	size_t i, n;
	char *sp;

	sp = strchr(line, ' ');
	n = sp ? (size_t)(sp - line) : strlen(line);
	*arg = sp ? sp + 1 : line + n;
	for (i = 0; i < NELEM(cmd_table); i++) {
		if (strlen(cmd_table[i].name) == n &&
		    strncasecmp(cmd_table[i].name, line, n) == 0)
			return &cmd_table[i];
	}
	return &cmd_unknown;
}

const char *
cmd_name(enum cmd_id id)
{
	size_t i;

	for (i = 0; i < NELEM(cmd_table); i++)
		if (cmd_table[i].id == id)
			return cmd_table[i].name;
	return "?";
}

const char *
cmd_state_name(enum sess_state st)
{
	return st < SS__COUNT ? state_names[st] : "?";
}

static int
fail(struct cmd_err *e, int code, const char *ecode, const char *text)
{
	e->code = code;
	e->ecode = ecode;
	e->text = text;
	return -1;
}

/* RFC 5321 atext plus the 8-bit bytes RFC 6531 allows. */
static int
is_atext(unsigned char c)
{
	return isalnum(c) || c >= 0x80 || strchr("!#$%&'*+-/=?^_`{|}~", c);
}

/*
 * Parse "<...>" at *pp; on success addr is NUL-terminated in place
 * (brackets and any source route removed) and *pp points past '>'.
 */
static int
parse_path(char **pp, struct cmd_path *p)
{
	char *s = *pp, *q, *dst;

	if (*s != '<')
		return -1;
	s++;
	if (*s == '>') {		/* null path */
		*s = '\0';
		p->addr = s;
		*pp = s + 1;
		return 0;
	}
	if (*s == '@') {		/* source route: skip to ':' */
		while (*s != '\0' && *s != ':' && *s != '>' && *s != ' ')
			s++;
		if (*s != ':')
			return -1;
		s++;
	}
	q = dst = s;
	if (*q == '"') {		/* quoted local part, kept quoted */
		*dst++ = *q++;
		while (*q != '"') {
			if (*q == '\0' || (unsigned char)*q < 0x20)
				return -1;
			if (*q == '\\') {
				if (q[1] == '\0')
					return -1;
				*dst++ = *q++;
			}
			*dst++ = *q++;
		}
		*dst++ = *q++;
	} else {
		while (is_atext((unsigned char)*q) || *q == '.')
			*dst++ = *q++;
		if (dst == s)
			return -1;
	}
	if (*q == '@') {
		*dst++ = *q++;
		if (*q == '[') {
			while (*q != ']' && *q != '\0' && *q != '>')
				*dst++ = *q++;
			if (*q != ']')
				return -1;
			*dst++ = *q++;
		} else {
			char *d0 = q;

			while (isalnum((unsigned char)*q) || *q == '-' ||
			    *q == '.' || (unsigned char)*q >= 0x80)
				*dst++ = *q++;
			if (q == d0)
				return -1;
		}
	}
	if (*q != '>')
		return -1;
	*dst = '\0';
	p->addr = s;
	*pp = q + 1;
	for (q = s; *q; q++)
		if ((unsigned char)*q >= 0x80)
			p->utf8 = 1;
	return 0;
}

/* xtext (RFC 3461 4): printable ASCII except '+' and '=' unless "+XX". */
static int
is_xtext(const char *s)
{
	for (; *s; s++) {
		if (*s == '+') {
			if (!isxdigit((unsigned char)s[1]) ||
			    !isxdigit((unsigned char)s[2]))
				return 0;
			s += 2;
		} else if (*s < '!' || *s > '~' || *s == '=') {
			return 0;
		}
	}
	return 1;
}

static int
parse_size_param(const char *v, uint64_t *out)
{
	uint64_t x = 0;

	if (v == NULL || *v == '\0' || strlen(v) > 20)
		return -1;
	for (; *v; v++) {
		uint64_t d = (uint64_t)(*v - '0');

		if (!isdigit((unsigned char)*v))
			return -1;
		if (x > (UINT64_MAX - d) / 10)
			return -1;
		x = x * 10 + d;
	}
	*out = x;
	return 0;
}

static int
mail_param(char *key, char *val, unsigned exts, struct cmd_path *p,
    unsigned *seen, struct cmd_err *e)
{
	static const char *const names[] = { "SIZE", "BODY", "SMTPUTF8",
	    "RET", "ENVID" };
	size_t i;

	for (i = 0; i < NELEM(names); i++)
		if (strcasecmp(key, names[i]) == 0)
			break;
	if (i == NELEM(names) ||
	    (i == 0 && !(exts & CMD_EXT_SIZE)) ||
	    (i == 1 && !(exts & CMD_EXT_8BITMIME)) ||
	    (i == 2 && !(exts & CMD_EXT_SMTPUTF8)) ||
	    (i >= 3 && !(exts & CMD_EXT_DSN)))
		return fail(e, 555, "5.5.4", "Unsupported parameter");
	if (*seen & (1u << i))
		return fail(e, 501, "5.5.4", "Duplicate parameter");
	*seen |= 1u << i;
	switch (i) {
	case 0:
		if (parse_size_param(val, &p->size) == -1)
			return fail(e, 501, "5.5.4", "Bad SIZE parameter");
		p->has_size = 1;
		break;
	case 1:
		if (val && strcasecmp(val, "7BIT") == 0)
			p->body = CMD_BODY_7BIT;
		else if (val && strcasecmp(val, "8BITMIME") == 0)
			p->body = CMD_BODY_8BITMIME;
		else
			return fail(e, 501, "5.5.4", "Bad BODY parameter");
		break;
	case 2:
		if (val != NULL)
			return fail(e, 501, "5.5.4", "SMTPUTF8 takes no value");
		p->smtputf8 = 1;
		break;
	case 3:
		if (val && (strcasecmp(val, "FULL") == 0 ||
		    strcasecmp(val, "HDRS") == 0))
			p->ret = val;
		else
			return fail(e, 501, "5.5.4", "Bad RET parameter");
		break;
	case 4:
		if (val == NULL || *val == '\0' || strlen(val) > 100 ||
		    !is_xtext(val))
			return fail(e, 501, "5.5.4", "Bad ENVID parameter");
		p->envid = val;
		break;
	}
	return 0;
}

static int
notify_ok(const char *v)
{
	char buf[64], *tok, *save = NULL;
	int never = 0, other = 0;

	if (v == NULL || strlen(v) >= sizeof(buf) || *v == '\0')
		return 0;
	strcpy(buf, v);
	for (tok = strtok_r(buf, ",", &save); tok;
	    tok = strtok_r(NULL, ",", &save)) {
		if (strcasecmp(tok, "NEVER") == 0)
			never++;
		else if (strcasecmp(tok, "SUCCESS") == 0 ||
		    strcasecmp(tok, "FAILURE") == 0 ||
		    strcasecmp(tok, "DELAY") == 0)
			other++;
		else
			return 0;
	}
	return (never == 1 && other == 0) || (never == 0 && other > 0);
}

static int
rcpt_param(char *key, char *val, unsigned exts, struct cmd_path *p,
    unsigned *seen, struct cmd_err *e)
{
	int i;

	if (strcasecmp(key, "NOTIFY") == 0)
		i = 0;
	else if (strcasecmp(key, "ORCPT") == 0)
		i = 1;
	else
		return fail(e, 555, "5.5.4", "Unsupported parameter");
	if (!(exts & CMD_EXT_DSN))
		return fail(e, 555, "5.5.4", "Unsupported parameter");
	if (*seen & (1u << i))
		return fail(e, 501, "5.5.4", "Duplicate parameter");
	*seen |= 1u << i;
	if (i == 0) {
		if (!notify_ok(val))
			return fail(e, 501, "5.5.4", "Bad NOTIFY parameter");
		p->notify = val;
	} else {
		char *semi = val ? strchr(val, ';') : NULL;

		if (semi == NULL || semi == val || semi[1] == '\0' ||
		    strlen(val) > 500 || !is_xtext(semi + 1))
			return fail(e, 501, "5.5.4", "Bad ORCPT parameter");
		p->orcpt = val;
	}
	return 0;
}

/* Walk "KEY[=VALUE] KEY[=VALUE]..." after the path (split in place). */
static int
parse_params(char *s, int is_mail, unsigned exts, struct cmd_path *p,
    struct cmd_err *e)
{
	unsigned seen = 0;

	if (*s != '\0' && *s != ' ')
		return fail(e, 501, "5.5.4", "Syntax error in parameters");
	for (;;) {
		char *key, *val = NULL, *end;
		int r;

		while (*s == ' ')
			s++;
		if (*s == '\0')
			return 0;
		key = s;
		for (end = s; *end != '\0' && *end != ' '; end++)
			if (*end == '=' && val == NULL) {
				*end = '\0';
				val = end + 1;
			}
		s = end;
		if (*s == ' ')
			*s++ = '\0';
		r = is_mail ? mail_param(key, val, exts, p, &seen, e) :
		    rcpt_param(key, val, exts, p, &seen, e);
		if (r == -1)
			return -1;
	}
}

static int
parse_cmd_path(char *arg, const char *prefix, int is_mail, unsigned exts,
    struct cmd_path *p, struct cmd_err *e)
{
	size_t n = strlen(prefix);
	char *s;

	memset(p, 0, sizeof(*p));
	if (strncasecmp(arg, prefix, n) != 0)
		return fail(e, 501, "5.5.4", is_mail ?
		    "Syntax: MAIL FROM:<address>" : "Syntax: RCPT TO:<address>");
	s = arg + n;
	while (*s == ' ')
		s++;
	if (parse_path(&s, p) == -1)
		return fail(e, 501, is_mail ? "5.1.7" : "5.1.3", is_mail ?
		    "Bad sender address syntax" :
		    "Bad recipient address syntax");
	if (!is_mail && p->addr[0] == '\0')
		return fail(e, 501, "5.1.3", "Bad recipient address syntax");
	if (parse_params(s, is_mail, exts, p, e) == -1)
		return -1;
	return 0;
}

int
cmd_parse_mail(char *arg, unsigned exts, struct cmd_path *p,
    struct cmd_err *e)
{
	return parse_cmd_path(arg, "FROM:", 1, exts, p, e);
}

int
cmd_parse_rcpt(char *arg, unsigned exts, struct cmd_path *p,
    struct cmd_err *e)
{
	return parse_cmd_path(arg, "TO:", 0, exts, p, e);
}

int
cmd_parse_bdat(const char *arg, uint64_t *size, int *last,
    struct cmd_err *e)
{
	const char *p = arg;
	uint64_t x = 0;

	if (!isdigit((unsigned char)*p))
		return fail(e, 501, "5.5.4", "Syntax: BDAT size [LAST]");
	for (; isdigit((unsigned char)*p); p++) {
		uint64_t d = (uint64_t)(*p - '0');

		if (x > (UINT64_MAX - d) / 10)
			return fail(e, 501, "5.5.4", "Chunk size too large");
		x = x * 10 + d;
	}
	*last = 0;
	if (*p == ' ') {
		while (*p == ' ')
			p++;
		if (strcasecmp(p, "LAST") == 0) {
			*last = 1;
			p += 4;
		} else if (*p != '\0') {
			return fail(e, 501, "5.5.4", "Syntax: BDAT size [LAST]");
		}
	}
	if (*p != '\0')
		return fail(e, 501, "5.5.4", "Syntax: BDAT size [LAST]");
	*size = x;
	return 0;
}

int
cmd_parse_helo(char *arg, char **name, struct cmd_err *e)
{
	char *end;

	while (*arg == ' ')
		arg++;
	end = arg + strlen(arg);
	while (end > arg && end[-1] == ' ')
		*--end = '\0';
	if (*arg == '\0')
		return fail(e, 501, "5.5.4", "Syntax: EHLO hostname");
	if (strchr(arg, ' ') != NULL)
		return fail(e, 501, "5.5.4", "Syntax: EHLO hostname");
	*name = arg;
	return 0;
}
