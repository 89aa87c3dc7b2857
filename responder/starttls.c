/*
 * starttls.c - STARTTLS (RFC 3207) and implicit TLS on a session
 *
 * DESCRIPTION  starttls_cmd() answers STARTTLS, drops plaintext pipelined
 *              after it (CVE-2011-0411) and, once the 220 is flushed,
 *              starttls_begin() starts the handshake with the good context
 *              or a fault's; starttls_step() drives it from the session's
 *              watchers.  On success every session fact is forgotten; on
 *              failure the connection ends, never falling back to
 *              plaintext.  Reads and writes under TLS are in session.c.
 * OWNERSHIP    The SSL object belongs to the session; sess_close() frees it.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "conf.h"
#include "events.h"
#include "log.h"
#include "metrics.h"
#include "sess_int.h"
#include "tlsio.h"
#include "util.h"

static int	starttls_accept_any(int ok, X509_STORE_CTX *x);
static void	starttls_event(struct session *s);
static void	starttls_done(struct session *s);

void
starttls_failed(struct session *s, const char *where)
{
	metrics.tls_failures++;
	char why[256];

	s->flags |= SF_TLS_FATAL;
	tlsio_error(why, sizeof(why));
	sess_event(s, "tls_error");
	evt_str("stage", where);
	evt_str("reason", why);
	evt_end();
	log_debug("%08x tls %s failed: %s", s->id, where, why);
}

/* A requested client certificate is recorded, never judged. */
static int
starttls_accept_any(int ok, X509_STORE_CTX *x)
{
	(void)ok;
	(void)x;
	return 1;
}

static void
starttls_event(struct session *s)
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
	sess_event(s, "tls");
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
starttls_done(struct session *s)
{
	int implicit = s->lst != NULL && s->lst->tls;

	s->flags |= SF_TLS;
	s->hs_want = 0;
	metrics.tls_handshakes++;
	snprintf(s->tls_info, sizeof(s->tls_info), "%s:%s",
	    SSL_get_version(s->ssl), SSL_get_cipher_name(s->ssl));
	starttls_event(s);
	smtp_tx_reset(s);
	free(s->helo);
	s->helo = NULL;
	s->flags &= ~SF_EHLO;
	s->last_rx = ev_now(srv.loop);
	if (implicit) {
		s->state = SS_GREETING;
		hook_greet(s);
	} else {
		sess_set_state(s, SS_INIT);
	}
	if (s->state == SS_CLOSING)
		return;
	sess_process(s);
}

/* Drive the handshake one step; the fault modes never create TLS. */
void
starttls_step(struct session *s)
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
		starttls_done(s);
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
		starttls_failed(s, "handshake");
		sess_close(s, "tls_failed");
		return;
	}
	sess_rearm(s);
}

void
starttls_begin(struct session *s)
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
		starttls_failed(s, "setup");
		sess_close(s, "tls_failed");
		return;
	}
	if (CF->tls_ask_cert)
		SSL_set_verify(s->ssl, SSL_VERIFY_PEER, starttls_accept_any);
	SSL_set_accept_state(s->ssl);
	/* the ClientHello may already be waiting */
	starttls_step(s);
}

void
starttls_cmd(struct session *s, char *arg)
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
	if (hook_run(s, FH_STARTTLS, NULL, smtp_line, smtp_line_len))
		return;
	sess_reply(s, 220, "2.0.0", "Ready to start TLS");
	/* CVE-2011-0411: what came after STARTTLS in plaintext is dropped */
	if ((dropped = iobuf_len(&s->in)) > 0) {
		iobuf_clear(&s->in);
		sess_event(s, "tls_injection");
		evt_uint("discarded", dropped);
		evt_end();
	}
	s->flags |= SF_STARTTLS;
}
