/*
 * sess_int.h - what the session's source files share (not a public API)
 *
 * DESCRIPTION  The session is one state machine in four files:
 *              session.c (life cycle, watchers, I/O, replies, the input
 *              loop), smtp.c (commands, transaction, message transfer),
 *              hook.c (fault hook points and actions) and starttls.c
 *              (STARTTLS and implicit TLS).  Nothing outside them
 *              includes this header.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef SESS_INT_H
#define SESS_INT_H

#include <stddef.h>
#include <sys/socket.h>

#include <ev.h>

#include "server.h"
#include "session.h"

#define CF (srv.cf)
#define CLINE_MAX	2048	/* content rules see this much of a line */

/* The command being run, as received, for a fault delay to re-run it. */
extern char	smtp_line[];
extern size_t	smtp_line_len;

/* session.c */
void	sess_client_text(struct session *s);
void	sess_event(struct session *s, const char *name);
void	sess_set_state(struct session *s, enum sess_state st);
void	sess_rearm(struct session *s);
void	sess_deadline(struct session *s, double at);
int	sess_flush(struct session *s);
void	sess_reply_text(struct session *s, int code, const char *ecode,
    const char *text);
void	sess_ovr_clear(struct session *s);
void	sess_reply(struct session *s, int code, const char *ecode,
    const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void	sess_error(struct session *s, int code, const char *ecode,
    const char *text);
void	sess_reset(struct session *s, const char *reason);
int	sess_bdat_bytes(struct session *s);
void	sess_process(struct session *s);

/* smtp.c */
void	smtp_tx_reset(struct session *s);
void	smtp_msg_data(struct session *s, const char *p, size_t n);
void	smtp_msg_refuse(struct session *s, int code, const char *ecode,
    const char *text, const char *reason);
void	smtp_msg_finish(struct session *s);
void	smtp_dispatch(struct session *s, char *line, size_t len);

/* hook.c */
int	hook_run(struct session *s, enum fault_hook h, const char *a1,
    const char *line, size_t len);
void	hook_greet(struct session *s);
void	hook_on_timer(struct ev_loop *loop, ev_timer *w, int revents);

/* starttls.c */
void	starttls_failed(struct session *s, const char *where);
void	starttls_step(struct session *s);
void	starttls_begin(struct session *s);
void	starttls_cmd(struct session *s, char *arg);

#endif
