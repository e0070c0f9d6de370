/*
 * cache.h - the cache stage of the pipeline, and its hooks on the response.
 *
 * Lookup order for a GET on a route with cache_ttl: L1 (in-process, shared
 * by all workers). A fresh entry is answered at once, without the upstream.
 * A miss either becomes the one fill for its key (the response is captured
 * while it streams to the client and stored at its end), or, when another
 * request of this process is already filling that key, waits for it and is
 * then answered from the stored entry.
 *
 * Writes (every method but GET, HEAD, OPTIONS and TRACE) on a caching route that get a 2xx or
 * 3xx purge the target URI and the same-origin Location and
 * Content-Location (RFC 9111 §4.4), whether or not the client is still
 * there.
 *
 * The stage serves the cache of its request's loop (cache_loop.h); the
 * cache itself, what all loops share, is struct cache (cache_ctx.h).
 *
 * Threads: the L1 and the table of fills are shared and locked per shard;
 * everything on a request happens on the worker that owns it. A waiter is
 * woken through its worker's mailbox.
 */
#ifndef LEVEE_CACHE_H
#define LEVEE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The pipeline stage: run looks the request up and answers a hit; it
 * watches the response as an observer (capture, store, invalidate on a
 * write); its fail hook answers from a stale copy when stale-if-error
 * allows; its end hook releases what the cache holds for the request. */
struct stage;
extern const struct stage cache_stage_def;

/* For a route's `stale` fallback, from another stage's fail hook: answers
 * <r> from the copy the cache found for it (L1, or an L2 record past its
 * freshness), however stale, if it went stale at most <max_stale_ms> ago
 * and its origin did not say must-revalidate; Cache-Status says
 * `hit; detail=fallback`, Age is the copy's, and <mark> (a header line,
 * "Name: value\r\n", lasting until the request ends) is added. True:
 * answered, the request ended (its outcome unchanged). */
struct request;
bool cache_fallback_stale(struct request *r, uint64_t max_stale_ms, const char *mark);

struct cache;
struct l1_entry;
struct lv_head;
struct record_view;
/* The stored entry a GET with head <hd> and primary key <key> would be
 * answered from, its Vary variant included (the URL's own key, or one of
 * its variant slots), referenced and decoded into <v>; NULL when none.
 * With <at> (KEY_MAX bytes), the key it was found under goes there and its
 * length into *atl. Any thread: the admin's look-up uses it too. */
struct l1_entry *cache_entry_find(struct cache *c, const char *key, size_t klen, const struct lv_head *hd,
                                  struct record_view *v, char *at, size_t *atl);
/* The entry under exactly <key> (no variant look-up), referenced and
 * decoded into <v>; NULL when none. Any thread. */
struct l1_entry *cache_entry_get(struct cache *c, const char *key, size_t klen, struct record_view *v);

#endif
