/*
 * breaker_stage.h - the circuit breaker stage of the request path (see the .c).
 */
#ifndef LEVEE_BREAKER_STAGE_H
#define LEVEE_BREAKER_STAGE_H

struct stage;

extern const struct stage breaker_stage_def;

#endif
