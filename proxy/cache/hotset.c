/*
 * hotset.c - the hot set's sampler and its writes to Redis (hotset.h).
 */
#include "cache/hotset.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/redis.h"

struct hot_item {
	uint32_t off, len; /* of the key in the arena */
	uint64_t weight;
};

struct hotset {
	struct hotset_cfg cfg;
	char zkey[LV_NAME_MAX + 24];
	char dkey[LV_NAME_MAX + 26];
	uint64_t countdown;   /* hits until the next sample: a decrement a hit, no division */
	uint64_t batch_start; /* now_ms of the batch's first sample; 0: none */
	unsigned n;
	size_t used;
	struct hot_item *items; /* cfg.writes of them */
	char arena[HOTSET_ARENA];
};

static struct {
	atomic_uint_fast64_t sampled, dropped, written, flushes, errors;
} hot_stats;

#define HSTAT(f, v) atomic_fetch_add_explicit(&hot_stats.f, (v), memory_order_relaxed)

/* KEYS[1] the set, KEYS[2] the decay stamp; ARGV: size, half-life ms, now
 * (unix ms), then weight, member pairs. Returns the set's size. */
static const char hot_script[] =
    "local z, d = KEYS[1], KEYS[2]\n"
    "local size, half, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "local last = tonumber(redis.call('GET', d) or '0')\n"
    "if last == 0 then redis.call('SET', d, now, 'PX', half * 30)\n"
    "elseif now - last >= half / 16 then\n"
    "  redis.call('ZUNIONSTORE', z, 1, z, 'WEIGHTS', 0.5 ^ ((now - last) / half))\n"
    "  redis.call('ZREMRANGEBYSCORE', z, '-inf', '(0.5')\n"
    "  redis.call('SET', d, now, 'PX', half * 30)\n"
    "end\n"
    "for i = 4, #ARGV, 2 do redis.call('ZINCRBY', z, ARGV[i], ARGV[i + 1]) end\n"
    "redis.call('ZREMRANGEBYRANK', z, 0, -(size + 1))\n"
    "redis.call('PEXPIRE', z, half * 30)\n"
    "return redis.call('ZCARD', z)\n";

void hotset_cfg_of(const struct lv_policy *p, struct hotset_cfg *out)
{
	out->sample = policy_redis_on(p) ? p->warmup.hot_sample : 0;
	out->writes = p->warmup.hot_writes;
	out->size = p->warmup.hot_size;
	out->half_life_ms = p->warmup.hot_half_life_ms;
}

size_t hotset_key(const char *service, char *out, size_t cap)
{
	int n = snprintf(out, cap, "levee:hot:{%s}", service);
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

struct hotset *hotset_new(const struct hotset_cfg *cfg, const char *service)
{
	if (!cfg->sample || !cfg->writes)
		return NULL;
	struct hotset *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->cfg = *cfg;
	h->countdown = cfg->sample;
	h->items = calloc(cfg->writes, sizeof(*h->items));
	size_t zl = hotset_key(service, h->zkey, sizeof(h->zkey));
	if (!h->items || !zl) {
		hotset_free(h);
		return NULL;
	}
	snprintf(h->dkey, sizeof(h->dkey), "%s:d", h->zkey);
	return h;
}

void hotset_free(struct hotset *h)
{
	if (!h)
		return;
	free(h->items);
	free(h);
}

bool hotset_hit(struct hotset *h, const char *key, size_t klen)
{
	if (--h->countdown)
		return false;
	h->countdown = h->cfg.sample;
	for (unsigned i = 0; i < h->n; i++) {
		struct hot_item *it = &h->items[i];
		if (it->len == klen && memcmp(h->arena + it->off, key, klen) == 0) {
			it->weight += h->cfg.sample;
			HSTAT(sampled, 1);
			return true;
		}
	}
	if (klen > HOTSET_KEY_MAX || h->n >= h->cfg.writes || h->used + klen > sizeof(h->arena)) {
		HSTAT(dropped, 1);
		return false;
	}
	h->items[h->n++] = (struct hot_item){.off = (uint32_t)h->used, .len = (uint32_t)klen, .weight = h->cfg.sample};
	memcpy(h->arena + h->used, key, klen);
	h->used += klen;
	HSTAT(sampled, 1);
	return true;
}

bool hotset_due(const struct hotset *h, uint64_t now_ms)
{
	return h->n && now_ms - h->batch_start >= HOTSET_FLUSH_MS;
}

unsigned hotset_batch_len(const struct hotset *h)
{
	return h->n;
}

const char *hotset_batch_key(const struct hotset *h, unsigned i, size_t *len, uint64_t *weight)
{
	if (i >= h->n)
		return NULL;
	*len = h->items[i].len;
	*weight = h->items[i].weight;
	return h->arena + h->items[i].off;
}

static void hot_on_reply(struct redis *r, const redisReply *reply, enum redis_err err, void *arg)
{
	(void)r, (void)arg;
	if (err == REDIS_ENONE && reply->type == REDIS_REPLY_INTEGER)
		HSTAT(flushes, 1);
	else
		HSTAT(errors, 1);
}

/* Ends the batch: the next one starts with the next sample. */
static void hot_reset(struct hotset *h, uint64_t now_ms)
{
	h->n = 0;
	h->used = 0;
	h->batch_start = now_ms;
}

void hotset_flush(struct hotset *h, struct redis *r, uint64_t now_ms, uint64_t unix_ms)
{
	unsigned n = h->n;
	if (!n) {
		h->batch_start = now_ms;
		return;
	}
	if (!r || !redis_available(r)) {
		HSTAT(errors, 1);
		hot_reset(h, now_ms);
		return;
	}
	unsigned argc = 8 + 2 * n;
	const char **argv = malloc(argc * sizeof(*argv));
	size_t *argl = malloc(argc * sizeof(*argl));
	char *nums = malloc((size_t)(n + 3) * 24);
	if (!argv || !argl || !nums) {
		HSTAT(errors, 1);
		goto out;
	}
	char *np = nums;
#define NUM(i, v)                                                                                                  \
	do {                                                                                                       \
		argl[i] = (size_t)snprintf(np, 24, "%llu", (unsigned long long)(v));                               \
		argv[i] = np;                                                                                      \
		np += 24;                                                                                          \
	} while (0)
	argv[0] = "EVAL";
	argv[1] = hot_script;
	argv[2] = "2";
	argv[3] = h->zkey;
	argv[4] = h->dkey;
	for (int i = 0; i < 5; i++)
		argl[i] = strlen(argv[i]);
	NUM(5, h->cfg.size);
	NUM(6, h->cfg.half_life_ms);
	NUM(7, unix_ms);
	for (unsigned i = 0; i < n; i++) {
		NUM(8 + 2 * i, h->items[i].weight);
		argv[9 + 2 * i] = h->arena + h->items[i].off;
		argl[9 + 2 * i] = h->items[i].len;
	}
#undef NUM
	if (redis_command(r, hot_on_reply, NULL, (int)argc, argv, argl) == LV_OK)
		HSTAT(written, n);
	else
		HSTAT(errors, 1);
out:
	free(argv);
	free(argl);
	free(nums);
	hot_reset(h, now_ms);
}

void hotset_counters(struct hotset_counters *out)
{
	out->sampled = atomic_load_explicit(&hot_stats.sampled, memory_order_relaxed);
	out->dropped = atomic_load_explicit(&hot_stats.dropped, memory_order_relaxed);
	out->written = atomic_load_explicit(&hot_stats.written, memory_order_relaxed);
	out->flushes = atomic_load_explicit(&hot_stats.flushes, memory_order_relaxed);
	out->errors = atomic_load_explicit(&hot_stats.errors, memory_order_relaxed);
}
