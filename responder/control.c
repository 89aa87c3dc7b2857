/*
 * control.c - the control API (HTTP/JSON) and /metrics on loopback
 *
 * DESCRIPTION  libmicrohttpd in external-epoll mode, driven by the server's
 *              libev loop (one ev_io on MHD's epoll fd, one ev_timer for its
 *              timeouts), so no thread is added.  JSON through jansson.
 *              Endpoints and examples: docs/api.md.
 * OWNERSHIP    One daemon; per-request state (the body being uploaded)
 *              lives in struct req, freed by MHD's completion callback.
 *              Event stream clients are suspended while there is nothing
 *              to send and resumed when an event is written.
 * LIMITS       [control] max_body per request body (413 past it); MHD's
 *              own connection limit and timeout.
 * ERRORS       Every error answer is JSON {"error": "..."} with 400, 401,
 *              404, 405, 413 or 500; nothing a client sends stops the
 *              server.
 *
 * SPDX-License-Identifier: MIT
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ev.h>
#include <jansson.h>
#include <microhttpd.h>

#include "conf.h"
#include "control.h"
#include "events.h"
#include "fault.h"
#include "log.h"
#include "main.h"
#include "metrics.h"
#include "report.h"
#include "server.h"
#include "util.h"
#include "version.h"

#define MAX_STREAMS	64
#define RING_BATCH	256

struct req {
	char		*body;
	size_t		 len;
	int		 too_big;
};

struct stream {
	struct MHD_Connection	*conn;
	uint64_t		 cursor;	/* last seq sent */
	int			 suspended;
	int			 ping;		/* send a keep-alive comment */
	int			 used;
};

/* Idle streams are woken this often to send a comment, which is also
 * how a client that went away is noticed and its slot freed. */
#define STREAM_PING 5.0

static struct MHD_Daemon	*mhd;
static ev_io			 mhd_io;
static ev_timer			 mhd_timer;
static ev_timer			 ping_timer;
static struct stream		 streams[MAX_STREAMS];
static char			*api_scenario;	/* temp file of a PUT text */
static char			 ctl_name[96];

static void	control_rearm(void);

/* ---- responses ---- */

static enum MHD_Result
send_text(struct MHD_Connection *c, unsigned status, const char *type,
    const char *text, size_t len)
{
	struct MHD_Response *r;
	enum MHD_Result rc;

	r = MHD_create_response_from_buffer(len, (void *)(uintptr_t)text,
	    MHD_RESPMEM_MUST_COPY);
	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", type);
	rc = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return rc;
}

/* Send j (stolen) as JSON. */
static enum MHD_Result
send_json(struct MHD_Connection *c, unsigned status, json_t *j)
{
	char *txt = json_dumps(j, JSON_INDENT(2));
	enum MHD_Result rc;

	json_decref(j);
	if (txt == NULL)
		return send_text(c, 500, "application/json",
		    "{\"error\":\"out of memory\"}\n", 26);
	rc = send_text(c, status, "application/json", txt, strlen(txt));
	free(txt);
	return rc;
}

static enum MHD_Result
send_error(struct MHD_Connection *c, unsigned status, const char *msg)
{
	return send_json(c, status, json_pack("{s:s}", "error", msg));
}

/* ---- /v1/status ---- */

static json_t *
status_json(void)
{
	json_t *l = json_array();
	int i;

	for (i = 0; i < srv.nlst; i++)
		json_array_append_new(l, json_pack("{s:s,s:s}", "kind",
		    srv.lst[i].kind, "addr", srv.lst[i].name));
	return json_pack("{s:s,s:f,s:I,s:o,s:i,s:o,s:I,s:I,s:I,s:I,s:s}",
	    "version", SMTPFAULT_VERSION,
	    "uptime", util_now() - srv.started,
	    "seed", (json_int_t)fault.seed,
	    "scenario", srv.cf->scenario_file ?
	    json_string(srv.cf->scenario_file) : json_null(),
	    "rules", (int)srv.cf->scn->n,
	    "listeners", l,
	    "sessions", (json_int_t)srv.nsessions,
	    "connections", (json_int_t)srv.n_conn,
	    "messages", (json_int_t)srv.n_msgs,
	    "bytes", (json_int_t)srv.n_bytes,
	    "state", fault.st ? store_kind(fault.st) : "none");
}

/* ---- /v1/scenario, /v1/rules ---- */

static json_t *
rule_json(const struct fault_rule *r)
{
	json_t *hooks = json_array();
	int h;

	for (h = 0; h < FH__COUNT; h++)
		if (r->hooks & FH_BIT(h))
			json_array_append_new(hooks,
			    json_string(scn_hook_name((enum fault_hook)h)));
	return json_pack("{s:s,s:b,s:o,s:s,s:I,s:o,s:s,s:i}",
	    "name", r->name, "enabled", r->enabled, "hooks", hooks,
	    "action", scn_act_name(r->act), "fired", (json_int_t)r->fired,
	    "reply", r->code ? json_sprintf("%d%s%s %s", r->code,
	    r->ecode ? " " : "", r->ecode ? r->ecode : "", r->text ? r->text :
	    "") : json_null(), "file", r->file, "line", r->line);
}

static char *
slurp(const char *path, size_t max, size_t *len)
{
	FILE *fp = fopen(path, "r");
	char *buf;
	size_t n;

	if (fp == NULL)
		return NULL;
	buf = malloc(max + 1);
	n = buf ? fread(buf, 1, max, fp) : 0;
	fclose(fp);
	if (buf != NULL) {
		buf[n] = '\0';
		*len = n;
	}
	return buf;
}

static enum MHD_Result
get_scenario(struct MHD_Connection *c)
{
	json_t *rules = json_array(), *o;
	char *text = NULL;
	size_t i, len = 0;

	for (i = 0; i < srv.cf->scn->n; i++)
		json_array_append_new(rules, rule_json(srv.cf->scn->v[i]));
	if (srv.cf->scenario_file != NULL)
		text = slurp(srv.cf->scenario_file, 1 << 20, &len);
	o = json_pack("{s:o,s:o,s:o}", "scenario", srv.cf->scenario_file ?
	    json_string(srv.cf->scenario_file) : json_null(), "text", text ?
	    json_stringn_nocheck(text, len) : json_null(), "rules", rules);
	free(text);
	return send_json(c, 200, o);
}

/* A shipped name ({"name": ...}) or a whole scenario as INI text. */
static enum MHD_Result
put_scenario(struct MHD_Connection *c, const struct req *q)
{
	struct conf_errs errs = { NULL, 0 };
	char path[4096], *use;
	json_t *j, *e;
	int fd, i;

	if (q->len == 0)
		return send_error(c, 400, "empty body: send {\"name\": "
		    "\"accept-all\"} to clear every rule");
	j = q->body[0] == '{' ? json_loadb(q->body, q->len, 0, NULL) : NULL;
	if (j == NULL && q->body[0] == '{')
		return send_error(c, 400, "malformed JSON");
	if (j != NULL) {
		const char *name = json_string_value(json_object_get(j,
		    "name"));

		if (name == NULL || name[0] == '\0' ||
		    strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS"
		    "TUVWXYZ0123456789_-") != strlen(name)) {
			json_decref(j);
			return send_error(c, 400, "expected {\"name\": "
			    "\"SCENARIO\"} with a shipped scenario's name, or "
			    "INI text");
		}
		use = xstrdup(name);
		json_decref(j);
	} else {
		const char *dir = getenv("TMPDIR");

		snprintf(path, sizeof(path), "%s/smtpfault-api-XXXXXX.ini",
		    dir && *dir ? dir : "/tmp");
		if ((fd = mkstemps(path, 4)) == -1)
			return send_error(c, 500, "cannot write the scenario");
		if (write(fd, q->body, q->len) != (ssize_t)q->len) {
			close(fd);
			unlink(path);
			return send_error(c, 500, "cannot write the scenario");
		}
		close(fd);
		use = xstrdup(path);
	}
	if (main_use_scenario(use, &errs) == -1) {
		e = json_array();
		for (i = 0; i < errs.n; i++)
			json_array_append_new(e, json_string(errs.msg[i]));
		conf_errs_free(&errs);
		if (j == NULL)
			unlink(use);
		free(use);
		return send_json(c, 400, json_pack("{s:s,s:o}", "error",
		    "scenario refused; nothing changed", "errors", e));
	}
	if (api_scenario != NULL && (j != NULL ||
	    strcmp(api_scenario, use) != 0))
		unlink(api_scenario);
	free(api_scenario);
	api_scenario = j == NULL ? use : NULL;
	if (j != NULL)
		free(use);
	return get_scenario(c);
}

static enum MHD_Result
post_rule(struct MHD_Connection *c, const char *url)
{
	char name[256];
	const char *slash = strrchr(url, '/');
	struct fault_rule *r;
	size_t n;
	int on;

	/* /v1/rules/NAME/enable */
	if (slash == NULL || (strcmp(slash, "/enable") != 0 &&
	    strcmp(slash, "/disable") != 0))
		return send_error(c, 404, "use /v1/rules/NAME/enable or "
		    "/disable");
	on = strcmp(slash, "/enable") == 0;
	n = (size_t)(slash - (url + 10));
	if (n == 0 || n >= sizeof(name))
		return send_error(c, 404, "no rule named");
	memcpy(name, url + 10, n);
	name[n] = '\0';
	if ((r = scn_find(srv.cf->scn, name)) == NULL)
		return send_error(c, 404, "no such rule");
	r->enabled = on;
	evt_begin("rule");
	evt_str("rule", r->name);
	evt_bool("enabled", on);
	evt_end();
	return send_json(c, 200, rule_json(r));
}

/* ---- /v1/greylist ---- */

static int
gl_collect(void *arg, const char *key, const struct frec *r)
{
	json_t *a = arg;

	if (strncmp(key, "g|", 2) == 0)
		json_array_append_new(a, json_pack("{s:s,s:f,s:f,s:i,s:b,"
		    "s:o}", "triplet", key + 2, "first_seen", r->first_seen,
		    "last_seen", r->last_seen, "attempts", (int)r->attempts,
		    "passed", (r->flags & 1) != 0, "passed_at",
		    (r->flags & 1) ? json_real(r->passed_at) : json_null()));
	else if (strncmp(key, "a|", 2) == 0)
		json_array_append_new(a, json_pack("{s:s,s:i,s:f}", "client",
		    key + 2, "passes", (int)r->passes, "last_seen",
		    r->last_seen));
	return 0;
}

struct keys {
	char	**v;
	size_t	 n;
};

static int
gl_keys(void *arg, const char *key, const struct frec *r)
{
	struct keys *k = arg;
	char **v;

	(void)r;
	if (strncmp(key, "g|", 2) != 0 && strncmp(key, "a|", 2) != 0)
		return 0;
	if ((v = realloc(k->v, sizeof(*v) * (k->n + 1))) == NULL)
		return 1;
	k->v = v;
	k->v[k->n++] = xstrdup(key);
	return 0;
}

static enum MHD_Result
greylist(struct MHD_Connection *c, const char *method)
{
	const char *one = MHD_lookup_connection_value(c,
	    MHD_GET_ARGUMENT_KIND, "triplet");
	json_t *entries, *clients;
	struct keys k = { NULL, 0 };
	size_t i;

	if (fault.st == NULL)
		return send_error(c, 500, "no state store");
	if (strcmp(method, "DELETE") == 0) {
		char key[600];

		if (one != NULL) {
			struct frec fr;

			snprintf(key, sizeof(key), "g|%s", one);
			/* DELETE is idempotent: an unknown triplet is 0 */
			if (store_get(fault.st, key, &fr) != 0)
				return send_json(c, 200, json_pack("{s:i}",
				    "deleted", 0));
			store_del(fault.st, key);
			return send_json(c, 200, json_pack("{s:i}", "deleted",
			    1));
		}
		store_each(fault.st, gl_keys, &k);
		for (i = 0; i < k.n; i++) {
			store_del(fault.st, k.v[i]);
			free(k.v[i]);
		}
		free(k.v);
		return send_json(c, 200, json_pack("{s:I}", "deleted",
		    (json_int_t)k.n));
	}
	entries = json_array();
	store_each(fault.st, gl_collect, entries);
	clients = json_array();
	for (i = json_array_size(entries); i-- > 0;) {
		json_t *e = json_array_get(entries, i);

		if (json_object_get(e, "client") != NULL) {
			json_array_append(clients, e);
			json_array_remove(entries, i);
		}
	}
	return send_json(c, 200, json_pack("{s:o,s:o}", "triplets", entries,
	    "clients", clients));
}

/* ---- /v1/events ---- */

static enum MHD_Result
get_events(struct MHD_Connection *c)
{
	const char *sv = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND,
	    "since");
	const char *lv = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND,
	    "limit");
	const char *lines[1000];
	uint64_t seqs[1000], since = 0;
	json_t *a = json_array();
	long limit = 100, v;
	size_t i, n;

	if (sv != NULL) {
		if (util_parse_long(sv, 0, 0x7fffffffffffffffL, &v) == -1) {
			json_decref(a);
			return send_error(c, 400, "since: expected a number");
		}
		since = (uint64_t)v;
	}
	if (lv != NULL && util_parse_long(lv, 1, 1000, &limit) == -1) {
		json_decref(a);
		return send_error(c, 400, "limit: expected 1 to 1000");
	}
	n = evt_ring_get(since, (size_t)limit, lines, seqs);
	for (i = 0; i < n; i++) {
		json_t *e = json_loads(lines[i], 0, NULL);

		if (e != NULL)
			json_array_append_new(a, e);
	}
	return send_json(c, 200, json_pack("{s:o,s:I}", "events", a, "last",
	    (json_int_t)(n ? seqs[n - 1] : since)));
}

static ssize_t
stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream *st = cls;
	const char *lines[RING_BATCH];
	uint64_t seqs[RING_BATCH];
	size_t i, n, o = 0;

	(void)pos;
	if (st->ping) {
		st->ping = 0;
		if (max > 16) {
			memcpy(buf, ": keep-alive\n\n", 14);
			return 14;
		}
	}
	n = evt_ring_get(st->cursor, RING_BATCH, lines, seqs);
	for (i = 0; i < n; i++) {
		int w = snprintf(buf + o, max - o, "id: %llu\ndata: %s\n\n",
		    (unsigned long long)seqs[i], lines[i]);

		if (w < 0 || (size_t)w >= max - o)
			break;
		o += (size_t)w;
		st->cursor = seqs[i];
	}
	if (o == 0) {
		/* nothing new: sleep until an event is written */
		st->suspended = 1;
		MHD_suspend_connection(st->conn);
	}
	return (ssize_t)o;
}

static void
stream_done(void *cls)
{
	struct stream *st = cls;

	st->used = 0;
}

static enum MHD_Result
get_stream(struct MHD_Connection *c)
{
	const char *sv = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND,
	    "since");
	struct MHD_Response *r;
	struct stream *st = NULL;
	enum MHD_Result rc;
	long v;
	int i;

	for (i = 0; i < MAX_STREAMS; i++)
		if (!streams[i].used) {
			st = &streams[i];
			break;
		}
	if (st == NULL)
		return send_error(c, 503, "too many event streams");
	memset(st, 0, sizeof(*st));
	st->used = 1;
	st->conn = c;
	st->cursor = evt_last_seq();
	if (sv != NULL && util_parse_long(sv, 0, 0x7fffffffffffffffL, &v) == 0)
		st->cursor = (uint64_t)v;
	r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024,
	    stream_read, st, stream_done);
	if (r == NULL) {
		st->used = 0;
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", "text/event-stream");
	MHD_add_response_header(r, "Cache-Control", "no-cache");
	rc = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return rc;
}

/* Called for every event written: wake the streams that wait. */
static void
on_new_event(void)
{
	int i, woke = 0;

	for (i = 0; i < MAX_STREAMS; i++)
		if (streams[i].used && streams[i].suspended) {
			streams[i].suspended = 0;
			MHD_resume_connection(streams[i].conn);
			woke = 1;
		}
	if (woke) {
		/* let MHD run once the current callback is over */
		ev_timer_stop(srv.loop, &mhd_timer);
		ev_timer_set(&mhd_timer, 0., 0.);
		ev_timer_start(srv.loop, &mhd_timer);
	}
}

static void
on_ping(struct ev_loop *loop, ev_timer *w, int revents)
{
	int i, woke = 0;

	(void)loop;
	(void)w;
	(void)revents;
	for (i = 0; i < MAX_STREAMS; i++)
		if (streams[i].used && streams[i].suspended) {
			streams[i].suspended = 0;
			streams[i].ping = 1;
			MHD_resume_connection(streams[i].conn);
			woke = 1;
		}
	if (woke) {
		MHD_run(mhd);
		control_rearm();
	}
}

/* ---- /v1/messages ---- */

static const char *
header_value(const char *msg, const char *name, char *out, size_t len)
{
	size_t nl = strlen(name);
	const char *p = msg;

	out[0] = '\0';
	while (*p && !(p[0] == '\r' && p[1] == '\n') && *p != '\n') {
		if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1;
			size_t n = 0;

			while (*v == ' ' || *v == '\t')
				v++;
			while (v[n] && v[n] != '\r' && v[n] != '\n' &&
			    n + 1 < len)
				n++;
			memcpy(out, v, n);
			out[n] = '\0';
			return out;
		}
		p = strchr(p, '\n');
		if (p == NULL)
			break;
		p++;
	}
	return NULL;
}

static json_t *
message_json(const char *dir, const char *name)
{
	char path[8192], v[512], *head, *p;
	json_t *o, *to;
	struct stat sb;
	size_t len;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (stat(path, &sb) == -1 || (head = slurp(path, 16384, &len)) ==
	    NULL)
		return NULL;
	/* only the header block: a body may quote anything */
	if ((p = strstr(head, "\r\n\r\n")) != NULL ||
	    (p = strstr(head, "\n\n")) != NULL)
		*p = '\0';
	to = json_array();
	for (p = head; (p = strstr(p, "X-Smtpfault-Rcpt-To: <")) != NULL;) {
		char *e = strchr(p + 22, '>');

		if (e == NULL)
			break;
		json_array_append_new(to, json_stringn_nocheck(p + 22,
		    (size_t)(e - p - 22)));
		p = e;
	}
	o = json_pack("{s:s,s:I,s:I,s:o}", "id", name, "size",
	    (json_int_t)sb.st_size, "time", (json_int_t)sb.st_mtime, "to", to);
	if (header_value(head, "X-Smtpfault-Mail-From", v, sizeof(v)))
		json_object_set_new(o, "from", json_string_nocheck(v));
	if (header_value(head, "Subject", v, sizeof(v)))
		json_object_set_new(o, "subject", json_string_nocheck(v));
	if (header_value(head, "Message-ID", v, sizeof(v)))
		json_object_set_new(o, "message_id", json_string_nocheck(v));
	free(head);
	return o;
}

static int
valid_id(const char *id)
{
	return id[0] != '\0' && id[0] != '.' && strchr(id, '/') == NULL;
}

static enum MHD_Result
messages(struct MHD_Connection *c, const char *method, const char *url)
{
	const char *base = srv.cf->capture_dir;
	char dir[4096], path[8192];
	const char *id = url + strlen("/v1/messages");
	json_t *a;
	DIR *d;
	struct dirent *de;
	long n = 0;
	int k;

	if (base == NULL || base[0] == '\0')
		return send_error(c, 404, "capture is off ([capture] dir)");
	if (*id == '/') {
		char *raw;
		size_t len;

		id++;
		if (!valid_id(id) || strcmp(method, "GET") != 0)
			return send_error(c, 400, "bad message id");
		for (k = 0; k < 2; k++) {
			snprintf(path, sizeof(path), "%s/%s/%s", base,
			    k ? "cur" : "new", id);
			if ((raw = slurp(path, 64 << 20, &len)) != NULL) {
				enum MHD_Result rc = send_text(c, 200,
				    "message/rfc822", raw, len);

				free(raw);
				return rc;
			}
		}
		return send_error(c, 404, "no such message");
	}
	if (*id != '\0')
		return send_error(c, 404, "not found");
	a = json_array();
	for (k = 0; k < 2; k++) {
		snprintf(dir, sizeof(dir), "%s/%s", base, k ? "cur" : "new");
		if ((d = opendir(dir)) == NULL)
			continue;
		while ((de = readdir(d)) != NULL) {
			json_t *m;

			if (!valid_id(de->d_name))
				continue;
			if (strcmp(method, "DELETE") == 0) {
				snprintf(path, sizeof(path), "%s/%s", dir,
				    de->d_name);
				if (unlink(path) == 0)
					n++;
			} else if ((m = message_json(dir, de->d_name)) != NULL)
				json_array_append_new(a, m);
		}
		closedir(d);
	}
	if (strcmp(method, "DELETE") == 0) {
		json_decref(a);
		return send_json(c, 200, json_pack("{s:I}", "deleted",
		    (json_int_t)n));
	}
	return send_json(c, 200, json_pack("{s:o}", "messages", a));
}

/* ---- /v1/timeline ---- */

static enum MHD_Result
get_timeline(struct MHD_Connection *c)
{
	const char *q = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND,
	    "quiet");
	const char *prof = MHD_lookup_connection_value(c,
	    MHD_GET_ARGUMENT_KIND, "profile");
	const char *ef = srv.cf->events_file;
	double quiet = 600;
	json_t *j;
	FILE *fp = NULL;
	char *mem = NULL;
	size_t memlen = 0;

	if (q != NULL && util_parse_dur(q, &quiet) == -1)
		return send_error(c, 400, "quiet: expected a duration");
	if (prof != NULL && !report_profile_known(prof))
		return send_error(c, 400, "profile: expected postfix-default, "
		    "exim-default or exchange-online");
	evt_flush();
	if (ef != NULL && ef[0] != '\0' && strcmp(ef, "-") != 0)
		fp = fopen(ef, "r");
	if (fp == NULL) {
		/* no event file to read: the in-memory ring */
		const char *lines[RING_BATCH];
		uint64_t seqs[RING_BATCH], since = 0;
		size_t n, i;
		FILE *w = open_memstream(&mem, &memlen);

		if (w == NULL)
			return send_error(c, 500, "out of memory");
		while ((n = evt_ring_get(since, RING_BATCH, lines, seqs)) > 0) {
			for (i = 0; i < n; i++)
				fprintf(w, "%s\n", lines[i]);
			since = seqs[n - 1];
		}
		fclose(w);
		fp = fmemopen(mem, memlen ? memlen : 1, "r");
		if (fp == NULL) {
			free(mem);
			return send_error(c, 500, "out of memory");
		}
	}
	j = report_build(fp, quiet, prof);
	fclose(fp);
	free(mem);
	return send_json(c, 200, j);
}

/* ---- /metrics ---- */

static void
metric(FILE *w, const char *name, const char *type, const char *help)
{
	fprintf(w, "# HELP smtpfault_%s %s\n# TYPE smtpfault_%s %s\n", name,
	    help, name, type);
}

static enum MHD_Result
get_metrics(struct MHD_Connection *c)
{
	static const char *const gl[] = { "new", "early_retry", "passed",
	    "known", "whitelisted" };
	char *buf = NULL;
	size_t len = 0, i;
	enum MHD_Result rc;
	FILE *w = open_memstream(&buf, &len);

	if (w == NULL)
		return send_error(c, 500, "out of memory");
	metric(w, "connections_total", "counter", "Connections accepted.");
	fprintf(w, "smtpfault_connections_total %llu\n",
	    (unsigned long long)metrics.connections);
	metric(w, "connections_refused_total", "counter",
	    "Connections turned away at accept (caps, shutdown).");
	fprintf(w, "smtpfault_connections_refused_total %llu\n",
	    (unsigned long long)metrics.refused);
	metric(w, "sessions_active", "gauge", "Sessions open now.");
	fprintf(w, "smtpfault_sessions_active %ld\n", srv.nsessions);
	metric(w, "commands_total", "counter", "Commands read, by verb.");
	for (i = 0; i < CMD__COUNT; i++)
		if (metrics.commands[i] > 0)
			fprintf(w, "smtpfault_commands_total{verb=\"%s\"} "
			    "%llu\n", i == CMD_UNKNOWN ? "unknown" :
			    cmd_name((enum cmd_id)i),
			    (unsigned long long)metrics.commands[i]);
	metric(w, "replies_total", "counter", "Replies sent, by code.");
	for (i = 200; i < 600; i++)
		if (metrics.replies[i] > 0)
			fprintf(w, "smtpfault_replies_total{code=\"%zu\"} "
			    "%llu\n", i, (unsigned long long)metrics.replies[i]);
	metric(w, "faults_total", "counter", "Scenario rules fired, by rule "
	    "and action (since the scenario was loaded).");
	for (i = 0; i < srv.cf->scn->n; i++) {
		const struct fault_rule *r = srv.cf->scn->v[i];
		char name[300];

		evt_json_quote(name, sizeof(name), r->name, strlen(r->name));
		fprintf(w, "smtpfault_faults_total{rule=%s,action=\"%s\"} "
		    "%ld\n", name, scn_act_name(r->act), r->fired);
	}
	metric(w, "messages_accepted_total", "counter", "Messages accepted.");
	fprintf(w, "smtpfault_messages_accepted_total %llu\n",
	    (unsigned long long)metrics.messages);
	metric(w, "messages_refused_total", "counter",
	    "Message bodies read and refused.");
	fprintf(w, "smtpfault_messages_refused_total %llu\n",
	    (unsigned long long)metrics.messages_refused);
	metric(w, "bytes_accepted_total", "counter",
	    "Octets of accepted messages.");
	fprintf(w, "smtpfault_bytes_accepted_total %llu\n",
	    (unsigned long long)metrics.bytes);
	metric(w, "greylist_decisions_total", "counter",
	    "Greylist decisions, by result.");
	for (i = 0; i < NELEM(gl); i++)
		fprintf(w, "smtpfault_greylist_decisions_total{result=\"%s\"} "
		    "%llu\n", gl[i], (unsigned long long)metrics.greylist[i]);
	metric(w, "state_entries", "gauge", "Records in the fault state "
	    "store (attempt counters and greylist entries).");
	fprintf(w, "smtpfault_state_entries %ld\n", fault.st ?
	    store_count(fault.st) : 0L);
	metric(w, "tls_handshakes_total", "counter", "TLS handshakes done.");
	fprintf(w, "smtpfault_tls_handshakes_total %llu\n",
	    (unsigned long long)metrics.tls_handshakes);
	metric(w, "tls_failures_total", "counter", "TLS failures.");
	fprintf(w, "smtpfault_tls_failures_total %llu\n",
	    (unsigned long long)metrics.tls_failures);
	fclose(w);
	rc = send_text(c, 200, "text/plain; version=0.0.4", buf, len);
	free(buf);
	return rc;
}

/* ---- routing ---- */

static int
authorised(struct MHD_Connection *c)
{
	const char *tok = srv.cf->control_token, *h;

	if (tok == NULL || tok[0] == '\0')
		return 1;
	h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
	return h != NULL && strncmp(h, "Bearer ", 7) == 0 &&
	    strcmp(h + 7, tok) == 0;
}

/* Is method m one of the comma-separated list? */
static int
method_in(const char *list, const char *m)
{
	size_t n = strlen(m);
	const char *p = list;

	while (n > 0 && (p = strstr(p, m)) != NULL) {
		if ((p == list || p[-1] == ' ') && (p[n] == '\0' ||
		    p[n] == ','))
			return 1;
		p += n;
	}
	return 0;
}

/* Which methods a known path takes; NULL when the path is unknown. */
static const char *
allowed(const char *url)
{
	static const struct { const char *path; int prefix; const char *m; }
	    t[] = {
		{ "/metrics", 0, "GET" },
		{ "/v1/status", 0, "GET" },
		{ "/v1/scenario", 0, "GET, PUT" },
		{ "/v1/rules/", 1, "POST" },
		{ "/v1/greylist", 0, "GET, DELETE" },
		{ "/v1/events", 0, "GET" },
		{ "/v1/events/stream", 0, "GET" },
		{ "/v1/messages", 0, "GET, DELETE" },
		{ "/v1/messages/", 1, "GET" },
		{ "/v1/timeline", 0, "GET" },
	};
	size_t i;

	for (i = 0; i < NELEM(t); i++)
		if (t[i].prefix ? strncmp(url, t[i].path, strlen(t[i].path))
		    == 0 && url[strlen(t[i].path)] != '\0' :
		    strcmp(url, t[i].path) == 0)
			return t[i].m;
	return NULL;
}

static enum MHD_Result
route(struct MHD_Connection *c, const char *url, const char *m,
    const struct req *q)
{
	const char *ok = allowed(url);

	if (ok == NULL)
		return send_error(c, 404, "no such endpoint");
	if (!method_in(ok, m)) {
		struct MHD_Response *r;
		json_t *j = json_pack("{s:s}", "error", "method not allowed");
		char *txt = json_dumps(j, 0);
		enum MHD_Result rc;

		json_decref(j);
		/* 405 must say what is allowed */
		r = MHD_create_response_from_buffer(txt ? strlen(txt) : 0,
		    txt ? txt : (char *)(uintptr_t)"", MHD_RESPMEM_MUST_COPY);
		free(txt);
		if (r == NULL)
			return MHD_NO;
		MHD_add_response_header(r, "Content-Type", "application/json");
		MHD_add_response_header(r, "Allow", ok);
		rc = MHD_queue_response(c, 405, r);
		MHD_destroy_response(r);
		return rc;
	}
	if (strcmp(url, "/metrics") == 0)
		return get_metrics(c);
	if (strcmp(url, "/v1/status") == 0)
		return send_json(c, 200, status_json());
	if (strcmp(url, "/v1/scenario") == 0)
		return strcmp(m, "PUT") == 0 ? put_scenario(c, q) :
		    get_scenario(c);
	if (strncmp(url, "/v1/rules/", 10) == 0)
		return post_rule(c, url);
	if (strcmp(url, "/v1/greylist") == 0)
		return greylist(c, m);
	if (strcmp(url, "/v1/events") == 0)
		return get_events(c);
	if (strcmp(url, "/v1/events/stream") == 0)
		return get_stream(c);
	if (strncmp(url, "/v1/messages", 12) == 0)
		return messages(c, m, url);
	return get_timeline(c);
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *upload,
    size_t *upload_size, void **con_cls)
{
	struct req *q = *con_cls;

	(void)cls;
	(void)version;
	if (q == NULL) {
		/* first call: headers only */
		if ((q = calloc(1, sizeof(*q))) == NULL)
			return MHD_NO;
		*con_cls = q;
		return MHD_YES;
	}
	if (*upload_size > 0) {
		size_t n = *upload_size;

		if (!q->too_big && q->len + n <= (size_t)srv.cf->control_max_body) {
			char *b = realloc(q->body, q->len + n + 1);

			if (b == NULL)
				q->too_big = 1;
			else {
				memcpy(b + q->len, upload, n);
				q->body = b;
				q->len += n;
				q->body[q->len] = '\0';
			}
		} else {
			q->too_big = 1;
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (!authorised(c))
		return send_error(c, 401, "missing or wrong bearer token");
	if (q->too_big)
		return send_error(c, 413, "request body too large");
	return route(c, url, method, q);
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct req *q = *con_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (q != NULL) {
		free(q->body);
		free(q);
		*con_cls = NULL;
	}
}

/* ---- libev glue ---- */

static void
control_rearm(void)
{
	MHD_UNSIGNED_LONG_LONG ms;

	ev_timer_stop(srv.loop, &mhd_timer);
	if (MHD_get_timeout(mhd, &ms) == MHD_YES) {
		ev_timer_set(&mhd_timer, (double)ms / 1000.0, 0.);
		ev_timer_start(srv.loop, &mhd_timer);
	}
}

/* MHD's epoll fd is readable, or its timeout ran out: let it work. */
static void
on_mhd_io(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop, (void)w, (void)revents;
	MHD_run(mhd);
	control_rearm();
}

static void
on_mhd_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop, (void)w, (void)revents;
	MHD_run(mhd);
	control_rearm();
}

static void
on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512];

	(void)cls;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	buf[strcspn(buf, "\n")] = '\0';
	log_debug("control: %s", buf);
}

const char *
control_name(void)
{
	return mhd != NULL ? ctl_name : NULL;
}

int
control_init(int fd, const char *name)
{
	const union MHD_DaemonInfo *info;

	mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG |
	    MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL, on_request, NULL,
	    MHD_OPTION_LISTEN_SOCKET, fd,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)(MAX_STREAMS + 64),
	    MHD_OPTION_CONNECTION_TIMEOUT, 30u,
	    MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
	    MHD_OPTION_END);
	if (mhd == NULL) {
		log_warnx("control: cannot start the HTTP server");
		return -1;
	}
	info = MHD_get_daemon_info(mhd, MHD_DAEMON_INFO_EPOLL_FD);
	if (info == NULL) {
		MHD_stop_daemon(mhd);
		mhd = NULL;
		return -1;
	}
	snprintf(ctl_name, sizeof(ctl_name), "%s", name);
	ev_io_init(&mhd_io, on_mhd_io, info->epoll_fd, EV_READ);
	ev_io_start(srv.loop, &mhd_io);
	ev_unref(srv.loop);	/* the API alone keeps nobody running */
	ev_init(&mhd_timer, on_mhd_timer);
	control_rearm();
	ev_timer_init(&ping_timer, on_ping, STREAM_PING, STREAM_PING);
	ev_timer_start(srv.loop, &ping_timer);
	ev_unref(srv.loop);
	evt_ring_notify(on_new_event);
	return 0;
}

void
control_free(void)
{
	int i;

	if (mhd == NULL)
		return;
	for (i = 0; i < MAX_STREAMS; i++)
		if (streams[i].used && streams[i].suspended) {
			streams[i].suspended = 0;
			MHD_resume_connection(streams[i].conn);
		}
	ev_ref(srv.loop);
	ev_io_stop(srv.loop, &mhd_io);
	ev_ref(srv.loop);
	ev_timer_stop(srv.loop, &ping_timer);
	ev_timer_stop(srv.loop, &mhd_timer);
	MHD_stop_daemon(mhd);
	mhd = NULL;
	evt_ring_free();
	if (api_scenario != NULL) {
		unlink(api_scenario);
		free(api_scenario);
		api_scenario = NULL;
	}
}
