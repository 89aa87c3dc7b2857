/*
 * test_scenario.c - unit tests for scenario.[ch]: rules from key/value
 *                   arrays, reply strings, cross-key checks
 *
 * DESCRIPTION  Table-driven: a row is one "[rule NAME]" section written
 *              as "key=value" strings (see t_scn.h) with the rule it must
 *              become, or the "test.ini:LINE: [rule NAME] ..." message it
 *              must produce.  Key messages carry the key's line
 *              (T_SCN_SECLINE + 1 + its position), rule-level messages
 *              the section's line.
 *
 * SPDX-License-Identifier: MIT
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scenario.h"
#include "t_scn.h"
#include "unit.h"
#include "util.h"

#define HB(h)	FH_BIT(FH_##h)

/* scn_parse_reply */

static const struct {
	const char	*name;
	const char	*in;
	int		 rc;
	int		 code;
	const char	*ecode;
	const char	*text;
} reply_cases[] = {
	{ "code, enhanced code, text", "451 4.7.1 try later", 0, 451, "4.7.1",
	    "try later" },
	{ "no enhanced code", "250 ok", 0, 250, NULL, "ok" },
	{ "code only", "550", 0, 550, NULL, "" },
	{ "code and enhanced code only", "451 4.7.1", 0, 451, "4.7.1", "" },
	{ "trailing blank after enhanced code", "451 4.7.1 ", 0, 451, "4.7.1",
	    "" },
	{ "leading blanks", "  421 4.3.2 bye", 0, 421, "4.3.2", "bye" },
	{ "extra blanks between parts", "451  4.7.1   spaced", 0, 451,
	    "4.7.1", "spaced" },
	{ "enhanced class must match the code", "451 5.7.1 mismatch", 0, 451,
	    NULL, "5.7.1 mismatch" },
	{ "two-part enhanced code is text", "451 4.7 short", 0, 451, NULL,
	    "4.7 short" },
	{ "four-part enhanced code is text", "451 4.7.1.2 long", 0, 451, NULL,
	    "4.7.1.2 long" },
	{ "enhanced code glued to text", "451 4.7.1text", 0, 451, NULL,
	    "4.7.1text" },
	{ "multi-digit subject and detail", "550 5.71.100 x", 0, 550,
	    "5.71.100", "x" },
	{ "\\n makes a multi-line reply", "451 4.7.1 first\\nsecond", 0, 451,
	    "4.7.1", "first\nsecond" },
	{ "three lines", "421 4.3.2 a\\nb\\nc", 0, 421, "4.3.2", "a\nb\nc" },
	{ "trailing \\n", "451 x\\n", 0, 451, NULL, "x\n" },
	{ "other backslashes kept", "451 a\\tb\\", 0, 451, NULL, "a\\tb\\" },
	{ "lowest code", "200 ok", 0, 200, NULL, "ok" },
	{ "highest code", "599 no", 0, 599, NULL, "no" },
	{ "placeholders kept", "451 4.7.1 <%r> %a %%", 0, 451, "4.7.1",
	    "<%r> %a %%" },
	{ "UTF-8 text kept", "550 5.7.1 gr\xc3\xbc\xc3\x9f", 0, 550, "5.7.1",
	    "gr\xc3\xbc\xc3\x9f" },
	{ "code 199", "199 x", -1, 0, NULL, NULL },
	{ "code 600", "600 x", -1, 0, NULL, NULL },
	{ "code 099", "099 x", -1, 0, NULL, NULL },
	{ "code 000", "000", -1, 0, NULL, NULL },
	{ "four digits", "4510 x", -1, 0, NULL, NULL },
	{ "two digits", "45 x", -1, 0, NULL, NULL },
	{ "dash continuation", "451-x", -1, 0, NULL, NULL },
	{ "letters", "abc", -1, 0, NULL, NULL },
	{ "empty", "", -1, 0, NULL, NULL },
	{ "blanks only", "   ", -1, 0, NULL, NULL },
	{ "signed code", "+451 x", -1, 0, NULL, NULL },
	{ "tab in text", "451 4.7.1 a\tb", -1, 0, NULL, NULL },
	{ "CR in text", "451 4.7.1 a\rb", -1, 0, NULL, NULL },
	{ "real newline in text", "451 a\nb", -1, 0, NULL, NULL },
	{ "tab after code", "451\tx", -1, 0, NULL, NULL },
};

static int
str_eq(const char *a, const char *b)
{
	return a == NULL || b == NULL ? a == b : strcmp(a, b) == 0;
}

static void
test_parse_reply(void)
{
	size_t i;

	for (i = 0; i < NELEM(reply_cases); i++) {
		static char	 junk[] = "unset";
		int		 code = -7, rc;
		char		*ecode = junk, *text = junk;

		rc = scn_parse_reply(reply_cases[i].in, &code, &ecode, &text);
		T_CHECKF(rc == reply_cases[i].rc, "reply %s: %s -> rc %d, "
		    "want %d", reply_cases[i].name, t_shows(reply_cases[i].in),
		    rc, reply_cases[i].rc);
		if (rc == -1) {
			T_CHECKF(ecode == NULL && text == NULL, "reply %s: "
			    "outputs not NULL after an error",
			    reply_cases[i].name);
			continue;
		}
		if (reply_cases[i].rc == 0) {
			T_CHECKF(code == reply_cases[i].code, "reply %s: code "
			    "%d, want %d", reply_cases[i].name, code,
			    reply_cases[i].code);
			T_CHECKF(str_eq(ecode, reply_cases[i].ecode),
			    "reply %s: ecode %s, want %s", reply_cases[i].name,
			    t_shows(ecode), t_shows(reply_cases[i].ecode));
			T_CHECKF(str_eq(text, reply_cases[i].text),
			    "reply %s: text %s, want %s", reply_cases[i].name,
			    t_shows(text), t_shows(reply_cases[i].text));
		}
		free(ecode);
		free(text);
	}
}

/* Rules that load */

struct good_case {
	const char	*name;
	struct t_rule	 r;
	enum fault_act	 act;
	unsigned	 hooks;
	unsigned	 has;
	int		 code;
	const char	*ecode;
	const char	*text;
	double		 delay, jitter, hold;
	int		 disabled;
	long		 times;
	double		 prob;
	long		 tarpit_bytes;		/* checked for FA_TARPIT */
	double		 tarpit_interval;
	uint64_t	 after_bytes;
	uint64_t	 size_over;
	int		 uses_content;
	int		 tls_fault;		/* index in scn_tls_names */
};

static const struct good_case good_cases[] = {
	{ "reply alone means action reply",
	    { "r", { "hook=rcpt", "reply=451 4.7.1 try later" } },
	    .act = FA_REPLY, .hooks = HB(RCPT), .code = 451, .ecode = "4.7.1",
	    .text = "try later" },
	{ "delay alone means action delay", { "d", { "delay=2s" } },
	    .act = FA_DELAY, .hooks = FH_ANY, .delay = 2 },
	{ "reply and delay: the reply wins",
	    { "rd", { "hook=mail", "reply=450 4.2.0 busy", "delay=500ms" } },
	    .act = FA_REPLY, .hooks = HB(MAIL), .code = 450, .ecode = "4.2.0",
	    .text = "busy", .delay = 0.5 },
	{ "delay with jitter", { "dj", { "delay=1s", "jitter=250ms" } },
	    .act = FA_DELAY, .hooks = FH_ANY, .delay = 1, .jitter = 0.25 },
	{ "hook list", { "hl", { "hook=mail, rcpt", "reply=451 x" } },
	    .act = FA_REPLY, .hooks = HB(MAIL) | HB(RCPT), .code = 451,
	    .text = "x" },
	{ "hook list with blanks and tabs",
	    { "hl2", { "hook=helo \tstarttls,auth", "action=close" } },
	    .act = FA_CLOSE, .hooks = HB(HELO) | HB(STARTTLS) | HB(AUTH) },
	{ "hook any", { "any", { "hook=any", "action=reset" } },
	    .act = FA_RESET, .hooks = FH_ANY },
	{ "names are case-insensitive",
	    { "ci", { "hook=DATA_END", "action=Discard" } },
	    .act = FA_DISCARD, .hooks = HB(DATA_END) },
	{ "drop_after_data at data_end",
	    { "dad", { "hook=data_end", "action=drop_after_data" } },
	    .act = FA_DROP_AFTER_DATA, .hooks = HB(DATA_END) },
	{ "disconnect_after_bytes at data",
	    { "dab", { "hook=data", "action=disconnect_after_bytes",
	      "bytes=10k" } },
	    .act = FA_DISCONNECT_AFTER_BYTES, .hooks = HB(DATA),
	    .after_bytes = 10240 },
	{ "tarpit defaults to 1 byte a second",
	    { "tp", { "hook=rcpt", "action=tarpit", "reply=451 4.7.1 slow" } },
	    .act = FA_TARPIT, .hooks = HB(RCPT), .code = 451, .ecode = "4.7.1",
	    .text = "slow", .tarpit_bytes = 1, .tarpit_interval = 1 },
	{ "tarpit explicit",
	    { "tp2", { "hook=rcpt", "action=tarpit", "tarpit_bytes=5",
	      "tarpit_interval=250ms", "reply=250 ok" } },
	    .act = FA_TARPIT, .hooks = HB(RCPT), .code = 250, .text = "ok",
	    .tarpit_bytes = 5, .tarpit_interval = 0.25 },
	{ "hang with hold",
	    { "h", { "hook=data_end", "action=hang", "hold=10m" } },
	    .act = FA_HANG, .hooks = HB(DATA_END), .hold = 600 },
	{ "accept",
	    { "acc", { "hook=rcpt", "to=vip@example.com", "action=accept" } },
	    .act = FA_ACCEPT, .hooks = HB(RCPT), .has = RM_TO },
	{ "connection matchers",
	    { "m", { "hook=rcpt", "listener=smtp*", "client=10.0.0.0/8, ::1",
	      "helo=*.example", "from=*@example.com", "to=*@example.org",
	      "size_over=1M", "tls=yes", "reply=452 4.3.1 full" } },
	    .act = FA_REPLY, .hooks = HB(RCPT), .has = RM_LISTENER |
	    RM_CLIENT | RM_HELO | RM_FROM | RM_TO | RM_SIZE | RM_TLS,
	    .code = 452, .ecode = "4.3.1", .text = "full",
	    .size_over = 1048576 },
	{ "from=@example.com is a domain, not a list file",
	    { "fd", { "hook=mail", "from=@example.com", "action=close" } },
	    .act = FA_CLOSE, .hooks = HB(MAIL), .has = RM_FROM },
	{ "TLS abort at starttls",
	    { "ta", { "hook=starttls", "action=tls_abort" } },
	    .act = FA_TLS_ABORT, .hooks = HB(STARTTLS) },
	{ "TLS stall at starttls",
	    { "ts", { "hook=starttls", "action=TLS_STALL" } },
	    .act = FA_TLS_STALL, .hooks = HB(STARTTLS) },
	{ "tls_fault alone implies action tls_fault",
	    { "tf", { "hook=starttls", "tls_fault=expired" } },
	    .act = FA_TLS_FAULT, .hooks = HB(STARTTLS), .tls_fault = 1 },
	{ "tls_fault with its action",
	    { "tf2", { "hook=starttls", "action=tls_fault",
	      "tls_fault=weak_ciphers" } },
	    .act = FA_TLS_FAULT, .hooks = HB(STARTTLS), .tls_fault = 8 },
	{ "client list file",
	    { "cl", { "hook=connect", "client=@clients.cidr",
	      "action=close" } },
	    .act = FA_CLOSE, .hooks = HB(CONNECT), .has = RM_CLIENT },
	{ "state matchers",
	    { "st", { "hook=rcpt", "attempt=1-3", "since_first_seen=<2m",
	      "probability=20%", "times=5", "reply=451 4.7.1 later" } },
	    .act = FA_REPLY, .hooks = HB(RCPT), .has = RM_ATTEMPT | RM_SINCE |
	    RM_PROB | RM_TIMES, .code = 451, .ecode = "4.7.1",
	    .text = "later", .times = 5, .prob = 0.2 },
	{ "attempt alone uses state",
	    { "a", { "hook=mail", "attempt=>=2", "action=close" } },
	    .act = FA_CLOSE, .hooks = HB(MAIL), .has = RM_ATTEMPT },
	{ "since_first_seen alone uses state",
	    { "s", { "hook=mail", "since_first_seen=5m-1h",
	      "action=close" } },
	    .act = FA_CLOSE, .hooks = HB(MAIL), .has = RM_SINCE },
	{ "probability alone needs no state",
	    { "p", { "hook=mail", "probability=0.5", "action=close" } },
	    .act = FA_CLOSE, .hooks = HB(MAIL), .has = RM_PROB, .prob = 0.5 },
	{ "header and body at data_end",
	    { "hb", { "hook=data_end", "header=^subject:.*urgent",
	      "body=viagra", "reply=550 5.7.1 no" } },
	    .act = FA_REPLY, .hooks = HB(DATA_END), .has = RM_HEADER |
	    RM_BODY, .code = 550, .ecode = "5.7.1", .text = "no",
	    .uses_content = 1 },
	{ "enabled=no",
	    { "off", { "hook=rcpt", "enabled=no", "reply=451 x" } },
	    .act = FA_REPLY, .hooks = HB(RCPT), .code = 451, .text = "x",
	    .disabled = 1 },
	{ "enabled=yes", { "on", { "enabled=yes", "action=close" } },
	    .act = FA_CLOSE, .hooks = FH_ANY },
	{ "connect reply 220",
	    { "c220", { "hook=connect", "reply=220 welcome" } },
	    .act = FA_REPLY, .hooks = HB(CONNECT), .code = 220,
	    .text = "welcome" },
	{ "connect reply 421",
	    { "c421", { "hook=connect", "reply=421 4.3.2 bye" } },
	    .act = FA_REPLY, .hooks = HB(CONNECT), .code = 421,
	    .ecode = "4.3.2", .text = "bye" },
	{ "4xx reply at every hook", { "all", { "reply=421 4.3.2 bye" } },
	    .act = FA_REPLY, .hooks = FH_ANY, .code = 421, .ecode = "4.3.2",
	    .text = "bye" },
	{ "2xx reply at rcpt", { "ok", { "hook=rcpt", "reply=250 2.1.5 ok" } },
	    .act = FA_REPLY, .hooks = HB(RCPT), .code = 250, .ecode = "2.1.5",
	    .text = "ok" },
	{ "multi-line reply",
	    { "ml", { "hook=rcpt", "reply=451 4.7.1 first\\nsecond" } },
	    .act = FA_REPLY, .hooks = HB(RCPT), .code = 451, .ecode = "4.7.1",
	    .text = "first\nsecond" },
	{ "value with '='", { "eq", { "hook=rcpt", "reply=451 a=b" } },
	    .act = FA_REPLY, .hooks = HB(RCPT), .code = 451, .text = "a=b" },
	{ "later key wins",
	    { "twice", { "hook=rcpt", "reply=451 one", "reply=452 two" } },
	    .act = FA_REPLY, .hooks = HB(RCPT), .code = 452, .text = "two" },
};

/* Compares a loaded rule with the row; returns 1 or fills why. */
static int
rule_ok(const struct good_case *tc, const struct fault_rule *r, char *why,
    size_t wl)
{
#define DIFF(cond, ...) do { \
	if (cond) { \
		snprintf(why, wl, __VA_ARGS__); \
		return 0; \
	} \
} while (0)
	DIFF(r->act != tc->act, "act %s, want %s", scn_act_name(r->act),
	    scn_act_name(tc->act));
	DIFF(r->hooks != tc->hooks, "hooks 0x%x, want 0x%x", r->hooks,
	    tc->hooks);
	DIFF(r->has != tc->has, "has 0x%x, want 0x%x", r->has, tc->has);
	DIFF(r->code != tc->code, "code %d, want %d", r->code, tc->code);
	DIFF(!str_eq(r->ecode, tc->ecode), "ecode %s, want %s",
	    t_shows(r->ecode), t_shows(tc->ecode));
	DIFF(!str_eq(r->text, tc->text), "text %s, want %s",
	    t_shows(r->text), t_shows(tc->text));
	DIFF(fabs(r->delay - tc->delay) > 1e-9 ||
	    fabs(r->jitter - tc->jitter) > 1e-9 ||
	    fabs(r->hold - tc->hold) > 1e-9, "delay %g jitter %g hold %g, "
	    "want %g %g %g", r->delay, r->jitter, r->hold, tc->delay,
	    tc->jitter, tc->hold);
	DIFF(r->enabled != !tc->disabled, "enabled %d", r->enabled);
	DIFF((r->has & RM_TIMES) && r->times != tc->times, "times %ld, want "
	    "%ld", r->times, tc->times);
	DIFF((r->has & RM_PROB) && fabs(r->prob - tc->prob) > 1e-9,
	    "probability %g, want %g", r->prob, tc->prob);
	DIFF(r->act == FA_TARPIT && (r->tarpit_bytes != tc->tarpit_bytes ||
	    fabs(r->tarpit_interval - tc->tarpit_interval) > 1e-9),
	    "tarpit %ld bytes every %g s, want %ld every %g",
	    r->tarpit_bytes, r->tarpit_interval, tc->tarpit_bytes,
	    tc->tarpit_interval);
	DIFF(r->after_bytes != tc->after_bytes, "bytes %llu, want %llu",
	    (unsigned long long)r->after_bytes,
	    (unsigned long long)tc->after_bytes);
	DIFF((r->has & RM_SIZE) && r->size_over != tc->size_over,
	    "size_over %llu, want %llu", (unsigned long long)r->size_over,
	    (unsigned long long)tc->size_over);
	DIFF(r->tls_fault != tc->tls_fault, "tls_fault %d, want %d",
	    r->tls_fault, tc->tls_fault);
	DIFF(r->fired != 0 || r->index != 0, "fired %ld index %d", r->fired,
	    r->index);
	DIFF(r->file == NULL || strcmp(r->file, T_SCN_FILE) != 0 ||
	    r->line != T_SCN_SECLINE, "origin %s:%d", t_shows(r->file),
	    r->line);
	return 1;
#undef DIFF
}

static void
test_good_rules(void)
{
	size_t i;

	for (i = 0; i < NELEM(good_cases); i++) {
		const struct good_case	*tc = &good_cases[i];
		struct scenario		*s = scn_new();
		struct fault_rule	*r;
		struct t_errs		 e;
		char			 why[512];
		int			 rc;

		memset(&e, 0, sizeof(e));
		rc = t_scn_add(s, &tc->r, &e);
		T_CHECKF(rc == 0 && e.n == 0, "rule %s: rc %d, messages: %s",
		    tc->name, rc, t_errs_join(&e));
		if (rc != 0 || s->n != 1) {
			scn_free(s);
			continue;
		}
		r = s->v[0];
		T_CHECKF(r->name != NULL && strcmp(r->name, tc->r.name) == 0,
		    "rule %s: name %s", tc->name, t_shows(r->name));
		T_CHECKF(rule_ok(tc, r, why, sizeof(why)), "rule %s: %s",
		    tc->name, why);
		/* docs/scenarios.md: any rule makes the hooks count */
		T_CHECKF(s->uses_state == 1 &&
		    s->uses_content == tc->uses_content,
		    "rule %s: uses_state %d uses_content %d, want 1 %d",
		    tc->name, s->uses_state, s->uses_content,
		    tc->uses_content);
		scn_free(s);
	}
}

/* Rules that are refused */

struct bad_case {
	const char	*name;
	struct t_rule	 r;
	const char	*key;		/* NULL: a rule-level message */
	const char	*why;		/* substring of the reason */
};

static const struct bad_case bad_cases[] = {
	{ "header at hook rcpt", { "h1", { "hook=rcpt", "header=^subject:",
	    "reply=550 5.7.1 x" } }, NULL,
	    "header and body match only at hook data_end" },
	{ "body with the default hooks", { "b1", { "body=foo",
	    "reply=550 5.7.1 x" } }, NULL,
	    "header and body match only at hook data_end" },
	{ "header at data and data_end", { "h2", { "hook=data, data_end",
	    "header=x", "action=close" } }, NULL,
	    "header and body match only at hook data_end" },
	{ "action reply without reply", { "ar", { "hook=rcpt",
	    "action=reply" } }, NULL, "action reply needs reply" },
	{ "action delay without delay", { "ad", { "hook=mail",
	    "action=delay" } }, NULL, "action delay needs delay" },
	{ "action delay with zero delay", { "ad0", { "hook=mail",
	    "action=delay", "delay=0" } }, NULL, "action delay needs delay" },
	{ "no action at all", { "na", { "hook=rcpt", "to=x@example.com" } },
	    NULL, "no action" },
	{ "empty rule", { "empty", { NULL } }, NULL, "no action" },
	{ "discard outside data_end", { "d1", { "hook=rcpt",
	    "action=discard" } }, NULL,
	    "discard and drop_after_data work only at hook data_end" },
	{ "discard with the default hooks", { "d2", { "action=discard" } },
	    NULL, "discard and drop_after_data work only at hook data_end" },
	{ "drop_after_data at data", { "d3", { "hook=data",
	    "action=drop_after_data" } }, NULL,
	    "discard and drop_after_data work only at hook data_end" },
	{ "disconnect_after_bytes at data_end", { "d4", { "hook=data_end",
	    "action=disconnect_after_bytes", "bytes=1k" } }, NULL,
	    "disconnect_after_bytes works only at hook data" },
	{ "connect reply 250", { "c1", { "hook=connect", "reply=250 ok" } },
	    NULL, "a connect reply must be 220, 4xx or 5xx" },
	{ "2xx reply with the default hooks (connect included)",
	    { "c2", { "reply=250 ok" } }, NULL,
	    "a connect reply must be 220, 4xx or 5xx" },
	{ "TLS action with the default hooks", { "t1", {
	    "action=tls_reset" } }, NULL,
	    "TLS actions work only at hook starttls" },
	{ "TLS action at rcpt", { "t2", { "hook=rcpt",
	    "action=tls_abort" } }, NULL,
	    "TLS actions work only at hook starttls" },
	{ "action tls_fault without a name", { "t3", { "hook=starttls",
	    "action=tls_fault" } }, NULL,
	    "action tls_fault needs tls_fault = NAME" },
	{ "unknown tls_fault name", { "t4", { "hook=starttls",
	    "tls_fault=broken" } }, "tls_fault", "expected expired" },
	{ "tls_fault good is not a fault", { "t5", { "hook=starttls",
	    "tls_fault=good" } }, "tls_fault", "expected expired" },
	{ "unknown key", { "k1", { "hook=rcpt", "colour=red",
	    "reply=451 x" } }, "colour", "unknown key" },
	{ "bad hook name", { "k2", { "hook=rcpt, mial", "reply=451 x" } },
	    "hook", "expected hook names" },
	{ "empty hook", { "k3", { "hook=", "reply=451 x" } }, "hook",
	    "expected hook names" },
	{ "unknown action", { "k4", { "action=explode" } }, "action",
	    "unknown action" },
	{ "action none is not an action", { "k5", { "action=none" } },
	    "action", "unknown action" },
	{ "reply code 199", { "k6", { "hook=rcpt", "reply=199 x" } }, "reply",
	    "expected \"CODE [X.Y.Z] text\"" },
	{ "reply code 600", { "k7", { "hook=rcpt", "reply=600 x" } }, "reply",
	    "expected \"CODE" },
	{ "reply with a tab", { "k8", { "hook=rcpt", "reply=451 a\tb" } },
	    "reply", "expected \"CODE" },
	{ "bad client", { "k9", { "client=10.0.0.0/33", "action=close" } },
	    "client", "bad address or CIDR" },
	{ "client list file with a bad line", { "k10", {
	    "client=@bad.cidr", "action=close" } }, "client",
	    "bad.cidr:4: bad address or CIDR \"192.0.2.300\"" },
	{ "missing client list file", { "k11", { "client=@no-such.cidr",
	    "action=close" } }, "client", "No such file or directory" },
	{ "empty from list", { "k12", { "from=", "action=close" } }, "from",
	    "empty pattern list" },
	{ "bad regular expression", { "k13", { "hook=data_end", "header=(",
	    "action=close" } }, "header", "bad regular expression" },
	{ "bad body regular expression", { "k14", { "hook=data_end",
	    "body=a{2,1}", "action=close" } }, "body",
	    "bad regular expression" },
	{ "tls maybe", { "k15", { "tls=maybe", "action=close" } }, "tls",
	    "expected yes or no" },
	{ "enabled 2", { "k16", { "enabled=2", "action=close" } }, "enabled",
	    "expected yes or no" },
	{ "attempt 3-1", { "k17", { "attempt=3-1", "action=close" } },
	    "attempt", "expected N, N-M" },
	{ "since_first_seen without a comparison", { "k18", {
	    "since_first_seen=5m", "action=close" } }, "since_first_seen",
	    "expected <DUR" },
	{ "probability 150%", { "k19", { "probability=150%",
	    "action=close" } }, "probability", "expected 0 to 1" },
	{ "probability 2", { "k20", { "probability=2", "action=close" } },
	    "probability", "expected 0 to 1" },
	{ "times 0", { "k21", { "times=0", "action=close" } }, "times",
	    "expected a count of at least 1" },
	{ "times -1", { "k22", { "times=-1", "action=close" } }, "times",
	    "expected a count" },
	{ "size_over 10X", { "k23", { "size_over=10X", "action=close" } },
	    "size_over", "expected a size" },
	{ "delay over 30 days", { "k24", { "delay=31d" } }, "delay",
	    "expected a duration" },
	{ "negative delay", { "k25", { "delay=-1s" } }, "delay",
	    "expected a duration" },
	{ "bad jitter", { "k26", { "delay=1s", "jitter=soon" } }, "jitter",
	    "expected a duration" },
	{ "bad hold", { "k27", { "action=hang", "hold=forever" } }, "hold",
	    "expected a duration" },
	{ "tarpit_bytes 0", { "k28", { "action=tarpit", "tarpit_bytes=0",
	    "reply=451 x" } }, "tarpit_bytes", "expected 1 to 65536" },
	{ "tarpit_bytes 65537", { "k29", { "action=tarpit",
	    "tarpit_bytes=65537", "reply=451 x" } }, "tarpit_bytes",
	    "expected 1 to 65536" },
	{ "bad tarpit_interval", { "k30", { "action=tarpit",
	    "tarpit_interval=1x", "reply=451 x" } }, "tarpit_interval",
	    "expected a duration" },
	{ "bad bytes", { "k31", { "hook=data",
	    "action=disconnect_after_bytes", "bytes=lots" } }, "bytes",
	    "expected a size" },
};

static void
test_bad_rules(void)
{
	size_t i;

	for (i = 0; i < NELEM(bad_cases); i++) {
		const struct bad_case	*tc = &bad_cases[i];
		struct scenario		*s = scn_new();
		struct t_errs		 e;
		char			 pre[512];
		const char		*m;
		int			 rc, k, line = T_SCN_SECLINE;

		memset(&e, 0, sizeof(e));
		rc = t_scn_add(s, &tc->r, &e);
		T_CHECKF(rc == -1, "bad rule %s: rc %d, want -1", tc->name, rc);
		T_CHECKF(s->n == 0 && scn_find(s, tc->r.name) == NULL,
		    "bad rule %s: rule added anyway", tc->name);
		T_CHECKF(e.n == 1, "bad rule %s: %d messages, want 1: %s",
		    tc->name, e.n, t_errs_join(&e));
		if (e.n == 0) {
			scn_free(s);
			continue;
		}
		m = e.msg[0];
		if (tc->key != NULL) {
			const char *val = "";
			size_t kl = strlen(tc->key);

			for (k = 0; k < T_SCN_MAXKV && tc->r.kv[k]; k++)
				if (strncmp(tc->r.kv[k], tc->key, kl) == 0 &&
				    tc->r.kv[k][kl] == '=') {
					line = T_SCN_SECLINE + 1 + k;
					val = tc->r.kv[k] + kl + 1;
					break;
				}
			snprintf(pre, sizeof(pre), "%s:%d: [rule %s] %s = "
			    "\"%s\": ", T_SCN_FILE, line, tc->r.name, tc->key,
			    val);
		} else {
			snprintf(pre, sizeof(pre), "%s:%d: [rule %s]: ",
			    T_SCN_FILE, line, tc->r.name);
		}
		T_CHECKF(strncmp(m, pre, strlen(pre)) == 0 &&
		    strstr(m + strlen(pre), tc->why) != NULL,
		    "bad rule %s: message %s, want %s...%s", tc->name,
		    t_shows(m), t_shows(pre), tc->why);
		scn_free(s);
	}
}

/* Every bad key is reported; the cross-key check then does not run. */
static void
test_two_bad_keys(void)
{
	static const char m1[] = "test.ini:12: [rule two] attempt = \"x\": ";
	static const char m2[] =
	    "test.ini:13: [rule two] probability = \"2\": ";
	struct scenario	*s = scn_new();
	struct t_errs	 e;
	struct t_rule	 r = { "two", { "hook=rcpt", "attempt=x",
	    "probability=2" } };
	int		 rc;

	memset(&e, 0, sizeof(e));
	rc = t_scn_add(s, &r, &e);
	T_CHECKF(rc == -1 && s->n == 0 && e.n == 2 &&
	    strncmp(e.msg[0], m1, strlen(m1)) == 0 &&
	    strncmp(e.msg[1], m2, strlen(m2)) == 0,
	    "two bad keys: rc %d, %zu rules, %s", rc, s->n, t_errs_join(&e));
	scn_free(s);
}

/* A long value is cut to 200 bytes in the message. */
static void
test_long_value(void)
{
	struct scenario	*s = scn_new();
	struct t_errs	 e;
	char		 kv[320];
	struct t_rule	 r = { "long", { kv, "action=close" } };
	const char	*q = NULL;

	memset(&e, 0, sizeof(e));
	snprintf(kv, sizeof(kv), "attempt=");
	memset(kv + 8, '7', 300);
	kv[308] = '\0';
	T_CHECK(t_scn_add(s, &r, &e) == -1, "long value: refused");
	if (e.n == 1)
		q = strstr(e.msg[0], "attempt = \"");
	T_CHECKF(q != NULL && strspn(q + 11, "7") == 200 &&
	    strncmp(q + 211, "\": expected", 11) == 0,
	    "long value: message %s", e.n ? t_shows(e.msg[0]) : "(none)");
	scn_free(s);
}

/* Names, order, lookup, duplicates. */
static void
test_names_order(void)
{
	static const struct t_rule rules[] = {
		{ "first", { "hook=connect", "action=close" } },
		{ "Second-Rule", { "hook=rcpt", "reply=451 x" } },
		{ "  padded", { "delay=1s" } },
	};
	struct scenario	*s = scn_new();
	struct t_errs	 e;
	struct t_rule	 dup = { "SECOND-rule", { "action=close" } };
	struct t_rule	 noname = { "", { "action=close" } };
	struct t_rule	 blank = { "   ", { "action=close" } };
	size_t		 i;
	int		 rc;

	memset(&e, 0, sizeof(e));
	T_CHECK(s->n == 0 && s->uses_state == 0 && s->uses_content == 0,
	    "new scenario: no rules, no counting");
	for (i = 0; i < NELEM(rules); i++)
		T_CHECKF(t_scn_add(s, &rules[i], &e) == 0, "order: add %s: %s",
		    rules[i].name, t_errs_join(&e));
	T_CHECKF(s->n == 3, "order: %zu rules, want 3", s->n);
	for (i = 0; i < s->n; i++)
		T_CHECKF(s->v[i]->index == (int)i, "order: rule %zu index %d",
		    i, s->v[i]->index);
	T_CHECK(s->n == 3 && strcmp(s->v[2]->name, "padded") == 0,
	    "order: blanks after \"rule\" are not part of the name");
	T_CHECK(s->n == 3 && scn_find(s, "second-rule") == s->v[1],
	    "scn_find is case-insensitive");
	T_CHECK(scn_find(s, "first") != NULL && scn_find(s, "nosuch") == NULL,
	    "scn_find first / nosuch");

	rc = t_scn_add(s, &dup, &e);
	T_CHECKF(rc == -1 && s->n == 3 && e.n == 1 && strstr(e.msg[0],
	    "duplicate rule name") != NULL && strncmp(e.msg[0],
	    "test.ini:10: [rule SECOND-rule]", 31) == 0,
	    "duplicate name (other case): rc %d, %zu rules, %s", rc, s->n,
	    t_errs_join(&e));
	memset(&e, 0, sizeof(e));
	rc = t_scn_add(s, &noname, &e);
	T_CHECKF(rc == -1 && s->n == 3 && e.n == 1 && strstr(e.msg[0],
	    "a rule needs a name") != NULL, "empty name: rc %d, %s", rc,
	    t_errs_join(&e));
	memset(&e, 0, sizeof(e));
	rc = t_scn_add(s, &blank, &e);
	T_CHECKF(rc == -1 && s->n == 3 && e.n == 1 && strstr(e.msg[0],
	    "a rule needs a name") != NULL, "blank name: rc %d, %s", rc,
	    t_errs_join(&e));

	/* a refused rule leaves its name free */
	{
		struct t_rule bad = { "again", { "action=explode" } };
		struct t_rule good = { "again", { "action=close" } };

		memset(&e, 0, sizeof(e));
		T_CHECK(t_scn_add(s, &bad, &e) == -1, "refused rule: refused");
		T_CHECKF(t_scn_add(s, &good, &e) == 0 && s->n == 4 &&
		    s->v[3]->index == 3, "refused rule's name reusable: %s",
		    t_errs_join(&e));
	}
	T_CHECK(s->uses_state == 1 && s->uses_content == 0,
	    "rules without header/body: counting on, content off");
	scn_free(s);
	scn_free(NULL);
}

static void
test_hook_act_names(void)
{
	static const char *const hooks[FH__COUNT] = { "connect", "helo",
	    "starttls", "auth", "mail", "rcpt", "data", "data_end", "rset",
	    "quit" };
	static const char *const acts[FA__COUNT] = { "none", "reply", "delay",
	    "hang", "close", "reset", "tarpit", "accept", "discard",
	    "drop_after_data", "disconnect_after_bytes", "tls_abort",
	    "tls_reset", "tls_stall", "tls_fault", "greylist" };
	int i;

	for (i = 0; i < FH__COUNT; i++) {
		struct scenario	*s = scn_new();
		struct t_errs	 e;
		char		 hv[64];
		struct t_rule	 r = { "h", { hv, "action=close" } };

		T_CHECKF(strcmp(scn_hook_name((enum fault_hook)i), hooks[i])
		    == 0, "hook name %d: %s, want %s", i,
		    scn_hook_name((enum fault_hook)i), hooks[i]);
		/* every name round-trips through the hook key */
		memset(&e, 0, sizeof(e));
		snprintf(hv, sizeof(hv), "hook=%s", hooks[i]);
		T_CHECKF(t_scn_add(s, &r, &e) == 0 && s->n == 1 &&
		    s->v[0]->hooks == FH_BIT(i), "hook=%s: %s", hooks[i],
		    t_errs_join(&e));
		scn_free(s);
	}
	for (i = 0; i < FA__COUNT; i++)
		T_CHECKF(acts[i] != NULL &&
		    strcmp(scn_act_name((enum fault_act)i), acts[i]) == 0,
		    "action name %d: %s, want %s (new action? add it here)", i,
		    scn_act_name((enum fault_act)i), t_shows(acts[i]));
	T_CHECK(scn_tls_index("expired") == 1 &&
	    scn_tls_index("WEAK_CIPHERS") == 8 && scn_tls_index("good") == 0 &&
	    scn_tls_index("nope") == -1 && scn_tls_index("") == -1,
	    "scn_tls_index: names, case, unknown");
	T_CHECK(strcmp(scn_hook_name(FH__COUNT), "?") == 0,
	    "hook name out of range");
	T_CHECK(strcmp(scn_act_name(FA__COUNT), "?") == 0,
	    "action name out of range");
}

CU_TestInfo scenario_tests[] = {
	{ "parse_reply", test_parse_reply },
	{ "rules that load", test_good_rules },
	{ "rules that are refused", test_bad_rules },
	{ "two bad keys", test_two_bad_keys },
	{ "long value in a message", test_long_value },
	{ "names, order, duplicates", test_names_order },
	{ "hook and action names", test_hook_act_names },
	CU_TEST_INFO_NULL,
};
