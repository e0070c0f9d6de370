/*
 * tags.c - the route's and the origin's tags of an entry (tags.h).
 */
#include "cache/tags.h"

#include <string.h>

#include "net/headers.h"
#include "net/request.h"

unsigned cache_surrogate_keys(const struct lv_head *resp, struct record_str *out, unsigned max)
{
	unsigned n = 0;
	int sk = head_find(resp, LIT("surrogate-key"), 0);
	if (sk < 0)
		return 0;
	const char *s = resp->text + resp->h[sk].value, *end = s + resp->h[sk].value_len;
	while (s < end && n < max) {
		while (s < end && (*s == ' ' || *s == '\t'))
			s++;
		const char *t = s;
		while (s < end && *s != ' ' && *s != '\t')
			s++;
		if (s > t)
			out[n++] = (struct record_str){t, (uint32_t)(s - t)};
	}
	return n;
}

size_t cache_expand(const char *path, const struct lv_captures *caps, const char *t, size_t tl, char *buf,
                    size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < tl; i++) {
		if (t[i] == '{' && i + 2 < tl && t[i + 2] == '}') {
			int ci = t[i + 1] - '1';
			if (ci < 0 || ci >= caps->n || o + caps->c[ci].len >= cap)
				return 0;
			memcpy(buf + o, path + caps->c[ci].off, caps->c[ci].len);
			o += caps->c[ci].len;
			i += 2;
		} else if (o < cap) {
			buf[o++] = t[i];
		} else {
			return 0;
		}
	}
	return o;
}

unsigned cache_route_tags(const struct request *r, char *buf, size_t cap, struct record_str *out, unsigned max)
{
	return cache_route_tags_of(r->route, r->head->text + r->head->target_off, &r->caps, buf, cap, out, max);
}

unsigned cache_route_tags_of(const struct lv_route *rt, const char *path, const struct lv_captures *caps,
                             char *buf, size_t cap, struct record_str *out, unsigned max)
{
	size_t ro = 0;
	unsigned n = 0;
	for (const char *t = rt->cache_tags; *t && n < max;) {
		const char *e = strchr(t, ',');
		size_t tl = e ? (size_t)(e - t) : strlen(t);
		/* a tag naming a wildcard the path did not fill is left out */
		size_t w = cache_expand(path, caps, t, tl, buf + ro, cap - ro);
		if (w)
			out[n++] = (struct record_str){buf + ro, (uint32_t)w};
		ro += w;
		t = e ? e + 1 : t + tl;
	}
	return n;
}
