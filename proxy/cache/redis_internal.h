/*
 * redis_internal.h - the Redis client's state (struct redis) and what
 * redis_link.c, the data connection under the rest of the client, offers
 * the files above it: redis_sentinel.c (master discovery and the
 * +switch-master subscription) and redis.c (the public API). Calls run one
 * way, down to redis_link.c; it reaches discovery only through r->discover.
 * Not for use outside proxy/cache/redis*.c.
 *
 * Every function here runs on the thread of r->base, like those of redis.h.
 */
#ifndef LEVEE_REDIS_INTERNAL_H
#define LEVEE_REDIS_INTERNAL_H

#include <arpa/inet.h>
#include <event2/event.h>
#include <hiredis/async.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/redis.h"
#include "cache/redis_watch.h"

struct redis_pending; /* redis_link.c's command entries */
struct resolve_req;

struct redis_addr {
	char host[LV_HOST_MAX];
	uint16_t port;
};

enum redis_sub_state { SUB_NONE, SUB_WAIT_RETRY, SUB_RESOLVING, SUB_CONNECTING, SUB_ACTIVE };

/* <ip> is the numeric address to connect to, valid for the call; NULL when
 * the lookup failed, with <why>. */
typedef void (*redis_resolved_fn)(struct redis *r, const char *ip, const char *why);

/* One name lookup of the client: for the master, for a discovery query or
 * for the +switch-master subscription. */
struct redis_lookup {
	struct redis *r;
	struct resolve_req *rq;  /* in flight */
	struct event *deadline;
	unsigned turn;           /* which address, when the name has several */
	redis_resolved_fn done;
	char host[LV_HOST_MAX];
};

struct redis {
	struct event_base *base;
	struct redis_config cfg;
	bool sentinel_mode;
	bool closing;
	bool *freed; /* set to true by redis_free(): see the invariants in redis_link.c */
	/* Finds the master again, for a retry or a -READONLY: set by
	 * redis_sentinel_init() in sentinel mode; NULL in direct mode, where
	 * the configured address is simply connected to again. */
	void (*discover)(struct redis *r);

	enum redis_state state;
	struct redis_addr master; /* where the data connection goes */
	char master_ip[INET6_ADDRSTRLEN]; /* what master.host resolved to, for the log */
	struct redis_lookup master_lk;
	bool have_master;
	unsigned attempt; /* consecutive connect failures, for the backoff */
	struct event *retry_timer;
	struct event *conn_timer; /* connect + handshake deadline */

	/* Data connection. */
	redisAsyncContext *ac;
	struct redis_pending *head, *tail, *cursor;
	unsigned npending, ncancelled, hs_left;
	struct event *cmd_timer;
	uint64_t timer_deadline_us; /* when cmd_timer fires, if pending */

	/* Errors known without a reply, delivered from the loop (never inline). */
	struct redis_pending *done_head, *done_tail;
	struct event *done_ev;

	struct redis_pending *pool;
	unsigned npool;

	/* Breaker. */
	enum redis_breaker breaker;
	unsigned failures;
	bool probe_inflight;
	struct event *breaker_timer;

	/* Sentinel: discovery query (one sentinel at a time) and the
	 * +switch-master subscription (a separate connection). Owned by
	 * redis_sentinel.c; redis_link.c never touches them. */
	struct redis_addr sentinels[REDIS_MAX_SENTINELS];
	unsigned nsentinels;
	redisAsyncContext *sq_ac;
	unsigned sq_idx;
	struct event *sq_timer;
	struct redis_lookup sq_lk;
	redisAsyncContext *sub_ac;
	struct redis_lookup sub_lk;
	enum redis_sub_state sub_state;
	unsigned sub_idx, sub_attempt;
	struct event *sub_timer;

	uint64_t rng;
	struct redis_stats stats;

	struct redis_watch_member wm;
	struct event *watch_timer; /* the watch's summary of held-back lines is due */
	char sq_why[LV_HOST_MAX + 192]; /* the last sentinel's failure, for the log */
};

/* ---- redis_link.c, for redis_sentinel.c and redis.c ------------------ */

/* Creates the link's timers and the master's lookup, and seeds the jitter.
 * r->base and r->cfg must be set; a failure (out of memory) leaves what it
 * made for redis_link_close(). */
int redis_link_init(struct redis *r) LV_WARN_UNUSED;
/* Detaches and frees the data connection, calls every command still owed
 * a callback with REDIS_ECLOSED, and frees the link's timers and entries.
 * r->closing must be set, and the other contexts detached. */
void redis_link_close(struct redis *r);
/* Connected, handshake done, breaker closed. */
bool redis_link_ready(const struct redis *r);
/* redis_command() once r->closing is known false: see redis.h. */
int redis_link_command(struct redis *r, redis_cb cb, void *arg, int argc, const char **argv,
                       const size_t *argvlen) LV_WARN_UNUSED;

void redis_timer_ms(struct event *ev, uint64_t ms);
/* A reconnect delay for the <attempt>th failure in a row, jittered. */
uint64_t redis_backoff_ms(struct redis *r, unsigned attempt);
/* A host the client can use: numeric, or a name (resolved off the loop). */
bool redis_host_ok(const char *host);
bool redis_reply_is(const redisReply *reply, int type, const char *text);

/* Tells the watch; <why> is borrowed for the call. */
void redis_report(struct redis *r, enum redis_watch_what what, enum redis_watch_fail fail,
                  const char *why);
void redis_attempt_begin(struct redis *r);

int redis_lookup_init(struct redis *r, struct redis_lookup *lk) LV_WARN_UNUSED;
void redis_lookup(struct redis *r, struct redis_lookup *lk, const char *host, unsigned turn,
                  redis_resolved_fn done);
void redis_lookup_cancel(struct redis_lookup *lk);
/* Cancels and frees; safe on a lookup redis_lookup_init() never ran on. */
void redis_lookup_free(struct redis_lookup *lk);

/* Returns true when this failure opened the breaker. */
bool redis_breaker_failure(struct redis *r);

void redis_set_master(struct redis *r, const char *host, uint16_t port);
/* Resolves r->master, then opens the data connection to it. */
void redis_connect_master(struct redis *r);
/* Forgets the data connection; see redis_link.c for <dying>. */
void redis_drop(struct redis *r, bool dying, const char *why);
void redis_schedule_retry(struct redis *r);

const char *redis_ac_why(const redisAsyncContext *ac);
redisAsyncContext *redis_open(struct redis *r, const char *ip, uint16_t port,
                              redisCallbackFn *reply, int argc, const char **argv,
                              const size_t *argvlen, redisConnectCallback *on_connect,
                              redisDisconnectCallback *on_disconnect, char *why, size_t cap);

#endif
