/*
 * session.c - per-connection SMTP state machine
 *
 * DESCRIPTION  One struct session per accepted socket; drives reads,
 *              replies and message transfer (DATA and BDAT) through libev
 *              watchers embedded in the session.  Pipelined input is
 *              consumed strictly one command at a time and replies are
 *              queued in order, then flushed before waiting for input.
 * OWNERSHIP    The session owns its fd, watchers, iobufs, transaction
 *              strings and capture transaction.  sess_close() is the only
 *              exit; memory is freed by the server's reaper.
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
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <openssl/err.h>

#include "conf.h"
#include "events.h"
#include "log.h"
#include "server.h"
#include "session.h"
#include "tlsio.h"
#include "util.h"

#define IN_MIN		(64 * 1024)
#define READ_CHUNK	(64 * 1024)
#define DATA_CHECK	1.0	/* seconds between min_data_rate checks */
#define CLINE_MAX	2048	/* content rules see this much of a line */

#define CF (srv.cf)

/* The command as received, for a fault delay to re-run it later. */
static char	dline[65536 + 4];
static size_t	dlen;

static void	sess_on_read(struct ev_loop *, ev_io *, int);
static void	sess_on_write(struct ev_loop *, ev_io *, int);
static void	sess_on_timer(struct ev_loop *, ev_timer *, int);
static void	sess_on_ftimer(struct ev_loop *, ev_timer *, int);
static int	sess_fault(struct session *, enum fault_hook, const char *,
    const char *, size_t);
static void	sess_greet(struct session *);
static void	ovr_clear(struct session *);
static void	sess_tls_begin(struct session *);
static void	sess_tls_step(struct session *);
static int	tls_accept_any(int, X509_STORE_CTX *);
static void	sess_process(struct session *);
static void	sess_rearm(struct session *);
static int	sess_flush(struct session *);
static void	sess_reply(struct session *, int, const char *, const char *,
    ...) __attribute__((format(printf, 4, 5)));
static void	sess_reply_text(struct session *, int, const char *,
    const char *);
static void	sess_set_state(struct session *, enum sess_state);
static void	sess_dispatch(struct session *, char *, size_t);
static void	sess_error(struct session *, int, const char *, const char *);
static void	tx_reset(struct session *);
static void	msg_begin(struct session *);
static void	msg_data(struct session *, const char *, size_t);
static void	msg_finish(struct session *);
static void	msg_refuse(struct session *, int, const char *, const char *,
    const char *);

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

/* ---- life cycle ---- */

static void
client_text(struct session *s)
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

static void
evt_sess(struct session *s, const char *name)
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
	client_text(s);
	iobuf_init(&s->in, (size_t)CF->line_max * 2 > IN_MIN ?
	    (size_t)CF->line_max * 2 : IN_MIN);
	iobuf_init(&s->out, (size_t)CF->out_max + 65536);
	capture_tx_init(&s->cap);
	s->started = s->last_rx = s->last_tx = ev_now(srv.loop);
	ev_io_init(&s->rd, sess_on_read, fd, EV_READ);
	ev_io_init(&s->wr, sess_on_write, fd, EV_WRITE);
	ev_timer_init(&s->timer, sess_on_timer, CF->idle_timeout, 0.);
	ev_timer_start(srv.loop, &s->timer);
	ev_timer_init(&s->ftimer, sess_on_ftimer, 0., 0.);
	TAILQ_INSERT_TAIL(&srv.sessions, s, entry);
	srv.nsessions++;

	evt_sess(s, "connect");
	evt_int("port", s->port);
	evt_str("listener", l->name);
	evt_end();

	s->state = SS_GREETING;
	if (l->tls) {
		/* implicit TLS: the banner goes out once TLS is up */
		s->tls_variant = TV_GOOD;
		sess_tls_begin(s);
		return s;
	}
	sess_greet(s);
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
	evt_sess(s, "close");
	evt_str("reason", reason);
	evt_uint("rx", s->rx);
	evt_uint("tx", s->tx);
	evt_num("duration", ev_now(srv.loop) - s->started);
	evt_int("messages", s->nmsgs);
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
	tx_reset(s);
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
in_message(const struct session *s)
{
	return s->state == SS_DATA || s->state == SS_BDAT ||
	    s->bdat_left > 0;
}

void
sess_shutdown(struct session *s)
{
	if (s->state == SS_CLOSING || (s->flags & SF_QUIT))
		return;
	if (in_message(s)) {
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

static void
sess_set_state(struct session *s, enum sess_state st)
{
	PANIC(!(legal_next[s->state] & SS_BIT(st)));
	if (log_verbose && s->state != st)
		log_debug("%08x smtp state=%s->%s", s->id,
		    cmd_state_name(s->state), cmd_state_name(st));
	s->state = st;
}

/* ---- watchers ---- */

/* The only place that starts or stops the session's I/O watchers. */
static void
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

/* ---- raw I/O: the socket, or TLS over it ---- */

static void
tls_failed(struct session *s, const char *where)
{
	char why[256];

	s->flags |= SF_TLS_FATAL;
	tlsio_error(why, sizeof(why));
	evt_sess(s, "tls_error");
	evt_str("stage", where);
	evt_str("reason", why);
	evt_end();
	log_debug("%08x tls %s failed: %s", s->id, where, why);
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
		tls_failed(s, "read");
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
		tls_failed(s, "write");
		errno = EPROTO;
		return -1;
	}
}

/* Make the lazy timer fire no later than `at` (an ev_now() time). */
static void
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
static int
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
		sess_tls_begin(s);
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
		sess_tls_step(s);
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
		sess_tls_step(s);
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
		if (in_message(s))
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
	if (in_message(s) && CF->min_data_rate > 0 &&
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
	if (in_message(s) && CF->min_data_rate > 0 && now + DATA_CHECK < next)
		next = now + DATA_CHECK;
	next -= now;
	ev_timer_set(w, next > 0.001 ? next : 0.001, 0.);
	ev_timer_start(loop, w);
}

/* ---- replies ---- */

/* Queue one reply.  text may hold several lines separated by '\n'. */
static void
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
		evt_sess(s, "reply");
		evt_int("code", code);
		evt_str2("text", ecode, text);
		evt_end();
	}
	if (s->ovr_code != 0 && text == s->ovr_text)
		ovr_clear(s);
}

/* A rule's 2xx words apply to one reply of one command, no more. */
static void
ovr_clear(struct session *s)
{
	if (s->ovr_code == 0)
		return;
	s->ovr_code = 0;
	free(s->ovr_ecode);
	free(s->ovr_text);
	s->ovr_ecode = s->ovr_text = NULL;
}

static void
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
static void
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

/* ---- faults ---- */

static void
fault_ctx_fill(struct session *s, enum fault_hook h, const char *a1,
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
evt_fault(struct session *s, const struct fault_decision *d, int code,
    const char *text)
{
	if (!evt_enabled())
		return;
	evt_sess(s, "fault");
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

/* Close with a TCP reset instead of a FIN. */
static void
sess_reset(struct session *s, const char *reason)
{
	struct linger lg = { 1, 0 };

	setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	sess_close(s, reason);
}

static void
hold_pending(struct session *s, enum fault_hook h, const char *line,
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
release_pending(struct session *s)
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
static int
fault_apply(struct session *s, enum fault_hook h, struct fault_decision *d,
    const struct fault_ctx *c, int emit)
{
	struct fault_rule *r = d->rule;
	char text[1024] = "";

	if (r->code != 0)
		fault_reply_text(r, c, d, text, sizeof(text));
	if (emit)
		evt_fault(s, d, r->code, text);
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
static int
sess_fault(struct session *s, enum fault_hook h, const char *a1,
    const char *line, size_t len)
{
	struct fault_decision d;
	struct fault_ctx c;
	int resumed = 0;

	fault_ctx_fill(s, h, a1, &c);
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
		hold_pending(s, h, line, len);
		if (d.rule->code != 0)
			fault_reply_text(d.rule, &c, &d, text, sizeof(text));
		evt_fault(s, &d, d.rule->code, text);
		s->flags |= SF_DELAYED;
		ev_timer_set(&s->ftimer, d.delay, 0.);
		ev_timer_start(srv.loop, &s->ftimer);
		return 1;
	}
	return fault_apply(s, h, &d, &c, !resumed);
}

/* Banner, after the connect hook. */
static void
sess_greet(struct session *s)
{
	if (sess_fault(s, FH_CONNECT, NULL, NULL, 0)) {
		if (s->state == SS_GREETING && (s->flags & SF_NOSERVICE))
			sess_set_state(s, SS_INIT);
		return;
	}
	sess_reply(s, 220, NULL, "%s %s", CF->hostname, CF->banner);
	sess_set_state(s, SS_INIT);
}

static void
sess_on_ftimer(struct ev_loop *loop, ev_timer *w, int revents)
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
	s->flags &= ~SF_DELAYED;
	s->flags |= SF_RESUME;
	switch (s->pending_hook) {
	case FH_CONNECT:
		sess_greet(s);
		break;
	case FH_DATA_END:
		msg_finish(s);
		break;
	default:
		if (s->pending_line != NULL)
			sess_dispatch(s, s->pending_line, s->pending_len);
		break;
	}
	s->flags &= ~SF_RESUME;
	if (s->state == SS_CLOSING)
		return;
	if (!(s->flags & (SF_DELAYED | SF_HANG)))
		release_pending(s);
	sess_process(s);
}

/* ---- TLS ---- */

/* A requested client certificate is recorded, never judged. */
static int
tls_accept_any(int ok, X509_STORE_CTX *x)
{
	(void)ok;
	(void)x;
	return 1;
}

static void
evt_tls(struct session *s)
{
	const char *sni = SSL_get_servername(s->ssl, TLSEXT_NAMETYPE_host_name);
	X509 *peer = SSL_get1_peer_certificate(s->ssl);
	char subj[256] = "";
	int bits = 0;

	if (peer != NULL) {
		X509_NAME_oneline(X509_get_subject_name(peer), subj,
		    sizeof(subj));
		X509_free(peer);
	}
	SSL_get_cipher_bits(s->ssl, &bits);
	evt_sess(s, "tls");
	evt_str("protocol", SSL_get_version(s->ssl));
	evt_str("cipher", SSL_get_cipher_name(s->ssl));
	evt_int("bits", bits);
	if (sni != NULL)
		evt_strn("sni", sni, strlen(sni));
	else
		evt_raw("sni", "null");
	if (subj[0] != '\0')
		evt_strn("client_cert", subj, strlen(subj));
	evt_str("certificate", tlsio_variant_name(
	    (enum tls_variant)s->tls_variant));
	evt_end();
}

/* The handshake finished: RFC 3207 4.2, forget everything said before. */
static void
tls_done(struct session *s)
{
	int implicit = s->lst != NULL && s->lst->tls;

	s->flags |= SF_TLS;
	s->hs_want = 0;
	snprintf(s->tls_info, sizeof(s->tls_info), "%s:%s",
	    SSL_get_version(s->ssl), SSL_get_cipher_name(s->ssl));
	evt_tls(s);
	tx_reset(s);
	free(s->helo);
	s->helo = NULL;
	s->flags &= ~SF_EHLO;
	s->last_rx = ev_now(srv.loop);
	if (implicit) {
		s->state = SS_GREETING;
		sess_greet(s);
	} else {
		sess_set_state(s, SS_INIT);
	}
	if (s->state == SS_CLOSING)
		return;
	sess_process(s);
}

/* Drive the handshake one step; the fault modes never create TLS. */
static void
sess_tls_step(struct session *s)
{
	char junk[4096];
	ssize_t n;
	int r;

	if (s->ssl == NULL) {
		/* tls_reset / tls_stall: the ClientHello is here */
		n = recv(s->fd, junk, sizeof(junk), 0);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			sess_close(s, "client_gone");
			return;
		}
		if (n > 0 && s->tls_mode == FA_TLS_RESET)
			sess_reset(s, "fault_tls_reset");
		return;
	}
	ERR_clear_error();
	if ((r = SSL_do_handshake(s->ssl)) == 1) {
		tls_done(s);
		return;
	}
	switch (SSL_get_error(s->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		s->hs_want = EV_READ;
		break;
	case SSL_ERROR_WANT_WRITE:
		s->hs_want = EV_WRITE;
		break;
	default:
		/* never fall back to plaintext: the session ends here */
		tls_failed(s, "handshake");
		sess_close(s, "tls_failed");
		return;
	}
	sess_rearm(s);
}

static void
sess_tls_begin(struct session *s)
{
	SSL_CTX *ctx = tlsio_ctx((enum tls_variant)s->tls_variant);

	s->hs_start = ev_now(srv.loop);
	s->state = SS_TLS;
	sess_deadline(s, s->hs_start + CF->tls_handshake_timeout);
	if (s->tls_mode == FA_TLS_ABORT) {
		sess_close(s, "fault_tls_abort");
		return;
	}
	if (s->tls_mode == FA_TLS_RESET || s->tls_mode == FA_TLS_STALL) {
		if (s->tls_mode == FA_TLS_STALL) {
			s->flags |= SF_HANG;
			ev_timer_set(&s->ftimer, CF->hold_max, 0.);
			ev_timer_start(srv.loop, &s->ftimer);
		}
		s->hs_want = EV_READ;
		sess_rearm(s);
		return;
	}
	if (ctx == NULL || (s->ssl = SSL_new(ctx)) == NULL ||
	    !SSL_set_fd(s->ssl, s->fd)) {
		tls_failed(s, "setup");
		sess_close(s, "tls_failed");
		return;
	}
	if (CF->tls_ask_cert)
		SSL_set_verify(s->ssl, SSL_VERIFY_PEER, tls_accept_any);
	SSL_set_accept_state(s->ssl);
	/* the ClientHello may already be waiting */
	sess_tls_step(s);
}

static void
cmd_starttls(struct session *s, char *arg)
{
	size_t dropped;

	if (!CF->starttls || (s->lst != NULL && s->lst->tls) ||
	    tlsio_ctx(TV_GOOD) == NULL) {
		sess_error(s, 502, "5.5.1", "Error: command not implemented");
		return;
	}
	if (s->flags & SF_TLS) {
		sess_error(s, 503, "5.5.1", "Error: TLS already active");
		return;
	}
	if (*arg != '\0') {
		sess_error(s, 501, "5.5.4", "Syntax: STARTTLS");
		return;
	}
	s->tls_mode = 0;
	s->tls_variant = TV_GOOD;
	if (sess_fault(s, FH_STARTTLS, NULL, dline, dlen))
		return;
	sess_reply(s, 220, "2.0.0", "Ready to start TLS");
	/* CVE-2011-0411: what came after STARTTLS in plaintext is dropped */
	if ((dropped = iobuf_len(&s->in)) > 0) {
		iobuf_clear(&s->in);
		evt_sess(s, "tls_injection");
		evt_uint("discarded", dropped);
		evt_end();
	}
	s->flags |= SF_STARTTLS;
}

/* ---- input processing ---- */

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
static int
bdat_bytes(struct session *s)
{
	size_t n = iobuf_len(&s->in);

	if ((uint64_t)n > s->bdat_left)
		n = (size_t)s->bdat_left;
	if (n > 0) {
		if (!(s->flags & SF_DRAIN))
			msg_data(s, iobuf_data(&s->in), n);
		iobuf_consume(&s->in, n);
		s->bdat_left -= n;
	}
	if (s->bdat_left > 0)
		return 0;
	if (s->flags & SF_DRAIN) {
		s->flags &= ~SF_DRAIN;
		sess_error(s, s->bad_code, s->bad_ecode, s->bad_text);
	} else if (s->bdat_last) {
		msg_finish(s);
	} else if (s->flags & SF_MSG_BAD) {
		/* refuse at the chunk that broke the limit; the rest of
		 * the transaction's chunks get 503 */
		msg_refuse(s, s->bad_code, s->bad_ecode, s->bad_text,
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
		msg_data(s, buf, outn);
	}
	iobuf_consume(&s->in, used);
	if (!s->ds.done)
		return 0;
	msg_finish(s);
	return 1;
}

/*
 * Run buffered input one command at a time while no reply is held back
 * and output is not backed up, then flush and re-arm.
 */
static void
sess_process(struct session *s)
{
	while (s->state != SS_CLOSING && s->state != SS_TLS &&
	    !(s->flags & (SF_QUIT | SF_DELAYED | SF_HANG | SF_STARTTLS)) &&
	    !((s->flags & SF_TARPIT) && iobuf_len(&s->out) > 0) &&
	    iobuf_len(&s->out) < CF->out_max / 2) {
		char *line;
		size_t len;

		if (s->bdat_left > 0) {
			if (!bdat_bytes(s))
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
		sess_dispatch(s, line, len);
	}
	if (s->state == SS_CLOSING)
		return;
	if (iobuf_len(&s->in) == 0)
		iobuf_free(&s->in);
	if ((s->flags & SF_READ_EOF) && !(s->flags & (SF_QUIT | SF_DELAYED |
	    SF_HANG))) {
		/* everything the client sent before its FIN is answered */
		s->flags |= SF_QUIT;
		s->close_reason = in_message(s) ? "eof_in_data" : "eof";
	}
	if (sess_flush(s) == 0)
		sess_rearm(s);
}

/* ---- transaction ---- */

static void
tx_reset(struct session *s)
{
	int i;

	free(s->from);
	s->from = NULL;
	for (i = 0; i < s->nrcpt; i++)
		free(s->rcpt[i]);
	free(s->rcpt);
	s->rcpt = NULL;
	s->nrcpt = 0;
	free(s->envid);
	s->envid = NULL;
	s->decl_size = 0;
	s->body8 = s->utf8 = 0;
	s->bdat_left = 0;
	s->bdat_last = 0;
	s->msg_octets = 0;
	s->msgid[0] = '\0';
	s->flags &= ~(SF_MSG_BAD | SF_DRAIN | SF_DISCARD | SF_DROP | SF_CUT);
	if (capture_active(&s->cap))
		capture_abort(&s->cap);
}

static unsigned
sess_exts(void)
{
	unsigned e = CMD_EXT_SIZE;

	if (CF->eightbitmime)
		e |= CMD_EXT_8BITMIME;
	if (CF->smtputf8)
		e |= CMD_EXT_SMTPUTF8;
	if (CF->dsn)
		e |= CMD_EXT_DSN;
	if (CF->chunking)
		e |= CMD_EXT_CHUNKING;
	return e;
}

/* Write the envelope headers, then the message follows as received. */
static void
capture_headers(struct session *s)
{
	char date[64], buf[1024];
	time_t now = time(NULL);
	struct tm tm;
	int i, n;

	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	n = snprintf(buf, sizeof(buf),
	    "Return-Path: <%s>\r\n"
	    "X-Smtpfault-Session: %08x\r\n"
	    "X-Smtpfault-Client: %s\r\n"
	    "X-Smtpfault-Helo: %s\r\n"
	    "X-Smtpfault-Mail-From: <%s>\r\n",
	    s->from, s->id, s->addr, s->helo ? s->helo : "", s->from);
	capture_write(&s->cap, buf, (size_t)n < sizeof(buf) ? (size_t)n :
	    sizeof(buf) - 1);
	for (i = 0; i < s->nrcpt; i++) {
		n = snprintf(buf, sizeof(buf), "X-Smtpfault-Rcpt-To: <%s>\r\n",
		    s->rcpt[i]);
		capture_write(&s->cap, buf, (size_t)n < sizeof(buf) ?
		    (size_t)n : sizeof(buf) - 1);
	}
	n = snprintf(buf, sizeof(buf),
	    "Received: from %s (%s [%s])\r\n\tby %s (smtpfault) with %s%s%s%s%s "
	    "id %08X%04X;\r\n\t%s\r\n",
	    s->helo ? s->helo : "unknown", s->addr, s->addr, CF->hostname,
	    (s->flags & SF_EHLO) ? (s->utf8 ? "UTF8SMTP" : "ESMTP") : "SMTP",
	    (s->flags & SF_TLS) ? "S" : "",
	    (s->flags & SF_TLS) ? " (" : "", (s->flags & SF_TLS) ?
	    s->tls_info : "", (s->flags & SF_TLS) ? ")" : "",
	    s->id, (unsigned)s->nmsgs + 1, date);
	capture_write(&s->cap, buf, (size_t)n < sizeof(buf) ? (size_t)n :
	    sizeof(buf) - 1);
}

static void
msg_begin(struct session *s)
{
	s->msg_octets = 0;
	s->msgid[0] = '\0';
	s->in_headers = 1;
	s->msgid_next = 0;
	s->hdrlen = 0;
	s->data_start = ev_now(srv.loop);
	s->data_rx = 0;
	if (CF->min_data_rate > 0)
		sess_deadline(s, s->data_start + CF->min_rate_grace);
	s->cap_err = 0;
	s->flags &= ~(SF_MSG_BAD | SF_DISCARD | SF_DROP);
	free(s->hits);
	s->hits = NULL;
	s->nhits = 0;
	if (CF->scn->uses_content) {
		s->hits = calloc(CF->scn->n, 1);
		s->nhits = s->hits ? CF->scn->n : 0;
		if (s->cline == NULL)
			s->cline = malloc(CLINE_MAX + 1);
		s->clen = 0;
		s->c_in_headers = 1;
	}
	if (CF->capture_dir != NULL && CF->capture_dir[0] != '\0') {
		if (capture_begin(&s->cap, CF->capture_dir, CF->hostname) ==
		    -1) {
			s->cap_err = errno;
			log_warn("%08x capture: cannot create message in %s",
			    s->id, CF->capture_dir);
		} else {
			capture_headers(s);
		}
	}
}

static void
msgid_take(struct session *s, const char *v)
{
	size_t n;

	while (*v == ' ' || *v == '\t')
		v++;
	n = strlen(v);
	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	if (n == 0) {
		s->msgid_next = 1;	/* value folded onto the next line */
		return;
	}
	if (n >= sizeof(s->msgid))
		n = sizeof(s->msgid) - 1;
	memcpy(s->msgid, v, n);
	s->msgid[n] = '\0';
}

/* One complete header line (without CRLF, maybe cut) of the message. */
static void
header_line(struct session *s)
{
	s->hdrline[s->hdrlen] = '\0';
	if (s->hdrlen == 0) {
		s->in_headers = 0;
		return;
	}
	if (s->msgid_next) {
		s->msgid_next = 0;
		if (s->hdrline[0] == ' ' || s->hdrline[0] == '\t')
			msgid_take(s, s->hdrline);
	}
	if (s->msgid[0] == '\0' && strncasecmp(s->hdrline, "Message-ID:",
	    11) == 0)
		msgid_take(s, s->hdrline + 11);
}

/* Watch the header block go by for the Message-ID. */
static void
header_scan(struct session *s, const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n && s->in_headers; i++) {
		if (p[i] == '\n') {
			if (s->hdrlen > 0 && s->hdrline[s->hdrlen - 1] == '\r')
				s->hdrlen--;
			header_line(s);
			s->hdrlen = 0;
		} else if (s->hdrlen < sizeof(s->hdrline) - 1) {
			s->hdrline[s->hdrlen++] = p[i];
		}
	}
}

/* Feed header and body lines to the scenario's pattern rules. */
static void
content_scan(struct session *s, const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (p[i] != '\n') {
			if (s->clen < CLINE_MAX)
				s->cline[s->clen++] = p[i];
			continue;
		}
		if (s->clen > 0 && s->cline[s->clen - 1] == '\r')
			s->clen--;
		s->cline[s->clen] = '\0';
		if (s->c_in_headers && s->clen == 0)
			s->c_in_headers = 0;
		else if (CF->scn->n >= s->nhits)
			fault_scan_line(CF->scn, s->hits, s->cline,
			    s->c_in_headers);
		s->clen = 0;
	}
}

static void
msg_data(struct session *s, const char *p, size_t n)
{
	if (n == 0)
		return;
	s->msg_octets += n;
	if (s->flags & SF_MSG_BAD)
		return;
	if (s->msg_octets > CF->max_msg_size) {
		s->flags |= SF_MSG_BAD;
		s->bad_code = 552;
		s->bad_ecode = "5.3.4";
		s->bad_text = "Message size exceeds fixed maximum message size";
		s->bad_reason = "size";
		if (capture_active(&s->cap))
			capture_abort(&s->cap);
		return;
	}
	if (s->in_headers)
		header_scan(s, p, n);
	if (s->hits != NULL && s->cline != NULL)
		content_scan(s, p, n);
	if (capture_active(&s->cap))
		capture_write(&s->cap, p, n);
}

/* End the transaction after a refused message (size, lines, storage). */
static void
msg_refuse(struct session *s, int code, const char *ecode, const char *text,
    const char *reason)
{
	evt_sess(s, "message_refused");
	evt_str("reason", reason);
	evt_int("code", code);
	evt_uint("size", s->msg_octets);
	evt_end();
	tx_reset(s);
	sess_set_state(s, SS_READY);
	sess_reply_text(s, code, ecode, text);
}

static void
evt_message(struct session *s, const char *qid, const char *path)
{
	char *arr, *p;
	size_t cap = 3, i;

	evt_sess(s, "message");
	evt_strn("from", s->from, strlen(s->from));
	for (i = 0; i < (size_t)s->nrcpt; i++)
		cap += strlen(s->rcpt[i]) * 6 + 3;
	if ((arr = malloc(cap)) != NULL) {
		p = arr;
		*p++ = '[';
		for (i = 0; i < (size_t)s->nrcpt; i++) {
			if (i > 0)
				*p++ = ',';
			p += evt_json_quote(p, cap - (size_t)(p - arr),
			    s->rcpt[i], strlen(s->rcpt[i]));
		}
		*p++ = ']';
		*p = '\0';
		evt_raw("rcpt", arr);
		free(arr);
	}
	evt_uint("size", s->msg_octets);
	if (s->msgid[0] != '\0')
		evt_strn("message_id", s->msgid, strlen(s->msgid));
	else
		evt_raw("message_id", "null");
	evt_str("file", path);
	evt_str("id", qid);
	evt_str("body", s->state == SS_BDAT ? "BDAT" : "DATA");
	if (s->flags & SF_DISCARD)
		evt_bool("discarded", 1);
	if (s->flags & SF_DROP)
		evt_bool("unanswered", 1);
	evt_end();
}

/* The final dot or BDAT LAST: store, then answer. */
static void
msg_finish(struct session *s)
{
	char qid[32], *path = NULL;
	int fired;

	if (s->flags & SF_MSG_BAD) {
		msg_refuse(s, s->bad_code, s->bad_ecode, s->bad_text,
		    s->bad_reason);
		goto done;
	}
	if (s->state == SS_DATA && s->ds.long_line) {
		char t[96];

		snprintf(t, sizeof(t), "Message has lines longer than %ld "
		    "octets", CF->text_line_max);
		msg_refuse(s, 550, "5.6.0", t, "line_length");
		goto done;
	}
	if (s->hits != NULL && s->clen > 0 && CF->scn->n >= s->nhits) {
		/* a last line without CRLF (BDAT) is still a line */
		s->cline[s->clen] = '\0';
		fault_scan_line(CF->scn, s->hits, s->cline, s->c_in_headers);
		s->clen = 0;
	}
	fired = sess_fault(s, FH_DATA_END, NULL, NULL, 0);
	if (s->state == SS_CLOSING || (s->flags & (SF_DELAYED | SF_HANG)))
		return;		/* closed, or held: nothing is answered */
	if (fired) {
		/* the rule's reply refused the message */
		evt_sess(s, "message_refused");
		evt_str("reason", "fault");
		evt_uint("size", s->msg_octets);
		evt_end();
		tx_reset(s);
		sess_set_state(s, SS_READY);
		goto done;
	}
	if (s->flags & SF_DISCARD) {
		/* silent loss: acknowledged, never kept */
		capture_abort(&s->cap);
		s->cap_err = 0;
	}
	if (s->cap_err != 0 || (capture_active(&s->cap) &&
	    capture_commit(&s->cap, CF->capture_dir, CF->capture_fsync,
	    &path) == -1)) {
		int e = s->cap_err ? s->cap_err : errno;

		log_warnx("%08x capture: message not stored: %s", s->id,
		    strerror(e));
		if (e == ENOSPC || e == EDQUOT)
			msg_refuse(s, 452, "4.3.1", "Insufficient system "
			    "storage", "capture");
		else
			msg_refuse(s, 451, "4.3.0", "Error: could not store "
			    "message", "capture");
		goto done;
	}
	snprintf(qid, sizeof(qid), "%08X%04X", s->id, (unsigned)s->nmsgs + 1);
	s->nmsgs++;
	srv.n_msgs++;
	srv.n_bytes += s->msg_octets;
	evt_message(s, qid, path);
	free(path);
	if (s->flags & SF_DROP) {
		/* stored, but the client never hears so: it will resend */
		if (sess_flush(s) == 0)
			sess_close(s, "fault_drop_after_data");
		return;
	}
	tx_reset(s);
	sess_set_state(s, SS_READY);
	sess_reply(s, 250, "2.0.0", "Ok: queued as %s", qid);
	if (CF->max_msgs > 0 && s->nmsgs >= CF->max_msgs) {
		sess_reply(s, 421, "4.7.0", "%s Error: too many messages in "
		    "one session", CF->hostname);
		s->flags |= SF_QUIT;
		s->close_reason = "max_msgs";
	}
done:
	if ((s->flags & SF_SHUTDOWN) && !(s->flags & SF_QUIT)) {
		sess_reply(s, 421, "4.3.2", "%s Service shutting down, closing "
		    "transmission channel", CF->hostname);
		s->flags |= SF_QUIT;
		s->close_reason = "shutdown";
	}
}

/* ---- commands ---- */

static void
cmd_ehlo(struct session *s, char *arg, int ehlo)
{
	struct cmd_err e;
	char *name, greet[512];

	if (cmd_parse_helo(arg, &name, &e) == -1) {
		sess_error(s, e.code, e.ecode, ehlo ? e.text :
		    "Syntax: HELO hostname");
		return;
	}
	if (sess_fault(s, FH_HELO, name, dline, dlen))
		return;
	tx_reset(s);
	free(s->helo);
	s->helo = strdup(name);
	if (ehlo)
		s->flags |= SF_EHLO;
	else
		s->flags &= ~SF_EHLO;
	sess_set_state(s, SS_READY);
	if (!ehlo) {
		sess_reply(s, 250, NULL, "%s", CF->hostname);
		return;
	}
	if (s->ovr_code != 0) {
		/* a rule's words replace the greeting line, not the keywords */
		snprintf(greet, sizeof(greet), "%s", s->ovr_text);
		ovr_clear(s);
	} else {
		snprintf(greet, sizeof(greet), "%s greets %.64s", CF->hostname,
		    name);
	}
	sess_reply(s, 250, NULL, "%s\n%s%s%s%s"
	    "SIZE %llu\n%s%s%s%s",
	    greet,
	    CF->starttls && !(s->flags & SF_TLS) && tlsio_ctx(TV_GOOD) &&
	    !(s->lst && s->lst->tls) ? "STARTTLS\n" : "",
	    CF->pipelining ? "PIPELINING\n" : "",
	    CF->enhancedstatuscodes ? "ENHANCEDSTATUSCODES\n" : "",
	    CF->eightbitmime ? "8BITMIME\n" : "",
	    (unsigned long long)CF->max_msg_size,
	    CF->dsn ? "DSN\n" : "",
	    CF->smtputf8 ? "SMTPUTF8\n" : "",
	    CF->chunking ? "CHUNKING\n" : "",
	    "HELP");
}

static void
cmd_mail(struct session *s, char *arg)
{
	struct cmd_path p;
	struct cmd_err e;

	if (CF->require_tls && !(s->flags & SF_TLS)) {
		sess_error(s, 530, "5.7.0", "Must issue a STARTTLS command "
		    "first");
		return;
	}
	if (cmd_parse_mail(arg, sess_exts(), &p, &e) == -1) {
		sess_error(s, e.code, e.ecode, e.text);
		return;
	}
	if (p.utf8 && !p.smtputf8) {
		sess_error(s, 553, "5.6.7", "Non-ASCII address requires "
		    "SMTPUTF8");
		return;
	}
	s->decl_size = p.size;
	if (sess_fault(s, FH_MAIL, p.addr, dline, dlen))
		return;
	if (p.has_size && p.size > CF->max_msg_size) {
		sess_reply(s, 552, "5.3.4", "Message size exceeds fixed "
		    "maximum message size");
		return;
	}
	if ((s->from = strdup(p.addr)) == NULL ||
	    (p.envid && (s->envid = strdup(p.envid)) == NULL)) {
		tx_reset(s);
		sess_reply(s, 451, "4.3.0", "Error: out of memory");
		return;
	}
	s->decl_size = p.size;
	s->body8 = p.body == CMD_BODY_8BITMIME;
	s->utf8 = p.smtputf8;
	sess_set_state(s, SS_MAIL);
	sess_reply(s, 250, "2.1.0", "Sender <%.256s> OK", p.addr);
}

static void
cmd_rcpt(struct session *s, char *arg)
{
	struct cmd_path p;
	struct cmd_err e;
	char **r;

	if (cmd_parse_rcpt(arg, sess_exts(), &p, &e) == -1) {
		sess_error(s, e.code, e.ecode, e.text);
		return;
	}
	if (p.utf8 && !s->utf8) {
		sess_error(s, 553, "5.6.7", "Non-ASCII address requires "
		    "SMTPUTF8");
		return;
	}
	if (sess_fault(s, FH_RCPT, p.addr, dline, dlen))
		return;
	if (s->nrcpt >= CF->max_rcpts) {
		sess_reply(s, 452, "4.5.3", "Too many recipients");
		return;
	}
	r = realloc(s->rcpt, sizeof(*r) * (size_t)(s->nrcpt + 1));
	if (r == NULL) {
		sess_reply(s, 451, "4.3.0", "Error: out of memory");
		return;
	}
	s->rcpt = r;
	if ((s->rcpt[s->nrcpt] = strdup(p.addr)) == NULL) {
		sess_reply(s, 451, "4.3.0", "Error: out of memory");
		return;
	}
	s->nrcpt++;
	sess_set_state(s, SS_RCPT);
	sess_reply(s, 250, "2.1.5", "Recipient <%.256s> OK", p.addr);
}

static void
cmd_data(struct session *s, char *arg)
{
	if (*arg != '\0') {
		sess_error(s, 501, "5.5.4", "Syntax: DATA");
		return;
	}
	if (sess_fault(s, FH_DATA, NULL, dline, dlen))
		return;
	dscan_init(&s->ds, (size_t)CF->text_line_max);
	msg_begin(s);
	sess_set_state(s, SS_DATA);
	sess_reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
}

static void
cmd_bdat(struct session *s, char *arg)
{
	struct cmd_err e;
	uint64_t size;
	int last;

	if (cmd_parse_bdat(arg, &size, &last, &e) == -1) {
		/* the chunk length is unknown, so the stream cannot be
		 * resynchronised: answer and close */
		sess_reply_text(s, e.code, e.ecode, e.text);
		s->flags |= SF_QUIT;
		s->close_reason = "bdat_syntax";
		return;
	}
	s->bdat_left = size;
	s->bdat_chunk = size;
	s->bdat_last = last;
	if (!CF->chunking || (s->state != SS_RCPT && s->state != SS_BDAT)) {
		s->flags |= SF_DRAIN;
		s->bad_code = CF->chunking ? 503 : 502;
		s->bad_ecode = "5.5.1";
		s->bad_text = CF->chunking ? "Error: need RCPT before BDAT" :
		    "Error: command not implemented";
	} else if (s->state == SS_RCPT) {
		msg_begin(s);
		sess_set_state(s, SS_BDAT);
	}
	if (size == 0)
		bdat_bytes(s);		/* a zero-size chunk is complete now */
}

static void
cmd_rset(struct session *s, char *arg)
{
	if (*arg != '\0') {
		sess_error(s, 501, "5.5.4", "Syntax: RSET");
		return;
	}
	if (sess_fault(s, FH_RSET, NULL, dline, dlen))
		return;
	tx_reset(s);
	if (s->state != SS_INIT)
		sess_set_state(s, SS_READY);
	sess_reply(s, 250, "2.0.0", "Ok");
}

static void
sess_dispatch(struct session *s, char *line, size_t len)
{
	const struct cmd_def *c;
	char *arg;

	if (CF->scn->n > 0 && len < sizeof(dline)) {
		memcpy(dline, line, len);
		dline[len] = '\0';
		dlen = len;
	}

	if (memchr(line, '\0', len) != NULL || memchr(line, '\r', len) ||
	    memchr(line, '\n', len)) {
		evt_sess(s, "command");
		evt_str("verb", "?");
		evt_strn("arg", line, len);
		evt_end();
		sess_error(s, 500, "5.5.2", "Syntax error: bare CR, LF or NUL "
		    "in command");
		return;
	}
	c = cmd_lookup(line, &arg);
	if (evt_enabled() && !(s->flags & SF_RESUME)) {
		evt_sess(s, "command");
		evt_str("verb", c->name);
		evt_strn("arg", c->id == CMD_UNKNOWN ? line : arg,
		    strlen(c->id == CMD_UNKNOWN ? line : arg));
		evt_end();
	}
	if ((s->flags & SF_NOSERVICE) && c->id != CMD_QUIT) {
		/* RFC 5321 3.1: after a 554 banner only QUIT is served */
		sess_error(s, 503, "5.5.1", "Error: no service here, send QUIT");
		return;
	}
	if (!(c->states & SS_BIT(s->state))) {
		const char *why = "Error: bad sequence of commands";

		if (s->state == SS_INIT)
			why = "Error: send HELO/EHLO first";
		else if (c->id == CMD_MAIL)
			why = "Error: nested MAIL command";
		else if (c->id == CMD_RCPT)
			why = "Error: need MAIL command";
		else if (c->id == CMD_DATA)
			why = s->state == SS_BDAT ?
			    "Error: DATA inside a BDAT transaction" :
			    "Error: need RCPT command";
		sess_error(s, 503, "5.5.1", why);
		return;
	}
	switch (c->id) {
	case CMD_HELO:
		cmd_ehlo(s, arg, 0);
		break;
	case CMD_EHLO:
		cmd_ehlo(s, arg, 1);
		break;
	case CMD_MAIL:
		cmd_mail(s, arg);
		break;
	case CMD_RCPT:
		cmd_rcpt(s, arg);
		break;
	case CMD_DATA:
		cmd_data(s, arg);
		break;
	case CMD_BDAT:
		cmd_bdat(s, arg);
		break;
	case CMD_RSET:
		cmd_rset(s, arg);
		break;
	case CMD_NOOP:
		sess_reply(s, 250, "2.0.0", "Ok");
		break;
	case CMD_QUIT:
		if (sess_fault(s, FH_QUIT, NULL, dline, dlen))
			break;
		sess_reply(s, 221, "2.0.0", "Bye");
		s->flags |= SF_QUIT;
		s->close_reason = "quit";
		break;
	case CMD_VRFY:
		if (*arg == '\0')
			sess_error(s, 501, "5.5.4", "Syntax: VRFY address");
		else
			sess_reply(s, 252, "2.5.0", "Cannot VRFY user, but "
			    "will accept message and attempt delivery");
		break;
	case CMD_HELP:
		sess_reply(s, 214, "2.0.0", "smtpfault: HELO EHLO MAIL RCPT "
		    "DATA BDAT RSET NOOP VRFY HELP QUIT");
		break;
	case CMD_STARTTLS:
		cmd_starttls(s, arg);
		break;
	case CMD_AUTH:
		if (sess_fault(s, FH_AUTH, NULL, dline, dlen))
			break;
		if (s->ovr_code != 0) {
			/* a rule answers what the core does not implement */
			sess_reply_text(s, s->ovr_code, NULL, "");
			break;
		}
		sess_error(s, 502, "5.5.1", "Error: command not implemented");
		break;
	case CMD_EXPN:
	case CMD_NOTIMPL:
		sess_error(s, 502, "5.5.1", "Error: command not implemented");
		break;
	case CMD_UNKNOWN:
	default:
		sess_error(s, 500, "5.5.2", "Error: command not recognized");
		break;
	}
	ovr_clear(s);
}
