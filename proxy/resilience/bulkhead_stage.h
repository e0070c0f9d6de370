/*
 * bulkhead_stage.h - the bulkhead stage of the request path (see the .c).
 */
#ifndef LEVEE_BULKHEAD_STAGE_H
#define LEVEE_BULKHEAD_STAGE_H

struct stage;

extern const struct stage bulkhead_stage_def;

#endif
