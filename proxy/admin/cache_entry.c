/*
 * cache_entry.c - GET /cache/entry?url=PATH[&host=HOST][&header=NAME:VALUE]:
 * the key a GET of that URL gets on the running policy, the key its Vary
 * variant is stored under (the URL's own, or one of its variant slots),
 * and what the in-process cache (L1) holds there. The key
 * is built as a worker builds it (cache_key_of, on a head parsed by
 * levee's own parser, explain_req.c); the entry is only read: levee's
 * cache counters do not see it (the L1's own hit count and the CLOCK bit
 * of the entry do, as for any reader). A debugging aid, never a way to
 * change what is served.
 *
 * L1 only: the entry a replica holds. Redis holds the same record under
 * the same key (the shared tier); it is not read here, so that the admin
 * thread never waits on Redis.
 */
#include "admin/cache_entry.h"

#include <string.h>

#include "cache/admit.h"
#include "cache/cache.h"
#include "cache/cache_ctx.h"
#include "cache/freshness.h"
#include "cache/key.h"
#include "cache/l1.h"
#include "cache/record.h"
#include "cli/explain_req.h"
#include "cli/tool.h"
#include "net/loop.h"
#include "runtime.h"
#include "server.h"

/* The fields of one stored record. */
static void entry_json(FILE *f, const struct record_view *v, int64_t now)
{
	int64_t age = fresh_current_age(v->initial_age, v->response_time / 1000, now);
	fprintf(f, "{\"status\":%u,\"bytes\":%zu,\"body_bytes\":%zu,\"age\":%lld,\"lifetime\":%lld,\"ttl\":%lld,"
	           "\"stale_while_revalidate\":%lld,\"stale_if_error\":%lld,\"etag\":",
	        v->status, v->size, v->body_len, (long long)age, (long long)v->lifetime, (long long)(v->lifetime - age),
	        (long long)v->swr, (long long)v->sie);
	if (v->etag.len)
		tool_json_str(f, v->etag.p, v->etag.len);
	else
		fputs("null", f);
	fprintf(f, ",\"last_modified\":%lld,\"negative\":%s,\"must_revalidate\":%s,\"no_cache\":%s,\"tags\":[",
	        (long long)v->last_modified, v->flags & RECORD_F_NEGATIVE ? "true" : "false",
	        v->flags & RECORD_F_MUST_REVALIDATE ? "true" : "false", v->flags & RECORD_F_NO_CACHE ? "true" : "false");
	struct record_cursor c = {0};
	struct record_str t;
	for (const char *sep = ""; record_next_tag(v, &c, &t); sep = ",") {
		fputs(sep, f);
		tool_json_str(f, t.p, t.len);
	}
	fputs("]}", f);
}

int cache_entry_render(FILE *f, struct server *s, const char *url, const char *host, const char *header)
{
	struct runtime *rt = server_runtime_acquire(s);
	const struct lv_policy *p = rt->policy;
	char hostline[300], err[256];
	char *headers[2];
	int nh = 0;
	if (host && snprintf(hostline, sizeof(hostline), "Host: %s", host) < (int)sizeof(hostline))
		headers[nh++] = hostline;
	if (header)
		headers[nh++] = (char *)header;
	struct explain_req q;
	if (explain_req_build(&q, p, "GET", url, headers, nh, err, sizeof(err)) != LV_OK) {
		fprintf(f, "%s\n", err);
		runtime_unref(rt);
		return 400;
	}
	struct lv_head *hd = &q.head;
	struct lv_captures caps;
	const struct lv_route *r = policy_route_match(p, hd->text + hd->target_off, hd->path_len, LV_M_GET, &caps);
	fputs("{\"route\":", f);
	if (r)
		tool_json_str(f, r->name, strlen(r->name));
	else
		fputs("null", f);
	if (!route_caches(r)) {
		fputs(",\"caches\":false}\n", f);
		explain_req_free(&q);
		runtime_unref(rt);
		return 200;
	}
	char *key = hd->text + hd->len;
	size_t klen = cache_key_of(p, r, hd, key, hd->cap - hd->len);
	const char *kh = cache_key_host(p, r);
	fprintf(f, ",\"caches\":true,\"key_host\":\"%s\",\"key\":", !kh ? "request" : !kh[0] ? "none" : kh);
	tool_json_str(f, key, klen);
	struct record_view v;
	int64_t now = (int64_t)(now_unix_ms() / 1000);
	/* the URL's own key holds its latest variant: its Vary names are the
	 * URL's (cache_entry_find then looks for this request's variant) */
	struct l1_entry *e = klen && s->cache ? cache_entry_get(s->cache, key, klen, &v) : NULL;
	struct record_cursor c = {0};
	struct record_str names, values;
	if (e && v.nvary && record_next_vary(&v, &c, &names, &values)) {
		fputs(",\"vary\":", f);
		tool_json_str(f, names.p, names.len);
	}
	if (e)
		l1_entry_unref(e);
	char *at = key + klen; /* the arena's spare text holds KEY_MAX more */
	size_t atl = 0;
	e = klen && s->cache && hd->cap - hd->len - klen >= KEY_MAX
	        ? cache_entry_find(s->cache, key, klen, hd, &v, at, &atl)
	        : NULL;
	if (e) {
		fputs(",\"stored_under\":", f);
		tool_json_str(f, at, atl);
	}
	fprintf(f, ",\"stored\":%s", e ? "true" : "false");
	if (e) {
		fputs(",\"entry\":", f);
		entry_json(f, &v, now);
		l1_entry_unref(e);
	}
	fputs("}\n", f);
	explain_req_free(&q);
	runtime_unref(rt);
	return 200;
}
