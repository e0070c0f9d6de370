/*
 * fallback_stage.h - a route's fallbacks as a stage of the request path
 * (see the .c).
 */
#ifndef LEVEE_FALLBACK_STAGE_H
#define LEVEE_FALLBACK_STAGE_H

struct stage;

extern const struct stage fallback_stage_def;

#endif
