/*
 * signals.h - the load signals tier conditions may name (docs/tiers.md,
 * "Signals"): one table per policy, since routes, bulkheads and breakers
 * give signals of their own, and the per-level actions derived from the
 * [tier] sections.
 *
 * The table's order is the contract with the sampler
 * (proxy/resilience/tiers.c): first the process-wide signals of
 * LV_SIGNALS, in that order; then, per route in file order, the
 * LV_ROUTE_SIGNALS; per bulkhead, the LV_BULKHEAD_SIGNALS; per breaker, the
 * LV_BREAKER_SIGNALS. A signal's value in the sampler's vector is in the
 * unit of its kind (policy/expr.h: milliseconds, bytes, 0-100).
 */
#ifndef LEVEE_POLICY_SIGNALS_H
#define LEVEE_POLICY_SIGNALS_H

#include "expr.h"
#include "policy.h"

/* X(enum, name, kind, what): the process-wide signals. */
#define LV_SIGNALS(X)                                                                              \
	X(SIG_INFLIGHT, "inflight", EXPR_COUNT, "requests in levee now, from their head to their end") \
	X(SIG_RPS, "rps", EXPR_COUNT, "requests per second that ended over the window")             \
	X(SIG_QUEUE_WAIT_AVG, "queue_wait_avg", EXPR_DURATION,                                      \
	  "average wait for a bulkhead slot (all bulkheads) over the window: a slot granted at once counts 0, a refusal for a full queue its queue_timeout; 0 with no request") \
	X(SIG_QUEUE_WAIT_P99, "queue_wait_p99", EXPR_DURATION,                                      \
	  "99th percentile of the same: queuing time, DAGOR's overload signal") \
	X(SIG_QUEUED, "queued", EXPR_COUNT, "requests waiting in bulkhead queues now")              \
	X(SIG_UP_P50, "upstream_p50", EXPR_DURATION,                                                \
	  "median upstream exchange time (request sent to response end) over the window; 0 with no exchange") \
	X(SIG_UP_P99, "upstream_p99", EXPR_DURATION, "99th percentile of the same")                \
	X(SIG_ERROR_RATE, "error_rate", EXPR_PERCENT,                                               \
	  "share of the window's upstream exchanges that failed: 5xx, timeout, reset, cut or unparseable answers, failed connects, deadlines; 0 with none") \
	X(SIG_BREAKERS_OPEN, "breakers_open", EXPR_COUNT, "breakers open or half-open now")        \
	X(SIG_CPU, "cpu", EXPR_PERCENT, "levee's own CPU time since the last reading, in percent of one CPU (all threads: 250% is two and a half CPUs)") \
	X(SIG_CG_THROTTLED, "cgroup.cpu_throttled", EXPR_PERCENT,                                   \
	  "share of the cgroup's CPU periods throttled by its quota since the last reading")       \
	X(SIG_CG_MEMORY, "cgroup.memory_used", EXPR_PERCENT, "memory.current against the tightest memory.max") \
	X(SIG_MEMORY, "memory.used", EXPR_SIZE, "memory.current of levee's cgroup")                 \
	X(SIG_PSI_CPU_SOME, "psi.cpu.some10", EXPR_PERCENT, "CPU pressure, some tasks waiting, over 10 s") \
	X(SIG_PSI_CPU_FULL, "psi.cpu.full10", EXPR_PERCENT, "CPU pressure, all tasks waiting, over 10 s") \
	X(SIG_PSI_MEM_SOME, "psi.memory.some10", EXPR_PERCENT, "memory pressure, some, over 10 s") \
	X(SIG_PSI_MEM_FULL, "psi.memory.full10", EXPR_PERCENT, "memory pressure, full, over 10 s") \
	X(SIG_PSI_IO_SOME, "psi.io.some10", EXPR_PERCENT, "I/O pressure, some, over 10 s")          \
	X(SIG_PSI_IO_FULL, "psi.io.full10", EXPR_PERCENT, "I/O pressure, full, over 10 s")          \
	X(SIG_REDIS_UP, "redis.up", EXPR_FLAG, "Redis answers (no value without [redis])")        \
	X(SIG_KAFKA_UP, "kafka.up", EXPR_FLAG, "a Kafka broker is reachable (no value without [kafka])") \
	X(SIG_KAFKA_LAG, "kafka.lag", EXPR_COUNT, "invalidation messages not yet consumed")        \
	X(SIG_KAFKA_SPOOLED, "kafka.spooled", EXPR_COUNT, "invalidations waiting in the outbox for the broker")

/* X(enum, suffix, kind, what): per route, named "route.NAME.SUFFIX". */
#define LV_ROUTE_SIGNALS(X)                                                                        \
	X(SIG_R_INFLIGHT, "inflight", EXPR_COUNT, "the route's requests in levee now")             \
	X(SIG_R_UP_P50, "upstream_p50", EXPR_DURATION, "the route's median upstream exchange time over the window (measured only for routes a condition reads this or the next of)") \
	X(SIG_R_UP_P99, "upstream_p99", EXPR_DURATION, "its 99th percentile")                     \
	X(SIG_R_ERROR_RATE, "error_rate", EXPR_PERCENT, "share of the route's upstream exchanges that failed over the window")

/* Per bulkhead, "bulkhead.NAME.SUFFIX". */
#define LV_BULKHEAD_SIGNALS(X)                                                                     \
	X(SIG_B_WAIT_AVG, "queue_wait_avg", EXPR_DURATION, "average queue wait of the bulkhead over the window") \
	X(SIG_B_WAIT_P99, "queue_wait_p99", EXPR_DURATION, "its 99th percentile")                 \
	X(SIG_B_QUEUED, "queued", EXPR_COUNT, "requests in its queue now")                         \
	X(SIG_B_ACTIVE, "active", EXPR_COUNT, "its slots in use now")

/* Per breaker, "breaker.NAME.SUFFIX". */
#define LV_BREAKER_SIGNALS(X) X(SIG_K_OPEN, "open", EXPR_FLAG, "the breaker is open or half-open")

#define LV_SIG_ENUM(e, name, kind, what) e,
enum lv_signal { LV_SIGNALS(LV_SIG_ENUM) SIG__FIXED };
enum lv_route_signal { LV_ROUTE_SIGNALS(LV_SIG_ENUM) SIG_R__COUNT };
enum lv_bulkhead_signal { LV_BULKHEAD_SIGNALS(LV_SIG_ENUM) SIG_B__COUNT };
enum lv_breaker_signal { LV_BREAKER_SIGNALS(LV_SIG_ENUM) SIG_K__COUNT };
#undef LV_SIG_ENUM

struct lv_signal_table {
	struct expr_signals sig;  /* what expr_parse() takes */
	struct expr_signal *v;    /* sig.v, owned */
	char *names;              /* the names' storage */
	size_t route_base, bulkhead_base, breaker_base; /* index of each group's first */
	bool *used;               /* per signal: some tier's condition reads it */
};

/* The index of route i's signal s, and so on. */
static inline size_t sig_route(const struct lv_signal_table *t, size_t i, enum lv_route_signal s)
{
	return t->route_base + i * SIG_R__COUNT + (size_t)s;
}
static inline size_t sig_bulkhead(const struct lv_signal_table *t, size_t i, enum lv_bulkhead_signal s)
{
	return t->bulkhead_base + i * SIG_B__COUNT + (size_t)s;
}
static inline size_t sig_breaker(const struct lv_signal_table *t, size_t i, enum lv_breaker_signal s)
{
	return t->breaker_base + i * SIG_K__COUNT + (size_t)s;
}

/* The table for `p`'s routes, bulkheads and breakers; NULL when out of memory. */
struct lv_signal_table *signals_build(const struct lv_policy *p);
void signals_free(struct lv_signal_table *t);

/* What the tiers of a level do together, derived at load: level 0 is
 * normal (nothing), level k applies tiers 1..k. Shadow tiers count in
 * `would_*` only. */
struct lv_tier_level {
	struct lv_shed shed;       /* shares shed, by priority */
	struct lv_shed would_shed; /* with the shadow tiers too */
	unsigned cache;            /* enum lv_cache_mode bits */
	unsigned ttl_factor;
	double bulkhead_scale;     /* percent */
	unsigned retry_after_s;
	int named;                 /* the tier its refusals name: the highest non-shadow one, -1: none */
	int shadow_named;          /* the highest shadow tier, for shadow counts; -1: none */
	char detail[LV_NAME_MAX + 8]; /* "tier=NAME" of `named`, for X-Levee-Reason */
};

/* The table of signals for docs/tiers.md, in Markdown. */
void signals_markdown(FILE *out);

/* Fills levels[0..p->ntiers] from p's tiers. */
void signals_tier_levels(const struct lv_policy *p, struct lv_tier_level *levels);

#endif
