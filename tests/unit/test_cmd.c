/*
 * test_cmd.c - unit tests for cmd.[ch]: verbs, states, paths, parameters
 *
 * DESCRIPTION  Table-driven: verb lookup and the legal-states table,
 *              MAIL/RCPT paths with ESMTP parameters (RFC 5321, 1870,
 *              6152, 6531, 3461), BDAT arguments (RFC 3030), HELO names.
 *              Every argument is copied into a writable buffer first:
 *              the parsers work in place.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cmd.h"
#include "unit.h"
#include "util.h"

#define EXT_ALL	(CMD_EXT_SIZE | CMD_EXT_8BITMIME | CMD_EXT_SMTPUTF8 | \
		 CMD_EXT_DSN | CMD_EXT_CHUNKING)

/* Expected error codes: exact, or one of these classes. */
#define E_ANY5		1	/* any 5xx */
#define E_SYNTAX	2	/* 501 or 553: bad path syntax */

/* Checks a filled cmd_err against an expected code (class) and ecode. */
static int
err_ok(const struct cmd_err *e, int want, const char *wecode, char *why,
    size_t wl)
{
	int ok;

	if (want == E_ANY5)
		ok = e->code >= 500 && e->code <= 599;
	else if (want == E_SYNTAX)
		ok = e->code == 501 || e->code == 553;
	else
		ok = e->code == want;
	if (!ok) {
		snprintf(why, wl, "code %d", e->code);
		return 0;
	}
	if (e->ecode == NULL || e->text == NULL) {
		snprintf(why, wl, "code %d but ecode %s text %s", e->code,
		    t_shows(e->ecode), t_shows(e->text));
		return 0;
	}
	if (e->ecode[0] != '0' + e->code / 100 ||
	    (wecode != NULL && strcmp(e->ecode, wecode) != 0)) {
		snprintf(why, wl, "code %d ecode %s, want %s", e->code,
		    t_shows(e->ecode), wecode ? wecode : "class match");
		return 0;
	}
	return 1;
}

static int
str_eq(const char *got, const char *want)
{
	if (got == NULL || want == NULL)
		return got == want;
	return strcasecmp(got, want) == 0;
}

/* cmd_lookup */

static const struct {
	const char	*line;
	enum cmd_id	 id;
	const char	*arg;
} lookup_cases[] = {
	{ "HELO example.com", CMD_HELO, "example.com" },
	{ "helo x", CMD_HELO, "x" },
	{ "Ehlo x", CMD_EHLO, "x" },
	{ "EHLO", CMD_EHLO, "" },
	{ "MAIL FROM:<>", CMD_MAIL, "FROM:<>" },
	{ "mail FROM:<a@b>", CMD_MAIL, "FROM:<a@b>" },
	{ "MAIL", CMD_MAIL, "" },
	{ "RCPT TO:<a@b>", CMD_RCPT, "TO:<a@b>" },
	{ "DATA", CMD_DATA, "" },
	{ "data", CMD_DATA, "" },
	{ "BDAT 100 LAST", CMD_BDAT, "100 LAST" },
	{ "RSET", CMD_RSET, "" },
	{ "NOOP", CMD_NOOP, "" },
	{ "NOOP  x", CMD_NOOP, " x" },
	{ "QUIT", CMD_QUIT, "" },
	{ "qUiT", CMD_QUIT, "" },
	{ "VRFY user", CMD_VRFY, "user" },
	{ "EXPN list", CMD_EXPN, "list" },
	{ "HELP", CMD_HELP, "" },
	{ "HELP DATA", CMD_HELP, "DATA" },
	{ "STARTTLS", CMD_STARTTLS, "" },
	{ "starttls", CMD_STARTTLS, "" },
	{ "AUTH PLAIN", CMD_AUTH, "PLAIN" },
	{ "FOO", CMD_UNKNOWN, "" },
	{ "FOO bar", CMD_UNKNOWN, "bar" },
	{ "", CMD_UNKNOWN, "" },
	{ "DATAX", CMD_UNKNOWN, "" },
	{ "HELOx", CMD_UNKNOWN, "" },
	{ "MAI", CMD_UNKNOWN, "" },
	{ "MAILFROM:<>", CMD_UNKNOWN, "" },
};

static void
test_lookup(void)
{
	size_t i;

	for (i = 0; i < NELEM(lookup_cases); i++) {
		char			 buf[128];
		char			*arg = NULL;
		const struct cmd_def	*d;

		snprintf(buf, sizeof(buf), "%s", lookup_cases[i].line);
		d = cmd_lookup(buf, &arg);
		T_CHECKF(d != NULL, "lookup %s: NULL entry",
		    t_shows(lookup_cases[i].line));
		if (d == NULL)
			continue;
		T_CHECKF(d->id == lookup_cases[i].id,
		    "lookup %s: id %d (%s), want %d",
		    t_shows(lookup_cases[i].line), (int)d->id,
		    t_shows(d->name), (int)lookup_cases[i].id);
		if (lookup_cases[i].id != CMD_UNKNOWN)
			T_CHECKF(d->name != NULL && strncasecmp(d->name,
			    lookup_cases[i].line, strlen(d->name)) == 0,
			    "lookup %s: entry name %s",
			    t_shows(lookup_cases[i].line), t_shows(d->name));
		T_CHECKF(arg != NULL && strcmp(arg, lookup_cases[i].arg) == 0,
		    "lookup %s: arg %s, want %s",
		    t_shows(lookup_cases[i].line), t_shows(arg),
		    t_shows(lookup_cases[i].arg));
	}
}

static void
test_names(void)
{
	int	 id, a, b;

	for (id = CMD_HELO; id < CMD__COUNT; id++) {
		const char		*n = cmd_name((enum cmd_id)id);
		const struct cmd_def	*d;
		char			 buf[64], *arg;

		T_CHECKF(n != NULL && *n != '\0', "cmd_name(%d) empty", id);
		if (n == NULL || id == CMD_NOTIMPL)
			continue;
		snprintf(buf, sizeof(buf), "%s", n);
		d = cmd_lookup(buf, &arg);
		T_CHECKF(d != NULL && (int)d->id == id,
		    "cmd_name(%d) = %s does not look up to itself", id,
		    t_shows(n));
	}
	T_CHECK(cmd_name(CMD_UNKNOWN) != NULL, "cmd_name(CMD_UNKNOWN)");
	for (a = 0; a < SS__COUNT; a++) {
		const char *na = cmd_state_name((enum sess_state)a);

		T_CHECKF(na != NULL && *na != '\0', "state name %d empty", a);
		for (b = 0; b < a && na != NULL; b++) {
			const char *nb = cmd_state_name((enum sess_state)b);

			T_CHECKF(nb == NULL || strcmp(na, nb) != 0,
			    "state names %d and %d both %s", a, b,
			    t_shows(na));
		}
	}
}

/* Legal states per verb: exact masks where the RFC fixes them. */
#define B(s)	SS_BIT(s)
#define TXN	(B(SS_INIT) | B(SS_READY) | B(SS_MAIL) | B(SS_RCPT) | B(SS_BDAT))

static const struct {
	const char	*name;
	const char	*verb;
	unsigned	 must;		/* these bits set */
	unsigned	 mustnot;	/* these bits clear */
} state_cases[] = {
	{ "DATA only in RCPT", "DATA", B(SS_RCPT), ~B(SS_RCPT) },
	{ "MAIL only in READY", "MAIL", B(SS_READY), ~B(SS_READY) },
	{ "RCPT in MAIL and RCPT only", "RCPT", B(SS_MAIL) | B(SS_RCPT),
	    ~(B(SS_MAIL) | B(SS_RCPT)) },
	/* cmd.c: BDAT is legal in every command state because a refused
	 * BDAT must still have its chunk read (RFC 3030); the handler
	 * checks the state.  So only the RFC-legal states are required. */
	{ "BDAT after RCPT and between chunks", "BDAT",
	    B(SS_RCPT) | B(SS_BDAT), B(SS_DATA) | B(SS_TLS) },
	{ "QUIT anywhere in a session", "QUIT", TXN, B(SS_DATA) | B(SS_TLS) },
	{ "RSET anywhere in a session", "RSET", TXN, B(SS_DATA) | B(SS_TLS) },
	{ "NOOP anywhere in a session", "NOOP", TXN, B(SS_DATA) | B(SS_TLS) },
	{ "HELO before and after greeting", "HELO",
	    B(SS_INIT) | B(SS_READY), B(SS_DATA) | B(SS_TLS) },
	{ "EHLO before and after greeting", "EHLO",
	    B(SS_INIT) | B(SS_READY), B(SS_DATA) | B(SS_TLS) },
	{ "STARTTLS not inside a transaction", "STARTTLS", B(SS_READY),
	    B(SS_MAIL) | B(SS_RCPT) | B(SS_DATA) | B(SS_BDAT) | B(SS_TLS) },
	{ "VRFY never in DATA", "VRFY", 0, B(SS_DATA) | B(SS_TLS) },
	{ "HELP never in DATA", "HELP", 0, B(SS_DATA) | B(SS_TLS) },
};

static void
test_states(void)
{
	size_t i;

	for (i = 0; i < NELEM(state_cases); i++) {
		char			 buf[32], *arg;
		const struct cmd_def	*d;
		unsigned		 all = (1u << SS__COUNT) - 1;

		snprintf(buf, sizeof(buf), "%s", state_cases[i].verb);
		d = cmd_lookup(buf, &arg);
		if (d == NULL) {
			T_CHECKF(0, "states %s: no entry", state_cases[i].name);
			continue;
		}
		T_CHECKF((d->states & state_cases[i].must) ==
		    state_cases[i].must &&
		    (d->states & state_cases[i].mustnot & all) == 0,
		    "states %s: mask 0x%x (must 0x%x, must not 0x%x)",
		    state_cases[i].name, d->states, state_cases[i].must,
		    state_cases[i].mustnot & all);
	}
}

/* MAIL FROM */

struct pcase {
	const char	*name;
	const char	*arg;
	unsigned	 exts;
	int		 rc;
	const char	*addr;
	int		 utf8;
	int		 has_size;
	uint64_t	 size;
	enum cmd_body	 body;
	int		 smtputf8;
	const char	*ret;
	const char	*envid;
	const char	*notify;
	const char	*orcpt;
	int		 code;		/* on error: code or E_* class */
	const char	*ecode;		/* on error: exact, or NULL */
};

#define OK(n, a, ad) \
	.name = n, .arg = a, .exts = EXT_ALL, .rc = 0, .addr = ad
#define ERR(n, a, c, ec) \
	.name = n, .arg = a, .exts = EXT_ALL, .rc = -1, .code = c, \
	.ecode = ec
#define ERRX(n, a, x, c, ec) \
	.name = n, .arg = a, .exts = x, .rc = -1, .code = c, .ecode = ec

static const struct pcase mail_cases[] = {
	{ OK("null path", "FROM:<>", "") },
	{ OK("simple", "FROM:<a@b>", "a@b") },
	{ OK("lower-case from:", "from:<a@b>", "a@b") },
	{ OK("space after colon tolerated", "FROM: <a@b>", "a@b") },
	{ OK("quoted local part", "FROM:<\"a b\"@example.com>",
	    "\"a b\"@example.com") },
	{ OK("quoted local part with >", "FROM:<\"a>b\"@example.com>",
	    "\"a>b\"@example.com") },
	{ OK("quoted-pair in local part", "FROM:<\"a\\\"b\"@example.com>",
	    "\"a\\\"b\"@example.com") },
	{ OK("source route", "FROM:<@x,@y:a@b>", "a@b") },
	{ OK("single-hop source route", "FROM:<@x.example:a@b>", "a@b") },
	{ OK("address literal", "FROM:<a@[127.0.0.1]>", "a@[127.0.0.1]") },
	{ OK("IPv6 literal", "FROM:<a@[IPv6:::1]>", "a@[IPv6:::1]") },
	{ OK("SIZE", "FROM:<a@b> SIZE=123", "a@b"), .has_size = 1,
	    .size = 123 },
	{ OK("size keyword case-insensitive", "FROM:<a@b> size=123", "a@b"),
	    .has_size = 1, .size = 123 },
	{ OK("SIZE=0", "FROM:<a@b> SIZE=0", "a@b"), .has_size = 1 },
	{ OK("SIZE near 2^64", "FROM:<a@b> SIZE=18446744073709551615",
	    "a@b"), .has_size = 1, .size = UINT64_MAX },
	{ OK("null path with SIZE", "FROM:<> SIZE=100", ""), .has_size = 1,
	    .size = 100 },
	{ OK("BODY=8BITMIME", "FROM:<a@b> BODY=8BITMIME", "a@b"),
	    .body = CMD_BODY_8BITMIME },
	{ OK("BODY=7BIT", "FROM:<a@b> BODY=7BIT", "a@b"),
	    .body = CMD_BODY_7BIT },
	{ OK("body value case-insensitive", "FROM:<a@b> body=8bitmime",
	    "a@b"), .body = CMD_BODY_8BITMIME },
	{ OK("SMTPUTF8", "FROM:<a@b> SMTPUTF8", "a@b"), .smtputf8 = 1 },
	{ OK("RET=FULL", "FROM:<a@b> RET=FULL", "a@b"), .ret = "FULL" },
	{ OK("RET=HDRS", "FROM:<a@b> RET=HDRS", "a@b"), .ret = "HDRS" },
	{ OK("ENVID", "FROM:<a@b> ENVID=QQ314159", "a@b"),
	    .envid = "QQ314159" },
	{ OK("all parameters",
	    "FROM:<a@b> SIZE=10 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=x1",
	    "a@b"), .has_size = 1, .size = 10, .body = CMD_BODY_8BITMIME,
	    .smtputf8 = 1, .ret = "HDRS", .envid = "x1" },
	{ OK("UTF-8 address flagged", "FROM:<j\xc3\xb6@example.com> SMTPUTF8",
	    "j\xc3\xb6@example.com"), .utf8 = 1, .smtputf8 = 1 },
	{ .name = "no extensions, no parameters", .arg = "FROM:<a@b>",
	    .exts = 0, .addr = "a@b" },
	{ ERR("missing <", "FROM:a@b", E_SYNTAX, NULL) },
	{ ERR("unclosed <a", "FROM:<a", E_SYNTAX, NULL) },
	{ ERR("unclosed, then parameter", "FROM:<a@b SIZE=1", E_SYNTAX,
	    NULL) },
	{ ERR("trailing garbage", "FROM:<a@b>x", E_SYNTAX, NULL) },
	{ ERR("empty FROM:", "FROM:", E_SYNTAX, NULL) },
	{ ERR("empty argument", "", E_SYNTAX, NULL) },
	{ ERR("no colon", "FROM<a@b>", E_SYNTAX, NULL) },
	{ ERR("TO: in MAIL", "TO:<a@b>", E_SYNTAX, NULL) },
	{ ERR("double brackets", "FROM:<<a@b>>", E_SYNTAX, NULL) },
	{ ERR("extra >", "FROM:<a@b>>", E_SYNTAX, NULL) },
	{ ERR("unquoted space in path", "FROM:<a b@c>", E_SYNTAX, NULL) },
	{ ERR("unclosed quote", "FROM:<\"a@b>", E_SYNTAX, NULL) },
	{ ERR("empty local part", "FROM:<@b>", E_SYNTAX, NULL) },
	{ ERR("empty domain", "FROM:<a@>", E_SYNTAX, NULL) },
	{ ERR("two @ outside quotes", "FROM:<a@b@c>", E_SYNTAX, NULL) },
	{ ERR("control byte in path", "FROM:<a\x01b@c>", E_SYNTAX, NULL) },
	{ ERR("source route without mailbox", "FROM:<@x,@y:>", E_SYNTAX,
	    NULL) },
	{ ERR("SIZE overflow", "FROM:<a@b> SIZE=99999999999999999999999",
	    E_ANY5, NULL) },
	{ ERR("SIZE 2^64", "FROM:<a@b> SIZE=18446744073709551616", E_ANY5,
	    NULL) },
	{ ERR("SIZE=abc", "FROM:<a@b> SIZE=abc", E_ANY5, NULL) },
	{ ERR("SIZE= empty", "FROM:<a@b> SIZE=", E_ANY5, NULL) },
	{ ERR("SIZE without value", "FROM:<a@b> SIZE", E_ANY5, NULL) },
	{ ERR("SIZE=-1", "FROM:<a@b> SIZE=-1", E_ANY5, NULL) },
	{ ERR("SIZE=1k", "FROM:<a@b> SIZE=1k", E_ANY5, NULL) },
	{ ERR("SIZE=0x10", "FROM:<a@b> SIZE=0x10", E_ANY5, NULL) },
	{ ERR("SIZE=+5 sign", "FROM:<a@b> SIZE=+5", E_ANY5, NULL) },
	{ ERR("BODY=foo", "FROM:<a@b> BODY=foo", E_ANY5, NULL) },
	{ ERR("BODY without value", "FROM:<a@b> BODY", E_ANY5, NULL) },
	{ ERR("SMTPUTF8 with value", "FROM:<a@b> SMTPUTF8=yes", E_ANY5,
	    NULL) },
	{ ERR("RET=foo", "FROM:<a@b> RET=foo", E_ANY5, NULL) },
	{ ERR("duplicate SIZE", "FROM:<a@b> SIZE=1 SIZE=2", E_ANY5, NULL) },
	{ ERR("duplicate BODY", "FROM:<a@b> BODY=7BIT BODY=8BITMIME", E_ANY5,
	    NULL) },
	{ ERR("duplicate RET", "FROM:<a@b> RET=FULL RET=HDRS", E_ANY5,
	    NULL) },
	{ ERR("unknown parameter FOO=bar", "FROM:<a@b> FOO=bar", 555,
	    "5.5.4") },
	{ ERR("unknown keyword XYZ", "FROM:<a@b> XYZ", 555, "5.5.4") },
	{ ERR("RCPT parameter NOTIFY in MAIL", "FROM:<a@b> NOTIFY=NEVER",
	    555, "5.5.4") },
	{ ERRX("SIZE not advertised", "FROM:<a@b> SIZE=100",
	    EXT_ALL & ~CMD_EXT_SIZE, 555, "5.5.4") },
	{ ERRX("BODY not advertised", "FROM:<a@b> BODY=8BITMIME",
	    EXT_ALL & ~CMD_EXT_8BITMIME, 555, "5.5.4") },
	{ ERRX("SMTPUTF8 not advertised", "FROM:<a@b> SMTPUTF8",
	    EXT_ALL & ~CMD_EXT_SMTPUTF8, 555, "5.5.4") },
	{ ERRX("RET not advertised", "FROM:<a@b> RET=FULL",
	    EXT_ALL & ~CMD_EXT_DSN, 555, "5.5.4") },
	{ ERRX("ENVID not advertised", "FROM:<a@b> ENVID=x",
	    EXT_ALL & ~CMD_EXT_DSN, 555, "5.5.4") },
	{ ERRX("no extensions at all", "FROM:<a@b> SIZE=1", 0, 555,
	    "5.5.4") },
};

static const struct pcase rcpt_cases[] = {
	{ OK("simple", "TO:<a@b>", "a@b") },
	{ OK("lower-case to:", "to:<a@b>", "a@b") },
	{ OK("space after colon tolerated", "TO: <a@b>", "a@b") },
	{ OK("Postmaster", "TO:<Postmaster>", "Postmaster") },
	{ OK("source route", "TO:<@x,@y:a@b>", "a@b") },
	{ OK("address literal", "TO:<a@[127.0.0.1]>", "a@[127.0.0.1]") },
	{ OK("quoted local part", "TO:<\"a b\"@example.com>",
	    "\"a b\"@example.com") },
	{ OK("UTF-8 address flagged", "TO:<j\xc3\xb6@example.com>",
	    "j\xc3\xb6@example.com"), .utf8 = 1 },
	{ OK("NOTIFY=SUCCESS,FAILURE", "TO:<a@b> NOTIFY=SUCCESS,FAILURE",
	    "a@b"), .notify = "SUCCESS,FAILURE" },
	{ OK("NOTIFY=NEVER", "TO:<a@b> NOTIFY=NEVER", "a@b"),
	    .notify = "NEVER" },
	{ OK("NOTIFY=DELAY", "TO:<a@b> NOTIFY=DELAY", "a@b"),
	    .notify = "DELAY" },
	{ OK("NOTIFY all three", "TO:<a@b> NOTIFY=SUCCESS,FAILURE,DELAY",
	    "a@b"), .notify = "SUCCESS,FAILURE,DELAY" },
	{ OK("ORCPT", "TO:<a@b> ORCPT=rfc822;a@b", "a@b"),
	    .orcpt = "rfc822;a@b" },
	{ OK("NOTIFY and ORCPT", "TO:<a@b> NOTIFY=NEVER ORCPT=rfc822;x@y",
	    "a@b"), .notify = "NEVER", .orcpt = "rfc822;x@y" },
	{ ERR("null path", "TO:<>", E_ANY5, NULL) },
	{ ERR("missing <", "TO:a@b", E_SYNTAX, NULL) },
	{ ERR("unclosed <a", "TO:<a", E_SYNTAX, NULL) },
	{ ERR("empty TO:", "TO:", E_SYNTAX, NULL) },
	{ ERR("FROM: in RCPT", "FROM:<a@b>", E_SYNTAX, NULL) },
	{ ERR("trailing garbage", "TO:<a@b>x", E_SYNTAX, NULL) },
	{ ERR("NOTIFY=NEVER,SUCCESS", "TO:<a@b> NOTIFY=NEVER,SUCCESS",
	    E_ANY5, NULL) },
	{ ERR("NOTIFY=SUCCESS,NEVER", "TO:<a@b> NOTIFY=SUCCESS,NEVER",
	    E_ANY5, NULL) },
	{ ERR("NOTIFY=FOO", "TO:<a@b> NOTIFY=FOO", E_ANY5, NULL) },
	{ ERR("NOTIFY= empty", "TO:<a@b> NOTIFY=", E_ANY5, NULL) },
	{ ERR("ORCPT without addr-type", "TO:<a@b> ORCPT=a@b", E_ANY5,
	    NULL) },
	{ ERR("duplicate NOTIFY", "TO:<a@b> NOTIFY=NEVER NOTIFY=DELAY",
	    E_ANY5, NULL) },
	{ ERR("MAIL parameter SIZE in RCPT", "TO:<a@b> SIZE=10", 555,
	    "5.5.4") },
	{ ERR("unknown parameter FOO=bar", "TO:<a@b> FOO=bar", 555,
	    "5.5.4") },
	{ ERRX("NOTIFY not advertised", "TO:<a@b> NOTIFY=NEVER",
	    EXT_ALL & ~CMD_EXT_DSN, 555, "5.5.4") },
	{ ERRX("ORCPT not advertised", "TO:<a@b> ORCPT=rfc822;a@b",
	    EXT_ALL & ~CMD_EXT_DSN, 555, "5.5.4") },
};

static void
run_path_cases(const char *what, const struct pcase *t, size_t n,
    int (*parse)(char *, unsigned, struct cmd_path *, struct cmd_err *))
{
	size_t i;

	for (i = 0; i < n; i++) {
		char		 buf[256], why[256];
		struct cmd_path	 p;
		struct cmd_err	 e;
		int		 rc;

		snprintf(buf, sizeof(buf), "%s", t[i].arg);
		memset(&p, 0, sizeof(p));
		memset(&e, 0, sizeof(e));
		rc = parse(buf, t[i].exts, &p, &e);
		if (t[i].rc == -1) {
			T_CHECKF(rc == -1, "%s %s: %s accepted (addr %s)",
			    what, t[i].name, t_shows(t[i].arg),
			    t_shows(p.addr));
			if (rc == -1)
				T_CHECKF(err_ok(&e, t[i].code, t[i].ecode, why,
				    sizeof(why)), "%s %s: %s -> %s (%s)", what,
				    t[i].name, t_shows(t[i].arg), why,
				    t_shows(e.text));
			continue;
		}
		T_CHECKF(rc == 0, "%s %s: %s rejected: %d %s %s", what,
		    t[i].name, t_shows(t[i].arg), e.code, t_shows(e.ecode),
		    t_shows(e.text));
		if (rc != 0)
			continue;
		T_CHECKF(p.addr != NULL && strcmp(p.addr, t[i].addr) == 0,
		    "%s %s: addr %s, want %s", what, t[i].name,
		    t_shows(p.addr), t_shows(t[i].addr));
		T_CHECKF(p.utf8 == t[i].utf8, "%s %s: utf8 %d, want %d", what,
		    t[i].name, p.utf8, t[i].utf8);
		T_CHECKF(p.has_size == t[i].has_size && (!p.has_size ||
		    p.size == t[i].size), "%s %s: size %d/%llu, want %d/%llu",
		    what, t[i].name, p.has_size, (unsigned long long)p.size,
		    t[i].has_size, (unsigned long long)t[i].size);
		T_CHECKF(p.body == t[i].body, "%s %s: body %d, want %d", what,
		    t[i].name, (int)p.body, (int)t[i].body);
		T_CHECKF(p.smtputf8 == t[i].smtputf8,
		    "%s %s: smtputf8 %d, want %d", what, t[i].name,
		    p.smtputf8, t[i].smtputf8);
		T_CHECKF(str_eq(p.ret, t[i].ret), "%s %s: ret %s, want %s",
		    what, t[i].name, t_shows(p.ret), t_shows(t[i].ret));
		T_CHECKF(str_eq(p.envid, t[i].envid),
		    "%s %s: envid %s, want %s", what, t[i].name,
		    t_shows(p.envid), t_shows(t[i].envid));
		T_CHECKF(str_eq(p.notify, t[i].notify),
		    "%s %s: notify %s, want %s", what, t[i].name,
		    t_shows(p.notify), t_shows(t[i].notify));
		T_CHECKF(str_eq(p.orcpt, t[i].orcpt),
		    "%s %s: orcpt %s, want %s", what, t[i].name,
		    t_shows(p.orcpt), t_shows(t[i].orcpt));
	}
}

static void
test_mail(void)
{
	run_path_cases("MAIL", mail_cases, NELEM(mail_cases), cmd_parse_mail);
}

static void
test_rcpt(void)
{
	run_path_cases("RCPT", rcpt_cases, NELEM(rcpt_cases), cmd_parse_rcpt);
}

/* BDAT */

static const struct {
	const char	*name;
	const char	*arg;
	int		 rc;
	uint64_t	 size;
	int		 last;
} bdat_cases[] = {
	{ "size only", "100", 0, 100, 0 },
	{ "size LAST", "100 LAST", 0, 100, 1 },
	{ "zero LAST", "0 LAST", 0, 0, 1 },
	{ "last lower-case", "100 last", 0, 100, 1 },
	{ "large chunk", "4294967296", 0, 4294967296ULL, 0 },
	{ "not a number", "abc", -1, 0, 0 },
	{ "unknown word", "100 FOO", -1, 0, 0 },
	{ "empty", "", -1, 0, 0 },
	{ "LAST only", "LAST", -1, 0, 0 },
	{ "overflow", "99999999999999999999999", -1, 0, 0 },
	{ "2^64", "18446744073709551616", -1, 0, 0 },
	{ "negative", "-1", -1, 0, 0 },
	{ "hex", "0x10", -1, 0, 0 },
	{ "exponent", "1e3", -1, 0, 0 },
	{ "text after LAST", "100 LAST x", -1, 0, 0 },
	{ "junk after size", "100x", -1, 0, 0 },
};

static void
test_bdat(void)
{
	size_t i;

	for (i = 0; i < NELEM(bdat_cases); i++) {
		uint64_t	 size = 777;
		int		 last = 7, rc;
		struct cmd_err	 e;
		char		 why[128];

		memset(&e, 0, sizeof(e));
		rc = cmd_parse_bdat(bdat_cases[i].arg, &size, &last, &e);
		T_CHECKF(rc == bdat_cases[i].rc,
		    "BDAT %s: %s -> rc %d (size %llu), want %d",
		    bdat_cases[i].name, t_shows(bdat_cases[i].arg), rc,
		    (unsigned long long)size, bdat_cases[i].rc);
		if (rc == 0 && bdat_cases[i].rc == 0)
			T_CHECKF(size == bdat_cases[i].size &&
			    !!last == bdat_cases[i].last,
			    "BDAT %s: size %llu last %d, want %llu %d",
			    bdat_cases[i].name, (unsigned long long)size, last,
			    (unsigned long long)bdat_cases[i].size,
			    bdat_cases[i].last);
		if (rc == -1 && bdat_cases[i].rc == -1)
			T_CHECKF(err_ok(&e, E_ANY5, NULL, why, sizeof(why)),
			    "BDAT %s: error reply %s", bdat_cases[i].name,
			    why);
	}
}

/* HELO / EHLO */

static const struct {
	const char	*name;
	const char	*arg;
	int		 rc;
	const char	*want;
} helo_cases[] = {
	{ "domain", "example.com", 0, "example.com" },
	{ "short", "x", 0, "x" },
	{ "address literal", "[127.0.0.1]", 0, "[127.0.0.1]" },
	{ "empty", "", -1, NULL },
	{ "two words", "a b", -1, NULL },
};

static void
test_helo(void)
{
	size_t i;

	for (i = 0; i < NELEM(helo_cases); i++) {
		char		 buf[64], *name = NULL, why[128];
		struct cmd_err	 e;
		int		 rc;

		snprintf(buf, sizeof(buf), "%s", helo_cases[i].arg);
		memset(&e, 0, sizeof(e));
		rc = cmd_parse_helo(buf, &name, &e);
		T_CHECKF(rc == helo_cases[i].rc, "HELO %s: %s -> rc %d, want %d",
		    helo_cases[i].name, t_shows(helo_cases[i].arg), rc,
		    helo_cases[i].rc);
		if (rc == 0 && helo_cases[i].rc == 0)
			T_CHECKF(name != NULL &&
			    strcmp(name, helo_cases[i].want) == 0,
			    "HELO %s: name %s, want %s", helo_cases[i].name,
			    t_shows(name), t_shows(helo_cases[i].want));
		if (rc == -1 && helo_cases[i].rc == -1)
			T_CHECKF(err_ok(&e, 501, NULL, why, sizeof(why)),
			    "HELO %s: error reply %s, want 501",
			    helo_cases[i].name, why);
	}
}

CU_TestInfo cmd_tests[] = {
	{ "lookup", test_lookup },
	{ "names", test_names },
	{ "states table", test_states },
	{ "MAIL FROM", test_mail },
	{ "RCPT TO", test_rcpt },
	{ "BDAT", test_bdat },
	{ "HELO", test_helo },
	CU_TEST_INFO_NULL,
};
