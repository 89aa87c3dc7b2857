/*
 * control.c - the control API (HTTP/JSON) and /metrics on loopback
 *
 * DESCRIPTION  libmicrohttpd in external-epoll mode, driven by the server's
 *              libev loop (one ev_io on MHD's epoll fd, one ev_timer for its
 *              timeouts), so no thread is added.  JSON through jansson.
 *              This file holds the HTTP plumbing, the router and the
 *              endpoints that steer (status, scenario, rules); ctldata.c
 *              the ones that show (greylist, events, messages, timeline,
 *              metrics).  Endpoints and examples: docs/api.md.
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
#include "ctl_int.h"
#include "events.h"
#include "fault.h"
#include "log.h"
#include "main.h"
#include "metrics.h"
#include "report.h"
#include "server.h"
#include "util.h"
#include "version.h"


struct req {
	char		*body;
	size_t		 len;
	int		 too_big;
};

static struct MHD_Daemon	*mhd;
static ev_io			 mhd_io;
static ev_timer			 mhd_timer;
static char			*api_scenario;	/* temp file of a PUT text */
static char			 ctl_name[96];

static void	control_rearm(void);

/* ---- responses ---- */

enum MHD_Result
control_send_text(struct MHD_Connection *c, unsigned status, const char *type,
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
enum MHD_Result
control_send_json(struct MHD_Connection *c, unsigned status, json_t *j)
{
	char *txt = json_dumps(j, JSON_INDENT(2));
	enum MHD_Result rc;

	json_decref(j);
	if (txt == NULL)
		return control_send_text(c, 500, "application/json",
		    "{\"error\":\"out of memory\"}\n", 26);
	rc = control_send_text(c, status, "application/json", txt, strlen(txt));
	free(txt);
	return rc;
}

enum MHD_Result
control_send_error(struct MHD_Connection *c, unsigned status, const char *msg)
{
	return control_send_json(c, status, json_pack("{s:s}", "error", msg));
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
	    "connections", (json_int_t)metrics.connections,
	    "messages", (json_int_t)metrics.messages,
	    "bytes", (json_int_t)metrics.bytes,
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

char *
control_slurp(const char *path, size_t max, size_t *len)
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
		text = control_slurp(srv.cf->scenario_file, 1 << 20, &len);
	o = json_pack("{s:o,s:o,s:o}", "scenario", srv.cf->scenario_file ?
	    json_string(srv.cf->scenario_file) : json_null(), "text", text ?
	    json_stringn_nocheck(text, len) : json_null(), "rules", rules);
	free(text);
	return control_send_json(c, 200, o);
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
		return control_send_error(c, 400, "empty body: send {\"name\": "
		    "\"accept-all\"} to clear every rule");
	j = q->body[0] == '{' ? json_loadb(q->body, q->len, 0, NULL) : NULL;
	if (j == NULL && q->body[0] == '{')
		return control_send_error(c, 400, "malformed JSON");
	if (j != NULL) {
		const char *name = json_string_value(json_object_get(j,
		    "name"));

		if (name == NULL || name[0] == '\0' ||
		    strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS"
		    "TUVWXYZ0123456789_-") != strlen(name)) {
			json_decref(j);
			return control_send_error(c, 400, "expected {\"name\": "
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
			return control_send_error(c, 500, "cannot write the scenario");
		if (write(fd, q->body, q->len) != (ssize_t)q->len) {
			close(fd);
			unlink(path);
			return control_send_error(c, 500, "cannot write the scenario");
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
		return control_send_json(c, 400, json_pack("{s:s,s:o}", "error",
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
		return control_send_error(c, 404, "use /v1/rules/NAME/enable or "
		    "/disable");
	on = strcmp(slash, "/enable") == 0;
	n = (size_t)(slash - (url + 10));
	if (n == 0 || n >= sizeof(name))
		return control_send_error(c, 404, "no rule named");
	memcpy(name, url + 10, n);
	name[n] = '\0';
	if ((r = scn_find(srv.cf->scn, name)) == NULL)
		return control_send_error(c, 404, "no such rule");
	r->enabled = on;
	evt_begin("rule");
	evt_str("rule", r->name);
	evt_bool("enabled", on);
	evt_end();
	return control_send_json(c, 200, rule_json(r));
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
		return control_send_error(c, 404, "no such endpoint");
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
		return ctldata_metrics(c);
	if (strcmp(url, "/v1/status") == 0)
		return control_send_json(c, 200, status_json());
	if (strcmp(url, "/v1/scenario") == 0)
		return strcmp(m, "PUT") == 0 ? put_scenario(c, q) :
		    get_scenario(c);
	if (strncmp(url, "/v1/rules/", 10) == 0)
		return post_rule(c, url);
	if (strcmp(url, "/v1/greylist") == 0)
		return ctldata_greylist(c, m);
	if (strcmp(url, "/v1/events") == 0)
		return ctldata_events(c);
	if (strcmp(url, "/v1/events/stream") == 0)
		return ctldata_stream(c);
	if (strncmp(url, "/v1/messages", 12) == 0)
		return ctldata_messages(c, m, url);
	return ctldata_timeline(c);
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
		return control_send_error(c, 401, "missing or wrong bearer token");
	if (q->too_big)
		return control_send_error(c, 413, "request body too large");
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
	ctldata_init();
	return 0;
}

void
control_run_now(void)
{
	MHD_run(mhd);
	control_rearm();
}

/* Run MHD as soon as the current callback is over (a resumed stream). */
void
control_run_soon(void)
{
	ev_timer_stop(srv.loop, &mhd_timer);
	ev_timer_set(&mhd_timer, 0., 0.);
	ev_timer_start(srv.loop, &mhd_timer);
}

void
control_free(void)
{
	if (mhd == NULL)
		return;
	ctldata_free();
	ev_ref(srv.loop);
	ev_io_stop(srv.loop, &mhd_io);
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
