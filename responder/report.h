/*
 * report.h - `smtpfault report`: retry timelines from the event stream
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef REPORT_H
#define REPORT_H

#include <stdio.h>

#include <jansson.h>

/* argv[0] is "report".  Returns the exit status (0, 1 or 2). */
int	 report_main(int argc, char *argv[]);

/*
 * The timeline of the events in fp as `report --json` prints it (profile
 * may be NULL).  The caller owns the returned object.
 */
json_t	*report_build(FILE *fp, double quiet, const char *profile);
int	 report_profile_known(const char *name);

#endif
