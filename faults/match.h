/*
 * match.h - matchers used by scenario rules: CIDR lists, glob lists,
 *           numeric ranges and time windows (no I/O except list files)
 *
 * DESCRIPTION  Values come from INI strings: "10.0.0.0/8, ::1" or
 *              "@conf/lists/exchange-online.cidr" (a list file, one entry
 *              a line, '#' comments; for globs the path needs a '/', as
 *              "@example.com" is a domain pattern there); globs "*@example.com, *.outbound.*"; ranges
 *              "1-3", ">=5", "<2", "3"; windows "<24h", ">=2m", "5m-1h".
 * OWNERSHIP    Each list owns its entries; free with the matching _free.
 * ERRORS       Parsers return -1 and write "FILE:LINE: reason" (list
 *              files) or a reason into err.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef MATCH_H
#define MATCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct cidr {
	int		 family;	/* AF_INET or AF_INET6 */
	unsigned char	 addr[16];
	int		 bits;
};

struct cidr_list {
	struct cidr	*v;
	size_t		 n;
};

struct glob_list {
	char		**v;
	size_t		 n;
};

/* Inclusive range of unsigned values; hi = UINT64_MAX for "no upper". */
struct range {
	uint64_t	 lo, hi;
};

/* Inclusive window of seconds. */
struct window {
	double		 lo, hi;
};

int	 cidr_parse(const char *s, struct cidr *c);
int	 cidr_list_parse(struct cidr_list *l, const char *val,
    const char *basedir, char *err, size_t errlen);
int	 cidr_list_match(const struct cidr_list *l,
    const struct sockaddr_storage *sa);
void	 cidr_list_free(struct cidr_list *l);

int	 glob_list_parse(struct glob_list *l, const char *val,
    const char *basedir, char *err, size_t errlen);
int	 glob_list_match(const struct glob_list *l, const char *s);
void	 glob_list_free(struct glob_list *l);

int	 range_parse(const char *s, struct range *r);
int	 range_match(const struct range *r, uint64_t v);
int	 window_parse(const char *s, struct window *w);
int	 window_match(const struct window *w, double v);

/* Mask an address to a network (/24, /64 ...) for triplet keys. */
void	 addr_mask(const struct sockaddr_storage *sa, int v4bits, int v6bits,
    char *out, size_t outlen);

#endif
