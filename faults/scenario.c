/*
 * scenario.c - scenario rules: load and validate "[rule NAME]" sections
 *
 * DESCRIPTION  See scenario.h and docs/scenarios.md.  Header and body
 *              patterns are POSIX extended regular expressions, matched
 *              case-insensitively, one message line at a time.
 *
 * SPDX-License-Identifier: MIT
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "scenario.h"
#include "util.h"

static const char *const hook_names[FH__COUNT] = {
	[FH_CONNECT] = "connect", [FH_HELO] = "helo",
	[FH_STARTTLS] = "starttls", [FH_AUTH] = "auth", [FH_MAIL] = "mail",
	[FH_RCPT] = "rcpt", [FH_DATA] = "data", [FH_DATA_END] = "data_end",
	[FH_RSET] = "rset", [FH_QUIT] = "quit",
};

static const char *const act_names[FA__COUNT] = {
	[FA_NONE] = "none", [FA_REPLY] = "reply", [FA_DELAY] = "delay",
	[FA_HANG] = "hang", [FA_CLOSE] = "close", [FA_RESET] = "reset",
	[FA_TARPIT] = "tarpit", [FA_ACCEPT] = "accept",
	[FA_DISCARD] = "discard", [FA_DROP_AFTER_DATA] = "drop_after_data",
	[FA_DISCONNECT_AFTER_BYTES] = "disconnect_after_bytes",
	[FA_TLS_ABORT] = "tls_abort", [FA_TLS_RESET] = "tls_reset",
	[FA_TLS_STALL] = "tls_stall", [FA_TLS_FAULT] = "tls_fault",
	[FA_GREYLIST] = "greylist",
};

const char *const scn_tls_names[] = {
	"good", "expired", "not_yet_valid", "wrong_host", "self_signed",
	"unknown_ca", "tls1", "tls1_1", "weak_ciphers", NULL,
};

int
scn_tls_index(const char *name)
{
	int i;

	for (i = 0; scn_tls_names[i] != NULL; i++)
		if (strcasecmp(name, scn_tls_names[i]) == 0)
			return i;
	return -1;
}

const char *
scn_hook_name(enum fault_hook h)
{
	return h < FH__COUNT ? hook_names[h] : "?";
}

const char *
scn_act_name(enum fault_act a)
{
	return a < FA__COUNT ? act_names[a] : "?";
}

struct scenario *
scn_new(void)
{
	return xcalloc(1, sizeof(struct scenario));
}

static void
rule_free(struct fault_rule *r)
{
	glob_list_free(&r->listener);
	glob_list_free(&r->helo);
	glob_list_free(&r->from);
	glob_list_free(&r->to);
	cidr_list_free(&r->client);
	if (r->has & RM_HEADER)
		regfree(&r->header);
	if (r->has & RM_BODY)
		regfree(&r->body);
	free(r->name);
	free(r->ecode);
	free(r->text);
	free(r->file);
	free(r);
}

void
scn_free(struct scenario *s)
{
	size_t i;

	if (s == NULL)
		return;
	for (i = 0; i < s->n; i++)
		rule_free(s->v[i]);
	free(s->v);
	free(s);
}

struct fault_rule *
scn_find(struct scenario *s, const char *name)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (strcasecmp(s->v[i]->name, name) == 0)
			return s->v[i];
	return NULL;
}

int
scn_parse_reply(const char *s, int *code, char **ecode, char **text)
{
	const char *p = s;
	char *t, *o;
	long c;
	char num[4];

	*ecode = *text = NULL;
	while (*p == ' ')
		p++;
	if (!isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]) ||
	    !isdigit((unsigned char)p[2]) || (p[3] != ' ' && p[3] != '\0'))
		return -1;
	memcpy(num, p, 3);
	num[3] = '\0';
	if (util_parse_long(num, 200, 599, &c) == -1)
		return -1;
	*code = (int)c;
	p += 3;
	while (*p == ' ')
		p++;
	/* enhanced code: class.subject.detail, class matching the reply */
	if (p[0] == num[0] && p[1] == '.' && isdigit((unsigned char)p[2])) {
		const char *q = p + 2;

		while (isdigit((unsigned char)*q))
			q++;
		if (*q == '.' && isdigit((unsigned char)q[1])) {
			q++;
			while (isdigit((unsigned char)*q))
				q++;
			if (*q == ' ' || *q == '\0') {
				*ecode = xcalloc(1, (size_t)(q - p) + 1);
				memcpy(*ecode, p, (size_t)(q - p));
				p = q;
				while (*p == ' ')
					p++;
			}
		}
	}
	/* "\n" in the INI value separates the lines of a multi-line reply */
	t = o = xmalloc(strlen(p) + 1);
	while (*p) {
		if (p[0] == '\\' && p[1] == 'n') {
			*o++ = '\n';
			p += 2;
		} else if ((unsigned char)*p < 0x20) {
			free(t);
			free(*ecode);
			*ecode = NULL;
			return -1;
		} else {
			*o++ = *p++;
		}
	}
	*o = '\0';
	*text = t;
	return 0;
}

static int
parse_hooks(const char *v, unsigned *out)
{
	char buf[256], *tok, *save = NULL;
	unsigned m = 0;
	int i;

	if (strlen(v) >= sizeof(buf))
		return -1;
	strcpy(buf, v);
	for (tok = strtok_r(buf, ", \t", &save); tok;
	    tok = strtok_r(NULL, ", \t", &save)) {
		if (strcasecmp(tok, "any") == 0) {
			m |= FH_ANY;
			continue;
		}
		for (i = 0; i < FH__COUNT; i++)
			if (strcasecmp(tok, hook_names[i]) == 0)
				break;
		if (i == FH__COUNT)
			return -1;
		m |= FH_BIT(i);
	}
	if (m == 0)
		return -1;
	*out = m;
	return 0;
}

/* Set one key of a rule; returns NULL or the reason it is wrong. */
static const char *
rule_key(struct fault_rule *r, const char *key, const char *val,
    const struct scn_src *src, char *why, size_t wl)
{
	const char *bd = src->basedir;
	uint64_t sz;
	long l;
	int i, b;

#define GLOB(field, bit) do { \
	glob_list_free(&r->field); \
	if (glob_list_parse(&r->field, val, bd, why, wl) == -1) \
		return why; \
	r->has |= (bit); \
} while (0)
	if (strcmp(key, "hook") == 0) {
		if (parse_hooks(val, &r->hooks) == -1)
			return "expected hook names: connect, helo, starttls, "
			    "auth, mail, rcpt, data, data_end, rset, quit, any";
	} else if (strcmp(key, "listener") == 0) {
		GLOB(listener, RM_LISTENER);
	} else if (strcmp(key, "client") == 0) {
		cidr_list_free(&r->client);
		if (cidr_list_parse(&r->client, val, bd, why, wl) == -1)
			return why;
		r->has |= RM_CLIENT;
	} else if (strcmp(key, "helo") == 0) {
		GLOB(helo, RM_HELO);
	} else if (strcmp(key, "from") == 0) {
		GLOB(from, RM_FROM);
	} else if (strcmp(key, "to") == 0) {
		GLOB(to, RM_TO);
	} else if (strcmp(key, "size_over") == 0) {
		if (util_parse_size(val, &r->size_over) == -1)
			return "expected a size (e.g. 100k, 10M)";
		r->has |= RM_SIZE;
	} else if (strcmp(key, "header") == 0 || strcmp(key, "body") == 0) {
		int hdr = key[0] == 'h';
		regex_t *re = hdr ? &r->header : &r->body;
		unsigned bit = hdr ? RM_HEADER : RM_BODY;
		int rc;

		if (r->has & bit)
			regfree(re);
		r->has &= ~bit;
		if ((rc = regcomp(re, val, REG_EXTENDED | REG_ICASE |
		    REG_NOSUB)) != 0) {
			char e[160];

			regerror(rc, re, e, sizeof(e));
			snprintf(why, wl, "bad regular expression: %s", e);
			return why;
		}
		r->has |= bit;
	} else if (strcmp(key, "tls") == 0) {
		if (util_parse_bool(val, &b) == -1)
			return "expected yes or no";
		r->tls = b;
		r->has |= RM_TLS;
	} else if (strcmp(key, "attempt") == 0) {
		if (range_parse(val, &r->attempt) == -1)
			return "expected N, N-M, >=N, <=N, >N or <N";
		r->has |= RM_ATTEMPT;
	} else if (strcmp(key, "since_first_seen") == 0) {
		if (window_parse(val, &r->since) == -1)
			return "expected <DUR, <=DUR, >DUR, >=DUR or DUR-DUR";
		r->has |= RM_SINCE;
	} else if (strcmp(key, "probability") == 0) {
		if (util_parse_prob(val, &r->prob) == -1)
			return "expected 0 to 1, or a percentage";
		r->has |= RM_PROB;
	} else if (strcmp(key, "times") == 0) {
		if (util_parse_long(val, 1, 1000000000L, &r->times) == -1)
			return "expected a count of at least 1";
		r->has |= RM_TIMES;
	} else if (strcmp(key, "enabled") == 0) {
		if (util_parse_bool(val, &r->enabled) == -1)
			return "expected yes or no";
	} else if (strcmp(key, "action") == 0) {
		for (i = 1; i < FA__COUNT; i++)
			if (strcasecmp(val, act_names[i]) == 0)
				break;
		if (i == FA__COUNT)
			return "unknown action (reply, delay, hang, close, "
			    "reset, tarpit, accept, discard, drop_after_data, "
			    "disconnect_after_bytes, tls_abort, tls_reset, "
			    "tls_stall, tls_fault, greylist)";
		r->act = (enum fault_act)i;
	} else if (strcmp(key, "reply") == 0) {
		free(r->ecode);
		free(r->text);
		if (scn_parse_reply(val, &r->code, &r->ecode, &r->text) == -1)
			return "expected \"CODE [X.Y.Z] text\" with CODE "
			    "200-599";
	} else if (strcmp(key, "delay") == 0 || strcmp(key, "jitter") == 0 ||
	    strcmp(key, "hold") == 0 || strcmp(key, "tarpit_interval") == 0) {
		double d, *dst = key[0] == 'd' ? &r->delay : key[0] == 'j' ?
		    &r->jitter : key[0] == 'h' ? &r->hold : &r->tarpit_interval;

		if (util_parse_dur(val, &d) == -1 || d > 30 * 86400.0)
			return "expected a duration (e.g. 250ms, 2s, 5m)";
		*dst = d;
	} else if (strcmp(key, "tls_fault") == 0) {
		if ((r->tls_fault = scn_tls_index(val)) <= 0)
			return "expected expired, not_yet_valid, wrong_host, "
			    "self_signed, unknown_ca, tls1, tls1_1 or "
			    "weak_ciphers";
		if (r->act == FA_NONE)
			r->act = FA_TLS_FAULT;
	} else if (strcmp(key, "tarpit_bytes") == 0) {
		if (util_parse_long(val, 1, 65536, &r->tarpit_bytes) == -1)
			return "expected 1 to 65536";
	} else if (strcmp(key, "bytes") == 0) {
		if (util_parse_size(val, &sz) == -1)
			return "expected a size";
		r->after_bytes = sz;
	} else {
		(void)l;
		return "unknown key";
	}
	return NULL;
#undef GLOB
}

/* Cross-key checks once all keys of a rule are read. */
static const char *
rule_check(struct fault_rule *r)
{
	const unsigned msg_hooks = FH_BIT(FH_DATA_END);

	if (r->act == FA_NONE)
		r->act = r->code ? FA_REPLY : r->delay > 0 ? FA_DELAY : FA_NONE;
	if (r->act == FA_NONE)
		return "no action: set action, reply or delay";
	if (r->act == FA_REPLY && r->code == 0)
		return "action reply needs reply = CODE X.Y.Z text";
	if (r->act == FA_DELAY && r->delay <= 0)
		return "action delay needs delay = DURATION";
	if ((r->has & (RM_HEADER | RM_BODY)) && (r->hooks & ~msg_hooks))
		return "header and body match only at hook data_end";
	if ((r->act == FA_DISCARD || r->act == FA_DROP_AFTER_DATA) &&
	    (r->hooks & ~msg_hooks))
		return "discard and drop_after_data work only at hook data_end";
	if (r->act == FA_DISCONNECT_AFTER_BYTES &&
	    (r->hooks & ~FH_BIT(FH_DATA)))
		return "disconnect_after_bytes works only at hook data";
	if (r->act == FA_GREYLIST && r->hooks == FH_ANY) {
		/* no hook named: [greylist] stage decides, at run time */
		r->hooks = FH_BIT(FH_RCPT) | FH_BIT(FH_DATA_END);
		r->stage_auto = 1;
	}
	if (r->act == FA_GREYLIST &&
	    (r->hooks & ~(FH_BIT(FH_RCPT) | FH_BIT(FH_DATA_END))))
		return "greylist works only at hook rcpt or data_end";
	if (r->act >= FA_TLS_ABORT && r->act <= FA_TLS_FAULT &&
	    (r->hooks & ~FH_BIT(FH_STARTTLS)))
		return "TLS actions work only at hook starttls";
	if (r->act == FA_TLS_FAULT && r->tls_fault <= 0)
		return "action tls_fault needs tls_fault = NAME";
	if (r->act == FA_TARPIT && r->tarpit_interval <= 0)
		r->tarpit_interval = 1;
	if (r->act == FA_TARPIT && r->tarpit_bytes <= 0)
		r->tarpit_bytes = 1;
	if (r->code >= 200 && r->code < 400 &&
	    (r->hooks & FH_BIT(FH_CONNECT)) && r->code != 220)
		return "a connect reply must be 220, 4xx or 5xx";
	return NULL;
}

int
scn_add_rule(struct scenario *s, const char *sec, const char **keys,
    const char **vals, int n, const struct scn_src *src)
{
	const char *name = sec + 5;	/* after "rule " */
	struct fault_rule *r, **v;
	char why[512];
	const char *bad;
	int i, errs = 0;

	while (*name == ' ')
		name++;
	if (*name == '\0') {
		src->err(src->ctx, "%s:%d: [%s]: a rule needs a name", src->file,
		    src->line(src->ctx, sec, NULL), sec);
		return -1;
	}
	if (scn_find(s, name) != NULL) {
		src->err(src->ctx, "%s:%d: [%s]: duplicate rule name", src->file,
		    src->line(src->ctx, sec, NULL), sec);
		return -1;
	}
	r = xcalloc(1, sizeof(*r));
	r->name = xstrdup(name);
	r->hooks = FH_ANY;
	r->enabled = 1;
	r->file = xstrdup(src->file);
	r->line = src->line(src->ctx, sec, NULL);
	for (i = 0; i < n; i++) {
		const char *key = keys[i] + strlen(sec) + 1;

		if ((bad = rule_key(r, key, vals[i], src, why, sizeof(why))) !=
		    NULL) {
			src->err(src->ctx, "%s:%d: [%s] %s = \"%.200s\": %s",
			    src->file, src->line(src->ctx, sec, key), sec, key,
			    vals[i], bad);
			errs++;
		}
	}
	if (errs == 0 && (bad = rule_check(r)) != NULL) {
		src->err(src->ctx, "%s:%d: [%s]: %s", src->file, r->line, sec,
		    bad);
		errs++;
	}
	if (errs > 0) {
		rule_free(r);
		return -1;
	}
	v = realloc(s->v, sizeof(*v) * (s->n + 1));
	if (v == NULL) {
		rule_free(r);
		return -1;
	}
	s->v = v;
	r->index = (int)s->n;
	s->v[s->n++] = r;
	/* every fired rule reports its attempt number, so any rule at all
	 * means the hooks count attempts */
	s->uses_state = 1;
	if (r->has & (RM_HEADER | RM_BODY))
		s->uses_content = 1;
	return 0;
}
