/*
 * metrics.h - counters for /metrics (Prometheus text format)
 *
 * DESCRIPTION  Plain counters bumped on the hot paths (no locking: one
 *              thread).  Per-rule fault counts are the rules' own `fired`
 *              counters, so they start again when a scenario is loaded.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef METRICS_H
#define METRICS_H

#include <stdint.h>

#include "cmd.h"

#define METRICS_GL_RESULTS 5

struct metrics {
	uint64_t	 connections;		/* accepted */
	uint64_t	 refused;		/* turned away at accept */
	uint64_t	 commands[CMD__COUNT];
	uint64_t	 replies[600];		/* by code */
	uint64_t	 messages;		/* accepted (250 or kept) */
	uint64_t	 bytes;
	uint64_t	 messages_refused;
	uint64_t	 greylist[METRICS_GL_RESULTS];
	uint64_t	 tls_handshakes;
	uint64_t	 tls_failures;
};

extern struct metrics metrics;

#endif
