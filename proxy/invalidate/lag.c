/*
 * lag.c - the consumer's catch-up state (lag.h).
 */
#include "invalidate/lag.h"

#include <string.h>

void lag_init(struct lag_watch *w, uint64_t budget_ms, uint64_t now_ms)
{
	memset(w, 0, sizeof(*w));
	w->budget_ms = budget_ms;
	w->behind = true; /* until the first catch-up */
	w->behind_since_ms = now_ms;
}

static void lag_fall_behind(struct lag_watch *w, uint64_t now_ms)
{
	if (!w->behind) {
		w->behind = true;
		w->behind_since_ms = now_ms;
	}
}

void lag_assigned(struct lag_watch *w, unsigned n, uint64_t now_ms)
{
	w->assigned = n > 0;
	if (!w->assigned) {
		lag_fall_behind(w, now_ms);
		w->ntarget = 0;
	}
}

static void lag_set_targets(struct lag_watch *w, const struct kafka_lag *l)
{
	w->ntarget = l->nparts;
	memcpy(w->target_part, l->part, l->nparts * sizeof(l->part[0]));
	memcpy(w->target_hi, l->hi, l->nparts * sizeof(l->hi[0]));
}

static bool lag_targets_reached(const struct lag_watch *w, const struct kafka_lag *l)
{
	for (unsigned i = 0; i < w->ntarget; i++)
		for (unsigned j = 0; j < l->nparts; j++)
			if (l->part[j] == w->target_part[i] && l->pos[j] < w->target_hi[i])
				return false;
	return true;
}

bool lag_trusted(const struct lag_watch *w, uint64_t now_ms)
{
	if (!w->synced_once)
		return false;
	return !w->behind || now_ms - w->behind_since_ms <= w->budget_ms;
}

enum lag_event lag_stats(struct lag_watch *w, const struct kafka_lag *l, uint64_t now_ms)
{
	bool trusted = lag_trusted(w, now_ms);
	w->last_stats_ms = now_ms;
	if (!w->assigned || !l->broker_up || l->nparts == 0 || l->nknown != l->nparts) {
		lag_fall_behind(w, now_ms);
		w->ntarget = 0;
		return LAG_NONE;
	}
	if (!w->behind && l->lag > 0) {
		w->behind = true;
		w->behind_since_ms = now_ms;
		lag_set_targets(w, l);
	} else if (w->behind && w->ntarget == 0) {
		lag_set_targets(w, l); /* starting, or back from an outage */
	}
	if (!w->behind || !lag_targets_reached(w, l))
		return LAG_NONE;
	w->behind = false;
	w->ntarget = 0;
	bool first = !w->synced_once;
	w->synced_once = true;
	return first || !trusted ? LAG_CAUGHT_UP_RESET : LAG_CAUGHT_UP;
}

void lag_tick(struct lag_watch *w, uint64_t now_ms)
{
	if (w->last_stats_ms && now_ms - w->last_stats_ms > LAG_STATS_STALL_MS && !w->behind) {
		w->behind = true;
		w->behind_since_ms = w->last_stats_ms;
		w->ntarget = 0;
	}
}

uint64_t lag_behind_ms(const struct lag_watch *w, uint64_t now_ms)
{
	return w->behind ? now_ms - w->behind_since_ms : 0;
}
