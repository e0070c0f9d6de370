/*
 * write_inval.h - what a successful write invalidates: the list gathered
 * before it is purged here and published to every replica (cache.c), and
 * the part of it the request alone decides, which `levee explain` shows.
 */
#ifndef LEVEE_CACHE_WRITE_INVAL_H
#define LEVEE_CACHE_WRITE_INVAL_H

#include <stddef.h>

#include "cache/cache_ctx.h" /* struct inval_item */
#include "http/head.h"
#include "policy.h"

#define INVAL_ITEMS_MAX 64
#define INVAL_TEXT_MAX 16384

/* What one write invalidates; items point into `text`. Start with n = used = 0. */
struct write_inval {
	unsigned n;
	size_t used;
	struct inval_item items[INVAL_ITEMS_MAX];
	char text[INVAL_TEXT_MAX];
};

/* Adds one item, unless it is there already; past INVAL_ITEMS_MAX or
 * INVAL_TEXT_MAX the item is dropped, with a warning. */
void write_inval_add(struct write_inval *w, enum inval_kind kind, const char *p, size_t len);

/* Starts `w` with what the request decides: its target, and route `rt`'s
 * `invalidate` list with {N} from the captures `caps` of its path (an item
 * naming a wildcard the path did not fill is left out). `rt` may be NULL.
 * The response adds Location, Content-Location and Surrogate-Key (cache.c). */
void write_inval_request(struct write_inval *w, const struct lv_route *rt, const struct lv_head *qh,
                         const struct lv_captures *caps);

#endif
