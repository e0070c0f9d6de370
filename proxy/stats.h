/*
 * stats.h - every counter levee exports, declared once.
 *
 * Each worker owns a `struct lv_stats` and is its only writer, so the hot
 * path increments without a locked instruction (stat_inc). The admin thread
 * reads with relaxed atomic loads and sums over workers; a scrape may see a
 * counter a few increments behind, never a torn value.
 */
#ifndef LEVEE_STATS_H
#define LEVEE_STATS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "outcome.h"
#include "policy.h"
#include "reason.h"
#include "sighist.h"

/* X(field, metric name, help) - monotonically increasing counters. */
#define LV_COUNTERS(X)                                                                              \
	X(conn_accepted, "levee_connections_accepted_total", "Client connections accepted")          \
	X(conn_redirected, "levee_connections_redirected_total", "Client connections accepted with transparent = on whose original destination was not levee's listener: the nat rules sent them") \
	X(conn_rejected, "levee_connections_rejected_total", "Client connections refused at max_connections") \
	X(accept_errors, "levee_accept_errors_total", "accept() calls that failed, most often for want of file descriptors") \
	X(accept_pauses, "levee_accept_pauses_total", "100 ms pauses in accepting, after accept() ran out of descriptors or memory") \
	X(client_aborts, "levee_client_aborts_total", "Requests whose client went away before the response ended") \
	X(bytes_in, "levee_client_bytes_received_total", "Bytes received from clients")              \
	X(bytes_out, "levee_client_bytes_sent_total", "Bytes sent to clients")                       \
	X(up_connects, "levee_upstream_connections_opened_total", "Upstream connections opened")     \
	X(up_reused, "levee_upstream_connections_reused_total", "Requests sent on a pooled upstream connection") \
	X(up_connect_errors, "levee_upstream_connect_errors_total", "Upstream connects that failed or timed out") \
	X(up_timeouts, "levee_upstream_timeouts_total", "Upstream responses that did not arrive in time") \
	X(up_bad_responses, "levee_upstream_bad_responses_total", "Upstream responses that could not be parsed") \
	X(up_truncated, "levee_upstream_truncated_total", "Upstream responses that ended before their body was complete") \
	X(up_retries, "levee_upstream_retries_total", "Idempotent requests retried after a stale pooled connection") \
	X(retry_connect, "levee_retries_connect_total", "Route retries after a failed upstream connect") \
	X(retry_status, "levee_retries_status_total", "Route retries after an answer in retry_statuses, which was dropped") \
	X(interim_forwarded, "levee_interim_forwarded_total", "Interim responses (1xx but 100 and 101: 102, 103...) forwarded to a client before its final one") \
	X(interim_dropped, "levee_interim_dropped_total", "Interim responses not forwarded: an upstream 100, or a client on HTTP/1.0, gone or already answered") \
	X(retry_denied, "levee_retries_denied_total", "Route retries the retry budget refused: the failure went to the client") \
	X(deadline_expired, "levee_deadline_expired_total", "Requests whose deadline passed before their answer was complete") \
	X(loops_refused, "levee_loops_refused_total", "Requests refused with 508 because they had already passed through this levee (its own pseudonym in Via)")

#define LV_HIST_BUCKETS 15
extern const double lv_hist_bounds[LV_HIST_BUCKETS - 1]; /* seconds; last bucket is +Inf */

/* Status classes: 1xx..5xx. */
#define LV_CLASSES 5

/* What the tier signals read of a route or of the whole (resilience/
 * tiers.c): requests begun and ended (in flight: the difference, summed
 * over workers, since a request may end on another loop than it began on),
 * and upstream exchanges, failed ones among them. */
struct lv_load {
	uint64_t started, ended, up_calls, up_failed;
};

/* X(id, label) - what a response's Cache-Status says levee did, one value per
 * RFC 9211 outcome levee emits: `hit`, or the value of `fwd`. The `result`
 * label of levee_cache_lookups_total, counted once per answer that carried
 * a Cache-Status (cache.c), on the route it matched. */
#define LV_CACHE_RESULTS(X)                                                                           \
	X(HIT, "hit")         /* answered from a stored response, the upstream not asked for it */    \
	X(MISS, "miss")       /* fwd=miss: nothing stored (a collapsed request that waited included) */ \
	X(STALE, "stale")     /* fwd=stale: a stored copy too old, revalidated or replaced */          \
	X(REQUEST, "request") /* fwd=request: a copy fresh enough, but the request's own directives refused it */ \
	X(BYPASS, "bypass")   /* fwd=bypass: the cache did not handle it (a write, cookies, Redis down...) */

enum lv_cache_result {
#define LV_CR_ENUM(id, label) LV_CR_##id,
	LV_CACHE_RESULTS(LV_CR_ENUM)
#undef LV_CR_ENUM
	LV_CR__COUNT
};
extern const char *const lv_cache_result_names[LV_CR__COUNT];

struct lv_route_stats {
	struct lv_load load;
	uint64_t shed[LV_MAX_TIERS], shadow[LV_MAX_TIERS]; /* by the tier that refused (or would have) */
	uint64_t cls[LV_CLASSES];
	uint64_t cached; /* answered from the cache, the upstream not asked (OUT_CACHE) */
	uint64_t cache[LV_CR__COUNT]; /* by the outcome its Cache-Status said */
	uint64_t hist[LV_HIST_BUCKETS];
	uint64_t sum_us;
	uint64_t fallbacks[LV_FALLBACK_CAUSES_N][LV_FB__COUNT]; /* by cause (reason.h), kind */
};

/* Route stats are kept by name across reloads. Index 0 is "default" (no
 * route matched). The registry holds twice a policy's most routes, so that
 * reloads can rename routes of a full policy; a name past that counts as
 * "default". */
#define LV_ROUTE_STATS (2 * LV_MAX_ROUTES + 1)

/* A worker's route stats come in chunks of LV_ROUTE_CHUNK routes, allocated
 * by the worker the first time it answers a request on one of them: memory
 * follows the routes in use, not the most a policy may have (4097 full
 * entries per worker would be 670 KiB each). */
#define LV_ROUTE_CHUNK 64

struct lv_stats {
#define LV_S_FIELD(f, name, help) uint64_t f;
	LV_COUNTERS(LV_S_FIELD)
#undef LV_S_FIELD
	uint64_t rejected[R__COUNT];
	uint64_t outcomes[OUT__COUNT];
	struct lv_load load;                /* every request's */
	uint64_t up_hist[SIGHIST_BUCKETS];  /* upstream exchange times, us */
	/* NULL until used; published with a release store, read with acquire */
	struct lv_route_stats *route_chunks[(LV_ROUTE_STATS + LV_ROUTE_CHUNK - 1) / LV_ROUTE_CHUNK];
};

/* Single-writer increment: a plain add, published with a relaxed store. */
static inline void stat_add(uint64_t *c, uint64_t n)
{
	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}
#define stat_inc(c) stat_add(&(c), 1)

/* Called by the stats' one writer. A request on a route whose chunk cannot
 * be allocated is not counted. `cached`: the cache answered it. */
void stats_record_request(struct lv_stats *s, unsigned route_idx, int status, uint64_t dur_us, bool cached);

/* A fallback of <kind> answered a failure of fallback cause <cause> (its
 * index in LV_FALLBACK_CAUSES) on route <route_idx>. Same writer. */
void stats_record_fallback(struct lv_stats *s, unsigned route_idx, int cause, enum lv_fallback_kind kind);

/* An answer on route <route_idx> carried a Cache-Status saying <res>. Same
 * writer. */
void stats_record_cache(struct lv_stats *s, unsigned route_idx, enum lv_cache_result res);

/* One Prometheus histogram with one label: `hist` holds per-bucket counts
 * (not cumulative), the last bucket being +Inf; `bounds` the other upper
 * bounds; `sum` in the histogram's unit. */
void prom_histogram(FILE *out, const char *metric, const char *label, const char *value, const double *bounds,
                    unsigned nbuckets, const uint64_t *hist, double sum);

/* <token> as a metric label value: snake_case, '-' turned into '_'
 * (docs/metrics.md, Naming), written into <buf> and returned. The same
 * tokens keep their hyphens where another contract spells them so
 * (X-Levee-Reason, Cache-Status, the access log, /status). A token longer
 * than the buffer is cut, which a unit test rules out for every table. */
#define PROM_VALUE_MAX 48
const char *prom_value(char buf[PROM_VALUE_MAX], const char *token);

/* Route `idx`'s stats (allocated on first use; NULL if that fails), for
 * the stats' one writer. */
struct lv_route_stats *stats_route(struct lv_stats *s, unsigned idx);
/* A reader's look at route `idx` of a worker's stats: NULL when the
 * worker never counted anything on it. */
const struct lv_route_stats *stats_route_peek(const struct lv_stats *s, unsigned idx);

/* Route `idx` summed over `n` workers' stats, into *sum (a reader's). */
void stats_route_sum(struct lv_stats *const *w, unsigned n, unsigned idx, struct lv_route_stats *sum);

/* The upper bound in seconds of the histogram bucket that holds quantile
 * `q` (0-1) of `hist` (LV_HIST_BUCKETS counts, not cumulative): INFINITY
 * for the last bucket, NAN with no count. */
double stats_hist_quantile(const uint64_t *hist, double q);

/* Frees the route chunks; `s` itself is the caller's. */
void stats_free_routes(struct lv_stats *s);

/* Route-name registry: returns a stable index for `name` (registering it on
 * first use), or 0 when the registry is full. Thread-safe. */
unsigned stats_route_index(const char *name);

/* Process-wide values rendered beside the per-worker counters. */
struct lv_gauges {
	uint64_t conns_active;
	uint64_t workers;
	uint64_t reloads_ok, reloads_unchanged, reloads_failed; /* applied, equal to the running policy, refused */
	double last_reload_ts;
	int last_reload_ok;
	int restart_pending; /* the applied file changes keys that take a restart */
	int ready, draining, upstream_reachable;
};

/* Prometheus text exposition of the sum over `n` workers. Routes are
 * rendered for "default" and for the registry indexes in `routes` (the
 * running policy's), so the series stay bounded by one policy whatever
 * reloads came before. */
void stats_render_prometheus(FILE *out, struct lv_stats *const *workers, unsigned n,
                             const struct lv_gauges *g, const unsigned *routes, size_t nroutes);

#endif
