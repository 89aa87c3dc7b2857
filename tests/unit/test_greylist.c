/*
 * test_greylist.c - unit tests for greylist.[ch], the list files the
 *                   spam-* scenarios use, and the [greylist] profiles
 *
 * DESCRIPTION  Table-driven.  Sender normalisation rows are Postgrey's
 *              do_sender_substitutions() cases (lower case, BATV, +ext,
 *              VERP digit runs, no '@').  Netmask rows check the client
 *              network in the triplet key.  A greylist case is a
 *              greylist_conf and a script of checks at given times (the
 *              clock is the `now` argument, so no sleeping), expiries,
 *              store probes and reopens; every check states its whole
 *              outcome (result, seconds left, waited, client passes,
 *              restarted) and every case runs on the memory store and on
 *              LMDB in a mkdtemp() directory, removed afterwards.  List
 *              files: the shipped conf/lists/ files (found from the
 *              fixture directory, ../../../conf/lists) and gl_* fixtures
 *              in tests/unit/data/; a bad line must be reported as
 *              "FILE:LINE: reason".  Profiles: conf_load() of gl_*.ini.
 *
 * SPDX-License-Identifier: MIT
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "greylist.h"
#include "match.h"
#include "store.h"
#include "unit.h"
#include "util.h"

#define CLIENT	"192.0.2.10"
#define HELO	"mx.x.example"
#define FROM	"s@x.example"
#define RCPT	"r@y.example"
#define KEY	"g|192.0.2.0/24|s@x.example|r@y.example"
#define DAY	86400.0

/* ------------------------------------------------ sender normalisation */

static const struct {
	const char	*name;
	const char	*in;
	const char	*want;
} sender_cases[] = {
	{ "plain address unchanged", "s@x.example", "s@x.example" },
	{ "upper case folded", "User.Name@Example.COM",
	    "user.name@example.com" },
	{ "+extension removed", "user+ext@dom.example", "user@dom.example" },
	{ "+extension with digits removed", "list+bounces-42@dom.example",
	    "list@dom.example" },
	{ "empty +extension removed", "user+@dom.example", "user@dom.example" },
	{ "BATV prvs= removed", "prvs=1234abcdef=user@dom.example",
	    "user@dom.example" },
	{ "BATV PRVS= in upper case", "PRVS=1234ABCDEF=User@Dom.Example",
	    "user@dom.example" },
	{ "BATV then VERP", "prvs=0123456789=bounce-1001@list.example",
	    "bounce-#@list.example" },
	{ "SparkPost msprvs1=",
	    "msprvs1=17582Z2TKy0DK=bounces-9178@spmailt.com",
	    "bounces-#@spmailt.com" },
	{ "btv1= with one '='", "btv1=0123456789a=user@dom.example",
	    "user@dom.example" },
	/* Barracuda's real form, as in its envelope senders */
	{ "Barracuda btv1==TAG==",
	    "btv1==34826e458e2==Ryan.Carmichael@dynetics.com",
	    "ryan.carmichael@dynetics.com" },
	{ "prvs without a second '=' kept", "prvs=user@dom.example",
	    "prvs=user@dom.example" },
	{ "VERP digit runs folded", "bounce-12345-678@list.example",
	    "bounce-#-#@list.example" },
	{ "VERP run between dots", "a.1.b@c.example", "a.#.b@c.example" },
	{ "digits glued to letters kept (user123)", "user123@x.example",
	    "user123@x.example" },
	{ "digits glued to letters kept (123user)", "123user@x.example",
	    "123user@x.example" },
	{ "underscore is a word character", "x_123@y.example",
	    "x_123@y.example" },
	{ "lone number local part", "12345@x.example", "#@x.example" },
	{ "digits in the domain kept", "bounce-1@mx1.123.example",
	    "bounce-#@mx1.123.example" },
	{ "null sender", "", "" },
	{ "no '@': lower case only", "MAILER-DAEMON", "mailer-daemon" },
	/* Postgrey: `defined $domain or return $addr` - no substitutions */
	{ "no '@': no +extension or VERP folding", "Bounce-42+Ext",
	    "bounce-42+ext" },
};

static void
test_sender(void)
{
	char	 out[320];
	size_t	 i;

	for (i = 0; i < NELEM(sender_cases); i++) {
		memset(out, 'Z', sizeof(out));
		greylist_sender(sender_cases[i].in, out, sizeof(out));
		out[sizeof(out) - 1] = '\0';
		T_CHECKF(strcmp(out, sender_cases[i].want) == 0,
		    "sender %s: %s -> %s, want %s", sender_cases[i].name,
		    t_shows(sender_cases[i].in), t_shows(out),
		    t_shows(sender_cases[i].want));
	}
}

/* The output is cut to fit and always terminated; len 0 writes nothing. */
static void
test_sender_short_buffer(void)
{
	static const struct {
		const char	*in;
		size_t		 len;
		const char	*want;
	} cut[] = {
		{ "bounce-12345@list.example", 8, "bounce-" },
		{ "bounce-12345@list.example", 9, "bounce-#" },
		{ "bounce-12345@list.example", 10, "bounce-#@" },
		{ "User@Example.COM", 1, "" },
		{ "User@Example.COM", 5, "user" },
	};
	char	 out[64];
	size_t	 i;

	for (i = 0; i < NELEM(cut); i++) {
		memset(out, 'Z', sizeof(out));
		greylist_sender(cut[i].in, out, cut[i].len);
		T_CHECKF(memchr(out, '\0', cut[i].len) != NULL &&
		    strcmp(out, cut[i].want) == 0 && out[cut[i].len] == 'Z',
		    "sender %s into %zu bytes: %s, want %s", cut[i].in,
		    cut[i].len, t_show(out, cut[i].len), t_shows(cut[i].want));
	}
	memset(out, 'Z', sizeof(out));
	greylist_sender("a@b", out, 0);
	T_CHECK(out[0] == 'Z', "sender into 0 bytes writes nothing");
}

/* ------------------------------------------------------------ netmasks */

static const struct {
	const char	*name;
	const char	*addr;
	int		 host, v4bits, v6bits;
	const char	*net;
} mask_cases[] = {
	{ "IPv4 /24", "192.0.2.10", 0, 24, 64, "192.0.2.0/24" },
	{ "IPv4 /24, .255", "192.0.2.255", 0, 24, 64, "192.0.2.0/24" },
	{ "IPv4 /16", "10.1.2.3", 0, 16, 64, "10.1.0.0/16" },
	{ "IPv4 /0", "10.1.2.3", 0, 0, 64, "0.0.0.0/0" },
	{ "IPv6 /64", "2001:db8:1:2:3:4:5:6", 0, 24, 64, "2001:db8:1:2::/64" },
	{ "IPv6 /64, Exchange Online", "2a01:111:f403::1", 0, 24, 64,
	    "2a01:111:f403::/64" },
	{ "IPv6 /48", "2001:db8:1:2:3:4:5:6", 0, 24, 48, "2001:db8:1::/48" },
	{ "v4-mapped IPv6 is its IPv4 /24", "::ffff:192.0.2.10", 0, 24, 64,
	    "192.0.2.0/24" },
	{ "host: IPv4 exact", "192.0.2.10", 1, 32, 128, "192.0.2.10" },
	{ "host: IPv6 exact", "2001:db8::5", 1, 32, 128, "2001:db8::5" },
	{ "host: v4-mapped is the IPv4 address", "::ffff:192.0.2.10", 1, 32,
	    128, "192.0.2.10" },
	/* greylist.h: host = "key on the exact address" by itself */
	{ "host flag alone: IPv4 exact", "192.0.2.10", 1, 24, 64,
	    "192.0.2.10" },
	{ "host flag alone: IPv6 exact", "2001:db8::5", 1, 24, 64,
	    "2001:db8::5" },
};

static struct store *
open_store(const char *dir, const char *what)
{
	struct store	*st;
	char		 err[256] = "";

	if ((st = store_open(dir, err, sizeof(err))) == NULL)
		T_CHECKF(0, "%s: store_open(%s): %s", what,
		    dir ? dir : "NULL", err);
	return st;
}

static void
test_netmask(void)
{
	struct greylist_outcome	 o;
	struct sockaddr_storage	 sa;
	struct greylist_conf	 gc;
	struct store		*st;
	char			 want[256];
	size_t			 i;

	if ((st = open_store(NULL, "netmask")) == NULL)
		return;
	for (i = 0; i < NELEM(mask_cases); i++) {
		memset(&gc, 0, sizeof(gc));
		gc.delay = 300;
		gc.retry_window = 2 * DAY;
		gc.max_age = 35 * DAY;
		gc.host = mask_cases[i].host;
		gc.v4bits = mask_cases[i].v4bits;
		gc.v6bits = mask_cases[i].v6bits;
		if (t_sa(mask_cases[i].addr, &sa) == -1) {
			T_CHECKF(0, "netmask %s: bad address %s",
			    mask_cases[i].name, mask_cases[i].addr);
			continue;
		}
		greylist_check(st, &gc, &sa, HELO, FROM, RCPT,
		    1000 + (double)i, &o);
		snprintf(want, sizeof(want), "g|%s|%s|%s", mask_cases[i].net,
		    FROM, RCPT);
		T_CHECKF(strcmp(o.key, want) == 0, "netmask %s: %s -> key %s, "
		    "want %s", mask_cases[i].name, mask_cases[i].addr,
		    t_shows(o.key), t_shows(want));
	}
	store_close(st);
}

/* ------------------------------------------------ greylist_check scripts */

enum gop { G_END, G_CHECK, G_EXPIRE, G_PUT, G_HAS, G_MISS, G_COUNT,
	G_REOPEN };

struct gstep {
	const char		*what;		/* NULL ends the script */
	enum gop		 op;
	double			 at;		/* now */
	/* NULL: CLIENT, HELO, FROM, RCPT */
	const char		*client, *helo, *from, *rcpt;
	/* G_CHECK: the whole outcome */
	enum greylist_result	 result;
	double			 left, waited;
	unsigned		 awl;
	int			 restarted;
	const char		*key;		/* NULL: not checked */
	/* G_EXPIRE: max_age and how many go; G_COUNT: records */
	double			 max_age;
	long			 n;
};

struct gcase {
	const char		*name;
	int			 lmdb_only;
	struct greylist_conf	 gc;
	struct gstep		 s[20];
};

/* delay, retry_window, max_age, auto_whitelist, awl_interval, host,
 * v4bits, v6bits, helo_in_key */
#define POSTGREY(awl, ivl) \
	{ 300, 2 * DAY, 35 * DAY, awl, ivl, 0, 24, 64, 0 }
#define HOSTKEY \
	{ 300, 2 * DAY, 35 * DAY, 0, 3600, 1, 32, 128, 0 }
#define SPAMD \
	{ 1500, 4 * 3600, 36 * DAY, 0, 3600, 1, 32, 128, 1 }

#define CHK(w, t, r, ...)	{ w, G_CHECK, t, .result = r, __VA_ARGS__ }
#define NEW(w, t, ...)		CHK(w, t, GL_NEW, __VA_ARGS__)
#define EARLY(w, t, ...)	CHK(w, t, GL_EARLY, __VA_ARGS__)
#define PASSED(w, t, ...)	CHK(w, t, GL_PASSED, __VA_ARGS__)
#define KNOWN(w, t, ...)	CHK(w, t, GL_KNOWN, __VA_ARGS__)
#define WHITE(w, t, ...)	CHK(w, t, GL_WHITELISTED, __VA_ARGS__)

/* 254 octets, the longest address RFC 5321 allows (local part 200) */
#define L10	"llllllllll"
#define L50	L10 L10 L10 L10 L10
#define D10	"dddddddddd"
#define D50	D10 D10 D10 D10 D10
#define LONG_FROM	L50 L50 L50 L50 "@" D50 ".ab"
#define LONG_RCPT_A	L50 L50 L50 L50 "@" D50 ".aa"
#define LONG_RCPT_B	L50 L50 L50 L50 "@" D50 ".ab"

static const struct gcase gl_cases[] = {
	{ "new, early retry, passed, known", 0, POSTGREY(0, 3600), {
	    NEW("first attempt", 1000, .left = 300, .key = KEY),
	    EARLY("100 s later", 1100, .left = 200, .key = KEY),
	    EARLY("0.5 s before the delay", 1299.5, .left = 0.5),
	    PASSED("at the delay", 1300, .waited = 300, .key = KEY),
	    KNOWN("a second later", 1301),
	    KNOWN("a month later", 1300 + 30 * DAY),
	    NEW("another recipient is a new triplet", 1300 + 30 * DAY,
		.rcpt = "r2@y.example", .left = 300) } },
	{ "a retry long after the delay passes with its wait", 0,
	    POSTGREY(0, 3600), {
	    NEW("first", 1000, .left = 300),
	    PASSED("a day later", 1000 + DAY, .waited = DAY),
	    KNOWN("again", 1000 + DAY + 1) } },
	{ "retry_window: a late first retry starts over", 0,
	    POSTGREY(0, 3600), {
	    NEW("first", 1000, .left = 300),
	    PASSED("exactly at the window still passes", 1000 + 2 * DAY,
		.waited = 2 * DAY),
	    NEW("r2 first", 1000, .rcpt = "r2@y.example", .left = 300),
	    NEW("r2 past the window: new, restarted", 1001 + 2 * DAY,
		.rcpt = "r2@y.example", .left = 300, .restarted = 1),
	    EARLY("r2 counts from the restart", 1101 + 2 * DAY,
		.rcpt = "r2@y.example", .left = 200),
	    PASSED("r2 passes 300 s after the restart", 1301 + 2 * DAY,
		.rcpt = "r2@y.example", .waited = 300),
	    NEW("r3 first", 1000, .rcpt = "r3@y.example", .left = 300),
	    EARLY("r3 early retry", 1100, .rcpt = "r3@y.example",
		.left = 200),
	    NEW("r3: early retries do not extend the window",
		1001 + 2 * DAY, .rcpt = "r3@y.example", .left = 300,
		.restarted = 1) } },
	{ "what makes a triplet", 0, POSTGREY(0, 3600), {
	    NEW("first", 1000, .left = 300),
	    PASSED("passed", 1300, .waited = 300),
	    KNOWN("other host, same /24", 1301, .client = "192.0.2.99"),
	    KNOWN("v4-mapped address", 1302, .client = "::ffff:192.0.2.10"),
	    KNOWN("sender case and +extension", 1303,
		.from = "S+news@X.Example"),
	    KNOWN("recipient case", 1304, .rcpt = "R@Y.EXAMPLE"),
	    KNOWN("other HELO (not in the key)", 1305, .helo = "other.example"),
	    NEW("other /24", 1306, .client = "192.0.3.10", .left = 300,
		.key = "g|192.0.3.0/24|s@x.example|r@y.example"),
	    NEW("other sender", 1307, .from = "t@x.example", .left = 300),
	    NEW("other recipient", 1308, .rcpt = "q@y.example",
		.left = 300) } },
	{ "VERP and BATV senders of one list share a triplet", 0,
	    POSTGREY(0, 3600), {
	    NEW("bounce-1001", 1000, .from = "bounce-1001@list.example",
		.left = 300, .key = "g|192.0.2.0/24|bounce-#@list.example|"
		"r@y.example"),
	    EARLY("bounce-1002", 1100, .from = "bounce-1002@list.example",
		.left = 200),
	    PASSED("prvs=...=bounce-1003", 1300,
		.from = "prvs=0123456789=Bounce-1003@List.Example",
		.waited = 300),
	    KNOWN("bounce-1004+x", 1400, .from = "bounce-1004+x@list.example"),
	    NEW("bounce1005 (no boundary) is another", 1500,
		.from = "bounce1005@list.example", .left = 300) } },
	{ "IPv6 clients by /64", 0, POSTGREY(0, 3600), {
	    NEW("first", 1000, .client = "2001:db8:1:2::10", .left = 300,
		.key = "g|2001:db8:1:2::/64|s@x.example|r@y.example"),
	    EARLY("same /64", 1100, .client = "2001:db8:1:2:ffff::1",
		.left = 200),
	    NEW("other /64", 1200, .client = "2001:db8:1:3::10", .left = 300),
	    PASSED("same /64 after the delay", 1300,
		.client = "2001:db8:1:2::99", .waited = 300) } },
	{ "netmask host: the exact address", 0, HOSTKEY, {
	    NEW("first", 1000, .left = 300,
		.key = "g|192.0.2.10|s@x.example|r@y.example"),
	    PASSED("passed", 1300, .waited = 300),
	    NEW("neighbour in the /24", 1301, .client = "192.0.2.11",
		.left = 300, .key = "g|192.0.2.11|s@x.example|r@y.example"),
	    KNOWN("v4-mapped of the same address", 1302,
		.client = "::ffff:192.0.2.10"),
	    NEW("IPv6", 1303, .client = "2001:db8::1", .left = 300,
		.key = "g|2001:db8::1|s@x.example|r@y.example"),
	    NEW("IPv6 neighbour", 1304, .client = "2001:db8::2",
		.left = 300) } },
	{ "helo_in_key (spamd) separates triplets by HELO", 0, SPAMD, {
	    NEW("first", 1000, .helo = "a.example", .left = 1500,
		.key = "g|192.0.2.10|s@x.example|r@y.example|a.example"),
	    NEW("other HELO", 1100, .helo = "b.example", .left = 1500,
		.key = "g|192.0.2.10|s@x.example|r@y.example|b.example"),
	    EARLY("same HELO, upper case", 1500, .helo = "A.EXAMPLE",
		.left = 1000),
	    PASSED("after 25 minutes", 2500, .helo = "a.example",
		.waited = 1500),
	    EARLY("b still waits", 2500, .helo = "b.example", .left = 100),
	    NEW("past the 4 h window", 1101 + 4 * 3600, .helo = "b.example",
		.left = 1500, .restarted = 1) } },
	{ "auto-whitelist: counted once per awl_interval", 0,
	    POSTGREY(2, 3600), {
	    NEW("A first", 1000, .left = 300, .awl = 0),
	    EARLY("A early: not a pass", 1100, .left = 200, .awl = 0),
	    PASSED("A passed: 1", 1300, .waited = 300, .awl = 1),
	    KNOWN("A known within the hour: still 1", 1400, .awl = 1),
	    NEW("B new, not yet whitelisted", 1500, .rcpt = "b@y.example",
		.left = 300, .awl = 1),
	    KNOWN("A known an hour after the pass: 2", 1300 + 3600,
		.awl = 2),
	    WHITE("C: whitelisted at once", 4901, .rcpt = "c@y.example",
		.awl = 2),
	    WHITE("B too, though it still waited", 4902,
		.rcpt = "b@y.example", .awl = 2),
	    WHITE("another host of the /24", 4903, .client = "192.0.2.77",
		.rcpt = "d@y.example", .awl = 2),
	    NEW("another /24 is not", 4904, .client = "198.51.100.1",
		.rcpt = "d@y.example", .left = 300, .awl = 0) } },
	{ "auto-whitelist: awl_interval 0 counts every pass", 0,
	    POSTGREY(3, 0), {
	    NEW("A first", 1000, .left = 300, .awl = 0),
	    PASSED("A passed: 1", 1300, .waited = 300, .awl = 1),
	    KNOWN("A again, same second: 2", 1300, .awl = 2),
	    KNOWN("A again: 3", 1301, .awl = 3),
	    WHITE("B whitelisted", 1302, .rcpt = "b@y.example", .awl = 3) } },
	{ "auto_whitelist 0 is off", 0, POSTGREY(0, 0), {
	    NEW("A first", 1000, .left = 300),
	    PASSED("A passed", 1300, .waited = 300),
	    KNOWN("A", 1301), KNOWN("A", 1302), KNOWN("A", 1303),
	    KNOWN("A", 1304), KNOWN("A", 1305), KNOWN("A", 1306),
	    NEW("B still greylisted", 1307, .rcpt = "b@y.example",
		.left = 300),
	    { "no a| record", G_MISS, .key = "a|192.0.2.0/24" } } },
	{ "expire: max_age, strictly older, fault keys untouched", 0,
	    POSTGREY(2, 3600), {
	    { "a plain fault key, very old", G_PUT, 10,
		.key = "192.0.2.0/24|s@x.example|r@y.example" },
	    { "a plain client key, very old", G_PUT, 10,
		.key = "192.0.2.0/24||" },
	    NEW("A first", 1000, .left = 300),
	    PASSED("A passed", 1300, .waited = 300, .awl = 1),
	    NEW("B seen later", 5000, .rcpt = "b@y.example", .left = 300,
		.awl = 1),
	    { "count", G_COUNT, .n = 5 },
	    { "A last seen exactly max_age ago stays", G_EXPIRE, 5300,
		.max_age = 4000, .n = 0 },
	    { "A a second older goes", G_EXPIRE, 5301, .max_age = 4000,
		.n = 1 },
	    { "A gone", G_MISS, .key = KEY },
	    { "B kept", G_HAS,
		.key = "g|192.0.2.0/24|s@x.example|b@y.example" },
	    { "client record kept (seen at 5000)", G_HAS,
		.key = "a|192.0.2.0/24" },
	    { "plain fault key untouched", G_HAS,
		.key = "192.0.2.0/24|s@x.example|r@y.example" },
	    NEW("A starts over", 5302, .left = 300, .awl = 1),
	    { "everything greylist goes", G_EXPIRE, 1e6, .max_age = 10,
		.n = 3 },
	    { "client record gone", G_MISS, .key = "a|192.0.2.0/24" },
	    { "plain fault keys left", G_COUNT, .n = 2 },
	    { "plain fault key still there", G_HAS,
		.key = "192.0.2.0/24||" },
	    { "nothing more to expire", G_EXPIRE, 2e6, .max_age = 10,
		.n = 0 } } },
	{ "254-octet addresses keep their triplets apart", 0,
	    POSTGREY(0, 3600), {
	    NEW("A first", 1000, .from = LONG_FROM, .rcpt = LONG_RCPT_A,
		.left = 300),
	    EARLY("A early", 1100, .from = LONG_FROM, .rcpt = LONG_RCPT_A,
		.left = 200),
	    NEW("B differs in the last octet", 1200, .from = LONG_FROM,
		.rcpt = LONG_RCPT_B, .left = 300),
	    PASSED("A passes", 1300, .from = LONG_FROM, .rcpt = LONG_RCPT_A,
		.waited = 300) } },
	{ "LMDB: the table survives a reopen", 1, POSTGREY(2, 3600), {
	    NEW("first", 1000, .left = 300),
	    { "reopen", G_REOPEN, .at = 0 },
	    EARLY("early after the reopen", 1100, .left = 200),
	    PASSED("passed", 1300, .waited = 300, .awl = 1),
	    { "reopen", G_REOPEN, .at = 0 },
	    KNOWN("known after the second reopen", 1400, .awl = 1),
	    KNOWN("counted an hour later", 4900, .awl = 2),
	    { "reopen", G_REOPEN, .at = 0 },
	    WHITE("whitelisted after the third", 5000,
		.rcpt = "b@y.example", .awl = 2) } },
};

static int
near(double a, double b)
{
	return fabs(a - b) < 1e-6;
}

static struct frec
plain_rec(double t)
{
	struct frec r;

	memset(&r, 0, sizeof(r));
	r.first_seen = r.last_seen = t;
	r.attempts = 1;
	return r;
}

static void
run_gcase(const struct gcase *tc, const char *dir)
{
	const char	*kind = dir ? "lmdb" : "memory";
	struct store	*st;
	char		 what[200];
	int		 i;

	snprintf(what, sizeof(what), "greylist %s [%s]", tc->name, kind);
	if ((st = open_store(dir, what)) == NULL)
		return;
	for (i = 0; i < 20 && tc->s[i].what != NULL; i++) {
		const struct gstep	*s = &tc->s[i];
		struct greylist_outcome	 o;
		struct sockaddr_storage	 sa;
		struct frec		 r;
		long			 n;
		int			 rc;

		switch (s->op) {
		case G_CHECK:
			if (t_sa(s->client ? s->client : CLIENT, &sa) == -1) {
				T_CHECKF(0, "%s step %d: bad client", what, i);
				break;
			}
			memset(&o, 0x5a, sizeof(o));
			rc = greylist_check(st, &tc->gc, &sa,
			    s->helo ? s->helo : HELO, s->from ? s->from : FROM,
			    s->rcpt ? s->rcpt : RCPT, s->at, &o);
			T_CHECKF(rc == (s->result == GL_NEW ||
			    s->result == GL_EARLY) && o.result == s->result &&
			    near(o.left, s->left) &&
			    near(o.waited, s->waited) && o.awl == s->awl &&
			    o.restarted == s->restarted,
			    "%s step %d (%s) at %.1f: rc %d %s left %g waited "
			    "%g awl %u restarted %d; want rc %d %s left %g "
			    "waited %g awl %u restarted %d", what, i, s->what,
			    s->at,
			    rc, greylist_result_name(o.result), o.left,
			    o.waited, o.awl, o.restarted,
			    s->result == GL_NEW || s->result == GL_EARLY,
			    greylist_result_name(s->result), s->left,
			    s->waited, s->awl, s->restarted);
			T_CHECKF(memchr(o.key, '\0', sizeof(o.key)) != NULL &&
			    strlen(o.key) <= STORE_KEY_MAX &&
			    strncmp(o.key, "g|", 2) == 0,
			    "%s step %d (%s): key %s", what, i, s->what,
			    t_show(o.key, strnlen(o.key, sizeof(o.key))));
			if (s->key != NULL)
				T_CHECKF(strcmp(o.key, s->key) == 0,
				    "%s step %d (%s): key %s, want %s", what, i,
				    s->what, t_shows(o.key), t_shows(s->key));
			break;
		case G_EXPIRE:
			n = greylist_expire(st, s->max_age, s->at);
			T_CHECKF(n == s->n, "%s step %d (%s): expire(max_age "
			    "%g, now %g) = %ld, want %ld", what, i, s->what,
			    s->max_age, s->at, n, s->n);
			break;
		case G_PUT:
			r = plain_rec(s->at);
			T_CHECKF(store_put(st, s->key, &r) == 0,
			    "%s step %d (%s): put %s", what, i, s->what,
			    s->key);
			break;
		case G_HAS:
		case G_MISS:
			rc = store_get(st, s->key, &r);
			T_CHECKF(rc == (s->op == G_HAS ? 0 : 1),
			    "%s step %d (%s): get %s = %d, want %d", what, i,
			    s->what, s->key, rc, s->op == G_HAS ? 0 : 1);
			break;
		case G_COUNT:
			n = store_count(st);
			T_CHECKF(n == s->n, "%s step %d (%s): %ld records, "
			    "want %ld", what, i, s->what, n, s->n);
			break;
		case G_REOPEN:
			store_close(st);
			if ((st = open_store(dir, what)) == NULL)
				return;
			break;
		case G_END:
			break;
		}
	}
	store_close(st);
}

static void
test_check_scripts(void)
{
	size_t i;

	for (i = 0; i < NELEM(gl_cases); i++) {
		char dir[64];

		if (!gl_cases[i].lmdb_only)
			run_gcase(&gl_cases[i], NULL);
		if (t_tmpdir(dir, sizeof(dir), "greylist") == -1) {
			T_CHECKF(0, "greylist %s: mkdtemp failed",
			    gl_cases[i].name);
			continue;
		}
		run_gcase(&gl_cases[i], dir);
		T_CHECKF(t_rmtree(dir) == 0, "greylist %s: remove %s",
		    gl_cases[i].name, dir);
	}
}

/* greylist_check() with no from/rcpt/helo (NULL) must not crash. */
static void
test_check_nulls(void)
{
	struct greylist_conf	 gc = SPAMD;
	struct greylist_outcome	 o;
	struct sockaddr_storage	 sa;
	struct store		*st;
	int			 rc;

	if ((st = open_store(NULL, "nulls")) == NULL)
		return;
	t_sa(CLIENT, &sa);
	rc = greylist_check(st, &gc, &sa, NULL, NULL, NULL, 1000, &o);
	T_CHECKF(rc == 1 && o.result == GL_NEW &&
	    strcmp(o.key, "g|192.0.2.10|||") == 0,
	    "NULL helo/from/rcpt: rc %d %s key %s", rc,
	    greylist_result_name(o.result), t_shows(o.key));
	rc = greylist_check(st, &gc, &sa, "", "", "", 1100, &o);
	T_CHECKF(rc == 1 && o.result == GL_EARLY,
	    "empty strings are the same triplet as NULL: rc %d %s", rc,
	    greylist_result_name(o.result));
	store_close(st);
}

static void
test_result_names(void)
{
	static const struct {
		enum greylist_result	 r;
		const char		*name;
	} names[] = {
		{ GL_NEW, "new" }, { GL_EARLY, "early_retry" },
		{ GL_PASSED, "passed" }, { GL_KNOWN, "known" },
		{ GL_WHITELISTED, "whitelisted" },
		{ (enum greylist_result)99, "?" },
	};
	size_t i;

	for (i = 0; i < NELEM(names); i++)
		T_CHECKF(strcmp(greylist_result_name(names[i].r),
		    names[i].name) == 0, "result name %d: %s, want %s",
		    (int)names[i].r, greylist_result_name(names[i].r),
		    names[i].name);
}

/* ---------------------------------------------------------- list files */

/* conf/lists/ of the tree the fixtures are in (static buffer). */
static const char *
lists_dir(void)
{
	static char dir[4200];

	snprintf(dir, sizeof(dir), "%s/../../../conf/lists", t_data_dir());
	return dir;
}

static void
test_shipped_lists(void)
{
	static const struct {
		const char	*addr;
		int		 in;
	} exo[] = {
		{ "40.107.1.2", 1 }, { "40.92.0.1", 1 }, { "40.93.255.255", 1 },
		{ "40.94.0.0", 0 }, { "52.100.0.1", 1 },
		{ "52.103.255.255", 1 },
		{ "52.104.0.0", 0 }, { "104.47.127.255", 1 },
		{ "104.47.128.0", 0 }, { "2a01:111:f403::1", 1 },
		{ "2a01:111:f400:abcd::25", 1 }, { "2a01:111:f404::1", 0 },
		{ "::ffff:40.107.1.2", 1 }, { "192.0.2.10", 0 },
		{ "127.0.0.1", 0 }, { "10.1.2.3", 0 },
	};
	static const struct {
		const char	*helo;
		int		 in;
	} helo[] = {
		{ "NAM12-BN8-obe.outbound.protection.outlook.com", 1 },
		{ "EUR05-DB8-OBE.OUTBOUND.PROTECTION.OUTLOOK.COM", 1 },
		{ "mail-db8eur05on2093.outbound.protection.outlook.com", 1 },
		{ "mail.example.com", 0 },
		{ "outbound.protection.outlook.com", 0 },
		{ "x.outbound.protection.outlook.com.evil.example", 0 },
		{ "mail.protection.outlook.com", 0 },
	};
	struct cidr_list	 l;
	struct glob_list	 g;
	struct sockaddr_storage	 sa;
	char			 val[4400], sdir[4400], err[512] = "";
	size_t			 i;
	int			 rc;

	rc = cidr_list_parse(&l, "@exchange-online.cidr", lists_dir(), err,
	    sizeof(err));
	T_CHECKF(rc == 0 && l.n == 6, "exchange-online.cidr in %s: rc %d, "
	    "%zu entries, err %s", lists_dir(), rc, l.n, t_shows(err));
	for (i = 0; rc == 0 && i < NELEM(exo); i++) {
		t_sa(exo[i].addr, &sa);
		T_CHECKF(cidr_list_match(&l, &sa) == exo[i].in,
		    "exchange-online.cidr: %s %s", exo[i].addr,
		    exo[i].in ? "should match" : "should not match");
	}
	if (rc == 0)
		cidr_list_free(&l);

	/* as the spam-* scenarios name it, from conf/scenarios/ */
	snprintf(sdir, sizeof(sdir), "%s/../scenarios", lists_dir());
	rc = cidr_list_parse(&l, "@../lists/exchange-online.cidr", sdir, err,
	    sizeof(err));
	T_CHECKF(rc == 0 && l.n == 6, "@../lists/exchange-online.cidr from "
	    "%s: rc %d, err %s", sdir, rc, t_shows(err));
	if (rc == 0)
		cidr_list_free(&l);

	rc = glob_list_parse(&g, "@../lists/exchange-online.helo", sdir, err,
	    sizeof(err));
	T_CHECKF(rc == 0 && g.n == 1, "@../lists/exchange-online.helo: rc "
	    "%d, %zu entries, err %s", rc, g.n, t_shows(err));
	for (i = 0; rc == 0 && i < NELEM(helo); i++)
		T_CHECKF(glob_list_match(&g, helo[i].helo) == helo[i].in,
		    "exchange-online.helo: %s %s", helo[i].helo,
		    helo[i].in ? "should match" : "should not match");
	if (rc == 0)
		glob_list_free(&g);

	/* a glob list file needs a '/' in its name: "@name" is a pattern */
	snprintf(val, sizeof(val), "@%s/exchange-online.helo", lists_dir());
	rc = glob_list_parse(&g, val, NULL, err, sizeof(err));
	T_CHECKF(rc == 0 && g.n == 1, "exchange-online.helo by path: rc %d",
	    rc);
	if (rc == 0)
		glob_list_free(&g);
	rc = glob_list_parse(&g, "@exchange-online.helo", lists_dir(), err,
	    sizeof(err));
	T_CHECKF(rc == 0 && g.n == 1 &&
	    strcmp(g.v[0], "@exchange-online.helo") == 0,
	    "\"@exchange-online.helo\" is a domain pattern, not a file: rc %d "
	    "first %s", rc, rc == 0 ? t_shows(g.v[0]) : "-");
	if (rc == 0)
		glob_list_free(&g);
}

/* Fixture list files: good ones parse, a bad line says FILE:LINE. */
static const struct {
	const char	*name;
	const char	*file;
	int		 glob;
	int		 n;		/* entries when good */
	int		 line;		/* error line; 0 = no line */
	const char	*text;		/* in the error; NULL = good */
} file_cases[] = {
	{ "good glob file, comments and indents", "gl_good.helo", 1, 3, 0,
	    NULL },
	{ "bad IPv6 prefix on line 6", "gl_exo_bad.cidr", 0, 0, 6,
	    "2a01:111:f400::/129" },
	{ "two entries on one line", "gl_two_per_line.cidr", 0, 0, 3,
	    "40.107.0.0/16 52.100.0.0/14" },
	{ "CRLF file, bad address on line 3", "gl_crlf_bad.cidr", 0, 0, 3,
	    "\"10.0.0.300\"" },
	{ "IPv4 /33 on line 1", "gl_v4_33.cidr", 0, 0, 1, "40.107.0.0/33" },
	{ "comments only: empty address list", "gl_comments.cidr", 0, 0, 0,
	    "empty address list" },
	{ "comments only: empty pattern list", "gl_comments.helo", 1, 0, 0,
	    "empty pattern list" },
	{ "missing file names the path", "gl_no_such.cidr", 0, 0, 0,
	    "gl_no_such.cidr" },
};

static void
test_list_files(void)
{
	char	 val[4400], err[600], pre[4400];
	size_t	 i;

	for (i = 0; i < NELEM(file_cases); i++) {
		struct cidr_list	 l;
		struct glob_list	 g;
		size_t			 n = 0;
		int			 rc;

		/* a path with '/', so globs read it as a file */
		snprintf(val, sizeof(val), "@%s",
		    t_data_path(file_cases[i].file));
		err[0] = '\0';
		if (file_cases[i].glob) {
			rc = glob_list_parse(&g, val, NULL, err, sizeof(err));
			n = rc == 0 ? g.n : 0;
			if (rc == 0)
				glob_list_free(&g);
		} else {
			rc = cidr_list_parse(&l, val, NULL, err, sizeof(err));
			n = rc == 0 ? l.n : 0;
			if (rc == 0)
				cidr_list_free(&l);
		}
		if (file_cases[i].text == NULL) {
			T_CHECKF(rc == 0 && n == (size_t)file_cases[i].n,
			    "list %s: rc %d, %zu entries (want %d), err %s",
			    file_cases[i].name, rc, n, file_cases[i].n,
			    t_shows(err));
			continue;
		}
		T_CHECKF(rc == -1 && strstr(err, file_cases[i].text) != NULL &&
		    strchr(err, '\r') == NULL && strchr(err, '\n') == NULL,
		    "list %s: rc %d, err %s, want it to name %s",
		    file_cases[i].name, rc, t_shows(err),
		    t_shows(file_cases[i].text));
		if (file_cases[i].line > 0) {
			snprintf(pre, sizeof(pre), "%s:%d: ",
			    t_data_path(file_cases[i].file),
			    file_cases[i].line);
			T_CHECKF(strncmp(err, pre, strlen(pre)) == 0,
			    "list %s: err %s, want prefix %s",
			    file_cases[i].name, t_shows(err), t_shows(pre));
		}
	}
}

/* ------------------------------------------------------ conf profiles */

struct glwant {
	double		 delay, retry_window, max_age, awl_interval;
	long		 auto_whitelist;
	const char	*netmask;
	long		 v4, v6;
	int		 helo_in_key;
	const char	*stage;
	int		 code;
	const char	*ecode;
	const char	*text;
};

#define PG_TEXT	"<%r>: Recipient address rejected: Greylisted, see " \
		"http://postgrey.schweikert.ch/help/%D.html"
#define W_POSTGREY { 300, 2 * DAY, 35 * DAY, 3600, 5, "subnet", 24, 64, 0, \
	"rcpt", 451, "4.7.1", PG_TEXT }
#define W_MILTER { 1800, 5 * DAY, DAY, 3600, 0, "host", 24, 64, 0, "rcpt", \
	451, "4.7.1", "Greylisting in action, please come back in %s seconds" }
#define W_SPAMD { 1500, 4 * 3600, 36 * DAY, 3600, 0, "host", 24, 64, 1, \
	"data_end", 451, "4.7.1", "Temporary failure, please try again later." }

static const struct {
	const char	*name;
	const char	*files[3];	/* loaded in order into one conf */
	struct glwant	 w;
} profile_cases[] = {
	{ "defaults are postgrey", { NULL }, W_POSTGREY },
	{ "profile = postgrey", { "gl_postgrey.ini" }, W_POSTGREY },
	{ "profile = milter-greylist", { "gl_milter.ini" }, W_MILTER },
	{ "profile = spamd", { "gl_spamd.ini" }, W_SPAMD },
	{ "spamd with explicit delay, netmask and reply",
	    { "gl_spamd_override.ini" }, { 90, 4 * 3600, 36 * DAY, 3600, 0,
	    "subnet", 24, 64, 1, "data_end", 450, "4.7.1",
	    "Come back in %s seconds" } },
	{ "a later file's profile replaces an earlier profile's defaults",
	    { "gl_milter.ini", "gl_spamd.ini" }, W_SPAMD },
	/* -c with profile = spamd, then a scenario with profile = postgrey */
	{ "a later profile = postgrey drops an earlier profile's defaults",
	    { "gl_spamd.ini", "gl_postgrey.ini" }, W_POSTGREY },
	{ "explicit keys of an earlier file stay under a later profile",
	    { "gl_spamd_override.ini", "gl_milter.ini" }, { 90, 5 * DAY, DAY,
	    3600, 0, "subnet", 24, 64, 0, "rcpt", 450, "4.7.1",
	    "Come back in %s seconds" } },
};

static void
check_glwant(const char *name, const struct conf *c, const struct glwant *w)
{
	T_CHECKF(near(c->gl_delay, w->delay) &&
	    near(c->gl_retry_window, w->retry_window) &&
	    near(c->gl_max_age, w->max_age) &&
	    near(c->gl_awl_interval, w->awl_interval) &&
	    c->gl_auto_whitelist == w->auto_whitelist,
	    "profile %s: delay %g retry_window %g max_age %g awl_interval %g "
	    "auto_whitelist %ld; want %g %g %g %g %ld", name, c->gl_delay,
	    c->gl_retry_window, c->gl_max_age, c->gl_awl_interval,
	    c->gl_auto_whitelist, w->delay, w->retry_window, w->max_age,
	    w->awl_interval, w->auto_whitelist);
	T_CHECKF(c->gl_netmask && strcmp(c->gl_netmask, w->netmask) == 0 &&
	    c->gl_ipv4_cidr == w->v4 && c->gl_ipv6_cidr == w->v6 &&
	    c->gl_helo_in_key == w->helo_in_key && c->gl_stage &&
	    strcmp(c->gl_stage, w->stage) == 0,
	    "profile %s: netmask %s /%ld /%ld helo_in_key %d stage %s; want "
	    "%s /%ld /%ld %d %s", name, t_shows(c->gl_netmask),
	    c->gl_ipv4_cidr, c->gl_ipv6_cidr, c->gl_helo_in_key,
	    t_shows(c->gl_stage), w->netmask, w->v4, w->v6, w->helo_in_key,
	    w->stage);
	T_CHECKF(c->gl_code == w->code && c->gl_ecode &&
	    strcmp(c->gl_ecode, w->ecode) == 0 && c->gl_text &&
	    strcmp(c->gl_text, w->text) == 0,
	    "profile %s: reply %d %s %s; want %d %s %s", name, c->gl_code,
	    t_shows(c->gl_ecode), t_shows(c->gl_text), w->code, w->ecode,
	    w->text);
}

static void
test_profiles(void)
{
	size_t i;

	for (i = 0; i < NELEM(profile_cases); i++) {
		struct conf		*c = conf_new();
		struct conf_errs	 errs = { NULL, 0 };
		int			 k, rc = 0;

		for (k = 0; k < 3 && profile_cases[i].files[k] != NULL; k++) {
			char path[4200];

			snprintf(path, sizeof(path), "%s",
			    t_data_path(profile_cases[i].files[k]));
			rc |= conf_load(c, path, &errs);
		}
		rc |= conf_check(c, &errs);
		T_CHECKF(rc == 0 && errs.n == 0, "profile %s: rc %d, %d "
		    "errors, first %s", profile_cases[i].name, rc, errs.n,
		    errs.n ? t_shows(errs.msg[0]) : "-");
		if (rc == 0)
			check_glwant(profile_cases[i].name, c,
			    &profile_cases[i].w);
		conf_errs_free(&errs);
		conf_free(c);
	}
}

/* A command-line override (conf_set) beats the profile too. */
static void
test_profile_conf_set(void)
{
	struct conf		*c = conf_new();
	struct conf_errs	 errs = { NULL, 0 };
	char			 path[4200];
	int			 rc;

	snprintf(path, sizeof(path), "%s", t_data_path("gl_spamd.ini"));
	rc = conf_load(c, path, &errs);
	rc |= conf_set(c, "greylist", "delay", "2s", &errs);
	rc |= conf_set(c, "greylist", "stage", "rcpt", &errs);
	rc |= conf_check(c, &errs);
	T_CHECKF(rc == 0 && errs.n == 0 && near(c->gl_delay, 2) &&
	    strcmp(c->gl_stage, "rcpt") == 0 && c->gl_helo_in_key == 1 &&
	    strcmp(c->gl_netmask, "host") == 0,
	    "spamd + conf_set delay 2s, stage rcpt: rc %d, %d errors (%s), "
	    "delay %g stage %s helo_in_key %d netmask %s", rc, errs.n,
	    errs.n ? t_shows(errs.msg[0]) : "-", c->gl_delay,
	    t_shows(c->gl_stage), c->gl_helo_in_key, t_shows(c->gl_netmask));
	conf_errs_free(&errs);
	conf_free(c);
}

/* Bad [greylist] values: every one is reported, naming key and value. */
static const struct {
	const char	*name;
	const char	*file;
	const char	*want[4];	/* each must appear in some message */
	int		 line[4];	/* its FILE:LINE; 0 = not checked */
} bad_profile_cases[] = {
	{ "profile = bogus", "gl_bogus_profile.ini",
	    .want = { "[greylist] profile", "bogus" } },
	{ "bad stage, netmask and reply all reported", "gl_bad_values.ini",
	    .want = { "[greylist] stage = \"connect\"",
	      "[greylist] netmask = \"/24\"",
	      "[greylist] reply = \"250 2.0.0 Greylisted\"" } },
	{ "reply without a code", "gl_bad_reply.ini",
	    .want = { "[greylist] reply = \"Greylisted, try again later\"" } },
	{ "typed keys out of range, with their lines", "gl_bad_types.ini",
	    .want = { "[greylist] delay = \"soon\"",
	      "[greylist] auto_whitelist = \"-1\"",
	      "[greylist] ipv4_cidr = \"33\"",
	      "[greylist] helo_in_key = \"maybe\"" },
	    .line = { 3, 4, 5, 6 } },
};

static void
test_bad_profiles(void)
{
	size_t i;

	for (i = 0; i < NELEM(bad_profile_cases); i++) {
		struct conf		*c = conf_new();
		struct conf_errs	 errs = { NULL, 0 };
		char			 path[4200], pre[4300];
		int			 rc, k, m, found;

		snprintf(path, sizeof(path), "%s",
		    t_data_path(bad_profile_cases[i].file));
		rc = conf_load(c, path, &errs);
		T_CHECKF(rc == -1 && errs.n >= 1, "bad %s: rc %d, %d errors",
		    bad_profile_cases[i].name, rc, errs.n);
		for (k = 0; k < 4 && bad_profile_cases[i].want[k]; k++) {
			const char *w = bad_profile_cases[i].want[k];

			pre[0] = '\0';
			if (bad_profile_cases[i].line[k] > 0)
				snprintf(pre, sizeof(pre), "%s:%d: ", path,
				    bad_profile_cases[i].line[k]);
			for (m = 0, found = 0; m < errs.n && !found; m++)
				found = strstr(errs.msg[m], w) != NULL &&
				    strncmp(errs.msg[m], pre, strlen(pre)) == 0;
			T_CHECKF(found, "bad %s: no message %s...%s among %d "
			    "(first %s)", bad_profile_cases[i].name, pre, w,
			    errs.n, errs.n ? t_shows(errs.msg[0]) : "-");
		}
		conf_errs_free(&errs);
		conf_free(c);
	}
}

CU_TestInfo greylist_tests[] = {
	{ "sender normalisation (Postgrey)", test_sender },
	{ "sender normalisation into short buffers", test_sender_short_buffer },
	{ "client network in the key", test_netmask },
	{ "greylist_check scripts on both stores", test_check_scripts },
	{ "greylist_check without helo, from, rcpt", test_check_nulls },
	{ "result names", test_result_names },
	{ "shipped conf/lists files", test_shipped_lists },
	{ "list files: FILE:LINE errors", test_list_files },
	{ "[greylist] profiles", test_profiles },
	{ "[greylist] profile and conf_set", test_profile_conf_set },
	{ "[greylist] bad values", test_bad_profiles },
	CU_TEST_INFO_NULL,
};
