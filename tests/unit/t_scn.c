/*
 * t_scn.c - build scenarios for the unit tests (see t_scn.h)
 *
 * DESCRIPTION  Shared by test_scenario.c and test_fault.c.  Rules go
 *              through scn_add_rule() exactly as conf.c passes them.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "t_scn.h"
#include "unit.h"

struct t_ctx {
	const char	**keys;
	int		  n;
	struct t_errs	 *e;
};

static int	 t_line(void *, const char *, const char *);
static void	 t_err(void *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

static int
t_line(void *ctx, const char *sec, const char *key)
{
	struct t_ctx	*c = ctx;
	size_t		 sl = strlen(sec);
	int		 i;

	if (key == NULL)
		return T_SCN_SECLINE;
	for (i = 0; i < c->n; i++)
		if (strncmp(c->keys[i], sec, sl) == 0 &&
		    c->keys[i][sl] == ':' && strcmp(c->keys[i] + sl + 1,
		    key) == 0)
			return T_SCN_SECLINE + 1 + i;
	return 0;
}

static void
t_err(void *ctx, const char *fmt, ...)
{
	struct t_ctx	*c = ctx;
	va_list		 ap;

	if (c->e->n < T_SCN_MAXMSG) {
		va_start(ap, fmt);
		vsnprintf(c->e->msg[c->e->n], sizeof(c->e->msg[0]), fmt, ap);
		va_end(ap);
	}
	c->e->n++;
}

int
t_scn_add(struct scenario *s, const struct t_rule *r, struct t_errs *e)
{
	char		 sec[128], kbuf[T_SCN_MAXKV][192];
	const char	*keys[T_SCN_MAXKV], *vals[T_SCN_MAXKV];
	struct t_ctx	 c = { keys, 0, e };
	struct scn_src	 src;
	int		 n;

	snprintf(sec, sizeof(sec), "rule %s", r->name);
	for (n = 0; n < T_SCN_MAXKV && r->kv[n] != NULL; n++) {
		const char *eq = strchr(r->kv[n], '=');

		if (eq == NULL)
			eq = r->kv[n] + strlen(r->kv[n]);
		snprintf(kbuf[n], sizeof(kbuf[n]), "%s:%.*s", sec,
		    (int)(eq - r->kv[n]), r->kv[n]);
		keys[n] = kbuf[n];
		vals[n] = *eq == '=' ? eq + 1 : "";
	}
	c.n = n;
	src.file = T_SCN_FILE;
	src.basedir = t_data_dir();
	src.line = t_line;
	src.err = t_err;
	src.ctx = &c;
	return scn_add_rule(s, sec, keys, vals, n, &src);
}

const char *
t_errs_join(const struct t_errs *e)
{
	static char	 buf[2048];
	int		 i;

	buf[0] = '\0';
	for (i = 0; i < e->n && i < T_SCN_MAXMSG; i++)
		snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s%s",
		    i ? " | " : "", e->msg[i]);
	if (e->n == 0)
		snprintf(buf, sizeof(buf), "(no messages)");
	return buf;
}

struct scenario *
t_scn_build(const struct t_rule *rules, size_t n, char *why, size_t wl)
{
	struct scenario	*s = scn_new();
	struct t_errs	 e;
	size_t		 i;

	memset(&e, 0, sizeof(e));
	for (i = 0; i < n && rules[i].name != NULL; i++) {
		if (t_scn_add(s, &rules[i], &e) == -1) {
			snprintf(why, wl, "rule %s refused: %s", rules[i].name,
			    t_errs_join(&e));
			scn_free(s);
			return NULL;
		}
	}
	if (wl > 0)
		why[0] = '\0';
	return s;
}
