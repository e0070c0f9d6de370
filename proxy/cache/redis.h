/*
 * redis.h - the Redis client a worker thread uses for the L2 cache tier.
 *
 * One struct redis per worker, living on that worker's event_base, built on
 * hiredis's async API and its libevent adapter. hiredis has no reconnect, no
 * per-command timeout and no Sentinel support; this module adds all three,
 * plus a breaker on Redis itself, and the rest of levee sees only callbacks.
 *
 * Contract with callers (the invariants redis.c keeps):
 *  - Every command accepted by redis_command() (it returned LV_OK) gets its
 *    callback exactly once: with a reply, or with an error code.
 *  - The callback never runs inside redis_command(): failures that are known
 *    at once (down, breaker open, too many in flight) are delivered through
 *    the event loop, so a caller is never re-entered.
 *  - Nothing blocks the event loop: connects are non-blocking, host names
 *    are resolved on the resolver's thread (resolver.h) before every
 *    connection attempt, and every wait has a timer.
 *  - redis_free() may be called at any time, also from inside a callback;
 *    every command still outstanding then gets REDIS_ECLOSED, inside
 *    redis_free(), before it returns.
 *
 * Thread: every function, redis_get_stats() included, must be called on the
 * thread that runs <base>. The admin thread asks a worker through its mailbox.
 */
#ifndef LEVEE_REDIS_H
#define LEVEE_REDIS_H

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/redis_watch.h"
#include "policy.h"

#define REDIS_MAX_SENTINELS 8

struct resolver;

struct redis_config {
	/* Direct mode (nsentinels == 0): an IPv4 or IPv6 address or a host
	 * name. */
	char host[LV_HOST_MAX];
	uint16_t port;

	/* Sentinel mode (nsentinels > 0): sentinel addresses or names, tried in
	 * order, and the name of the master they monitor. */
	char sentinels[REDIS_MAX_SENTINELS][LV_HOST_MAX];
	uint16_t sentinel_ports[REDIS_MAX_SENTINELS];
	unsigned nsentinels;
	char master[LV_NAME_MAX];

	/* Zero means the default given beside each field. */
	uint64_t command_timeout_ms; /* 25: reply deadline of one command */
	uint64_t
	        connect_timeout_ms; /* 200: TCP connect plus AUTH/SELECT/ROLE; also one sentinel query */
	uint64_t backoff_min_ms;   /* 50: first reconnect delay, doubled per failure... */
	uint64_t backoff_max_ms;   /* 5000: ...up to this; each delay is jittered to [d/2, d] */
	unsigned breaker_failures; /* 5: consecutive failures that open the breaker */
	uint64_t breaker_open_ms;  /* 1000: open this long, then one PING probe (half-open) */
	unsigned max_inflight;     /* 16384: commands awaiting a reply; more get REDIS_EBUSY */

	char password[128]; /* AUTH when not empty */
	unsigned db;        /* SELECT when not 0 */

	/* Told of every connection event, when not NULL (borrowed: it must
	 * outlive the client). The process's one watch logs them and counts
	 * reconnects and failovers. */
	struct redis_watch *watch;
	/* Looks host names up (borrowed, like <watch>); needed when a host is
	 * a name, or a sentinel may announce one. */
	struct resolver *resolver;
};

enum redis_err {
	REDIS_ENONE = 0, /* a reply (which may be a Redis error reply) */
	REDIS_ETIMEOUT,  /* no reply within command_timeout_ms; a late reply is discarded */
	REDIS_EDOWN,     /* not connected, or breaker open: the command was not sent */
	REDIS_EBUSY,     /* max_inflight commands already waiting: not sent */
	REDIS_EIO,       /* the connection was lost, or dropped for a failover, before the reply */
	REDIS_ECLOSED,   /* redis_free() was called */
};

const char *redis_strerror(enum redis_err err);

enum redis_state {
	REDIS_ST_DOWN,        /* waiting out a reconnect backoff */
	REDIS_ST_DISCOVERING, /* asking the sentinels for the master */
	REDIS_ST_RESOLVING,   /* looking the master's name up */
	REDIS_ST_CONNECTING,  /* TCP connect and AUTH/SELECT/ROLE in flight */
	REDIS_ST_READY,
};

enum redis_breaker {
	REDIS_BR_CLOSED,
	REDIS_BR_OPEN,
	REDIS_BR_HALF_OPEN, /* one PING probe decides */
};

struct redis;

/* <reply> is borrowed: valid only until the callback returns. It is NULL
 * exactly when <err> != REDIS_ENONE. A Redis error reply (-ERR, -READONLY...)
 * arrives as a reply of type REDIS_REPLY_ERROR with REDIS_ENONE. */
typedef void (*redis_cb)(struct redis *r, const redisReply *reply, enum redis_err err, void *arg);

/* Validates <cfg> (addresses or names, bounds) and starts connecting at once.
 * Returns NULL with a reason in <err> on a bad config or out of memory. */
struct redis *redis_new(struct event_base *base, const struct redis_config *cfg, char *err,
                        size_t errlen) LV_WARN_UNUSED;
void redis_free(struct redis *r);

/* Sends one command in argv form (binary safe). Returns LV_OK when the
 * callback will run, exactly once and never before this returns; LV_ERR
 * (out of memory, or redis_free() in progress) when it will not. Commands on
 * one struct redis are pipelined on one connection, so replies come back in
 * the order the commands were sent. One command, one reply: no (P)SUBSCRIBE,
 * MONITOR or blocking pops, which would break that pairing. */
int redis_command(struct redis *r, redis_cb cb, void *arg, int argc, const char **argv,
                  const size_t *argvlen) LV_WARN_UNUSED;

/* Connected and breaker closed. When false, callers skip Redis entirely and
 * pass through: a command would only come back with REDIS_EDOWN. */
bool redis_available(const struct redis *r);

/* Commands of this client. Connection events (errors, reconnects,
 * failovers) are counted by the watch, for the whole process. */
struct redis_stats {
	uint64_t commands;                      /* accepted by redis_command() */
	uint64_t errors;                        /* callbacks with EDOWN, EBUSY or EIO */
	uint64_t timeouts;                      /* callbacks with ETIMEOUT */
	uint64_t latency_us_sum, latency_count; /* replies to user commands */
	enum redis_state state;
	enum redis_breaker breaker;
	char master_addr[LV_HOST_MAX + 8]; /* "ip:port" in use or last known; "" before discovery */
};

void redis_get_stats(const struct redis *r, struct redis_stats *out);

#endif
