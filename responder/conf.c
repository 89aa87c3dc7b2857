/*
 * conf.c - process configuration: built-in defaults, INI file, validation
 *
 * DESCRIPTION  See conf.h.  iniparser reads the file; this module never
 *              uses its number getters (iniparser_getint() is strtol with
 *              base 0 and no error check).  Because iniparser does not say
 *              on which line a key stands, the file is also scanned once
 *              here to map "[section] key" to its line for error messages.
 *
 * SPDX-License-Identifier: MIT
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <iniparser/iniparser.h>

#include "conf.h"
#include "scenario.h"
#include "util.h"

#ifndef SCENARIO_DIR
#define SCENARIO_DIR "/usr/local/etc/smtpfault/scenarios"
#endif

enum ctype { CT_LONG, CT_SIZE, CT_DUR, CT_BOOL, CT_STR, CT_LISTEN,
	CT_LISTEN_TLS, CT_TLSVER, CT_LISTEN_CTL };

struct ckey {
	const char	*section;
	const char	*key;
	enum ctype	 type;
	const char	*def;
	double		 min, max;	/* numbers, durations, sizes */
	size_t		 off;
	const char	*help;
};

/* String keys that take one of a few words. */
static const struct {
	const char	*section, *key, *choices;
} choice_keys[] = {
	{ "greylist", "profile", "postgrey|milter-greylist|spamd" },
	{ "greylist", "netmask", "subnet|host" },
	{ "greylist", "stage", "rcpt|data_end" },
};

#define O(f) offsetof(struct conf, f)
#define KMAX 1e12

static const struct ckey keys[] = {
	{ "server", "listen", CT_LISTEN, "127.0.0.1:2525", 0, 0, 0,
	    "SMTP listeners, comma-separated ADDR:PORT ([V6]:PORT; port 0 = any free port)" },
	{ "server", "tls_listen", CT_LISTEN_TLS, "", 0, 0, 0,
	    "implicit-TLS (SMTPS) listeners, comma-separated ADDR:PORT; empty = none" },
	{ "server", "hostname", CT_STR, "", 0, 0, O(hostname),
	    "name in the banner and replies; empty = the system host name" },
	{ "server", "banner", CT_STR, "ESMTP smtpfault", 0, 0, O(banner),
	    "text after \"220 hostname\"" },
	{ "server", "pipelining", CT_BOOL, "yes", 0, 0, O(pipelining),
	    "advertise PIPELINING (RFC 2920)" },
	{ "server", "chunking", CT_BOOL, "yes", 0, 0, O(chunking),
	    "advertise CHUNKING and accept BDAT (RFC 3030)" },
	{ "server", "smtputf8", CT_BOOL, "yes", 0, 0, O(smtputf8),
	    "advertise SMTPUTF8 (RFC 6531)" },
	{ "server", "dsn", CT_BOOL, "yes", 0, 0, O(dsn),
	    "advertise DSN and accept its parameters (RFC 3461)" },
	{ "server", "8bitmime", CT_BOOL, "yes", 0, 0, O(eightbitmime),
	    "advertise 8BITMIME (RFC 6152)" },
	{ "server", "enhancedstatuscodes", CT_BOOL, "yes", 0, 0,
	    O(enhancedstatuscodes), "advertise and send enhanced status codes (RFC 2034)" },
	{ "server", "xclient", CT_BOOL, "no", 0, 0, O(xclient),
	    "TEST ONLY: loopback clients may claim another address with XCLIENT ADDR=" },

	{ "limits", "line_max", CT_LONG, "512", 64, 65536, O(line_max),
	    "command line length in octets, CRLF included (RFC 5321: 512)" },
	{ "limits", "text_line_max", CT_LONG, "1000", 0, 1048576,
	    O(text_line_max), "DATA line length, CRLF included; 0 = no limit (RFC 5321: 1000)" },
	{ "limits", "max_rcpts", CT_LONG, "100", 1, 100000, O(max_rcpts),
	    "recipients per message, then 452 4.5.3 (RFC 5321: at least 100)" },
	{ "limits", "max_msg_size", CT_SIZE, "10M", 1024, 4294967296.0,
	    O(max_msg_size), "message size, advertised with SIZE, then 552 5.3.4" },
	{ "limits", "max_errors", CT_LONG, "20", 1, 100000, O(max_errors),
	    "protocol errors per session, then 421 4.7.0 and close" },
	{ "limits", "max_msgs", CT_LONG, "0", 0, 100000000, O(max_msgs),
	    "messages per session, then 421 4.7.0; 0 = no limit" },
	{ "limits", "max_connections", CT_LONG, "10000", 1, 1000000,
	    O(max_connections), "concurrent sessions, then 421 4.3.2 at connect" },
	{ "limits", "max_per_client", CT_LONG, "0", 0, 1000000,
	    O(max_per_client), "concurrent sessions per client address, then 421 4.3.2; 0 = no limit" },
	{ "limits", "idle_timeout", CT_DUR, "300s", 0.01, 86400,
	    O(idle_timeout), "silence allowed while waiting for input (RFC 5321: 5 minutes)" },
	{ "limits", "command_timeout", CT_DUR, "300s", 0.01, 86400,
	    O(command_timeout), "deadline from a command's first byte to its CRLF; trickling does not extend it" },
	{ "limits", "min_data_rate", CT_LONG, "128", 0, 1000000000,
	    O(min_data_rate), "DATA/BDAT bytes per second required after min_rate_grace; 0 = off" },
	{ "limits", "min_rate_grace", CT_DUR, "30s", 0, 86400,
	    O(min_rate_grace), "time before min_data_rate is enforced" },
	{ "limits", "write_timeout", CT_DUR, "300s", 0.01, 86400,
	    O(write_timeout), "time a reply may wait for the client to read it" },
	{ "limits", "out_max", CT_SIZE, "256k", 4096, 67108864, O(out_max),
	    "queued output per session; input is not read while it is full" },
	{ "limits", "shutdown_grace", CT_DUR, "30s", 0, 3600,
	    O(shutdown_grace), "on SIGTERM, time a DATA in progress gets to finish" },

	{ "capture", "dir", CT_STR, "", 0, 0, O(capture_dir),
	    "Maildir for accepted messages; empty = do not keep messages" },
	{ "capture", "fsync", CT_BOOL, "yes", 0, 0, O(capture_fsync),
	    "fsync each message and new/ before answering 250" },

	{ "events", "file", CT_STR, "-", 0, 0, O(events_file),
	    "event stream (JSON lines): - = standard output, empty = off" },
	{ "events", "max_arg", CT_LONG, "256", 16, 65536, O(events_max_arg),
	    "client text in events is cut to this many bytes" },

	{ "tls", "starttls", CT_BOOL, "yes", 0, 0, O(starttls),
	    "advertise and accept STARTTLS (RFC 3207)" },
	{ "tls", "require_tls", CT_BOOL, "no", 0, 0, O(require_tls),
	    "answer MAIL before STARTTLS with 530 5.7.0" },
	{ "tls", "cert", CT_STR, "", 0, 0, O(tls_cert),
	    "PEM certificate (chain); empty = generate one for hostname at start" },
	{ "tls", "key", CT_STR, "", 0, 0, O(tls_key),
	    "PEM private key; empty = in the cert file" },
	{ "tls", "chain", CT_STR, "", 0, 0, O(tls_chain),
	    "PEM intermediate certificates sent after cert" },
	{ "tls", "min_version", CT_TLSVER, "TLSv1.2", 0, 0, O(tls_min_version),
	    "oldest protocol offered: TLSv1, TLSv1.1, TLSv1.2, TLSv1.3" },
	{ "tls", "max_version", CT_TLSVER, "", 0, 0, O(tls_max_version),
	    "newest protocol offered; empty = the newest OpenSSL has" },
	{ "tls", "ciphers", CT_STR, "", 0, 0, O(tls_ciphers),
	    "OpenSSL cipher list for TLS 1.2 and older; empty = OpenSSL's default" },
	{ "tls", "ciphersuites", CT_STR, "", 0, 0, O(tls_ciphersuites),
	    "TLS 1.3 cipher suites; empty = OpenSSL's default" },
	{ "tls", "handshake_timeout", CT_DUR, "30s", 0.01, 3600,
	    O(tls_handshake_timeout), "time a TLS handshake may take" },
	{ "tls", "ask_client_cert", CT_BOOL, "no", 0, 0, O(tls_ask_cert),
	    "request a client certificate (any is accepted; its subject is logged)" },
	{ "tls", "ca_out", CT_STR, "", 0, 0, O(tls_ca_out),
	    "write the generated CA certificate here (PEM) so clients can verify" },

	{ "control", "listen", CT_LISTEN_CTL, "", 0, 0, 0,
	    "HTTP control API and /metrics, ADDR:PORT (loopback); empty = off" },
	{ "control", "token", CT_STR, "", 0, 0, O(control_token),
	    "when set, every request needs Authorization: Bearer TOKEN" },
	{ "control", "events_ring", CT_LONG, "10000", 100, 10000000,
	    O(control_ring), "recent events kept in memory for /v1/events" },
	{ "control", "max_body", CT_SIZE, "1M", 1024, 67108864,
	    O(control_max_body), "largest request body (413 past it)" },

	{ "greylist", "profile", CT_STR, "postgrey", 0, 0, O(gl_profile),
	    "defaults of: postgrey, milter-greylist or spamd (keys below override)" },
	{ "greylist", "delay", CT_DUR, "300s", 0, 30 * 86400.0, O(gl_delay),
	    "how long a new triplet is deferred (postgrey 300s, milter-greylist 30m, spamd 25m)" },
	{ "greylist", "retry_window", CT_DUR, "2d", 1, 365 * 86400.0,
	    O(gl_retry_window), "a first retry later than this starts over (2d, 5d, 4h)" },
	{ "greylist", "max_age", CT_DUR, "35d", 1, 3650 * 86400.0,
	    O(gl_max_age), "entries unseen this long are dropped (35d, 1d, 36d)" },
	{ "greylist", "auto_whitelist", CT_LONG, "5", 0, 1000000,
	    O(gl_auto_whitelist), "passes after which a client skips greylisting; 0 = off" },
	{ "greylist", "awl_interval", CT_DUR, "1h", 0, 86400,
	    O(gl_awl_interval), "a client's passes count at most once per this" },
	{ "greylist", "netmask", CT_STR, "subnet", 0, 0, O(gl_netmask),
	    "client key: subnet (ipv4_cidr/ipv6_cidr) or host (the exact address)" },
	{ "greylist", "ipv4_cidr", CT_LONG, "24", 0, 32, O(gl_ipv4_cidr),
	    "IPv4 prefix length of the client network" },
	{ "greylist", "ipv6_cidr", CT_LONG, "64", 0, 128, O(gl_ipv6_cidr),
	    "IPv6 prefix length of the client network" },
	{ "greylist", "helo_in_key", CT_BOOL, "no", 0, 0, O(gl_helo_in_key),
	    "the HELO name is part of the triplet (spamd)" },
	{ "greylist", "stage", CT_STR, "rcpt", 0, 0, O(gl_stage),
	    "when greylist rules without a hook run: rcpt or data_end (spamd)" },
	{ "greylist", "reply", CT_STR, "451 4.7.1 <%r>: Recipient address "
	    "rejected: Greylisted, see http://postgrey.schweikert.ch/help/%D.html",
	    0, 0, O(gl_reply), "the deferral; %s = seconds left, %r recipient, %D its domain" },

	{ "faults", "scenario", CT_STR, "", 0, 0, O(scenario),
	    "scenario to load: a name from scenario_dir or a file; empty = none" },
	{ "faults", "scenario_dir", CT_STR, SCENARIO_DIR, 0, 0,
	    O(scenario_dir), "where scenario names are looked up (then ./conf/scenarios)" },
	{ "faults", "seed", CT_STR, "", 0, 0, O(seed),
	    "seed of the random generator; empty = from the clock (printed at start)" },
	{ "faults", "state_dir", CT_STR, "", 0, 0, O(state_dir),
	    "directory of the persistent state (LMDB); empty = in memory" },
	{ "faults", "hold_max", CT_DUR, "10m", 0.01, 30 * 86400.0,
	    O(hold_max), "how long a hang holds a session (a rule's hold overrides it)" },
	{ "faults", "state_max_age", CT_DUR, "35d", 60, 3650 * 86400.0,
	    O(state_max_age), "state records unseen this long are dropped" },
	{ "faults", "v4_netmask", CT_LONG, "24", 0, 32, O(v4_netmask),
	    "IPv4 prefix length of the client network in triplet keys" },
	{ "faults", "v6_netmask", CT_LONG, "64", 0, 128, O(v6_netmask),
	    "IPv6 prefix length of the client network in triplet keys" },
};

static const char *const sections[] = { "server", "limits", "capture",
	"events", "tls", "control", "greylist", "faults" };

/* What a greylist profile changes, for keys no file or option set. */
static const struct {
	const char	*key;
	const char	*milter, *spamd;
} gl_profiles[] = {
	{ "delay", "30m", "25m" },
	{ "retry_window", "5d", "4h" },
	{ "max_age", "1d", "36d" },
	{ "auto_whitelist", "0", "0" },
	{ "netmask", "host", "host" },
	{ "helo_in_key", "no", "yes" },
	{ "stage", "rcpt", "data_end" },
	{ "reply", "451 4.7.1 Greylisting in action, please come back in %s "
	    "seconds", "451 4.7.1 Temporary failure, please try again later." },
};

/* ---- errors ---- */

void
conf_errs_add(struct conf_errs *e, const char *fmt, ...)
{
	char buf[1200];
	va_list ap;
	char **m;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if ((m = realloc(e->msg, sizeof(*m) * (size_t)(e->n + 1))) == NULL)
		return;
	e->msg = m;
	if ((e->msg[e->n] = strdup(buf)) != NULL)
		e->n++;
}

void
conf_errs_print(const struct conf_errs *e, FILE *fp)
{
	int i;

	for (i = 0; i < e->n; i++)
		fprintf(fp, "smtpfault: %s\n", e->msg[i]);
}

void
conf_errs_free(struct conf_errs *e)
{
	int i;

	for (i = 0; i < e->n; i++)
		free(e->msg[i]);
	free(e->msg);
	e->msg = NULL;
	e->n = 0;
}

/* ---- values ---- */

int
conf_parse_listen(const char *s, const char *kind, struct conf_listen *l,
    const char **why)
{
	char host[64];
	const char *colon, *h, *port;
	long p;
	size_t hl;

	memset(l, 0, sizeof(*l));
	if (strlen(s) >= sizeof(l->text)) {
		*why = "address too long";
		return -1;
	}
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (rb == NULL || rb[1] != ':') {
			*why = "expected [IPV6]:PORT";
			return -1;
		}
		h = s + 1;
		hl = (size_t)(rb - h);
		port = rb + 2;
	} else {
		if ((colon = strrchr(s, ':')) == NULL) {
			*why = "expected ADDR:PORT";
			return -1;
		}
		h = s;
		hl = (size_t)(colon - s);
		port = colon + 1;
	}
	if (hl >= sizeof(host)) {
		*why = "address too long";
		return -1;
	}
	memcpy(host, h, hl);
	host[hl] = '\0';
	if (util_parse_long(port, 0, 65535, &p) == -1) {
		*why = "port must be 0..65535";
		return -1;
	}
	if (hl == 0 || strcmp(host, "*") == 0)
		strcpy(host, s[0] == '[' ? "::" : "0.0.0.0");
	if (strchr(host, ':') != NULL) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&l->sa;

		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) {
			*why = "not an IPv6 address";
			return -1;
		}
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)p);
		l->salen = sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&l->sa;

		if (strcmp(host, "localhost") == 0)
			strcpy(host, "127.0.0.1");
		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
			*why = "not an IPv4 address (use [ADDR] for IPv6)";
			return -1;
		}
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)p);
		l->salen = sizeof(*sin);
	}
	snprintf(l->kind, sizeof(l->kind), "%s", kind);
	snprintf(l->text, sizeof(l->text), "%s", s);
	return 0;
}

/* Split a comma/space list of listeners into c->listen (or tls_listen). */
static int
set_listen(struct conf *c, const char *val, int tls, const char **why)
{
	struct conf_listen *v = tls ? c->tls_listen : c->listen;
	char buf[1100], *tok, *save = NULL;
	int n = 0;

	if (strlen(val) >= sizeof(buf)) {
		*why = "value too long";
		return -1;
	}
	strcpy(buf, val);
	for (tok = strtok_r(buf, ", \t", &save); tok;
	    tok = strtok_r(NULL, ", \t", &save)) {
		if (n == CONF_MAX_LISTEN) {
			*why = "too many listeners";
			return -1;
		}
		if (conf_parse_listen(tok, tls ? "smtps" : "smtp", &v[n],
		    why) == -1)
			return -1;
		n++;
	}
	if (tls) {
		c->ntls_listen = n;
		return 0;
	}
	if (n == 0) {
		*why = "at least one listener is needed";
		return -1;
	}
	c->nlisten = n;
	return 0;
}

static const char *
choices_of(const struct ckey *k)
{
	size_t i;

	for (i = 0; i < NELEM(choice_keys); i++)
		if (strcmp(choice_keys[i].section, k->section) == 0 &&
		    strcmp(choice_keys[i].key, k->key) == 0)
			return choice_keys[i].choices;
	return NULL;
}

static int
choice_ok(const char *choices, const char *val)
{
	size_t n = strlen(val);
	const char *p = choices;

	while (n > 0 && (p = strstr(p, val)) != NULL) {
		if ((p == choices || p[-1] == '|') && (p[n] == '\0' ||
		    p[n] == '|'))
			return 1;
		p += n;
	}
	return 0;
}

/* Parse val for key k into c.  0, or -1 with *why. */
static int
set_value(struct conf *c, const struct ckey *k, const char *val,
    const char **why)
{
	char *base = (char *)c;
	uint64_t sz;
	double d;
	long l;
	int b;

	switch (k->type) {
	case CT_LONG:
		if (util_parse_long(val, (long)k->min, (long)k->max, &l) == -1) {
			*why = val[0] == '0' && val[1] != '\0' ?
			    "leading zeros are not allowed (no octal)" :
			    "expected a decimal number in range";
			return -1;
		}
		*(long *)(void *)(base + k->off) = l;
		break;
	case CT_SIZE:
		if (util_parse_size(val, &sz) == -1 || (double)sz < k->min ||
		    (double)sz > k->max) {
			*why = "expected a size in range (e.g. 512k, 10M)";
			return -1;
		}
		*(uint64_t *)(void *)(base + k->off) = sz;
		break;
	case CT_DUR:
		if (util_parse_dur(val, &d) == -1 || d < k->min || d > k->max) {
			*why = "expected a duration in range (e.g. 250ms, 30s, 5m)";
			return -1;
		}
		*(double *)(void *)(base + k->off) = d;
		break;
	case CT_BOOL:
		if (util_parse_bool(val, &b) == -1) {
			*why = "expected yes or no";
			return -1;
		}
		*(int *)(void *)(base + k->off) = b;
		break;
	case CT_STR: {
		char **dst = (char **)(void *)(base + k->off), *nv;

		const char *choices = choices_of(k);

		if (choices != NULL && !choice_ok(choices, val)) {
			static char msg[160];

			snprintf(msg, sizeof(msg), "expected one of: %s",
			    choices);
			*why = msg;
			return -1;
		}
		if (strcmp(k->key, "reply") == 0 &&
		    strcmp(k->section, "greylist") == 0) {
			char *e = NULL, *t = NULL;
			int code = 0;

			if (scn_parse_reply(val, &code, &e, &t) == -1 ||
			    code < 400) {
				free(e);
				free(t);
				*why = "expected \"4xx X.Y.Z text\"";
				return -1;
			}
			free(e);
			free(t);
		}

		if ((nv = strdup(val)) == NULL) {
			*why = "out of memory";
			return -1;
		}
		free(*dst);
		*dst = nv;
		break;
	}
	case CT_LISTEN:
		return set_listen(c, val, 0, why);
	case CT_LISTEN_TLS:
		return set_listen(c, val, 1, why);
	case CT_LISTEN_CTL:
		if (val[0] == '\0') {
			c->has_control = 0;
			return 0;
		}
		if (conf_parse_listen(val, "control", &c->control_listen,
		    why) == -1)
			return -1;
		c->has_control = 1;
		return 0;
	case CT_TLSVER: {
		static const char *const ok[] = { "", "TLSv1", "TLSv1.0",
		    "TLSv1.1", "TLSv1.2", "TLSv1.3" };
		char **dst = (char **)(void *)(base + k->off), *nv;
		size_t i;

		for (i = 0; i < NELEM(ok); i++)
			if (strcasecmp(val, ok[i]) == 0)
				break;
		if (i == NELEM(ok)) {
			*why = "expected TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3";
			return -1;
		}
		if ((nv = strdup(ok[i])) == NULL) {
			*why = "out of memory";
			return -1;
		}
		free(*dst);
		*dst = nv;
		break;
	}
	}
	return 0;
}

static void
mark_set(struct conf *c, const struct ckey *k)
{
	size_t i = (size_t)(k - keys);

	c->set[i / 64] |= 1ULL << (i % 64);
}

static int
is_set(const struct conf *c, const struct ckey *k)
{
	size_t i = (size_t)(k - keys);

	return (c->set[i / 64] >> (i % 64)) & 1;
}

static const struct ckey *
find_key(const char *section, const char *key)
{
	size_t i;

	for (i = 0; i < NELEM(keys); i++)
		if (strcasecmp(keys[i].section, section) == 0 &&
		    strcasecmp(keys[i].key, key) == 0)
			return &keys[i];
	return NULL;
}

struct conf *
conf_new(void)
{
	struct conf *c = xcalloc(1, sizeof(*c));
	const char *why;
	size_t i;

	for (i = 0; i < NELEM(keys); i++)
		if (set_value(c, &keys[i], keys[i].def, &why) == -1)
			PANIC("bad built-in default");
	c->scn = scn_new();
	c->refs = 1;
	return c;
}

void
conf_free(struct conf *c)
{
	size_t i;

	if (c == NULL || --c->refs > 0)
		return;
	for (i = 0; i < NELEM(keys); i++)
		if (keys[i].type == CT_STR || keys[i].type == CT_TLSVER)
			free(*(char **)(void *)((char *)c + keys[i].off));
	scn_free(c->scn);
	free(c->gl_ecode);
	free(c->gl_text);
	free(c->scenario_file);
	free(c->file);
	free(c);
}

int
conf_set(struct conf *c, const char *section, const char *key,
    const char *val, struct conf_errs *errs)
{
	const struct ckey *k = find_key(section, key);
	const char *why;

	if (k == NULL) {
		conf_errs_add(errs, "[%s] %s: unknown key", section, key);
		return -1;
	}
	if (set_value(c, k, val, &why) == -1) {
		conf_errs_add(errs, "[%s] %s = \"%.200s\": %s", section, key,
		    val, why);
		return -1;
	}
	mark_set(c, k);
	return 0;
}

/* Apply the greylist profile to keys left unset, then validate. */
static void
check_greylist(struct conf *c, struct conf_errs *errs)
{
	int milter = strcmp(c->gl_profile, "milter-greylist") == 0;
	int spamd = strcmp(c->gl_profile, "spamd") == 0;
	const char *why;
	size_t i;

	if (!milter && !spamd && strcmp(c->gl_profile, "postgrey") != 0) {
		conf_errs_add(errs, "[greylist] profile = \"%.40s\": expected "
		    "postgrey, milter-greylist or spamd", c->gl_profile);
		return;
	}
	/* every file ends in a check, so a later profile must also undo
	 * an earlier one: postgrey's values are the keys' defaults */
	for (i = 0; i < NELEM(gl_profiles); i++) {
		const struct ckey *k = find_key("greylist", gl_profiles[i].key);

		if (k != NULL && !is_set(c, k))
			set_value(c, k, milter ? gl_profiles[i].milter :
			    spamd ? gl_profiles[i].spamd : k->def, &why);
	}
	if (strcmp(c->gl_netmask, "subnet") != 0 &&
	    strcmp(c->gl_netmask, "host") != 0)
		conf_errs_add(errs, "[greylist] netmask = \"%.40s\": expected "
		    "subnet or host", c->gl_netmask);
	if (strcmp(c->gl_stage, "rcpt") != 0 &&
	    strcmp(c->gl_stage, "data_end") != 0)
		conf_errs_add(errs, "[greylist] stage = \"%.40s\": expected "
		    "rcpt or data_end", c->gl_stage);
	free(c->gl_ecode);
	free(c->gl_text);
	c->gl_ecode = c->gl_text = NULL;
	if (scn_parse_reply(c->gl_reply, &c->gl_code, &c->gl_ecode,
	    &c->gl_text) == -1 || c->gl_code < 400)
		conf_errs_add(errs, "[greylist] reply = \"%.80s\": expected "
		    "\"4xx X.Y.Z text\"", c->gl_reply);
}

int
conf_is_loopback(const struct sockaddr_storage *sa)
{
	if (sa->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)(const void *)sa)->
		    sin_addr.s_addr) >> 24) == 127;
	if (sa->ss_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)
		    (const void *)sa)->sin6_addr);
	return 0;
}

int
conf_check(struct conf *c, struct conf_errs *errs)
{
	int n = errs->n;

	if ((long)c->max_rcpts < 1)
		conf_errs_add(errs, "[limits] max_rcpts: must be at least 1");
	if (c->capture_dir && strchr(c->capture_dir, '\n'))
		conf_errs_add(errs, "[capture] dir: bad path");
	if (c->hostname == NULL || c->hostname[0] == '\0') {
		char host[256];

		if (gethostname(host, sizeof(host)) == -1 || host[0] == '\0')
			strcpy(host, "localhost");
		host[sizeof(host) - 1] = '\0';
		free(c->hostname);
		c->hostname = strdup(host);
	}
	if (c->seed != NULL && c->seed[0] != '\0') {
		const char *p = c->seed;

		while (*p >= '0' && *p <= '9')
			p++;
		if (*p != '\0' || p - c->seed > 19)
			conf_errs_add(errs, "[faults] seed = \"%.40s\": expected "
			    "a decimal number of at most 19 digits", c->seed);
	}
	check_greylist(c, errs);
	if (c->has_control && !conf_is_loopback(&c->control_listen.sa) &&
	    (c->control_token == NULL || c->control_token[0] == '\0'))
		conf_errs_add(errs, "[control] listen = %s: not a loopback "
		    "address; set [control] token to allow it",
		    c->control_listen.text);
	if (c->hostname && strpbrk(c->hostname, " \t\r\n"))
		conf_errs_add(errs, "[server] hostname: must not contain "
		    "blanks");
	return errs->n == n ? 0 : -1;
}

/* ---- file loading ---- */

struct linemap {
	char	 section[128];
	char	 key[128];
	int	 line;
};

struct scan {
	struct linemap	*map;
	int		 n;
};

static void
trim_lower(char *s)
{
	char *p = s, *e;

	while (isspace((unsigned char)*p))
		p++;
	memmove(s, p, strlen(p) + 1);
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	for (p = s; *p; p++)
		*p = (char)tolower((unsigned char)*p);
}

/* Map each "[section]" and "key =" to its physical line number. */
static void
scan_lines(const char *file, struct scan *sc)
{
	char line[2048], section[128] = "";
	int lineno = 0;
	FILE *fp;

	if ((fp = fopen(file, "r")) == NULL)
		return;
	while (fgets(line, sizeof(line), fp) != NULL) {
		char *p = line, *eq, *rb;
		struct linemap *m;

		lineno++;
		while (isspace((unsigned char)*p))
			p++;
		if (*p == ';' || *p == '#' || *p == '\0')
			continue;
		m = realloc(sc->map, sizeof(*m) * (size_t)(sc->n + 1));
		if (m == NULL)
			break;
		sc->map = m;
		m = &sc->map[sc->n];
		memset(m, 0, sizeof(*m));
		m->line = lineno;
		if (*p == '[' && (rb = strchr(p, ']')) != NULL) {
			*rb = '\0';
			snprintf(section, sizeof(section), "%.127s", p + 1);
			trim_lower(section);
			snprintf(m->section, sizeof(m->section), "%s", section);
			sc->n++;
		} else if ((eq = strchr(p, '=')) != NULL) {
			*eq = '\0';
			snprintf(m->section, sizeof(m->section), "%s", section);
			snprintf(m->key, sizeof(m->key), "%.127s", p);
			trim_lower(m->key);
			sc->n++;
		}
	}
	fclose(fp);
}

/* Last line where section/key (key NULL: the section header) stands. */
static int
line_of(const struct scan *sc, const char *section, const char *key)
{
	int i, line = 0;

	for (i = 0; i < sc->n; i++) {
		const struct linemap *m = &sc->map[i];

		if (strcmp(m->section, section) != 0)
			continue;
		if (key == NULL ? m->key[0] == '\0' :
		    strcmp(m->key, key) == 0) {
			line = m->line;
			if (key == NULL)
				break;	/* first header of the section */
		}
	}
	return line;
}

static struct conf_errs *ini_errs;
static const char *ini_file;

/*
 * iniparser reports "iniparser: syntax error in FILE (N):\n-> TEXT\n";
 * rewrite it as "FILE:N: TEXT".
 */
static int
ini_errback(const char *fmt, ...)
{
	char buf[1400], *p, *nl;
	long line = 0;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (ini_errs == NULL)
		return 0;
	if ((p = strrchr(buf, '(')) != NULL)
		line = strtol(p + 1, NULL, 10);
	for (nl = buf; (nl = strchr(nl, '\n')) != NULL;)
		*nl = ' ';
	p = buf;
	if (strncmp(p, "iniparser: ", 11) == 0)
		p += 11;
	if (line > 0)
		conf_errs_add(ini_errs, "%s:%ld: %s", ini_file, line, p);
	else
		conf_errs_add(ini_errs, "%s: %s", ini_file, p);
	return 0;
}

static int
known_section(const char *s)
{
	size_t i;

	for (i = 0; i < NELEM(sections); i++)
		if (strcmp(s, sections[i]) == 0)
			return 1;
	return 0;
}

static void
load_section(struct conf *c, dictionary *d, const char *sec,
    const struct scan *sc, const char *file, struct conf_errs *errs)
{
	int i, nk = iniparser_getsecnkeys(d, sec);
	const char **ks;

	if (nk <= 0)
		return;
	ks = calloc((size_t)nk, sizeof(*ks));
	if (ks == NULL || iniparser_getseckeys(d, sec, ks) == NULL) {
		free(ks);
		return;
	}
	for (i = 0; i < nk; i++) {
		const char *full = ks[i], *key = full + strlen(sec) + 1;
		const char *val = iniparser_getstring(d, full, "");
		const struct ckey *k = find_key(sec, key);
		const char *why;

		if (k == NULL) {
			conf_errs_add(errs, "%s:%d: [%s] %s: unknown key", file,
			    line_of(sc, sec, key), sec, key);
			continue;
		}
		if (set_value(c, k, val, &why) == -1)
			conf_errs_add(errs, "%s:%d: [%s] %s = \"%.200s\": %s",
			    file, line_of(sc, sec, key), sec, key, val, why);
		else
			mark_set(c, k);
	}
	free(ks);
}

struct rule_ctx {
	const struct scan	*sc;
	struct conf_errs	*errs;
};

static int
rule_line(void *ctx, const char *sec, const char *key)
{
	return line_of(((struct rule_ctx *)ctx)->sc, sec, key);
}

static void rule_err(void *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
rule_err(void *ctx, const char *fmt, ...)
{
	char buf[1200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	conf_errs_add(((struct rule_ctx *)ctx)->errs, "%s", buf);
}

/* A "[rule NAME]" section goes to the scenario, in file order. */
static void
load_rule(struct conf *c, dictionary *d, const char *sec,
    const struct scan *sc, const char *file, struct conf_errs *errs)
{
	int i, nk = iniparser_getsecnkeys(d, sec);
	struct rule_ctx rc = { sc, errs };
	const char **ks = NULL, **vs = NULL;
	char dir[4096], *slash;
	struct scn_src src;

	snprintf(dir, sizeof(dir), "%s", file);
	if ((slash = strrchr(dir, '/')) != NULL)
		*slash = '\0';
	else
		strcpy(dir, ".");
	src.file = file;
	src.basedir = dir;
	src.line = rule_line;
	src.err = rule_err;
	src.ctx = &rc;
	if (nk > 0) {
		ks = calloc((size_t)nk, sizeof(*ks));
		vs = calloc((size_t)nk, sizeof(*vs));
		if (ks == NULL || vs == NULL ||
		    iniparser_getseckeys(d, sec, ks) == NULL) {
			free(ks);
			free(vs);
			return;
		}
		for (i = 0; i < nk; i++)
			vs[i] = iniparser_getstring(d, ks[i], "");
	}
	scn_add_rule(c->scn, sec, ks, vs, nk > 0 ? nk : 0, &src);
	free(ks);
	free(vs);
}

char *
conf_find_scenario(const struct conf *c, const char *name, const char *exe)
{
	char path[4096], exedir[4096], *slash;
	const char *dirs[4];
	int i, n = 0;

	if (strchr(name, '/') != NULL || (strlen(name) > 4 &&
	    strcmp(name + strlen(name) - 4, ".ini") == 0))
		return access(name, R_OK) == 0 ? strdup(name) : NULL;
	if (c->scenario_dir && c->scenario_dir[0])
		dirs[n++] = c->scenario_dir;
	dirs[n++] = "conf/scenarios";
	if (exe != NULL) {
		/* build/smtpfault finds ../conf/scenarios of its tree */
		snprintf(exedir, sizeof(exedir), "%s", exe);
		if ((slash = strrchr(exedir, '/')) != NULL) {
			*slash = '\0';
			if (strlen(exedir) + 20 < sizeof(exedir)) {
				strcat(exedir, "/../conf/scenarios");
				dirs[n++] = exedir;
			}
		}
	}
	dirs[n++] = SCENARIO_DIR;
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s.ini", dirs[i], name);
		if (access(path, R_OK) == 0)
			return strdup(path);
	}
	return NULL;
}

int
conf_load(struct conf *c, const char *file, struct conf_errs *errs)
{
	struct scan sc = { NULL, 0 };
	dictionary *d;
	int i, nsec, before = errs->n;

	if (access(file, R_OK) == -1) {
		conf_errs_add(errs, "%s: cannot read: %s", file,
		    strerror(errno));
		return -1;
	}
	ini_errs = errs;
	ini_file = file;
	iniparser_set_error_callback(ini_errback);
	d = iniparser_load(file);
	iniparser_set_error_callback(NULL);
	ini_errs = NULL;
	if (d == NULL) {
		if (errs->n == before)
			conf_errs_add(errs, "%s: cannot parse", file);
		return -1;
	}
	scan_lines(file, &sc);
	for (i = 0; i < sc.n; i++) {
		const struct linemap *m = &sc.map[i];

		if (m->section[0] == '\0' && m->key[0] != '\0')
			conf_errs_add(errs, "%s:%d: %s: key outside any "
			    "section", file, m->line, m->key);
		else if (m->key[0] == '\0' && strchr(m->section, ':'))
			conf_errs_add(errs, "%s:%d: [%s]: section names "
			    "cannot contain ':'", file, m->line, m->section);
	}
	nsec = iniparser_getnsec(d);
	for (i = 0; i < nsec; i++) {
		const char *sec = iniparser_getsecname(d, i);

		if (strncmp(sec, "rule ", 5) == 0) {
			load_rule(c, d, sec, &sc, file, errs);
			continue;
		}
		if (!known_section(sec)) {
			conf_errs_add(errs, "%s:%d: [%s]: unknown section",
			    file, line_of(&sc, sec, NULL), sec);
			continue;
		}
		load_section(c, d, sec, &sc, file, errs);
	}
	free(c->file);
	c->file = strdup(file);
	iniparser_freedict(d);
	free(sc.map);
	conf_check(c, errs);
	return errs->n == before ? 0 : -1;
}

void
conf_dump_defaults(FILE *fp)
{
	const char *sec = "";
	size_t i;

	fprintf(fp, "; smtpfault.ini - every key at its built-in default.\n"
	    "; Uncomment a line to change it.  Durations: 250ms, 30s, 5m, 2h;\n"
	    "; sizes: 512k, 10M; numbers are decimal.  Regenerate with\n"
	    "; `smtpfault --dump-config`.\n\n");
	for (i = 0; i < NELEM(keys); i++) {
		if (strcmp(sec, keys[i].section) != 0) {
			sec = keys[i].section;
			fprintf(fp, "%s[%s]\n", i ? "\n" : "", sec);
		}
		fprintf(fp, "; %s\n;%s = %s\n", keys[i].help, keys[i].key,
		    keys[i].def);
	}
}
