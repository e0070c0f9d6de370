/*
 * pipeline.h - the request path: which stages a request passes through, in
 * which order (net/request.h says what a stage is and how a request runs
 * through them).
 */
#ifndef LEVEE_PIPELINE_H
#define LEVEE_PIPELINE_H

/* Gives net/request the path; at start-up, before any worker runs. */
void pipeline_init(void);

#endif
