/*
 * ctldata.c - the control API's read side: greylist, events, messages,
 *             timeline, metrics
 *
 * DESCRIPTION  Endpoints that show what happened (and the two DELETEs that
 *              clear it), called from control.c's router.  The event stream
 *              keeps its clients suspended while nothing is new, wakes them
 *              for each event written and every STREAM_PING seconds for a
 *              keep-alive comment, which is also how a client that left is
 *              noticed and its slot freed.
 * OWNERSHIP    The stream table is static here; MHD owns the connections.
 *
 * SPDX-License-Identifier: MIT
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ev.h>
#include <jansson.h>
#include <microhttpd.h>

#include "cmd.h"
#include "conf.h"
#include "ctl_int.h"
#include "events.h"
#include "fault.h"
#include "metrics.h"
#include "report.h"
#include "server.h"
#include "store.h"
#include "util.h"

#define RING_BATCH	256
#define STREAM_PING	5.0

struct stream {
	struct MHD_Connection	*conn;
	uint64_t		 cursor;	/* last seq sent */
	int			 suspended;
	int			 ping;		/* send a keep-alive comment */
	int			 used;
};

static struct stream	 streams[MAX_STREAMS];
static ev_timer		 ping_timer;

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

enum MHD_Result
ctldata_greylist(struct MHD_Connection *c, const char *method)
{
	const char *one = MHD_lookup_connection_value(c,
	    MHD_GET_ARGUMENT_KIND, "triplet");
	json_t *entries, *clients;
	struct keys k = { NULL, 0 };
	size_t i;

	if (fault.st == NULL)
		return control_send_error(c, 500, "no state store");
	if (strcmp(method, "DELETE") == 0) {
		char key[600];

		if (one != NULL) {
			struct frec fr;

			snprintf(key, sizeof(key), "g|%s", one);
			/* DELETE is idempotent: an unknown triplet is 0 */
			if (store_get(fault.st, key, &fr) != 0)
				return control_send_json(c, 200, json_pack("{s:i}",
				    "deleted", 0));
			store_del(fault.st, key);
			return control_send_json(c, 200, json_pack("{s:i}", "deleted",
			    1));
		}
		store_each(fault.st, gl_keys, &k);
		for (i = 0; i < k.n; i++) {
			store_del(fault.st, k.v[i]);
			free(k.v[i]);
		}
		free(k.v);
		return control_send_json(c, 200, json_pack("{s:I}", "deleted",
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
	return control_send_json(c, 200, json_pack("{s:o,s:o}", "triplets", entries,
	    "clients", clients));
}

enum MHD_Result
ctldata_events(struct MHD_Connection *c)
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
			return control_send_error(c, 400, "since: expected a number");
		}
		since = (uint64_t)v;
	}
	if (lv != NULL && util_parse_long(lv, 1, 1000, &limit) == -1) {
		json_decref(a);
		return control_send_error(c, 400, "limit: expected 1 to 1000");
	}
	n = evt_ring_get(since, (size_t)limit, lines, seqs);
	for (i = 0; i < n; i++) {
		json_t *e = json_loads(lines[i], 0, NULL);

		if (e != NULL)
			json_array_append_new(a, e);
	}
	return control_send_json(c, 200, json_pack("{s:o,s:I}", "events", a, "last",
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

enum MHD_Result
ctldata_stream(struct MHD_Connection *c)
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
		return control_send_error(c, 503, "too many event streams");
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
void
ctldata_wake(void)
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
		control_run_soon();
	}
}

static void
ctldata_on_ping(struct ev_loop *loop, ev_timer *w, int revents)
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
		control_run_now();
	}
}

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
	if (stat(path, &sb) == -1 || (head = control_slurp(path, 16384, &len)) ==
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

enum MHD_Result
ctldata_messages(struct MHD_Connection *c, const char *method, const char *url)
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
		return control_send_error(c, 404, "capture is off ([capture] dir)");
	if (*id == '/') {
		char *raw;
		size_t len;

		id++;
		if (!valid_id(id) || strcmp(method, "GET") != 0)
			return control_send_error(c, 400, "bad message id");
		for (k = 0; k < 2; k++) {
			snprintf(path, sizeof(path), "%s/%s/%s", base,
			    k ? "cur" : "new", id);
			if ((raw = control_slurp(path, 64 << 20, &len)) != NULL) {
				enum MHD_Result rc = control_send_text(c, 200,
				    "message/rfc822", raw, len);

				free(raw);
				return rc;
			}
		}
		return control_send_error(c, 404, "no such message");
	}
	if (*id != '\0')
		return control_send_error(c, 404, "not found");
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
		return control_send_json(c, 200, json_pack("{s:I}", "deleted",
		    (json_int_t)n));
	}
	return control_send_json(c, 200, json_pack("{s:o}", "messages", a));
}

enum MHD_Result
ctldata_timeline(struct MHD_Connection *c)
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
		return control_send_error(c, 400, "quiet: expected a duration");
	if (prof != NULL && !report_profile_known(prof))
		return control_send_error(c, 400, "profile: expected postfix-default, "
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
			return control_send_error(c, 500, "out of memory");
		while ((n = evt_ring_get(since, RING_BATCH, lines, seqs)) > 0) {
			for (i = 0; i < n; i++)
				fprintf(w, "%s\n", lines[i]);
			since = seqs[n - 1];
		}
		fclose(w);
		fp = fmemopen(mem, memlen ? memlen : 1, "r");
		if (fp == NULL) {
			free(mem);
			return control_send_error(c, 500, "out of memory");
		}
	}
	j = report_build(fp, quiet, prof);
	fclose(fp);
	free(mem);
	return control_send_json(c, 200, j);
}

static void
metric(FILE *w, const char *name, const char *type, const char *help)
{
	fprintf(w, "# HELP smtpfault_%s %s\n# TYPE smtpfault_%s %s\n", name,
	    help, name, type);
}

enum MHD_Result
ctldata_metrics(struct MHD_Connection *c)
{
	static const char *const gl[] = { "new", "early_retry", "passed",
	    "known", "whitelisted" };
	char *buf = NULL;
	size_t len = 0, i;
	enum MHD_Result rc;
	FILE *w = open_memstream(&buf, &len);

	if (w == NULL)
		return control_send_error(c, 500, "out of memory");
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
	rc = control_send_text(c, 200, "text/plain; version=0.0.4", buf, len);
	free(buf);
	return rc;
}

void
ctldata_init(void)
{
	ev_timer_init(&ping_timer, ctldata_on_ping, STREAM_PING, STREAM_PING);
	ev_timer_start(srv.loop, &ping_timer);
	ev_unref(srv.loop);
	evt_ring_notify(ctldata_wake);
}

/* Before MHD stops: no connection may stay suspended. */
void
ctldata_free(void)
{
	int i;

	evt_ring_notify(NULL);
	for (i = 0; i < MAX_STREAMS; i++)
		if (streams[i].used && streams[i].suspended) {
			streams[i].suspended = 0;
			MHD_resume_connection(streams[i].conn);
		}
	ev_ref(srv.loop);
	ev_timer_stop(srv.loop, &ping_timer);
}
