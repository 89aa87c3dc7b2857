/*
 * events.h - the event stream: one JSON object per line
 *
 * DESCRIPTION  What users and CI consume (docs/events.md).  An event is
 *              built with evt_begin(), fields, evt_end(); output is
 *              buffered and flushed once per loop iteration and at exit.
 * OWNERSHIP    One global stream; strings are copied (escaped) at once.
 * LIMITS       Client-supplied strings are truncated to events_max_arg.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef EVENTS_H
#define EVENTS_H

#include <stddef.h>
#include <stdint.h>

/* "-" = stdout, "" or NULL = off, else a file opened for append. */
int	 evt_open(const char *path, size_t max_arg);
void	 evt_close(void);
void	 evt_flush(void);
int	 evt_enabled(void);

/* Begin an event: {"time":"...","event":NAME,"seq":N ... */
void	 evt_begin(const char *name);
void	 evt_str(const char *key, const char *val);
/* "a b" as one string (a may be NULL: just b). */
void	 evt_str2(const char *key, const char *a, const char *b);
/* Client bytes: escaped as JSON and truncated to max_arg bytes. */
void	 evt_strn(const char *key, const char *val, size_t len);
void	 evt_int(const char *key, long long v);
void	 evt_uint(const char *key, uint64_t v);
void	 evt_bool(const char *key, int v);
void	 evt_num(const char *key, double v);
/* Raw JSON value (already valid JSON). */
void	 evt_raw(const char *key, const char *json);
void	 evt_end(void);

/*
 * Keep the last cap events in memory for the control API (0 = off);
 * notify is called after each new one.  evt_ring_get() copies pointers
 * to up to limit lines with seq > since (oldest first) into lines/seqs;
 * they stay valid until the next event.
 */
void	 evt_ring_init(size_t cap, void (*notify)(void));
void	 evt_ring_free(void);
void	 evt_ring_notify(void (*notify)(void));
size_t	 evt_ring_get(uint64_t since, size_t limit, const char **lines,
    uint64_t *seqs);
uint64_t evt_last_seq(void);

/* Append a JSON string literal of s (len bytes) to a caller buffer;
 * returns bytes needed (like snprintf).  Used for recipient arrays. */
size_t	 evt_json_quote(char *dst, size_t dstlen, const char *s, size_t len);

#endif
