/*
 * server.h - process-wide state: the current runtime, the workers, and the
 * flags the admin endpoints report. One instance, owned by main.c.
 *
 * Threads: `current` is swapped by the main thread under `lock` and read by
 * workers under the same lock, only when told a new one exists. Everything
 * else here is an atomic read by any thread.
 */
#ifndef LEVEE_SERVER_H
#define LEVEE_SERVER_H

#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>

#include "cpus.h"
#include "policy.h"
#include "reload_status.h"
#include "runtime.h"

struct worker;

struct server {
	pthread_mutex_t lock;
	struct runtime *current;

	struct worker **workers;
	unsigned nworkers;
	struct cpus cpus; /* what sized the workers, main thread at start-up only */
	struct event_base *main_base;

	atomic_uint_fast64_t conns; /* open client connections, all workers */
	atomic_int draining;
	atomic_int upstream_reachable;
	struct redis *redis;         /* main thread's Redis tier, for admin purges */
	struct l2 *l2;

	/* reload bookkeeping, main thread only (read by admin on the same thread) */
	char policy_path[LV_PATH_MAX];
	struct lv_overrides ov;
	struct reload_status reload;
};

extern struct server srv;

/* Returns the current runtime with a reference the caller must drop. */
struct runtime *server_runtime_acquire(void);

#endif
