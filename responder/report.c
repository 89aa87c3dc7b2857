/*
 * report.c - `smtpfault report`: retry timelines from the event stream
 *
 * DESCRIPTION  Reads events (docs/events.md) and rebuilds, per message,
 *              every delivery attempt the sender made: when, where it
 *              ended (hook), the reply, and the result.  Attempts are
 *              grouped by envelope (sender and the recipients tried) and,
 *              once DATA was reached, by Message-ID; sessions that failed
 *              before MAIL are grouped per client as connection attempts.
 *              It prints intervals, the outcome (delivered, rejected,
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
#include "util.h"

struct attempt {
	double		 t;
	char		 time[40];
	char		 session[16];
	char		 client[64];
	char		 hook[16];
	int		 code;
	char		*reply;
	const char	*result;	/* static string */
	char		*msgid;
	int		 own_id;	/* msgid seen in this attempt */
	char		*rule;		/* last fault rule of the session */
};

struct group {
	char		*from;
	char		*rcpts;		/* sorted, comma-separated */
	char		*client;	/* connection groups */
	char		*msgid;
	struct attempt	*a;
	int		 na;
	const char	*outcome;
	int		 stored;	/* copies kept (accepted or unanswered) */
	int		 duplicate;
};

struct tx {
	int		 open;
	double		 t;
	char		 time[40];
	char		*from;
	char		**rcpt;
	int		 nrcpt;
	int		 ok_rcpts;
	int		 fail_code;
	char		*fail_reply;
	int		 in_data;
	int		 accepted;	/* message event seen */
	int		 unanswered;
	char		*msgid;
};

struct sess {
	char		 id[16];
	char		 client[64];
	double		 t;
	char		 time[40];
	int		 banner;	/* banner reply code, 0 = none yet */
	char		*banner_text;
	int		 starttls;	/* STARTTLS was sent */
	char		 cert[32];	/* certificate the handshake showed */
	int		 fail_code;	/* a 4xx/5xx outside any transaction */
	char		*fail_text;
	char		 fail_verb[16];
	int		 had_mail;
	char		 verb[16];	/* last command */
	char		*rule;
	struct tx	 tx;
	int		 used;
};

struct rep {
	struct sess	*s;
	int		 ns;
	struct group	*g;
	int		 ng;
	struct group	*c;		/* connection groups */
	int		 nc;
	double		 end;
	long		 bad_lines;
};

static struct sess *
sess_find(struct rep *r, const char *id, int create)
{
	int i;

	for (i = r->ns - 1; i >= 0; i--)
		if (r->s[i].used && strcmp(r->s[i].id, id) == 0)
			return &r->s[i];
	if (!create)
		return NULL;
	for (i = 0; i < r->ns; i++)
		if (!r->s[i].used)
			break;
	if (i == r->ns) {
		r->s = realloc(r->s, sizeof(*r->s) * (size_t)(r->ns + 1));
		PANIC(r->s == NULL);
		r->ns++;
	}
	memset(&r->s[i], 0, sizeof(r->s[i]));
	snprintf(r->s[i].id, sizeof(r->s[i].id), "%s", id);
	r->s[i].used = 1;
	return &r->s[i];
}

/* "2026-11-30T10:10:20.900000Z" (fraction and Z optional) -> epoch. */
static double
parse_time(const char *s)
{
	struct tm tm;
	double frac = 0, scale = 0.1;
	int n = 0;

	memset(&tm, 0, sizeof(tm));
	if (s == NULL || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year,
	    &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec,
	    &n) != 6 || n != 19)
		return 0;
	s += n;
	if (*s == '.') {
		for (s++; isdigit((unsigned char)*s); s++, scale /= 10)
			frac += (*s - '0') * scale;
	}
	if (*s == 'Z')
		s++;
	if (*s != '\0' || tm.tm_mon < 1 || tm.tm_mon > 12 ||
	    tm.tm_mday < 1 || tm.tm_mday > 31)
		return 0;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (double)timegm(&tm) + frac;
}

/* The address inside "FROM:<a@b> ..." / "TO:<a@b>", lower-cased. */
static char *
path_of(const char *arg)
{
	const char *lt = strchr(arg, '<'), *gt;
	char *p;
	size_t n, i;

	if (lt == NULL || (gt = strchr(lt, '>')) == NULL)
		return xstrdup("?");
	n = (size_t)(gt - lt - 1);
	p = xmalloc(n + 1);
	for (i = 0; i < n; i++)
		p[i] = (char)tolower((unsigned char)lt[1 + i]);
	p[n] = '\0';
	return p;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
tx_clear(struct tx *t)
{
	int i;

	free(t->from);
	for (i = 0; i < t->nrcpt; i++)
		free(t->rcpt[i]);
	free(t->rcpt);
	free(t->fail_reply);
	free(t->msgid);
	memset(t, 0, sizeof(*t));
}

static struct group *
group_for(struct rep *r, const char *from, const char *rcpts)
{
	int i;

	for (i = 0; i < r->ng; i++)
		if (strcmp(r->g[i].from, from) == 0 &&
		    strcmp(r->g[i].rcpts, rcpts) == 0)
			return &r->g[i];
	r->g = realloc(r->g, sizeof(*r->g) * (size_t)(r->ng + 1));
	PANIC(r->g == NULL);
	memset(&r->g[r->ng], 0, sizeof(r->g[0]));
	r->g[r->ng].from = xstrdup(from);
	r->g[r->ng].rcpts = xstrdup(rcpts);
	return &r->g[r->ng++];
}

static void
group_add(struct group *g, const struct attempt *a)
{
	g->a = realloc(g->a, sizeof(*g->a) * (size_t)(g->na + 1));
	PANIC(g->a == NULL);
	g->a[g->na++] = *a;
}

static void
attempt_init(struct attempt *a, const struct sess *s, double t,
    const char *time, const char *hook, int code, const char *reply,
    const char *result)
{
	memset(a, 0, sizeof(*a));
	a->t = t;
	snprintf(a->time, sizeof(a->time), "%s", time);
	snprintf(a->session, sizeof(a->session), "%s", s->id);
	snprintf(a->client, sizeof(a->client), "%s", s->client);
	snprintf(a->hook, sizeof(a->hook), "%s", hook);
	a->code = code;
	a->reply = reply ? xstrdup(reply) : NULL;
	a->result = result;
	a->rule = s->rule ? xstrdup(s->rule) : NULL;
}

static const char *
result_of(int code)
{
	return code >= 500 ? "rejected" : code >= 400 ? "deferred" :
	    "accepted";
}

/* The transaction is over: one attempt of its message. */
static void
tx_finish(struct rep *r, struct sess *s, const char *hook, int code,
    const char *reply, const char *result)
{
	struct tx *t = &s->tx;
	struct attempt a;
	char *joined;
	size_t len = 1;
	int i;

	if (!t->open)
		return;
	if (t->nrcpt > 1)
		qsort(t->rcpt, (size_t)t->nrcpt, sizeof(*t->rcpt), cmp_str);
	for (i = 0; i < t->nrcpt; i++)
		len += strlen(t->rcpt[i]) + 1;
	joined = xcalloc(1, len);
	for (i = 0; i < t->nrcpt; i++) {
		if (i > 0)
			strcat(joined, ",");
		strcat(joined, t->rcpt[i]);
	}
	attempt_init(&a, s, t->t, t->time, hook, code, reply, result);
	free(s->rule);		/* a rule belongs to one attempt */
	s->rule = NULL;
	a.msgid = t->msgid ? xstrdup(t->msgid) : NULL;
	a.own_id = t->msgid != NULL;
	group_add(group_for(r, t->from ? t->from : "", joined), &a);
	free(joined);
	tx_clear(t);
}

/* A session that ends before MAIL is a connection attempt if it failed. */
static void
conn_finish(struct rep *r, struct sess *s, const char *reason)
{
	struct attempt a;
	struct group *g = NULL;
	char why[96];
	int i;

	if (s->had_mail)
		return;
	if (s->banner == 220 && s->fail_code == 0 && s->starttls &&
	    (strcmp(reason, "quit") == 0 || strcmp(reason, "eof") == 0 ||
	    strcmp(reason, "write_error") == 0)) {
		/* TLS came up (or not) and the client left without MAIL:
		 * it did not like what it saw (a certificate, say) */
		snprintf(why, sizeof(why), "client left after STARTTLS%s%s "
		    "(close: %s)", s->cert[0] ? ", certificate " : "",
		    s->cert, reason);
		attempt_init(&a, s, s->t, s->time, "starttls", 0, why,
		    "abandoned");
	} else if (s->banner == 220 && s->fail_code == 0 &&
	    (strcmp(reason, "quit") == 0 || strcmp(reason, "eof") == 0)) {
		return;		/* greeted and left: not a failed delivery */
	} else if (s->banner == 220 && s->fail_code != 0) {
		attempt_init(&a, s, s->t, s->time, s->fail_verb, s->fail_code,
		    s->fail_text, result_of(s->fail_code));
		for (i = 0; a.hook[i]; i++)
			a.hook[i] = (char)tolower((unsigned char)a.hook[i]);
	} else if (s->banner >= 400)
		attempt_init(&a, s, s->t, s->time, "connect", s->banner,
		    s->banner_text, result_of(s->banner));
	else {
		snprintf(why, sizeof(why), "closed: %s", reason);
		attempt_init(&a, s, s->t, s->time, s->banner ? s->verb[0] ?
		    s->verb : "helo" : "connect", 0, why, "lost");
		for (i = 0; a.hook[i]; i++)
			a.hook[i] = (char)tolower((unsigned char)a.hook[i]);
	}
	for (i = 0; i < r->nc; i++)
		if (strcmp(r->c[i].client, s->client) == 0)
			g = &r->c[i];
	if (g == NULL) {
		r->c = realloc(r->c, sizeof(*r->c) * (size_t)(r->nc + 1));
		PANIC(r->c == NULL);
		g = &r->c[r->nc++];
		memset(g, 0, sizeof(*g));
		g->client = xstrdup(s->client);
	}
	group_add(g, &a);
}

/* End an open transaction at RSET, a new MAIL, QUIT or the close. */
static void
tx_close(struct rep *r, struct sess *s, const char *reason)
{
	char h[16];
	int i;

	if (!s->tx.open)
		return;
	if (s->tx.unanswered)
		tx_finish(r, s, "data_end", 0, "stored, connection closed "
		    "without a reply", "unanswered");
	else if (s->tx.accepted)
		tx_finish(r, s, "data_end", 250, NULL, "accepted");
	else if (s->tx.in_data)
		tx_finish(r, s, "data_end", 0, reason, "lost");
	else if (s->tx.ok_rcpts == 0 && s->tx.fail_code)
		tx_finish(r, s, "rcpt", s->tx.fail_code, s->tx.fail_reply,
		    result_of(s->tx.fail_code));
	else {
		for (i = 0; s->verb[i] && i < 15; i++)
			h[i] = (char)tolower((unsigned char)s->verb[i]);
		h[i] = '\0';
		tx_finish(r, s, h, 0, reason, "lost");
	}
}

static void
sess_end(struct rep *r, struct sess *s, const char *reason)
{
	tx_close(r, s, reason);
	conn_finish(r, s, reason);
	free(s->banner_text);
	free(s->rule);
	free(s->fail_text);
	s->banner_text = s->rule = s->fail_text = NULL;
	s->used = 0;
}

static void
on_reply(struct rep *r, struct sess *s, int code, const char *text)
{
	struct tx *t = &s->tx;

	(void)r;
	if (s->banner == 0 && s->verb[0] == '\0') {
		s->banner = code;
		s->banner_text = xstrdup(text);
		return;
	}
	if (!t->open) {
		/* EHLO, STARTTLS, AUTH ... refused: a failed delivery too */
		if (code >= 400) {
			s->fail_code = code;
			free(s->fail_text);
			s->fail_text = xstrdup(text);
			snprintf(s->fail_verb, sizeof(s->fail_verb), "%s",
			    s->verb);
		}
		return;
	}
	if (t->in_data) {
		/* the reply to the final dot (or to BDAT LAST) */
		if (t->accepted)
			tx_finish(r, s, "data_end", code, text, "accepted");
		else if (code >= 400)
			tx_finish(r, s, "data_end", code, text,
			    result_of(code));
		return;
	}
	if (strcmp(s->verb, "MAIL") == 0 && code >= 400)
		tx_finish(r, s, "mail", code, text, result_of(code));
	else if (strcmp(s->verb, "RCPT") == 0) {
		if (code < 400)
			t->ok_rcpts++;
		else {
			t->fail_code = code;
			free(t->fail_reply);
			t->fail_reply = xstrdup(text);
		}
	} else if ((strcmp(s->verb, "DATA") == 0 ||
	    strcmp(s->verb, "BDAT") == 0) && t->ok_rcpts == 0 &&
	    t->fail_code != 0) {
		/* a pipelining client sent DATA behind refused RCPTs: the
		 * 503 is an echo, the RCPT reply is the attempt's answer */
		tx_finish(r, s, "rcpt", t->fail_code, t->fail_reply,
		    result_of(t->fail_code));
	} else if (strcmp(s->verb, "DATA") == 0) {
		if (code == 354)
			t->in_data = 1;
		else
			tx_finish(r, s, "data", code, text, result_of(code));
	} else if (strcmp(s->verb, "BDAT") == 0) {
		t->in_data = 1;
		if (code >= 400)
			tx_finish(r, s, "data_end", code, text,
			    result_of(code));
		else if (t->accepted)
			tx_finish(r, s, "data_end", code, text, "accepted");
	}
}

static void
on_command(struct rep *r, struct sess *s, const char *verb, const char *arg,
    double t, const char *time)
{
	struct tx *x = &s->tx;

	if (strcmp(verb, "MAIL") == 0 || strcmp(verb, "RSET") == 0 ||
	    strcmp(verb, "EHLO") == 0 || strcmp(verb, "HELO") == 0 ||
	    strcmp(verb, "QUIT") == 0) {
		if (x->open)
			tx_close(r, s, strcmp(verb, "QUIT") == 0 ?
			    "client quit" : "client reset the transaction");
	}
	snprintf(s->verb, sizeof(s->verb), "%s", verb);
	if (strcmp(verb, "STARTTLS") == 0)
		s->starttls = 1;
	if (strcmp(verb, "MAIL") == 0) {
		tx_clear(x);
		free(s->rule);
		s->rule = NULL;
		x->open = 1;
		x->t = t;
		snprintf(x->time, sizeof(x->time), "%s", time);
		x->from = path_of(arg);
		s->had_mail = 1;
	} else if (strcmp(verb, "RCPT") == 0 && x->open) {
		x->rcpt = realloc(x->rcpt, sizeof(*x->rcpt) *
		    (size_t)(x->nrcpt + 1));
		PANIC(x->rcpt == NULL);
		x->rcpt[x->nrcpt++] = path_of(arg);
	}
}

static const char *
jstr(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

static void
on_event(struct rep *r, json_t *o)
{
	const char *ev = jstr(o, "event"), *sid = jstr(o, "session");
	const char *time = jstr(o, "time");
	double t = parse_time(time);
	struct sess *s;
	int i;

	if (ev == NULL || time == NULL || t == 0) {
		r->bad_lines++;
		return;
	}
	if (t > r->end)
		r->end = t;
	if (strcmp(ev, "start") == 0) {
		/* a restart: session ids begin again */
		for (i = 0; i < r->ns; i++)
			if (r->s[i].used)
				sess_end(r, &r->s[i], "server restart");
		return;
	}
	if (sid == NULL)
		return;
	if (strcmp(ev, "connect") == 0) {
		if ((s = sess_find(r, sid, 0)) != NULL)
			sess_end(r, s, "server restart");
		s = sess_find(r, sid, 1);
		snprintf(s->client, sizeof(s->client), "%s",
		    jstr(o, "client") ? jstr(o, "client") : "?");
		s->t = t;
		snprintf(s->time, sizeof(s->time), "%s", time);
		return;
	}
	if ((s = sess_find(r, sid, 0)) == NULL)
		return;
	if (strcmp(ev, "tls") == 0 && jstr(o, "certificate"))
		snprintf(s->cert, sizeof(s->cert), "%s", jstr(o, "certificate"));
	else if (strcmp(ev, "xclient") == 0 && jstr(o, "addr"))
		snprintf(s->client, sizeof(s->client), "%s", jstr(o, "addr"));
	else if (strcmp(ev, "command") == 0)
		on_command(r, s, jstr(o, "verb") ? jstr(o, "verb") : "?",
		    jstr(o, "arg") ? jstr(o, "arg") : "", t, time);
	else if (strcmp(ev, "reply") == 0)
		on_reply(r, s, (int)json_integer_value(json_object_get(o,
		    "code")), jstr(o, "text") ? jstr(o, "text") : "");
	else if (strcmp(ev, "fault") == 0 && jstr(o, "rule")) {
		free(s->rule);
		s->rule = xstrdup(jstr(o, "rule"));
	} else if (strcmp(ev, "message") == 0 ||
	    strcmp(ev, "message_refused") == 0) {
		if (jstr(o, "message_id") && s->tx.msgid == NULL)
			s->tx.msgid = xstrdup(jstr(o, "message_id"));
		if (strcmp(ev, "message") == 0) {
			s->tx.accepted = 1;
			s->tx.in_data = 1;
			if (json_is_true(json_object_get(o, "unanswered")))
				s->tx.unanswered = 1;
		}
	} else if (strcmp(ev, "close") == 0) {
		if (jstr(o, "message_id") && s->tx.msgid == NULL &&
		    s->tx.open)
			s->tx.msgid = xstrdup(jstr(o, "message_id"));
		sess_end(r, s, jstr(o, "reason") ? jstr(o, "reason") : "?");
	}
}

static int
cmp_attempt(const void *a, const void *b)
{
	double x = ((const struct attempt *)a)->t;
	double y = ((const struct attempt *)b)->t;

	return x < y ? -1 : x > y;
}

/*
 * One envelope may carry several messages: split a group by Message-ID.
 * Attempts that never reached DATA join the next attempt that has an ID
 * (or the last one before them).
 */
static void
split_by_msgid(struct rep *r)
{
	int gi, ng = r->ng;

	for (gi = 0; gi < ng; gi++) {
		struct group *g = &r->g[gi];
		const char *first = NULL;
		int i, j, multi = 0;

		if (g->na > 1)
			qsort(g->a, (size_t)g->na, sizeof(*g->a), cmp_attempt);
		for (i = 0; i < g->na; i++) {
			if (g->a[i].msgid == NULL)
				continue;
			if (first == NULL)
				first = g->a[i].msgid;
			else if (strcmp(first, g->a[i].msgid) != 0)
				multi = 1;
		}
		if (!multi) {
			g->msgid = first ? xstrdup(first) : NULL;
			continue;
		}
		first = NULL;
		for (i = 0; i < g->na; i++) {
			const char *id = g->a[i].msgid;

			for (j = i; id == NULL && j < g->na; j++)
				id = g->a[j].msgid;
			for (j = i; id == NULL && j >= 0; j--)
				id = g->a[j].msgid;
			if (g->a[i].msgid == NULL)
				g->a[i].msgid = xstrdup(id);
			if (i == 0)
				first = g->a[0].msgid;
		}
		/* move every attempt whose ID is not `first` out */
		for (i = 0; i < r->g[gi].na;) {
			struct group *ng2, *cur = &r->g[gi];
			struct attempt a = cur->a[i];
			int k;

			if (strcmp(a.msgid, first) == 0) {
				i++;
				continue;
			}
			memmove(&cur->a[i], &cur->a[i + 1], sizeof(a) *
			    (size_t)(cur->na - i - 1));
			cur->na--;
			ng2 = NULL;
			for (k = ng; k < r->ng; k++)
				if (strcmp(r->g[k].msgid, a.msgid) == 0 &&
				    strcmp(r->g[k].from, cur->from) == 0 &&
				    strcmp(r->g[k].rcpts, cur->rcpts) == 0)
					ng2 = &r->g[k];
			if (ng2 == NULL) {
				char *f = xstrdup(cur->from);
				char *rc = xstrdup(cur->rcpts);

				r->g = realloc(r->g, sizeof(*r->g) *
				    (size_t)(r->ng + 1));
				PANIC(r->g == NULL);
				ng2 = &r->g[r->ng++];
				memset(ng2, 0, sizeof(*ng2));
				ng2->from = f;
				ng2->rcpts = rc;
				ng2->msgid = xstrdup(a.msgid);
			}
			group_add(ng2, &a);
		}
		r->g[gi].msgid = xstrdup(first);
	}
}

static void
conclude(struct group *g, double end, double quiet)
{
	const struct attempt *last;
	int i, accepted = 0, dups = 0;

	if (g->na > 1)
		qsort(g->a, (size_t)g->na, sizeof(*g->a), cmp_attempt);
	for (i = 0; i < g->na; i++) {
		const struct attempt *a = &g->a[i];

		if (strcmp(a->result, "accepted") == 0)
			accepted = 1;
		if (strcmp(a->result, "accepted") != 0 &&
		    strcmp(a->result, "unanswered") != 0)
			continue;
		g->stored++;
		/* a copy kept twice under one Message-ID is a duplicate */
		if (a->own_id && g->msgid != NULL &&
		    strcmp(a->msgid, g->msgid) == 0)
			dups++;
	}
	g->duplicate = dups > 1;
	if (g->na == 0) {
		g->outcome = "none";
		return;
	}
	last = &g->a[g->na - 1];
	if (accepted)
		g->outcome = "delivered";
	else if (strcmp(last->result, "rejected") == 0)
		g->outcome = "rejected";
	else if (end - last->t > quiet)
		g->outcome = "gave-up";
	else
		g->outcome = "deferred";
}

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
free_groups(struct group *g, int n)
{
	int i, j;

	for (i = 0; i < n; i++) {
		for (j = 0; j < g[i].na; j++) {
			free(g[i].a[j].reply);
			free(g[i].a[j].msgid);
			free(g[i].a[j].rule);
		}
		free(g[i].a);
		free(g[i].from);
		free(g[i].rcpts);
		free(g[i].client);
		free(g[i].msgid);
	}
	free(g);
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

static int
read_events(struct rep *r, FILE *fp)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	while ((n = getline(&line, &cap, fp)) != -1) {
		json_error_t je;
		json_t *o;

		if (n <= 1)
			continue;
		if ((o = json_loads(line, 0, &je)) == NULL ||
		    !json_is_object(o)) {
			r->bad_lines++;
			json_decref(o);
			continue;
		}
		on_event(r, o);
		json_decref(o);
	}
	free(line);
	return ferror(fp) ? -1 : 0;
}

/* Read every event, close what is open, group and judge. */
static int
rep_load(struct rep *r, FILE *fp, double now, double quiet)
{
	int i, rc = read_events(r, fp);

	for (i = 0; i < r->ns; i++)
		if (r->s[i].used)
			sess_end(r, &r->s[i], "still open at the end of the log");
	split_by_msgid(r);
	if (now > 0)
		r->end = now;
	for (i = 0; i < r->ng; i++)
		conclude(&r->g[i], r->end, quiet);
	for (i = 0; i < r->nc; i++)
		conclude(&r->c[i], r->end, quiet);
	return rc;
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

static void
rep_free(struct rep *r)
{
	free_groups(r->g, r->ng);
	free_groups(r->c, r->nc);
	free(r->s);
	memset(r, 0, sizeof(*r));
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
	rep_load(&r, fp, 0, quiet);
	root = rep_json(&r, p);
	rep_free(&r);
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
			if ((now = parse_time(optarg)) == 0)
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
	if (rep_load(&r, fp, now, quiet) == -1) {
		fprintf(stderr, "smtpfault report: %s: read error\n",
		    argv[optind]);
		if (fp != stdin)
			fclose(fp);
		rep_free(&r);
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
	rep_free(&r);
	return bad > 0 ? 1 : 0;
usage:
	report_usage(stderr);
	return 2;
}
