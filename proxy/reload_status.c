/*
 * reload_status.c - bookkeeping of reload attempts (see reload_status.h).
 */
#include "reload_status.h"

#include <stdio.h>

static const char *const reload_result_names[RELOAD__COUNT] = {"applied", "unchanged", "refused"};

const char *reload_result_name(enum reload_result r)
{
	return r < RELOAD__COUNT ? reload_result_names[r] : "unknown";
}

void reload_status_record(struct reload_status *s, enum reload_result r, const char *restart_keys,
                          const struct lv_diag *d, size_t from, double now)
{
	s->count[r]++;
	s->last = r;
	s->last_ts = now;
	s->error[0] = '\0';
	if (r == RELOAD_APPLIED)
		snprintf(s->restart_keys, sizeof(s->restart_keys), "%s", restart_keys);
	if (r != RELOAD_REFUSED)
		return;
	size_t off = 0;
	for (size_t i = from; i < d->n && off < sizeof(s->error); i++) {
		int n = snprintf(s->error + off, sizeof(s->error) - off, "%s%s", off ? "\n" : "", d->lines[i]);
		if (n < 0)
			break;
		off += (size_t)n;
	}
}
