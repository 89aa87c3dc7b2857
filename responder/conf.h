/*
 * conf.h - process configuration: built-in defaults, INI file, validation
 *
 * DESCRIPTION  Every key is declared once in a table (section, key, type,
 *              default, bounds, target).  conf_load() applies defaults,
 *              reads an INI file through iniparser, validates every value
 *              strictly and collects every error before failing, so the
 *              server never starts half-configured.
 * OWNERSHIP    struct conf owns its strings; conf_free() releases them.
 *              A reload builds a new struct conf and swaps it in whole.
 * ERRORS       Messages read "FILE:LINE: [section] key = \"value\": reason"
 *              (or "... [section] key: unknown key") and are appended to
 *              struct conf_errs.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef CONF_H
#define CONF_H

#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

struct scenario;

#define CONF_MAX_LISTEN 16

struct conf_listen {
	char			 kind[8];	/* "smtp" */
	char			 text[80];	/* as written: "127.0.0.1:2525" */
	struct sockaddr_storage	 sa;
	socklen_t		 salen;
};

struct conf {
	int		 refs;		/* conf_free() frees at zero */
	uint64_t	 set[2];	/* keys given by a file or option */
	char		*file;		/* NULL: built-in defaults only */

	/* [server] */
	char		*hostname;
	char		*banner;	/* text after "220 hostname " */
	struct conf_listen listen[CONF_MAX_LISTEN];
	int		 nlisten;
	int		 pipelining, chunking, smtputf8, dsn, eightbitmime;
	int		 enhancedstatuscodes;
	int		 xclient;	/* test only: XCLIENT ADDR= from loopback */

	/* [limits] */
	long		 line_max;	/* command line incl. CRLF */
	long		 text_line_max;	/* DATA line incl. CRLF; 0 = no limit */
	long		 max_rcpts;
	uint64_t	 max_msg_size;
	long		 max_errors;
	long		 max_msgs;	/* per session; 0 = no limit */
	long		 max_connections;
	long		 max_per_client;	/* 0 = no limit */
	double		 idle_timeout;
	double		 command_timeout;
	double		 data_timeout;
	long		 min_data_rate;	/* bytes/s in DATA after grace; 0 = off */
	double		 min_rate_grace;
	double		 write_timeout;
	uint64_t	 out_max;
	double		 shutdown_grace;

	/* [capture] */
	char		*capture_dir;	/* NULL or "": off */
	int		 capture_fsync;

	/* [events] */
	char		*events_file;	/* "-" stdout, "" off */
	long		 events_max_arg;

	/* [tls] */
	int		 starttls;	/* advertise and accept STARTTLS */
	int		 require_tls;	/* 530 5.7.0 to MAIL before TLS */
	char		*tls_cert, *tls_key, *tls_chain;
	char		*tls_min_version, *tls_max_version;
	char		*tls_ciphers, *tls_ciphersuites;
	char		*tls_ca_out;	/* write the generated CA here */
	double		 tls_handshake_timeout;
	int		 tls_ask_cert;
	struct conf_listen tls_listen[CONF_MAX_LISTEN];
	int		 ntls_listen;

	/* [control] */
	struct conf_listen control_listen;
	int		 has_control;
	char		*control_token;
	long		 control_ring;
	uint64_t	 control_max_body;

	/* [greylist] */
	char		*gl_profile;
	double		 gl_delay, gl_retry_window, gl_max_age, gl_awl_interval;
	long		 gl_auto_whitelist;
	char		*gl_netmask;	/* "subnet" or "host" */
	long		 gl_ipv4_cidr, gl_ipv6_cidr;
	int		 gl_helo_in_key;
	char		*gl_stage;	/* "rcpt" or "data_end" */
	char		*gl_reply;
	int		 gl_code;	/* gl_reply parsed */
	char		*gl_ecode, *gl_text;

	/* [faults] */
	char		*scenario;	/* name or file; "" none */
	char		*scenario_dir;
	char		*seed;		/* decimal; "" = from the clock */
	char		*state_dir;	/* "" = in memory */
	double		 hold_max;
	double		 state_max_age;
	long		 v4_netmask, v6_netmask;

	/* rules of every file loaded, in order ([rule NAME] sections) */
	struct scenario	*scn;
	char		*scenario_file;	/* the scenario file loaded, if any */
};

struct conf_errs {
	char	**msg;
	int	 n;
};

/* Built-in defaults (what `smtpfault` with no file runs with). */
struct conf *conf_new(void);
/*
 * Drop one reference; the last one frees.  A session that holds a fault
 * decision across a delay takes a reference (c->refs++) so a reload
 * cannot free the rule under it.
 */
void	 conf_free(struct conf *c);

/*
 * Load file over the defaults in c.  Every problem is appended to errs;
 * returns 0 when there were none, -1 otherwise (c is then unusable).
 */
int	 conf_load(struct conf *c, const char *file, struct conf_errs *errs);

/* Parse "ADDR:PORT" / "[V6]:PORT" / ":PORT" into l. 0 or -1 with a reason. */
int	 conf_parse_listen(const char *s, const char *kind,
    struct conf_listen *l, const char **why);

/*
 * Resolve a scenario name ("greylisting") or path to a readable file:
 * the path itself, else NAME.ini in [faults] scenario_dir, ./conf/scenarios
 * and the built-in directory.  Returns a malloc'd path or NULL.
 */
char	*conf_find_scenario(const struct conf *c, const char *name,
    const char *exe);

/* Set a "[section] key" from the command line or a test, validated. */
int	 conf_set(struct conf *c, const char *section, const char *key,
    const char *val, struct conf_errs *errs);

/* 127.0.0.0/8 or ::1. */
int	 conf_is_loopback(const struct sockaddr_storage *sa);

/* Checks that need all keys (cross-key rules); appends to errs. */
int	 conf_check(struct conf *c, struct conf_errs *errs);

void	 conf_errs_add(struct conf_errs *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void	 conf_errs_print(const struct conf_errs *e, FILE *fp);
void	 conf_errs_free(struct conf_errs *e);

/* Write every key at its default as a commented INI file (docs, tests). */
void	 conf_dump_defaults(FILE *fp);

#endif
