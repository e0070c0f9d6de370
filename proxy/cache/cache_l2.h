/*
 * cache_l2.h - the Redis tier's steps of a request (cache_l2.c). Not for
 * use outside proxy/cache/.
 */
#ifndef LEVEE_CACHE_CACHE_L2_H
#define LEVEE_CACHE_CACHE_L2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/cache_req.h"

struct cache_fill;

/* On an L1 miss this process fills: ask the shared tier first. Returns
 * STAGE_ASYNC when it took the request over, or STAGE_NEXT to go on
 * without L2. */
int cache_l2_miss(struct cache_req *cr);
/* A complete, storable response: offer it to L2 under the lease this
 * request holds (nothing happens without one; false then). Takes over <f>
 * (may be NULL): its waiters are woken when Redis has answered, or at once
 * when nothing was sent. */
bool cache_l2_commit(struct cache_req *cr, const void *rec, size_t len, uint64_t ttl_ms, struct cache_fill *f);
/* Hit-for-miss in Redis: the marker in place of the request's lease (or of
 * none), and its removal. */
void cache_l2_pass(struct cache_req *cr);
void cache_l2_pass_clear(struct cache_req *cr);
/* The request ends: give back a lease it still holds. */
void cache_l2_end(struct cache_req *cr);

#endif
