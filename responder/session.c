/*
 * session.c - per-connection SMTP state machine: life cycle and I/O
 *
 * DESCRIPTION  One struct session per accepted socket; drives reads,
 *              replies and message transfer (DATA and BDAT) through libev
 *              watchers embedded in the session.  Pipelined input is
 *              consumed strictly one command at a time and replies are
 *              queued in order, then flushed before waiting for input.
 *              Commands are in smtp.c, fault hooks in hook.c, TLS in
 *              starttls.c (sess_int.h joins them).
 * OWNERSHIP    The session owns its fd, watchers, iobufs, SSL object,
 *              transaction strings and capture transaction.  sess_close()
 *              is the only exit; memory is freed by the server's reaper.
 * LIMITS       cf->line_max, text_line_max, max_rcpts, max_msg_size,
 *              max_errors, idle/command/write timeouts, min_data_rate,
 *              out_max (input is not read while output is backed up).
 * ERRORS       Protocol errors -> SMTP reply.  I/O errors -> sess_close().
 *              Broken invariants -> PANIC().  Never exit() from here.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <openssl/err.h>

#include "conf.h"
#include "events.h"
#include "log.h"
#include "metrics.h"
#include "sess_int.h"
#include "tlsio.h"
#include "util.h"

#define IN_MIN		(64 * 1024)
#define READ_CHUNK	(64 * 1024)
#define DATA_CHECK	1.0	/* seconds between min_data_rate checks */

static int	sess_in_message(const struct session *s);
static ssize_t	sess_io_read(struct session *s, char *p, size_t n);
static ssize_t	sess_io_write(struct session *s, const char *p, size_t n);
static void	sess_on_write(struct ev_loop *loop, ev_io *w, int revents);
static void	sess_on_read(struct ev_loop *loop, ev_io *w, int revents);
static void	sess_timeout(struct session *s, const char *reason);
static void	sess_on_timer(struct ev_loop *loop, ev_timer *w, int revents);
static void	partial_line(struct session *s);
static int	data_bytes(struct session *s);

static const unsigned legal_next[SS__COUNT] = {
	[SS_GREETING] = SS_BIT(SS_INIT) | SS_BIT(SS_CLOSING),
	[SS_INIT] = SS_BIT(SS_READY) | SS_BIT(SS_INIT) | SS_BIT(SS_TLS) |
	    SS_BIT(SS_CLOSING),
	[SS_READY] = SS_BIT(SS_READY) | SS_BIT(SS_MAIL) | SS_BIT(SS_INIT) |
	    SS_BIT(SS_TLS) | SS_BIT(SS_CLOSING),
	[SS_MAIL] = SS_BIT(SS_READY) | SS_BIT(SS_RCPT) | SS_BIT(SS_INIT) |
	    SS_BIT(SS_CLOSING),
	[SS_RCPT] = SS_BIT(SS_READY) | SS_BIT(SS_RCPT) | SS_BIT(SS_DATA) |
	    SS_BIT(SS_BDAT) | SS_BIT(SS_INIT) | SS_BIT(SS_CLOSING),
	[SS_DATA] = SS_BIT(SS_READY) | SS_BIT(SS_CLOSING),
	[SS_BDAT] = SS_BIT(SS_BDAT) | SS_BIT(SS_READY) | SS_BIT(SS_INIT) |
	    SS_BIT(SS_CLOSING),
	[SS_TLS] = SS_BIT(SS_INIT) | SS_BIT(SS_CLOSING),
	[SS_CLOSING] = 0,
};

void
sess_client_text(struct session *s)
{
	if (s->sa.ss_family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&s->sa;

		if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr))
			inet_ntop(AF_INET, &a->sin6_addr.s6_addr[12], s->addr,
			    sizeof(s->addr));
		else
			inet_ntop(AF_INET6, &a->sin6_addr, s->addr,
			    sizeof(s->addr));
		s->port = ntohs(a->sin6_port);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&s->sa;

		inet_ntop(AF_INET, &a->sin_addr, s->addr, sizeof(s->addr));
		s->port = ntohs(a->sin_port);
	}
}

void
sess_event(struct session *s, const char *name)
{
	static const char hex[] = "0123456789abcdef";
	char id[9];
	int i;

	for (i = 0; i < 8; i++)
		id[i] = hex[(s->id >> (28 - 4 * i)) & 15];
	id[8] = '\0';
	evt_begin(name);
	evt_str("session", id);
	evt_str("client", s->addr);
}

struct session *
sess_new(struct listener *l, int fd, const struct sockaddr_storage *sa,
    socklen_t salen)
{
	struct session *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->fd = fd;
	s->lst = l;
	s->id = ++srv.next_id;
	memcpy(&s->sa, sa, salen < sizeof(s->sa) ? salen : sizeof(s->sa));
	sess_client_text(s);
	iobuf_init(&s->in, (size_t)CF->line_max * 2 > IN_MIN ?
	    (size_t)CF->line_max * 2 : IN_MIN);
	iobuf_init(&s->out, (size_t)CF->out_max + 65536);
	capture_tx_init(&s->cap);
	s->started = s->last_rx = s->last_tx = ev_now(srv.loop);
	ev_io_init(&s->rd, sess_on_read, fd, EV_READ);
	ev_io_init(&s->wr, sess_on_write, fd, EV_WRITE);
	ev_timer_init(&s->timer, sess_on_timer, CF->idle_timeout, 0.);
	ev_timer_start(srv.loop, &s->timer);
	ev_timer_init(&s->ftimer, hook_on_timer, 0., 0.);
	TAILQ_INSERT_TAIL(&srv.sessions, s, entry);
	srv.nsessions++;

	sess_event(s, "connect");
	evt_int("port", s->port);
	evt_str("listener", l->name);
	evt_end();

	s->state = SS_GREETING;
	if (l->tls) {
		/* implicit TLS: the banner goes out once TLS is up */
		s->tls_variant = TV_GOOD;
		starttls_begin(s);
		return s;
	}
	hook_greet(s);
	if (s->state != SS_CLOSING && sess_flush(s) == 0)
		sess_rearm(s);
	return s;
}

void
sess_close(struct session *s, const char *reason)
{
	if (s->state == SS_CLOSING)
		return;
	ev_io_stop(srv.loop, &s->rd);
	ev_io_stop(srv.loop, &s->wr);
	ev_timer_stop(srv.loop, &s->timer);
	ev_timer_stop(srv.loop, &s->ftimer);
	if (capture_active(&s->cap))
		capture_abort(&s->cap);
	sess_event(s, "close");
	evt_str("reason", reason);
	evt_uint("rx", s->rx);
	evt_uint("tx", s->tx);
	evt_num("duration", ev_now(srv.loop) - s->started);
	evt_int("messages", s->nmsgs);
	if (sess_in_message(s) && s->msgid[0] != '\0')
		evt_strn("message_id", s->msgid, strlen(s->msgid));
	evt_end();
	log_debug("%08x smtp close reason=%s", s->id, reason);
	s->state = SS_CLOSING;
	if (s->ssl != NULL) {
		/* one best-effort close_notify; never after a fatal error */
		if ((s->flags & SF_TLS) && !(s->flags & SF_TLS_FATAL)) {
			ERR_clear_error();
			SSL_shutdown(s->ssl);
		}
		ERR_clear_error();
		SSL_free(s->ssl);
		s->ssl = NULL;
	}
	if (s->fd != -1) {
		close(s->fd);
		s->fd = -1;
	}
	TAILQ_REMOVE(&srv.sessions, s, entry);
	TAILQ_INSERT_TAIL(&srv.reap, s, entry);
	server_session_gone(s);
}

void
sess_free(struct session *s)
{
	smtp_tx_reset(s);
	free(s->helo);
	free(s->pending_line);
	free(s->ovr_ecode);
	free(s->ovr_text);
	free(s->hits);
	free(s->cline);
	if (s->pcf != NULL)
		conf_free(s->pcf);
	iobuf_free(&s->in);
	iobuf_free(&s->out);
	free(s);
}

static int
sess_in_message(const struct session *s)
{
	return s->state == SS_DATA || s->state == SS_BDAT ||
	    s->bdat_left > 0;
}

void
sess_shutdown(struct session *s)
{
	if (s->state == SS_CLOSING || (s->flags & SF_QUIT))
		return;
	if (s->state == SS_TLS || s->state == SS_GREETING) {
		/* nothing can be said inside a handshake or before the
		 * banner: just go */
		sess_close(s, "shutdown");
		return;
	}
	if (sess_in_message(s)) {
		/* let the message finish; 421 follows its reply */
		s->flags |= SF_SHUTDOWN;
		return;
	}
	sess_reply(s, 421, "4.3.2", "%s Service shutting down, closing "
	    "transmission channel", CF->hostname);
	s->flags |= SF_QUIT;
	s->close_reason = "shutdown";
	if (sess_flush(s) == 0)
		sess_rearm(s);
}

void
sess_set_state(struct session *s, enum sess_state st)
{
	PANIC(!(legal_next[s->state] & SS_BIT(st)));
	if (log_verbose && s->state != st)
		log_debug("%08x smtp state=%s->%s", s->id,
		    cmd_state_name(s->state), cmd_state_name(st));
	s->state = st;
}

/* The only place that starts or stops the session's I/O watchers. */
void
sess_rearm(struct session *s)
{
	int want_rd, want_wr;

	if (s->state == SS_CLOSING)
		return;
	if (s->state == SS_TLS) {
		want_rd = s->hs_want == EV_READ;
		want_wr = s->hs_want == EV_WRITE;
	} else {
		want_wr = (iobuf_len(&s->out) > 0 && !(s->flags & SF_TARPIT)) ||
		    s->rd_wants_wr;
		want_rd = (!(s->flags & (SF_QUIT | SF_READ_EOF | SF_STARTTLS)) &&
		    iobuf_room(&s->in) > 0 &&
		    iobuf_len(&s->out) < CF->out_max / 2) || s->wr_wants_rd;
	}
	if (want_rd && !ev_is_active(&s->rd))
		ev_io_start(srv.loop, &s->rd);
	else if (!want_rd && ev_is_active(&s->rd))
		ev_io_stop(srv.loop, &s->rd);
	if (want_wr && !ev_is_active(&s->wr))
		ev_io_start(srv.loop, &s->wr);
	else if (!want_wr && ev_is_active(&s->wr))
		ev_io_stop(srv.loop, &s->wr);
	/* bytes OpenSSL already decrypted are invisible to epoll */
	if (want_rd && s->ssl != NULL && s->state != SS_TLS &&
	    SSL_has_pending(s->ssl))
		ev_feed_event(srv.loop, &s->rd, EV_READ);
}

/*
 * >0 bytes, 0 end of stream, -1 with errno: EAGAIN (wait; TLS may want
 * the other direction, see rd_wants_wr) or a real error.
 */
static ssize_t
sess_io_read(struct session *s, char *p, size_t n)
{
	int r;

	if (s->ssl == NULL)
		return recv(s->fd, p, n, 0);
	ERR_clear_error();
	if ((r = SSL_read(s->ssl, p, (int)(n > INT32_MAX ? INT32_MAX : n))) > 0)
		return r;
	switch (SSL_get_error(s->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_WANT_WRITE:
		s->rd_wants_wr = 1;
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		return 0;	/* close_notify, or EOF (IGNORE_UNEXPECTED_EOF) */
	default:
		starttls_failed(s, "read");
		errno = EPROTO;
		return -1;
	}
}

static ssize_t
sess_io_write(struct session *s, const char *p, size_t n)
{
	int r;

	if (s->ssl == NULL)
		return send(s->fd, p, n, MSG_NOSIGNAL);
	ERR_clear_error();
	if ((r = SSL_write(s->ssl, p, (int)(n > INT32_MAX ? INT32_MAX :
	    n))) > 0)
		return r;
	switch (SSL_get_error(s->ssl, r)) {
	case SSL_ERROR_WANT_WRITE:
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_WANT_READ:
		s->wr_wants_rd = 1;
		errno = EAGAIN;
		return -1;
	default:
		starttls_failed(s, "write");
		errno = EPROTO;
		return -1;
	}
}

/* Make the lazy timer fire no later than `at` (an ev_now() time). */
void
sess_deadline(struct session *s, double at)
{
	double now = ev_now(srv.loop), left;

	if (s->state == SS_CLOSING)
		return;
	left = ev_timer_remaining(srv.loop, &s->timer);
	if (ev_is_active(&s->timer) && now + left <= at)
		return;
	ev_timer_stop(srv.loop, &s->timer);
	ev_timer_set(&s->timer, at > now ? at - now : 0.001, 0.);
	ev_timer_start(srv.loop, &s->timer);
}

/* Write what we can; 0, or -1 when the session was closed. */
int
sess_flush(struct session *s)
{
	if ((s->flags & SF_TARPIT) && iobuf_len(&s->out) > 0) {
		/* the drip timer sends; nothing leaves faster */
		if (!ev_is_active(&s->ftimer)) {
			ev_timer_set(&s->ftimer, s->drip_interval, 0.);
			ev_timer_start(srv.loop, &s->ftimer);
		}
		return 0;
	}
	while (iobuf_len(&s->out) > 0) {
		ssize_t n = sess_io_write(s, iobuf_data(&s->out),
		    iobuf_len(&s->out));

		if (n > 0) {
			iobuf_consume(&s->out, (size_t)n);
			s->tx += (uint64_t)n;
			s->last_tx = ev_now(srv.loop);
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			sess_deadline(s, s->last_tx + CF->write_timeout);
			return 0;
		}
		sess_close(s, "write_error");
		return -1;
	}
	if (s->flags & SF_QUIT) {
		sess_close(s, s->close_reason ? s->close_reason : "quit");
		return -1;
	}
	if (s->flags & SF_STARTTLS) {
		/* the 220 is out in plaintext: now the handshake */
		s->flags &= ~SF_STARTTLS;
		starttls_begin(s);
		return s->state == SS_CLOSING ? -1 : 0;
	}
	return 0;
}

static void
sess_on_write(struct ev_loop *loop, ev_io *w, int revents)
{
	struct session *s = container_of(w, struct session, wr);

	(void)loop;
	(void)revents;
	if (s->state == SS_TLS) {
		starttls_step(s);
		return;
	}
	if (s->rd_wants_wr) {
		/* SSL_read could not go on without writing */
		s->rd_wants_wr = 0;
		ev_feed_event(srv.loop, &s->rd, EV_READ);
	}
	if (sess_flush(s) == -1)
		return;
	/* Output drained below the mark: read and run what was waiting. */
	sess_process(s);
}

static void
sess_on_read(struct ev_loop *loop, ev_io *w, int revents)
{
	struct session *s = container_of(w, struct session, rd);
	size_t avail;
	ssize_t n;
	char *p;

	(void)loop;
	(void)revents;
	if (s->state == SS_TLS) {
		starttls_step(s);
		return;
	}
	if (s->wr_wants_rd) {
		/* SSL_write could not go on without reading */
		s->wr_wants_rd = 0;
		if (sess_flush(s) == -1)
			return;
	}
	if ((p = iobuf_reserve(&s->in, READ_CHUNK, &avail)) == NULL) {
		sess_rearm(s);
		return;
	}
	n = sess_io_read(s, p, avail);
	if (n == -1) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
			if (iobuf_len(&s->in) == 0)
				iobuf_free(&s->in);
			sess_rearm(s);
			return;
		}
		sess_close(s, errno == ECONNRESET ? "reset" : errno == EPROTO ?
		    "tls_error" : "read_error");
		return;
	}
	if (n == 0) {
		if (s->flags & (SF_DELAYED | SF_HANG | SF_TARPIT)) {
			/* the client gave up while a fault held it */
			sess_close(s, "client_gone");
			return;
		}
		s->flags |= SF_READ_EOF;
		if (iobuf_len(&s->in) == 0)
			iobuf_free(&s->in);
	} else {
		iobuf_commit(&s->in, (size_t)n);
		s->rx += (uint64_t)n;
		s->last_rx = ev_now(srv.loop);
		if (sess_in_message(s))
			s->data_rx += (uint64_t)n;
	}
	sess_process(s);
}

static void
sess_timeout(struct session *s, const char *reason)
{
	iobuf_clear(&s->out);
	sess_reply(s, 421, "4.4.2", "%s Error: timeout exceeded",
	    CF->hostname);
	s->flags |= SF_QUIT;
	s->close_reason = reason;
	/* best effort: a client that stopped reading gets no more time */
	if (sess_flush(s) == 0)
		sess_close(s, reason);
}

/*
 * One lazily re-armed timer carries every deadline: idle, the command
 * deadline that trickled bytes cannot extend, the write deadline and the
 * minimum data rate.  Reads never touch the timer; they only stamp times.
 */
static void
sess_on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct session *s = container_of(w, struct session, timer);
	double now = ev_now(loop), next;

	(void)revents;
	if (s->state == SS_TLS && !(s->flags & SF_HANG) &&
	    now - s->hs_start >= CF->tls_handshake_timeout) {
		sess_close(s, "tls_timeout");
		return;
	}
	if (iobuf_len(&s->out) > 0 && now - s->last_tx >= CF->write_timeout) {
		sess_close(s, "write_timeout");
		return;
	}
	if (s->flags & (SF_DELAYED | SF_HANG | SF_TARPIT)) {
		/* a fault holds the session; its own timer ends it */
		s->last_rx = now;
	} else if (now - s->last_rx >= CF->idle_timeout &&
	    iobuf_len(&s->out) == 0) {
		sess_timeout(s, "timeout");
		return;
	}
	if (s->cmd_start > 0 && now - s->cmd_start >= CF->command_timeout) {
		sess_timeout(s, "command_timeout");
		return;
	}
	if (sess_in_message(s) && CF->min_data_rate > 0 &&
	    now - s->data_start >= CF->min_rate_grace &&
	    now - s->data_start > 0 &&
	    (double)s->data_rx / (now - s->data_start) <
	    (double)CF->min_data_rate) {
		sess_timeout(s, "slow_data");
		return;
	}
	next = s->last_rx + CF->idle_timeout;
	if (s->state == SS_TLS && s->hs_start + CF->tls_handshake_timeout <
	    next)
		next = s->hs_start + CF->tls_handshake_timeout;
	if (iobuf_len(&s->out) > 0 && s->last_tx + CF->write_timeout < next)
		next = s->last_tx + CF->write_timeout;
	if (s->cmd_start > 0 && s->cmd_start + CF->command_timeout < next)
		next = s->cmd_start + CF->command_timeout;
	if (sess_in_message(s) && CF->min_data_rate > 0 && now + DATA_CHECK < next)
		next = now + DATA_CHECK;
	next -= now;
	ev_timer_set(w, next > 0.001 ? next : 0.001, 0.);
	ev_timer_start(loop, w);
}

/* Queue one reply.  text may hold several lines separated by '\n'. */
void
sess_reply_text(struct session *s, int code, const char *ecode,
    const char *text)
{
	const char *p, *nl;
	int fail = 0;

	if (s->ovr_code != 0 && code / 100 == s->ovr_code / 100) {
		/* a 2xx/3xx rule reply: same outcome, the rule's words */
		code = s->ovr_code;
		ecode = s->ovr_ecode;
		text = s->ovr_text;
	}
	p = text;
	if (!CF->enhancedstatuscodes)
		ecode = NULL;
	if (code >= 0 && code < 600)
		metrics.replies[code]++;
	do {
		char head[4];
		size_t n;

		nl = strchr(p, '\n');
		n = nl ? (size_t)(nl - p) : strlen(p);
		head[0] = (char)('0' + code / 100 % 10);
		head[1] = (char)('0' + code / 10 % 10);
		head[2] = (char)('0' + code % 10);
		head[3] = nl ? '-' : ' ';
		fail |= iobuf_append(&s->out, head, 4);
		if (ecode != NULL) {
			fail |= iobuf_append(&s->out, ecode, strlen(ecode));
			fail |= iobuf_append(&s->out, " ", 1);
		}
		fail |= iobuf_append(&s->out, p, n);
		fail |= iobuf_append(&s->out, "\r\n", 2);
		p = nl ? nl + 1 : NULL;
	} while (p != NULL);
	if (fail) {
		/* out_max passed: the client is not reading its replies */
		s->flags |= SF_QUIT;
		s->close_reason = "output_overflow";
	}
	if (code == 421 && !(s->flags & SF_QUIT)) {
		/* RFC 5321 3.8: 421 closes the transmission channel */
		s->flags |= SF_QUIT;
		s->close_reason = "closing_reply";
	}
	if (evt_enabled()) {
		sess_event(s, "reply");
		evt_int("code", code);
		evt_str2("text", ecode, text);
		evt_end();
	}
	if (s->ovr_code != 0 && text == s->ovr_text)
		sess_ovr_clear(s);
}

/* A rule's 2xx words apply to one reply of one command, no more. */
void
sess_ovr_clear(struct session *s)
{
	if (s->ovr_code == 0)
		return;
	s->ovr_code = 0;
	free(s->ovr_ecode);
	free(s->ovr_text);
	s->ovr_ecode = s->ovr_text = NULL;
}

void
sess_reply(struct session *s, int code, const char *ecode, const char *fmt,
    ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	sess_reply_text(s, code, ecode, buf);
}

/* A protocol error: reply, count, and end the session past max_errors. */
void
sess_error(struct session *s, int code, const char *ecode, const char *text)
{
	sess_reply_text(s, code, ecode, text);
	if (++s->nerrors >= CF->max_errors) {
		sess_reply(s, 421, "4.7.0", "%s Error: too many errors",
		    CF->hostname);
		s->flags |= SF_QUIT;
		s->close_reason = "errors";
	}
}

/* Close with a TCP reset instead of a FIN. */
void
sess_reset(struct session *s, const char *reason)
{
	struct linger lg = { 1, 0 };

	setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	sess_close(s, reason);
}

/* Command mode: no complete line is buffered. */
static void
partial_line(struct session *s)
{
	size_t len = iobuf_len(&s->in);
	char *d = iobuf_data(&s->in);

	if (len == 0)
		return;
	if (s->flags & SF_DISCARD_LINE) {
		/* keep a trailing CR: its LF may be in the next read */
		int keep = d[len - 1] == '\r';

		iobuf_consume(&s->in, len - (size_t)keep);
		return;
	}
	if (s->cmd_start == 0) {
		s->cmd_start = ev_now(srv.loop);
		sess_deadline(s, s->cmd_start + CF->command_timeout);
	}
	if (len >= (size_t)CF->line_max) {
		/* Refuse before the newline arrives, and skip the rest of
		 * the line so its tail is never run as a command. */
		int keep = d[len - 1] == '\r';

		iobuf_consume(&s->in, len - (size_t)keep);
		s->flags |= SF_DISCARD_LINE;
		s->cmd_start = 0;
		sess_error(s, 500, "5.5.6", "Line too long");
	}
}

/* BDAT chunk bytes: stored, or drained after a refusal. */
int
sess_bdat_bytes(struct session *s)
{
	size_t n = iobuf_len(&s->in);

	if ((uint64_t)n > s->bdat_left)
		n = (size_t)s->bdat_left;
	if (n > 0) {
		if (!(s->flags & SF_DRAIN))
			smtp_msg_data(s, iobuf_data(&s->in), n);
		iobuf_consume(&s->in, n);
		s->bdat_left -= n;
	}
	if (s->bdat_left > 0)
		return 0;
	if (s->flags & SF_DRAIN) {
		s->flags &= ~SF_DRAIN;
		sess_error(s, s->bad_code, s->bad_ecode, s->bad_text);
	} else if (s->bdat_last) {
		smtp_msg_finish(s);
	} else if (s->flags & SF_MSG_BAD) {
		/* refuse at the chunk that broke the limit; the rest of
		 * the transaction's chunks get 503 */
		smtp_msg_refuse(s, s->bad_code, s->bad_ecode, s->bad_text,
		    s->bad_reason);
	} else {
		sess_reply(s, 250, "2.0.0", "%llu octets received",
		    (unsigned long long)s->bdat_chunk);
	}
	return 1;
}

/* DATA body bytes through the scanner. */
static int
data_bytes(struct session *s)
{
	char buf[8192];
	size_t used = 0, len = iobuf_len(&s->in);
	const char *d = iobuf_data(&s->in);

	if ((s->flags & SF_CUT) && (uint64_t)len >= s->cut_after - s->cut_rx) {
		/* the connection dies N bytes into the message */
		sess_close(s, "fault_disconnect_after_bytes");
		return 0;
	}
	if (s->flags & SF_CUT)
		s->cut_rx += len;

	while (used < len && !s->ds.done) {
		size_t n = len - used, outn;

		if (n > sizeof(buf) - 1)
			n = sizeof(buf) - 1;	/* dscan may emit n + 1 */
		used += dscan_feed(&s->ds, d + used, n, buf, &outn);
		smtp_msg_data(s, buf, outn);
	}
	iobuf_consume(&s->in, used);
	if (!s->ds.done)
		return 0;
	smtp_msg_finish(s);
	return 1;
}

/*
 * Run buffered input one command at a time while no reply is held back
 * and output is not backed up, then flush and re-arm.
 */
void
sess_process(struct session *s)
{
	while (s->state != SS_CLOSING && s->state != SS_TLS &&
	    !(s->flags & (SF_QUIT | SF_DELAYED | SF_HANG | SF_STARTTLS)) &&
	    !((s->flags & SF_TARPIT) && iobuf_len(&s->out) > 0) &&
	    iobuf_len(&s->out) < CF->out_max / 2) {
		char *line;
		size_t len;

		if (s->bdat_left > 0) {
			if (!sess_bdat_bytes(s))
				break;
			continue;
		}
		if (s->state == SS_DATA) {
			if (!data_bytes(s))
				break;
			continue;
		}
		if ((line = iobuf_getline(&s->in, &len)) == NULL) {
			partial_line(s);
			break;
		}
		s->cmd_start = 0;
		if (s->flags & SF_DISCARD_LINE) {
			s->flags &= ~SF_DISCARD_LINE;
			continue;
		}
		if (len + 2 > (size_t)CF->line_max) {
			sess_error(s, 500, "5.5.6", "Line too long");
			continue;
		}
		smtp_dispatch(s, line, len);
	}
	if (s->state == SS_CLOSING)
		return;
	if (iobuf_len(&s->in) == 0)
		iobuf_free(&s->in);
	if ((s->flags & SF_READ_EOF) && !(s->flags & (SF_QUIT | SF_DELAYED |
	    SF_HANG))) {
		/* everything the client sent before its FIN is answered */
		s->flags |= SF_QUIT;
		s->close_reason = sess_in_message(s) ? "eof_in_data" : "eof";
	}
	if (sess_flush(s) == 0)
		sess_rearm(s);
}
