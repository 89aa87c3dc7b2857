/*
 * main.h - what the rest of the server may ask of main.c
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef MAIN_H
#define MAIN_H

#include "conf.h"

/*
 * Run with another scenario (a shipped name or a file): the whole
 * configuration is assembled again (defaults, -c file, the scenario,
 * command line) and swapped in only when valid.  0, or -1 with every
 * problem in errs and the running configuration unchanged.  SIGHUP
 * reloads keep the new scenario.
 */
int	 main_use_scenario(const char *scenario, struct conf_errs *errs);

#endif
