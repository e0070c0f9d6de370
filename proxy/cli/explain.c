/*
 * explain.c - `levee explain [--json] [--from ADDR] FILE METHOD URL
 * [HEADER...]`: what one request would meet under a policy, stage by stage
 * in the pipeline's order (route, tiers, cache, bulkhead, breaker,
 * upstream), with the answers of the code the stages run:
 *
 *   route      policy_route_match(), and route_matches() for why each route
 *              before it did not match;
 *   cache      cache_admit_request(), cache_admit_unkeyed(), cache_key_of()
 *              (cache/admit.h) and the route's tags (cache/tags.h);
 *   writes     write_inval_request() (cache/write_inval.h);
 *   tiers      the levels derived at load (p->tier_levels), tier_cohort_of()
 *              and tier_sheds() (resilience/).
 *
 * What depends on the moment (the tier in force, a breaker's state, the
 * origin's answer) is given for every case instead: each tier level, the
 * breaker's thresholds, what the response adds.
 */
#include <stdlib.h>
#include <string.h>

#include "cache/admit.h"
#include "cache/tags.h"
#include "cache/write_inval.h"
#include "cli/cli.h"
#include "cli/explain_req.h"
#include "cli/report.h"
#include "cli/tool.h"
#include "resilience/tier.h"
#include "resilience/tier_stage.h"
#include "signals.h"

struct explain {
	const struct lv_policy *p;
	struct explain_req q;
	const char *from;
	const struct lv_route *rt;
	struct lv_captures caps;
	struct report *out;
};

static void methods_text(unsigned m, char *buf, size_t sz)
{
	if (m == LV_M_ANY) {
		snprintf(buf, sz, "any");
		return;
	}
	size_t o = 0;
	buf[0] = '\0';
	for (unsigned bit = LV_M_GET; bit < LV_M_OTHER && o < sz; bit <<= 1)
		if (m & bit)
			o += (size_t)snprintf(buf + o, sz - o, "%s%s", o ? ", " : "", policy_method_name(bit));
}

static void ms_text(uint64_t ms, char *buf, size_t sz)
{
	if (ms == 0)
		snprintf(buf, sz, "0");
	else if (ms % 1000 == 0)
		snprintf(buf, sz, "%llus", (unsigned long long)(ms / 1000));
	else
		snprintf(buf, sz, "%llums", (unsigned long long)ms);
}

static void explain_route(struct explain *e)
{
	struct report *o = e->out;
	const struct lv_policy *p = e->p;
	const struct lv_head *hd = &e->q.head;
	const char *path = hd->text + hd->target_off;
	size_t plen = hd->path_len;
	e->rt = policy_route_match(p, path, plen, e->q.method_bit, &e->caps);
	report_begin(o, "route");
	report_str(o, "name", e->rt ? e->rt->name : NULL);
	report_note(o, "routes match the path and the method, in file order; the host is not part of a route");
	if (e->rt) {
		char m[96];
		methods_text(e->rt->methods, m, sizeof(m));
		report_str(o, e->rt->kind == LV_MATCH_GLOB ? "match" : "prefix", e->rt->pattern);
		report_str(o, "methods", m);
		report_num(o, "line", e->rt->line);
		report_list(o, "captures");
		for (int i = 0; i < e->caps.n; i++) {
			report_item(o);
			report_fmt(o, "n", "{%d}", i + 1);
			report_strn(o, "value", path + e->caps.c[i].off, e->caps.c[i].len);
			report_item_end(o);
		}
		report_list_end(o);
	} else {
		report_note(o, "no route matches: levee passes the request through, normal priority, no cache, "
		               "no bulkhead, no breaker");
	}
	report_list(o, "not_matched");
	for (size_t i = 0; i < p->nroutes && &p->routes[i] != e->rt; i++) {
		const struct lv_route *r = &p->routes[i];
		/* the path alone: with a method the route takes */
		bool path_ok = route_matches(r, path, plen, r->methods, NULL);
		char m[96];
		methods_text(r->methods, m, sizeof(m));
		report_item(o);
		report_str(o, "route", r->name);
		if (path_ok)
			report_fmt(o, "why", "method %.*s is not in its methods (%s)", (int)hd->method_len,
			           hd->text + hd->method_off, m);
		else
			report_fmt(o, "why", "its %s = %s does not take the path", r->kind == LV_MATCH_GLOB ? "match" : "prefix",
			           r->pattern);
		report_item_end(o);
	}
	report_list_end(o);
	report_str(o, "priority", lv_priority_names[e->rt ? e->rt->priority : LV_PRIO_NORMAL]);
	report_end(o);
}

static void explain_cache(struct explain *e)
{
	struct report *o = e->out;
	const struct lv_route *rt = e->rt;
	const struct lv_head *hd = &e->q.head;
	char buf[64];
	report_begin(o, "cache");
	if (!route_caches(rt)) {
		report_bool(o, "caches", false);
		report_str(o, "why", rt ? "the route has cache_ttl = off" : "no route");
		report_end(o);
		return;
	}
	report_bool(o, "caches", true);
	if (rt->cache_ttl_ms == LV_TTL_ORIGIN) {
		report_str(o, "ttl", "origin");
		report_note(o, "the origin's Cache-Control and Expires decide, as an RFC 9111 shared cache, unless "
		               "a field of cache_control_fields replaces them (RFC 9213)");
	} else {
		ms_text(rt->cache_ttl_ms, buf, sizeof(buf));
		report_str(o, "ttl", buf);
	}
	ms_text(rt->swr_ms, buf, sizeof(buf));
	report_str(o, "stale_while_revalidate", buf);
	ms_text(rt->sie_ms, buf, sizeof(buf));
	report_str(o, "stale_if_error", buf);
	ms_text(rt->negative_ttl_ms, buf, sizeof(buf));
	report_str(o, "negative_ttl", buf);
	report_str(o, "cache_control_fields", rt->cache_control_fields[0] ? rt->cache_control_fields : "none");
	report_str(o, "vary", "the origin's Vary fields extend the key with this request's values; Vary: * is never "
	                      "served from the cache");
	const char *why = NULL;
	struct cc_directives cc;
	cc_from_request(&cc, hd);
	if (!(e->q.method_bit & (LV_M_GET | LV_M_HEAD)))
		why = "method";
	else
		why = cache_admit_request(rt, hd, &cc);
	char *key = hd->text + hd->len;
	size_t klen = 0;
	bool strip = false, discard = false;
	if (!why) {
		klen = cache_key_of(e->p, rt, hd, key, hd->cap - hd->len);
		why = klen ? cache_admit_unkeyed(rt, hd, e->q.has_body, &strip, &discard) : "key-too-long";
	}
	report_bool(o, "cacheable", why == NULL);
	report_str(o, "bypass", why);
	if (why && !strcmp(why, "method"))
		report_note(o, "only GET and HEAD use the cache; a write purges instead (below)");
	if (!why) {
		/* what a miss does: a GET fills the entry, a HEAD only reads one */
		bool head = (e->q.method_bit & LV_M_HEAD) != 0;
		report_bool(o, "miss_stores", !head);
		if (head)
			report_note(o, "HEAD is answered from a stored GET; a HEAD miss goes upstream and stores nothing, "
			               "so the entry fills on the next GET");
		report_bool(o, "only_if_cached", cc_only_if_cached(&cc));
		if (cc_only_if_cached(&cc))
			report_note(o, "only-if-cached: a miss is answered 504 (X-Levee-Reason only-if-cached), never "
			               "upstream");
	}
	if (!why) {
		report_strn(o, "key", key, klen);
		report_note(o, "service \\x1f target \\x1f host, then each cache_key_headers field: \\x1f name=value, "
		               "or name! when absent");
		const char *kh = cache_key_host(e->p, rt);
		report_str(o, "key_host", !kh ? "request" : !kh[0] ? "none" : kh);
		if (kh)
			report_note(o, kh[0] ? "every name of the service shares this key's host (cache_key_host, [cache] key_host)"
			                     : "no host in the key: every name of the service shares one entry (cache_key_host, "
			                       "[cache] key_host)");
		report_bool(o, "strips_unkeyed_headers", strip);
		report_bool(o, "drops_body", discard);
		if (head_find(hd, LIT("authorization"), 0) >= 0)
			report_str(o, "authorization", rt->cache_authorization
			                                   ? "stored (cache_authorization = true)"
			                                   : "stored only if the origin allows it (public, s-maxage, "
			                                     "must-revalidate: RFC 9111 section 3.5)");
		char tbuf[4096];
		struct record_str tags[32];
		unsigned nt = cache_route_tags_of(rt, hd->text + hd->target_off, &e->caps, tbuf, sizeof(tbuf), tags, 32);
		report_list(o, "tags");
		for (unsigned i = 0; i < nt; i++) {
			report_item(o);
			report_strn(o, "tag", tags[i].p, tags[i].len);
			report_item_end(o);
		}
		report_list_end(o);
	}
	report_end(o);
}

static void explain_writes(struct explain *e)
{
	struct report *o = e->out;
	static __thread struct write_inval w;
	static const char *const kinds[] = {[INVAL_KEY] = "url", [INVAL_PREFIX] = "prefix", [INVAL_TAG] = "tag",
	                                    [INVAL_ALL] = "all"};
	report_begin(o, "invalidation");
	bool write = (e->q.method_bit & LV_M_UNSAFE) != 0;
	report_bool(o, "write", write);
	if (!write) {
		report_note(o, "not a write (a safe method: GET, HEAD, OPTIONS, TRACE): it purges nothing");
		report_end(o);
		return;
	}
	report_note(o, "on a 2xx or 3xx answer, here, in Redis and on every replica through Kafka; the answer's "
	               "same-origin Location and Content-Location, and its Surrogate-Key tags, are purged too");
	write_inval_request(&w, e->rt, &e->q.head, &e->caps);
	report_list(o, "purges");
	for (unsigned i = 0; i < w.n; i++) {
		report_item(o);
		report_str(o, "kind", kinds[w.items[i].kind]);
		report_strn(o, "what", w.items[i].p, w.items[i].len);
		report_item_end(o);
	}
	report_list_end(o);
	report_end(o);
}

static void explain_protection(struct explain *e)
{
	struct report *o = e->out;
	const struct lv_route *rt = e->rt;
	const struct lv_policy *p = e->p;
	char buf[64];
	report_begin(o, "bulkhead");
	const struct lv_bulkhead *b = rt && rt->bulkhead_idx >= 0 ? &p->bulkheads[rt->bulkhead_idx] : NULL;
	report_str(o, "name", b ? b->name : NULL);
	if (b) {
		report_str(o, "isolation", b->isolation == LV_ISOLATION_THREAD ? "thread" : "semaphore");
		if (b->max_concurrent)
			report_num(o, "max_concurrent", (double)b->max_concurrent);
		else
			report_fmt(o, "max_concurrent", "auto (%llu-%llu)", (unsigned long long)b->adaptive_min,
			           (unsigned long long)b->adaptive_max);
		report_num(o, "max_queue", (double)b->max_queue);
		ms_text(b->queue_timeout_ms, buf, sizeof(buf));
		report_str(o, "queue_timeout", buf);
		report_str(o, "queue_order", b->queue_order == LV_QUEUE_FIFO ? "fifo" : "adaptive_lifo");
		if (rt->priority == LV_PRIO_CRITICAL)
			report_note(o, "critical: a queue of its own, served first, and the full limit under a tier's "
			               "bulkhead_scale");
		report_note(o, "cache hits never take a slot");
	}
	report_str(o, "refusal_status", rt && rt->refusal_status == LV_REFUSE_429 ? "429" : "503");
	report_end(o);

	report_begin(o, "breaker");
	const struct lv_breaker *k = rt && rt->breaker_idx >= 0 ? &p->breakers[rt->breaker_idx] : NULL;
	report_str(o, "name", k ? k->name : NULL);
	if (k) {
		if (k->window.calls)
			report_fmt(o, "window", "%llu calls", (unsigned long long)k->window.calls);
		else {
			ms_text(k->window.ms, buf, sizeof(buf));
			report_str(o, "window", buf);
		}
		report_num(o, "min_requests", (double)k->min_requests);
		report_fmt(o, "failure_rate", "%g%%", k->failure_rate);
		ms_text(k->slow_call_ms, buf, sizeof(buf));
		report_str(o, "slow_call", buf);
		report_fmt(o, "slow_call_rate", "%g%%", k->slow_call_rate);
		ms_text(k->open_for_ms, buf, sizeof(buf));
		report_str(o, "open_for", buf);
		report_num(o, "half_open_probes", (double)k->half_open_probes);
	}
	char fb[64] = "none";
	for (unsigned i = 0, n = 0; rt && i < rt->fallback.n; i++)
		n += (unsigned)snprintf(fb + n, sizeof(fb) - n, "%s%s", i ? ", " : "",
		                        lv_fallback_kind_names[rt->fallback.kind[i]]);
	report_str(o, "fallback", fb);
	report_end(o);

	report_begin(o, "upstream");
	ms_text(rt ? rt->timeout_ms : 0, buf, sizeof(buf));
	report_str(o, "timeout", rt && rt->timeout_ms ? buf : "none");
	const struct lv_head *hd = &e->q.head;
	int dl = head_find(hd, p->up.deadline_header, strlen(p->up.deadline_header), 0);
	report_fmt(o, "deadline_header", "%s: %s", p->up.deadline_header,
	           !rt || !rt->deadline_from_header ? "ignored on this route"
	           : dl >= 0                        ? "honoured, and present in this request"
	                                            : "honoured when present (absent here)");
	bool retryable = rt && rt->retries && (e->q.method_bit & LV_M_IDEMPOTENT) && !e->q.has_body;
	report_num(o, "retries", retryable ? (double)rt->retries : 0);
	if (rt && rt->retries && !retryable)
		report_note(o, "the route has retries = %llu, but this request is not idempotent or has a body",
		            (unsigned long long)rt->retries);
	report_fmt(o, "retry_budget", "%g%% of recent requests, at least %llu/s", p->up.retry_budget,
	           (unsigned long long)p->up.retry_budget_min);
	report_end(o);
}

static const char *const cache_mode_names[] = {
#define LV_CM_NAME(e, word) word,
	LV_CACHE_MODES(LV_CM_NAME)
#undef LV_CM_NAME
};

static void explain_tiers(struct explain *e)
{
	struct report *o = e->out;
	const struct lv_policy *p = e->p;
	const struct lv_route *rt = e->rt;
	int prio = rt ? rt->priority : LV_PRIO_NORMAL;
	const struct lv_cohort_key *ck = &p->tiers_cfg.cohort;
	const struct lv_head *hd = &e->q.head;
	unsigned cohort = tier_cohort_of(hd, e->from, ck);
	report_begin(o, "tiers");
	/* what tier_cohort_of() hashed: the policy's header or cookie, or the address */
	size_t cn = 0;
	int hi = ck->kind == LV_COHORT_HEADER ? head_find(hd, ck->name, strlen(ck->name), 0) : -1;
	bool named = (hi >= 0 && hd->h[hi].value_len > 0) ||
	             (ck->kind == LV_COHORT_COOKIE && head_cookie(hd, ck->name, &cn) && cn > 0);
	report_num(o, "cohort", cohort);
	if (named)
		report_fmt(o, "cohort_from", "%s %s", ck->kind == LV_COHORT_HEADER ? "header" : "cookie", ck->name);
	else
		report_fmt(o, "cohort_from", "address %s", e->from);
	if (!named && ck->kind != LV_COHORT_ADDRESS)
		report_note(o, "the request has no %s %s, the policy's cohort: its address decides",
		            ck->kind == LV_COHORT_HEADER ? "header" : "cookie", ck->name);
	report_note(o, "a tier that sheds P%% of a priority sheds the cohorts below P*100 (of 0-9999)");
	report_list(o, "levels");
	for (size_t lv = 1; lv <= p->ntiers; lv++) {
		const struct lv_tier_level *l = &p->tier_levels[lv];
		double pct = l->shed.pct[prio];
		bool shed = tier_sheds(pct, cohort);
		/* the cache stage applies them to reads on caching routes only */
		unsigned modes = route_caches(rt) && (e->q.method_bit & (LV_M_GET | LV_M_HEAD))
		                     ? cache_admit_tier_modes(rt, l->cache)
		                     : 0;
		char mb[160] = "";
		for (unsigned i = 0, n = 0; i < LV_CM__COUNT; i++)
			if (modes & (1u << i))
				n += (unsigned)snprintf(mb + n, sizeof(mb) - n, "%s%s", n ? "," : "", cache_mode_names[i]);
		report_item(o);
		report_str(o, "tier", p->tiers[lv - 1].name);
		report_num(o, "level", (double)lv);
		report_num(o, "shed_pct", pct);
		report_bool(o, "shed", shed);
		if (!shed && l->would_shed.pct[prio] > pct)
			report_bool(o, "shadow_would_shed", tier_sheds(l->would_shed.pct[prio], cohort));
		report_str(o, "cache_modes", mb[0] ? mb : "none");
		if (modes & LV_CM_STRETCH_TTL)
			report_num(o, "ttl_factor", l->ttl_factor);
		report_fmt(o, "bulkhead_scale", "%g%%", prio == LV_PRIO_CRITICAL ? 100.0 : l->bulkhead_scale);
		report_item_end(o);
	}
	report_list_end(o);
	if (!p->ntiers)
		report_note(o, "the policy has no tiers");
	else
		report_note(o, "a level applies its tier and every tier before it; shed answers %s with Retry-After",
		            rt && rt->refusal_status == LV_REFUSE_429 ? "429" : "503");
	report_end(o);
}

int cli_explain(int argc, char **argv)
{
	bool json = false;
	const char *from = "127.0.0.1";
	char *pos[3];
	int np = 0, first_header = argc;
	for (int i = 0; i < argc; i++) {
		if (np < 3 && strcmp(argv[i], "--json") == 0) {
			json = true;
		} else if (np < 3 && strcmp(argv[i], "--from") == 0) {
			if (i + 1 >= argc)
				return tool_usage_error("explain", "--from needs a client address");
			from = argv[++i];
		} else if (np < 3 && argv[i][0] == '-' && argv[i][1] == '-') {
			return tool_usage_error("explain", "unknown option %s", argv[i]);
		} else if (np < 3) {
			pos[np++] = argv[i];
		} else {
			first_header = i;
			break;
		}
	}
	if (np < 3)
		return tool_usage_error("explain", "needs a policy FILE, a METHOD and a URL");
	if (!*from || strlen(from) > 64)
		return tool_usage_error("explain", "--from: a client address such as 10.0.0.7");
	struct lv_policy *p;
	if (tool_load(pos[0], &p) != LV_OK)
		return TOOL_INVALID;
	struct explain e = {.p = p, .from = from};
	char err[512];
	if (explain_req_build(&e.q, p, pos[1], pos[2], argv + first_header, argc - first_header, err, sizeof(err)) !=
	    LV_OK) {
		fprintf(stderr, "levee explain: %s\n", err);
		policy_unref(p);
		return TOOL_USAGE;
	}
	struct report out;
	report_init(&out, stdout, json);
	e.out = &out;
	const struct lv_head *hd = &e.q.head;
	report_begin(&out, "request");
	report_strn(&out, "method", hd->text + hd->method_off, hd->method_len);
	report_strn(&out, "target", hd->text + hd->target_off, hd->target_len);
	report_strn(&out, "host", hd->text + hd->authority_off, hd->authority_len);
	if (e.q.default_host)
		report_note(&out, "no Host given: localhost");
	report_str(&out, "client", from);
	report_str(&out, "policy", pos[0]);
	report_str(&out, "checksum", p->checksum);
	report_end(&out);
	explain_route(&e);
	explain_tiers(&e);
	explain_cache(&e);
	explain_writes(&e);
	explain_protection(&e);
	report_done(&out);
	explain_req_free(&e.q);
	policy_unref(p);
	return TOOL_OK;
}
