/*
 * redis_sentinel.h - what redis_sentinel.c offers redis.c: setting up,
 * starting and tearing down master discovery and the +switch-master
 * subscription of one client in sentinel mode. Not for use outside
 * proxy/cache/redis*.c.
 *
 * Every function here runs on the thread of r->base, like those of redis.h.
 */
#ifndef LEVEE_REDIS_SENTINEL_H
#define LEVEE_REDIS_SENTINEL_H

#include "policy.h"

struct redis;

/* Creates the timers and lookups of discovery and the subscription, and
 * sets r->discover. r->base, r->sentinels and r->cfg must be set; a failure
 * (out of memory) leaves what it made for redis_sentinel_close(). */
int redis_sentinel_init(struct redis *r) LV_WARN_UNUSED;
/* Starts the subscription and the first discovery round: state DISCOVERING
 * until a sentinel names the master. */
void redis_sentinel_start(struct redis *r);
/* Detaches and frees the sentinels' contexts, lookups and timers. Safe on a
 * client redis_sentinel_init() never ran on, or did not finish. */
void redis_sentinel_close(struct redis *r);

#endif
