/*
 * timeline.h - delivery attempts rebuilt from the event stream
 *
 * DESCRIPTION  The model behind `smtpfault report` and GET /v1/timeline:
 *              events in, per-message and per-client groups of attempts
 *              out, each group judged (delivered, rejected, deferred,
 *              gave-up) and checked for duplicates.
 * OWNERSHIP    struct rep owns every group, attempt and string;
 *              timeline_free() releases them.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef TIMELINE_H
#define TIMELINE_H

#include <stdio.h>

struct sess;

struct attempt {
	double		 t;
	char		 time[40];
	char		 session[16];
	char		 client[64];
	char		 hook[16];
	int		 code;
	char		*reply;
	const char	*result;	/* static string */
	char		*msgid;
	int		 own_id;	/* msgid seen in this attempt */
	char		*rule;		/* last fault rule of the session */
};

struct group {
	char		*from;
	char		*rcpts;		/* sorted, comma-separated */
	char		*client;	/* connection groups */
	char		*msgid;
	struct attempt	*a;
	int		 na;
	const char	*outcome;
	int		 stored;	/* copies kept (accepted or unanswered) */
	int		 duplicate;
};


struct rep {
	struct sess	*s;
	int		 ns;
	struct group	*g;
	int		 ng;
	struct group	*c;		/* connection groups */
	int		 nc;
	double		 end;
	long		 bad_lines;
};

/*
 * Read every event of fp into r (zeroed by the caller), close what is
 * still open, group, and judge "gave up" at now (0: the last event) with
 * the quiet period.  0, or -1 on a read error (r is usable anyway).
 */
int	 timeline_load(struct rep *r, FILE *fp, double now, double quiet);
void	 timeline_free(struct rep *r);
/* "2026-11-30T10:10:20.9Z" -> Unix seconds; 0 when it is not one. */
double	 timeline_parse_time(const char *s);

#endif
