/*
 * redis.c - the Redis client's public API (redis.h): the config, its
 * defaults and checks, redis_new() and redis_free(), and the entry points a
 * worker calls. See redis.h for the caller's contract.
 *
 * The client is three files, each calling only the ones below it:
 *   redis.c           this file: the public API;
 *   redis_sentinel.c  master discovery and the +switch-master subscription
 *                     (redis_sentinel.h);
 *   redis_link.c      the data connection: attempts, backoff, handshake,
 *                     command FIFO, breaker, reports to the watch
 *                     (redis_internal.h, with struct redis). Its state
 *                     machine and invariants are described there.
 * Nothing calls up into this file, except through the user's callbacks.
 */
#include "cache/redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/redis_internal.h"
#include "cache/redis_sentinel.h"
#include "resolver.h"

#define REDIS_DEF_COMMAND_TIMEOUT_MS 25
#define REDIS_DEF_CONNECT_TIMEOUT_MS 200
#define REDIS_DEF_BACKOFF_MIN_MS 50
#define REDIS_DEF_BACKOFF_MAX_MS 5000
#define REDIS_DEF_BREAKER_FAILURES 5
#define REDIS_DEF_BREAKER_OPEN_MS 1000
#define REDIS_DEF_MAX_INFLIGHT 16384

const char *redis_strerror(enum redis_err err)
{
	switch (err) {
	case REDIS_ENONE:
		return "ok";
	case REDIS_ETIMEOUT:
		return "redis command timed out";
	case REDIS_EDOWN:
		return "redis unavailable";
	case REDIS_EBUSY:
		return "too many redis commands in flight";
	case REDIS_EIO:
		return "redis connection lost";
	case REDIS_ECLOSED:
		return "redis client closed";
	}
	return "unknown redis error";
}

/* ---- public API -------------------------------------------------------- */

/* An address or a name, and a port; a name needs the resolver. */
static int redis_check_host(const struct redis_config *c, const char *what, const char *host,
                            uint16_t port, char *err, size_t errlen)
{
	if (!redis_host_ok(host) || !port) {
		snprintf(err, errlen, "redis: %s '%s' is not an address or host name and a port", what,
		         host);
		return LV_ERR;
	}
	if (!c->resolver && !resolve_is_numeric(host)) {
		snprintf(err, errlen, "redis: %s '%s' is a name, and there is no resolver", what, host);
		return LV_ERR;
	}
	return LV_OK;
}

static int redis_check_config(struct redis *r, const struct redis_config *cfg, char *err,
                              size_t errlen)
{
	r->cfg = *cfg;
	struct redis_config *c = &r->cfg;
	c->host[sizeof(c->host) - 1] = '\0';
	c->master[sizeof(c->master) - 1] = '\0';
	c->password[sizeof(c->password) - 1] = '\0';
	if (!c->command_timeout_ms)
		c->command_timeout_ms = REDIS_DEF_COMMAND_TIMEOUT_MS;
	if (!c->connect_timeout_ms)
		c->connect_timeout_ms = REDIS_DEF_CONNECT_TIMEOUT_MS;
	if (!c->backoff_min_ms)
		c->backoff_min_ms = REDIS_DEF_BACKOFF_MIN_MS;
	if (!c->backoff_max_ms)
		c->backoff_max_ms = REDIS_DEF_BACKOFF_MAX_MS;
	if (c->backoff_max_ms < c->backoff_min_ms)
		c->backoff_max_ms = c->backoff_min_ms;
	if (!c->breaker_failures)
		c->breaker_failures = REDIS_DEF_BREAKER_FAILURES;
	if (!c->breaker_open_ms)
		c->breaker_open_ms = REDIS_DEF_BREAKER_OPEN_MS;
	if (!c->max_inflight)
		c->max_inflight = REDIS_DEF_MAX_INFLIGHT;

	if (c->nsentinels > REDIS_MAX_SENTINELS) {
		snprintf(err, errlen, "redis: at most %d sentinels", REDIS_MAX_SENTINELS);
		return LV_ERR;
	}
	if (c->nsentinels > 0) {
		if (!c->master[0]) {
			snprintf(err, errlen, "redis: sentinel mode needs a master name");
			return LV_ERR;
		}
		for (unsigned i = 0; i < c->nsentinels; i++) {
			c->sentinels[i][LV_HOST_MAX - 1] = '\0';
			if (redis_check_host(c, "sentinel", c->sentinels[i], c->sentinel_ports[i], err,
			                     errlen) != LV_OK)
				return LV_ERR;
			memcpy(r->sentinels[i].host, c->sentinels[i], sizeof(r->sentinels[i].host));
			r->sentinels[i].port = c->sentinel_ports[i];
		}
		r->nsentinels = c->nsentinels;
		r->sentinel_mode = true;
		return LV_OK;
	}
	return redis_check_host(c, "address", c->host, c->port, err, errlen);
}

struct redis *redis_new(struct event_base *base, const struct redis_config *cfg, char *err,
                        size_t errlen)
{
	struct redis *r = calloc(1, sizeof(*r));
	if (!r) {
		snprintf(err, errlen, "redis: out of memory");
		return NULL;
	}
	if (redis_check_config(r, cfg, err, errlen) != LV_OK) {
		free(r);
		return NULL;
	}
	r->base = base;
	if (redis_link_init(r) != LV_OK || (r->sentinel_mode && redis_sentinel_init(r) != LV_OK)) {
		snprintf(err, errlen, "redis: out of memory");
		redis_free(r);
		return NULL;
	}
	if (r->cfg.watch)
		redis_watch_join(r->cfg.watch, &r->wm);
	redis_attempt_begin(r);
	if (r->sentinel_mode) {
		redis_sentinel_start(r);
	} else {
		redis_set_master(r, r->cfg.host, r->cfg.port);
		redis_connect_master(r);
	}
	return r;
}

void redis_free(struct redis *r)
{
	if (!r || r->closing)
		return;
	r->closing = true;
	if (r->freed)
		*r->freed = true;

	/* The sentinels' contexts first, so that every context is detached
	 * before redis_link_close() calls the user back. */
	redis_sentinel_close(r);
	redis_link_close(r);

	if (r->cfg.watch)
		redis_watch_leave(r->cfg.watch, &r->wm);
	free(r);
}

bool redis_available(const struct redis *r)
{
	return !r->closing && redis_link_ready(r);
}

int redis_command(struct redis *r, redis_cb cb, void *arg, int argc, const char **argv,
                  const size_t *argvlen)
{
	if (r->closing)
		return LV_ERR;
	return redis_link_command(r, cb, arg, argc, argv, argvlen);
}

void redis_get_stats(const struct redis *r, struct redis_stats *out)
{
	*out = r->stats;
	out->state = r->state;
	out->breaker = r->breaker;
}
