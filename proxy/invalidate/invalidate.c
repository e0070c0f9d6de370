/*
 * invalidate.c - the invalidate thread: publishing writes' invalidations,
 * spooling and replaying them, and applying everyone's (invalidate.h).
 *
 * Producing. Each item of a write becomes one message (message.h), keyed
 * "<service>|<kind>|<value>" so that Kafka keeps per-item order. Two modes:
 *   DIRECT  the outbox is empty: messages go to librdkafka; one that fails
 *           (delivery timeout, queue full, fatal producer error, shutdown)
 *           is appended to the outbox and the mode becomes SPOOL;
 *   SPOOL   new messages are appended to the outbox behind the backlog, so
 *           they keep their order; the replay sends the outbox from its
 *           cursor with a window of REPLAY_WINDOW in flight and acks the
 *           delivered prefix. A failure stops the window; once it is empty
 *           the replay restarts from the cursor after a backoff (what was
 *           delivered after the failure is sent again: consumers drop
 *           duplicates by id). An empty outbox with nothing in flight goes
 *           back to DIRECT.
 * At the outbox bound one "all" message (purge everything of the service)
 * is appended in the reserved space and later events are dropped as
 * superseded by it, counted; caching stops on this replica until the
 * outbox is empty again (INVAL_CACHE_OFF).
 *
 * Consuming. A message is applied to the L1 and, through this thread's own
 * Redis connection, to L2. Its offset is stored only when Redis answered
 * every purge of it (or there is no Redis), and in consumption order: a
 * FIFO of messages holds later offsets back behind earlier ones still
 * waiting for Redis. Malformed messages, other services' and duplicates are
 * complete at once, so they never stall a partition.
 *
 * Trusting the L1. The statistics (kafka.c) give, every second, whether a
 * broker is up and each assigned partition's position and high watermark.
 * The consumer is "behind" while it has no assignment, no broker, unknown
 * positions, or has not yet reached the high watermarks it saw when it
 * first fell behind. Behind for longer than lag_budget (or from start-up
 * until the first time it is caught up) the L1 is skipped
 * (INVAL_CACHE_SKIP_L1); when it catches up again the whole L1 is purged,
 * since events it missed may be still in some producer's outbox.
 *
 * A shared group. The group is this replica's alone, so every assignment
 * should give it every partition of the topic. Fewer means another
 * consumer (a levee with the same instance name, or the same group_id)
 * holds the rest, and each of the two misses the other's share of the
 * invalidations. That is logged as an error, shown in /status and
 * /metrics, and fails /readyz until an assignment gives this replica every
 * partition again. An assignment is the end of a rebalance, so a member
 * that died (a crash, then a restart under the same name) has been expired
 * by then and raises no false alarm. Blind spot: with a one-partition
 * topic, the member that holds the partition cannot tell (the other can).
 */
#include "invalidate/invalidate.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "cache/cache_ctx.h"
#include "cache/cache_loop.h"
#include "cache/l2.h"
#include "cache/redis.h"
#include "invalidate/dedup.h"
#include "invalidate/kafka.h"
#include "invalidate/lag.h"
#include "invalidate/message.h"
#include "invalidate/outbox.h"
#include "invalidate/replay.h"
#include "log.h"
#include "net/mailbox.h"
#include "stats.h"

#define APPLY_FIFO 4096u
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 10000
#define OUTBOX_RESERVE 4096u
#define TICK_MS 100

/* ---- metrics ----------------------------------------------------------- */

#define INVAL_COUNTERS(X)                                                                               \
	X(produced, "levee_kafka_events_produced_total", "Events handed to Kafka (new and replayed)")       \
	X(delivered, "levee_kafka_events_delivered_total", "Events Kafka acknowledged")                      \
	X(failed, "levee_kafka_events_failed_total", "Events Kafka did not take (then spooled)")             \
	X(spooled, "levee_kafka_events_spooled_total", "Events appended to the outbox")                     \
	X(replayed, "levee_kafka_outbox_replayed_total", "Outbox events Kafka acknowledged")                \
	X(superseded, "levee_kafka_events_superseded_total",                                                \
	  "Events not recorded because the outbox was full; a purge-everything event covers them")          \
	X(overflows, "levee_kafka_outbox_overflows_total", "Times the outbox reached outbox_max")            \
	X(lost, "levee_kafka_events_lost_total", "Events that could be neither sent nor spooled (I/O error)") \
	X(consumed, "levee_kafka_events_consumed_total", "Messages read from the topic")                    \
	X(applied, "levee_kafka_events_applied_total", "Events applied to the L1 and Redis")                \
	X(ignored, "levee_kafka_events_ignored_total", "Events for other services")                         \
	X(duplicates, "levee_kafka_duplicates_total", "Events dropped as already applied (same id)")       \
	X(redis_failed, "levee_kafka_redis_apply_failed_total", "Purges of consumed events Redis did not take") \
	X(l1_resets, "levee_cache_l1_resets_total", "Times the L1 was emptied after the invalidation consumer caught up")

static const double hist_le_ms[] = {1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000};
#define HIST_N (sizeof(hist_le_ms) / sizeof(hist_le_ms[0]))

static struct {
#define X(f, n, h) atomic_uint_fast64_t f;
	INVAL_COUNTERS(X)
#undef X
	atomic_uint_fast64_t malformed[MSG_E_COUNT];
	atomic_uint_fast64_t hist[HIST_N + 1];
	atomic_uint_fast64_t hist_sum_us, hist_count;
	atomic_int_fast64_t lag, behind_ms;
	atomic_int assigned, broker_up, spooling, overflowed;
	atomic_int topic_partitions, group_shared;
} st;

#define STAT(f) atomic_fetch_add_explicit(&st.f, 1, memory_order_relaxed)

/* ---- state ------------------------------------------------------------- */

enum mode { MODE_DIRECT, MODE_SPOOL };

struct apply_slot {
	int32_t partition;
	int64_t offset;
	unsigned pending; /* Redis purges not yet answered */
	bool reading;     /* still being applied: no completion may finish it */
};

static struct inval {
	bool on;
	struct cache *cache; /* the server's; purges apply to it */
	pthread_t thread;
	struct event_base *base;
	struct mailbox mb;
	struct event *ev_tick, *ev_sync, *ev_stop;
	struct lv_policy *policy;
	char service[LV_NAME_MAX], instance[LV_NAME_MAX], group[LV_NAME_MAX * 2 + 16];
	char boot[17];
	uint64_t seq;
	int stop_timeout_ms;

	struct redis *redis;
	struct l2 *l2;
	struct kafka *k;
	struct outbox *ob;
	struct dedup *dd;

	/* producing */
	enum mode mode;
	uint64_t replay_pos;
	struct replay_window win;
	bool replay_failed;
	uint64_t retry_at_ms, backoff_ms;
	bool overflowed;

	/* consuming */
	struct apply_slot fifo[APPLY_FIFO];
	unsigned fifo_head, fifo_n;
	bool paused;
	struct lag_watch lag;
	bool malformed_logged[MSG_E_COUNT];
} inv;

static _Atomic int cache_mode = INVAL_CACHE_ON;

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int64_t unix_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void mode_update(void)
{
	int m = inv.overflowed ? INVAL_CACHE_OFF : lag_trusted(&inv.lag, now_ms()) ? INVAL_CACHE_ON : INVAL_CACHE_SKIP_L1;
	int old = atomic_exchange(&cache_mode, m);
	if (old != m)
		log_info("invalidate: cache mode %s",
		         m == INVAL_CACHE_ON ? "normal" : m == INVAL_CACHE_SKIP_L1 ? "skip-l1 (consumer behind)"
		                                                                   : "off (outbox full)");
	atomic_store(&st.overflowed, inv.overflowed);
	atomic_store(&st.spooling, inv.mode == MODE_SPOOL);
	atomic_store(&st.behind_ms, (int64_t)lag_behind_ms(&inv.lag, now_ms()));
}

enum inval_cache_mode invalidate_cache_mode(void)
{
	return atomic_load_explicit(&cache_mode, memory_order_relaxed);
}

/* ---- producing --------------------------------------------------------- */

static void spool_sync_soon(void)
{
	if (inv.policy->kafka.outbox_fsync == LV_FSYNC_BATCH)
		event_active(inv.ev_sync, EV_TIMEOUT, 0);
}

static void on_sync(evutil_socket_t fd, short what, void *arg)
{
	if (inv.ob && outbox_sync(inv.ob) != LV_OK)
		log_error("invalidate: %s", outbox_error(inv.ob));
}

/* Encodes one event; its Kafka key goes to key, the JSON to val. */
static bool event_build(enum inval_kind kind, const char *p, size_t len, char *key, size_t kcap, size_t *klen,
                        char *val, size_t vcap, size_t *vlen)
{
	static __thread struct inval_msg m;
	char id[MSG_ID_MAX + 1];
	snprintf(id, sizeof(id), "%s.%s.%" PRIu64, inv.instance, inv.boot, ++inv.seq);
	memset(&m, 0, offsetof(struct inval_msg, items));
	m.id = (struct msg_str){id, strlen(id)};
	m.service = (struct msg_str){inv.service, strlen(inv.service)};
	m.origin = (struct msg_str){inv.instance, strlen(inv.instance)};
	m.ts = unix_ms();
	static const char *const names[] = {"key", "prefix", "tag", "all"};
	if (kind == INVAL_ALL) {
		m.all = true;
	} else {
		m.nitems = 1;
		m.items[0].kind = kind == INVAL_KEY ? MSG_KEY : kind == INVAL_PREFIX ? MSG_PREFIX : MSG_TAG;
		m.items[0].s = (struct msg_str){p, len};
	}
	int n = snprintf(key, kcap, "%s|%s|%.*s", inv.service, names[kind], (int)len, p);
	if (n < 0 || (size_t)n >= kcap)
		return false;
	*klen = (size_t)n;
	*vlen = msg_encode(&m, val, vcap);
	return *vlen != 0;
}

/* From now on new events go to the outbox, behind whatever is there. */
static void enter_spool(const char *why)
{
	if (inv.mode == MODE_SPOOL)
		return;
	inv.mode = MODE_SPOOL;
	inv.replay_pos = outbox_start(inv.ob);
	log_warn("invalidate: %s; spooling invalidations to the outbox", why);
}

static void spool(const void *key, size_t klen, const void *val, size_t vlen)
{
	int rc = outbox_append(inv.ob, key, klen, val, vlen, false);
	if (rc == OUTBOX_FULL) {
		if (!inv.overflowed) {
			char k[256], v[512];
			size_t kl, vl;
			STAT(overflows);
			if (event_build(INVAL_ALL, "", 0, k, sizeof(k), &kl, v, sizeof(v), &vl) &&
			    outbox_append(inv.ob, k, kl, v, vl, true) == LV_OK) {
				inv.overflowed = true;
				log_error("invalidate: the outbox is full (outbox_max); recorded one purge of everything "
				          "for service %s and stopped caching until it drains",
				          inv.service);
			} else {
				log_error("invalidate: the outbox is full and even its reserve failed: %s",
				          outbox_error(inv.ob));
			}
		}
		if (inv.overflowed) {
			STAT(superseded);
		} else {
			STAT(lost);
		}
	} else if (rc != LV_OK) {
		STAT(lost);
		log_error("invalidate: an invalidation could be neither sent nor spooled: %s", outbox_error(inv.ob));
	} else {
		STAT(spooled);
	}
	enter_spool("Kafka is not taking invalidations");
	spool_sync_soon();
	mode_update();
}

static void publish_one(enum inval_kind kind, const char *p, size_t len)
{
	char key[LV_NAME_MAX + 16 + MSG_TARGET_MAX], val[MSG_TARGET_MAX * 2 + 1024];
	size_t klen, vlen;
	if (!event_build(kind, p, len, key, sizeof(key), &klen, val, sizeof(val), &vlen)) {
		log_warn("invalidate: cannot encode an invalidation of %.*s (too long or not a valid item)", (int)len, p);
		return;
	}
	if (inv.mode == MODE_DIRECT && inv.k) {
		char err[256];
		if (kafka_produce(inv.k, key, klen, val, vlen, inv.service, NULL, err, sizeof(err)) == LV_OK) {
			STAT(produced);
			return;
		}
		STAT(failed);
		log_debug("invalidate: Kafka refused an event (%s); spooling it", err);
	}
	spool(key, klen, val, vlen);
}

struct pub {
	struct mb_item mb;
	unsigned n;
	struct {
		enum inval_kind kind;
		size_t off, len;
	} it[];
};

static void on_publish(struct mb_item *it)
{
	struct pub *pb = mb_container(it, struct pub, mb);
	const char *text = (const char *)&pb->it[pb->n];
	for (unsigned i = 0; i < pb->n; i++)
		publish_one(pb->it[i].kind, text + pb->it[i].off, pb->it[i].len);
	free(pb);
}

void invalidate_publish(const struct inval_item *items, unsigned n)
{
	if (!inv.on || !n)
		return;
	size_t text = 0;
	for (unsigned i = 0; i < n; i++)
		text += items[i].len;
	struct pub *pb = malloc(sizeof(*pb) + n * sizeof(pb->it[0]) + text);
	if (!pb) {
		STAT(lost);
		log_error("invalidate: out of memory; an invalidation was not broadcast");
		return;
	}
	pb->n = n;
	char *o = (char *)&pb->it[n];
	size_t off = 0;
	for (unsigned i = 0; i < n; i++) {
		pb->it[i].kind = items[i].kind;
		pb->it[i].off = off;
		pb->it[i].len = items[i].len;
		memcpy(o + off, items[i].p, items[i].len);
		off += items[i].len;
	}
	pb->mb.queued = false;
	if (mailbox_post(&inv.mb, &pb->mb, on_publish) != LV_OK) {
		STAT(lost);
		log_error("invalidate: the invalidate thread has stopped; an invalidation was not broadcast");
		free(pb);
	}
}

/* Replay: sends outbox records while the window has room. */
static void replay_pump(void)
{
	/* no broker: sending would only fill librdkafka's memory with records
	 * that time out; the statistics say when one is back */
	if (inv.mode != MODE_SPOOL || !inv.k || !atomic_load(&st.broker_up))
		return;
	if (inv.replay_failed) {
		if (inv.win.n || now_ms() < inv.retry_at_ms)
			return;
		inv.replay_failed = false;
		replay_restart(&inv.win);
		inv.replay_pos = outbox_start(inv.ob);
	}
	while (!replay_full(&inv.win)) {
		struct outbox_rec rec;
		int rc = outbox_next(inv.ob, &inv.replay_pos, &rec);
		if (rc == 0)
			break;
		if (rc < 0) {
			log_error("invalidate: cannot read the outbox: %s", outbox_error(inv.ob));
			inv.replay_failed = true;
			inv.retry_at_ms = now_ms() + BACKOFF_MAX_MS;
			return;
		}
		unsigned slot = replay_next_slot(&inv.win);
		char err[256];
		if (kafka_produce(inv.k, rec.key, rec.klen, rec.val, rec.vlen, inv.service,
		                  (void *)(uintptr_t)(slot + 1), err, sizeof(err)) != LV_OK) {
			inv.replay_failed = true;
			inv.retry_at_ms = now_ms() + inv.backoff_ms;
			log_debug("invalidate: replay paused: %s", err);
			return;
		}
		STAT(produced);
		replay_push(&inv.win, rec.next);
	}
	if (inv.win.n == 0 && outbox_start(inv.ob) == outbox_end(inv.ob)) {
		inv.mode = MODE_DIRECT;
		inv.overflowed = false;
		log_info("invalidate: the outbox has drained; publishing directly again");
		mode_update();
	}
}

static void on_delivered(void *ctx, void *opaque, int err, const char *errstr, const void *key, size_t klen,
                         const void *val, size_t vlen)
{
	uintptr_t tag = (uintptr_t)opaque;
	if (tag == 0) { /* a direct message */
		if (!err) {
			STAT(delivered);
			return;
		}
		STAT(failed);
		log_debug("invalidate: delivery failed (%s); spooling", errstr);
		spool(key, klen, val, vlen);
		return;
	}
	unsigned slot = (unsigned)(tag - 1);
	if (err) {
		STAT(failed);
		if (!inv.replay_failed) {
			log_warn("invalidate: outbox replay failed (%s); retrying in %" PRIu64 " ms", errstr, inv.backoff_ms);
			inv.replay_failed = true;
			inv.retry_at_ms = now_ms() + inv.backoff_ms;
			inv.backoff_ms = inv.backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : inv.backoff_ms * 2;
		}
	} else {
		STAT(delivered);
		STAT(replayed);
		inv.backoff_ms = BACKOFF_MIN_MS;
	}
	uint64_t ack = replay_done(&inv.win, slot, !err);
	if (ack && outbox_ack(inv.ob, ack) != LV_OK)
		log_error("invalidate: %s", outbox_error(inv.ob));
	spool_sync_soon();
	replay_pump();
}

static void on_producer_reset(void *ctx)
{
	/* every message in flight came back failed (and was spooled or marked
	 * for retry): nothing else to do */
	log_info("invalidate: producer replaced; %u replay(s) in flight", inv.win.n);
}

/* ---- consuming --------------------------------------------------------- */

/* Stores the offsets of the finished messages at the head of the FIFO. */
static void fifo_advance(void)
{
	while (inv.fifo_n) {
		struct apply_slot *a = &inv.fifo[inv.fifo_head];
		if (a->pending || a->reading)
			break;
		kafka_store_offset(inv.k, a->partition, a->offset);
		inv.fifo_head = (inv.fifo_head + 1) % APPLY_FIFO;
		inv.fifo_n--;
	}
	if (inv.paused && inv.fifo_n < APPLY_FIFO / 2) {
		inv.paused = false;
		kafka_consume_pause(inv.k, false);
	}
}

static void on_redis_applied(void *arg, bool ok)
{
	struct apply_slot *a = arg;
	if (!ok)
		STAT(redis_failed);
	if (a->pending)
		a->pending--;
	fifo_advance();
}

/* An event this replica published itself was applied to its L1 before the
 * write was answered: only Redis is purged again (in case it was away). */
static void apply(struct apply_slot *a, const struct inval_msg *m, bool own)
{
	static const enum cache_purge_kind kinds[] = {
	    [MSG_KEY] = CACHE_PURGE_URL, [MSG_PREFIX] = CACHE_PURGE_PREFIX, [MSG_TAG] = CACHE_PURGE_TAG};
	bool pending;
	if (m->all) {
		if (own)
			pending = cache_l2_purge(inv.l2, CACHE_PURGE_ALL, inv.service, "/", 1, on_redis_applied, a);
		else
			cache_purge(inv.cache, inv.l2, CACHE_PURGE_ALL, inv.service, "/", 1, on_redis_applied, a, &pending);
		a->pending += pending;
	}
	for (size_t i = 0; i < m->nitems; i++) {
		const struct msg_item *it = &m->items[i];
		if (own)
			pending = cache_l2_purge(inv.l2, kinds[it->kind], inv.service, it->s.p, it->s.len,
			                         on_redis_applied, a);
		else
			cache_purge(inv.cache, inv.l2, kinds[it->kind], inv.service, it->s.p, it->s.len, on_redis_applied, a,
			            &pending);
		a->pending += pending;
	}
}

static void observe_latency(int64_t ts)
{
	if (ts < 0)
		return;
	int64_t d = unix_ms() - ts;
	if (d < 0)
		d = 0;
	unsigned b = 0;
	while (b < HIST_N && (double)d > hist_le_ms[b])
		b++;
	atomic_fetch_add_explicit(&st.hist[b], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&st.hist_sum_us, (uint64_t)d * 1000u, memory_order_relaxed);
	atomic_fetch_add_explicit(&st.hist_count, 1, memory_order_relaxed);
}

static void malformed(int code, const struct msg_error *e, const struct kafka_msg *km)
{
	atomic_fetch_add_explicit(&st.malformed[code], 1, memory_order_relaxed);
	if (inv.malformed_logged[code])
		return;
	inv.malformed_logged[code] = true;
	log_warn("invalidate: skipped a malformed message (%s: %s) at partition %d offset %" PRId64
	         "; further ones of this kind are only counted (levee_kafka_malformed_total)",
	         msg_strerror(code), e->detail ? e->detail : "", km->partition, km->offset);
}

static void on_message(void *ctx, const struct kafka_msg *km)
{
	static char scratch[MSG_MAX_BYTES];
	static struct inval_msg m;
	STAT(consumed);
	struct apply_slot *a = &inv.fifo[(inv.fifo_head + inv.fifo_n) % APPLY_FIFO];
	*a = (struct apply_slot){km->partition, km->offset, 0, true};
	inv.fifo_n++;
	if (inv.fifo_n == APPLY_FIFO) {
		inv.paused = true;
		kafka_consume_pause(inv.k, true);
	}
	size_t slen = strlen(inv.service);
	if (km->service_hdr && (km->service_hdr_len != slen || memcmp(km->service_hdr, inv.service, slen) != 0)) {
		STAT(ignored); /* another service's: not even parsed */
		goto done;
	}
	struct msg_error e = {0};
	int rc = msg_decode(km->value, km->vlen, scratch, sizeof(scratch), &m, &e);
	if (rc != MSG_OK) {
		malformed(rc, &e, km);
		goto done;
	}
	if (m.service.len != slen || memcmp(m.service.p, inv.service, slen) != 0) {
		STAT(ignored);
		goto done;
	}
	if (dedup_check_and_add(inv.dd, m.id.p, m.id.len)) {
		STAT(duplicates);
		goto done;
	}
	/* own: the same origin and the same boot (a restarted replica's old
	 * events are applied in full: its L1 is new) */
	bool own = m.origin.p && m.origin.len == strlen(inv.instance) &&
	           memcmp(m.origin.p, inv.instance, m.origin.len) == 0 && m.id.len > m.origin.len + 17 &&
	           memcmp(m.id.p + m.origin.len + 1, inv.boot, 16) == 0;
	apply(a, &m, own);
	STAT(applied);
	observe_latency(m.ts >= 0 ? m.ts : km->timestamp_ms);
done:
	a->reading = false;
	fifo_advance();
}

static void on_assignment(void *ctx, const struct kafka_assignment *a)
{
	if (!a->partitions)
		return; /* the metadata did not come: the previous verdict stands */
	atomic_store(&st.topic_partitions, (int)a->partitions);
	bool shared = a->assigned < a->partitions;
	if (atomic_exchange(&st.group_shared, shared) == shared)
		return;
	if (shared)
		log_error("invalidate: group %s is shared: this replica got %u of the %u partitions of %s, "
		          "another consumer of the group (a levee with the same [kafka] instance %s, or "
		          "group_id) has the others, and each misses the other's invalidations. Give every "
		          "replica its own instance (POD_NAME); not ready until then",
		          inv.group, a->assigned, a->partitions, inv.policy->kafka.topic, inv.instance);
	else
		log_info("invalidate: group %s is this replica's alone again (all %u partitions); ready",
		         inv.group, a->partitions);
}

bool invalidate_ready(const char **why)
{
	if (inv.on && atomic_load(&st.group_shared)) {
		*why = "another levee consumes this replica's Kafka group (same [kafka] instance)";
		return false;
	}
	return true;
}

bool invalidate_health(bool *on, int64_t *lag, int64_t *spooled)
{
	*on = inv.on;
	*lag = atomic_load(&st.lag);
	struct outbox_stats os = {0};
	if (inv.ob)
		outbox_stats(inv.ob, &os);
	*spooled = (int64_t)os.pending_records;
	return atomic_load(&st.broker_up) != 0;
}

static void on_assigned(void *ctx, unsigned n)
{
	atomic_store(&st.assigned, (int)n);
	lag_assigned(&inv.lag, n, now_ms());
	mode_update();
}

static void on_lag(void *ctx, const struct kafka_lag *l)
{
	atomic_store(&st.lag, l->lag);
	if (atomic_exchange(&st.broker_up, l->broker_up) != l->broker_up || !inv.lag.last_stats_ms) {
		if (l->broker_up) {
			log_info("invalidate: Kafka broker reachable");
			/* replay the outbox now, not after the backoff */
			inv.backoff_ms = BACKOFF_MIN_MS;
			inv.retry_at_ms = 0;
		} else
			log_warn("invalidate: no Kafka broker reachable (%s)", inv.policy->kafka.brokers);
	}
	/* Without a broker, an event handed to librdkafka would wait in its
	 * memory for delivery_timeout before it fails and is spooled, and a
	 * crash meanwhile would lose it: write new ones to disk at once. */
	if (!l->broker_up && inv.k)
		enter_spool("no Kafka broker is reachable");
	else
		replay_pump();
	bool first = !inv.lag.synced_once;
	if (lag_stats(&inv.lag, l, now_ms()) == LAG_CAUGHT_UP_RESET) {
		/* the L1 may hold entries that missed purges still waiting in some
		 * producer's outbox, or published before this consumer's start
		 * position: start it afresh */
		size_t n = cache_purge(inv.cache, NULL, CACHE_PURGE_ALL, inv.service, "/", 1, NULL, NULL, NULL);
		STAT(l1_resets);
		log_info("invalidate: consumer %s; L1 emptied (%zu entries) and trusted again",
		         first ? "in sync" : "caught up", n);
	}
	mode_update();
}

/* ---- the thread -------------------------------------------------------- */

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	lag_tick(&inv.lag, now_ms());
	replay_pump();
	mode_update();
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
	mailbox_flush(&inv.mb); /* the workers have stopped: publish what they handed over */
	if (inv.k) {
		unsigned before = kafka_in_flight(inv.k);
		kafka_close(inv.k, inv.stop_timeout_ms); /* what is left is spooled by on_delivered */
		log_info("invalidate: stopped; %u event(s) were in flight, outbox holds %" PRIu64 " byte(s)", before,
		         outbox_end(inv.ob) - outbox_start(inv.ob));
	}
	if (inv.ob && outbox_sync(inv.ob) != LV_OK)
		log_error("invalidate: %s", outbox_error(inv.ob));
	event_base_loopbreak(inv.base);
}

/* Posted by invalidate_stop() from the main thread. */
static void on_stop_posted(struct mb_item *it)
{
	on_stop(-1, 0, NULL);
}

static void *inval_main(void *arg)
{
	event_base_dispatch(inv.base);
	return NULL;
}

void invalidate_instance_name(const struct lv_policy *p, char *out, size_t cap)
{
	const char *v = p->kafka.instance[0] ? p->kafka.instance : getenv("POD_NAME");
	if (!v || !*v)
		v = getenv("HOSTNAME");
	char host[256];
	if ((!v || !*v) && gethostname(host, sizeof(host)) == 0) {
		host[sizeof(host) - 1] = '\0';
		v = host;
	}
	size_t o = 0;
	for (const char *s = v ? v : "levee"; *s && o + 1 < cap; s++) /* message ids are printable ASCII */
		out[o++] = (*s > ' ' && *s < 0x7f && *s != '|') ? *s : '_';
	out[o] = '\0';
}

static const struct cache_publisher invalidate_publisher = {
    .publish = invalidate_publish,
    .mode = invalidate_cache_mode,
};

int invalidate_start(const struct lv_policy *p, struct cache *c, char *err, size_t errlen)
{
	if (!policy_kafka_on(p))
		return LV_OK;
	inv.cache = c;
	inv.policy = (struct lv_policy *)p;
	policy_ref(inv.policy);
	snprintf(inv.service, sizeof(inv.service), "%s", p->service);
	invalidate_instance_name(p, inv.instance, sizeof(inv.instance));
	if (p->kafka.group_id[0])
		snprintf(inv.group, sizeof(inv.group), "%s", p->kafka.group_id);
	else
		snprintf(inv.group, sizeof(inv.group), "levee.%s.%s", inv.service, inv.instance);
	uint64_t rnd;
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = (uint64_t)unix_ms() ^ ((uint64_t)getpid() << 32);
	snprintf(inv.boot, sizeof(inv.boot), "%016" PRIx64, rnd);
	inv.backoff_ms = BACKOFF_MIN_MS;
	lag_init(&inv.lag, p->kafka.lag_budget_ms, now_ms());

	static const enum outbox_sync syncs[] = {[LV_FSYNC_ALWAYS] = OUTBOX_SYNC_ALWAYS,
	                                         [LV_FSYNC_BATCH] = OUTBOX_SYNC_BATCH,
	                                         [LV_FSYNC_NEVER] = OUTBOX_SYNC_NEVER};
	struct outbox_cfg oc = {p->kafka.outbox, p->kafka.outbox_max, OUTBOX_RESERVE, syncs[p->kafka.outbox_fsync]};
	struct outbox_recovery rep;
	if (outbox_open(&oc, &inv.ob, &rep, err, errlen) != LV_OK)
		return LV_ERR;
	if (rep.pending_records) {
		inv.mode = MODE_SPOOL;
		inv.replay_pos = outbox_start(inv.ob);
		log_info("invalidate: the outbox holds %" PRIu64 " event(s) from before; replaying them",
		         rep.pending_records);
	}
	if (!(inv.dd = dedup_new((uint32_t)p->kafka.dedup_window))) {
		snprintf(err, errlen, "invalidate: out of memory for the dedup window");
		return LV_ERR;
	}
	inv.base = event_base_new();
	/* no bound but the events' own: a write's events are never dropped,
	 * and Kafka's trouble goes to the outbox, not here */
	if (!inv.base || mailbox_init(&inv.mb, inv.base, 0) != LV_OK) {
		snprintf(err, errlen, "invalidate: cannot create its event loop");
		return LV_ERR;
	}
	if (cache_l2_open(inv.base, p, &inv.redis, &inv.l2, err, errlen) != LV_OK)
		return LV_ERR;
	static const char *const protocols[] = {"plaintext", "ssl", "sasl_plaintext", "sasl_ssl"};
	static const char *const mechanisms[] = {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"};
	bool sasl = p->kafka.security_protocol >= 2;
	struct kafka_config kc = {
	    .brokers = p->kafka.brokers,
	    .topic = p->kafka.topic,
	    .group_id = inv.group,
	    .client_id = inv.instance,
	    .security_protocol = protocols[p->kafka.security_protocol],
	    .sasl_mechanism = sasl ? mechanisms[p->kafka.sasl_mechanism] : NULL,
	    .sasl_username = sasl ? p->kafka.sasl_username : NULL,
	    .sasl_password = sasl ? p->kafka.sasl_password : NULL,
	    .ssl_ca = strcmp(p->kafka.ssl_ca, "system") != 0 ? p->kafka.ssl_ca : NULL,
	    .from_earliest = p->kafka.start_from == LV_START_EARLIEST,
	    .delivery_timeout_ms = p->kafka.delivery_timeout_ms,
	    .linger_ms = p->kafka.linger_ms,
	};
	static const struct kafka_handlers h = {on_delivered, on_message, on_lag, on_assigned, on_producer_reset,
	                                        on_assignment};
	if (!(inv.k = kafka_new(inv.base, &kc, &h, NULL, err, errlen)))
		return LV_ERR;
	inv.ev_tick = event_new(inv.base, -1, EV_PERSIST, on_tick, NULL);
	inv.ev_sync = event_new(inv.base, -1, 0, on_sync, NULL);
	inv.ev_stop = event_new(inv.base, -1, 0, on_stop, NULL);
	struct timeval tv = {0, TICK_MS * 1000};
	if (!inv.ev_tick || !inv.ev_sync || !inv.ev_stop || event_add(inv.ev_tick, &tv) < 0) {
		snprintf(err, errlen, "invalidate: cannot register events");
		return LV_ERR;
	}
	mode_update();
	if (pthread_create(&inv.thread, NULL, inval_main, NULL) != 0) {
		snprintf(err, errlen, "invalidate: cannot start its thread");
		return LV_ERR;
	}
	inv.on = true;
	cache_set_publisher(inv.cache, &invalidate_publisher);
	log_info("invalidate: Kafka %s, topic %s, group %s, instance %s, outbox %s", p->kafka.brokers,
	         p->kafka.topic, inv.group, inv.instance, p->kafka.outbox);
	return LV_OK;
}

void invalidate_stop(int timeout_ms)
{
	if (!inv.on)
		return;
	inv.stop_timeout_ms = timeout_ms;
	/* Through the mailbox, not event_active() on inv.base: libevent runs
	 * without locks here, so another thread must not touch a base's events
	 * while its thread runs it. The post cannot fail (it allocates nothing,
	 * and the mailbox is open until below); if it ever did, the event is
	 * the lesser evil: the thread sees it at its next tick. */
	static struct mb_item stop_item;
	if (mailbox_post(&inv.mb, &stop_item, on_stop_posted) != LV_OK)
		event_active(inv.ev_stop, EV_TIMEOUT, 0);
	pthread_join(inv.thread, NULL);
	inv.on = false;
	mailbox_destroy(&inv.mb);
	/* Redis first: its callbacks (ECLOSED) still store offsets */
	l2_free(inv.l2);
	if (inv.redis)
		redis_free(inv.redis);
	kafka_free(inv.k);
	inv.k = NULL;
	event_free(inv.ev_tick);
	event_free(inv.ev_sync);
	event_free(inv.ev_stop);
	outbox_close(inv.ob);
	inv.ob = NULL;
	dedup_free(inv.dd);
	event_base_free(inv.base);
	policy_unref(inv.policy);
}

/* ---- metrics and status ------------------------------------------------ */

void invalidate_render_prometheus(void *file)
{
	FILE *f = file;
	if (!inv.policy)
		return;
#define X(fld, n, h)                                                                                           \
	fprintf(f, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", n, h, n, n,                                     \
	        (unsigned long long)atomic_load_explicit(&st.fld, memory_order_relaxed));
	INVAL_COUNTERS(X)
#undef X
	fputs("# HELP levee_kafka_malformed_total Messages skipped as malformed, by reason\n"
	      "# TYPE levee_kafka_malformed_total counter\n",
	      f);
	for (int i = 1; i < MSG_E_COUNT; i++) {
		char value[PROM_VALUE_MAX];
		fprintf(f, "levee_kafka_malformed_total{reason=\"%s\"} %llu\n", prom_value(value, msg_strerror(i)),
		        (unsigned long long)atomic_load(&st.malformed[i]));
	}
	struct outbox_stats os = {0};
	if (inv.ob)
		outbox_stats(inv.ob, &os);
	fprintf(f,
	        "# HELP levee_kafka_outbox_events Events waiting in the outbox\n# TYPE levee_kafka_outbox_events gauge\n"
	        "levee_kafka_outbox_events %llu\n"
	        "# HELP levee_kafka_outbox_bytes Bytes waiting in the outbox\n# TYPE levee_kafka_outbox_bytes gauge\n"
	        "levee_kafka_outbox_bytes %llu\n"
	        "# HELP levee_kafka_outbox_max_bytes The outbox bound\n# TYPE levee_kafka_outbox_max_bytes gauge\n"
	        "levee_kafka_outbox_max_bytes %llu\n"
	        "# HELP levee_kafka_consumer_lag_messages Messages of the topic not yet consumed (all assigned partitions)\n"
	        "# TYPE levee_kafka_consumer_lag_messages gauge\nlevee_kafka_consumer_lag_messages %lld\n"
	        "# HELP levee_kafka_behind_seconds How long the consumer has been behind (0 when caught up)\n"
	        "# TYPE levee_kafka_behind_seconds gauge\nlevee_kafka_behind_seconds %.3f\n"
	        "# HELP levee_cache_l1_trusted 1 when the L1 is used, 0 while the invalidation consumer is behind its "
	        "lag budget or caching is off\n"
	        "# TYPE levee_cache_l1_trusted gauge\nlevee_cache_l1_trusted %d\n"
	        "# HELP levee_kafka_assigned_partitions Partitions of the topic assigned to this replica\n"
	        "# TYPE levee_kafka_assigned_partitions gauge\nlevee_kafka_assigned_partitions %d\n"
	        "# HELP levee_kafka_topic_partitions Partitions of the topic, as of the last assignment\n"
	        "# TYPE levee_kafka_topic_partitions gauge\nlevee_kafka_topic_partitions %d\n"
	        "# HELP levee_kafka_group_shared 1 while another consumer shares this replica's group "
	        "(assigned fewer partitions than the topic has); /readyz fails meanwhile\n"
	        "# TYPE levee_kafka_group_shared gauge\nlevee_kafka_group_shared %d\n"
	        "# HELP levee_kafka_broker_up 1 while librdkafka's statistics show a broker up, 0 while none is "
	        "reachable (invalidations then go to the outbox)\n"
	        "# TYPE levee_kafka_broker_up gauge\nlevee_kafka_broker_up %d\n",
	        (unsigned long long)os.pending_records, (unsigned long long)os.pending_bytes,
	        (unsigned long long)os.max_bytes, (long long)atomic_load(&st.lag),
	        (double)atomic_load(&st.behind_ms) / 1000.0, invalidate_cache_mode() == INVAL_CACHE_ON,
	        atomic_load(&st.assigned), atomic_load(&st.topic_partitions), atomic_load(&st.group_shared),
	        atomic_load(&st.broker_up) != 0);
	fputs("# HELP levee_kafka_apply_latency_seconds From an event's timestamp to its application here\n"
	      "# TYPE levee_kafka_apply_latency_seconds histogram\n",
	      f);
	uint64_t cum = 0;
	for (unsigned b = 0; b <= HIST_N; b++) {
		cum += atomic_load(&st.hist[b]);
		if (b < HIST_N)
			fprintf(f, "levee_kafka_apply_latency_seconds_bucket{le=\"%g\"} %llu\n", hist_le_ms[b] / 1000.0,
			        (unsigned long long)cum);
		else
			fprintf(f, "levee_kafka_apply_latency_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
	}
	fprintf(f, "levee_kafka_apply_latency_seconds_sum %.6f\nlevee_kafka_apply_latency_seconds_count %llu\n",
	        (double)atomic_load(&st.hist_sum_us) / 1e6, (unsigned long long)atomic_load(&st.hist_count));
}

void invalidate_status_json(void *file)
{
	FILE *f = file;
	if (!inv.policy) {
		fputs("\"kafka\":{\"enabled\":false}", f);
		return;
	}
	struct outbox_stats os = {0};
	if (inv.ob)
		outbox_stats(inv.ob, &os);
	int m = invalidate_cache_mode();
	int64_t behind = atomic_load(&st.behind_ms);
	fprintf(f,
	        "\"kafka\":{\"enabled\":true,\"topic\":\"%s\",\"group\":\"%s\",\"instance\":\"%s\","
	        "\"broker_up\":%s,\"assigned_partitions\":%d,\"topic_partitions\":%d,\"group_shared\":%s,"
	        "\"publishing\":\"%s\",\"outbox\":{\"events\":%llu,"
	        "\"bytes\":%llu,\"max_bytes\":%llu,\"overflowed\":%s},\"consumer_lag\":%lld,\"behind_ms\":%lld,"
	        "\"lag_budget_ms\":%llu,\"over_budget\":%s,\"cache\":\"%s\"}",
	        inv.policy->kafka.topic, inv.group, inv.instance, atomic_load(&st.broker_up) ? "true" : "false",
	        atomic_load(&st.assigned), atomic_load(&st.topic_partitions),
	        atomic_load(&st.group_shared) ? "true" : "false", atomic_load(&st.spooling) ? "outbox" : "direct",
	        (unsigned long long)os.pending_records, (unsigned long long)os.pending_bytes,
	        (unsigned long long)os.max_bytes, atomic_load(&st.overflowed) ? "true" : "false",
	        (long long)atomic_load(&st.lag), (long long)behind,
	        (unsigned long long)inv.policy->kafka.lag_budget_ms,
	        behind > (int64_t)inv.policy->kafka.lag_budget_ms ? "true" : "false",
	        m == INVAL_CACHE_ON ? "normal" : m == INVAL_CACHE_SKIP_L1 ? "skip-l1" : "off");
}
