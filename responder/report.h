/*
 * report.h - `smtpfault report`: retry timelines from the event stream
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef REPORT_H
#define REPORT_H

/* argv[0] is "report".  Returns the exit status (0, 1 or 2). */
int	 report_main(int argc, char *argv[]);

#endif
