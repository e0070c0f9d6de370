/*
 * write_inval.c - see write_inval.h.
 */
#include "cache/write_inval.h"

#include <string.h>

#include "cache/tags.h"
#include "log.h"

void write_inval_add(struct write_inval *w, enum inval_kind kind, const char *p, size_t len)
{
	if (!len || w->n == INVAL_ITEMS_MAX || w->used + len > sizeof(w->text)) {
		log_warn("cache: a write invalidates more than levee tracks (%u items); the rest is not purged",
		         INVAL_ITEMS_MAX);
		return;
	}
	for (unsigned i = 0; i < w->n; i++)
		if (w->items[i].kind == kind && w->items[i].len == len && memcmp(w->items[i].p, p, len) == 0)
			return;
	memcpy(w->text + w->used, p, len);
	w->items[w->n++] = (struct inval_item){kind, w->text + w->used, len};
	w->used += len;
}

void write_inval_request(struct write_inval *w, const struct lv_route *rt, const struct lv_head *qh,
                         const struct lv_captures *caps)
{
	const char *path = qh->text + qh->target_off;
	w->n = 0;
	w->used = 0;
	write_inval_add(w, INVAL_KEY, path, qh->target_len);
	for (const char *t = rt ? rt->invalidate : ""; *t;) {
		const char *e = strchr(t, ',');
		size_t tl = e ? (size_t)(e - t) : strlen(t);
		char buf[LV_INVALIDATE_MAX + 2048];
		bool tag = tl > 4 && memcmp(t, "tag:", 4) == 0;
		size_t keep = tl;
		bool prefix = !tag && route_purge_shape(t, tl, &keep) != LV_PURGE_URL;
		size_t n = tag ? cache_expand(path, caps, t + 4, tl - 4, buf, sizeof(buf))
		               : cache_expand(path, caps, t, keep, buf, sizeof(buf));
		if (n)
			write_inval_add(w, tag ? INVAL_TAG : prefix ? INVAL_PREFIX : INVAL_KEY, buf, n);
		t = e ? e + 1 : t + tl;
	}
}
