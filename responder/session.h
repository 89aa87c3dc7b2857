/*
 * session.h - per-connection SMTP state machine
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef SESSION_H
#define SESSION_H

#include <sys/queue.h>
#include <sys/socket.h>
#include <stdint.h>

#include <ev.h>
#include <openssl/ssl.h>

#include "capture.h"
#include "cmd.h"
#include "dscan.h"
#include "fault.h"
#include "iobuf.h"

struct listener;

/* Session flags */
#define SF_QUIT		0x0001	/* close once output is flushed */
#define SF_DISCARD_LINE	0x0002	/* skipping the tail of an overlong line */
#define SF_EHLO		0x0004	/* client said EHLO (not HELO) */
#define SF_DRAIN	0x0008	/* BDAT chunk being read and discarded */
#define SF_MSG_BAD	0x0010	/* current message refused; keep reading */
#define SF_READ_EOF	0x0020	/* peer closed its side */
#define SF_SHUTDOWN	0x0040	/* server stopping: 421 after this reply */
#define SF_DELAYED	0x0100	/* a fault holds the reply back */
#define SF_HANG		0x0200	/* a fault never answers */
#define SF_TARPIT	0x0400	/* replies leave a few bytes at a time */
#define SF_NOSERVICE	0x0800	/* 5xx banner: only QUIT is served */
#define SF_RESUME	0x1000	/* re-running a command after its delay */
#define SF_DISCARD	0x2000	/* data_end: answer 250, keep nothing */
#define SF_DROP		0x4000	/* data_end: keep, then close unanswered */
#define SF_CUT		0x8000	/* disconnect after cut_after bytes */
#define SF_TLS		0x10000	/* TLS is up */
#define SF_STARTTLS	0x20000	/* 220 queued: handshake once flushed */
#define SF_TLS_FATAL	0x40000	/* no close_notify may be sent */

struct session {
	TAILQ_ENTRY(session)	 entry;
	ev_io			 rd, wr;
	ev_timer		 timer;		/* every deadline, checked lazily */
	ev_timer		 ftimer;	/* fault delay, hold, tarpit drip */
	struct listener		*lst;
	int			 fd;
	uint32_t		 id;
	enum sess_state		 state;
	unsigned		 flags;
	struct sockaddr_storage	 sa;
	char			 addr[64];	/* client address, text */
	uint16_t		 port;
	struct iobuf		 in, out;
	double			 started;
	double			 last_rx;	/* last byte read */
	double			 last_tx;	/* last write progress */
	double			 cmd_start;	/* first byte of a partial command */
	double			 data_start;	/* DATA/BDAT transfer began */
	uint64_t		 data_rx;	/* bytes read since data_start */
	const char		*close_reason;	/* for SF_QUIT closes */
	int			 bad_code;	/* reply for a refused message */
	const char		*bad_ecode, *bad_text, *bad_reason;
	char			*helo;
	/* transaction */
	char			*from;
	char			**rcpt;
	int			 nrcpt;
	uint64_t		 decl_size;	/* MAIL SIZE= */
	char			*envid;
	int			 utf8;
	uint64_t		 bdat_left;	/* bytes of chunk still to read */
	uint64_t		 bdat_chunk;	/* size of the current chunk */
	int			 bdat_last;
	uint64_t		 msg_octets;
	char			 msgid[128];
	int			 in_headers;	/* still in the header block */
	int			 msgid_next;	/* Message-ID folded to next line */
	char			 hdrline[160];	/* start of current header line */
	size_t			 hdrlen;
	struct dscan		 ds;
	struct capture_tx	 cap;
	int			 cap_err;	/* errno of a failed capture */
	/* TLS */
	SSL			*ssl;
	int			 hs_want;	/* handshake waits for: EV_READ... */
	int			 rd_wants_wr;	/* SSL_read needs the socket writable */
	int			 wr_wants_rd;	/* SSL_write needs it readable */
	int			 tls_mode;	/* FA_TLS_* chosen at STARTTLS */
	int			 tls_variant;	/* enum tls_variant */
	double			 hs_start;
	char			 tls_info[96];	/* "TLSv1.3:TLS_AES_256_GCM_SHA384" */
	/* faults */
	struct conf		*pcf;		/* holds the pending rule alive */
	struct fault_decision	 pending;
	enum fault_hook		 pending_hook;
	double			 fdue;		/* when a delayed reply is due */
	char			*pending_line;
	size_t			 pending_len;
	int			 ovr_code;	/* next reply replaced by ... */
	char			*ovr_ecode, *ovr_text;
	long			 drip_bytes;
	double			 drip_interval;
	uint64_t		 cut_after;
	uint64_t		 cut_rx;
	unsigned char		*hits;		/* header/body rule matches */
	size_t			 nhits;
	char			*cline;		/* current line, content rules */
	size_t			 clen;
	int			 c_in_headers;
	/* counters */
	int			 nerrors;
	int			 nmsgs;
	uint64_t		 rx, tx;
};

/* Take over an accepted socket; sends the banner.  NULL on ENOMEM. */
struct session *sess_new(struct listener *l, int fd,
    const struct sockaddr_storage *sa, socklen_t salen);
/* Stop watchers, mark closing, queue for the reaper.  Idempotent. */
void	 sess_close(struct session *s, const char *reason);
/* Free a closed session (reaper only). */
void	 sess_free(struct session *s);
/* Server stopping: 421 now when idle, after the current message if not. */
void	 sess_shutdown(struct session *s);

#endif
