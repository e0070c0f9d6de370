/*
 * invalidate.h - invalidation across replicas: what a write publishes, what
 * every replica applies, and whether this replica's L1 can be trusted.
 *
 * A worker that saw a successful write purges its own L1 and Redis first
 * (cache.c), then hands the invalidated items to invalidate_publish(). The
 * invalidate thread, one per process with its own event loop, Redis
 * connection and librdkafka handles (kafka.c), publishes one message per
 * item, spools what Kafka does not take to the outbox (outbox.c) and
 * replays it, and consumes the topic: each event from any producer is
 * de-duplicated by id (dedup.c), applied to the L1 and to Redis, and only
 * then has its offset stored. docs/invalidation.md explains the design.
 *
 * Threads: invalidate_publish() and the invalidate_cache_mode() check are
 * called by workers; the rest by the main thread.
 */
#ifndef LEVEE_INVALIDATE_H
#define LEVEE_INVALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/cache_ctx.h" /* struct inval_item, enum inval_cache_mode: the cache's contract */
#include "policy.h"

/* Start-up, after the cache exists: opens the outbox (replaying what it
 * holds as soon as Kafka answers), starts the thread, and makes itself the
 * publisher of cache `c` (cache_set_publisher), whose L1 and Redis the
 * events it consumes purge; `c` outlives invalidate_stop(). LV_OK without
 * doing anything when the policy has no [kafka] brokers. */
int invalidate_start(const struct lv_policy *p, struct cache *c, char *err, size_t errlen) LV_WARN_UNUSED;

/* Shutdown (SIGTERM, after the drain): waits up to timeout_ms for Kafka to
 * take what is in flight, spools the rest to the outbox, commits offsets,
 * stops the thread. */
void invalidate_stop(int timeout_ms);

/* A worker's write succeeded and it purged locally: broadcast the items.
 * Copies them; never blocks. */
void invalidate_publish(const struct inval_item *items, unsigned n);

/* What the cache may do now. */
enum inval_cache_mode invalidate_cache_mode(void);

/* False, with the reason, while another levee consumes this replica's
 * group: each of the two would miss the other's invalidations. Any thread. */
bool invalidate_ready(const char **why);

/* For the tier signals: whether a broker is reachable (false with *on
 * false: Kafka is off), the consumer's lag in messages (-1: unknown) and
 * the invalidations waiting in the outbox. Any thread. */
bool invalidate_health(bool *on, int64_t *lag, int64_t *spooled);

/* This replica's name on Kafka ([kafka] instance, else $POD_NAME, $HOSTNAME
 * or the host name), printable ASCII without '|': for message ids, the
 * client id, and the control topic's events. */
void invalidate_instance_name(const struct lv_policy *p, char *out, size_t cap);

/* /metrics and /status. */
void invalidate_render_prometheus(void *file);
void invalidate_status_json(void *file);

#endif
