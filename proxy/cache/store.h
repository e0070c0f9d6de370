/*
 * store.h - the store of a fill's response (store.c): the observer's steps
 * the stage (cache.c) hands on. Not for use outside proxy/cache/.
 */
#ifndef LEVEE_CACHE_STORE_H
#define LEVEE_CACHE_STORE_H

#include <stddef.h>

#include "cache/cache_req.h"
#include "http/head.h"

struct evbuffer;
struct record_view;
struct l1_entry;

/* Largest body a fill holds back whole before its head goes out, so that
 * Cache-Status says whether it was stored. */
#define CACHE_HOLD_MAX (64 * 1024)

/* The response, as the observer sees it, in order: the head (before the
 * client's head is written; may turn capture on and fills the block's
 * `status`), body bytes as they go to the client, then the end. */
void cache_response_head(struct cache_req *cr, const struct lv_head *resp);
void cache_response_body(struct cache_req *cr, struct evbuffer *src, size_t n);
void cache_response_body_bytes(struct cache_req *cr, const char *data, size_t n);
void cache_response_end(struct cache_req *cr, const struct lv_head *resp);
enum refresh_rc {
	REFRESH_STORED,     /* merged, and stored as a full response would be */
	REFRESH_NOT_STORED, /* merged, not stored (cr->why says why; none: a tier forbids it) */
	REFRESH_MISMATCH,   /* the 304's validators are another representation's: nothing changed */
	REFRESH_ERROR,      /* out of memory: nothing changed */
};
/* A 304 <resp> to levee's own revalidation of stored response <v> (RFC 9111
 * §3.2, §4.3.4): when its validators select <v>, its fields replace the
 * stored ones, freshness is computed again from the merged fields by the
 * store's own rules, and the result is stored like a full response (L1 and,
 * under the request's lease, Redis). A merged response that may not be
 * stored takes the stale copy out of the L1. With <answer>, *answer gets
 * the merged response as an entry of its own (NULL unless STORED or
 * NOT_STORED), for the client. */
enum refresh_rc cache_refresh_entry(struct cache_req *cr, const struct record_view *v, const struct lv_head *resp,
                                    struct l1_entry **answer);

#endif
