/*
 * test_fault.c - unit tests for fault.[ch]: rule evaluation, state,
 *                the seeded generator, reply placeholders, keys
 *
 * DESCRIPTION  Table-driven: an evaluation case is a scenario (rules as
 *              "key=value" strings, see t_scn.h) and a script of hook
 *              evaluations, each with the rule that must match (or none),
 *              the attempt number it must see and the seconds left in its
 *              window.  The clock is injected (fault.now = t_now) so
 *              windows and expiry need no sleeping.  Every case runs on
 *              the memory store and on LMDB in a mkdtemp() directory.
 *              The engine is global: each test starts it with fault_init()
 *              and ends with fault_close() and fault.now = util_now.
 *
 * SPDX-License-Identifier: MIT
 */
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "fault.h"
#include "t_scn.h"
#include "unit.h"
#include "util.h"

#define CLIENT		"192.0.2.10"
#define T0		1000.0

static double t_clock = T0;

static double
t_now(void)
{
	return t_clock;
}

/* Starts the engine on memory (dir NULL) or LMDB with the test clock. */
static int
engine_start(const char *dir, uint64_t seed, const char *what)
{
	char err[256] = "";

	if (fault_init(dir, seed, 24, 64, err, sizeof(err)) == -1) {
		T_CHECKF(0, "%s: fault_init(%s): %s", what, dir ? dir : "NULL",
		    err);
		return -1;
	}
	t_clock = T0;
	fault.now = t_now;
	return 0;
}

static void
engine_stop(void)
{
	fault_close();
	fault.now = util_now;
}

/* One hook evaluation and what it must give. */
struct estep {
	const char	*what;		/* NULL ends the script */
	enum fault_hook	 hook;
	const char	*client;	/* NULL: CLIENT */
	const char	*listener, *helo, *from, *rcpt;
	const char	*rcpts[4];
	uint64_t	 size;
	int		 tls;
	const char	*hdr[3], *body[3];	/* scanned at data_end */
	double		 at;		/* set the clock; 0: leave it */
	const char	*want;		/* rule name; NULL: no rule */
	unsigned	 attempt;	/* 0: not checked */
	double		 left;		/* 0: not checked */
};

struct ecase {
	const char	*name;
	struct t_rule	 rules[4];
	struct estep	 steps[12];
};

#define FROM	"s@x.example"
#define RCPT	"r@y.example"

static const struct ecase eval_cases[] = {
	{ "first match wins",
	    { { "a", { "hook=rcpt", "reply=451 4.7.1 a" } },
	      { "b", { "hook=rcpt", "reply=550 5.1.1 b" } } },
	    { { "rcpt", .hook = FH_RCPT, .from = FROM, .rcpt = RCPT,
		.want = "a" } } },
	{ "a narrower rule first, then the rest",
	    { { "vip", { "hook=rcpt", "to=vip@example.com", "action=accept" } },
	      { "all", { "hook=rcpt", "reply=451 4.7.1 all" } } },
	    { { "rcpt vip", .hook = FH_RCPT, .from = FROM,
		.rcpt = "vip@example.com", .want = "vip" },
	      { "rcpt other", .hook = FH_RCPT, .from = FROM, .rcpt = RCPT,
		.want = "all" } } },
	{ "hooks mask",
	    { { "m", { "hook=mail, rcpt", "reply=451 4.0.0 m" } } },
	    { { "connect", .hook = FH_CONNECT },
	      { "helo", .hook = FH_HELO, .helo = "h.example" },
	      { "mail", .hook = FH_MAIL, .from = FROM, .want = "m" },
	      { "rcpt", .hook = FH_RCPT, .from = FROM, .rcpt = RCPT,
		.want = "m" },
	      { "data", .hook = FH_DATA, .from = FROM, .rcpts = { RCPT } },
	      { "data_end", .hook = FH_DATA_END, .from = FROM,
		.rcpts = { RCPT } },
	      { "rset", .hook = FH_RSET },
	      { "quit", .hook = FH_QUIT } } },
	{ "no hook key means every hook",
	    { { "x", { "reply=421 4.3.2 bye" } } },
	    { { "connect", .hook = FH_CONNECT, .want = "x" },
	      { "starttls", .hook = FH_STARTTLS, .want = "x" },
	      { "auth", .hook = FH_AUTH, .want = "x" },
	      { "data_end", .hook = FH_DATA_END, .from = FROM,
		.rcpts = { RCPT }, .want = "x" },
	      { "quit", .hook = FH_QUIT, .want = "x" } } },
	{ "disabled rule is skipped",
	    { { "off", { "hook=rcpt", "enabled=no", "reply=451 4.7.1 off" } },
	      { "on", { "hook=rcpt", "reply=451 4.7.1 on" } } },
	    { { "rcpt", .hook = FH_RCPT, .from = FROM, .rcpt = RCPT,
		.want = "on" } } },
	{ "listener glob",
	    { { "l", { "hook=connect", "listener=submission*",
		"action=close" } } },
	    { { "submission", .hook = FH_CONNECT, .listener = "submission",
		.want = "l" },
	      { "upper case", .hook = FH_CONNECT, .listener = "Submission-TLS",
		.want = "l" },
	      { "smtp", .hook = FH_CONNECT, .listener = "smtp" },
	      { "no listener name", .hook = FH_CONNECT } } },
	{ "client CIDR",
	    { { "c", { "hook=connect", "client=192.0.2.0/24, 2001:db8::/32",
		"action=close" } } },
	    { { "v4 inside", .hook = FH_CONNECT, .client = "192.0.2.99",
		.want = "c" },
	      { "v4 outside", .hook = FH_CONNECT, .client = "198.51.100.1" },
	      { "v6 inside", .hook = FH_CONNECT, .client = "2001:db8::5",
		.want = "c" },
	      { "v4-mapped inside", .hook = FH_CONNECT,
		.client = "::ffff:192.0.2.7", .want = "c" },
	      { "v6 outside", .hook = FH_CONNECT, .client = "2001:db9::1" } } },
	{ "client list file",
	    { { "c", { "hook=connect", "client=@clients.cidr",
		"action=reset" } } },
	    { { "10/8", .hook = FH_CONNECT, .client = "10.1.1.1", .want = "c" },
	      { "listed host", .hook = FH_CONNECT, .client = "192.0.2.1",
		.want = "c" },
	      { "unlisted neighbour", .hook = FH_CONNECT,
		.client = "192.0.2.2" } } },
	{ "helo glob",
	    { { "h", { "hook=helo, mail", "helo=*.example.com, example.net",
		"reply=550 5.7.1 h" } } },
	    { { "glob", .hook = FH_HELO, .helo = "mx.example.com",
		.want = "h" },
	      { "other domain", .hook = FH_HELO, .helo = "example.org" },
	      { "bare domain", .hook = FH_HELO, .helo = "example.net",
		.want = "h" },
	      { "no HELO yet", .hook = FH_HELO },
	      { "at mail, case-insensitive", .hook = FH_MAIL,
		.helo = "MX.EXAMPLE.COM", .from = FROM, .want = "h" } } },
	{ "from glob",
	    { { "f", { "hook=mail, rcpt",
		"from=postmaster@example.org, @example.com",
		"reply=550 5.7.1 f" } } },
	    { { "domain", .hook = FH_MAIL, .from = "a@example.com",
		.want = "f" },
	      { "other domain", .hook = FH_MAIL, .from = "a@example.org" },
	      { "null sender", .hook = FH_MAIL, .from = "" },
	      { "at rcpt, case-insensitive", .hook = FH_RCPT,
		.from = "A@EXAMPLE.COM", .rcpt = RCPT, .want = "f" } } },
	{ "to: the current recipient at rcpt, any recipient later",
	    { { "t", { "hook=rcpt, data_end", "to=*@blocked.example",
		"reply=550 5.7.1 t" } } },
	    { { "rcpt ok, earlier blocked one accepted", .hook = FH_RCPT,
		.from = FROM, .rcpt = "a@ok.example",
		.rcpts = { "x@blocked.example" } },
	      { "rcpt blocked", .hook = FH_RCPT, .from = FROM,
		.rcpt = "b@blocked.example", .rcpts = { "a@ok.example" },
		.want = "t" },
	      { "data_end, second recipient blocked", .hook = FH_DATA_END,
		.from = FROM, .rcpts = { "a@ok.example", "b@blocked.example" },
		.want = "t" },
	      { "data_end, none blocked", .hook = FH_DATA_END, .from = FROM,
		.rcpts = { "a@ok.example", "c@ok.example" } } } },
	{ "size_over",
	    { { "s", { "hook=mail, data_end", "size_over=1M",
		"reply=552 5.3.4 big" } } },
	    { { "exactly 1M", .hook = FH_MAIL, .from = FROM, .size = 1048576 },
	      { "1M + 1", .hook = FH_MAIL, .from = FROM, .size = 1048577,
		.want = "s" },
	      { "no SIZE", .hook = FH_MAIL, .from = FROM },
	      { "data_end 2M", .hook = FH_DATA_END, .from = FROM,
		.rcpts = { RCPT }, .size = 2097152, .want = "s" } } },
	{ "tls",
	    { { "y", { "hook=mail", "tls=yes", "reply=451 4.7.1 y" } },
	      { "n", { "hook=mail", "tls=no", "reply=530 5.7.0 n" } } },
	    { { "with TLS", .hook = FH_MAIL, .from = FROM, .tls = 1,
		.want = "y" },
	      { "without TLS", .hook = FH_MAIL, .from = FROM, .want = "n" } } },
	{ "header and body at data_end",
	    { { "h", { "hook=data_end", "header=^subject:.*urgent",
		"reply=550 5.7.1 h" } },
	      { "b", { "hook=data_end", "body=viagra",
		"reply=550 5.7.1 b" } } },
	    { { "header hit", .hook = FH_DATA_END, .from = FROM,
		.rcpts = { RCPT },
		.hdr = { "From: a@b", "Subject: URGENT offer" }, .want = "h" },
	      { "body hit", .hook = FH_DATA_END, .from = FROM,
		.rcpts = { RCPT },
		.hdr = { "Subject: hello" }, .body = { "", "buy Viagra now" },
		.want = "b" },
	      { "body pattern in a header", .hook = FH_DATA_END, .from = FROM,
		.rcpts = { RCPT }, .hdr = { "X-Note: viagra" } },
	      { "header pattern in the body", .hook = FH_DATA_END, .from = FROM,
		.rcpts = { RCPT }, .body = { "Subject: urgent" } },
	      { "both: first rule", .hook = FH_DATA_END, .from = FROM,
		.rcpts = { RCPT }, .hdr = { "subject: urgent" },
		.body = { "viagra" }, .want = "h" },
	      { "clean message", .hook = FH_DATA_END, .from = FROM,
		.rcpts = { RCPT },
		.hdr = { "Subject: hi" }, .body = { "hello" } } } },
	{ "header and body in one rule: both needed",
	    { { "hb", { "hook=data_end", "header=^x-test:", "body=^marker$",
		"reply=550 5.7.1 hb" } } },
	    { { "header only", .hook = FH_DATA_END, .from = FROM,
		.rcpts = { RCPT }, .hdr = { "X-Test: 1" }, .body = { "text" } },
	      { "body only", .hook = FH_DATA_END, .from = FROM,
		.rcpts = { RCPT }, .body = { "marker" } },
	      { "both", .hook = FH_DATA_END, .from = FROM, .rcpts = { RCPT },
		.hdr = { "X-Test: 1" }, .body = { "a", "marker" },
		.want = "hb" },
	      { "anchored body", .hook = FH_DATA_END, .from = FROM,
		.rcpts = { RCPT },
		.hdr = { "X-Test: 1" }, .body = { "a marker b" } } } },
	{ "attempt counted per triplet at rcpt",
	    { { "f", { "hook=rcpt", "attempt=1-3",
		"reply=451 4.7.1 attempt %a" } } },
	    { { "1st", .hook = FH_RCPT, .from = FROM, .rcpt = RCPT, .want = "f",
		.attempt = 1 },
	      { "2nd", .hook = FH_RCPT, .from = FROM, .rcpt = RCPT, .want = "f",
		.attempt = 2 },
	      { "3rd", .hook = FH_RCPT, .from = FROM, .rcpt = RCPT, .want = "f",
		.attempt = 3 },
	      { "4th accepted", .hook = FH_RCPT, .from = FROM, .rcpt = RCPT,
		.attempt = 4 },
	      { "other recipient", .hook = FH_RCPT, .from = FROM,
		.rcpt = "r2@y.example", .want = "f", .attempt = 1 },
	      { "same /24", .hook = FH_RCPT, .client = "192.0.2.200",
		.from = FROM, .rcpt = RCPT, .attempt = 5 },
	      { "other /24", .hook = FH_RCPT, .client = "192.0.3.10",
		.from = FROM, .rcpt = RCPT, .want = "f", .attempt = 1 },
	      { "case differs", .hook = FH_RCPT, .from = "S@X.Example",
		.rcpt = "R@Y.EXAMPLE", .attempt = 6 },
	      { "other sender", .hook = FH_RCPT, .from = "o@x.example",
		.rcpt = RCPT, .want = "f", .attempt = 1 } } },
	{ "connect counts the client network",
	    { { "c", { "hook=connect", "attempt=>=3",
		"reply=421 4.7.0 busy" } } },
	    { { "1st", .hook = FH_CONNECT, .client = "192.0.2.1",
		.attempt = 1 },
	      { "2nd", .hook = FH_CONNECT, .client = "192.0.2.2",
		.attempt = 2 },
	      { "3rd", .hook = FH_CONNECT, .client = "192.0.2.3", .want = "c",
		.attempt = 3 },
	      { "helo reads, does not count", .hook = FH_HELO,
		.client = "192.0.2.3", .helo = "h", .attempt = 3 },
	      { "helo again", .hook = FH_HELO, .client = "192.0.2.3",
		.helo = "h", .attempt = 3 },
	      { "other net", .hook = FH_CONNECT, .client = "10.0.0.1",
		.attempt = 1 },
	      { "v6", .hook = FH_CONNECT, .client = "2001:db8::1",
		.attempt = 1 },
	      { "same v6 /64", .hook = FH_CONNECT, .client = "2001:db8::ffff:2",
		.attempt = 2 },
	      { "v4-mapped is the v4 net", .hook = FH_CONNECT,
		.client = "::ffff:192.0.2.9", .want = "c", .attempt = 4 } } },
	{ "mail adds the sender",
	    { { "m", { "hook=mail", "attempt=2", "reply=451 4.7.1 m" } } },
	    { { "connect", .hook = FH_CONNECT, .attempt = 1 },
	      { "mail a", .hook = FH_MAIL, .from = "a@x", .attempt = 1 },
	      { "mail a again", .hook = FH_MAIL, .from = "a@x", .want = "m",
		.attempt = 2 },
	      { "mail b", .hook = FH_MAIL, .from = "b@x", .attempt = 1 },
	      { "mail a third", .hook = FH_MAIL, .from = "a@x", .attempt = 3 },
	      { "connect again", .hook = FH_CONNECT, .attempt = 2 },
	      { "helo", .hook = FH_HELO, .helo = "h", .attempt = 2 } } },
	{ "data_end sees the lowest attempt of its recipients",
	    { { "d", { "hook=data_end", "attempt=1", "reply=451 4.7.1 d" } } },
	    { { "rcpt r1", .hook = FH_RCPT, .from = FROM, .rcpt = "r1@y",
		.attempt = 1 },
	      { "rcpt r1", .hook = FH_RCPT, .from = FROM, .rcpt = "r1@y",
		.attempt = 2 },
	      { "rcpt r1", .hook = FH_RCPT, .from = FROM, .rcpt = "r1@y",
		.attempt = 3 },
	      { "rcpt r2", .hook = FH_RCPT, .from = FROM, .rcpt = "r2@y",
		.attempt = 1 },
	      { "data_end r1 r2", .hook = FH_DATA_END, .from = FROM,
		.rcpts = { "r1@y", "r2@y" }, .want = "d", .attempt = 1 },
	      { "data_end r1", .hook = FH_DATA_END, .from = FROM,
		.rcpts = { "r1@y" }, .attempt = 3 },
	      { "data_end does not count", .hook = FH_DATA_END, .from = FROM,
		.rcpts = { "R1@Y" }, .attempt = 3 },
	      { "data r1 r2", .hook = FH_DATA, .from = FROM,
		.rcpts = { "r2@y", "r1@y" }, .attempt = 1 } } },
	{ "since_first_seen window",
	    { { "w", { "hook=rcpt", "since_first_seen=<2m",
		"reply=451 4.7.1 try again in %s seconds" } } },
	    { { "first seen", .hook = FH_RCPT, .from = FROM, .rcpt = RCPT,
		.at = 1000, .want = "w", .left = 120, .attempt = 1 },
	      { "100 s later", .hook = FH_RCPT, .from = FROM, .rcpt = RCPT,
		.at = 1100, .want = "w", .left = 20, .attempt = 2 },
	      { "119.5 s later", .hook = FH_RCPT, .from = FROM, .rcpt = RCPT,
		.at = 1119.5, .want = "w", .left = 0.5 },
	      { "window over", .hook = FH_RCPT, .from = FROM, .rcpt = RCPT,
		.at = 1120 },
	      { "much later", .hook = FH_RCPT, .from = FROM, .rcpt = RCPT,
		.at = 5000 },
	      { "new triplet then", .hook = FH_RCPT, .from = FROM,
		.rcpt = "new@y.example", .want = "w", .left = 120,
		.attempt = 1 } } },
	{ "since_first_seen >=",
	    { { "g", { "hook=rcpt", "since_first_seen=>=1m",
		"reply=250 2.1.5 ok" } } },
	    { { "first", .hook = FH_RCPT, .from = FROM, .rcpt = RCPT,
		.at = 1000 },
	      { "59 s", .hook = FH_RCPT, .from = FROM, .rcpt = RCPT,
		.at = 1059 },
	      { "60 s", .hook = FH_RCPT, .from = FROM, .rcpt = RCPT, .at = 1060,
		.want = "g" },
	      { "a day", .hook = FH_RCPT, .from = FROM, .rcpt = RCPT,
		.at = 87400, .want = "g" } } },
	{ "since_first_seen at helo: the client network",
	    { { "w", { "hook=helo", "since_first_seen=<10s",
		"action=close" } } },
	    { { "connect", .hook = FH_CONNECT, .at = 1000 },
	      { "helo 5 s", .hook = FH_HELO, .helo = "h", .at = 1005,
		.want = "w", .left = 5 },
	      { "helo 11 s", .hook = FH_HELO, .helo = "h", .at = 1011 } } },
	{ "times: fires at most N times",
	    { { "a", { "hook=rcpt", "times=2", "reply=451 4.7.1 a" } },
	      { "b", { "hook=rcpt", "reply=250 2.1.5 b" } } },
	    { { "1", .hook = FH_RCPT, .from = FROM, .rcpt = RCPT, .want = "a" },
	      { "2", .hook = FH_RCPT, .from = FROM, .rcpt = RCPT, .want = "a" },
	      { "3", .hook = FH_RCPT, .from = FROM, .rcpt = RCPT, .want = "b" },
	      { "4", .hook = FH_RCPT, .from = FROM, .rcpt = RCPT,
		.want = "b" } } },
	{ "times counts only firing",
	    { { "a", { "hook=rcpt", "times=1", "to=x@y",
		"reply=451 4.7.1 a" } },
	      { "b", { "hook=rcpt", "reply=250 2.1.5 b" } } },
	    { { "other rcpt", .hook = FH_RCPT, .from = FROM, .rcpt = "z@y",
		.want = "b" },
	      { "x", .hook = FH_RCPT, .from = FROM, .rcpt = "x@y",
		.want = "a" },
	      { "x again", .hook = FH_RCPT, .from = FROM, .rcpt = "x@y",
		.want = "b" } } },
	{ "probability 0 and 1",
	    { { "p0", { "hook=mail", "probability=0", "reply=451 4.7.1 p0" } },
	      { "p1", { "hook=mail", "probability=100%",
		"reply=452 4.3.1 p1" } } },
	    { { "1", .hook = FH_MAIL, .from = FROM, .want = "p1" },
	      { "2", .hook = FH_MAIL, .from = FROM, .want = "p1" },
	      { "3", .hook = FH_MAIL, .from = FROM, .want = "p1" } } },
	{ "every matcher at once",
	    { { "all", { "hook=rcpt", "listener=smtp", "client=192.0.2.0/24",
		"helo=*.example", "from=*@x.example", "to=r@*", "tls=no",
		"size_over=10", "attempt=<=2", "since_first_seen=<1h",
		"reply=451 4.7.1 all" } } },
	    { { "all hold", .hook = FH_RCPT, .listener = "smtp",
		.helo = "a.example",
		.from = FROM, .rcpt = RCPT, .size = 11, .want = "all",
		.attempt = 1 },
	      { "size too small", .hook = FH_RCPT, .listener = "smtp",
		.helo = "a.example", .from = FROM, .rcpt = RCPT, .size = 10,
		.attempt = 2 },
	      { "third attempt", .hook = FH_RCPT, .listener = "smtp",
		.helo = "a.example", .from = FROM, .rcpt = RCPT, .size = 11,
		.attempt = 3 },
	      { "other helo", .hook = FH_RCPT, .listener = "smtp",
		.helo = "b.test",
		.from = FROM, .rcpt = "r@z", .size = 11, .attempt = 1 } } },
};

static const char *
hook_str(enum fault_hook h)
{
	return scn_hook_name(h);
}

static void
run_eval(const struct ecase *tc, const char *dir)
{
	const char	*kind = dir ? "lmdb" : "memory";
	struct scenario	*s;
	char		 why[1024];
	int		 i, k;

	if ((s = t_scn_build(tc->rules, NELEM(tc->rules), why,
	    sizeof(why))) == NULL) {
		T_CHECKF(0, "eval %s: %s", tc->name, why);
		return;
	}
	if (engine_start(dir, 42, tc->name) == -1) {
		scn_free(s);
		return;
	}
	for (i = 0; i < 12 && tc->steps[i].what != NULL; i++) {
		const struct estep	*st = &tc->steps[i];
		struct sockaddr_storage	 sa;
		struct fault_ctx	 c;
		struct fault_decision	 d;
		unsigned char		 hits[8];
		char			 rbuf[4][128], *rp[4];
		const char		*got;
		int			 rc, n = 0;

		if (st->at > 0)
			t_clock = st->at;
		memset(&c, 0, sizeof(c));
		if (t_sa(st->client ? st->client : CLIENT, &sa) == -1) {
			T_CHECKF(0, "eval %s: bad client", tc->name);
			continue;
		}
		for (k = 0; k < 4 && st->rcpts[k] != NULL; k++) {
			snprintf(rbuf[k], sizeof(rbuf[k]), "%s", st->rcpts[k]);
			rp[n++] = rbuf[k];
		}
		c.hook = st->hook;
		c.sa = &sa;
		c.client = st->client ? st->client : CLIENT;
		c.listener = st->listener;
		c.hostname = "mx.test";
		c.helo = st->helo;
		c.from = st->from;
		c.rcpt = st->rcpt;
		c.rcpts = n ? rp : NULL;
		c.nrcpt = n;
		c.size = st->size;
		c.tls = st->tls;
		if (st->hook == FH_DATA_END) {
			memset(hits, 0, sizeof(hits));
			for (k = 0; k < 3 && st->hdr[k] != NULL; k++)
				fault_scan_line(s, hits, st->hdr[k], 1);
			for (k = 0; k < 3 && st->body[k] != NULL; k++)
				fault_scan_line(s, hits, st->body[k], 0);
			c.hits = hits;
			c.nhits = s->n;
		}
		rc = fault_eval(s, &c, &d);
		got = d.rule ? d.rule->name : NULL;
		T_CHECKF(st->want == NULL ? rc == 0 && got == NULL &&
		    d.act == FA_NONE : rc == 1 && got != NULL &&
		    strcmp(got, st->want) == 0 && d.act == d.rule->act,
		    "eval %s [%s] step %d (%s at %s): rc %d rule %s act %s, "
		    "want %s", tc->name, kind, i + 1, st->what,
		    hook_str(st->hook), rc, got ? got : "none",
		    scn_act_name(d.act), st->want ? st->want : "none");
		if (st->attempt != 0)
			T_CHECKF(d.attempt == st->attempt, "eval %s [%s] step "
			    "%d (%s): attempt %u, want %u", tc->name, kind,
			    i + 1, st->what, d.attempt, st->attempt);
		if (st->left != 0)
			T_CHECKF(fabs(d.left - st->left) < 0.01, "eval %s [%s] "
			    "step %d (%s): %g s left, want %g", tc->name,
			    kind, i + 1, st->what, d.left, st->left);
	}
	engine_stop();
	scn_free(s);
}

static void
test_eval(void)
{
	size_t i;

	for (i = 0; i < NELEM(eval_cases); i++) {
		char dir[64];

		run_eval(&eval_cases[i], NULL);
		if (t_tmpdir(dir, sizeof(dir), "fault") == -1) {
			T_CHECKF(0, "eval %s: mkdtemp", eval_cases[i].name);
			continue;
		}
		run_eval(&eval_cases[i], dir);
		T_CHECKF(t_rmtree(dir) == 0, "eval %s: remove %s",
		    eval_cases[i].name, dir);
	}
}

/* A minimal context at hook h for the tests below. */
static void
mkctx(struct fault_ctx *c, struct sockaddr_storage *sa, enum fault_hook h,
    const char *from, const char *rcpt)
{
	memset(c, 0, sizeof(*c));
	t_sa(CLIENT, sa);
	c->hook = h;
	c->sa = sa;
	c->client = CLIENT;
	c->from = from;
	c->rcpt = rcpt;
}

static void
test_eval_edges(void)
{
	static const struct t_rule plain[] = {
		{ "c", { "hook=connect", "action=close" } },
	};
	struct sockaddr_storage	 sa;
	struct fault_ctx	 c;
	struct fault_decision	 d;
	struct scenario		*s, *empty = scn_new();
	char			 why[512];
	int			 i, rc;

	if (engine_start(NULL, 1, "edges") == -1) {
		scn_free(empty);
		return;
	}
	mkctx(&c, &sa, FH_CONNECT, NULL, NULL);
	memset(&d, 0x5a, sizeof(d));
	rc = fault_eval(NULL, &c, &d);
	T_CHECK(rc == 0 && d.rule == NULL && d.act == FA_NONE &&
	    d.attempt == 0, "no scenario: no rule, decision cleared");
	memset(&d, 0x5a, sizeof(d));
	rc = fault_eval(empty, &c, &d);
	T_CHECK(rc == 0 && d.rule == NULL && d.act == FA_NONE,
	    "empty scenario: no rule");

	/* docs/scenarios.md: with no rules nothing is stored; with any
	 * rule every hook counts, attempt/since rules or not */
	T_CHECKF(store_count(fault.st) == 0, "no rules: %ld records stored",
	    store_count(fault.st));
	if ((s = t_scn_build(plain, NELEM(plain), why, sizeof(why))) == NULL) {
		T_CHECKF(0, "edges: %s", why);
	} else {
		for (i = 0; i < 3; i++) {
			rc = fault_eval(s, &c, &d);
			T_CHECKF(rc == 1 && d.attempt == (unsigned)i + 1,
			    "plain rule, connect %d: rc %d attempt %u, want 1 "
			    "and %d", i + 1, rc, d.attempt, i + 1);
		}
		T_CHECKF(store_count(fault.st) == 1, "plain rule: %ld records "
		    "stored, want 1", store_count(fault.st));
		T_CHECKF(s->v[0]->fired == 3, "fired counts 3, got %ld",
		    s->v[0]->fired);
		scn_free(s);
	}
	scn_free(empty);
	engine_stop();
}

/* The generator: known answers, replay, independence of seeds. */

static const struct {
	uint64_t	 seed;
	uint64_t	 want[4];
} rng_cases[] = {
	/* xoshiro256** seeded by splitmix64 (reference implementation) */
	{ 42, { 0x15780b2e0c2ec716ULL, 0x6104d9866d113a7eULL,
	    0xae17533239e499a1ULL, 0xecb8ad4703b360a1ULL } },
	{ 0, { 0x99ec5f36cb75f2b4ULL, 0xbf6e1f784956452aULL,
	    0x1a5f849d4933e6e0ULL, 0x6aa594f1262d2d2cULL } },
	{ 1, { 0xb3f2af6d0fc710c5ULL, 0x853b559647364ceaULL,
	    0x92f89756082a4514ULL, 0x642e1c7bc266a3a7ULL } },
};

static void
test_rng_known(void)
{
	size_t i, k;

	for (i = 0; i < NELEM(rng_cases); i++) {
		fault_seed(rng_cases[i].seed);
		T_CHECKF(fault.seed == rng_cases[i].seed, "seed %llu: "
		    "fault.seed %llu", (unsigned long long)rng_cases[i].seed,
		    (unsigned long long)fault.seed);
		for (k = 0; k < 4; k++) {
			uint64_t v = fault_rand();

			T_CHECKF(v == rng_cases[i].want[k], "seed %llu draw "
			    "%zu: 0x%016llx, want 0x%016llx",
			    (unsigned long long)rng_cases[i].seed, k,
			    (unsigned long long)v,
			    (unsigned long long)rng_cases[i].want[k]);
		}
	}
}

static void
test_rng_replay(void)
{
	enum { N = 1000 };
	static uint64_t	 a[N], b[N];
	char		 err[64];
	int		 i, same = 0, diff = 0;
	double		 sum = 0, u;

	fault_seed(42);
	for (i = 0; i < N; i++)
		a[i] = fault_rand();
	fault_seed(42);
	for (i = 0; i < N; i++)
		same += fault_rand() == a[i];
	T_CHECKF(same == N, "seed 42 twice: %d of %d draws equal", same, N);

	fault_seed(43);
	for (i = 0; i < N; i++)
		diff += fault_rand() != a[i];
	T_CHECKF(diff == N, "seeds 42 and 43: %d of %d draws differ", diff,
	    N);

	/* fault_init seeds exactly like fault_seed */
	if (fault_init(NULL, 42, 24, 64, err, sizeof(err)) == 0) {
		for (i = 0; i < N; i++)
			b[i] = fault_rand();
		T_CHECK(memcmp(a, b, sizeof(a)) == 0,
		    "fault_init(seed 42) replays fault_seed(42)");
		fault_close();
	} else {
		T_CHECKF(0, "replay: fault_init: %s", err);
	}

	fault_seed(7);
	for (i = 0; i < 20000; i++) {
		u = fault_uniform();
		if (u < 0 || u >= 1) {
			T_CHECKF(0, "fault_uniform draw %d: %g outside [0,1)",
			    i, u);
			break;
		}
		sum += u;
	}
	T_CHECKF(fabs(sum / 20000 - 0.5) < 0.02, "fault_uniform mean %g",
	    sum / 20000);
	T_CHECK(fault_clock_seed() < 1000000000000ULL,
	    "fault_clock_seed fits 12 digits");
}

/* Run 300 MAIL evaluations of a 30 % rule with a fallback; bits out. */
static int
prob_run(struct scenario *s, uint64_t seed, unsigned char *hit, int n)
{
	struct sockaddr_storage	 sa;
	struct fault_ctx	 c;
	struct fault_decision	 d;
	int			 i, count = 0;

	fault_seed(seed);
	mkctx(&c, &sa, FH_MAIL, FROM, NULL);
	for (i = 0; i < n; i++) {
		if (fault_eval(s, &c, &d) != 1 || d.rule == NULL) {
			hit[i] = 9;
			continue;
		}
		hit[i] = strcmp(d.rule->name, "p") == 0;
		count += hit[i];
	}
	return count;
}

static void
test_prob_replay(void)
{
	static const struct t_rule rules[] = {
		{ "p", { "hook=mail", "probability=30%",
		    "reply=451 4.7.1 p" } },
		{ "rest", { "hook=mail", "reply=250 2.1.0 ok" } },
	};
	enum { N = 300 };
	unsigned char	 a[N], b[N], o[N];
	struct scenario	*s;
	char		 why[512];
	int		 na, nb, i, fallthrough = 0;

	if ((s = t_scn_build(rules, NELEM(rules), why, sizeof(why))) == NULL) {
		T_CHECKF(0, "probability: %s", why);
		return;
	}
	if (engine_start(NULL, 7, "probability") == -1) {
		scn_free(s);
		return;
	}
	na = prob_run(s, 7, a, N);
	nb = prob_run(s, 7, b, N);
	T_CHECKF(memcmp(a, b, N) == 0 && na == nb,
	    "probability: seed 7 twice gives the same matches (%d, %d)", na,
	    nb);
	T_CHECKF(na >= 60 && na <= 120, "probability 30%%: %d of %d fired",
	    na, N);
	for (i = 0; i < N; i++)
		fallthrough += a[i] == 9;
	T_CHECKF(fallthrough == 0, "probability: %d evaluations matched "
	    "neither rule", fallthrough);
	prob_run(s, 8, o, N);
	T_CHECK(memcmp(a, o, N) != 0,
	    "probability: seeds 7 and 8 give different matches");
	engine_stop();
	scn_free(s);
}

/* Numbers are drawn only when a rule that needs one is reached. */
static void
test_draw_when_reached(void)
{
	static const struct t_rule rules[] = {
		{ "vip", { "hook=rcpt", "to=vip@y", "action=accept" } },
		{ "p", { "hook=rcpt", "probability=0.5",
		    "reply=451 4.7.1 p" } },
		{ "j", { "hook=data", "delay=1s", "jitter=500ms" } },
	};
	struct sockaddr_storage	 sa;
	struct fault_ctx	 c;
	struct fault_decision	 d;
	struct scenario		*s;
	char			 why[512];
	int			 i;
	uint64_t		 first;

	if ((s = t_scn_build(rules, NELEM(rules), why, sizeof(why))) == NULL) {
		T_CHECKF(0, "draws: %s", why);
		return;
	}
	if (engine_start(NULL, 42, "draws") == -1) {
		scn_free(s);
		return;
	}
	fault_seed(42);
	first = fault_rand();
	fault_seed(42);
	mkctx(&c, &sa, FH_MAIL, FROM, NULL);
	for (i = 0; i < 5; i++)
		fault_eval(s, &c, &d);		/* no rule at mail */
	mkctx(&c, &sa, FH_RCPT, FROM, "vip@y");
	for (i = 0; i < 5; i++)
		fault_eval(s, &c, &d);		/* vip matches before p */
	T_CHECKF(d.rule != NULL && strcmp(d.rule->name, "vip") == 0,
	    "draws: vip rule matched, got %s", d.rule ? d.rule->name : "none");
	T_CHECK(fault_rand() == first,
	    "no number drawn while no probability or jitter rule is reached");

	/* jitter: within delay +- jitter, replayable */
	{
		double	 v[50], lo = 9, hi = -9;
		int	 same = 0;

		fault_seed(5);
		mkctx(&c, &sa, FH_DATA, FROM, NULL);
		for (i = 0; i < 50; i++) {
			fault_eval(s, &c, &d);
			v[i] = d.delay;
			lo = v[i] < lo ? v[i] : lo;
			hi = v[i] > hi ? v[i] : hi;
		}
		T_CHECKF(d.act == FA_DELAY && lo >= 0.5 && hi <= 1.5 &&
		    hi - lo > 0.1, "jitter: act %s, delays %g..%g, want within "
		    "0.5..1.5 and spread", scn_act_name(d.act), lo, hi);
		fault_seed(5);
		for (i = 0; i < 50; i++) {
			fault_eval(s, &c, &d);
			same += d.delay == v[i];
		}
		T_CHECKF(same == 50, "jitter: seed 5 twice, %d of 50 delays "
		    "equal", same);
	}
	engine_stop();
	scn_free(s);
}

/* Jitter larger than the delay never gives a negative delay. */
static void
test_jitter_clamp(void)
{
	static const struct t_rule rules[] = {
		{ "j", { "hook=mail", "delay=100ms", "jitter=1s" } },
	};
	struct sockaddr_storage	 sa;
	struct fault_ctx	 c;
	struct fault_decision	 d;
	struct scenario		*s;
	char			 why[512];
	int			 i, neg = 0, zero = 0;

	if ((s = t_scn_build(rules, NELEM(rules), why, sizeof(why))) == NULL) {
		T_CHECKF(0, "clamp: %s", why);
		return;
	}
	if (engine_start(NULL, 3, "clamp") == -1) {
		scn_free(s);
		return;
	}
	mkctx(&c, &sa, FH_MAIL, FROM, NULL);
	for (i = 0; i < 200; i++) {
		fault_eval(s, &c, &d);
		neg += d.delay < 0;
		zero += d.delay == 0;
	}
	T_CHECKF(neg == 0 && zero > 0, "jitter 1s on 100ms: %d negative, %d "
	    "clamped to 0", neg, zero);
	engine_stop();
	scn_free(s);
}

/* fault_reply_text */

static const struct {
	const char	*name;
	const char	*text;		/* NULL: rule without text */
	const char	*helo, *from, *rcpt;
	const char	*rcpts[2];
	double		 left;
	size_t		 len;		/* 0: 256 */
	const char	*want;
} text_cases[] = {
	{ "every placeholder", "%c|%h|%f|%r|%a|%s|%H|%%", "mx.example", "a@x",
	    "b@y", { NULL }, 19.6, 0,
	    "192.0.2.10|mx.example|a@x|b@y|3|20|smtpfault.test|%" },
	{ "no placeholder", "try again later", NULL, NULL, NULL, { NULL }, 0,
	    0, "try again later" },
	{ "%r falls back to the first recipient", "<%r>", NULL, "a@x", NULL,
	    { "r1@y", "r2@y" }, 0, 0, "<r1@y>" },
	{ "%r at rcpt is the current recipient", "<%r>", NULL, "a@x", "b@y",
	    { "r1@y" }, 0, 0, "<b@y>" },
	{ "%r with no recipient", "<%r>", NULL, NULL, NULL, { NULL }, 0, 0,
	    "<>" },
	{ "%f before MAIL", "<%f>", NULL, NULL, NULL, { NULL }, 0, 0, "<>" },
	{ "%f of the null sender", "<%f>", NULL, "", NULL, { NULL }, 0, 0,
	    "<>" },
	{ "%h before HELO", "[%h]", NULL, NULL, NULL, { NULL }, 0, 0, "[]" },
	{ "unknown placeholders kept", "%x%y %", NULL, NULL, NULL, { NULL },
	    0, 0, "%x%y %" },
	{ "trailing percent", "100%", NULL, NULL, NULL, { NULL }, 0, 0,
	    "100%" },
	{ "%% then a lone %", "%%%", NULL, NULL, NULL, { NULL }, 0, 0, "%%" },
	{ "%%a is literal", "%%a", NULL, NULL, NULL, { NULL }, 0, 0, "%a" },
	{ "control bytes from the client become ?", "%h", "a\x01" "b\r\n",
	    NULL, NULL, { NULL }, 0, 0, "a?b??" },
	{ "multi-line text kept", "first\nsecond %a", NULL, NULL, NULL,
	    { NULL }, 0, 0, "first\nsecond 3" },
	{ "%s of 0", "%s", NULL, NULL, NULL, { NULL }, 0, 0, "0" },
	{ "%s of 0.6", "%s", NULL, NULL, NULL, { NULL }, 0.6, 0, "1" },
	{ "%s of 119.999999", "%s", NULL, NULL, NULL, { NULL }, 119.999999, 0,
	    "120" },
	{ "cut in a literal", "hello", NULL, NULL, NULL, { NULL }, 0, 4,
	    "hel" },
	{ "cut in a placeholder", "<%f>", NULL, "abcdefgh", NULL, { NULL }, 0,
	    6, "<abcd" },
	{ "room for the NUL only", "hello", NULL, NULL, NULL, { NULL }, 0, 1,
	    "" },
	{ "no text", NULL, NULL, NULL, NULL, { NULL }, 0, 0, "" },
};

static void
test_reply_text(void)
{
	size_t i;

	for (i = 0; i < NELEM(text_cases); i++) {
		struct sockaddr_storage	 sa;
		struct fault_ctx	 c;
		struct fault_decision	 d;
		struct fault_rule	 r;
		char			 text[128], buf[256], rb[2][32];
		char			*rp[2];
		size_t			 len = text_cases[i].len ?
					     text_cases[i].len : sizeof(buf);
		int			 n = 0;

		memset(&r, 0, sizeof(r));
		if (text_cases[i].text != NULL) {
			snprintf(text, sizeof(text), "%s", text_cases[i].text);
			r.text = text;
		}
		mkctx(&c, &sa, text_cases[i].rcpt ? FH_RCPT : FH_DATA_END,
		    text_cases[i].from, text_cases[i].rcpt);
		c.helo = text_cases[i].helo;
		c.hostname = "smtpfault.test";
		for (n = 0; n < 2 && text_cases[i].rcpts[n] != NULL; n++) {
			snprintf(rb[n], sizeof(rb[n]), "%s",
			    text_cases[i].rcpts[n]);
			rp[n] = rb[n];
		}
		c.rcpts = rp;
		c.nrcpt = n;
		memset(&d, 0, sizeof(d));
		d.attempt = 3;
		d.left = text_cases[i].left;
		memset(buf, 'Z', sizeof(buf));
		fault_reply_text(&r, &c, &d, buf, len);
		T_CHECKF(memchr(buf, '\0', len) != NULL &&
		    strcmp(buf, text_cases[i].want) == 0,
		    "reply text %s: %s -> %s, want %s", text_cases[i].name,
		    t_shows(text_cases[i].text), t_show(buf, strnlen(buf, len)),
		    t_shows(text_cases[i].want));
	}
	{
		struct fault_rule	 r;
		struct fault_ctx	 c;
		struct fault_decision	 d;
		struct sockaddr_storage	 sa;
		char			 buf[4] = "xyz";

		memset(&r, 0, sizeof(r));
		memset(&d, 0, sizeof(d));
		mkctx(&c, &sa, FH_RCPT, NULL, NULL);
		fault_reply_text(&r, &c, &d, buf, 0);
		T_CHECK(strcmp(buf, "xyz") == 0,
		    "reply text with len 0 writes nothing");
	}
}

/* fault_key */

static const struct {
	const char	*addr, *from, *rcpt;
	int		 v4, v6;
	size_t		 len;		/* 0: 700 */
	const char	*want;
} key_cases[] = {
	{ "192.0.2.77", "Alice@Example.COM", "Bob@Example.org", 24, 64, 0,
	    "192.0.2.0/24|alice@example.com|bob@example.org" },
	{ "192.0.2.77", NULL, NULL, 24, 64, 0, "192.0.2.0/24||" },
	{ "192.0.2.77", "a@b", NULL, 24, 64, 0, "192.0.2.0/24|a@b|" },
	{ "192.0.2.77", "", "r@b", 24, 64, 0, "192.0.2.0/24||r@b" },
	{ "192.0.2.77", "a@b", "c@d", 32, 64, 0, "192.0.2.77|a@b|c@d" },
	{ "192.0.2.77", "a@b", "c@d", 16, 64, 0, "192.0.0.0/16|a@b|c@d" },
	{ "2001:db8:1:2:3:4:5:6", "A@B", NULL, 24, 64, 0,
	    "2001:db8:1:2::/64|a@b|" },
	{ "2001:db8:1:2:3:4:5:6", "a@b", NULL, 24, 48, 0,
	    "2001:db8:1::/48|a@b|" },
	{ "::ffff:192.0.2.77", "a@b", "c@d", 24, 64, 0,
	    "192.0.2.0/24|a@b|c@d" },
	{ "192.0.2.77", "a@b", "c@d", 24, 64, 10, "192.0.2.0" },
};

static void
test_key(void)
{
	size_t i;

	for (i = 0; i < NELEM(key_cases); i++) {
		struct sockaddr_storage	 sa;
		char			 buf[700], err[64];
		size_t			 len = key_cases[i].len ?
					     key_cases[i].len : sizeof(buf);

		if (fault_init(NULL, 1, key_cases[i].v4, key_cases[i].v6, err,
		    sizeof(err)) == -1 || t_sa(key_cases[i].addr, &sa) == -1) {
			T_CHECKF(0, "key %s: setup", key_cases[i].addr);
			continue;
		}
		memset(buf, 'Z', sizeof(buf));
		fault_key(&sa, key_cases[i].from, key_cases[i].rcpt, buf, len);
		T_CHECKF(memchr(buf, '\0', len) != NULL &&
		    strcmp(buf, key_cases[i].want) == 0,
		    "fault_key %s %s %s /%d /%d: %s, want %s",
		    key_cases[i].addr, t_shows(key_cases[i].from),
		    t_shows(key_cases[i].rcpt), key_cases[i].v4,
		    key_cases[i].v6, t_show(buf, strnlen(buf, len)),
		    key_cases[i].want);
		fault_close();
	}
}

/* fault_expire drops triplets by last_seen, on the injected clock. */
static void
test_expire(void)
{
	static const struct t_rule rules[] = {
		{ "f", { "hook=rcpt", "attempt=1-3", "reply=451 4.7.1 f" } },
	};
	int b;

	for (b = 0; b < 2; b++) {
		const char		*kind = b ? "lmdb" : "memory";
		struct sockaddr_storage	 sa;
		struct fault_ctx	 c;
		struct fault_decision	 d;
		struct scenario		*s;
		char			 dir[64], why[512];
		long			 n;

		if (b && t_tmpdir(dir, sizeof(dir), "fault") == -1) {
			T_CHECK(0, "expire: mkdtemp");
			continue;
		}
		if ((s = t_scn_build(rules, NELEM(rules), why,
		    sizeof(why))) == NULL) {
			T_CHECKF(0, "expire: %s", why);
			break;
		}
		if (engine_start(b ? dir : NULL, 1, "expire") == 0) {
			t_clock = 1000;
			mkctx(&c, &sa, FH_RCPT, FROM, "old@y");
			fault_eval(s, &c, &d);
			fault_eval(s, &c, &d);
			t_clock = 2000;
			mkctx(&c, &sa, FH_RCPT, FROM, "new@y");
			fault_eval(s, &c, &d);
			t_clock = 2500;
			n = fault_expire(1000);
			T_CHECKF(n == 1 && store_count(fault.st) == 1,
			    "expire [%s] max_age 1000 at 2500: %ld dropped, "
			    "%ld left, want 1 and 1", kind, n,
			    store_count(fault.st));
			mkctx(&c, &sa, FH_RCPT, FROM, "old@y");
			fault_eval(s, &c, &d);
			T_CHECKF(d.attempt == 1, "expire [%s]: dropped triplet "
			    "starts again, attempt %u", kind, d.attempt);
			n = fault_expire(0);
			T_CHECKF(n == 1 && store_count(fault.st) == 1,
			    "expire [%s] max_age 0 at 2500: %ld dropped, %ld "
			    "left, want 1 and 1", kind, n,
			    store_count(fault.st));
			t_clock = 1e6;
			n = fault_expire(86400);
			T_CHECKF(n == 1 && store_count(fault.st) == 0,
			    "expire [%s] much later: %ld dropped, %ld left",
			    kind, n, store_count(fault.st));
			engine_stop();
			T_CHECKF(fault_expire(0) == 0, "expire [%s] with no "
			    "store: 0", kind);
		}
		scn_free(s);
		if (b)
			T_CHECKF(t_rmtree(dir) == 0, "expire: remove %s", dir);
	}
}

/* LMDB state survives fault_close + fault_init: attempts continue. */
static void
test_state_persists(void)
{
	static const struct t_rule rules[] = {
		{ "f", { "hook=rcpt", "attempt=1-3", "reply=451 4.7.1 f" } },
	};
	struct sockaddr_storage	 sa;
	struct fault_ctx	 c;
	struct fault_decision	 d;
	struct scenario		*s;
	char			 dir[64], why[512];
	int			 i;

	if (t_tmpdir(dir, sizeof(dir), "fault") == -1) {
		T_CHECK(0, "persist: mkdtemp");
		return;
	}
	if ((s = t_scn_build(rules, NELEM(rules), why, sizeof(why))) == NULL) {
		T_CHECKF(0, "persist: %s", why);
		t_rmtree(dir);
		return;
	}
	mkctx(&c, &sa, FH_RCPT, FROM, RCPT);
	for (i = 1; i <= 4; i++) {
		if (engine_start(dir, 1, "persist") == -1)
			break;
		t_clock = 1000 + i;
		fault_eval(s, &c, &d);
		T_CHECKF(d.attempt == (unsigned)i && (i <= 3) ==
		    (d.rule != NULL), "persist: run %d: attempt %u, rule %s",
		    i, d.attempt, d.rule ? d.rule->name : "none");
		engine_stop();
	}
	/* a failing fault_init keeps the running store */
	if (engine_start(NULL, 1, "persist") == 0) {
		struct store	*before = fault.st;
		char		 err[256] = "", bad[128];

		snprintf(bad, sizeof(bad), "%s/no/such/dir", dir);
		T_CHECKF(fault_init(bad, 2, 24, 64, err, sizeof(err)) == -1 &&
		    fault.st == before && err[0] != '\0',
		    "fault_init on a bad directory: err %s, store %s",
		    t_shows(err), fault.st == before ? "kept" : "changed");
		engine_stop();
	}
	scn_free(s);
	T_CHECKF(t_rmtree(dir) == 0, "persist: remove %s", dir);
}

/*
 * RFC 5321 allows 254-byte addresses, so a triplet key can pass LMDB's
 * 511-byte key limit.  Attempts must still count, and the store must not
 * wedge.  Runs in a child with an alarm (see test_store.c).  Exit codes:
 * 0 ok, 1 setup, 10+n wrong attempt at evaluation n, 20 hang guard.
 */
static int
long_addr_child(const char *dir)
{
	static const struct t_rule rules[] = {
		{ "f", { "hook=rcpt", "attempt=1-3", "reply=451 4.7.1 f" } },
	};
	struct sockaddr_storage	 sa;
	struct fault_ctx	 c;
	struct fault_decision	 d;
	struct scenario		*s;
	char			 from[256], rcpt[256], why[512];
	int			 fd, i;

	alarm(5);
	if ((fd = open("/dev/null", O_WRONLY)) != -1)
		dup2(fd, 2);
	memset(from, 'a', 64);
	from[64] = '@';
	memset(from + 65, 'd', 189);
	from[254] = '\0';
	snprintf(rcpt, sizeof(rcpt), "%s", from);
	rcpt[0] = 'b';
	if ((s = t_scn_build(rules, NELEM(rules), why, sizeof(why))) == NULL ||
	    fault_init(dir, 1, 24, 64, why, sizeof(why)) == -1)
		return 1;
	mkctx(&c, &sa, FH_RCPT, from, rcpt);
	for (i = 1; i <= 3; i++) {
		fault_eval(s, &c, &d);
		if (d.attempt != (unsigned)i)
			return 10 + i;
	}
	mkctx(&c, &sa, FH_RCPT, FROM, RCPT);
	fault_eval(s, &c, &d);
	if (d.attempt != 1)
		return 14;
	fault_close();
	scn_free(s);
	return 0;
}

static void
test_long_addresses_lmdb(void)
{
	char	 dir[64];
	pid_t	 pid;
	int	 status = 0;

	if (t_tmpdir(dir, sizeof(dir), "fault") == -1) {
		T_CHECK(0, "long addresses: mkdtemp");
		return;
	}
	fflush(NULL);
	if ((pid = fork()) == 0)
		_exit(long_addr_child(dir));
	if (pid == -1 || waitpid(pid, &status, 0) != pid) {
		T_CHECK(0, "long addresses: fork/wait");
	} else {
		T_CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		    "LMDB, 254-byte sender and recipient (522-byte key): "
		    "attempts must count 1, 2, 3 and a short triplet then "
		    "get 1: %s %d (%s)",
		    WIFEXITED(status) ? "child exit" : "child killed by signal",
		    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
		    WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM ?
		    "hung: LMDB writer lock left held" :
		    WIFEXITED(status) && WEXITSTATUS(status) >= 11 &&
		    WEXITSTATUS(status) <= 13 ? "attempt not counted" :
		    WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "ok" :
		    "see exit codes in test_fault.c");
	}
	T_CHECKF(t_rmtree(dir) == 0, "long addresses: remove %s", dir);
}

CU_TestInfo fault_tests[] = {
	{ "eval cases on both stores", test_eval },
	{ "eval edges", test_eval_edges },
	{ "generator known answers", test_rng_known },
	{ "generator replay", test_rng_replay },
	{ "probability replay", test_prob_replay },
	{ "draws only when reached, jitter", test_draw_when_reached },
	{ "jitter clamp", test_jitter_clamp },
	{ "reply text placeholders", test_reply_text },
	{ "fault_key", test_key },
	{ "fault_expire", test_expire },
	{ "LMDB state persists", test_state_persists },
	{ "LMDB long addresses", test_long_addresses_lmdb },
	CU_TEST_INFO_NULL,
};
