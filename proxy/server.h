/*
 * server.h - process-wide state: the current runtime, the workers, and the
 * flags the admin endpoints report. main.c owns the one instance and hands
 * a pointer to it down to admin, probe and reload at their start; workers
 * get only the parts they need (the runtime slot, the connection counter),
 * never the server, so net/ does not reach up to this layer.
 *
 * Threads: `runtime` is swapped by the main thread and read by workers, as
 * runtime.h says. Everything else here is an atomic read by any thread, or
 * the main thread's alone where marked.
 */
#ifndef LEVEE_SERVER_H
#define LEVEE_SERVER_H

#include <event2/event.h>
#include <stdatomic.h>

#include "cpus.h"
#include "http/via.h"
#include "policy.h"
#include "reload_status.h"
#include "net/retry.h"
#include "runtime.h"

struct cache;
struct worker;

/* The threads of one isolation = thread bulkhead, kept by its name for the
 * life of the process (a reload that lowers `threads` leaves the extra ones
 * idle; one that brings the name back reuses them). */
struct bulkhead_threads {
	char name[LV_NAME_MAX];
	struct worker *loops[LV_MAX_BULKHEAD_THREADS];
	unsigned n;
};

struct server {
	struct runtime_slot runtime; /* the current runtime */

	/* every event loop: the listener workers first, [0, nlisteners), then
	 * the bulkheads' threads; all get policies, drain and stop alike */
	struct worker **workers;
	unsigned nworkers, nlisteners;
	unsigned nstarted;           /* workers[0, nstarted) run their threads */
	struct bulkhead_threads *bh_threads;
	unsigned nbh_threads;
	struct cpus cpus; /* what sized the workers, main thread at start-up only */
	struct event_base *main_base;

	atomic_uint_fast64_t conns; /* open client connections, all workers */
	atomic_int draining;
	atomic_int upstream_reachable;
	struct cache *cache;         /* the process's cache: every loop's, admin's, invalidate's */
	struct retry_budget retry_budget; /* what the routes' retries may spend, every loop's */
	char via[VIA_PSEUDONYM_SIZE]; /* this process's name in Via, every loop's (http/via.h) */
	struct redis *redis;         /* main thread's Redis tier, for admin purges */
	struct l2 *l2;

	/* reload bookkeeping, main thread only (read by admin on the same thread) */
	char policy_path[LV_PATH_MAX];
	struct lv_overrides ov;
	struct reload_status reload;
	/* POST /reload's way in: reload.c installs it (reload_init), so the
	 * admin listener below it never names it; NULL before then */
	enum reload_result (*reload_hook)(struct lv_diag *diag);
};

/* An empty server: no runtime, no workers, no base. */
void server_init(struct server *s);
/* Frees what the server holds: its workers (stopped and joined by the
 * caller), the Redis tier, the cache, the main base and its reference to
 * the current runtime. */
void server_destroy(struct server *s);

/* Creates the process's cache (struct cache, cache/cache_ctx.h), sized by
 * the current runtime's policy; before any worker. */
int server_cache_create(struct server *s, char *err, size_t errlen) LV_WARN_UNUSED;

/* Creates `n` workers, not started yet, each handed the server's runtime
 * slot, connection counter and cache. The current runtime must be set. */
int server_workers_create(struct server *s, unsigned n, char *err, size_t errlen) LV_WARN_UNUSED;

/* Makes the threads every isolation = thread bulkhead of `rt` lacks, and
 * starts them when levee runs already (else server_workers_start). Main
 * thread, before `rt` is swapped in; nothing uses them yet. */
int server_bulkhead_threads(struct server *s, struct runtime *rt, char *err, size_t errlen) LV_WARN_UNUSED;
/* `rt` takes effect for its bulkheads (their limits and their threads:
 * bulkhead_apply) and its breakers (their thresholds: breaker_apply). Main
 * thread, once nothing can refuse `rt` any more. */
void server_protection_apply(struct server *s, struct runtime *rt);
/* Starts the threads of the workers not started yet. */
int server_workers_start(struct server *s) LV_WARN_UNUSED;
/* Starts the degradation tiers' tick on the main base (resilience/tiers.h),
 * reading the server's loops, Redis tier and Kafka. */
int server_tiers_start(struct server *s, char *err, size_t errlen) LV_WARN_UNUSED;

/* Returns the current runtime with a reference the caller must drop. */
struct runtime *server_runtime_acquire(struct server *s);
/* The current runtime, borrowed: main thread only, where it is swapped. */
static inline struct runtime *server_runtime(const struct server *s)
{
	return s->runtime.current;
}

#endif
