/*
 * serve.h - the L1 side of the cache stage (serve.c): lookup, answers from
 * a stored entry, stale-if-error, and putting a record. Not for use outside
 * proxy/cache/.
 */
#ifndef LEVEE_CACHE_SERVE_H
#define LEVEE_CACHE_SERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/cache_req.h"
#include "reason.h"

struct l1_entry;
struct refusal;

/* <params> of the answer's "Cache-Status: levee; ..." (the block's `status`). */
void cache_status_set(struct cache_req *cr, const char *params);
/* The whole "Cache-Status: ...\r\n" line for the response head: the
 * parameters set with cache_status_set(), then fwd-status, ttl and
 * collapsed where they apply (RFC 9211 §2). Each call rewrites the tail. */
const char *cache_status_line(struct cache_req *cr);
/* The client is getting the answer whose Cache-Status is the current one:
 * its outcome is the request's (the first one given wins; a background
 * refresh after a stale answer does not change what the client got). */
void cache_status_given(struct cache_req *cr);
/* levee refuses a request the cache looked up (an upstream failure, a
 * breaker, only-if-cached, cache-only): its answer says so in Cache-Status,
 * "fwd=<why it would have gone>; detail=<the reason's token>", through
 * rf->extra, and is counted like any other. */
void cache_status_refusal(struct cache_req *cr, enum lv_reason reason, struct refusal *rf);

enum lookup_rc { LK_MISS, LK_HIT, LK_STALE_SERVED };
/* Looks the request up. LK_HIT: answered and ended. LK_STALE_SERVED: the
 * client got a stale copy (stale-while-revalidate) and was released; the
 * request should go on as the refresh. LK_MISS: go upstream; cr->stale may
 * hold a stale copy for revalidation or stale-if-error. `how` is the
 * Cache-Status of a hit. */
enum lookup_rc cache_lookup(struct cache_req *cr, const char *how);
/* Answers the request from a referenced entry <e> (taken over) under its
 * own directives, like an L1 hit; LK_MISS (e released) when it may not be
 * served as it is. */
enum lookup_rc cache_answer(struct cache_req *cr, struct l1_entry *e, const char *how);
/* Writes entry <e> (referenced, taken over; decoded as <v>) to the client.
 * False when the request already ended (client gone, levee's own error). */
struct record_view;
bool cache_write(struct cache_req *cr, struct l1_entry *e, const struct record_view *v, int64_t now);
/* The client has its answer from the cache; the request goes on without it,
 * to refresh or drain what the upstream sends. */
void cache_release_client(struct cache_req *cr);
/* The request is failing with levee's own error: answer from the stale copy
 * instead when stale-if-error allows (true: answered, the request ended). */
bool cache_fail_takeover(struct cache_req *cr, enum lv_reason reason);
/* The route's `stale` fallback: answers from the stale copy, whatever its
 * state, when it went stale at most <max_stale_ms> ago and its origin did
 * not forbid stale answers (must-revalidate); Cache-Status says
 * detail=fallback and <mark> (a header line) is added. True: answered, the
 * request ended. */
bool cache_fallback_takeover(struct cache_req *cr, uint64_t max_stale_ms, const char *mark);
/* Whether a degradation tier may answer with stored copy <v> however
 * stale: not when its origin forbade stale answers (must-revalidate,
 * proxy-revalidate through s-maxage, or no-cache). */
bool cache_tier_stale_ok(const struct record_view *v);
/* A tier's stale answer (serve-stale, skip-lease, cache-only): answers from
 * the request's stale copy, whatever its age, when cache_tier_stale_ok()
 * allows; Cache-Status says hit; detail=tier-stale. True: answered, the
 * request ended. */
bool cache_tier_stale(struct cache_req *cr);
/* A miss a tier does not let fill (skip-lease that would have waited,
 * no-fill-optional): it goes upstream alone and stores nothing (no L1, no
 * L2, no lease, no refresh by a 304); its fill, if it had one, is given up
 * at once; Cache-Status says fwd=miss (or stale); detail=<detail>. */
void cache_tier_no_store(struct cache_req *cr, const char *detail);
/* skip-lease, where the request would wait for another's fill (in this
 * process or another replica's lease): answers from its stale copy
 * (cache_tier_stale(); true, the request ended), or makes it go upstream
 * alone, storing nothing (cache_tier_no_store(); false, the caller sends it
 * on). */
bool cache_tier_no_wait(struct cache_req *cr);
/* How much longer than its real freshness an entry is kept so that a
 * stretch-ttl tier of policy <p> can stretch it, in seconds: its lifetime
 * times the largest such tier's ttl_factor, less the lifetime (0 when no
 * tier stretches). Only retention: the stored lifetime stays the real one. */
struct lv_policy;
int64_t cache_stretch_keep(const struct lv_policy *p, int64_t lifetime);
/* Keeps referenced entry <e> (taken over) as the request's stale copy,
 * unless it has one: an L2 record past its freshness, for revalidation (its
 * validators go upstream), stale-if-error and fallbacks. */
void cache_keep_stale(struct cache_req *cr, struct l1_entry *e);
/* How long past its freshness an entry is kept, in seconds: the longer of
 * its stale-while-revalidate and stale-if-error windows and, on a route
 * with a `stale` fallback, its stale_fallback_max. */
struct lv_route;
int64_t cache_keep_window(const struct lv_route *rt, int64_t swr, int64_t sie);
/* A referenced entry for the request's keys whose record matches its Vary
 * values, decoded into <v>, or NULL. */
struct l1_entry *cache_find(struct cache_req *cr, struct record_view *v);

/* The most Vary variants of one URL the L1 holds (besides the copy of the
 * latest under the URL's own key); a new one past them replaces the one in
 * its home slot (serve.c, "Vary variants"; docs/caching.md, "Vary"). */
#define CACHE_VARIANTS 16

/* Removes from <l1> the entry under primary key <key> and every Vary
 * variant slot of it; how many entries went. */
struct l1;
size_t cache_forget_key(struct l1 *l1, const char *key, size_t klen);

enum put_rc { PUT_OK, PUT_TOO_BIG, PUT_PURGED, PUT_ERROR };
/* Puts a record under the request's key (and a Vary variant slot, when sl),
 * then takes it back if a purge after <epoch> covers it (PUT_PURGED). */
enum put_rc cache_put(const struct cache_req *cr, uint64_t epoch, const void *buf, size_t size, uint64_t expires,
                      const char *sec, size_t sl, const char *const *tagp, const size_t *tagl, unsigned nt);

#endif
