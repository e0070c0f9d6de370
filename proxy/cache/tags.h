/*
 * tags.h - the tags of a request's entry that do not depend on Redis: the
 * route's cache_tags with {N} filled from its wildcards, and the tags the
 * origin names in Surrogate-Key. Used at store time, by the L2 tier and by
 * the purges a write makes.
 */
#ifndef LEVEE_CACHE_TAGS_H
#define LEVEE_CACHE_TAGS_H

#include <stddef.h>

#include "cache/record.h"
#include "http/head.h"
#include "policy.h"

struct request;

/* Writes template `t` (tl bytes) with {N} replaced by wildcard N of the
 * route's match of `path` (its captures `caps`) into buf; its length, or 0
 * when it names a wildcard the path did not fill or does not fit. */
size_t cache_expand(const char *path, const struct lv_captures *caps, const char *t, size_t tl, char *buf,
                    size_t cap);

/* Route `rt`'s cache_tags for `path` with captures `caps`, as
 * cache_route_tags() (which is this for a request). */
unsigned cache_route_tags_of(const struct lv_route *rt, const char *path, const struct lv_captures *caps,
                             char *buf, size_t cap, struct record_str *out, unsigned max);

/* The route's cache_tags for r, {N} filled from its wildcards, written into
 * buf; returns how many (at most max). */
unsigned cache_route_tags(const struct request *r, char *buf, size_t cap, struct record_str *out, unsigned max);

/* The space-separated tags of the response's Surrogate-Key, at most max. */
unsigned cache_surrogate_keys(const struct lv_head *resp, struct record_str *out, unsigned max);

#endif
