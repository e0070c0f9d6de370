/*
 * bulkhead_stage.h - the bulkhead stage of the request path (see the .c).
 */
#ifndef LEVEE_BULKHEAD_STAGE_H
#define LEVEE_BULKHEAD_STAGE_H

#include <stdbool.h>

struct request;
struct stage;

extern const struct stage bulkhead_stage_def;

/* The client left: false while a grant is on its way to the request (it
 * ends when the grant arrives), true when it may end now. */
bool bulkhead_stage_client_gone(struct request *r);

#endif
