/*
 * unit.h - shared helpers for the CUnit unit tests
 *
 * DESCRIPTION  T_CHECK()/T_CHECKF() record a CUnit assertion whose failure
 *              line carries the table case name (and, for T_CHECKF, what
 *              was expected and what came back) instead of the stringified
 *              C expression.  Each test_<module>.c exports one
 *              CU_TestInfo <module>_tests[], declared here for main.c.
 * OWNERSHIP    t_show() returns a pointer into a small ring of static
 *              buffers: valid for the next few t_show() calls only.
 *              t_data_path() returns a static buffer, valid until the
 *              next call, and so does t_data_dir().
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef UNIT_H
#define UNIT_H

#include <stddef.h>
#include <sys/socket.h>

#include <CUnit/CUnit.h>

/* One assertion; the case name is what CUnit prints on failure. */
#define T_CHECK(ok, name)                                               \
	CU_assertImplementation((ok) ? CU_TRUE : CU_FALSE, __LINE__,    \
	    (name), __FILE__, __func__, CU_FALSE)

/* Same, with a printf-style message built only when the check fails. */
#define T_CHECKF(ok, ...)                                               \
	t_checkf((ok) ? 1 : 0, __LINE__, __FILE__, __func__, __VA_ARGS__)

void	 t_checkf(int ok, unsigned line, const char *file, const char *func,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Printable copy of n bytes (C escapes) for failure messages; NULL ok. */
const char *t_show(const char *p, size_t n);
const char *t_shows(const char *s);

/* Remember argv[0] so fixtures are found from any working directory. */
void	 t_set_argv0(const char *argv0);
/* Path of a fixture file in tests/unit/data/. */
const char *t_data_path(const char *name);
/* The fixture directory itself, without a trailing '/' (static). */
const char *t_data_dir(void);

/* Fill *sa from an IPv4 or IPv6 address text; 0, or -1 if not one. */
int	 t_sa(const char *addr, struct sockaddr_storage *sa);

/* A fresh directory under /tmp (mkdtemp) and its recursive removal. */
int	 t_tmpdir(char *buf, size_t len, const char *tag);
int	 t_rmtree(const char *dir);

extern CU_TestInfo util_tests[];
extern CU_TestInfo iobuf_tests[];
extern CU_TestInfo dscan_tests[];
extern CU_TestInfo cmd_tests[];
extern CU_TestInfo conf_tests[];
extern CU_TestInfo match_tests[];
extern CU_TestInfo scenario_tests[];
extern CU_TestInfo store_tests[];
extern CU_TestInfo fault_tests[];
extern CU_TestInfo greylist_tests[];

#endif
