/*
 * log.h - diagnostic log on standard error
 *
 * DESCRIPTION  One line per message, "smtpfault: " prefix, key=value
 *              bodies.  The user-facing event stream is events.[ch].
 * ERRORS       fatal()/fatalx() exit(2): only before the loop starts.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef LOG_H
#define LOG_H

#include <stdarg.h>

extern int log_verbose;

void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

#endif
