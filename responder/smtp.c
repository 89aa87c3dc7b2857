/*
 * smtp.c - SMTP commands, the mail transaction and message transfer
 *
 * DESCRIPTION  The command table in cmd.c says where a verb is legal;
 *              smtp_dispatch() answers 503 from it and runs the handler.
 *              Handlers parse, ask the fault hook (hook_run) and carry out
 *              the normal behaviour of a sink.  Message bytes from DATA
 *              (after dscan) and BDAT go through smtp_msg_data() to the
 *              size limit, the Message-ID and content scanners and the
 *              Maildir capture; smtp_msg_finish() stores and answers.
 * OWNERSHIP    Transaction strings (from, rcpt[], envid) belong to the
 *              session and are freed by smtp_tx_reset().
 * ERRORS       Syntax and sequence errors -> 5xx via sess_error(), which
 *              counts them; storage errors -> 451 4.3.0 / 452 4.3.1.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "conf.h"
#include "events.h"
#include "log.h"
#include "metrics.h"
#include "sess_int.h"
#include "tlsio.h"
#include "util.h"

char	smtp_line[65536 + 4];
size_t	smtp_line_len;

static unsigned	smtp_exts(void);
static void	smtp_capture_headers(struct session *s);
static void	smtp_msg_begin(struct session *s);
static void	smtp_msgid_take(struct session *s, const char *v);
static void	smtp_header_line(struct session *s);
static void	smtp_header_scan(struct session *s, const char *p, size_t n);
static void	smtp_content_scan(struct session *s, const char *p, size_t n);
static void	smtp_msg_event(struct session *s, const char *qid,
    const char *path);
static void	cmd_ehlo(struct session *s, char *arg, int ehlo);
static void	cmd_mail(struct session *s, char *arg);
static void	cmd_rcpt(struct session *s, char *arg);
static void	cmd_data(struct session *s, char *arg);
static void	cmd_bdat(struct session *s, char *arg);
static void	cmd_rset(struct session *s, char *arg);

void
smtp_tx_reset(struct session *s)
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
	s->utf8 = 0;
	s->bdat_left = 0;
	s->bdat_last = 0;
	s->msg_octets = 0;
	s->msgid[0] = '\0';
	s->flags &= ~(SF_MSG_BAD | SF_DRAIN | SF_DISCARD | SF_DROP | SF_CUT);
	if (capture_active(&s->cap))
		capture_abort(&s->cap);
}

static unsigned
smtp_exts(void)
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
smtp_capture_headers(struct session *s)
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
smtp_msg_begin(struct session *s)
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
			smtp_capture_headers(s);
		}
	}
}

static void
smtp_msgid_take(struct session *s, const char *v)
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
smtp_header_line(struct session *s)
{
	s->hdrline[s->hdrlen] = '\0';
	if (s->hdrlen == 0) {
		s->in_headers = 0;
		return;
	}
	if (s->msgid_next) {
		s->msgid_next = 0;
		if (s->hdrline[0] == ' ' || s->hdrline[0] == '\t')
			smtp_msgid_take(s, s->hdrline);
	}
	if (s->msgid[0] == '\0' && strncasecmp(s->hdrline, "Message-ID:",
	    11) == 0)
		smtp_msgid_take(s, s->hdrline + 11);
}

/* Watch the header block go by for the Message-ID. */
static void
smtp_header_scan(struct session *s, const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n && s->in_headers; i++) {
		if (p[i] == '\n') {
			if (s->hdrlen > 0 && s->hdrline[s->hdrlen - 1] == '\r')
				s->hdrlen--;
			smtp_header_line(s);
			s->hdrlen = 0;
		} else if (s->hdrlen < sizeof(s->hdrline) - 1) {
			s->hdrline[s->hdrlen++] = p[i];
		}
	}
}

/* Feed header and body lines to the scenario's pattern rules. */
static void
smtp_content_scan(struct session *s, const char *p, size_t n)
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

void
smtp_msg_data(struct session *s, const char *p, size_t n)
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
		smtp_header_scan(s, p, n);
	if (s->hits != NULL && s->cline != NULL)
		smtp_content_scan(s, p, n);
	if (capture_active(&s->cap))
		capture_write(&s->cap, p, n);
}

/* End the transaction after a refused message (size, lines, storage). */
void
smtp_msg_refuse(struct session *s, int code, const char *ecode, const char *text,
    const char *reason)
{
	metrics.messages_refused++;
	sess_event(s, "message_refused");
	evt_str("reason", reason);
	evt_int("code", code);
	evt_uint("size", s->msg_octets);
	if (s->msgid[0] != '\0')
		evt_strn("message_id", s->msgid, strlen(s->msgid));
	evt_end();
	smtp_tx_reset(s);
	sess_set_state(s, SS_READY);
	sess_reply_text(s, code, ecode, text);
}

static void
smtp_msg_event(struct session *s, const char *qid, const char *path)
{
	char *arr, *p;
	size_t cap = 3, i;

	sess_event(s, "message");
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
void
smtp_msg_finish(struct session *s)
{
	char qid[32], *path = NULL;
	int fired;

	if (s->flags & SF_MSG_BAD) {
		smtp_msg_refuse(s, s->bad_code, s->bad_ecode, s->bad_text,
		    s->bad_reason);
		goto done;
	}
	if (s->state == SS_DATA && s->ds.long_line) {
		char t[96];

		snprintf(t, sizeof(t), "Message has lines longer than %ld "
		    "octets", CF->text_line_max);
		smtp_msg_refuse(s, 550, "5.6.0", t, "line_length");
		goto done;
	}
	if (s->hits != NULL && s->clen > 0 && CF->scn->n >= s->nhits) {
		/* a last line without CRLF (BDAT) is still a line */
		s->cline[s->clen] = '\0';
		fault_scan_line(CF->scn, s->hits, s->cline, s->c_in_headers);
		s->clen = 0;
	}
	fired = hook_run(s, FH_DATA_END, NULL, NULL, 0);
	if (s->state == SS_CLOSING || (s->flags & (SF_DELAYED | SF_HANG)))
		return;		/* closed, or held: nothing is answered */
	if (fired) {
		/* the rule's reply refused the message */
		metrics.messages_refused++;
	sess_event(s, "message_refused");
		evt_str("reason", "fault");
		evt_uint("size", s->msg_octets);
		if (s->msgid[0] != '\0')
			evt_strn("message_id", s->msgid, strlen(s->msgid));
		evt_end();
		smtp_tx_reset(s);
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
			smtp_msg_refuse(s, 452, "4.3.1", "Insufficient system "
			    "storage", "capture");
		else
			smtp_msg_refuse(s, 451, "4.3.0", "Error: could not store "
			    "message", "capture");
		goto done;
	}
	snprintf(qid, sizeof(qid), "%08X%04X", s->id, (unsigned)s->nmsgs + 1);
	s->nmsgs++;
	metrics.messages++;
	metrics.bytes += s->msg_octets;
	smtp_msg_event(s, qid, path);
	free(path);
	if (s->flags & SF_DROP) {
		/* stored, but the client never hears so: it will resend */
		if (sess_flush(s) == 0)
			sess_close(s, "fault_drop_after_data");
		return;
	}
	smtp_tx_reset(s);
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
	if (hook_run(s, FH_HELO, name, smtp_line, smtp_line_len))
		return;
	smtp_tx_reset(s);
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
		sess_ovr_clear(s);
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
	if (cmd_parse_mail(arg, smtp_exts(), &p, &e) == -1) {
		sess_error(s, e.code, e.ecode, e.text);
		return;
	}
	if (p.utf8 && !p.smtputf8) {
		sess_error(s, 553, "5.6.7", "Non-ASCII address requires "
		    "SMTPUTF8");
		return;
	}
	s->decl_size = p.size;
	if (hook_run(s, FH_MAIL, p.addr, smtp_line, smtp_line_len))
		return;
	if (p.has_size && p.size > CF->max_msg_size) {
		sess_reply(s, 552, "5.3.4", "Message size exceeds fixed "
		    "maximum message size");
		return;
	}
	if ((s->from = strdup(p.addr)) == NULL ||
	    (p.envid && (s->envid = strdup(p.envid)) == NULL)) {
		smtp_tx_reset(s);
		sess_reply(s, 451, "4.3.0", "Error: out of memory");
		return;
	}
	s->decl_size = p.size;
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

	if (cmd_parse_rcpt(arg, smtp_exts(), &p, &e) == -1) {
		sess_error(s, e.code, e.ecode, e.text);
		return;
	}
	if (p.utf8 && !s->utf8) {
		sess_error(s, 553, "5.6.7", "Non-ASCII address requires "
		    "SMTPUTF8");
		return;
	}
	if (hook_run(s, FH_RCPT, p.addr, smtp_line, smtp_line_len))
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
	if (hook_run(s, FH_DATA, NULL, smtp_line, smtp_line_len))
		return;
	dscan_init(&s->ds, (size_t)CF->text_line_max);
	smtp_msg_begin(s);
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
		smtp_msg_begin(s);
		sess_set_state(s, SS_BDAT);
	}
	if (size == 0)
		sess_bdat_bytes(s);		/* a zero-size chunk is complete now */
}

static void
cmd_rset(struct session *s, char *arg)
{
	if (*arg != '\0') {
		sess_error(s, 501, "5.5.4", "Syntax: RSET");
		return;
	}
	if (hook_run(s, FH_RSET, NULL, smtp_line, smtp_line_len))
		return;
	smtp_tx_reset(s);
	if (s->state != SS_INIT)
		sess_set_state(s, SS_READY);
	sess_reply(s, 250, "2.0.0", "Ok");
}

static int
is_loopback(const struct sockaddr_storage *sa)
{
	if (sa->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)(const void *)sa)->
		    sin_addr.s_addr) >> 24) == 127;
	if (sa->ss_family == AF_INET6) {
		const struct in6_addr *a =
		    &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;

		return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) &&
		    a->s6_addr[12] == 127);
	}
	return 0;
}

/*
 * TEST ONLY ([server] xclient = yes): a loopback client takes another
 * client address, as Postfix's XCLIENT lets a trusted proxy do, so tests
 * can play senders from Exchange Online ranges without their networks.
 * "XCLIENT ADDR=40.107.1.2 [HELO=name]" -> new 220 greeting, fresh state.
 */
static void
smtp_xclient(struct session *s, char *arg)
{
	struct sockaddr_storage sa;
	char *tok, *save = NULL, *helo = NULL;
	int ok = 0;

	if (!CF->xclient || !is_loopback(&s->sa)) {
		sess_error(s, 502, "5.5.1", "Error: command not implemented");
		return;
	}
	memset(&sa, 0, sizeof(sa));
	for (tok = strtok_r(arg, " ", &save); tok;
	    tok = strtok_r(NULL, " ", &save)) {
		if (strncasecmp(tok, "ADDR=", 5) == 0) {
			const char *v = tok + 5;
			struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&sa;
			struct sockaddr_in *a4 = (struct sockaddr_in *)&sa;

			if (strncasecmp(v, "IPV6:", 5) == 0)
				v += 5;
			if (inet_pton(AF_INET, v, &a4->sin_addr) == 1) {
				a4->sin_family = AF_INET;
				ok = 1;
			} else if (inet_pton(AF_INET6, v, &a6->sin6_addr) == 1) {
				a6->sin6_family = AF_INET6;
				ok = 1;
			} else {
				ok = -1;
			}
		} else if (strncasecmp(tok, "HELO=", 5) == 0) {
			helo = tok + 5;
		}
	}
	if (ok != 1) {
		sess_error(s, 501, "5.5.4", "Syntax: XCLIENT ADDR=address "
		    "[HELO=name]");
		return;
	}
	sess_event(s, "xclient");
	evt_str("was", s->addr);
	server_client_del(&s->sa);
	s->sa = sa;
	server_client_add(&s->sa);
	sess_client_text(s);
	evt_str("addr", s->addr);
	evt_end();
	smtp_tx_reset(s);
	free(s->helo);
	s->helo = helo ? strdup(helo) : NULL;
	s->flags &= ~SF_EHLO;
	sess_set_state(s, SS_INIT);
	sess_reply(s, 220, NULL, "%s %s", CF->hostname, CF->banner);
}

void
smtp_dispatch(struct session *s, char *line, size_t len)
{
	const struct cmd_def *c;
	char *arg;

	if (CF->scn->n > 0 && len < sizeof(smtp_line)) {
		memcpy(smtp_line, line, len);
		smtp_line[len] = '\0';
		smtp_line_len = len;
	}

	if (memchr(line, '\0', len) != NULL || memchr(line, '\r', len) ||
	    memchr(line, '\n', len)) {
		sess_event(s, "command");
		evt_str("verb", "?");
		evt_strn("arg", line, len);
		evt_end();
		sess_error(s, 500, "5.5.2", "Syntax error: bare CR, LF or NUL "
		    "in command");
		return;
	}
	c = cmd_lookup(line, &arg);
	metrics.commands[c->id]++;
	if (evt_enabled() && !(s->flags & SF_RESUME)) {
		sess_event(s, "command");
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
		if (hook_run(s, FH_QUIT, NULL, smtp_line, smtp_line_len))
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
		starttls_cmd(s, arg);
		break;
	case CMD_AUTH:
		if (hook_run(s, FH_AUTH, NULL, smtp_line, smtp_line_len))
			break;
		if (s->ovr_code != 0) {
			/* a rule answers what the core does not implement */
			sess_reply_text(s, s->ovr_code, NULL, "");
			break;
		}
		sess_error(s, 502, "5.5.1", "Error: command not implemented");
		break;
	case CMD_XCLIENT:
		smtp_xclient(s, arg);
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
	sess_ovr_clear(s);
}
