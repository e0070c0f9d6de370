/*
 * admin.c - the admin listener, and the probe listener that serves part of
 * it. One request per connection, answered and closed: scrapers and probes
 * reconnect cheaply, and the admin port must never hold state that could
 * matter during an incident.
 */
#include "admin/admin.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "admin/auth.h"
#include "admin/cache_entry.h"
#include "admin/figures.h"
#include "admin/status_page.h"
#include "cache/cache_ctx.h"
#include "cache/cache_loop.h"
#include "cache/warmup.h"
#include "control/control.h"
#include "invalidate/invalidate.h"
#include "invalidate/json.h"
#include "log.h"
#include "net/http1.h"
#include "stats.h"
#include "net/listener.h"
#include "net/worker.h"
#include "server.h"
#include "resilience/breaker.h"
#include "resilience/tiers.h"
#include "resilience/bulkhead.h"

#define ADMIN_HEAD_BYTES 8192
#define ADMIN_HEADERS 64
#define ADMIN_TIMEOUT_S 10
/* refusals are logged, but a scanner must not fill the log */
#define ADMIN_REFUSED_LOG_GAP_US (10 * 1000 * 1000)

struct admin_conn {
	struct bufferevent *bev;
	struct http1 parser;
	struct lv_head head;
	struct lv_hdr slots[ADMIN_HEADERS];
	char text[ADMIN_HEAD_BYTES];
	char peer[64]; /* the client's address, for the log */
	bool probe;    /* came in on the probe listener */
	bool done;
	struct purge_wait *purge; /* a purge waiting for Redis's answer, or NULL */
};

/* The admin listener serves every endpoint; the probe listener only those
 * marked EP_PROBE, which change nothing and need no token, so that it can
 * face the kubelet and Prometheus while the admin listener stays on
 * loopback. Both run the same code below; `probe_listener.lev` is NULL when
 * [levee] probe is none. */
static struct listener admin_listener, probe_listener;
/* The server, handed down by admin_start(); main thread only. */
static struct server *admin_srv;
/* The main thread's counters: only its accept errors and pauses, summed with
 * the workers' like theirs. */
static struct lv_stats admin_stats;
static struct auth admin_auth;
static char admin_token_env[LV_NAME_MAX];
static uint64_t admin_refused[AUTH__COUNT]; /* by verdict; main thread only */
static struct log_limit admin_refused_log;

/* A purge answered once Redis has its generation bump (or refused it, or
 * did not answer within its command timeout), so that a 200 means no
 * replica reads the purged entries from Redis any more. */
struct purge_wait {
	struct admin_conn *a; /* NULL once the client went away: the answer frees it */
	bool sent;            /* cache_purge_item() returned: the fields below are set */
	bool answered, ok;    /* Redis answered; it took the bump */
	bool glob;
	size_t n; /* L1 entries purged */
	size_t plen;
	char prefix[4096];
};

static void admin_free(struct admin_conn *a)
{
	if (a->purge)
		a->purge->a = NULL; /* Redis's answer still comes, to nobody */
	bufferevent_free(a->bev);
	free(a);
}

static const char *admin_phrase(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 202:
		return "Accepted";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 422:
		return "Unprocessable Content";
	default:
		return "Service Unavailable";
	}
}

/* `extra`: more complete "Name: value\r\n" lines, or NULL. */
static void admin_reply(struct admin_conn *a, int status, const char *ctype, const char *body, size_t len,
                        const char *extra)
{
	struct evbuffer *out = bufferevent_get_output(a->bev);
	evbuffer_add_printf(out,
	                    "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	                    "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
	                    status, admin_phrase(status), ctype, len, extra ? extra : "");
	if (a->head.method != HTTP_HEAD)
		evbuffer_add(out, body, len);
	a->done = true;
	bufferevent_disable(a->bev, EV_READ);
	bufferevent_enable(a->bev, EV_WRITE);
}

static void admin_text(struct admin_conn *a, int status, const char *text)
{
	admin_reply(a, status, "text/plain; charset=utf-8", text, strlen(text), NULL);
}

/* JSON string body for a C string. */
static void json_str(FILE *f, const char *s)
{
	char buf[2048 * 6 + 1];
	size_t n = strlen(s);
	if (n > 2048)
		n = 2048;
	/* JSON text is UTF-8: a byte that starts no well-formed sequence (a
	 * Latin-1 policy file quoted in a reload's error, a value cut at 2048)
	 * goes out as \u00XX, its value; the rest as json_escape() writes it */
	size_t o = 0, start = 0;
	for (size_t i = 0; i < n;) {
		size_t l = json_utf8_len(s + i, n - i);
		if (l) {
			i += l;
			continue;
		}
		o += json_escape(buf + o, s + start, i - start);
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "\\u%04x", (unsigned)(unsigned char)s[i]);
		start = ++i;
	}
	o += json_escape(buf + o, s + start, n - start);
	fputc('"', f);
	fwrite(buf, 1, o, f);
	fputc('"', f);
}

/* ,"NAME":V, or null for a V of 0 (not measured). */
static void json_count(FILE *f, const char *name, unsigned v)
{
	if (v)
		fprintf(f, ",\"%s\":%u", name, v);
	else
		fprintf(f, ",\"%s\":null", name);
}

static void admin_redis_metrics(FILE *f)
{
	struct redis_stats s;
	unsigned ready, open;
	if (!admin_redis_sum(admin_srv, &s, &ready, &open))
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
	        "# HELP levee_redis_errors_total Redis failures, by operation: commands not answered (down, busy, "
	        "connection lost), connection attempts that failed, names that did not resolve, ready connections lost\n"
	        "# TYPE levee_redis_errors_total counter\nlevee_redis_errors_total{operation=\"command\"} %llu\n"
	        "levee_redis_errors_total{operation=\"connect\"} %llu\n"
	        "levee_redis_errors_total{operation=\"resolve\"} %llu\n"
	        "levee_redis_errors_total{operation=\"connection\"} %llu\n"
	        "# HELP levee_redis_timeouts_total Redis commands past [redis] timeout, connection attempts past "
	        "connect_timeout, by operation\n# TYPE levee_redis_timeouts_total counter\n"
	        "levee_redis_timeouts_total{operation=\"command\"} %llu\n"
	        "levee_redis_timeouts_total{operation=\"connect\"} %llu\n"
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
	        "# HELP levee_redis_command_duration_seconds Redis reply latency\n"
	        "# TYPE levee_redis_command_duration_seconds summary\n"
	        "levee_redis_command_duration_seconds_sum %.6f\nlevee_redis_command_duration_seconds_count %llu\n",
	        ready, open, (unsigned long long)s.commands, (unsigned long long)s.errors,
	        (unsigned long long)w.connect_errors, (unsigned long long)w.resolve_errors,
	        (unsigned long long)w.losses, (unsigned long long)s.timeouts,
	        (unsigned long long)w.connect_timeouts, (unsigned long long)w.reconnect_attempts,
	        (unsigned long long)w.reconnects, (unsigned long long)w.failovers,
	        (unsigned long long)w.breaker_opens, (unsigned long long)w.lines_held,
	        (double)s.latency_us_sum / 1e6, (unsigned long long)s.latency_count);
}

/* A ',' separated list as a JSON array of strings. */
static void json_list(FILE *f, const char *list)
{
	fputc('[', f);
	for (const char *p = list; *p;) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		char item[LV_NAME_MAX * 2];
		snprintf(item, sizeof(item), "%.*s", (int)n, p);
		if (p != list)
			fputc(',', f);
		json_str(f, item);
		p += n + (end != NULL);
	}
	fputc(']', f);
}

/* The running policy's file and the reload state, inside /status's "policy".
 * `checksum` is the file the running policy was read from; the keys in
 * `restart_keys` still have the values of the file levee started with. */
static void admin_reload_json(FILE *f, const struct lv_policy *p)
{
	const struct reload_status *r = &admin_srv->reload;
	uint64_t attempts = r->count[RELOAD_APPLIED] + r->count[RELOAD_UNCHANGED] + r->count[RELOAD_REFUSED];
	fprintf(f,
	        ",\"checksum\":\"%s\",\"started_checksum\":\"%s\",\"loaded_at\":%lld,\"reloads_ok\":%llu,"
	        "\"reloads_unchanged\":%llu,\"reloads_failed\":%llu,\"last_reload\":",
	        p->checksum, r->started_checksum, (long long)p->loaded_at,
	        (unsigned long long)r->count[RELOAD_APPLIED], (unsigned long long)r->count[RELOAD_UNCHANGED],
	        (unsigned long long)r->count[RELOAD_REFUSED]);
	if (attempts)
		fprintf(f, "\"%s\",\"last_reload_at\":%.3f", reload_result_name(r->last), r->last_ts);
	else
		fputs("null,\"last_reload_at\":null", f);
	fprintf(f, ",\"last_reload_ok\":%s,\"last_error\":", reload_status_ok(r) ? "true" : "false");
	json_str(f, r->error);
	fprintf(f, ",\"restart_pending\":%s,\"restart_keys\":",
	        reload_status_restart_pending(r) ? "true" : "false");
	json_list(f, r->restart_keys);
}

static void admin_status(FILE *f)
{
	struct server *s = admin_srv;
	struct runtime *rt = server_runtime_acquire(s);
	const struct lv_policy *p = rt->policy;
	const char *why;
	bool ready = admin_ready(admin_srv, &why);
	fprintf(f, "{\"version\":\"%s\",\"service\":", LEVEE_VERSION);
	json_str(f, p->service);
	fprintf(f, ",\"ready\":%s,\"draining\":%s,\"workers\":%u,\"bulkhead_threads\":%u,\"connections\":%llu,",
	        ready ? "true" : "false", atomic_load(&s->draining) ? "true" : "false", s->nlisteners,
	        s->nworkers - s->nlisteners, (unsigned long long)atomic_load(&s->conns));
	/* what sized the workers: the policy, or workers = auto's measures (0: none) */
	fprintf(f, "\"workers_sizing\":{\"decided_by\":\"%s\"", cpus_source_name(s->cpus.source));
	json_count(f, "affinity_cpus", s->cpus.affinity);
	json_count(f, "cgroup_cpus", s->cpus.cgroup.cpus);
	fputs(",\"cgroup_file\":", f);
	json_str(f, s->cpus.cgroup.file);
	fputs(",\"cgroup_note\":", f);
	json_str(f, s->cpus.cgroup.why);
	fputs("},", f);
	fputs("\"policy\":{\"path\":", f);
	json_str(f, p->path);
	admin_reload_json(f, p);
	fputs(",\"routes\":[", f);
	for (size_t i = 0; i < p->nroutes; i++) {
		if (i)
			fputc(',', f);
		json_str(f, p->routes[i].name);
	}
	fprintf(f, "]},\"upstream\":{\"address\":");
	json_str(f, rt->up_text);
	fprintf(f, ",\"reachable\":%s},\"cache\":", atomic_load(&s->upstream_reachable) ? "true" : "false");
	cache_status_json(admin_srv->cache, f);
	fputs(",\"warmup\":", f);
	warmup_status_json(f);
	fputs(",\"bulkheads\":", f);
	bulkhead_status_json(f);
	fputs(",\"breakers\":", f);
	breaker_status_json(f, now_us() / 1000);
	fputs(",\"tiers\":", f);
	tiers_status_json(f);
	struct redis_stats rs;
	unsigned rready, ropen;
	if (admin_redis_sum(admin_srv, &rs, &rready, &ropen)) {
		struct redis_watch_stats ws;
		redis_watch_stats(redis_watch_process(), &ws);
		fprintf(f, ",\"redis\":{\"state\":\"%s\",\"connections_ready\":%u,\"breaker_open\":%u,\"master\":",
		        redis_watch_state_names[ws.state], rready, ropen);
		json_str(f, rs.master_addr);
		fprintf(f, ",\"errors\":%llu,\"timeouts\":%llu,\"connect_errors\":%llu,\"lost\":%llu,"
		           "\"reconnects\":%llu,\"failovers\":%llu}",
		        (unsigned long long)rs.errors, (unsigned long long)rs.timeouts,
		        (unsigned long long)(ws.connect_errors + ws.resolve_errors), (unsigned long long)ws.losses,
		        (unsigned long long)ws.reconnects, (unsigned long long)ws.failovers);
	} else {
		fputs(",\"redis\":null", f);
	}
	fprintf(f, ",\"admin\":{\"auth\":\"%s\",\"token_env\":", auth_mode_name(admin_auth.mode));
	json_str(f, admin_token_env);
	fputs(",\"probe\":", f);
	if (p->probe.host[0])
		fprintf(f, strchr(p->probe.host, ':') ? "\"[%s]:%u\"" : "\"%s:%u\"", p->probe.host, p->probe.port);
	else
		fputs("null", f);
	fputs("},", f);
	invalidate_status_json(f);
	fputc(',', f);
	control_status_json(f);
	fputs("}\n", f);
	runtime_unref(rt);
}

static void admin_metrics(FILE *f)
{
	struct server *s = admin_srv;
	/* every loop's shard: listener workers and bulkhead threads */
	struct lv_stats **stats = malloc((s->nworkers + 1) * sizeof(*stats));
	if (!stats)
		return;
	unsigned n = s->nworkers;
	for (unsigned i = 0; i < n; i++)
		stats[i] = s->workers[i]->stats;
	stats[n++] = &admin_stats;
	const char *why;
	struct lv_gauges g = {
	    .conns_active = atomic_load(&s->conns),
	    .workers = s->nlisteners,
	    .reloads_ok = s->reload.count[RELOAD_APPLIED],
	    .reloads_unchanged = s->reload.count[RELOAD_UNCHANGED],
	    .reloads_failed = s->reload.count[RELOAD_REFUSED],
	    .last_reload_ok = reload_status_ok(&s->reload),
	    .restart_pending = reload_status_restart_pending(&s->reload),
	    .ready = admin_ready(admin_srv, &why),
	    .draining = atomic_load(&s->draining),
	    .upstream_reachable = atomic_load(&s->upstream_reachable),
	};
	struct runtime *rt = server_runtime_acquire(s);
	g.last_reload_ts = (double)rt->policy->loaded_at;
	stats_render_prometheus(f, stats, n, &g, rt->route_stat, rt->policy->nroutes);
	runtime_unref(rt);
	free(stats);
	cache_render_prometheus(admin_srv->cache, f);
	warmup_render_prometheus(f);
	bulkhead_render_prometheus(f);
	breaker_render_prometheus(f, now_us() / 1000);
	tiers_render_prometheus(f);
	admin_redis_metrics(f);
	invalidate_render_prometheus(f);
	control_render_prometheus(f);
	fputs("# HELP levee_admin_refused_total Admin requests refused for want of authorization: no bearer token, "
	      "a wrong one, or none configured off loopback\n# TYPE levee_admin_refused_total counter\n",
	      f);
	for (int v = AUTH_MISSING; v < AUTH__COUNT; v++) {
		char value[PROM_VALUE_MAX];
		fprintf(f, "levee_admin_refused_total{reason=\"%s\"} %llu\n", prom_value(value, auth_verdict_name(v)),
		        (unsigned long long)admin_refused[v]);
	}
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

/* url= takes the globs of a policy's `match` in its path, and a purge
 * removes one URL or every URL under a prefix: the glob in <val> becomes the
 * prefix route_purge_shape() says, *len bytes long. NULL, or why not. */
static const char *admin_purge_glob(const char *val, size_t *len)
{
	const char *why = NULL;
	if (strcspn(val, "?") != *len)
		return "a glob matches paths only: drop the query";
	if (route_pattern_check(LV_MATCH_GLOB, val, *len, &why) != LV_OK)
		return why;
	route_purge_shape(val, *len, len);
	return NULL;
}

/* Replies to the purge (unless its client went away) and frees `w`. `redis`:
 * what became of the Redis half, NULL without Redis. 202 while Redis has
 * not taken it: levee retries it, and fences its own Redis hits meanwhile. */
static void admin_purge_answer(struct purge_wait *w, const char *redis)
{
	struct admin_conn *a = w->a;
	if (a) {
		/* a glob says which prefix it purged, which may be wider than the glob */
		char msg[96 + sizeof(w->prefix) * 6];
		size_t o = (size_t)snprintf(msg, sizeof(msg), "{\"purged\":%zu", w->n);
		if (w->glob) {
			o += (size_t)snprintf(msg + o, sizeof(msg) - o, ",\"prefix\":\"");
			o += json_escape(msg + o, w->prefix, w->plen);
			msg[o++] = '"';
		}
		if (redis)
			o += (size_t)snprintf(msg + o, sizeof(msg) - o, ",\"redis\":\"%s\"", redis);
		o += (size_t)snprintf(msg + o, sizeof(msg) - o, "}\n");
		a->purge = NULL;
		admin_reply(a, redis && strcmp(redis, "retrying") == 0 ? 202 : 200, "application/json", msg, o, NULL);
	}
	free(w);
}

/* Redis's answer to a purge's generation bump. */
static void admin_purge_redis(void *arg, bool ok)
{
	struct purge_wait *w = arg;
	w->answered = true;
	w->ok = ok;
	if (w->sent) /* else admin_purge() is still in cache_purge_item(), and replies */
		admin_purge_answer(w, ok ? "applied" : "retrying");
}

/* POST /purge?url=/path[?query] | url=GLOB | prefix=/path/ | tag=T | all=1
 * (or true: anything else is a mistake, and emptying every replica's cache
 * is not its remedy) */
static void admin_purge(struct admin_conn *a)
{
	const struct lv_head *hd = &a->head;
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
	struct runtime *rt = server_runtime_acquire(admin_srv);
	const char *svc = rt->policy->service;
	bool ok = true;
	bool prefix = nlen == 6 && memcmp(q, "prefix", 6) == 0 && vlen && val[0] == '/';
	bool url = nlen == 3 && memcmp(q, "url", 3) == 0 && vlen && val[0] == '/';
	bool glob = url && memchr(val, '*', strcspn(val, "?")) != NULL;
	const char *refused = glob ? admin_purge_glob(val, &vlen) : NULL;
	if (glob)
		prefix = true;
	else if (prefix && memchr(val, '*', vlen))
		refused = "a prefix is literal: for a glob give url=/path/**";
	else if (nlen == 3 && memcmp(q, "tag", 3) == 0 && memchr(val, '*', vlen))
		refused = "a tag is an exact name: '*' is no wildcard in tags";
	if (!refused && prefix && admin_srv->l2 && val[vlen - 1] != '/')
		refused = "with Redis, a prefix purge ends in '/' (a path segment boundary)";
	if (refused) {
		runtime_unref(rt);
		char msg[256];
		snprintf(msg, sizeof(msg), "%s\n", refused);
		admin_text(a, 400, msg);
		return;
	}
	struct inval_item it = {INVAL_ALL, "", 0};
	if (url && !prefix)
		it = (struct inval_item){INVAL_KEY, val, vlen};
	else if (prefix)
		it = (struct inval_item){INVAL_PREFIX, val, vlen};
	else if (nlen == 3 && memcmp(q, "tag", 3) == 0 && vlen)
		it = (struct inval_item){INVAL_TAG, val, vlen};
	else if (!(nlen == 3 && memcmp(q, "all", 3) == 0 && (strcmp(val, "1") == 0 || strcmp(val, "true") == 0)))
		ok = false;
	struct purge_wait *w = ok ? calloc(1, sizeof(*w)) : NULL;
	if (!w) {
		runtime_unref(rt);
		if (ok)
			admin_text(a, 503, "out of memory\n");
		else
			admin_text(a, 400, "give one of url=/path, prefix=/path, tag=T, all=1 (or all=true)\n");
		return;
	}
	bool waiting = false;
	w->a = a;
	w->n = cache_purge_item(admin_srv->cache, admin_srv->l2, svc, &it, admin_purge_redis, w, &waiting);
	/* not sent at all, with Redis: a key too long for a generation tag, or
	 * a link that is down (then the purge is queued for a retry) */
	const char *unsent = !admin_srv->l2 ? NULL : cache_purge_item_has_l2(svc, &it) ? "retrying" : "skipped";
	runtime_unref(rt);
	/* and on every other replica, when Kafka is configured */
	invalidate_publish(&it, 1);
	w->glob = glob;
	w->plen = vlen < sizeof(w->prefix) ? vlen : sizeof(w->prefix);
	memcpy(w->prefix, val, w->plen);
	w->sent = true;
	if (w->answered || !waiting) {
		admin_purge_answer(w, w->answered ? (w->ok ? "applied" : "retrying") : unsent);
		return;
	}
	a->purge = w;
	bufferevent_disable(a->bev, EV_READ);
}

/* The value of parameter `name` in query `q` (without its '?'), decoded;
 * false when it is absent, empty or badly escaped. */
static bool query_param(const char *q, size_t qlen, const char *name, char *out, size_t cap)
{
	size_t nlen = strlen(name);
	for (const char *p = q, *end = q + qlen; p < end;) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *stop = amp ? amp : end;
		if ((size_t)(stop - p) > nlen && memcmp(p, name, nlen) == 0 && p[nlen] == '=') {
			size_t len;
			return url_decode(p + nlen + 1, (size_t)(stop - p) - nlen - 1, out, cap, &len) && len > 0;
		}
		p = stop + 1;
	}
	return false;
}

/* POST /breaker?name=NAME&force=open|closed|clear[&for=DURATION]: holds a
 * breaker open or closed by hand for a while (default 10m, at most 24h),
 * or lets it go (breaker.h). Answers the breaker's state after it. */
static void admin_breaker(struct admin_conn *a)
{
	const struct lv_head *hd = &a->head;
	const char *q = hd->text + hd->target_off + hd->path_len;
	size_t qlen = hd->target_len - hd->path_len;
	char name[LV_NAME_MAX], force[16], dur[32];
	if (qlen < 2 || !query_param(q + 1, qlen - 1, "name", name, sizeof(name)) ||
	    !query_param(q + 1, qlen - 1, "force", force, sizeof(force))) {
		admin_text(a, 400, "give name=BREAKER and force=open|closed|clear (and for=DURATION, default 10m)\n");
		return;
	}
	enum brk_force f;
	if (strcmp(force, "open") == 0)
		f = BRK_FORCE_OPEN;
	else if (strcmp(force, "closed") == 0)
		f = BRK_FORCE_CLOSED;
	else if (strcmp(force, "clear") == 0)
		f = BRK_FORCE_NONE;
	else {
		admin_text(a, 400, "force is one of open, closed, clear\n");
		return;
	}
	uint64_t for_ms = 600000;
	const char *why = NULL;
	if (query_param(q + 1, qlen - 1, "for", dur, sizeof(dur)) &&
	    (value_duration_ms(dur, &for_ms, &why) != LV_OK || for_ms == 0 || for_ms > 86400000)) {
		admin_text(a, 400, "for is a duration from 1ms to 24h, such as 90s or 10m\n");
		return;
	}
	struct runtime *rt = server_runtime_acquire(admin_srv);
	struct breaker *b = NULL;
	for (size_t i = 0; i < rt->policy->nbreakers && !b; i++)
		if (strcmp(rt->policy->breakers[i].name, name) == 0)
			b = rt->breakers[i];
	if (!b) {
		runtime_unref(rt);
		admin_text(a, 404, "no breaker of that name in the running policy\n");
		return;
	}
	uint64_t now_ms = now_us() / 1000;
	breaker_force(b, f, for_ms, now_ms);
	struct breaker_stats st;
	breaker_stats(b, now_ms, &st);
	static const char *const forced[] = {"", "open", "closed"};
	char msg[256];
	int n = snprintf(msg, sizeof(msg), "{\"breaker\":\"%s\",\"state\":\"%s\",\"forced\":\"%s\",\"forced_left_ms\":%llu}\n",
	                 b->named.name, breaker_state_names[st.state], forced[st.forced],
	                 (unsigned long long)st.forced_left_ms);
	runtime_unref(rt);
	admin_reply(a, 200, "application/json", msg, (size_t)n, NULL);
}

static void admin_document(struct admin_conn *a, const char *ctype, void (*write)(FILE *f), const char *extra);

static void admin_tiers_json(FILE *f)
{
	tiers_status_json(f);
	fputc('\n', f);
}

/* GET /tiers: the tiers' state, as in /status. */
static void admin_tiers(struct admin_conn *a)
{
	admin_document(a, "application/json", admin_tiers_json, NULL);
}

/* POST /tier?force=TIER[&for=DURATION][&reason=TEXT]: holds the level at a
 * tier (or "normal") for a while (default 10m, at most 24h), whatever the
 * signals say; POST /tier?clear=1 ends the forcing in force. Answers the
 * tiers' state after it. */
static void admin_tier(struct admin_conn *a)
{
	const struct lv_head *hd = &a->head;
	const char *q = hd->text + hd->target_off + hd->path_len;
	size_t qlen = hd->target_len - hd->path_len;
	char tier[LV_NAME_MAX], dur[32], clear[8];
	struct tier_force f = {.source = "admin"};
	if (qlen >= 2 && query_param(q + 1, qlen - 1, "clear", clear, sizeof(clear))) {
		if (!tiers_clear(NULL)) {
			admin_text(a, 409, "no forcing is in force\n");
			return;
		}
		admin_tiers(a);
		return;
	}
	if (qlen < 2 || !query_param(q + 1, qlen - 1, "force", tier, sizeof(tier))) {
		admin_text(a, 400, "give force=TIER (a [tier] name, or normal) and for=DURATION (default 10m), "
		                   "or clear=1\n");
		return;
	}
	uint64_t for_ms = 600000;
	const char *why = NULL;
	if (query_param(q + 1, qlen - 1, "for", dur, sizeof(dur)) &&
	    (value_duration_ms(dur, &for_ms, &why) != LV_OK || for_ms == 0 || for_ms > 86400000)) {
		admin_text(a, 400, "for is a duration from 1ms to 24h, such as 90s or 10m\n");
		return;
	}
	if (!query_param(q + 1, qlen - 1, "reason", f.reason, sizeof(f.reason)))
		snprintf(f.reason, sizeof(f.reason), "forced on the admin port");
	for (char *c = f.reason; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = ' '; /* it goes to the log */
	/* it goes into /status, /tiers and the log as JSON text, which must be
	 * UTF-8: the control topic holds its reasons to the same rule */
	for (size_t i = 0, n = strlen(f.reason), l; i < n; i += l) {
		l = json_utf8_len(f.reason + i, n - i);
		if (!l) {
			admin_text(a, 400, "reason is UTF-8 text\n");
			return;
		}
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t now_ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
	snprintf(f.tier, sizeof(f.tier), "%s", tier);
	snprintf(f.id, sizeof(f.id), "admin-%llu", (unsigned long long)now_ms);
	f.until_unix_ms = now_ms + for_ms;
	char err[256];
	if (tiers_force(&f, err, sizeof(err)) != LV_OK) {
		char msg[300];
		snprintf(msg, sizeof(msg), "%s\n", err);
		admin_text(a, 404, msg);
		return;
	}
	admin_tiers(a);
}

/* POST /reload: always JSON, one answer per outcome. A refusal is 422: the
 * request was fine, the file it names cannot be applied, and asking again
 * changes nothing until the file does. */
static void admin_reload(struct admin_conn *a)
{
	struct lv_diag d = {0};
	if (!admin_srv->reload_hook) {
		admin_text(a, 503, "reloads are not set up yet\n");
		return;
	}
	enum reload_result r = admin_srv->reload_hook(&d);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f) {
		diag_free(&d);
		admin_text(a, 503, "out of memory\n");
		return;
	}
	fprintf(f, "{\"result\":\"%s\"", reload_result_name(r));
	if (r == RELOAD_REFUSED) {
		fputs(",\"errors\":[", f);
		for (size_t i = 0; i < d.n; i++) {
			if (i)
				fputc(',', f);
			json_str(f, d.lines[i]);
		}
		fputc(']', f);
	} else {
		struct runtime *rt = server_runtime_acquire(admin_srv);
		fprintf(f, ",\"checksum\":\"%s\",\"restart_keys\":", rt->policy->checksum);
		runtime_unref(rt);
		json_list(f, admin_srv->reload.restart_keys);
	}
	fputs("}\n", f);
	fclose(f);
	admin_reply(a, r == RELOAD_REFUSED ? 422 : 200, "application/json", buf, len, NULL);
	free(buf);
	diag_free(&d);
}

static void admin_healthz(struct admin_conn *a)
{
	admin_text(a, 200, "ok\n");
}

static void admin_readyz(struct admin_conn *a)
{
	const char *why;
	char msg[128];
	if (admin_ready(admin_srv, &why)) {
		admin_text(a, 200, "ready\n");
		return;
	}
	snprintf(msg, sizeof(msg), "not ready: %s\n", why);
	admin_text(a, 503, msg);
}

/* Answers 200 with what `write` puts in a buffer; `extra` as admin_reply's. */
static void admin_document(struct admin_conn *a, const char *ctype, void (*write)(FILE *f), const char *extra)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f) {
		admin_text(a, 503, "out of memory\n");
		return;
	}
	write(f);
	fclose(f);
	admin_reply(a, 200, ctype, buf, len, extra);
	free(buf);
}

static void admin_serve_metrics(struct admin_conn *a)
{
	admin_document(a, "text/plain; version=0.0.4; charset=utf-8", admin_metrics, NULL);
}

static void admin_serve_status(struct admin_conn *a)
{
	admin_document(a, "application/json", admin_status, NULL);
}

/* The refresh interval of the /ui request being answered (main thread). */
static unsigned admin_ui_refresh_s;

static void admin_ui(FILE *f)
{
	status_page_render(f, admin_srv, admin_ui_refresh_s);
}

/* GET /ui[?refresh=SECONDS]: the status page (status_page.h). */
static void admin_serve_ui(struct admin_conn *a)
{
	const struct lv_head *hd = &a->head;
	const char *q = hd->text + hd->target_off + hd->path_len;
	size_t qlen = hd->target_len - hd->path_len;
	char val[16];
	const char *why = "refresh is a whole number of seconds from 1 to 3600\n";
	unsigned refresh;
	bool given = qlen >= 2 && query_param(q + 1, qlen - 1, "refresh", val, sizeof(val));
	/* named but not read (no '=', empty, too long, badly escaped): as
	 * wrong as a bad number */
	bool named = false;
	for (size_t i = 1; i + 7 <= qlen && !given && !named; i++)
		named = (i == 1 || q[i - 1] == '&') && memcmp(q + i, "refresh", 7) == 0 &&
		        (i + 7 == qlen || q[i + 7] == '=' || q[i + 7] == '&');
	if (named || status_page_refresh(given ? val : NULL, &refresh, &why) != LV_OK) {
		admin_text(a, 400, why);
		return;
	}
	admin_ui_refresh_s = refresh;
	admin_document(a, STATUS_PAGE_CTYPE, admin_ui, status_page_headers());
}

/* GET /cache/entry?url=PATH[&host=HOST][&header=NAME:VALUE]: the key, the
 * variant and the stored entry of one URL (cache_entry.h). */
static void admin_cache_entry(struct admin_conn *a)
{
	const struct lv_head *hd = &a->head;
	const char *q = hd->text + hd->target_off + hd->path_len;
	size_t qlen = hd->target_len - hd->path_len;
	char url[2048], host[256], header[1024];
	if (qlen < 2 || !query_param(q + 1, qlen - 1, "url", url, sizeof(url)) || url[0] != '/') {
		admin_text(a, 400, "give url=/path (%-escaped), and host= and header=Name:value if they matter\n");
		return;
	}
	bool has_host = query_param(q + 1, qlen - 1, "host", host, sizeof(host));
	bool has_header = query_param(q + 1, qlen - 1, "header", header, sizeof(header));
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f) {
		admin_text(a, 500, "out of memory\n");
		return;
	}
	int st = cache_entry_render(f, admin_srv, url, has_host ? host : NULL, has_header ? header : NULL);
	fclose(f);
	admin_reply(a, st, st == 200 ? "application/json" : "text/plain; charset=utf-8", buf, len, NULL);
	free(buf);
}

enum admin_ep_flags {
	EP_CHANGES = 1u << 0, /* changes state: POST only */
	EP_PROBE = 1u << 1,   /* served on the probe listener too */
};

static const struct admin_endpoint {
	const char *path;
	unsigned flags;
	void (*serve)(struct admin_conn *a);
} admin_endpoints[] = {
	{"/healthz", EP_PROBE, admin_healthz},
	{"/readyz", EP_PROBE, admin_readyz},
	{"/metrics", EP_PROBE, admin_serve_metrics},
	{"/status", 0, admin_serve_status},
	{"/ui", 0, admin_serve_ui},
	{"/purge", EP_CHANGES, admin_purge},
	{"/reload", EP_CHANGES, admin_reload},
	{"/breaker", EP_CHANGES, admin_breaker},
	{"/tier", EP_CHANGES, admin_tier},
	{"/tiers", 0, admin_tiers},
	{"/cache/entry", 0, admin_cache_entry},
};

/* Answers 401 or 403 and returns false when the request may not change
 * anything (auth.h). Refusals are counted by kind and logged, at most one
 * line per ADMIN_REFUSED_LOG_GAP_US, with the method and path but never the
 * credentials or the query. */
static bool admin_authorized(struct admin_conn *a)
{
	const struct lv_head *hd = &a->head;
	int i = head_find(hd, LIT("authorization"), 0);
	enum auth_verdict v = auth_check(&admin_auth, i >= 0 ? hd->text + hd->h[i].value : NULL,
	                                 i >= 0 ? hd->h[i].value_len : 0);
	/* with two Authorization fields, which one counts would be a guess */
	if (v == AUTH_OK && admin_auth.mode == AUTH_TOKEN && head_find(hd, LIT("authorization"), i + 1) >= 0)
		v = AUTH_WRONG;
	if (v == AUTH_OK)
		return true;
	admin_refused[v]++;
	uint64_t skipped;
	if (log_limit_allow(&admin_refused_log, now_us(), ADMIN_REFUSED_LOG_GAP_US, &skipped))
		log_warn("admin: refused %.*s %.*s from %s: %s (%llu more refusals since the last such line)",
		         (int)hd->method_len, hd->text + hd->method_off, (int)hd->path_len, hd->text + hd->target_off,
		         a->peer, auth_verdict_name(v), (unsigned long long)skipped);
	if (v == AUTH_FORBIDDEN) {
		char msg[256];
		snprintf(msg, sizeof(msg),
		         "refused: the admin listener is not on loopback and $%s holds no token; set one, or "
		         "[levee] admin_insecure = true\n",
		         admin_token_env);
		admin_text(a, 403, msg);
		return false;
	}
	const char *text = v == AUTH_MISSING ? "this needs Authorization: Bearer TOKEN\n" : "wrong bearer token\n";
	admin_reply(a, 401, "text/plain; charset=utf-8", text, strlen(text),
	            v == AUTH_MISSING ? "WWW-Authenticate: Bearer realm=\"levee-admin\"\r\n"
	                              : "WWW-Authenticate: Bearer realm=\"levee-admin\", error=\"invalid_token\"\r\n");
	return false;
}

static void admin_route(struct admin_conn *a)
{
	const struct lv_head *hd = &a->head;
	const char *path = hd->text + hd->target_off;
	bool safe = hd->method == HTTP_GET || hd->method == HTTP_HEAD;
	/* before routing: an unknown path or method changes nothing, but
	 * neither should it tell an anonymous client what exists; the probe
	 * listener serves nothing that could change state */
	if (!safe && !a->probe && !admin_authorized(a))
		return;
	for (size_t i = 0; i < sizeof(admin_endpoints) / sizeof(admin_endpoints[0]); i++) {
		const struct admin_endpoint *ep = &admin_endpoints[i];
		if (strlen(ep->path) != hd->path_len || memcmp(path, ep->path, hd->path_len) != 0 ||
		    (a->probe && !(ep->flags & EP_PROBE)))
			continue;
		if (ep->flags & EP_CHANGES ? hd->method != HTTP_POST : !safe)
			admin_text(a, 405, ep->flags & EP_CHANGES ? "use POST\n" : "use GET\n");
		else
			ep->serve(a);
		return;
	}
	admin_text(a, 404, a->probe ? "not found; the probe listener serves GET /healthz /readyz /metrics\n"
	                            : "not found; try /healthz /readyz /metrics /status /ui, POST /purge, POST /reload, POST /breaker\n");
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
	if (getnameinfo(sa, (socklen_t)socklen, a->peer, sizeof(a->peer), NULL, 0, NI_NUMERICHOST) != 0)
		snprintf(a->peer, sizeof(a->peer), "?");
	a->probe = arg == &probe_listener;
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

/* Binds `addr` into `l`, serving accepts with `cb` (given `l`); *loopback
 * says whether the address is a loopback one. */
static int admin_listen(struct event_base *base, struct listener *l, const char *name, const struct lv_hostport *addr,
                        evconnlistener_cb cb, bool *loopback, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t len;
	if (resolve_hostport(addr, &ss, &len, err, errlen) != LV_OK)
		return LV_ERR;
	struct evconnlistener *lev = evconnlistener_new_bind(base, NULL, NULL,
	                                                     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 128,
	                                                     (struct sockaddr *)&ss, (int)len);
	if (!lev) {
		snprintf(err, errlen, "%s listen on %s:%u: %s", name, addr->host, addr->port, strerror(errno));
		return LV_ERR;
	}
	if (listener_init(l, lev, cb, l, name, &admin_stats.accept_errors, &admin_stats.accept_pauses) != LV_OK) {
		snprintf(err, errlen, "%s listener: out of memory", name);
		return LV_ERR;
	}
	*loopback = auth_loopback((const struct sockaddr *)&ss);
	return LV_OK;
}

/* Says at start who may change what through the admin listener. */
static void admin_log_auth(const struct lv_hostport *addr)
{
	switch (admin_auth.mode) {
	case AUTH_TOKEN:
		log_info("admin: purge, reload and other changes need the bearer token in $%s", admin_token_env);
		break;
	case AUTH_LOOPBACK:
		log_info("admin: no token in $%s; changes are open to clients on this host (the listener is on "
		         "loopback)",
		         admin_token_env);
		break;
	case AUTH_LOCKED:
		log_warn("admin: %s:%u is not loopback and $%s holds no token: purge, reload and other changes "
		         "answer 403 (set a token, or [levee] admin_insecure = true)",
		         addr->host, addr->port, admin_token_env);
		break;
	case AUTH_INSECURE:
		log_warn("admin: %s:%u is not loopback, $%s holds no token and admin_insecure = true: whoever "
		         "reaches it can purge and reload",
		         addr->host, addr->port, admin_token_env);
		break;
	}
}

int admin_start(struct server *s, const struct lv_policy *p, char *err, size_t errlen)
{
	struct event_base *base = s->main_base;
	admin_srv = s;
	status_page_init();
	bool loopback;
	char why[160];
	snprintf(admin_token_env, sizeof(admin_token_env), "%s", p->admin_token_env);
	if (admin_listen(base, &admin_listener, "admin", &p->admin, admin_accept, &loopback, err, errlen) != LV_OK)
		return LV_ERR;
	if (auth_init(&admin_auth, getenv(admin_token_env), loopback, p->admin_insecure, why, sizeof(why)) != LV_OK) {
		snprintf(err, errlen, "admin token in $%s: %s", admin_token_env, why);
		return LV_ERR;
	}
	admin_log_auth(&p->admin);
	if (!p->probe.host[0])
		return LV_OK;
	if (admin_listen(base, &probe_listener, "probe", &p->probe, admin_accept, &loopback, err, errlen) != LV_OK)
		return LV_ERR;
	log_info("probe listener on %s:%u: GET /healthz /readyz /metrics", p->probe.host, p->probe.port);
	return LV_OK;
}

void admin_stop(void)
{
	listener_close(&admin_listener);
	listener_close(&probe_listener);
}
