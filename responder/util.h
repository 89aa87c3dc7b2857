/*
 * util.h - small helpers shared by the responder and the fault engine
 *
 * DESCRIPTION  container_of, start-up allocators, strict number, duration
 *              and size parsers, and escaping of client bytes for logs.
 * OWNERSHIP    Parsers write through out-pointers only; nothing is kept.
 * ERRORS       Parsers return 0 or -1 and never touch errno's meaning.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef UTIL_H
#define UTIL_H

#include <stddef.h>
#include <stdint.h>

#define container_of(p, T, m) ((T *)(void *)((char *)(p) - offsetof(T, m)))
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

#define PANIC(cond)                                                     \
	do {                                                            \
		if (cond)                                               \
			util_panic(__FILE__, __LINE__, #cond);          \
	} while (0)

void util_panic(const char *file, int line, const char *what)
    __attribute__((noreturn));

/* Abort on failure: start-up and tests only. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
char *xstrdup(const char *s);

/*
 * Strict parsers.  The whole string must be consumed; leading/trailing
 * blanks are not allowed.  Each returns 0, or -1 on syntax or range error.
 *
 * util_parse_long:  decimal only; "042" (leading zero) and "0x1f" are
 *                   errors.
 * util_parse_dur:   "300", "300s", "5m", "250ms", "2h", "1d", "1.5s" ->
 *                   seconds; a bare number means seconds.
 * util_parse_size:  "100", "512k", "10M", "1G" (binary multiples, case
 *                   insensitive, optional trailing "B") -> bytes.
 * util_parse_bool:  yes/no, true/false, on/off, 1/0 (case-insensitive).
 * util_parse_prob:  "0".."1" or "20%" -> 0.0..1.0.
 */
int util_parse_long(const char *s, long min, long max, long *out);
int util_parse_dur(const char *s, double *out);
int util_parse_size(const char *s, uint64_t *out);
int util_parse_bool(const char *s, int *out);
int util_parse_prob(const char *s, double *out);

/*
 * Copy at most srclen bytes of client data into dst as printable ASCII:
 * bytes outside 0x20..0x7e become \xNN, backslash becomes \\.  The output
 * is cut at dstlen-1 bytes (never mid-escape) and NUL-terminated.
 * Returns the number of bytes written, not counting the NUL.
 */
size_t util_escape(char *dst, size_t dstlen, const char *src, size_t srclen);

/* Copy src lower-cased into dst (len bytes with the NUL, cut to fit). */
void	 util_lower(char *dst, size_t len, const char *src);

/* Case-insensitive glob (* and ?) match of a NUL-terminated string. */
int util_glob(const char *pat, const char *s);

/* Wall clock in seconds with microseconds. */
double util_now(void);

#endif
