/*
 * server.c - listeners, accept, connection caps, signals, the reaper
 *
 * DESCRIPTION  See server.h.
 * OWNERSHIP    srv owns the loop, the listeners and every session; closed
 *              sessions are freed only from the reaper (ev_check), after
 *              all callbacks of the iteration have returned.
 * LIMITS       max_connections, max_per_client; accept() is drained in
 *              bounded batches so one busy listener cannot starve sessions.
 * ERRORS       Start-up failures return -1 with a message on stderr;
 *              run-time failures are logged and the loop keeps going.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "capture.h"
#include "control.h"
#include "events.h"
#include "fault.h"
#include "greylist.h"
#include "log.h"
#include "metrics.h"
#include "server.h"
#include "session.h"
#include "util.h"

#define ACCEPT_BATCH	64
#define CLIENT_BUCKETS	4096

struct server srv;
struct metrics metrics;

struct client_count {
	struct client_count	*next;
	unsigned char		 addr[16];
	int			 n;
};

static struct client_count *clients[CLIENT_BUCKETS];

static void server_on_accept(struct ev_loop *, ev_io *, int);

/* ---- per-client counts ---- */

static void
client_key(const struct sockaddr_storage *sa, unsigned char key[16])
{
	memset(key, 0, 16);
	if (sa->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)sa;

		memcpy(key, &a->sin6_addr, 16);
	} else {
		const struct sockaddr_in *a = (const void *)sa;

		/* IPv4 as ::ffff:a.b.c.d, the same key a mapped v6 has */
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &a->sin_addr, 4);
	}
}

static unsigned
client_hash(const unsigned char key[16])
{
	unsigned h = 2166136261u;
	int i;

	for (i = 0; i < 16; i++)
		h = (h ^ key[i]) * 16777619u;
	return h % CLIENT_BUCKETS;
}

int
server_client_add(const struct sockaddr_storage *sa)
{
	unsigned char key[16];
	struct client_count *c;
	unsigned h;

	client_key(sa, key);
	h = client_hash(key);
	for (c = clients[h]; c != NULL; c = c->next)
		if (memcmp(c->addr, key, 16) == 0)
			return ++c->n;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return -1;
	memcpy(c->addr, key, 16);
	c->n = 1;
	c->next = clients[h];
	clients[h] = c;
	return 1;
}

void
server_client_del(const struct sockaddr_storage *sa)
{
	unsigned char key[16];
	struct client_count **pp, *c;

	client_key(sa, key);
	for (pp = &clients[client_hash(key)]; (c = *pp) != NULL;
	    pp = &c->next) {
		if (memcmp(c->addr, key, 16) == 0) {
			if (--c->n <= 0) {
				*pp = c->next;
				free(c);
			}
			return;
		}
	}
}

/* ---- listeners ---- */

static void
sockname_text(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)ss;

		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%u", host, ntohs(a->sin6_port));
	} else {
		const struct sockaddr_in *a = (const void *)ss;

		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, ntohs(a->sin_port));
	}
}

static int
listener_open(struct listener *l, const struct conf_listen *cl)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd, one = 1;

	fd = socket(cl->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd == -1) {
		log_warn("listen %s: socket", cl->text);
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (cl->sa.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&cl->sa, cl->salen) == -1) {
		log_warn("listen %s: bind", cl->text);
		goto fail;
	}
	if (listen(fd, 4096) == -1) {
		log_warn("listen %s: listen", cl->text);
		goto fail;
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == -1) {
		log_warn("listen %s: getsockname", cl->text);
		goto fail;
	}
	l->fd = fd;
	snprintf(l->kind, sizeof(l->kind), "%s", cl->kind);
	sockname_text(&ss, l->name, sizeof(l->name));
	ev_io_init(&l->io, server_on_accept, fd, EV_READ);
	return 0;
fail:
	close(fd);
	return -1;
}

static int
write_port_file(const char *path)
{
	char tmp[4096];
	FILE *fp;
	int i;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -1;
	if ((fp = fopen(tmp, "w")) == NULL) {
		log_warn("port file %s", tmp);
		return -1;
	}
	for (i = 0; i < srv.nlst; i++)
		fprintf(fp, "%s %s\n", srv.lst[i].kind, srv.lst[i].name);
	if (control_name() != NULL)
		fprintf(fp, "control %s\n", control_name());
	if (fclose(fp) == EOF || rename(tmp, path) == -1) {
		log_warn("port file %s", path);
		unlink(tmp);
		return -1;
	}
	return 0;
}

static void
listeners_set(int on)
{
	int i;

	for (i = 0; i < srv.nlst; i++) {
		if (on && !ev_is_active(&srv.lst[i].io))
			ev_io_start(srv.loop, &srv.lst[i].io);
		else if (!on && ev_is_active(&srv.lst[i].io))
			ev_io_stop(srv.loop, &srv.lst[i].io);
	}
}

/* ---- accept ---- */

/* Turn a client away with one reply line, without a session. */
static void
refuse(int fd, const struct sockaddr_storage *sa, const char *reason,
    const char *line)
{
	char host[INET6_ADDRSTRLEN] = "";
	ssize_t r;

	if (sa->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)sa;

		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
	} else if (sa->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)sa;

		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
	}
	r = send(fd, line, strlen(line), MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)r;
	close(fd);
	metrics.refused++;
	evt_begin("refuse");
	evt_str("client", host);
	evt_str("reason", reason);
	evt_int("code", 421);
	evt_end();
}

/* EMFILE/ENFILE: answer the waiting client with the reserved fd. */
static void
accept_no_fd(struct listener *l)
{
	struct sockaddr_storage sa;
	socklen_t sl = sizeof(sa);
	int fd;

	if (srv.reserve_fd != -1) {
		close(srv.reserve_fd);
		srv.reserve_fd = -1;
		fd = accept4(l->fd, (struct sockaddr *)&sa, &sl,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd != -1)
			refuse(fd, &sa, "no_descriptors", "421 4.3.2 Too many "
			    "connections, try again later\r\n");
		srv.reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	}
	if (srv.reserve_fd == -1) {
		/* cannot even refuse: stop accepting until a session ends
		 * or a second passes, so the loop never spins */
		listeners_set(0);
		srv.paused = 1;
		ev_timer_again(srv.loop, &srv.resume);
	}
}

static void
server_on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	struct listener *l = container_of(w, struct listener, io);
	struct sockaddr_storage sa;
	socklen_t sl;
	int i, n, fd, one = 1;

	(void)loop;
	(void)revents;
	for (i = 0; i < ACCEPT_BATCH; i++) {
		sl = sizeof(sa);
		fd = accept4(l->fd, (struct sockaddr *)&sa, &sl,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EMFILE || errno == ENFILE) {
				log_warnx("accept: out of descriptors");
				accept_no_fd(l);
			} else if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR && errno != ECONNABORTED) {
				log_warn("accept");
			}
			return;
		}
		metrics.connections++;
		if (srv.stopping) {
			refuse(fd, &sa, "shutdown", "421 4.3.2 Service "
			    "shutting down\r\n");
			continue;
		}
		if (srv.nsessions >= srv.cf->max_connections) {
			refuse(fd, &sa, "max_connections", "421 4.3.2 Too many "
			    "connections, try again later\r\n");
			continue;
		}
		n = server_client_add(&sa);
		if (n == -1) {
			refuse(fd, &sa, "no_memory", "421 4.3.2 Try again "
			    "later\r\n");
			continue;
		}
		if (srv.cf->max_per_client > 0 && n > srv.cf->max_per_client) {
			server_client_del(&sa);
			refuse(fd, &sa, "max_per_client", "421 4.3.2 Too many "
			    "connections from your address\r\n");
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (sess_new(l, fd, &sa, sl) == NULL) {
			server_client_del(&sa);
			refuse(fd, &sa, "no_memory", "421 4.3.2 Try again "
			    "later\r\n");
		}
	}
}

void
server_session_gone(struct session *s)
{
	srv.nsessions--;
	server_client_del(&s->sa);
	if (srv.stopping && srv.nsessions == 0) {
		/* the listeners keep the loop alive: end it here */
		ev_break(srv.loop, EVBREAK_ALL);
		return;
	}
	if (srv.paused && !srv.stopping) {
		if (srv.reserve_fd == -1)
			srv.reserve_fd = open("/dev/null", O_RDONLY |
			    O_CLOEXEC);
		srv.paused = 0;
		listeners_set(1);
	}
}

static void
server_on_resume(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	if (!srv.paused || srv.stopping)
		return;
	if (srv.reserve_fd == -1)
		srv.reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	srv.paused = 0;
	listeners_set(1);
}

/* ---- loop housekeeping ---- */

static void
server_on_reap(struct ev_loop *loop, ev_check *w, int revents)
{
	struct session *s;

	(void)w;
	(void)revents;
	while ((s = TAILQ_FIRST(&srv.reap)) != NULL) {
		TAILQ_REMOVE(&srv.reap, s, entry);
		sess_free(s);
	}
	if (srv.stopping && TAILQ_EMPTY(&srv.sessions))
		ev_break(loop, EVBREAK_ALL);
}

static void
server_on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	evt_flush();
}

static void
server_on_grace(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct session *s;

	(void)w;
	(void)revents;
	while ((s = TAILQ_FIRST(&srv.sessions)) != NULL)
		sess_close(s, "shutdown");
	ev_break(loop, EVBREAK_ALL);
}

/* Expiry runs on a timer, never per request. */
static void
server_on_housekeep(struct ev_loop *loop, ev_timer *w, int revents)
{
	long n;

	(void)loop;
	(void)w;
	(void)revents;
	n = fault_expire(srv.cf->state_max_age);
	if (fault.st != NULL)
		n += greylist_expire(fault.st, srv.cf->gl_max_age, fault.now());
	if (n > 0)
		log_info("state: expired %ld record(s)", n);
	store_sync(fault.st);
}

static void
server_stop(const char *why)
{
	struct session *s, *next;

	if (srv.stopping)
		return;
	srv.stopping = 1;
	log_info("stopping on %s: %ld session(s)", why, srv.nsessions);
	/* Listeners stay open until exit: a client that connects now gets
	 * "421 4.3.2" from server_on_accept, not a silent hang. */
	for (s = TAILQ_FIRST(&srv.sessions); s != NULL; s = next) {
		next = TAILQ_NEXT(s, entry);
		sess_shutdown(s);
	}
	ev_timer_init(&srv.grace, server_on_grace, srv.cf->shutdown_grace +
	    0.001, 0.);
	ev_timer_start(srv.loop, &srv.grace);
	ev_unref(srv.loop);	/* the grace timer alone keeps nobody alive */
}

static void
server_on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)loop;
	(void)revents;
	if (w->signum == SIGHUP) {
		if (srv.reload != NULL)
			srv.reload();
		return;
	}
	server_stop(w->signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int
server_init(struct conf *cf, const char *port_file)
{
	int i;

	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	srv.cf = cf;
	srv.loop = EV_DEFAULT;
	srv.started = util_now();
	TAILQ_INIT(&srv.sessions);
	TAILQ_INIT(&srv.reap);
	srv.reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	for (i = 0; i < cf->nlisten + cf->ntls_listen; i++) {
		const struct conf_listen *cl = i < cf->nlisten ?
		    &cf->listen[i] : &cf->tls_listen[i - cf->nlisten];

		if (srv.nlst == CONF_MAX_LISTEN) {
			log_warnx("too many listeners");
			return -1;
		}
		if (listener_open(&srv.lst[srv.nlst], cl) == -1)
			return -1;
		srv.lst[srv.nlst].tls = i >= cf->nlisten;
		srv.nlst++;
	}
	for (i = 0; i < srv.nlst; i++) {
		evt_begin("listen");
		evt_str("kind", srv.lst[i].kind);
		evt_str("addr", srv.lst[i].name);
		evt_end();
		log_info("listening on %s %s", srv.lst[i].kind,
		    srv.lst[i].name);
	}
	if (cf->has_control) {
		struct listener cl;

		if (listener_open(&cl, &cf->control_listen) == -1 ||
		    control_init(cl.fd, cl.name) == -1)
			return -1;
		evt_begin("listen");
		evt_str("kind", "control");
		evt_str("addr", cl.name);
		evt_end();
		log_info("listening on control %s", cl.name);
	}
	if (port_file != NULL && write_port_file(port_file) == -1)
		return -1;
	listeners_set(1);
	ev_check_init(&srv.reaper, server_on_reap);
	ev_check_start(srv.loop, &srv.reaper);
	ev_unref(srv.loop);
	ev_prepare_init(&srv.flusher, server_on_prepare);
	ev_prepare_start(srv.loop, &srv.flusher);
	ev_unref(srv.loop);
	ev_timer_init(&srv.resume, server_on_resume, 0., 1.);
	ev_timer_init(&srv.housekeep, server_on_housekeep, 60., 60.);
	ev_timer_start(srv.loop, &srv.housekeep);
	ev_unref(srv.loop);
	ev_signal_init(&srv.sigterm, server_on_signal, SIGTERM);
	ev_signal_init(&srv.sigint, server_on_signal, SIGINT);
	ev_signal_init(&srv.sighup, server_on_signal, SIGHUP);
	ev_signal_start(srv.loop, &srv.sigterm);
	ev_signal_start(srv.loop, &srv.sigint);
	ev_signal_start(srv.loop, &srv.sighup);
	ev_unref(srv.loop);
	ev_unref(srv.loop);
	ev_unref(srv.loop);
	return 0;
}

int
server_run(void)
{
	ev_run(srv.loop, 0);
	evt_begin("stop");
	evt_str("reason", srv.stopping ? "signal" : "idle");
	evt_end();
	evt_flush();
	return 0;
}

void
server_free(void)
{
	struct session *s;
	int i;

	while ((s = TAILQ_FIRST(&srv.sessions)) != NULL)
		sess_close(s, "exit");
	while ((s = TAILQ_FIRST(&srv.reap)) != NULL) {
		TAILQ_REMOVE(&srv.reap, s, entry);
		sess_free(s);
	}
	control_free();
	for (i = 0; i < srv.nlst; i++) {
		ev_io_stop(srv.loop, &srv.lst[i].io);
		close(srv.lst[i].fd);
	}
	srv.nlst = 0;
	if (srv.reserve_fd != -1)
		close(srv.reserve_fd);
	for (i = 0; i < CLIENT_BUCKETS; i++) {
		while (clients[i] != NULL) {
			struct client_count *c = clients[i];

			clients[i] = c->next;
			free(c);
		}
	}
}
