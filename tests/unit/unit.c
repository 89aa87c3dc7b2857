/*
 * unit.c - helpers shared by the unit tests (see unit.h)
 *
 * DESCRIPTION  Formatted assertions, a byte dumper for failure messages,
 *              fixture path lookup, address parsing and temporary
 *              directories.  Uses nothing from responder/ or faults/,
 *              so a broken module cannot hide its own failures.
 *
 * SPDX-License-Identifier: MIT
 */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "unit.h"

static const char *argv0;

void
t_checkf(int ok, unsigned line, const char *file, const char *func,
    const char *fmt, ...)
{
	char	 msg[1024];
	va_list	 ap;

	if (ok) {
		CU_assertImplementation(CU_TRUE, line, fmt, file, func,
		    CU_FALSE);
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* CUnit copies the condition text into its failure record. */
	CU_assertImplementation(CU_FALSE, line, msg, file, func, CU_FALSE);
}

const char *
t_show(const char *p, size_t n)
{
	static char	 ring[8][320];
	static int	 next;
	char		*o = ring[next++ % 8];
	size_t		 i, j = 0;

	if (p == NULL)
		return "(null)";
	o[j++] = '"';
	for (i = 0; i < n && j < sizeof(ring[0]) - 8; i++) {
		unsigned char c = (unsigned char)p[i];

		switch (c) {
		case '\r': o[j++] = '\\'; o[j++] = 'r'; break;
		case '\n': o[j++] = '\\'; o[j++] = 'n'; break;
		case '"': o[j++] = '\\'; o[j++] = '"'; break;
		case '\\': o[j++] = '\\'; o[j++] = '\\'; break;
		default:
			if (c >= 0x20 && c < 0x7f)
				o[j++] = (char)c;
			else
				j += (size_t)snprintf(o + j, 5, "\\x%02x", c);
		}
	}
	if (i < n) {
		memcpy(o + j, "...", 3);
		j += 3;
	}
	o[j++] = '"';
	o[j] = '\0';
	return o;
}

const char *
t_shows(const char *s)
{
	return s == NULL ? "(null)" : t_show(s, strlen(s));
}

void
t_set_argv0(const char *a)
{
	argv0 = a;
}

static int
is_dir(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

const char *
t_data_path(const char *name)
{
	static char	 path[4096];
	static char	 dir[4096];
	const char	*env, *slash;

	if (dir[0] == '\0') {
		if ((env = getenv("UNIT_DATA_DIR")) != NULL && *env != '\0')
			snprintf(dir, sizeof(dir), "%s", env);
		else if (is_dir("tests/unit/data"))
			snprintf(dir, sizeof(dir), "tests/unit/data");
		else if (argv0 != NULL && (slash = strrchr(argv0, '/')) != NULL)
			/* build/unit-tests -> build/../tests/unit/data */
			snprintf(dir, sizeof(dir), "%.*s/../tests/unit/data",
			    (int)(slash - argv0), argv0);
		else
			snprintf(dir, sizeof(dir), "data");
	}
	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >=
	    (int)sizeof(path))
		path[0] = '\0';	/* too long: fails as "no such file" */
	return path;
}

const char *
t_data_dir(void)
{
	static char	 dir[4096];
	size_t		 n;

	/* t_data_path("") is "DIR/" */
	snprintf(dir, sizeof(dir), "%s", t_data_path(""));
	n = strlen(dir);
	while (n > 1 && dir[n - 1] == '/')
		dir[--n] = '\0';
	return dir;
}

int
t_sa(const char *addr, struct sockaddr_storage *sa)
{
	struct sockaddr_in	*s4 = (struct sockaddr_in *)(void *)sa;
	struct sockaddr_in6	*s6 = (struct sockaddr_in6 *)(void *)sa;

	memset(sa, 0, sizeof(*sa));
	if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		return 0;
	}
	return -1;
}

int
t_tmpdir(char *buf, size_t len, const char *tag)
{
	if (snprintf(buf, len, "/tmp/unit-%s-XXXXXX", tag) >= (int)len)
		return -1;
	return mkdtemp(buf) == NULL ? -1 : 0;
}

/* Removes dir and everything below it; 0, or -1 if something stayed. */
int
t_rmtree(const char *dir)
{
	DIR		*d;
	struct dirent	*de;
	struct stat	 st;
	char		 p[4096];
	int		 rc = 0;

	if ((d = opendir(dir)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
			if (t_rmtree(p) == -1)
				rc = -1;
		} else if (unlink(p) == -1) {
			rc = -1;
		}
	}
	closedir(d);
	if (rmdir(dir) == -1)
		rc = -1;
	return rc;
}
