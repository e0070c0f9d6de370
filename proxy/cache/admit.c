/*
 * admit.c - see admit.h.
 */
#include "cache/admit.h"

#include <string.h>

#include "cache/key.h"
#include "net/headers.h"

static bool has_field(const struct lv_head *hd, const char *n, size_t l)
{
	return head_find(hd, n, l, 0) >= 0;
}

const char *cache_admit_request(const struct lv_route *rt, const struct lv_head *hd,
                                const struct cc_directives *req_cc)
{
	if (!rt->cache_cookies && has_field(hd, LIT("cookie")))
		return "cookie";
	if (has_field(hd, LIT("x-http-method-override")) || has_field(hd, LIT("x-http-method")) ||
	    has_field(hd, LIT("x-method-override")))
		return "method-override";
	if (req_cc->flags & CC_NO_STORE)
		return "no-store";
	return NULL;
}

const char *cache_admit_unkeyed(const struct lv_route *rt, const struct lv_head *hd, bool has_body,
                                bool *strip_unkeyed, bool *body_discard)
{
	if (has_body) {
		if (rt->get_body == LV_GET_BODY_BYPASS)
			return "request-body";
		*body_discard = true; /* read and dropped: it never reaches the origin */
	}
	if (rt->unkeyed_headers == LV_UNKEYED_FORWARD)
		return NULL;
	if (rt->unkeyed_headers == LV_UNKEYED_BYPASS) {
		for (uint32_t i = 0; i < hd->n; i++)
			if (headers_unkeyed_risk(hd, (int)i) && !headers_listed(hd, (int)i, rt->cache_key_headers))
				return "unkeyed-header";
	}
	*strip_unkeyed = true;
	return NULL;
}

unsigned cache_admit_tier_modes(const struct lv_route *rt, unsigned modes)
{
	if (rt->priority != LV_PRIO_OPTIONAL)
		modes &= ~(unsigned)LV_CM_NO_FILL_OPTIONAL;
	if (!rt->tier_cache_only)
		modes &= ~(unsigned)LV_CM_CACHE_ONLY;
	if (modes & LV_CM_CACHE_ONLY)
		modes |= LV_CM_SERVE_STALE;
	return modes;
}

const char *cache_key_host(const struct lv_policy *p, const struct lv_route *rt)
{
	const char *kh = rt->cache_key_host[0] ? rt->cache_key_host : p->cache.key_host;
	if (!kh[0] || strcmp(kh, "request") == 0)
		return NULL;
	return strcmp(kh, "none") == 0 ? "" : kh;
}

size_t cache_key_of(const struct lv_policy *p, const struct lv_route *rt, const struct lv_head *hd, char *out,
                    size_t cap)
{
	size_t n = key_build_as(p->service, hd, cache_key_host(p, rt), rt->cache_key_headers, out, cap);
	/* a trusted hop's X-Forwarded-Proto goes upstream (http and https
	 * answers may differ: absolute links, redirects), so it is keyed */
	if (n && p->trust_forwarded && !strstr(rt->cache_key_headers, "x-forwarded-proto"))
		n = key_add_field(hd, LIT("x-forwarded-proto"), out, n, cap);
	return n;
}
