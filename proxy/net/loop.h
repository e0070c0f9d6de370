/*
 * loop.h - what one event loop owns (struct worker): its event base, its
 * runtime, its counters, its head arenas and pooled requests, the heads of
 * the lists its connections, requests and upstream connections are on, the
 * layers above's per-loop parts; and the loop's clock and request ids.
 *
 * The bottom of net/'s own modules: conn.c, request.c and upstream.c run
 * on a loop and use this; the threads that run loops, their listeners and
 * their life cycle are worker.c's, at the top of net/ (worker.h). The
 * lists' element types are only declared here: each list is walked by the
 * module whose objects it holds.
 */
#ifndef LEVEE_LOOP_H
#define LEVEE_LOOP_H

#include <event2/event.h>
#include <event2/listener.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/time.h>

#include "log.h"
#include "net/http1.h"
#include "net/listener.h"
#include "net/mailbox.h"
#include "runtime.h"
#include "stats.h"

struct conn;
struct request;
struct upconn;
struct cache_loop;
struct retry_budget;
struct worker;

/* What a layer above keeps per loop: the loop ticks it (every 100 ms) and
 * closes it at its end, once its connections are closed. */
struct loop_ext {
	void (*tick)(struct worker *w);
	void (*close)(struct worker *w);
};

/* Head arenas: request and response heads are parsed into these. Pooled per
 * loop so a steady request stream does not call malloc. */
struct arena {
	struct arena *next;
	struct lv_head head;
	uint32_t text_cap, max_headers;
	/* struct lv_hdr slots then text follow */
};

struct worker {
	unsigned id;
	char name[80];      /* "worker 0", or "bulkhead users #1" for a bulkhead's thread */
	bool listens;       /* a listener worker; a bulkhead's thread only gets connections handed to it */
	pthread_t thread;
	struct event_base *base;
	struct listener listener;
	struct runtime *rt; /* the newest runtime this worker has seen (ref held) */
	struct runtime_slot *runtimes;    /* where newer ones are published (the server's) */
	atomic_uint_fast64_t *open_conns; /* client connections open on all workers (the server's) */
	struct mailbox mbox;
	struct mb_item mb_policy, mb_drain, mb_stop; /* its control messages */
	bool closing;       /* stopped for good: parked requests end at once */
	struct event *tick;
	struct lv_stats *stats;
	struct alog_buf *alog;

	struct conn *conns; /* all client connections of this worker */
	unsigned nconns;

	struct upconn *idle;     /* pooled upstream connections, most recent first */
	unsigned nidle;

	struct arena *arenas;    /* free head arenas */
	unsigned narenas;
	struct request *free_reqs;
	unsigned nfree_reqs;
	struct request *reqs;    /* every live request of this loop (request.c), so teardown reaches each */
	unsigned nreqs;
	struct request *kept;    /* exchanges kept after their client's end (a bulkhead drains them) */
	unsigned nkept;

	uint64_t rng[2];
	bool draining;
	struct retry_budget *retry_budget; /* what route retries may spend (the server's) */
	const char *via;    /* this process's pseudonym in Via (the server's; http/via.h), or NULL: no loop check */

	/* the cache's per-loop part (its Redis tier; cache/cache_loop.h),
	 * opened by whoever creates the loop, ticked and closed by the loop */
	struct cache_loop *cache;
	const struct loop_ext *ext;
};

struct arena *arena_get(struct worker *w);
void arena_put(struct worker *w, struct arena *a);
/* Frees the pooled arenas (the loop's end). */
void arena_pool_clear(struct worker *w);

/* Seeds the request id generator (the loop's start). */
void loop_seed(struct worker *w);

/* 32 lowercase hex digits from the loop's generator. */
void loop_request_id(struct worker *w, char out[33]);
/* A uniform random 64-bit value (xorshift128+: not secret). */
uint64_t loop_rand(struct worker *w);

/* Monotonic microseconds. */
uint64_t now_us(void);
/* Wall clock, unix milliseconds (cache records are shared across processes). */
uint64_t now_unix_ms(void);

static inline void tv_ms(struct timeval *tv, uint64_t ms)
{
	tv->tv_sec = (time_t)(ms / 1000);
	tv->tv_usec = (suseconds_t)((ms % 1000) * 1000);
}

#endif
