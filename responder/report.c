/*
 * report.c - `smtpfault report`: retry timelines from the event stream
 *
 * DESCRIPTION  The command line over timeline.c, which rebuilds every
 *              delivery attempt from the events (docs/events.md).  It
 *              prints each message's attempts, intervals, the outcome
 *              (delivered, rejected,
 *              deferred, or gave-up when nothing came within --quiet of the
 *              last attempt) and duplicates, checks expectations for CI
 *              (exit 1 on a violation) and compares what it saw with the
 *              schedule of a known sender (--profile).
 * OWNERSHIP    Everything is read into memory and freed before returning.
 * ERRORS       Usage or unreadable input: message on stderr, exit 2.
 *              Malformed event lines are counted and skipped.
 *
 * SPDX-License-Identifier: MIT
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "match.h"
#include "report.h"
#include "timeline.h"
#include "util.h"

/* ---- known senders' schedules ---- */

struct profile {
	const char	*name;
	const char	*desc;
	double		 min_iv, max_iv;	/* plausible interval bounds */
	double		 early_max;	/* the first 3 intervals at most */
	double		 lifetime;
};

static const struct profile profiles[] = {
	{ "postfix-default", "Postfix defaults: retries from 300 s "
	    "(minimal_backoff_time, queue_run_delay) doubling to 4000 s, "
	    "gives up after 5 days", 240, 4000 + 600, 0, 5 * 86400.0 },
	{ "exim-default", "Exim's default retry rule F,2h,15m; G,16h,1h,1.5; "
	    "F,4d,6h: every 15 min for 2 h, then growing by 1.5 from 1 h, "
	    "then every 6 h, gives up after 4 days", 12 * 60, 8 * 3600.0, 0,
	    4 * 86400.0 },
	{ "exchange-online", "Exchange Online: first retries within 15 min, "
	    "growing to at most 60 min, gives up after 24 hours with 550 4.4.7 "
	    "QUEUE.Expired", 0, 65 * 60, 16 * 60, 86400.0 },
};

static const struct profile *
profile_find(const char *name)
{
	size_t i;

	for (i = 0; i < NELEM(profiles); i++)
		if (strcmp(profiles[i].name, name) == 0)
			return &profiles[i];
	return NULL;
}

/* Does g's schedule fit p?  why gets the first reason it does not. */
static int
profile_fits(const struct profile *p, const struct group *g, char *why,
    size_t wl)
{
	int i;

	why[0] = '\0';
	for (i = 1; i < g->na; i++) {
		double iv = g->a[i].t - g->a[i - 1].t;

		if (iv < p->min_iv) {
			snprintf(why, wl, "interval %d is %.0f s, shorter than "
			    "%.0f s", i, iv, p->min_iv);
			return 0;
		}
		if (iv > p->max_iv) {
			snprintf(why, wl, "interval %d is %.0f s, longer than "
			    "%.0f s", i, iv, p->max_iv);
			return 0;
		}
		if (p->early_max > 0 && i <= 3 && iv > p->early_max) {
			snprintf(why, wl, "early interval %d is %.0f s, longer "
			    "than %.0f s", i, iv, p->early_max);
			return 0;
		}
	}
	if (g->na > 1 && g->a[g->na - 1].t - g->a[0].t > p->lifetime * 1.05) {
		snprintf(why, wl, "retried for %.0f s, past the %.0f s "
		    "lifetime", g->a[g->na - 1].t - g->a[0].t, p->lifetime);
		return 0;
	}
	return 1;
}

/* ---- expectations ---- */

struct expect {
	int		 has_attempts;
	struct range	 attempts;
	double		 min_iv, max_iv;	/* < 0: none */
	const char	*outcome;
	int		 no_dups;
};

static int
check(const struct expect *e, const struct group *g, int n, FILE *out)
{
	int i, bad = 0;

#define FAILF(...) do { if (g->client != NULL) fprintf(out, \
	"FAIL connections %d (from %s): ", n, g->client); else fprintf(out, \
	"FAIL message %d (%s -> %s): ", n, g->from, g->rcpts); \
	fprintf(out, __VA_ARGS__); fputc('\n', out); bad++; } while (0)
	if (e->has_attempts && !range_match(&e->attempts, (uint64_t)g->na)) {
		if (e->attempts.hi == UINT64_MAX)
			FAILF("%d attempts, expected at least %llu", g->na,
			    (unsigned long long)e->attempts.lo);
		else
			FAILF("%d attempts, expected %llu to %llu", g->na,
			    (unsigned long long)e->attempts.lo,
			    (unsigned long long)e->attempts.hi);
	}
	for (i = 1; i < g->na; i++) {
		double iv = g->a[i].t - g->a[i - 1].t;

		if (e->min_iv >= 0 && iv < e->min_iv)
			FAILF("interval %d is %.3f s, under the minimum %.3f s",
			    i, iv, e->min_iv);
		if (e->max_iv >= 0 && iv > e->max_iv)
			FAILF("interval %d is %.3f s, over the maximum %.3f s",
			    i, iv, e->max_iv);
	}
	if (e->outcome != NULL && strcmp(e->outcome, g->outcome) != 0)
		FAILF("outcome %s, expected %s", g->outcome, e->outcome);
	if (e->no_dups && g->duplicate)
		FAILF("duplicate: %d copies of Message-ID %s kept", g->stored,
		    g->msgid);
#undef FAILF
	return bad;
}

/* ---- output ---- */

static void
print_group(FILE *out, const struct group *g, int n, const struct profile *p)
{
	char why[160];
	int i;

	if (g->client != NULL)
		fprintf(out, "CONNECTIONS %d from %s\n", n, g->client);
	else
		fprintf(out, "MESSAGE %d  <%s> -> <%s>%s%s\n", n, g->from,
		    g->rcpts, g->msgid ? "  " : "", g->msgid ? g->msgid : "");
	fprintf(out, "  outcome %s after %d attempt%s", g->outcome, g->na,
	    g->na == 1 ? "" : "s");
	if (g->na > 1)
		fprintf(out, " over %.1f s", g->a[g->na - 1].t - g->a[0].t);
	if (g->client == NULL)
		fprintf(out, "; copies kept %d%s", g->stored, g->duplicate ?
		    " (DUPLICATE)" : "");
	fputc('\n', out);
	if (p != NULL) {
		int fits = profile_fits(p, g, why, sizeof(why));

		fprintf(out, "  %s %s%s%s\n", fits ? "fits" : "does not fit",
		    p->name, fits ? "" : ": ", why);
	}
	fprintf(out, "  %-3s %-27s %10s  %-9s %-11s %s\n", "#", "time",
	    "interval", "hook", "result", "reply");
	for (i = 0; i < g->na; i++) {
		const struct attempt *a = &g->a[i];
		char iv[24] = "-";

		if (i > 0)
			snprintf(iv, sizeof(iv), "+%.1fs", a->t - g->a[i - 1].t);
		fprintf(out, "  %-3d %-27s %10s  %-9s %-11s ", i + 1, a->time,
		    iv, a->hook, a->result);
		if (a->code)
			fprintf(out, "%d ", a->code);
		fprintf(out, "%.100s%s%s%s\n", a->reply ? a->reply : "",
		    a->rule ? " [rule " : "", a->rule ? a->rule : "",
		    a->rule ? "]" : "");
	}
	fputc('\n', out);
}

static json_t *
group_json(const struct group *g, const struct profile *p)
{
	json_t *o = json_object(), *at = json_array(), *iv = json_array();
	char why[160];
	int i;

	if (g->client != NULL)
		json_object_set_new(o, "client", json_string(g->client));
	else {
		char *dup = xstrdup(g->rcpts), *tok, *save = NULL;
		json_t *rc = json_array();

		json_object_set_new(o, "from", json_string(g->from));
		for (tok = strtok_r(dup, ",", &save); tok;
		    tok = strtok_r(NULL, ",", &save))
			json_array_append_new(rc, json_string(tok));
		free(dup);
		json_object_set_new(o, "rcpts", rc);
		json_object_set_new(o, "message_id", g->msgid ?
		    json_string(g->msgid) : json_null());
		json_object_set_new(o, "accepted", json_integer(g->stored));
		json_object_set_new(o, "duplicate", json_boolean(g->duplicate));
	}
	for (i = 0; i < g->na; i++) {
		const struct attempt *a = &g->a[i];
		json_t *x = json_object();

		json_object_set_new(x, "time", json_string(a->time));
		json_object_set_new(x, "t", json_real(a->t));
		json_object_set_new(x, "session", json_string(a->session));
		json_object_set_new(x, "client", json_string(a->client));
		json_object_set_new(x, "hook", json_string(a->hook));
		json_object_set_new(x, "code", a->code ?
		    json_integer(a->code) : json_null());
		json_object_set_new(x, "reply", a->reply ?
		    json_string(a->reply) : json_null());
		json_object_set_new(x, "result", json_string(a->result));
		json_object_set_new(x, "rule", a->rule ?
		    json_string(a->rule) : json_null());
		json_array_append_new(at, x);
		if (i > 0)
			json_array_append_new(iv, json_real(a->t -
			    g->a[i - 1].t));
	}
	json_object_set_new(o, "attempts", at);
	json_object_set_new(o, "intervals", iv);
	json_object_set_new(o, "outcome", json_string(g->outcome));
	if (g->na > 0) {
		json_object_set_new(o, "first", json_string(g->a[0].time));
		json_object_set_new(o, "last",
		    json_string(g->a[g->na - 1].time));
	}
	if (p != NULL) {
		json_t *pf = json_object();
		int fits = profile_fits(p, g, why, sizeof(why));

		json_object_set_new(pf, "name", json_string(p->name));
		json_object_set_new(pf, "fits", json_boolean(fits));
		json_object_set_new(pf, "why", fits ? json_null() :
		    json_string(why));
		json_object_set_new(o, "profile", pf);
	}
	return o;
}

static void
report_usage(FILE *fp)
{
	fprintf(fp,
"usage: smtpfault report [options] EVENTS_FILE|-\n"
"  --json                      machine-readable output\n"
"  --quiet DUR                 no attempt for this long after the last\n"
"                              deferral means the sender gave up (10m)\n"
"  --now TIME                  judge \"gave up\" at this ISO time, not at\n"
"                              the last event\n"
"  --profile NAME              compare with postfix-default, exim-default\n"
"                              or exchange-online\n"
"  --expect-attempts N|>=N|<=N|N-M\n"
"  --expect-min-interval DUR   --expect-max-interval DUR\n"
"  --expect-outcome delivered|gave-up|deferred|rejected\n"
"  --expect-no-duplicates\n"
"Exit: 0 ok, 1 an expectation failed, 2 bad usage or input.\n");
}

static json_t *
rep_json(const struct rep *r, const struct profile *p)
{
	json_t *root = json_object(), *ms = json_array(), *cs = json_array();
	int i;

	for (i = 0; i < r->ng; i++)
		json_array_append_new(ms, group_json(&r->g[i], p));
	for (i = 0; i < r->nc; i++)
		json_array_append_new(cs, group_json(&r->c[i], p));
	json_object_set_new(root, "messages", ms);
	json_object_set_new(root, "connections", cs);
	json_object_set_new(root, "bad_lines", json_integer(r->bad_lines));
	return root;
}

int
report_profile_known(const char *name)
{
	return profile_find(name) != NULL;
}

json_t *
report_build(FILE *fp, double quiet, const char *profile)
{
	const struct profile *p = profile ? profile_find(profile) : NULL;
	struct rep r;
	json_t *root;

	memset(&r, 0, sizeof(r));
	timeline_load(&r, fp, 0, quiet);
	root = rep_json(&r, p);
	timeline_free(&r);
	return root;
}

int
report_main(int argc, char *argv[])
{
	enum { O_JSON = 256, O_QUIET, O_NOW, O_PROFILE, O_ATT, O_MINIV,
	    O_MAXIV, O_OUT, O_NODUP };
	static const struct option lo[] = {
		{ "json", no_argument, NULL, O_JSON },
		{ "quiet", required_argument, NULL, O_QUIET },
		{ "now", required_argument, NULL, O_NOW },
		{ "profile", required_argument, NULL, O_PROFILE },
		{ "expect-attempts", required_argument, NULL, O_ATT },
		{ "expect-min-interval", required_argument, NULL, O_MINIV },
		{ "expect-max-interval", required_argument, NULL, O_MAXIV },
		{ "expect-outcome", required_argument, NULL, O_OUT },
		{ "expect-no-duplicates", no_argument, NULL, O_NODUP },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct expect e = { 0, { 0, 0 }, -1, -1, NULL, 0 };
	const struct profile *p = NULL;
	struct rep r;
	double quiet = 600, now = 0;
	int ch, json = 0, i, bad = 0, checks = 0;

	(void)i;
	FILE *fp;

	memset(&r, 0, sizeof(r));
	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (ch) {
		case O_JSON:
			json = 1;
			break;
		case O_QUIET:
			if (util_parse_dur(optarg, &quiet) == -1)
				goto usage;
			break;
		case O_NOW:
			if ((now = timeline_parse_time(optarg)) == 0)
				goto usage;
			break;
		case O_PROFILE:
			if ((p = profile_find(optarg)) == NULL)
				goto usage;
			break;
		case O_ATT:
			if (range_parse(optarg, &e.attempts) == -1)
				goto usage;
			e.has_attempts = checks = 1;
			break;
		case O_MINIV:
		case O_MAXIV:
			if (util_parse_dur(optarg, ch == O_MINIV ? &e.min_iv :
			    &e.max_iv) == -1)
				goto usage;
			checks = 1;
			break;
		case O_OUT:
			if (strcmp(optarg, "delivered") != 0 &&
			    strcmp(optarg, "gave-up") != 0 &&
			    strcmp(optarg, "deferred") != 0 &&
			    strcmp(optarg, "rejected") != 0)
				goto usage;
			e.outcome = optarg;
			checks = 1;
			break;
		case O_NODUP:
			e.no_dups = checks = 1;
			break;
		case 'h':
			report_usage(stdout);
			return 0;
		default:
			goto usage;
		}
	}
	if (optind != argc - 1)
		goto usage;
	if (strcmp(argv[optind], "-") == 0)
		fp = stdin;
	else if ((fp = fopen(argv[optind], "r")) == NULL) {
		fprintf(stderr, "smtpfault report: %s: %s\n", argv[optind],
		    strerror(errno));
		return 2;
	}
	if (timeline_load(&r, fp, now, quiet) == -1) {
		fprintf(stderr, "smtpfault report: %s: read error\n",
		    argv[optind]);
		if (fp != stdin)
			fclose(fp);
		timeline_free(&r);
		return 2;
	}
	if (fp != stdin)
		fclose(fp);
	if (json) {
		json_t *root = rep_json(&r, p);
		char *txt;

		txt = json_dumps(root, JSON_INDENT(2));
		if (txt != NULL)
			puts(txt);
		free(txt);
		json_decref(root);
	} else {
		if (p != NULL)
			printf("profile %s: %s\n\n", p->name, p->desc);
		for (i = 0; i < r.ng; i++)
			print_group(stdout, &r.g[i], i + 1, p);
		for (i = 0; i < r.nc; i++)
			print_group(stdout, &r.c[i], i + 1, p);
		if (r.ng == 0 && r.nc == 0)
			printf("no delivery attempts in the log\n");
		if (r.bad_lines > 0)
			printf("%ld line(s) were not events and were "
			    "skipped\n", r.bad_lines);
	}
	for (i = 0; checks && i < r.ng; i++)
		bad += check(&e, &r.g[i], i + 1, json ? stderr : stdout);
	/* failures before MAIL only (an offline destination): judge the
	 * connection attempts instead */
	for (i = 0; checks && r.ng == 0 && i < r.nc; i++)
		bad += check(&e, &r.c[i], i + 1, json ? stderr : stdout);
	if (checks && r.ng == 0 && r.nc == 0) {
		fprintf(json ? stderr : stdout, "FAIL no message attempts in "
		    "the log to check\n");
		bad++;
	}
	timeline_free(&r);
	return bad > 0 ? 1 : 0;
usage:
	report_usage(stderr);
	return 2;
}
