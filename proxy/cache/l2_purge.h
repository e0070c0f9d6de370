/*
 * l2_purge.h - the L2 half of a purge: the generation tag a purge of a URL,
 * a path prefix, a tag or everything deletes in Redis, and sending it.
 * Knows nothing of requests or of the purge log (purge.h fences and
 * retries what this sends).
 *
 * Thread: that of the struct l2 given.
 */
#ifndef LEVEE_CACHE_L2_PURGE_H
#define LEVEE_CACHE_L2_PURGE_H

#include <stdbool.h>
#include <stddef.h>

struct l2;

enum cache_purge_kind { CACHE_PURGE_URL, CACHE_PURGE_PREFIX, CACHE_PURGE_TAG, CACHE_PURGE_ALL };
/* Called once Redis answered a purge: ok false when it did not reach it. */
typedef void (*cache_purge_cb)(void *arg, bool ok);

/* The URL tag of (service, target): "u:" service US target US, covering
 * every host and variant of the URL; 0 when it does not fit. */
size_t cache_url_tag(const char *svc, const char *target, size_t len, char *out, size_t cap);

/* The generation tag a purge deletes in Redis, written into tag; 0 when it
 * has none (a prefix not ending in '/', or too long): the L1 only, then. */
size_t cache_l2_purge_tag(enum cache_purge_kind kind, const char *svc, const char *s, size_t len, char *tag,
                          size_t cap);

/* Sends the purge's generation bump on `l2` (NULL: nothing is sent): true
 * when `cb` will be called. */
bool cache_l2_purge(struct l2 *l2, enum cache_purge_kind kind, const char *svc, const char *s, size_t len,
                    cache_purge_cb cb, void *arg);

#endif
