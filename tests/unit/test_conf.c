/*
 * test_conf.c - unit tests for conf.[ch]: defaults, INI loading, errors
 *
 * DESCRIPTION  Fixtures live in tests/unit/data/.  Every error message
 *              must read "FILE:LINE: [section] key: reason" with the line
 *              of the offending key, and all errors of a file must be
 *              reported, not just the first.
 *
 * SPDX-License-Identifier: MIT
 */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "conf.h"
#include "unit.h"
#include "util.h"

#define MB	(1024ULL * 1024)

static void
test_defaults(void)
{
	struct conf		*c = conf_new();
	struct conf_errs	 errs = { NULL, 0 };

	T_CHECK(c != NULL, "conf_new returns a config");
	if (c == NULL)
		return;
	T_CHECK(c->file == NULL, "defaults: no file");
	T_CHECKF(c->line_max == 512, "defaults: line_max %ld, want 512",
	    c->line_max);
	T_CHECKF(c->text_line_max == 1000,
	    "defaults: text_line_max %ld, want 1000", c->text_line_max);
	T_CHECKF(c->max_rcpts == 100, "defaults: max_rcpts %ld, want 100",
	    c->max_rcpts);
	T_CHECKF(c->max_msg_size == 10485760,
	    "defaults: max_msg_size %llu, want 10485760",
	    (unsigned long long)c->max_msg_size);
	T_CHECKF(fabs(c->idle_timeout - 300) < 1e-9,
	    "defaults: idle_timeout %g, want 300", c->idle_timeout);
	T_CHECKF(c->nlisten >= 1 && c->nlisten <= CONF_MAX_LISTEN,
	    "defaults: nlisten %d", c->nlisten);
	T_CHECKF(conf_check(c, &errs) == 0 && errs.n == 0,
	    "defaults pass conf_check (%d errors, first %s)", errs.n,
	    errs.n ? t_shows(errs.msg[0]) : "-");
	conf_errs_free(&errs);
	conf_free(c);
}

static void
test_load_good(void)
{
	struct conf		*c = conf_new(), *d = conf_new();
	struct conf_errs	 errs = { NULL, 0 };
	char			 path[4096];
	int			 rc;

	if (c == NULL || d == NULL) {
		T_CHECK(0, "good: conf_new");
		return;
	}
	snprintf(path, sizeof(path), "%s", t_data_path("good.ini"));
	rc = conf_load(c, path, &errs);
	T_CHECKF(rc == 0 && errs.n == 0, "good: rc %d, %d errors, first %s",
	    rc, errs.n, errs.n ? t_shows(errs.msg[0]) : "-");
	if (rc != 0)
		goto out;
	T_CHECKF(c->file != NULL && strcmp(c->file, path) == 0,
	    "good: file %s", t_shows(c->file));
	T_CHECKF(c->hostname != NULL &&
	    strcmp(c->hostname, "mx.test.example") == 0, "good: hostname %s",
	    t_shows(c->hostname));
	T_CHECKF(c->banner != NULL &&
	    strcmp(c->banner, "ESMTP test ; with semicolon") == 0,
	    "good: quoted banner %s", t_shows(c->banner));
	T_CHECKF(c->nlisten == 1 &&
	    strcmp(c->listen[0].text, "127.0.0.1:2526") == 0,
	    "good: listen replaces the default: %d, first %s", c->nlisten,
	    c->nlisten > 0 ? t_shows(c->listen[0].text) : "-");
	T_CHECKF(c->pipelining == 0, "good: pipelining %d", c->pipelining);
	T_CHECKF(c->eightbitmime == 0, "good: 8bitmime %d", c->eightbitmime);
	T_CHECKF(c->line_max == 1000, "good: line_max %ld", c->line_max);
	T_CHECKF(c->text_line_max == 0, "good: text_line_max %ld",
	    c->text_line_max);
	T_CHECKF(c->max_rcpts == 42, "good: max_rcpts 042 -> %ld, want 42",
	    c->max_rcpts);
	T_CHECKF(c->max_msg_size == 20 * MB, "good: max_msg_size %llu",
	    (unsigned long long)c->max_msg_size);
	T_CHECKF(fabs(c->idle_timeout - 300) < 1e-9, "good: idle_timeout %g",
	    c->idle_timeout);
	T_CHECKF(fabs(c->command_timeout - 1.5) < 1e-9,
	    "good: command_timeout %g", c->command_timeout);
	/* keys the file does not name keep their defaults */
	T_CHECKF(c->max_errors == d->max_errors &&
	    fabs(c->data_timeout - d->data_timeout) < 1e-9 &&
	    c->out_max == d->out_max && c->chunking == d->chunking,
	    "good: unnamed keys keep defaults (max_errors %ld/%ld)",
	    c->max_errors, d->max_errors);
out:
	conf_errs_free(&errs);
	conf_free(c);
	conf_free(d);
}

/*
 * Bad fixtures: each expected message is "PATH:LINE: [sect] key: why"
 * (conf.h); the value may be quoted after the key: [sect] key = "v": why.
 * line 0 = any line; key NULL = just check "PATH:LINE:" and that text
 * appears.
 */
struct want_err {
	int		 line;
	const char	*sect;
	const char	*key;
	const char	*text;		/* extra text that must appear */
};

static const struct {
	const char	*name;
	const char	*file;
	int		 nerr;		/* minimum number of messages */
	struct want_err	 want[8];
} bad_cases[] = {
	{ "unknown section", "bad_section.ini", 1,
	    { { 0, NULL, NULL, "nosuch" } } },
	{ "unknown key", "bad_key.ini", 1,
	    { { 3, "limits", "no_such_key", NULL } } },
	{ "bad number 042x", "bad_number.ini", 1,
	    { { 2, "limits", "max_rcpts", NULL } } },
	{ "getint traps 10k and 0x10", "getint_traps.ini", 2,
	    { { 2, "limits", "max_rcpts", NULL },
	      { 3, "limits", "max_errors", NULL } } },
	{ "duration out of range", "dur_range.ini", 2,
	    { { 2, "limits", "idle_timeout", NULL },
	      { 3, "limits", "command_timeout", NULL } } },
	{ "iniparser syntax error", "syntax.ini", 1,
	    { { 3, NULL, NULL, NULL } } },
	{ "several errors all reported", "multi.ini", 6,
	    { { 3, "server", "pipelining", NULL },
	      { 7, "limits", "line_max", NULL },
	      { 8, "limits", "max_rcpts", NULL },
	      { 9, "limits", "idle_timeout", NULL },
	      { 10, "limits", "max_msg_size", NULL },
	      { 11, "limits", "bogus", NULL } } },
	{ "line of the key, not a comment or a longer key", "lines.ini", 1,
	    { { 4, "limits", "line_max", NULL } } },
	{ "upper-case section and key", "case.ini", 1,
	    { { 2, "limits", "line_max", NULL } } },
	{ "key in the wrong section", "wrong_section.ini", 1,
	    { { 3, "server", "line_max", NULL } } },
	{ "line over iniparser's 1024 limit", "longline.ini", 1,
	    { { 2, NULL, NULL, NULL } } },
	{ "key before any section", "nosection.ini", 1,
	    { { 1, NULL, NULL, "line_max" } } },
	{ "colon in section name", "colon.ini", 1,
	    { { 0, NULL, NULL, "extra" } } },
	{ "bad listen address", "bad_listen.ini", 1,
	    { { 3, "server", "listen", NULL } } },
};

/* Does some message match w?  Sets *bad to a non-matching reason. */
static int
find_msg(const struct conf_errs *e, const char *path,
    const struct want_err *w)
{
	char	 pre[4200];
	int	 i;
	size_t	 pl;

	for (i = 0; i < e->n; i++) {
		const char *m = e->msg[i];

		if (m == NULL)
			continue;
		if (w->key != NULL) {
			const char *rest, *why;

			snprintf(pre, sizeof(pre), "%s:%d: [%s] %s", path,
			    w->line, w->sect, w->key);
			pl = strlen(pre);
			if (strncasecmp(m, pre, pl) != 0)
				continue;
			/* "[s] k: reason", or "[s] k = \"v\": reason" */
			rest = m + pl;
			if (strncmp(rest, ": ", 2) != 0 &&
			    strncmp(rest, " = ", 3) != 0)
				continue;
			if ((why = strstr(rest, ": ")) == NULL ||
			    why[2] == '\0')
				continue;
		} else if (w->line != 0) {
			snprintf(pre, sizeof(pre), "%s:%d: ", path, w->line);
			pl = strlen(pre);
			if (strncmp(m, pre, pl) != 0 || m[pl] == '\0')
				continue;
		} else {
			snprintf(pre, sizeof(pre), "%s:", path);
			if (strncmp(m, pre, strlen(pre)) != 0)
				continue;
		}
		if (w->text != NULL && strstr(m, w->text) == NULL)
			continue;
		return 1;
	}
	return 0;
}

static void
test_load_bad(void)
{
	size_t i, k;

	for (i = 0; i < NELEM(bad_cases); i++) {
		struct conf		*c = conf_new();
		struct conf_errs	 errs = { NULL, 0 };
		char			 path[4096], all[1024] = "";
		int			 rc, j;

		if (c == NULL) {
			T_CHECK(0, "bad: conf_new");
			return;
		}
		snprintf(path, sizeof(path), "%s",
		    t_data_path(bad_cases[i].file));
		rc = conf_load(c, path, &errs);
		for (j = 0; j < errs.n && strlen(all) < 700; j++)
			snprintf(all + strlen(all), sizeof(all) - strlen(all),
			    "%s%s", j ? " | " : "", t_shows(errs.msg[j]));
		T_CHECKF(rc == -1, "load %s: rc %d, want -1", bad_cases[i].name,
		    rc);
		T_CHECKF(errs.n >= bad_cases[i].nerr,
		    "load %s: %d messages, want >= %d: %s", bad_cases[i].name,
		    errs.n, bad_cases[i].nerr, all);
		for (k = 0; k < NELEM(bad_cases[i].want) &&
		    (bad_cases[i].want[k].line != 0 ||
		    bad_cases[i].want[k].text != NULL); k++) {
			const struct want_err *w = &bad_cases[i].want[k];

			T_CHECKF(find_msg(&errs, path, w),
			    "load %s: no \"%s:%d: [%s] %s: reason\" in: %s",
			    bad_cases[i].name, bad_cases[i].file, w->line,
			    w->sect ? w->sect : "*", w->key ? w->key : "*",
			    all);
		}
		conf_errs_free(&errs);
		conf_free(c);
	}
}

static void
test_load_empty(void)
{
	struct conf		*c = conf_new(), *d = conf_new();
	struct conf_errs	 errs = { NULL, 0 };
	char			 path[4096];
	int			 rc;

	if (c == NULL || d == NULL) {
		T_CHECK(0, "empty: conf_new");
		return;
	}
	snprintf(path, sizeof(path), "%s", t_data_path("empty.ini"));
	rc = conf_load(c, path, &errs);
	T_CHECKF(rc == 0 && errs.n == 0, "empty file: rc %d, %d errors, "
	    "first %s", rc, errs.n, errs.n ? t_shows(errs.msg[0]) : "-");
	T_CHECK(c->line_max == d->line_max && c->max_rcpts == d->max_rcpts &&
	    c->nlisten == d->nlisten && c->pipelining == d->pipelining,
	    "empty file: defaults unchanged");
	conf_errs_free(&errs);
	conf_free(c);
	conf_free(d);
}

static void
test_load_missing(void)
{
	struct conf		*c = conf_new();
	struct conf_errs	 errs = { NULL, 0 };
	char			 path[4096];
	int			 rc;

	if (c == NULL) {
		T_CHECK(0, "missing: conf_new");
		return;
	}
	snprintf(path, sizeof(path), "%s", t_data_path("no-such-file.ini"));
	rc = conf_load(c, path, &errs);
	T_CHECKF(rc == -1, "missing file: rc %d, want -1", rc);
	T_CHECKF(errs.n >= 1 && errs.msg[0] != NULL &&
	    strstr(errs.msg[0], path) != NULL,
	    "missing file: message %s does not name %s",
	    errs.n ? t_shows(errs.msg[0]) : "(none)", path);
	conf_errs_free(&errs);
	T_CHECK(errs.n == 0 && errs.msg == NULL,
	    "conf_errs_free resets the list");
	conf_free(c);
}

/* conf_dump_defaults() output loads cleanly and changes nothing. */
static void
test_dump_roundtrip(void)
{
	struct conf		*c = conf_new(), *d = conf_new();
	struct conf_errs	 errs = { NULL, 0 };
	char			 path[] = "/tmp/unit-conf-XXXXXX";
	FILE			*fp;
	int			 fd, rc;

	if (c == NULL || d == NULL || (fd = mkstemp(path)) == -1) {
		T_CHECK(0, "dump: setup");
		return;
	}
	if ((fp = fdopen(fd, "w")) == NULL) {
		T_CHECK(0, "dump: fdopen");
		close(fd);
		unlink(path);
		return;
	}
	conf_dump_defaults(fp);
	fclose(fp);
	rc = conf_load(c, path, &errs);
	T_CHECKF(rc == 0 && errs.n == 0,
	    "dumped defaults load: rc %d, %d errors, first %s", rc, errs.n,
	    errs.n ? t_shows(errs.msg[0]) : "-");
	if (rc == 0)
		T_CHECK(c->line_max == d->line_max &&
		    c->text_line_max == d->text_line_max &&
		    c->max_rcpts == d->max_rcpts &&
		    c->max_msg_size == d->max_msg_size &&
		    c->idle_timeout == d->idle_timeout &&
		    c->out_max == d->out_max && c->nlisten == d->nlisten,
		    "dumped defaults equal conf_new()");
	unlink(path);
	conf_errs_free(&errs);
	conf_free(c);
	conf_free(d);
}

static void
test_set(void)
{
	struct conf		*c = conf_new();
	struct conf_errs	 errs = { NULL, 0 };
	long			 before;
	int			 rc;

	if (c == NULL) {
		T_CHECK(0, "set: conf_new");
		return;
	}
	rc = conf_set(c, "limits", "line_max", "2000", &errs);
	T_CHECKF(rc == 0 && c->line_max == 2000 && errs.n == 0,
	    "set line_max 2000: rc %d value %ld", rc, c->line_max);
	rc = conf_set(c, "server", "pipelining", "off", &errs);
	T_CHECKF(rc == 0 && c->pipelining == 0,
	    "set pipelining off: rc %d value %d", rc, c->pipelining);
	rc = conf_set(c, "limits", "max_msg_size", "1M", &errs);
	T_CHECKF(rc == 0 && c->max_msg_size == MB,
	    "set max_msg_size 1M: rc %d value %llu", rc,
	    (unsigned long long)c->max_msg_size);

	before = c->line_max;
	rc = conf_set(c, "limits", "line_max", "10k", &errs);
	T_CHECKF(rc == -1, "set line_max 10k rejected: rc %d", rc);
	T_CHECKF(c->line_max == before, "set line_max 10k: value changed to "
	    "%ld", c->line_max);
	T_CHECKF(errs.n == 1 && errs.msg[0] != NULL &&
	    strstr(errs.msg[0], "[limits] line_max") != NULL,
	    "set line_max 10k: message %s",
	    errs.n ? t_shows(errs.msg[0]) : "(none)");
	rc = conf_set(c, "limits", "line_max", "0x400", &errs);
	T_CHECKF(rc == -1, "set line_max 0x400 rejected: rc %d", rc);
	rc = conf_set(c, "limits", "line_max", "63", &errs);
	T_CHECKF(rc == -1, "set line_max below minimum: rc %d", rc);
	rc = conf_set(c, "limits", "nosuch", "1", &errs);
	T_CHECKF(rc == -1, "set unknown key: rc %d", rc);
	rc = conf_set(c, "nosuch", "line_max", "1000", &errs);
	T_CHECKF(rc == -1, "set unknown section: rc %d", rc);
	T_CHECKF(errs.n == 5, "set: one message per error, got %d", errs.n);
	conf_errs_free(&errs);
	conf_free(c);
}

/* conf_parse_listen */

static const struct {
	const char	*in;
	int		 rc;
	int		 family;	/* 0: AF_INET or AF_INET6 */
	const char	*addr;		/* NULL: the wildcard */
	int		 port;
} listen_cases[] = {
	{ "127.0.0.1:2525", 0, AF_INET, "127.0.0.1", 2525 },
	{ "[::1]:0", 0, AF_INET6, "::1", 0 },
	{ ":25", 0, 0, NULL, 25 },
	{ "0.0.0.0:65535", 0, AF_INET, "0.0.0.0", 65535 },
	{ "[2001:db8::1]:2525", 0, AF_INET6, "2001:db8::1", 2525 },
	{ "host:99999", -1, 0, NULL, 0 },
	{ "127.0.0.1:99999", -1, 0, NULL, 0 },
	{ "127.0.0.1:65536", -1, 0, NULL, 0 },
	{ "1.2.3.4", -1, 0, NULL, 0 },
	{ "127.0.0.1:", -1, 0, NULL, 0 },
	{ "127.0.0.1:abc", -1, 0, NULL, 0 },
	{ "127.0.0.1:25x", -1, 0, NULL, 0 },
	{ "127.0.0.1:-1", -1, 0, NULL, 0 },
	{ "127.0.0.1:0x19", -1, 0, NULL, 0 },
	{ "127.0.0.1: 25", -1, 0, NULL, 0 },
	{ "[::1]", -1, 0, NULL, 0 },
	{ "[::1:25", -1, 0, NULL, 0 },
	{ "999.1.1.1:25", -1, 0, NULL, 0 },
	{ "", -1, 0, NULL, 0 },
	{ ":", -1, 0, NULL, 0 },
};

static void
test_parse_listen(void)
{
	size_t i;

	for (i = 0; i < NELEM(listen_cases); i++) {
		struct conf_listen	 l;
		const char		*why = NULL, *in = listen_cases[i].in;
		char			 a[INET6_ADDRSTRLEN] = "";
		int			 rc, fam, port = -1;

		memset(&l, 0, sizeof(l));
		rc = conf_parse_listen(in, "smtp", &l, &why);
		T_CHECKF(rc == listen_cases[i].rc, "listen %s: rc %d, want %d",
		    t_shows(in), rc, listen_cases[i].rc);
		if (rc == -1) {
			T_CHECKF(why != NULL && *why != '\0',
			    "listen %s: no reason given", t_shows(in));
			continue;
		}
		if (listen_cases[i].rc != 0)
			continue;
		fam = l.sa.ss_family;
		if (fam == AF_INET) {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&l.sa;

			inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
			port = ntohs(s4->sin_port);
			T_CHECKF(l.salen == sizeof(*s4), "listen %s: salen %u",
			    t_shows(in), (unsigned)l.salen);
		} else if (fam == AF_INET6) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&l.sa;

			inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
			port = ntohs(s6->sin6_port);
			T_CHECKF(l.salen == sizeof(*s6), "listen %s: salen %u",
			    t_shows(in), (unsigned)l.salen);
		}
		T_CHECKF(listen_cases[i].family ? fam == listen_cases[i].family
		    : (fam == AF_INET || fam == AF_INET6),
		    "listen %s: family %d", t_shows(in), fam);
		T_CHECKF(port == listen_cases[i].port, "listen %s: port %d",
		    t_shows(in), port);
		if (listen_cases[i].addr != NULL)
			T_CHECKF(strcmp(a, listen_cases[i].addr) == 0,
			    "listen %s: address %s", t_shows(in), a);
		else
			T_CHECKF(strcmp(a, "0.0.0.0") == 0 ||
			    strcmp(a, "::") == 0,
			    "listen %s: address %s, want the wildcard",
			    t_shows(in), a);
		T_CHECKF(strcmp(l.kind, "smtp") == 0 &&
		    strcmp(l.text, in) == 0, "listen %s: kind %s text %s",
		    t_shows(in), t_shows(l.kind), t_shows(l.text));
	}
}

CU_TestInfo conf_tests[] = {
	{ "defaults", test_defaults },
	{ "load good file", test_load_good },
	{ "load bad files", test_load_bad },
	{ "load empty file", test_load_empty },
	{ "load missing file", test_load_missing },
	{ "dump defaults round trip", test_dump_roundtrip },
	{ "conf_set", test_set },
	{ "parse_listen", test_parse_listen },
	CU_TEST_INFO_NULL,
};
