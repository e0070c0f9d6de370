/*
 * redis_link.c - the mechanics of the Redis client's data connection, under
 * both redis_sentinel.c and redis.c: name lookups, connection attempts and
 * their backoff, the handshake, the command FIFO with its deadlines, the
 * done queue, the breaker and the reports to the watch. redis_internal.h
 * declares what it offers the two files above it; it calls neither of them.
 * Where it must have the master found again (a retry or a -READONLY in
 * sentinel mode), it calls r->discover, which redis_sentinel_init() sets.
 *
 * Connection state machine (r->state):
 *
 *   DOWN --retry timer--> DISCOVERING (sentinel mode) --master found--> RESOLVING
 *   DOWN --retry timer--> RESOLVING (direct mode)
 *   RESOLVING --the master's name resolved (at once when numeric)--> CONNECTING
 *   CONNECTING --AUTH/SELECT/PING|ROLE all answered--> READY
 *   any failure (a name that does not resolve, connect error or timeout,
 *   handshake error, ROLE says replica, connection lost, no sentinel
 *   answered) --> DOWN, retry timer armed with exponential backoff and
 *   jitter.
 *
 * Names. The master's address, the sentinels' and the master a sentinel
 * announces may be host names. Each is looked up on the resolver's thread
 * (resolver.h) before every connection attempt, never from cache, so a
 * Service that moved is followed at the next reconnect; a name with several
 * addresses is tried at the next one after a failure. hiredis is only ever
 * given numeric addresses (it would call getaddrinfo() on the loop).
 *   +switch-master, or -READONLY in sentinel mode, drops the connection and
 *   goes straight to CONNECTING (new address) or DISCOVERING.
 *
 * Breaker (r->breaker), independent of the connection state:
 *   CLOSED --breaker_failures consecutive failures--> OPEN --breaker_open_ms-->
 *   HALF_OPEN --PING probe answered--> CLOSED;  HALF_OPEN --any failure--> OPEN.
 *   A failure is a user command timing out, a connect or handshake failing,
 *   a ready connection being lost, or a discovery round finding no master.
 *   Any reply, even an error reply, is a success. Opening drops the
 *   connection: a server that stalled long enough to open the breaker is
 *   not trusted to come back on the same socket.
 *
 * Invariants:
 *  - Pending commands of the data connection sit in one FIFO, in send order,
 *    because Redis answers a connection's commands in order. The entries
 *    that timed out (cancelled, callback already run) are always a prefix of
 *    that FIFO, since every entry has the same timeout and the clock is
 *    monotonic; r->cursor points at the first live entry and one timer
 *    watches its deadline. A cancelled entry stays until its late reply
 *    arrives, so that reply pops it and no other entry is mismatched.
 *  - A user callback is called from exactly four places: the hiredis reply
 *    callback (one reply), the deadline timer, the done-queue event (errors
 *    known without a reply) and redis_link_close() (REDIS_ECLOSED). Its
 *    entry has left every list, or has been marked cancelled, before the
 *    call, so it can never be called twice.
 *  - User code may call redis_free() from any callback. Loops that call user
 *    code watch r->freed (set by redis_free) and stop touching r at once.
 *  - A hiredis context is "attached" while ac->data == r. Detaching (setting
 *    it NULL) happens before its pending entries are failed, so the NULL
 *    replies hiredis produces while freeing it are ignored. redisAsyncFree()
 *    is never called from an onConnect/onDisconnect callback (hiredis 0.14
 *    frees the context itself after those), only from timers, reply
 *    callbacks (where hiredis defers the free) and redis_free().
 *  - Every connection event goes to the watch (cfg.watch) as it happens:
 *    each attempt, its failure with the reason, readiness, the loss of a
 *    ready connection, the breaker opening and closing, and the master
 *    Sentinel names. The watch logs and counts for the whole process; the
 *    client only says what happened to it.
 */
#include <arpa/inet.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache/redis_internal.h"
#include "resolver.h"

/* Late replies still owed on a connection. Past this, the server is so far
 * behind that a fresh connection is cheaper than waiting for it to catch up. */
#define REDIS_MAX_CANCELLED 256
/* Free pending entries kept for reuse, so steady traffic does not malloc. */
#define REDIS_POOL_MAX 1024
/* A lookup the resolver has not answered by then fails the attempt: glibc
 * alone may wait 5 s per DNS query and retry it. */
#define REDIS_RESOLVE_TIMEOUT_MS 10000

enum redis_kind {
	RK_USER,
	RK_HS_OK,   /* AUTH, SELECT: expect +OK */
	RK_HS_PING, /* last handshake step in direct mode */
	RK_HS_ROLE, /* last handshake step in sentinel mode: must say "master" */
	RK_PROBE,   /* the half-open breaker's PING */
};

struct redis_pending {
	struct redis_pending *next;
	redis_cb cb;
	void *arg;
	uint64_t sent_us;
	uint64_t deadline_us;
	enum redis_err err; /* while waiting in the done queue */
	enum redis_kind kind;
	bool cancelled; /* timed out; waits only to absorb its late reply */
};

static void redis_send_probe(struct redis *r);

/* ---- small helpers ----------------------------------------------------- */

static uint64_t redis_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void redis_timer_ms(struct event *ev, uint64_t ms)
{
	struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
	                     .tv_usec = (suseconds_t)((ms % 1000) * 1000)};
	evtimer_add(ev, &tv);
}

static void redis_timer_us(struct event *ev, uint64_t us)
{
	struct timeval tv = {.tv_sec = (time_t)(us / 1000000),
	                     .tv_usec = (suseconds_t)(us % 1000000)};
	evtimer_add(ev, &tv);
}

static uint64_t redis_rand(struct redis *r)
{
	/* xorshift64*: jitter only needs to decorrelate workers and pods. */
	r->rng ^= r->rng >> 12;
	r->rng ^= r->rng << 25;
	r->rng ^= r->rng >> 27;
	return r->rng * 0x2545f4914f6cdd1dULL;
}

/* Exponential backoff with "equal jitter": a delay in [d/2, d], so that
 * every worker of every pod does not reconnect in the same millisecond after
 * a Redis restart, yet no delay collapses to zero. */
uint64_t redis_backoff_ms(struct redis *r, unsigned attempt)
{
	uint64_t d = r->cfg.backoff_min_ms;
	for (unsigned i = 0; i < attempt && d < r->cfg.backoff_max_ms; i++)
		d *= 2;
	if (d > r->cfg.backoff_max_ms)
		d = r->cfg.backoff_max_ms;
	uint64_t half = d / 2;
	return half + (half ? redis_rand(r) % (half + 1) : 0);
}

void redis_set_master(struct redis *r, const char *host, uint16_t port)
{
	r->master_ip[0] = '\0';
	size_t n = strnlen(host, sizeof(r->master.host) - 1);
	memmove(r->master.host, host, n); /* <host> may be r->master.host itself */
	r->master.host[n] = '\0';
	r->master.port = port;
	r->have_master = true;
	const char *h = r->master.host;
	if (strchr(h, ':'))
		snprintf(r->stats.master_addr, sizeof(r->stats.master_addr), "[%s]:%u", h, port);
	else
		snprintf(r->stats.master_addr, sizeof(r->stats.master_addr), "%s:%u", h, port);
}

/* ---- reports to the watch --------------------------------------------- */

static void redis_watch_arm(struct redis *r, uint64_t due_ms)
{
	if (!due_ms)
		return;
	uint64_t now = redis_now_us() / 1000;
	redis_timer_ms(r->watch_timer, due_ms > now ? due_ms - now : 0);
}

static void redis_on_watch_timer(evutil_socket_t fd, short what, void *arg)
{
	struct redis *r = arg;
	redis_watch_arm(r, redis_watch_flush(r->cfg.watch, redis_now_us() / 1000));
}

/* <why> is borrowed for the call; <fail> matters for RW_FAILED only. */
void redis_report(struct redis *r, enum redis_watch_what what, enum redis_watch_fail fail,
                  const char *why)
{
	if (!r->cfg.watch)
		return;
	char where[sizeof(r->stats.master_addr) + INET6_ADDRSTRLEN + LV_NAME_MAX + 32];
	const char *addr = r->stats.master_addr;
	if (!r->have_master) {
		snprintf(where, sizeof(where), "master %s (from the sentinels)", r->cfg.master);
		addr = where;
	} else if (r->master_ip[0] && strcmp(r->master_ip, r->master.host) != 0) {
		snprintf(where, sizeof(where), "%s (%s)", r->stats.master_addr, r->master_ip);
		addr = where;
	}
	struct redis_watch_event ev = {what, fail, addr, why, redis_now_us() / 1000};
	redis_watch_arm(r, redis_watch_report(r->cfg.watch, &r->wm, &ev));
}

/* A connection attempt begins: a retry, a failover, or the first one. */
void redis_attempt_begin(struct redis *r)
{
	redis_report(r, RW_ATTEMPT, RW_FAIL_CONNECT, NULL);
}

/* ---- name lookups ------------------------------------------------------ */

/* A host the client can use: numeric, or a name (resolved off the loop). */
bool redis_host_ok(const char *host)
{
	const char *why;
	return resolve_is_numeric(host) || value_host(host, &why) == LV_OK;
}

void redis_lookup_cancel(struct redis_lookup *lk)
{
	if (lk->rq)
		resolve_cancel(lk->rq);
	lk->rq = NULL;
	if (lk->deadline)
		evtimer_del(lk->deadline);
}

static void redis_on_resolved(void *arg, const struct resolve_result *res)
{
	struct redis_lookup *lk = arg;
	lk->rq = NULL;
	evtimer_del(lk->deadline);
	if (res->status || !res->n)
		lk->done(lk->r, NULL, res->why);
	else
		lk->done(lk->r, res->addrs[lk->turn % res->n], NULL);
}

static void redis_on_lookup_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct redis_lookup *lk = arg;
	redis_lookup_cancel(lk);
	char why[LV_HOST_MAX + 64];
	snprintf(why, sizeof(why), "cannot resolve %s: no answer within %d s", lk->host,
	         REDIS_RESOLVE_TIMEOUT_MS / 1000);
	lk->done(lk->r, NULL, why);
}

/* Calls <done> with the address to connect to for <host>: at once when it is
 * numeric, else once the resolver answered (address <turn>, modulo how many
 * it found). Replaces a lookup still in flight on <lk>. */
void redis_lookup(struct redis *r, struct redis_lookup *lk, const char *host, unsigned turn,
                  redis_resolved_fn done)
{
	redis_lookup_cancel(lk);
	if (resolve_is_numeric(host)) {
		done(r, host, NULL);
		return;
	}
	if (!r->cfg.resolver) {
		done(r, NULL, "a host name, and there is no resolver");
		return;
	}
	snprintf(lk->host, sizeof(lk->host), "%s", host);
	lk->turn = turn;
	lk->done = done;
	lk->rq = resolve_start(r->cfg.resolver, r->base, host, redis_on_resolved, lk);
	if (!lk->rq) {
		done(r, NULL, "cannot start a name lookup (out of memory)");
		return;
	}
	redis_timer_ms(lk->deadline, REDIS_RESOLVE_TIMEOUT_MS);
}

int redis_lookup_init(struct redis *r, struct redis_lookup *lk)
{
	lk->r = r;
	lk->deadline = evtimer_new(r->base, redis_on_lookup_deadline, lk);
	return lk->deadline ? LV_OK : LV_ERR;
}

void redis_lookup_free(struct redis_lookup *lk)
{
	redis_lookup_cancel(lk);
	if (lk->deadline)
		event_free(lk->deadline);
}

/* ---- pending entries --------------------------------------------------- */

static struct redis_pending *redis_pending_get(struct redis *r)
{
	struct redis_pending *p = r->pool;
	if (p) {
		r->pool = p->next;
		r->npool--;
	} else {
		p = malloc(sizeof(*p));
		if (!p)
			return NULL;
	}
	memset(p, 0, sizeof(*p));
	return p;
}

static void redis_pending_put(struct redis *r, struct redis_pending *p)
{
	if (r->npool >= REDIS_POOL_MAX) {
		free(p);
		return;
	}
	p->next = r->pool;
	r->pool = p;
	r->npool++;
}

/* Queue <p> to be called back with <err> from the loop, never inline. */
static void redis_done_push(struct redis *r, struct redis_pending *p, enum redis_err err)
{
	p->err = err;
	p->next = NULL;
	if (r->done_tail)
		r->done_tail->next = p;
	else
		r->done_head = p;
	r->done_tail = p;
	r->stats.errors++;
	event_active(r->done_ev, EV_TIMEOUT, 0);
}

/* Calls a user callback. Returns false when the callback freed <r>. */
static bool redis_invoke(struct redis *r, redis_cb cb, void *arg, const redisReply *reply,
                         enum redis_err err)
{
	bool freed = false;
	bool *outer = r->freed;
	r->freed = &freed;
	cb(r, reply, err, arg);
	if (freed) {
		if (outer)
			*outer = true;
		return false;
	}
	r->freed = outer;
	return true;
}

static void redis_on_done(evutil_socket_t fd, short what, void *arg)
{
	struct redis *r = arg;
	/* Only the entries queued before this run: those queued by the
	 * callbacks wait for the next loop iteration, so a callback that keeps
	 * retrying while Redis is down cannot starve the loop. */
	struct redis_pending *last = r->done_tail;
	while (r->done_head) {
		struct redis_pending *p = r->done_head;
		r->done_head = p->next;
		if (!r->done_head)
			r->done_tail = NULL;
		redis_cb cb = p->cb;
		void *cbarg = p->arg;
		enum redis_err err = p->err;
		redis_pending_put(r, p);
		if (!redis_invoke(r, cb, cbarg, NULL, err))
			return;
		if (p == last)
			break;
	}
	if (r->done_head)
		event_active(r->done_ev, EV_TIMEOUT, 0);
}

/* ---- breaker ----------------------------------------------------------- */

static void redis_breaker_open(struct redis *r, const char *why)
{
	r->breaker = REDIS_BR_OPEN;
	r->probe_inflight = false;
	redis_timer_ms(r->breaker_timer, r->cfg.breaker_open_ms);
	redis_report(r, RW_BREAKER_OPEN, RW_FAIL_CONNECT, why);
}

/* Returns true when this failure opened the breaker. */
bool redis_breaker_failure(struct redis *r)
{
	switch (r->breaker) {
	case REDIS_BR_CLOSED: {
		if (++r->failures < r->cfg.breaker_failures)
			return false;
		char why[64];
		snprintf(why, sizeof(why), "%u failures in a row", r->failures);
		redis_breaker_open(r, why);
		return true;
	}
	case REDIS_BR_HALF_OPEN:
		redis_breaker_open(r, "its probe failed");
		return true;
	case REDIS_BR_OPEN:
		break;
	}
	return false;
}

static void redis_breaker_success(struct redis *r)
{
	if (r->breaker == REDIS_BR_CLOSED)
		r->failures = 0;
}

static void redis_on_breaker_timer(evutil_socket_t fd, short what, void *arg)
{
	struct redis *r = arg;
	r->breaker = REDIS_BR_HALF_OPEN;
	r->failures = 0;
	if (r->state == REDIS_ST_READY)
		redis_send_probe(r);
	/* else the probe goes out as soon as a connection is ready */
}

/* ---- data connection --------------------------------------------------- */

static void redis_arm_cmd_timer(struct redis *r, uint64_t deadline_us, uint64_t now_us)
{
	r->timer_deadline_us = deadline_us;
	redis_timer_us(r->cmd_timer, deadline_us > now_us ? deadline_us - now_us : 0);
}

static void redis_fifo_push(struct redis *r, struct redis_pending *p)
{
	p->next = NULL;
	if (r->tail)
		r->tail->next = p;
	else
		r->head = p;
	r->tail = p;
	if (!r->cursor)
		r->cursor = p;
	r->npending++;
	/* The timer may be set for a later deadline (a handshake step's). */
	if (!evtimer_pending(r->cmd_timer, NULL) || p->deadline_us < r->timer_deadline_us)
		redis_arm_cmd_timer(r, p->deadline_us, p->sent_us);
}

/* Forgets the data connection: its live user commands go to the done queue
 * with REDIS_EIO, internal and cancelled entries are discarded. <dying>:
 * hiredis is already freeing the context (we are in its disconnect path), so
 * it must not be freed again. A ready connection is reported lost, <why>. */
void redis_drop(struct redis *r, bool dying, const char *why)
{
	redis_lookup_cancel(&r->master_lk);
	redisAsyncContext *ac = r->ac;
	if (!ac)
		return;
	if (r->state == REDIS_ST_READY)
		redis_report(r, RW_LOST, RW_FAIL_CONNECT, why);
	r->ac = NULL;
	ac->data = NULL;
	evtimer_del(r->cmd_timer);
	evtimer_del(r->conn_timer);
	struct redis_pending *p = r->head;
	r->head = r->tail = r->cursor = NULL;
	r->npending = r->ncancelled = r->hs_left = 0;
	r->probe_inflight = false;
	while (p) {
		struct redis_pending *next = p->next;
		if (p->kind == RK_USER && !p->cancelled)
			redis_done_push(r, p, REDIS_EIO);
		else
			redis_pending_put(r, p);
		p = next;
	}
	if (!dying)
		redisAsyncFree(ac);
	r->state = REDIS_ST_DOWN;
}

void redis_schedule_retry(struct redis *r)
{
	r->state = REDIS_ST_DOWN;
	redis_timer_ms(r->retry_timer, redis_backoff_ms(r, r->attempt));
	if (r->attempt < 32)
		r->attempt++;
}

/* The data connection failed: lost if it was ready, else its attempt
 * failed (<fail>); <why> says how, for the log. */
static void redis_conn_lost(struct redis *r, bool dying, enum redis_watch_fail fail, const char *why)
{
	bool was_ready = r->state == REDIS_ST_READY;
	redis_drop(r, dying, why);
	if (!was_ready)
		redis_report(r, RW_FAILED, fail, why);
}

/* A connect, handshake or discovery failed, or a ready connection was lost. */
static void redis_conn_failed(struct redis *r, bool dying, enum redis_watch_fail fail, const char *why)
{
	redis_conn_lost(r, dying, fail, why);
	redis_breaker_failure(r);
	redis_schedule_retry(r);
}

/* hiredis's reason for a context's failure. */
const char *redis_ac_why(const redisAsyncContext *ac)
{
	return ac->errstr[0] ? ac->errstr : "connection closed";
}

/* A context to <ip>:<port> (numeric) on r's loop, attached to r, with its
 * callbacks set and <argc> > 0 a first command queued. NULL with the reason
 * copied to <why> when that failed. */
redisAsyncContext *redis_open(struct redis *r, const char *ip, uint16_t port,
                              redisCallbackFn *reply, int argc, const char **argv,
                              const size_t *argvlen, redisConnectCallback *on_connect,
                              redisDisconnectCallback *on_disconnect, char *why, size_t cap)
{
	redisAsyncContext *ac = redisAsyncConnect(ip, port);
	const char *fail = !ac ? "out of memory" : ac->err ? ac->errstr : NULL;
	if (!fail && redisLibeventAttach(ac, r->base) != REDIS_OK)
		fail = "cannot watch the socket";
	if (!fail && argc && redisAsyncCommandArgv(ac, reply, NULL, argc, argv, argvlen) != REDIS_OK)
		fail = "out of memory";
	if (fail) {
		snprintf(why, cap, "%s", fail);
		if (ac)
			redisAsyncFree(ac);
		return NULL;
	}
	ac->data = r;
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	return ac;
}

static void redis_on_retry(evutil_socket_t fd, short what, void *arg)
{
	struct redis *r = arg;
	redis_attempt_begin(r);
	if (r->discover)
		r->discover(r);
	else
		redis_connect_master(r);
}

static void redis_on_conn_timer(evutil_socket_t fd, short what, void *arg)
{
	struct redis *r = arg;
	char why[96];
	snprintf(why, sizeof(why), "no answer within connect_timeout (%llu ms)",
	         (unsigned long long)r->cfg.connect_timeout_ms);
	redis_conn_failed(r, false, RW_FAIL_TIMEOUT, why);
}

static void redis_became_ready(struct redis *r)
{
	evtimer_del(r->conn_timer);
	r->state = REDIS_ST_READY;
	r->attempt = 0;
	redis_report(r, RW_READY, RW_FAIL_CONNECT, NULL);
	redis_breaker_success(r);
	if (r->breaker == REDIS_BR_HALF_OPEN)
		redis_send_probe(r);
}

bool redis_reply_is(const redisReply *reply, int type, const char *text)
{
	return reply->type == type && reply->len == strlen(text) &&
	       strncasecmp(reply->str, text, reply->len) == 0;
}

static bool redis_role_is_master(const redisReply *reply)
{
	return reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
	       redis_reply_is(reply->element[0], REDIS_REPLY_STRING, "master");
}

/* -READONLY means we are talking to a replica (a failover we missed);
 * -MASTERDOWN and -LOADING that this server cannot serve us now. */
static bool redis_reply_wants_rediscovery(const redisReply *reply)
{
	if (reply->type != REDIS_REPLY_ERROR || !reply->str)
		return false;
	return strncmp(reply->str, "READONLY", 8) == 0 ||
	       strncmp(reply->str, "MASTERDOWN", 10) == 0;
}

/* Why a handshake step's reply is not the one it needs, for the log. */
static void redis_handshake_why(enum redis_kind kind, const redisReply *reply, char *why, size_t cap)
{
	const char *step = kind == RK_HS_OK ? "AUTH or SELECT" : kind == RK_HS_PING ? "PING" : "ROLE";
	if (reply->type == REDIS_REPLY_ERROR && reply->str)
		snprintf(why, cap, "%s refused: %.*s", step, (int)(reply->len < 120 ? reply->len : 120),
		         reply->str);
	else if (kind == RK_HS_ROLE)
		snprintf(why, cap, "ROLE: not the master (a replica or a sentinel)");
	else
		snprintf(why, cap, "%s: unexpected reply", step);
}

static void redis_handle_internal(struct redis *r, enum redis_kind kind, const redisReply *reply)
{
	bool ok;
	switch (kind) {
	case RK_HS_OK:
		ok = redis_reply_is(reply, REDIS_REPLY_STATUS, "OK");
		break;
	case RK_HS_PING:
		ok = redis_reply_is(reply, REDIS_REPLY_STATUS, "PONG");
		break;
	case RK_HS_ROLE:
		ok = redis_role_is_master(reply);
		break;
	case RK_PROBE:
		r->probe_inflight = false;
		if (reply->type == REDIS_REPLY_ERROR) {
			if (redis_breaker_failure(r))
				redis_conn_failed(r, false, RW_FAIL_CONNECT,
				                  "the breaker's probe got an error reply");
		} else if (r->breaker == REDIS_BR_HALF_OPEN) {
			r->breaker = REDIS_BR_CLOSED;
			r->failures = 0;
			redis_report(r, RW_BREAKER_CLOSED, RW_FAIL_CONNECT, NULL);
		}
		return;
	default:
		return;
	}
	if (!ok) {
		char why[192];
		redis_handshake_why(kind, reply, why, sizeof(why));
		redis_conn_failed(r, false, RW_FAIL_CONNECT, why);
		return;
	}
	if (--r->hs_left == 0)
		redis_became_ready(r);
}

static void redis_on_reply(redisAsyncContext *ac, void *vreply, void *privdata)
{
	struct redis *r = ac->data;
	const redisReply *reply = vreply;
	if (!r)
		return; /* detached: its entries were failed already */
	if (!reply) {
		/* hiredis 0.14 passes NULL only while freeing the context after
		 * an I/O error or EOF: the connection is gone. */
		redis_conn_failed(r, true, RW_FAIL_CONNECT, redis_ac_why(ac));
		return;
	}
	struct redis_pending *p = r->head;
	if (!p) {
		/* A reply nobody asked for: the stream is out of step. */
		redis_conn_failed(r, false, RW_FAIL_CONNECT, "a reply nobody asked for (out of step)");
		return;
	}
	r->head = p->next;
	if (!r->head)
		r->tail = NULL;
	r->npending--;
	if (p->cancelled) {
		r->ncancelled--;
		redis_pending_put(r, p);
		return;
	}
	if (r->cursor == p)
		r->cursor = p->next;
	enum redis_kind kind = p->kind;
	redis_cb cb = p->cb;
	void *arg = p->arg;
	uint64_t sent = p->sent_us;
	redis_pending_put(r, p);

	if (kind != RK_USER) {
		redis_handle_internal(r, kind, reply);
		return;
	}
	r->stats.latency_us_sum += redis_now_us() - sent;
	r->stats.latency_count++;
	redis_breaker_success(r);
	bool rediscover = r->discover && redis_reply_wants_rediscovery(reply);
	char why[96];
	if (rediscover)
		snprintf(why, sizeof(why), "the server answered -%.*s: asking the sentinels again",
		         (int)(reply->len < 40 ? reply->len : 40), reply->str);
	if (!redis_invoke(r, cb, arg, reply, REDIS_ENONE))
		return;
	if (rediscover && r->ac == ac) {
		redis_drop(r, false, why);
		redis_attempt_begin(r);
		r->discover(r);
	}
}

static void redis_on_cmd_timer(evutil_socket_t fd, short what, void *arg)
{
	struct redis *r = arg;
	uint64_t now = redis_now_us();
	bool drop = false;
	while (r->cursor && r->cursor->deadline_us <= now) {
		struct redis_pending *p = r->cursor;
		r->cursor = p->next;
		p->cancelled = true;
		r->ncancelled++;
		redis_cb cb = p->cb;
		p->cb = NULL;
		if (p->kind != RK_USER) {
			/* A handshake step or the probe got no answer in time. */
			redis_breaker_failure(r);
			drop = true;
			continue;
		}
		r->stats.timeouts++;
		if (redis_breaker_failure(r))
			drop = true;
		if (!redis_invoke(r, cb, p->arg, NULL, REDIS_ETIMEOUT))
			return;
		if (!r->ac)
			return; /* the connection went away under the callback */
	}
	if (drop || r->ncancelled > REDIS_MAX_CANCELLED) {
		/* The breaker already counted this failure: drop and retry. */
		redis_conn_lost(r, false, RW_FAIL_TIMEOUT,
		                drop ? "commands or the handshake timed out" : "too many late replies");
		redis_schedule_retry(r);
		return;
	}
	if (r->cursor)
		redis_arm_cmd_timer(r, r->cursor->deadline_us, now);
}

/* Appends an internal command to the FIFO. Returns false if it could not be
 * sent, which only happens out of memory. */
static bool redis_send_internal(struct redis *r, enum redis_kind kind, int argc, const char **argv,
                                const size_t *argvlen)
{
	struct redis_pending *p = redis_pending_get(r);
	if (!p)
		return false;
	if (redisAsyncCommandArgv(r->ac, redis_on_reply, NULL, argc, argv, argvlen) != REDIS_OK) {
		redis_pending_put(r, p);
		return false;
	}
	p->kind = kind;
	p->sent_us = redis_now_us();
	/* Handshake steps are queued before the TCP connect completes, so
	 * they share the connect deadline rather than a command's. They are
	 * all answered before any user command is sent, which keeps the
	 * FIFO's deadlines in order. */
	uint64_t ms = kind == RK_PROBE ? r->cfg.command_timeout_ms : r->cfg.connect_timeout_ms;
	p->deadline_us = p->sent_us + ms * 1000;
	redis_fifo_push(r, p);
	return true;
}

static void redis_send_probe(struct redis *r)
{
	static const char *argv[] = {"PING"};
	static const size_t argvlen[] = {4};
	if (r->probe_inflight || !r->ac)
		return;
	if (redis_send_internal(r, RK_PROBE, 1, argv, argvlen))
		r->probe_inflight = true;
	else if (redis_breaker_failure(r))
		redis_conn_failed(r, false, RW_FAIL_CONNECT, "out of memory");
}

static void redis_on_connect(const redisAsyncContext *cac, int status)
{
	struct redis *r = cac->data;
	if (!r || status == REDIS_OK)
		return; /* readiness is decided by the handshake replies */
	/* hiredis frees the context when this returns. */
	redis_conn_failed(r, true, RW_FAIL_CONNECT, redis_ac_why(cac));
}

static void redis_on_disconnect(const redisAsyncContext *cac, int status)
{
	struct redis *r = cac->data;
	if (r)
		redis_conn_failed(r, true, RW_FAIL_CONNECT, redis_ac_why(cac));
}

/* Opens the data connection to <ip> (r->master's address) and queues the
 * handshake, which hiredis sends as soon as the TCP connect completes. */
static void redis_connect_resolved(struct redis *r, const char *ip, const char *why)
{
	if (!ip) {
		r->master_ip[0] = '\0'; /* the log must not name an address it no longer has */
		redis_report(r, RW_FAILED, RW_FAIL_RESOLVE, why);
		redis_breaker_failure(r);
		redis_schedule_retry(r);
		return;
	}
	snprintf(r->master_ip, sizeof(r->master_ip), "%s", ip);
	char fail[128];
	redisAsyncContext *ac = redis_open(r, ip, r->master.port, NULL, 0, NULL, NULL, redis_on_connect,
	                                   redis_on_disconnect, fail, sizeof(fail));
	if (!ac) {
		redis_report(r, RW_FAILED, RW_FAIL_CONNECT, fail);
		redis_breaker_failure(r);
		redis_schedule_retry(r);
		return;
	}
	redisEnableKeepAlive(&ac->c);
	r->ac = ac;
	r->state = REDIS_ST_CONNECTING;
	redis_timer_ms(r->conn_timer, r->cfg.connect_timeout_ms);

	bool ok = true;
	if (r->cfg.password[0]) {
		const char *argv[] = {"AUTH", r->cfg.password};
		const size_t argvlen[] = {4, strlen(r->cfg.password)};
		ok = ok && redis_send_internal(r, RK_HS_OK, 2, argv, argvlen);
		r->hs_left += ok;
	}
	if (r->cfg.db) {
		char db[16];
		int n = snprintf(db, sizeof(db), "%u", r->cfg.db);
		const char *argv[] = {"SELECT", db};
		const size_t argvlen[] = {6, (size_t)n};
		ok = ok && redis_send_internal(r, RK_HS_OK, 2, argv, argvlen);
		r->hs_left += ok;
	}
	if (r->sentinel_mode) {
		/* The Sentinel client rules: confirm the address is a master. */
		const char *argv[] = {"ROLE"};
		const size_t argvlen[] = {4};
		ok = ok && redis_send_internal(r, RK_HS_ROLE, 1, argv, argvlen);
	} else {
		const char *argv[] = {"PING"};
		const size_t argvlen[] = {4};
		ok = ok && redis_send_internal(r, RK_HS_PING, 1, argv, argvlen);
	}
	r->hs_left += ok;
	if (!ok)
		redis_conn_failed(r, false, RW_FAIL_CONNECT, "out of memory");
}

/* Resolves r->master again (a moved name is followed), then connects. A
 * name with several addresses starts at the next one after each failure. */
void redis_connect_master(struct redis *r)
{
	r->state = REDIS_ST_RESOLVING;
	redis_lookup(r, &r->master_lk, r->master.host, r->attempt, redis_connect_resolved);
}

/* ---- setting up, sending, tearing down --------------------------------- */

int redis_link_init(struct redis *r)
{
	r->rng = redis_now_us() ^ (uint64_t)(uintptr_t)r ^ 0x9e3779b97f4a7c15ULL;
	if (!r->rng)
		r->rng = 1;
	r->retry_timer = evtimer_new(r->base, redis_on_retry, r);
	r->conn_timer = evtimer_new(r->base, redis_on_conn_timer, r);
	r->cmd_timer = evtimer_new(r->base, redis_on_cmd_timer, r);
	r->breaker_timer = evtimer_new(r->base, redis_on_breaker_timer, r);
	r->done_ev = event_new(r->base, -1, 0, redis_on_done, r);
	r->watch_timer = evtimer_new(r->base, redis_on_watch_timer, r);
	if (!r->retry_timer || !r->conn_timer || !r->cmd_timer || !r->breaker_timer || !r->done_ev ||
	    !r->watch_timer || redis_lookup_init(r, &r->master_lk) != LV_OK)
		return LV_ERR;
	return LV_OK;
}

bool redis_link_ready(const struct redis *r)
{
	return r->state == REDIS_ST_READY && r->breaker == REDIS_BR_CLOSED;
}

int redis_link_command(struct redis *r, redis_cb cb, void *arg, int argc, const char **argv,
                       const size_t *argvlen)
{
	struct redis_pending *p = redis_pending_get(r);
	if (!p)
		return LV_ERR;
	p->kind = RK_USER;
	p->cb = cb;
	p->arg = arg;
	r->stats.commands++;
	if (!redis_link_ready(r)) {
		redis_done_push(r, p, REDIS_EDOWN);
		return LV_OK;
	}
	if (r->npending >= r->cfg.max_inflight) {
		redis_done_push(r, p, REDIS_EBUSY);
		return LV_OK;
	}
	if (redisAsyncCommandArgv(r->ac, redis_on_reply, NULL, argc, argv, argvlen) != REDIS_OK) {
		/* hiredis refuses only while the context is going away, or
		 * out of memory: either way this command was not sent. */
		redis_done_push(r, p, REDIS_EDOWN);
		return LV_OK;
	}
	p->sent_us = redis_now_us();
	p->deadline_us = p->sent_us + r->cfg.command_timeout_ms * 1000;
	redis_fifo_push(r, p);
	return LV_OK;
}

void redis_link_close(struct redis *r)
{
	redis_lookup_free(&r->master_lk);

	/* Detach the context first, so no hiredis callback reaches us, and
	 * collect what is still owed a callback. */
	struct redis_pending *owed = NULL, **tailp = &owed;
	redisAsyncContext *ac = r->ac;
	r->ac = NULL;
	if (ac)
		ac->data = NULL;
	for (struct redis_pending *p = r->head, *next; p; p = next) {
		next = p->next;
		if (p->kind == RK_USER && !p->cancelled) {
			*tailp = p;
			tailp = &p->next;
		} else {
			free(p);
		}
	}
	*tailp = r->done_head;
	r->head = r->tail = r->cursor = r->done_head = r->done_tail = NULL;
	if (ac)
		redisAsyncFree(ac);

	/* Callbacks may call redis_command() (it fails: closing) or read stats. */
	while (owed) {
		struct redis_pending *p = owed;
		owed = p->next;
		p->cb(r, NULL, REDIS_ECLOSED, p->arg);
		free(p);
	}

	struct event *evs[] = {r->retry_timer, r->conn_timer, r->cmd_timer,
	                       r->breaker_timer, r->done_ev, r->watch_timer};
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
		if (evs[i])
			event_free(evs[i]);
	while (r->pool) {
		struct redis_pending *p = r->pool;
		r->pool = p->next;
		free(p);
	}
}
