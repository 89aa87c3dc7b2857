/*
 * ctl_int.h - what control.c and ctldata.c share (not a public API)
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef CTL_INT_H
#define CTL_INT_H

#include <stddef.h>

#include <jansson.h>
#include <microhttpd.h>

#define MAX_STREAMS	64	/* open /v1/events/stream clients */

/* control.c */
enum MHD_Result	 control_send_text(struct MHD_Connection *c, unsigned status,
    const char *type, const char *text, size_t len);
/* Send j (its reference is taken) as JSON. */
enum MHD_Result	 control_send_json(struct MHD_Connection *c, unsigned status,
    json_t *j);
enum MHD_Result	 control_send_error(struct MHD_Connection *c, unsigned status,
    const char *msg);
/* Up to max bytes of a file, NUL-terminated, malloc'd; NULL if unreadable. */
char		*control_slurp(const char *path, size_t max, size_t *len);
void		 control_run_now(void);
void		 control_run_soon(void);

/* ctldata.c */
enum MHD_Result	 ctldata_greylist(struct MHD_Connection *c, const char *method);
enum MHD_Result	 ctldata_events(struct MHD_Connection *c);
enum MHD_Result	 ctldata_stream(struct MHD_Connection *c);
enum MHD_Result	 ctldata_messages(struct MHD_Connection *c, const char *method,
    const char *url);
enum MHD_Result	 ctldata_timeline(struct MHD_Connection *c);
enum MHD_Result	 ctldata_metrics(struct MHD_Connection *c);
void		 ctldata_init(void);
void		 ctldata_free(void);
void		 ctldata_wake(void);

#endif
