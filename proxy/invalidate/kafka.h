/*
 * kafka.h - levee's one wrapper around librdkafka: an idempotent producer
 * and a group consumer of the invalidation topic, driven from one libevent
 * loop (the invalidate thread's).
 *
 * Why queue forwarding and not a thread that blocks in poll: librdkafka
 * already runs its own I/O threads. Its main (producer) and consumer queues
 * are forwarded to a pipe with rd_kafka_queue_io_event_enable(), and the
 * owning event loop drains them with zero-timeout polls when the pipe is
 * readable (and on a 100 ms safety tick). So every callback below runs on
 * that loop, never on a librdkafka thread and never on a worker, and
 * nothing ever blocks in librdkafka except kafka_close() at shutdown.
 *
 * Thread: every function must be called on the loop given to kafka_new().
 */
#ifndef LEVEE_INVALIDATE_KAFKA_H
#define LEVEE_INVALIDATE_KAFKA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy.h"

struct event_base;
struct kafka;

#define KAFKA_MAX_PARTITIONS 256

/* What the statistics say about the consumer, once a second. */
struct kafka_lag {
	bool broker_up;        /* at least one broker connection is UP */
	unsigned nparts;       /* assigned partitions seen in the statistics */
	unsigned nknown;       /* of which the position and high watermark are known */
	int64_t lag;           /* sum over known partitions of high watermark - position */
	int32_t part[KAFKA_MAX_PARTITIONS];
	int64_t pos[KAFKA_MAX_PARTITIONS], hi[KAFKA_MAX_PARTITIONS];
};

/* What one assignment says of this replica's consumer group. The group is
 * per replica by design (docs/invalidation.md): the coordinator's assignment
 * gives a lone member every partition of the topic, so fewer means another
 * consumer in the group holds the rest. */
struct kafka_assignment {
	unsigned assigned;   /* partitions assigned to this replica (possibly none) */
	unsigned partitions; /* partitions of the topic; 0 when the metadata did not say */
};

/* One consumed message; pointers valid during the callback only. */
struct kafka_msg {
	int32_t partition;
	int64_t offset;
	const void *key, *value;
	size_t klen, vlen;
	const char *service_hdr; /* the levee-service header, or NULL */
	size_t service_hdr_len;
	int64_t timestamp_ms;    /* the record's own timestamp, or -1 */
};

struct kafka_handlers {
	/* A produced message's fate: err 0 delivered, else a librdkafka
	 * error code (text in errstr). `opaque` is what kafka_produce got;
	 * key and value are the message's, for spooling a failed one. */
	void (*delivered)(void *ctx, void *opaque, int err, const char *errstr, const void *key, size_t klen,
	                  const void *val, size_t vlen);
	void (*message)(void *ctx, const struct kafka_msg *m);
	void (*lag)(void *ctx, const struct kafka_lag *l);
	/* Partitions assigned (n > 0) or revoked (n == 0). */
	void (*assigned)(void *ctx, unsigned n);
	/* The producer hit a fatal error; it has been replaced. */
	void (*producer_reset)(void *ctx);
	/* After each assignment (not a revocation), with the topic's
	 * partition count. */
	void (*assignment)(void *ctx, const struct kafka_assignment *a);
};

struct kafka_config {
	const char *brokers, *topic, *group_id, *client_id;
	/* librdkafka's names ("sasl_ssl", "SCRAM-SHA-512"); NULL or "" leave
	 * librdkafka's defaults. These strings are not copied: they must
	 * outlive the struct kafka (levee's live in the policy it holds). */
	const char *security_protocol, *sasl_mechanism, *sasl_username, *sasl_password, *ssl_ca;
	bool from_earliest;
	uint64_t delivery_timeout_ms, linger_ms;
};

struct kafka *kafka_new(struct event_base *base, const struct kafka_config *cfg, const struct kafka_handlers *h,
                        void *ctx, char *err, size_t errlen);

/* Queues one message (copied). LV_OK: `delivered` will be called exactly
 * once with `opaque`. LV_ERR: not queued (queue full, producer failed);
 * the reason is in err. */
int kafka_produce(struct kafka *k, const void *key, size_t klen, const void *val, size_t vlen,
                  const char *service, void *opaque, char *err, size_t errlen) LV_WARN_UNUSED;

/* The message at `offset` of `partition` is applied: its successor is
 * where this group resumes (committed by librdkafka's auto-commit). */
void kafka_store_offset(struct kafka *k, int32_t partition, int64_t offset);

/* Stops consuming for now (back-pressure) or resumes. */
void kafka_consume_pause(struct kafka *k, bool pause);

/* Messages produced and not yet reported delivered or failed. */
unsigned kafka_in_flight(const struct kafka *k);

/* Shutdown: waits up to timeout_ms for in-flight messages, then purges
 * what is left (each gets `delivered` with an error, so it can be
 * spooled), commits stored offsets and leaves the group. Blocks. */
void kafka_close(struct kafka *k, int timeout_ms);
/* A librdkafka log line (syslog `level`) in levee's log, from `who`
 * ("kafka", "control: kafka"): errors only when worse than a broker that is
 * down, which the callers report themselves. Any thread. */
void kafka_log_line(const char *who, int level, const char *fac, const char *buf);
void kafka_free(struct kafka *k);

/* Parses librdkafka's statistics JSON for `topic` (exposed for tests). */
int kafka_stats_parse(const char *json, size_t len, const char *topic, struct kafka_lag *out) LV_WARN_UNUSED;

#endif
