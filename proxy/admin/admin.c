/*
 * admin.c - the admin listener. One request per connection, answered and
 * closed: scrapers and probes reconnect cheaply, and the admin port must
 * never hold state that could matter during an incident.
 */
#include "admin/admin.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cache/cache.h"
#include "invalidate/invalidate.h"
#include "log.h"
#include "net/http1.h"
#include "net/listener.h"
#include "net/worker.h"
#include "reload.h"
#include "server.h"

#define ADMIN_HEAD_BYTES 8192
#define ADMIN_HEADERS 64
#define ADMIN_TIMEOUT_S 10

struct admin_conn {
	struct bufferevent *bev;
	struct http1 parser;
	struct lv_head head;
	struct lv_hdr slots[ADMIN_HEADERS];
	char text[ADMIN_HEAD_BYTES];
	bool done;
};

static struct listener admin_listener;
/* The main thread's counters: only its accept errors and pauses, summed with
 * the workers' like theirs. */
static struct lv_stats admin_stats;

bool admin_ready(const char **why)
{
	if (atomic_load(&srv.draining)) {
		*why = "draining";
		return false;
	}
	if (!srv.current) {
		*why = "no policy loaded";
		return false;
	}
	if (!atomic_load(&srv.upstream_reachable)) {
		*why = "upstream unreachable";
		return false;
	}
	if (!invalidate_ready(why))
		return false;
	*why = NULL;
	return true;
}

static void admin_free(struct admin_conn *a)
{
	bufferevent_free(a->bev);
	free(a);
}

static void admin_reply(struct admin_conn *a, int status, const char *ctype, const char *body, size_t len)
{
	const char *phrase = status == 200   ? "OK"
	                     : status == 400 ? "Bad Request"
	                     : status == 404 ? "Not Found"
	                     : status == 405 ? "Method Not Allowed"
	                                     : "Service Unavailable";
	struct evbuffer *out = bufferevent_get_output(a->bev);
	evbuffer_add_printf(out,
	                    "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	                    "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
	                    status, phrase, ctype, len);
	evbuffer_add(out, body, len);
	a->done = true;
	bufferevent_disable(a->bev, EV_READ);
	bufferevent_enable(a->bev, EV_WRITE);
}

static void admin_text(struct admin_conn *a, int status, const char *text)
{
	admin_reply(a, status, "text/plain; charset=utf-8", text, strlen(text));
}

/* JSON string body for a C string. */
static void json_str(FILE *f, const char *s)
{
	char buf[2048 * 6 + 1];
	size_t n = strlen(s);
	if (n > 2048)
		n = 2048;
	fputc('"', f);
	fwrite(buf, 1, json_escape(buf, s, n), f);
	fputc('"', f);
}

/* Sums the workers' Redis snapshots (taken on their ticks). */
static bool admin_redis_sum(struct redis_stats *sum, unsigned *ready, unsigned *open)
{
	memset(sum, 0, sizeof(*sum));
	*ready = *open = 0;
	bool any = false;
	for (unsigned i = 0; i < srv.nworkers; i++) {
		struct worker *w = srv.workers[i];
		if (!w->redis)
			continue;
		any = true;
		pthread_mutex_lock(&w->redis_snap_lock);
		struct redis_stats s = w->redis_snap;
		pthread_mutex_unlock(&w->redis_snap_lock);
		sum->commands += s.commands;
		sum->errors += s.errors;
		sum->timeouts += s.timeouts;
		sum->latency_us_sum += s.latency_us_sum;
		sum->latency_count += s.latency_count;
		*ready += s.state == REDIS_ST_READY;
		*open += s.breaker != REDIS_BR_CLOSED;
		if (s.master_addr[0])
			memcpy(sum->master_addr, s.master_addr, sizeof(sum->master_addr));
	}
	return any;
}

static void admin_redis_metrics(FILE *f)
{
	struct redis_stats s;
	unsigned ready, open;
	if (!admin_redis_sum(&s, &ready, &open))
		return;
	/* connection events, of every Redis client of the process */
	struct redis_watch_stats w;
	redis_watch_stats(redis_watch_process(), &w);
	fprintf(f,
	        "# HELP levee_redis_connections_ready Worker connections to Redis that are ready\n"
	        "# TYPE levee_redis_connections_ready gauge\nlevee_redis_connections_ready %u\n"
	        "# HELP levee_redis_breaker_open Worker connections whose Redis breaker is open or half-open\n"
	        "# TYPE levee_redis_breaker_open gauge\nlevee_redis_breaker_open %u\n"
	        "# HELP levee_redis_commands_total Redis commands sent\n# TYPE levee_redis_commands_total counter\n"
	        "levee_redis_commands_total %llu\n"
	        "# HELP levee_redis_errors_total Redis failures: commands not answered (down, busy, connection lost), "
	        "connection attempts that failed, names that did not resolve, ready connections lost\n"
	        "# TYPE levee_redis_errors_total counter\nlevee_redis_errors_total{kind=\"command\"} %llu\n"
	        "levee_redis_errors_total{kind=\"connect\"} %llu\nlevee_redis_errors_total{kind=\"resolve\"} %llu\n"
	        "levee_redis_errors_total{kind=\"lost\"} %llu\n"
	        "# HELP levee_redis_timeouts_total Redis commands past [redis] timeout, connection attempts past "
	        "connect_timeout\n# TYPE levee_redis_timeouts_total counter\n"
	        "levee_redis_timeouts_total{kind=\"command\"} %llu\nlevee_redis_timeouts_total{kind=\"connect\"} %llu\n"
	        "# HELP levee_redis_reconnect_attempts_total Redis connection attempts after a failure or a loss\n"
	        "# TYPE levee_redis_reconnect_attempts_total counter\nlevee_redis_reconnect_attempts_total %llu\n"
	        "# HELP levee_redis_reconnects_total Redis connections re-established after a failure or a loss\n"
	        "# TYPE levee_redis_reconnects_total counter\nlevee_redis_reconnects_total %llu\n"
	        "# HELP levee_redis_failovers_total Master moves followed through Sentinel, once per process\n"
	        "# TYPE levee_redis_failovers_total counter\nlevee_redis_failovers_total %llu\n"
	        "# HELP levee_redis_breaker_opens_total Times a Redis connection's breaker opened\n"
	        "# TYPE levee_redis_breaker_opens_total counter\nlevee_redis_breaker_opens_total %llu\n"
	        "# HELP levee_redis_log_lines_held_total Redis log lines the rate limit held back (summed up later)\n"
	        "# TYPE levee_redis_log_lines_held_total counter\nlevee_redis_log_lines_held_total %llu\n"
	        "# HELP levee_redis_command_seconds Redis reply latency\n# TYPE levee_redis_command_seconds summary\n"
	        "levee_redis_command_seconds_sum %.6f\nlevee_redis_command_seconds_count %llu\n",
	        ready, open, (unsigned long long)s.commands, (unsigned long long)s.errors,
	        (unsigned long long)w.connect_errors, (unsigned long long)w.resolve_errors,
	        (unsigned long long)w.losses, (unsigned long long)s.timeouts,
	        (unsigned long long)w.connect_timeouts, (unsigned long long)w.reconnect_attempts,
	        (unsigned long long)w.reconnects, (unsigned long long)w.failovers,
	        (unsigned long long)w.breaker_opens, (unsigned long long)w.lines_held,
	        (double)s.latency_us_sum / 1e6, (unsigned long long)s.latency_count);
}

static void admin_status(FILE *f)
{
	struct runtime *rt = server_runtime_acquire();
	const struct lv_policy *p = rt->policy;
	const char *why;
	bool ready = admin_ready(&why);
	fprintf(f, "{\"version\":\"%s\",\"service\":", LEVEE_VERSION);
	json_str(f, p->service);
	fprintf(f, ",\"ready\":%s,\"draining\":%s,\"workers\":%u,\"connections\":%llu,", ready ? "true" : "false",
	        atomic_load(&srv.draining) ? "true" : "false", srv.nworkers,
	        (unsigned long long)atomic_load(&srv.conns));
	fputs("\"policy\":{\"path\":", f);
	json_str(f, p->path);
	fprintf(f, ",\"checksum\":\"%s\",\"loaded_at\":%lld,\"reloads_ok\":%llu,\"reloads_failed\":%llu,"
	           "\"last_reload_ok\":%s,\"last_error\":",
	        p->checksum, (long long)p->loaded_at, (unsigned long long)srv.reloads_ok,
	        (unsigned long long)srv.reloads_failed, srv.last_reload_ok ? "true" : "false");
	json_str(f, srv.last_error);
	fputs(",\"routes\":[", f);
	for (size_t i = 0; i < p->nroutes; i++) {
		if (i)
			fputc(',', f);
		json_str(f, p->routes[i].name);
	}
	fprintf(f, "]},\"upstream\":{\"address\":");
	json_str(f, rt->up_text);
	fprintf(f, ",\"reachable\":%s},\"cache\":", atomic_load(&srv.upstream_reachable) ? "true" : "false");
	cache_status_json(f);
	struct redis_stats rs;
	unsigned rready, ropen;
	if (admin_redis_sum(&rs, &rready, &ropen)) {
		struct redis_watch_stats ws;
		redis_watch_stats(redis_watch_process(), &ws);
		static const char *const states[] = {[RW_STARTING] = "starting", [RW_UP] = "up", [RW_DOWN] = "down"};
		fprintf(f, ",\"redis\":{\"state\":\"%s\",\"connections_ready\":%u,\"breaker_open\":%u,\"master\":",
		        states[ws.state], rready, ropen);
		json_str(f, rs.master_addr);
		fprintf(f, ",\"errors\":%llu,\"timeouts\":%llu,\"connect_errors\":%llu,\"lost\":%llu,"
		           "\"reconnects\":%llu,\"failovers\":%llu}",
		        (unsigned long long)rs.errors, (unsigned long long)rs.timeouts,
		        (unsigned long long)(ws.connect_errors + ws.resolve_errors), (unsigned long long)ws.losses,
		        (unsigned long long)ws.reconnects, (unsigned long long)ws.failovers);
	} else {
		fputs(",\"redis\":null", f);
	}
	fputc(',', f);
	invalidate_status_json(f);
	fputs("}\n", f);
	runtime_unref(rt);
}

static void admin_metrics(FILE *f)
{
	struct lv_stats *stats[257];
	unsigned n = srv.nworkers < 256 ? srv.nworkers : 256;
	for (unsigned i = 0; i < n; i++)
		stats[i] = srv.workers[i]->stats;
	stats[n++] = &admin_stats;
	const char *why;
	struct lv_gauges g = {
	    .conns_active = atomic_load(&srv.conns),
	    .workers = srv.nworkers,
	    .reloads_ok = srv.reloads_ok,
	    .reloads_failed = srv.reloads_failed,
	    .last_reload_ok = srv.last_reload_ok,
	    .ready = admin_ready(&why),
	    .draining = atomic_load(&srv.draining),
	    .upstream_reachable = atomic_load(&srv.upstream_reachable),
	};
	struct runtime *rt = server_runtime_acquire();
	g.last_reload_ts = (double)rt->policy->loaded_at;
	runtime_unref(rt);
	stats_render_prometheus(f, stats, n, &g);
	cache_render_prometheus(f);
	admin_redis_metrics(f);
	invalidate_render_prometheus(f);
}

/* Decodes %XX in a query value into `out`; false on a bad escape. */
static bool url_decode(const char *s, size_t n, char *out, size_t cap, size_t *len)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '%') {
			if (i + 2 >= n)
				return false;
			char hex[3] = {s[i + 1], s[i + 2], 0};
			char *end;
			long v = strtol(hex, &end, 16);
			if (*end)
				return false;
			c = (char)v;
			i += 2;
		} else if (c == '+') {
			c = ' ';
		}
		if (o + 1 >= cap)
			return false;
		out[o++] = c;
	}
	out[o] = '\0';
	*len = o;
	return true;
}

/* POST /purge?url=/path | prefix=/path/ | tag=T | all=1 */
static void admin_purge(struct admin_conn *a)
{
	const struct lv_head *hd = &a->head;
	if (hd->method != HTTP_POST) {
		admin_text(a, 405, "use POST\n");
		return;
	}
	const char *q = hd->text + hd->target_off + hd->path_len;
	size_t qlen = hd->target_len - hd->path_len;
	if (qlen < 2) {
		admin_text(a, 400, "give one of url=, prefix=, tag=, all=1\n");
		return;
	}
	q++, qlen--;
	const char *eq = memchr(q, '=', qlen);
	if (!eq) {
		admin_text(a, 400, "give one of url=, prefix=, tag=, all=1\n");
		return;
	}
	size_t nlen = (size_t)(eq - q);
	char val[4096];
	size_t vlen;
	/* one parameter: a raw '&' would start a second one */
	if (memchr(eq + 1, '&', qlen - nlen - 1) || !url_decode(eq + 1, qlen - nlen - 1, val, sizeof(val), &vlen)) {
		admin_text(a, 400, "bad value (one parameter, %-escaped)\n");
		return;
	}
	struct runtime *rt = server_runtime_acquire();
	const char *svc = rt->policy->service;
	size_t n;
	bool ok = true;
	bool prefix = nlen == 6 && memcmp(q, "prefix", 6) == 0 && vlen && val[0] == '/';
	if (prefix && srv.l2 && val[vlen - 1] != '/') {
		runtime_unref(rt);
		admin_text(a, 400, "with Redis, a prefix purge ends in '/' (a path segment boundary)\n");
		return;
	}
	struct inval_item it = {INVAL_ALL, val, vlen};
	if (nlen == 3 && memcmp(q, "url", 3) == 0 && vlen && val[0] == '/')
		it.kind = INVAL_KEY, n = cache_purge_url(srv.l2, svc, val, vlen);
	else if (prefix)
		it.kind = INVAL_PREFIX, n = cache_purge_prefix(srv.l2, svc, val, vlen);
	else if (nlen == 3 && memcmp(q, "tag", 3) == 0 && vlen)
		it.kind = INVAL_TAG, n = cache_purge_tag(srv.l2, svc, val, vlen);
	else if (nlen == 3 && memcmp(q, "all", 3) == 0)
		it.len = 0, n = cache_purge_all(srv.l2, svc);
	else
		ok = false;
	runtime_unref(rt);
	/* and on every other replica, when Kafka is configured */
	if (ok)
		invalidate_publish(&it, 1);
	if (!ok) {
		admin_text(a, 400, "give one of url=/path, prefix=/path, tag=T, all=1\n");
		return;
	}
	char msg[64];
	snprintf(msg, sizeof(msg), "{\"purged\":%zu}\n", n);
	admin_reply(a, 200, "application/json", msg, strlen(msg));
}

static void admin_route(struct admin_conn *a)
{
	const struct lv_head *hd = &a->head;
	const char *path = hd->text + hd->target_off;
	size_t plen = hd->path_len;
	bool get = hd->method == HTTP_GET || hd->method == HTTP_HEAD;
#define PATH_IS(s) (plen == sizeof(s) - 1 && memcmp(path, s, plen) == 0)
	if (PATH_IS("/healthz")) {
		admin_text(a, get ? 200 : 405, get ? "ok\n" : "use GET\n");
	} else if (PATH_IS("/readyz")) {
		const char *why;
		char msg[128];
		if (admin_ready(&why)) {
			admin_text(a, 200, "ready\n");
		} else {
			snprintf(msg, sizeof(msg), "not ready: %s\n", why);
			admin_text(a, 503, msg);
		}
	} else if (PATH_IS("/metrics") || PATH_IS("/status")) {
		char *buf = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&buf, &len);
		if (!f) {
			admin_text(a, 503, "out of memory\n");
			return;
		}
		bool metrics = PATH_IS("/metrics");
		if (metrics)
			admin_metrics(f);
		else
			admin_status(f);
		fclose(f);
		admin_reply(a, 200, metrics ? "text/plain; version=0.0.4; charset=utf-8" : "application/json", buf,
		            len);
		free(buf);
	} else if (PATH_IS("/purge")) {
		admin_purge(a);
	} else if (PATH_IS("/reload")) {
		if (hd->method != HTTP_POST) {
			admin_text(a, 405, "use POST\n");
			return;
		}
		struct lv_diag d = {0};
		if (reload_now(&d) == LV_OK) {
			admin_text(a, 200, "reloaded\n");
		} else {
			char *buf = NULL;
			size_t len = 0;
			FILE *f = open_memstream(&buf, &len);
			if (f) {
				for (size_t i = 0; i < d.n; i++)
					fprintf(f, "%s\n", d.lines[i]);
				fclose(f);
				admin_reply(a, 400, "text/plain; charset=utf-8", buf, len);
				free(buf);
			} else {
				admin_text(a, 400, "reload failed\n");
			}
		}
		diag_free(&d);
	} else {
		admin_text(a, 404, "not found; try /healthz /readyz /metrics /status, POST /reload\n");
	}
#undef PATH_IS
}

static void admin_readcb(struct bufferevent *bev, void *arg)
{
	struct admin_conn *a = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	if (a->done) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	size_t used;
	enum h1_result rc = http1_feed_evbuffer(&a->parser, in, &used);
	enum lv_reason why;
	if (rc == H1_ERROR || (rc == H1_HEAD_DONE && http1_check_request(&a->head, &why) != 0)) {
		admin_text(a, 400, "bad request\n");
		return;
	}
	if (rc == H1_HEAD_DONE)
		admin_route(a);
}

static void admin_writecb(struct bufferevent *bev, void *arg)
{
	struct admin_conn *a = arg;
	if (a->done && !evbuffer_get_length(bufferevent_get_output(bev)))
		admin_free(a);
}

static void admin_eventcb(struct bufferevent *bev, short what, void *arg)
{
	admin_free(arg);
}

static void admin_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int socklen, void *arg)
{
	struct event_base *base = evconnlistener_get_base(l);
	struct admin_conn *a = calloc(1, sizeof(*a));
	if (!a) {
		close(fd);
		return;
	}
	a->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!a->bev) {
		close(fd);
		free(a);
		return;
	}
	a->head.h = a->slots;
	a->head.max = ADMIN_HEADERS;
	a->head.text = a->text;
	a->head.cap = ADMIN_HEAD_BYTES;
	struct h1_limits lim = {ADMIN_HEAD_BYTES, ADMIN_HEADERS, 2048};
	http1_init(&a->parser, HTTP_REQUEST, &a->head, &lim);
	struct timeval tv = {ADMIN_TIMEOUT_S, 0};
	bufferevent_set_timeouts(a->bev, &tv, &tv);
	bufferevent_setcb(a->bev, admin_readcb, admin_writecb, admin_eventcb, a);
	bufferevent_enable(a->bev, EV_READ);
}

int admin_start(struct event_base *base, const struct lv_hostport *addr, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t len;
	if (resolve_hostport(addr, &ss, &len, err, errlen) != LV_OK)
		return LV_ERR;
	struct evconnlistener *lev = evconnlistener_new_bind(base, NULL, NULL,
	                                                     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 128,
	                                                     (struct sockaddr *)&ss, (int)len);
	if (!lev) {
		snprintf(err, errlen, "admin listen on %s:%u: %s", addr->host, addr->port, strerror(errno));
		return LV_ERR;
	}
	if (listener_init(&admin_listener, lev, admin_accept, NULL, "admin", &admin_stats.accept_errors,
	                  &admin_stats.accept_pauses) != LV_OK) {
		snprintf(err, errlen, "admin listener: out of memory");
		return LV_ERR;
	}
	return LV_OK;
}

void admin_stop(void)
{
	listener_close(&admin_listener);
}
