/*
 * version.h - the version string
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef VERSION_H
#define VERSION_H

#define SMTPFAULT_VERSION "0.1.0"

#endif
