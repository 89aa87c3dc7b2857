/*
 * timeline.c - delivery attempts rebuilt from the event stream
 *
 * DESCRIPTION  See timeline.h.  Events are replayed per session: MAIL
 *              opens a transaction, the replies to RCPT, DATA, BDAT and
 *              the final dot decide how it ended, and the transaction
 *              becomes one attempt of its message (envelope, then
 *              Message-ID).  Sessions that failed before MAIL become
 *              connection attempts of their client.
 * ERRORS       Lines that are not events (or carry no readable time) are
 *              counted in bad_lines and skipped.
 *
 * SPDX-License-Identifier: MIT
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "timeline.h"
#include "util.h"

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
double
timeline_parse_time(const char *s)
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
	double t = timeline_parse_time(time);
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
int
timeline_load(struct rep *r, FILE *fp, double now, double quiet)
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

void
timeline_free(struct rep *r)
{
	free_groups(r->g, r->ng);
	free_groups(r->c, r->nc);
	free(r->s);
	memset(r, 0, sizeof(*r));
}
