/*
 * control.h - the control API (HTTP/JSON) and /metrics
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef CONTROL_H
#define CONTROL_H

/*
 * Serve the API on an already listening socket fd (owned by the HTTP
 * server from now on); name is its "ADDR:PORT".  0 or -1.
 */
int		 control_init(int fd, const char *name);
void		 control_free(void);
/* "127.0.0.1:8025" once running, else NULL. */
const char	*control_name(void);

#endif
