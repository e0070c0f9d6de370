/*
 * loop.c - a loop's clock, request ids and head arenas (net/loop.h).
 */
#include "net/loop.h"

#include <stdlib.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define ARENA_POOL_MAX 64

uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t now_unix_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void loop_seed(struct worker *w)
{
	uint64_t seed[2];
	if (getrandom(seed, sizeof(seed), 0) != sizeof(seed)) {
		seed[0] = now_us() ^ ((uint64_t)w->id << 32);
		seed[1] = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull;
	}
	w->rng[0] = seed[0] | 1;
	w->rng[1] = seed[1];
}

/* xorshift128+: request ids need to be unique, not secret. */
uint64_t loop_rand(struct worker *w)
{
	uint64_t s1 = w->rng[0];
	const uint64_t s0 = w->rng[1];
	w->rng[0] = s0;
	s1 ^= s1 << 23;
	w->rng[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
	return w->rng[1] + s0;
}

void loop_request_id(struct worker *w, char out[33])
{
	static const char hex[] = "0123456789abcdef";
	uint64_t a = loop_rand(w), b = loop_rand(w);
	for (int i = 0; i < 16; i++) {
		out[i] = hex[(a >> (i * 4)) & 15];
		out[16 + i] = hex[(b >> (i * 4)) & 15];
	}
	out[32] = '\0';
}

/* ---- head arenas ------------------------------------------------------- */

struct arena *arena_get(struct worker *w)
{
	const struct lv_policy *p = w->rt->policy;
	uint32_t text = (uint32_t)p->limits.header_bytes, hdrs = (uint32_t)p->limits.headers;
	while (w->arenas) {
		struct arena *a = w->arenas;
		w->arenas = a->next;
		w->narenas--;
		if (a->text_cap == text && a->max_headers == hdrs)
			return a;
		free(a); /* sized for an older policy */
	}
	struct arena *a = malloc(sizeof(*a) + (size_t)hdrs * sizeof(struct lv_hdr) + text);
	if (!a)
		return NULL;
	a->next = NULL;
	a->text_cap = text;
	a->max_headers = hdrs;
	a->head.h = (struct lv_hdr *)(a + 1);
	a->head.max = hdrs;
	a->head.text = (char *)(a->head.h + hdrs);
	a->head.cap = text;
	return a;
}

void arena_put(struct worker *w, struct arena *a)
{
	if (!a)
		return;
	if (w->narenas >= ARENA_POOL_MAX) {
		free(a);
		return;
	}
	a->next = w->arenas;
	w->arenas = a;
	w->narenas++;
}

void arena_pool_clear(struct worker *w)
{
	while (w->arenas) {
		struct arena *a = w->arenas;
		w->arenas = a->next;
		free(a);
	}
	w->narenas = 0;
}
