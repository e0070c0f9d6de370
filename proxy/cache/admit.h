/*
 * admit.h - whether a read on a caching route may use the cache, and under
 * which key: the decisions of the cache stage (cache.c) that the request
 * alone makes, as functions of the route and the head, so that `levee
 * explain` shows the very answers the stage acts on.
 */
#ifndef LEVEE_CACHE_ADMIT_H
#define LEVEE_CACHE_ADMIT_H

#include <stdbool.h>
#include <stddef.h>

#include "cache/freshness.h"
#include "http/head.h"
#include "policy.h"

/* Why a GET or HEAD on caching route `rt` must bypass the cache, as a word
 * ("cookie", "method-override", "no-store"), or NULL. Cookies bypass unless
 * the route allows them; a method override may turn the GET into a write
 * in some frameworks; no-store forbids storing. Credentials do not bypass:
 * RFC 9111 §3.5 decides whether an answer to them is stored. `req_cc` is
 * the request's Cache-Control (cc_from_request()). */
const char *cache_admit_request(const struct lv_route *rt, const struct lv_head *hd,
                                const struct cc_directives *req_cc);

/* What is not in the key must not reach the origin: applies the route's
 * unkeyed_headers and get_body. NULL when the request may use the cache,
 * with *strip_unkeyed (strip the risky unkeyed fields) and *body_discard
 * (read and drop its body) set as needed; else the bypass's detail
 * ("request-body", "unkeyed-header"). */
const char *cache_admit_unkeyed(const struct lv_route *rt, const struct lv_head *hd, bool has_body,
                                bool *strip_unkeyed, bool *body_discard);

/* Of a tier's cache modes `modes` (enum lv_cache_mode bits), those that
 * apply to a read on caching route `rt`: no-fill-optional only on optional
 * routes, cache-only only on routes with tier_cache_only, and cache-only
 * brings serve-stale (cache.c, "degradation tiers' cache modes"). */
unsigned cache_admit_tier_modes(const struct lv_route *rt, unsigned modes);

/* The host part of route `rt`'s keys, as key_build_as() takes it: NULL for
 * the request's own, "" for none, else the canonical host (`cache_key_host`,
 * or `[cache] key_host`). */
const char *cache_key_host(const struct lv_policy *p, const struct lv_route *rt);

/* The primary cache key of `hd` on route `rt` (key.h), with what `p` adds
 * (a trusted X-Forwarded-Proto); its length, or 0 when it does not fit. */
size_t cache_key_of(const struct lv_policy *p, const struct lv_route *rt, const struct lv_head *hd, char *out,
                    size_t cap);

#endif
