/*
 * redis_sentinel.c - how the Redis client finds its master through Sentinel.
 * It sits between redis.c (the public API, which calls the entry points of
 * redis_sentinel.h) and redis_link.c (the data connection it then opens,
 * through redis_internal.h), and calls only down. The link asks for a new
 * discovery round through r->discover, set by redis_sentinel_init().
 *
 * Discovery (state DISCOVERING): SENTINEL get-master-addr-by-name, asked of
 * one sentinel at a time on a short-lived connection (r->sq_ac), each within
 * connect_timeout, in order from the one that answered last. The first
 * usable answer is told to the watch and connected to (redis_use_master);
 * when no sentinel gives one, the round is a failure for the breaker and a
 * retry is armed, like a failed connect.
 *
 * Subscription: a second, long-lived connection (r->sub_ac) to one sentinel,
 * SUBSCRIBEd to +switch-master for our master name. A message that names a
 * new address drops the data connection and connects there at once, without
 * a discovery round. A lost or unconfirmed subscription moves to the next
 * sentinel after its own backoff (r->sub_attempt), independent of the data
 * connection's.
 *
 * Invariants (beside those of redis_link.c, which hold for these contexts too):
 *  - At most one discovery query and one subscription exist at a time; each
 *    context is attached (ac->data == r) exactly while r->sq_ac or r->sub_ac
 *    points at it, and is detached before it is freed.
 *  - <dying> means hiredis is freeing the context itself (a connect or
 *    disconnect callback, or the NULL reply of its teardown): it is then
 *    detached, never freed again.
 *  - Nothing here calls user code: only redis_link.c's handshake and
 *    command paths do, so r->freed need not be watched.
 */
#include "cache/redis_sentinel.h"

#include <stdio.h>
#include <string.h>

#include "cache/redis_internal.h"

static void redis_sub_schedule(struct redis *r);

/* Abandons a discovery query in flight, if any. */
static void redis_sq_drop(struct redis *r)
{
	redis_lookup_cancel(&r->sq_lk);
	redisAsyncContext *ac = r->sq_ac;
	if (!ac)
		return;
	r->sq_ac = NULL;
	ac->data = NULL;
	evtimer_del(r->sq_timer);
	redisAsyncFree(ac);
}

/* Parses "host" and "port" strings from a sentinel: an address, or a name
 * (sentinels with announce-hostnames). */
static bool redis_parse_addr(const char *host, size_t hostlen, const char *port, size_t portlen,
                             struct redis_addr *out)
{
	if (hostlen == 0 || hostlen >= sizeof(out->host) || portlen == 0 || portlen > 5)
		return false;
	unsigned long p = 0;
	for (size_t i = 0; i < portlen; i++) {
		if (port[i] < '0' || port[i] > '9')
			return false;
		p = p * 10 + (unsigned long)(port[i] - '0');
	}
	if (p == 0 || p > 65535)
		return false;
	memcpy(out->host, host, hostlen);
	out->host[hostlen] = '\0';
	out->port = (uint16_t)p;
	return redis_host_ok(out->host);
}

/* The master is at <a>: connect there. The watch counts a failover when
 * it moved. */
static void redis_use_master(struct redis *r, const struct redis_addr *a)
{
	redis_set_master(r, a->host, a->port);
	redis_report(r, RW_MASTER, RW_FAIL_CONNECT, NULL);
	redis_connect_master(r);
}

static void redis_discovery_failed(struct redis *r)
{
	char why[sizeof(r->sq_why) + 64];
	snprintf(why, sizeof(why), "no sentinel named the master (last: %s)", r->sq_why);
	redis_report(r, RW_FAILED, RW_FAIL_CONNECT, why);
	redis_breaker_failure(r);
	redis_schedule_retry(r);
}

static void redis_sq_next(struct redis *r);

/* Remembers why the sentinel being asked failed, for the log. */
static void redis_sq_note(struct redis *r, const char *why)
{
	const struct redis_addr *s = &r->sentinels[r->sq_idx];
	snprintf(r->sq_why, sizeof(r->sq_why), "%s:%u: %s", s->host, s->port, why);
}

static void redis_sq_failed(struct redis *r, bool dying, const char *why)
{
	redis_sq_note(r, why);
	redisAsyncContext *ac = r->sq_ac;
	if (ac) {
		r->sq_ac = NULL;
		ac->data = NULL;
		evtimer_del(r->sq_timer);
		if (!dying)
			redisAsyncFree(ac);
	}
	r->sq_idx++;
	redis_sq_next(r);
}

static void redis_on_sq_reply(redisAsyncContext *ac, void *vreply, void *privdata)
{
	struct redis *r = ac->data;
	const redisReply *reply = vreply;
	if (!r)
		return;
	if (!reply) {
		redis_sq_failed(r, true, redis_ac_why(ac));
		return;
	}
	struct redis_addr a;
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
	    reply->element[0]->type != REDIS_REPLY_STRING ||
	    reply->element[1]->type != REDIS_REPLY_STRING ||
	    !redis_parse_addr(reply->element[0]->str, reply->element[0]->len,
	                      reply->element[1]->str, reply->element[1]->len, &a)) {
		/* Nil (unknown master), or an error: ask the next one. */
		redis_sq_failed(r, false, "no usable answer to SENTINEL get-master-addr-by-name");
		return;
	}
	/* The client rules: the sentinel that answered goes first next time. */
	unsigned i = r->sq_idx;
	if (i > 0) {
		struct redis_addr s = r->sentinels[i];
		memmove(&r->sentinels[1], &r->sentinels[0], i * sizeof(r->sentinels[0]));
		r->sentinels[0] = s;
	}
	redis_sq_drop(r);
	redis_use_master(r, &a);
}

static void redis_on_sq_connect(const redisAsyncContext *cac, int status)
{
	struct redis *r = cac->data;
	if (r && status != REDIS_OK)
		redis_sq_failed(r, true, redis_ac_why(cac));
}

static void redis_on_sq_disconnect(const redisAsyncContext *cac, int status)
{
	struct redis *r = cac->data;
	if (r)
		redis_sq_failed(r, true, redis_ac_why(cac));
}

static void redis_on_sq_timer(evutil_socket_t fd, short what, void *arg)
{
	redis_sq_failed(arg, false, "no answer within connect_timeout");
}

/* Asks the sentinel r->sq_idx, at <ip> once its name resolved; on a failure
 * known at once, the next one. */
static void redis_sq_resolved(struct redis *r, const char *ip, const char *why)
{
	char fail[128];
	if (ip) {
		const char *argv[] = {"SENTINEL", "get-master-addr-by-name", r->cfg.master};
		const size_t argvlen[] = {8, 23, strlen(r->cfg.master)};
		r->sq_ac = redis_open(r, ip, r->sentinels[r->sq_idx].port, redis_on_sq_reply, 3, argv,
		                      argvlen, redis_on_sq_connect, redis_on_sq_disconnect, fail,
		                      sizeof(fail));
		if (r->sq_ac) {
			redis_timer_ms(r->sq_timer, r->cfg.connect_timeout_ms);
			return;
		}
		why = fail;
	}
	redis_sq_note(r, why);
	r->sq_idx++;
	redis_sq_next(r);
}

/* Queries the sentinels from r->sq_idx on, one at a time; the answer (or the
 * failure) arrives asynchronously. */
static void redis_sq_next(struct redis *r)
{
	if (r->sq_idx < r->nsentinels)
		redis_lookup(r, &r->sq_lk, r->sentinels[r->sq_idx].host, 0, redis_sq_resolved);
	else
		redis_discovery_failed(r);
}

/* Starts a discovery round from the first (last successful) sentinel:
 * state DISCOVERING until a sentinel names the master (then it is connected
 * to) or none does (then a retry is armed). The link calls it through
 * r->discover. */
static void redis_discover(struct redis *r)
{
	redis_sq_drop(r);
	evtimer_del(r->retry_timer);
	r->state = REDIS_ST_DISCOVERING;
	r->sq_idx = 0;
	redis_sq_next(r);
}

/* +switch-master told us where the master went: follow it at once. */
static void redis_switch_master(struct redis *r, const struct redis_addr *a)
{
	if (r->have_master && strcmp(r->master.host, a->host) == 0 && r->master.port == a->port)
		return;
	redis_sq_drop(r);
	evtimer_del(r->retry_timer);
	redis_drop(r, false, "Sentinel switched the master");
	r->attempt = 0;
	redis_attempt_begin(r);
	redis_use_master(r, a);
}

static void redis_sub_lost(struct redis *r, bool dying)
{
	redisAsyncContext *ac = r->sub_ac;
	if (ac) {
		r->sub_ac = NULL;
		ac->data = NULL;
		if (!dying)
			redisAsyncFree(ac);
	}
	evtimer_del(r->sub_timer);
	r->sub_idx++;
	redis_sub_schedule(r);
}

/* "<master> <old-ip> <old-port> <new-ip> <new-port>" */
static void redis_on_switch_message(struct redis *r, const char *msg, size_t len)
{
	const char *f[5];
	size_t flen[5];
	size_t nf = 0, i = 0;
	while (i < len && nf < 5) {
		while (i < len && msg[i] == ' ')
			i++;
		size_t start = i;
		while (i < len && msg[i] != ' ')
			i++;
		if (i > start) {
			f[nf] = msg + start;
			flen[nf++] = i - start;
		}
	}
	if (nf != 5 || flen[0] != strlen(r->cfg.master) ||
	    memcmp(f[0], r->cfg.master, flen[0]) != 0)
		return;
	struct redis_addr a;
	if (redis_parse_addr(f[3], flen[3], f[4], flen[4], &a))
		redis_switch_master(r, &a);
}

static void redis_on_sub_reply(redisAsyncContext *ac, void *vreply, void *privdata)
{
	struct redis *r = ac->data;
	const redisReply *reply = vreply;
	if (!r)
		return;
	if (!reply) {
		redis_sub_lost(r, true);
		return;
	}
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
	    reply->element[0]->type != REDIS_REPLY_STRING)
		return;
	const redisReply *kind = reply->element[0];
	if (redis_reply_is(kind, REDIS_REPLY_STRING, "subscribe")) {
		r->sub_state = SUB_ACTIVE;
		r->sub_attempt = 0;
		evtimer_del(r->sub_timer);
	} else if (redis_reply_is(kind, REDIS_REPLY_STRING, "message") &&
	           reply->element[2]->type == REDIS_REPLY_STRING) {
		redis_on_switch_message(r, reply->element[2]->str, reply->element[2]->len);
	}
}

static void redis_on_sub_connect(const redisAsyncContext *cac, int status)
{
	struct redis *r = cac->data;
	if (r && status != REDIS_OK)
		redis_sub_lost(r, true);
}

static void redis_on_sub_disconnect(const redisAsyncContext *cac, int status)
{
	struct redis *r = cac->data;
	if (r)
		redis_sub_lost(r, true);
}

static void redis_sub_resolved(struct redis *r, const char *ip, const char *why)
{
	if (ip) {
		const char *argv[] = {"SUBSCRIBE", "+switch-master"};
		const size_t argvlen[] = {9, 14};
		char fail[128];
		r->sub_ac = redis_open(r, ip, r->sentinels[r->sub_idx % r->nsentinels].port,
		                       redis_on_sub_reply, 2, argv, argvlen, redis_on_sub_connect,
		                       redis_on_sub_disconnect, fail, sizeof(fail));
		if (r->sub_ac) {
			r->sub_state = SUB_CONNECTING;
			redis_timer_ms(r->sub_timer, r->cfg.connect_timeout_ms);
			return;
		}
	}
	r->sub_idx++;
	redis_sub_schedule(r);
}

/* Starts the +switch-master subscription; it keeps itself alive from then
 * on, until redis_sentinel_close(). */
static void redis_sub_start(struct redis *r)
{
	r->sub_state = SUB_RESOLVING;
	redis_lookup(r, &r->sub_lk, r->sentinels[r->sub_idx % r->nsentinels].host, 0,
	             redis_sub_resolved);
}

static void redis_sub_schedule(struct redis *r)
{
	r->sub_state = SUB_WAIT_RETRY;
	redis_timer_ms(r->sub_timer, redis_backoff_ms(r, r->sub_attempt));
	if (r->sub_attempt < 32)
		r->sub_attempt++;
}

static void redis_on_sub_timer(evutil_socket_t fd, short what, void *arg)
{
	struct redis *r = arg;
	if (r->sub_state == SUB_CONNECTING)
		redis_sub_lost(r, false); /* no subscribe confirmation in time */
	else if (r->sub_state == SUB_WAIT_RETRY)
		redis_sub_start(r);
}

/* ---- set-up and teardown, for redis.c ---------------------------------- */

int redis_sentinel_init(struct redis *r)
{
	r->sq_timer = evtimer_new(r->base, redis_on_sq_timer, r);
	r->sub_timer = evtimer_new(r->base, redis_on_sub_timer, r);
	if (!r->sq_timer || !r->sub_timer || redis_lookup_init(r, &r->sq_lk) != LV_OK ||
	    redis_lookup_init(r, &r->sub_lk) != LV_OK)
		return LV_ERR;
	r->discover = redis_discover;
	return LV_OK;
}

void redis_sentinel_start(struct redis *r)
{
	redis_sub_start(r);
	redis_discover(r);
}

void redis_sentinel_close(struct redis *r)
{
	/* No lookup may answer from here on. */
	redis_lookup_free(&r->sq_lk);
	redis_lookup_free(&r->sub_lk);
	redis_sq_drop(r);
	if (r->sub_ac) {
		r->sub_ac->data = NULL;
		redisAsyncFree(r->sub_ac);
		r->sub_ac = NULL;
	}
	if (r->sq_timer)
		event_free(r->sq_timer);
	if (r->sub_timer)
		event_free(r->sub_timer);
	r->sq_timer = r->sub_timer = NULL;
}
