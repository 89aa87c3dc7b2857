/*
 * hook.c - fault hook points: ask the engine, carry out its decision
 *
 * DESCRIPTION  hook_run() is called by the command handlers at each hook
 *              point (and by hook_greet() before the banner).  It asks
 *              fault_eval() and carries the action out on the session:
 *              reply, delay (holding the command to re-run it), hang,
 *              close, reset, tarpit, discard, drop_after_data,
 *              disconnect_after_bytes, and the TLS modes for starttls.c.
 * OWNERSHIP    A delayed decision keeps a copy of its command line and a
 *              reference on the conf it came from (a reload cannot free
 *              the rule under it); hook_release() drops both.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "conf.h"
#include "events.h"
#include "fault.h"
#include "greylist.h"
#include "metrics.h"
#include "sess_int.h"
#include "tlsio.h"
#include "util.h"

#define DELAY_EARLY	0.05	/* seconds: see hook_run() */

static void	hook_ctx(struct session *s, enum fault_hook h, const char *a1,
    struct fault_ctx *c);
static void	hook_event(struct session *s, const struct fault_decision *d,
    int code, const char *text);
static void	hook_hold(struct session *s, enum fault_hook h,
    const char *line, size_t len);
static void	hook_release(struct session *s);
static int	hook_greylist(struct session *s, enum fault_hook h,
    struct fault_decision *d, const struct fault_ctx *c);
static int	hook_apply(struct session *s, enum fault_hook h,
    struct fault_decision *d, const struct fault_ctx *c, int emit);

static void
hook_ctx(struct session *s, enum fault_hook h, const char *a1,
    struct fault_ctx *c)
{
	memset(c, 0, sizeof(*c));
	c->hook = h;
	c->sa = &s->sa;
	c->client = s->addr;
	c->listener = s->lst ? s->lst->name : "";
	c->hostname = CF->hostname;
	c->helo = h == FH_HELO ? a1 : s->helo;
	c->from = h == FH_MAIL ? a1 : s->from;
	c->rcpt = h == FH_RCPT ? a1 : NULL;
	c->rcpts = s->rcpt;
	c->nrcpt = s->nrcpt;
	c->size = h == FH_DATA_END ? s->msg_octets : s->decl_size;
	c->tls = (s->flags & SF_TLS) != 0;
	c->hits = s->hits;
	c->nhits = s->nhits;
}

static void
hook_event(struct session *s, const struct fault_decision *d, int code,
    const char *text)
{
	if (!evt_enabled())
		return;
	sess_event(s, "fault");
	evt_str("rule", d->rule->name);
	evt_str("action", scn_act_name(d->act));
	evt_str("hook", scn_hook_name(s->pending_hook));
	evt_uint("attempt", d->attempt);
	if (d->delay > 0)
		evt_num("delay", d->delay);
	if (code != 0) {
		evt_int("code", code);
		evt_str("reply", text);
	}
	evt_end();
}

static void
hook_hold(struct session *s, enum fault_hook h, const char *line,
    size_t len)
{
	free(s->pending_line);
	s->pending_line = NULL;
	s->pending_len = 0;
	if (line != NULL && (s->pending_line = malloc(len + 1)) != NULL) {
		memcpy(s->pending_line, line, len);
		s->pending_line[len] = '\0';
		s->pending_len = len;
	}
	s->pending_hook = h;
	if (s->pcf == NULL) {
		s->pcf = CF;
		CF->refs++;
	}
}

static void
hook_release(struct session *s)
{
	free(s->pending_line);
	s->pending_line = NULL;
	if (s->pcf != NULL) {
		conf_free(s->pcf);
		s->pcf = NULL;
	}
}

/*
 * Carry out a decision.  Returns 0 when the command goes on normally
 * (maybe with the rule's words in its reply, or dripped), 1 when the
 * fault took over (the command's own handling must not run).
 */
static void
greylist_event(struct session *s, const char *rcpt,
    const struct greylist_outcome *o)
{
	metrics.greylist[o->result]++;
	sess_event(s, "greylist");
	evt_str("result", greylist_result_name(o->result));
	evt_strn("triplet", o->key + 2, strlen(o->key + 2));
	evt_strn("rcpt", rcpt, strlen(rcpt));
	if (o->result == GL_NEW || o->result == GL_EARLY)
		evt_num("seconds_left", o->left);
	if (o->result == GL_PASSED)
		evt_num("waited", o->waited);
	if (o->restarted)
		evt_bool("retry_window_passed", 1);
	if (CF->gl_auto_whitelist > 0)
		evt_uint("client_passes", o->awl);
	evt_end();
}

/*
 * Greylist the recipient (rcpt) or every recipient (data_end: one that
 * must wait defers the message).  Returns 1 when it deferred.
 */
static int
hook_greylist(struct session *s, enum fault_hook h,
    struct fault_decision *d, const struct fault_ctx *c)
{
	struct greylist_conf gc;
	struct greylist_outcome o;
	struct fault_rule tmp;
	char text[1024];
	double left = 0;
	int i, n, defer = 0;

	memset(&gc, 0, sizeof(gc));
	gc.delay = CF->gl_delay;
	gc.retry_window = CF->gl_retry_window;
	gc.max_age = CF->gl_max_age;
	gc.auto_whitelist = CF->gl_auto_whitelist;
	gc.awl_interval = CF->gl_awl_interval;
	gc.host = strcmp(CF->gl_netmask, "host") == 0;
	gc.v4bits = gc.host ? 32 : (int)CF->gl_ipv4_cidr;
	gc.v6bits = gc.host ? 128 : (int)CF->gl_ipv6_cidr;
	gc.helo_in_key = CF->gl_helo_in_key;
	n = h == FH_RCPT ? 1 : s->nrcpt;
	for (i = 0; i < n; i++) {
		const char *rcpt = h == FH_RCPT ? c->rcpt : s->rcpt[i];

		if (greylist_check(fault.st, &gc, &s->sa, s->helo, c->from,
		    rcpt, fault.now(), &o)) {
			defer = 1;
			if (o.left > left)
				left = o.left;
		}
		greylist_event(s, rcpt, &o);
	}
	if (!defer)
		return 0;
	/* the rule's own reply, else [greylist] reply */
	tmp = *d->rule;
	if (tmp.code == 0) {
		tmp.code = CF->gl_code;
		tmp.ecode = CF->gl_ecode;
		tmp.text = CF->gl_text;
	}
	d->left = left;
	fault_reply_text(&tmp, c, d, text, sizeof(text));
	sess_reply_text(s, tmp.code, tmp.ecode, text);
	return 1;
}

static int
hook_apply(struct session *s, enum fault_hook h, struct fault_decision *d,
    const struct fault_ctx *c, int emit)
{
	struct fault_rule *r = d->rule;
	char text[1024] = "";

	if (r->code != 0)
		fault_reply_text(r, c, d, text, sizeof(text));
	if (emit)
		hook_event(s, d, r->code, text);
	switch (d->act) {
	case FA_DELAY:
	case FA_ACCEPT:
		return 0;
	case FA_HANG:
		s->flags |= SF_HANG;
		ev_timer_set(&s->ftimer, r->hold > 0 ? r->hold : CF->hold_max,
		    0.);
		ev_timer_start(srv.loop, &s->ftimer);
		return 1;
	case FA_CLOSE:
		if (sess_flush(s) == 0)
			sess_close(s, "fault_close");
		return 1;
	case FA_RESET:
		sess_reset(s, "fault_reset");
		return 1;
	case FA_DISCARD:
		s->flags |= SF_DISCARD;
		break;
	case FA_DROP_AFTER_DATA:
		s->flags |= SF_DROP;
		return 0;
	case FA_DISCONNECT_AFTER_BYTES:
		s->flags |= SF_CUT;
		s->cut_after = r->after_bytes;
		s->cut_rx = 0;
		return 0;
	case FA_TLS_ABORT:
	case FA_TLS_RESET:
	case FA_TLS_STALL:
	case FA_TLS_FAULT:
		s->tls_mode = d->act;
		s->tls_variant = d->act == FA_TLS_FAULT ? r->tls_fault : TV_GOOD;
		return 0;
	case FA_GREYLIST:
		return hook_greylist(s, h, d, c);
	case FA_TARPIT:
		s->flags |= SF_TARPIT;
		s->drip_bytes = r->tarpit_bytes;
		s->drip_interval = r->tarpit_interval;
		break;
	default:
		break;
	}
	if (r->code == 0)
		return 0;
	if (r->code < 400) {
		/* success with the rule's words: the handler runs */
		s->ovr_code = r->code;
		s->ovr_ecode = r->ecode ? strdup(r->ecode) : NULL;
		s->ovr_text = strdup(text);
		if (s->ovr_text == NULL)
			s->ovr_code = 0;
		return 0;
	}
	sess_reply_text(s, r->code, r->ecode, text);
	if (h == FH_CONNECT && r->code >= 500)
		s->flags |= SF_NOSERVICE;
	else if (h == FH_CONNECT || h == FH_QUIT) {
		s->flags |= SF_QUIT;
		s->close_reason = "fault_reply";
	}
	return 1;
}

/*
 * The hook point: ask the engine, or take the decision held across a
 * delay.  line/len is the command to re-run when a delay ends.
 */
int
hook_run(struct session *s, enum fault_hook h, const char *a1,
    const char *line, size_t len)
{
	struct fault_decision d;
	struct fault_ctx c;
	int resumed = 0;

	hook_ctx(s, h, a1, &c);
	if (s->flags & SF_RESUME) {
		s->flags &= ~SF_RESUME;
		d = s->pending;
		d.delay = 0;
		resumed = 1;
	} else if (!fault_eval(CF->scn, &c, &d)) {
		return 0;
	}
	if (d.rule == NULL)
		return 0;
	s->pending_hook = h;
	if (d.delay > 0) {
		/* hold the reply back; nothing more is processed meanwhile */
		char text[1024] = "";

		s->pending = d;
		hook_hold(s, h, line, len);
		if (d.rule->code != 0)
			fault_reply_text(d.rule, &c, &d, text, sizeof(text));
		hook_event(s, &d, d.rule->code, text);
		s->flags |= SF_DELAYED;
		/*
		 * Count from now, not from the start of this loop pass, and
		 * wake DELAY_EARLY before the due time: epoll may oversleep
		 * a long timeout by 0.1%, a short last wait barely at all.
		 */
		ev_now_update(srv.loop);
		s->fdue = ev_now(srv.loop) + d.delay;
		ev_timer_set(&s->ftimer, d.delay > 2 * DELAY_EARLY ?
		    d.delay - DELAY_EARLY : d.delay, 0.);
		ev_timer_start(srv.loop, &s->ftimer);
		return 1;
	}
	return hook_apply(s, h, &d, &c, !resumed);
}

/* Banner, after the connect hook. */
void
hook_greet(struct session *s)
{
	if (hook_run(s, FH_CONNECT, NULL, NULL, 0)) {
		if (s->state == SS_GREETING && (s->flags & SF_NOSERVICE))
			sess_set_state(s, SS_INIT);
		return;
	}
	sess_reply(s, 220, NULL, "%s %s", CF->hostname, CF->banner);
	sess_set_state(s, SS_INIT);
}

void
hook_on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct session *s = container_of(w, struct session, ftimer);

	(void)loop;
	(void)revents;
	if (s->flags & SF_HANG) {
		sess_close(s, "hold_max");
		return;
	}
	if (s->flags & SF_TARPIT) {
		size_t n = iobuf_len(&s->out);
		ssize_t w2;

		if (n > (size_t)s->drip_bytes)
			n = (size_t)s->drip_bytes;
		w2 = n ? send(s->fd, iobuf_data(&s->out), n, MSG_NOSIGNAL) : 0;
		if (w2 < 0 && errno != EAGAIN && errno != EINTR) {
			sess_close(s, "write_error");
			return;
		}
		if (w2 > 0) {
			iobuf_consume(&s->out, (size_t)w2);
			s->tx += (uint64_t)w2;
			s->last_tx = ev_now(srv.loop);
		}
		if (iobuf_len(&s->out) > 0) {
			ev_timer_set(&s->ftimer, s->drip_interval, 0.);
			ev_timer_start(srv.loop, &s->ftimer);
			return;
		}
		s->flags &= ~SF_TARPIT;
		if (s->flags & SF_QUIT) {
			sess_close(s, s->close_reason ? s->close_reason :
			    "quit");
			return;
		}
		sess_process(s);
		return;
	}
	if (!(s->flags & SF_DELAYED))
		return;
	if (ev_time() < s->fdue) {
		/* the early wake-up: sleep the short rest precisely */
		ev_timer_set(&s->ftimer, s->fdue - ev_time(), 0.);
		ev_timer_start(srv.loop, &s->ftimer);
		return;
	}
	s->flags &= ~SF_DELAYED;
	s->flags |= SF_RESUME;
	switch (s->pending_hook) {
	case FH_CONNECT:
		hook_greet(s);
		break;
	case FH_DATA_END:
		smtp_msg_finish(s);
		break;
	default:
		if (s->pending_line != NULL)
			smtp_dispatch(s, s->pending_line, s->pending_len);
		break;
	}
	s->flags &= ~SF_RESUME;
	if (s->state == SS_CLOSING)
		return;
	if (!(s->flags & (SF_DELAYED | SF_HANG)))
		hook_release(s);
	sess_process(s);
}
