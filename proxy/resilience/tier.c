/*
 * tier.c - see tier.h.
 */
#include "resilience/tier.h"

void tier_init(struct tier_ctl *c, const struct tier_rule *rules, unsigned n, uint64_t now_ms)
{
	c->rules = rules;
	c->n = n > TIER_MAX ? TIER_MAX : n;
	c->level = 0;
	c->since_ms = now_ms;
	c->forced = 0;
	c->forced_until_ms = 0;
	c->ups = c->downs = 0;
}

static void set_level(struct tier_ctl *c, unsigned level, uint64_t now_ms)
{
	if (level == c->level)
		return;
	if (level > c->level)
		c->ups++;
	else
		c->downs++;
	c->level = level;
	c->since_ms = now_ms;
}

unsigned tier_tick(struct tier_ctl *c, tier_cond_fn cond, void *arg, uint64_t now_ms)
{
	if (c->forced_until_ms) {
		if (now_ms < c->forced_until_ms) {
			set_level(c, c->forced, now_ms);
			return c->level;
		}
		c->forced_until_ms = 0; /* over: the conditions decide again, from here */
	}
	if (c->level < c->n && cond(arg, c->level + 1, true)) {
		set_level(c, c->level + 1, now_ms);
	} else if (c->level > 0 && now_ms - c->since_ms >= c->rules[c->level - 1].hold_ms &&
	           cond(arg, c->level, false)) {
		set_level(c, c->level - 1, now_ms);
	}
	return c->level;
}

void tier_force(struct tier_ctl *c, unsigned level, uint64_t until_ms, uint64_t now_ms)
{
	if (until_ms <= now_ms) {
		c->forced_until_ms = 0;
		return;
	}
	c->forced = level > c->n ? c->n : level;
	c->forced_until_ms = until_ms;
	set_level(c, c->forced, now_ms);
}

void tier_reconfigure(struct tier_ctl *c, const struct tier_rule *rules, unsigned n)
{
	c->rules = rules;
	c->n = n > TIER_MAX ? TIER_MAX : n;
	if (c->level > c->n)
		c->level = c->n; /* its start stays: the hold of what remains is not restarted */
	if (c->forced > c->n)
		c->forced = c->n;
}

unsigned tier_cohort(const char *key, size_t len)
{
	/* FNV-1a, then a 64-bit finaliser (splitmix64's) so that keys that
	 * differ in their last byte land far apart */
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)key[i];
		h *= 0x100000001b3ull;
	}
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebull;
	h ^= h >> 31;
	return (unsigned)(h % 10000u);
}
