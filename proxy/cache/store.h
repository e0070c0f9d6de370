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
/* Re-stores the stale copy with the times of a 304 that revalidated it
 * (RFC 9111 §4.3.4). */
void cache_refresh_entry(struct cache_req *cr, const struct record_view *v, const struct lv_head *resp);

#endif
