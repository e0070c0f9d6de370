/*
 * pipeline.h - the request path: which stages a request passes through, in
 * which order (net/request.h says what a stage is and how a request runs
 * through them).
 */
#ifndef LEVEE_PIPELINE_H
#define LEVEE_PIPELINE_H

#include <stddef.h>

#include "runtime.h"

/* Gives net/request the path; at start-up, before any worker runs. */
void pipeline_init(void);
/* Gives a newly built runtime its references to the process-wide bulkheads
 * and breakers its policy names (dropped with the runtime's last
 * reference). Main thread, before the runtime is published. */
int pipeline_runtime_attach(struct runtime *rt, char *err, size_t errlen) LV_WARN_UNUSED;

#endif
