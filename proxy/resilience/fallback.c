/*
 * fallback.c - a route's fallback chain (fallback.h).
 */
#include "resilience/fallback.h"

#include <stdio.h>

enum lv_fallback_kind fallback_choose(const struct lv_fallback_chain *chain, enum lv_reason reason,
                                      const struct fallback_try *t)
{
	if (reason_fallback_cause(reason) < 0)
		return LV_FB__COUNT;
	for (unsigned i = 0; i < chain->n; i++) {
		enum lv_fallback_kind k = (enum lv_fallback_kind)chain->kind[i];
		if (k != LV_FB_STALE || (t->stale && t->stale(t->arg)))
			return k;
	}
	return LV_FB__COUNT;
}

bool fallback_detail(char *buf, size_t size, const char *detail, enum lv_fallback_kind kind)
{
	const char *name = lv_fallback_kind_names[kind];
	int n = snprintf(buf, size, "%s%sfallback=%s", detail ? detail : "", detail ? "; " : "", name);
	if (n >= 0 && (size_t)n < size)
		return true;
	snprintf(buf, size, "fallback=%s", name);
	return false;
}
