/*
 * server.h - listeners, accept, connection caps, signals, the reaper
 *
 * DESCRIPTION  Owns the libev loop, the listening sockets and the list of
 *              live sessions.  Accepts with caps (total and per client
 *              address), keeps a reserved descriptor to answer 421 when
 *              accept() fails with EMFILE/ENFILE, frees closed sessions
 *              from an ev_check reaper, and handles SIGTERM/SIGINT
 *              (graceful stop) and SIGHUP (reload).
 * OWNERSHIP    One global struct server (srv).  Sessions are linked on
 *              srv.sessions while alive and on srv.reap once closed.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef SERVER_H
#define SERVER_H

#include <sys/queue.h>
#include <stdint.h>

#include <ev.h>

#include "conf.h"

struct session;

struct listener {
	ev_io		 io;
	int		 fd;
	char		 kind[8];	/* "smtp" or "smtps" */
	int		 tls;		/* implicit TLS */
	char		 name[96];	/* "127.0.0.1:40123" as bound */
};

TAILQ_HEAD(sess_list, session);

struct server {
	struct ev_loop	*loop;
	struct conf	*cf;		/* active configuration */
	const char	*conf_path;	/* -c FILE, for SIGHUP */
	struct conf	*cli;		/* command-line overrides, re-applied */
	struct listener	 lst[CONF_MAX_LISTEN];
	int		 nlst;
	struct sess_list sessions;
	struct sess_list reap;
	long		 nsessions;
	int		 paused;	/* listeners stopped (cap or EMFILE) */
	int		 stopping;	/* SIGTERM seen */
	int		 reserve_fd;	/* spare descriptor for EMFILE */
	uint32_t	 next_id;
	double		 started;
	void		(*reload)(void);	/* SIGHUP */
	ev_check	 reaper;
	ev_prepare	 flusher;
	ev_signal	 sigterm, sigint, sighup;
	ev_timer	 resume;	/* retry accept after EMFILE */
	ev_timer	 grace;		/* shutdown deadline */
	ev_timer	 housekeep;	/* state expiry and sync */
};

extern struct server srv;

int	 server_init(struct conf *cf, const char *port_file);
int	 server_run(void);
void	 server_free(void);

/* Called by session.c when a session closes (counts, resume accept). */
void	 server_session_gone(struct session *s);

/* Per-client-address connection counts (for max_per_client). */
int	 server_client_add(const struct sockaddr_storage *sa);
void	 server_client_del(const struct sockaddr_storage *sa);

#endif
