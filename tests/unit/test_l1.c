/*
 * test_l1.c - the in-process cache: lookups, replacement, references that
 * outlive removal, expiry on an injected clock, the byte bound, CLOCK
 * eviction, purges, binary keys, and a multithreaded stress run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/l1.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define FAR 1000000000ULL /* an expiry no test reaches */

struct test_clock {
	uint64_t now;
};

static uint64_t test_now(void *ctx)
{
	return __atomic_load_n(&((struct test_clock *)ctx)->now, __ATOMIC_RELAXED);
}

static struct l1 *cache_new(struct test_clock *clk, size_t max_bytes, unsigned shards)
{
	struct l1_config cfg = {
	        .max_bytes = max_bytes, .shards = shards, .now_ms = test_now, .clock_ctx = clk};
	struct l1 *c = l1_new(&cfg);
	assert_non_null(c);
	return c;
}

/* Deterministic, per-thread random numbers (xorshift64*). */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dULL;
}

static void put_str(struct l1 *c, const char *key, const char *val, uint64_t exp)
{
	assert_int_equal(l1_put(c, key, strlen(key), val, strlen(val), exp, NULL, NULL, 0), LV_OK);
}

static void put_tagged(struct l1 *c, const char *key, const char *const *tags, unsigned ntags)
{
	size_t lens[8];
	for (unsigned i = 0; i < ntags; i++)
		lens[i] = strlen(tags[i]);
	assert_int_equal(l1_put(c, key, strlen(key), key, strlen(key), FAR, tags, lens, ntags),
	                 LV_OK);
}

/* Asserts the entry under <key> holds <val> (NULL: that there is none). */
static void expect_get(struct l1 *c, const char *key, size_t klen, const char *val)
{
	struct l1_entry *e = l1_get(c, key, klen);
	if (!val) {
		assert_null(e);
		return;
	}
	assert_non_null(e);
	size_t len;
	const void *v = l1_entry_value(e, &len);
	assert_int_equal(len, strlen(val));
	assert_memory_equal(v, val, len);
	size_t kl;
	const char *k = l1_entry_key(e, &kl);
	assert_int_equal(kl, klen);
	assert_memory_equal(k, key, klen);
	l1_entry_unref(e);
}

#define GET(c, key, val) expect_get((c), (key), strlen(key), (val))

static struct l1_stats stats_of(struct l1 *c)
{
	struct l1_stats st;
	l1_stats(c, &st);
	return st;
}

/* ---- configuration ----------------------------------------------------- */

static void test_config(void **state)
{
	static const struct {
		size_t max_bytes;
		unsigned shards;
		bool ok;
		uint64_t eff_max; /* stats.max_bytes when ok */
	} cases[] = {
	        {1 << 20, 0, true, 1 << 20}, /* default shard count */
	        {1 << 20, 1, true, 1 << 20},
	        {1 << 20, 64, true, 1 << 20},
	        {1000, 64, true, 960}, /* 15 bytes a shard */
	        {1 << 20, L1_MAX_SHARDS, true, 1 << 20},
	        {1 << 20, 3, false, 0}, /* not a power of two */
	        {1 << 20, 96, false, 0},
	        {1 << 20, L1_MAX_SHARDS * 2, false, 0},
	        {0, 1, false, 0},
	        {63, 64, false, 0}, /* a shard with no budget at all */
	};
	for (size_t i = 0; i < N(cases); i++) {
		struct l1_config cfg = {.max_bytes = cases[i].max_bytes, .shards = cases[i].shards};
		errno = 0;
		struct l1 *c = l1_new(&cfg);
		if (!cases[i].ok) {
			assert_null(c);
			assert_int_equal(errno, EINVAL);
			continue;
		}
		assert_non_null(c);
		struct l1_stats st = stats_of(c);
		assert_int_equal(st.max_bytes, cases[i].eff_max);
		assert_int_equal(st.entries, 0);
		l1_free(c);
	}
}

/* The default clock is CLOCK_MONOTONIC: an entry expiring far in its future
 * is returned. */
static void test_default_clock(void **state)
{
	struct l1_config cfg = {.max_bytes = 1 << 20};
	struct l1 *c = l1_new(&cfg);
	assert_non_null(c);
	put_str(c, "k", "v", UINT64_MAX);
	GET(c, "k", "v");
	put_str(c, "old", "v", 1); /* long past on any running system */
	GET(c, "old", NULL);
	l1_free(c);
}

/* ---- basic operations -------------------------------------------------- */

static void test_put_get_replace(void **state)
{
	struct test_clock clk = {0};
	struct l1 *c = cache_new(&clk, 1 << 20, 8);

	GET(c, "a", NULL);
	put_str(c, "a", "1", FAR);
	put_str(c, "b", "two", FAR);
	GET(c, "a", "1");
	GET(c, "b", "two");

	struct l1_entry *old = l1_get(c, "a", 1);
	assert_non_null(old);
	assert_int_equal(l1_entry_expires(old), FAR);
	put_str(c, "a", "replaced", FAR + 1);
	GET(c, "a", "replaced");
	size_t len;
	assert_memory_equal(l1_entry_value(old, &len), "1", 1); /* the old version, still */
	assert_int_equal(len, 1);
	l1_entry_unref(old);

	struct l1_entry *e = l1_get(c, "a", 1);
	assert_int_equal(l1_entry_expires(e), FAR + 1);
	struct l1_entry *e2 = l1_entry_ref(e);
	assert_ptr_equal(e, e2);
	l1_entry_unref(e);
	assert_memory_equal(l1_entry_value(e2, &len), "replaced", 8);
	l1_entry_unref(e2);
	l1_entry_unref(NULL);

	/* empty key and empty value are values like any other */
	assert_int_equal(l1_put(c, "", 0, "", 0, FAR, NULL, NULL, 0), LV_OK);
	expect_get(c, "", 0, "");

	struct l1_stats st = stats_of(c);
	assert_int_equal(st.entries, 3);
	assert_int_equal(st.inserts, 4);
	assert_int_equal(st.evictions, 0);
	assert_int_equal(st.misses, 1);
	assert_int_equal(st.hits, 6);
	l1_free(c);
}

/* The accounted size covers value, key, tags and overhead, and returns to
 * zero when the entries go. */
static void test_accounting(void **state)
{
	struct test_clock clk = {0};
	struct l1 *c = cache_new(&clk, 1 << 20, 1);
	static const char *const tags[] = {"tag-one", "tag-two"};
	static const size_t tag_lens[] = {7, 7};
	char val[1000];
	memset(val, 'v', sizeof val);

	assert_int_equal(l1_put(c, "key", 3, val, sizeof val, FAR, tags, tag_lens, 2), LV_OK);
	struct l1_stats st = stats_of(c);
	assert_true(st.bytes >= sizeof val + 3 + 14 + 64);
	assert_true(st.bytes <= sizeof val + 3 + 14 + 256);
	uint64_t one = st.bytes;

	assert_int_equal(l1_put(c, "key", 3, val, sizeof val, FAR, tags, tag_lens, 2), LV_OK);
	assert_int_equal(stats_of(c).bytes, one); /* a replacement is not counted twice */
	assert_int_equal(l1_put(c, "kez", 3, val, sizeof val, FAR, tags, tag_lens, 2), LV_OK);
	assert_int_equal(stats_of(c).bytes, 2 * one);

	assert_int_equal(l1_purge_all(c), 2);
	st = stats_of(c);
	assert_int_equal(st.bytes, 0);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.purged, 2);
	l1_free(c);
}

/* ---- references outlive removal ---------------------------------------- */

enum removal { RM_KEY, RM_PREFIX, RM_TAG, RM_ALL, RM_REPLACE, RM_EVICT, RM_EXPIRE, RM_FREE };

static void test_ref_survives_removal(void **state)
{
	static const struct {
		enum removal how;
		const char *name;
	} cases[] = {
	        {RM_KEY, "purge_key"}, {RM_PREFIX, "purge_prefix"}, {RM_TAG, "purge_tag"},
	        {RM_ALL, "purge_all"}, {RM_REPLACE, "replace"},     {RM_EVICT, "evict"},
	        {RM_EXPIRE, "expire"}, {RM_FREE, "l1_free"},
	};
	static const char *const tags[] = {"t"};
	static const size_t tag_lens[] = {1};
	char val[512], filler[512];
	memset(val, 'x', sizeof val);
	memset(filler, 'f', sizeof filler);

	for (size_t i = 0; i < N(cases); i++) {
		struct test_clock clk = {0};
		struct l1 *c = cache_new(&clk, 8192, 1);
		assert_int_equal(l1_put(c, "held", 4, val, sizeof val, 100, tags, tag_lens, 1),
		                 LV_OK);
		struct l1_entry *e = l1_get(c, "held", 4);
		assert_non_null(e);

		switch (cases[i].how) {
		case RM_KEY:
			assert_int_equal(l1_purge_key(c, "held", 4), 1);
			break;
		case RM_PREFIX:
			assert_int_equal(l1_purge_prefix(c, "he", 2), 1);
			break;
		case RM_TAG:
			assert_int_equal(l1_purge_tag(c, "t", 1), 1);
			break;
		case RM_ALL:
			assert_int_equal(l1_purge_all(c), 1);
			break;
		case RM_REPLACE:
			put_str(c, "held", "new", FAR);
			break;
		case RM_EVICT:
			for (int k = 0; k < 64; k++) {
				char key[16];
				snprintf(key, sizeof key, "f%d", k);
				assert_int_equal(l1_put(c, key, strlen(key), filler, sizeof filler,
				                        FAR, NULL, NULL, 0),
				                 LV_OK);
			}
			assert_true(stats_of(c).evictions > 0);
			break;
		case RM_EXPIRE:
			clk.now = 100;
			break;
		case RM_FREE:
			l1_free(c);
			c = NULL;
			break;
		}
		if (c && cases[i].how != RM_REPLACE)
			GET(c, "held", NULL);

		size_t len;
		const unsigned char *v = l1_entry_value(e, &len);
		assert_int_equal(len, sizeof val);
		for (size_t k = 0; k < len; k++)
			if (v[k] != 'x')
				fail_msg("%s: value changed under a held reference", cases[i].name);
		l1_entry_unref(e); /* the last reference: ASan reports a leak or double free */
		l1_free(c);
	}
}

/* ---- expiry ------------------------------------------------------------ */

static void test_expiry(void **state)
{
	struct test_clock clk = {.now = 500};
	struct l1 *c = cache_new(&clk, 1 << 20, 4);

	put_str(c, "a", "1", 1000);
	put_str(c, "b", "2", 2000);
	clk.now = 999;
	GET(c, "a", "1");
	clk.now = 1000; /* expires_ms is the first instant it is gone */
	GET(c, "a", NULL);
	GET(c, "b", "2");
	struct l1_stats st = stats_of(c);
	assert_int_equal(st.entries, 1);
	assert_int_equal(st.expirations, 1);

	/* An expiry already past supersedes the old entry and stores nothing. */
	put_str(c, "b", "late", 1000);
	GET(c, "b", NULL);
	st = stats_of(c);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.bytes, 0);
	assert_int_equal(st.inserts, 2);

	/* Expired entries still held count for purges (they were still held). */
	put_str(c, "c", "3", 1500);
	clk.now = 1600;
	assert_int_equal(l1_purge_key(c, "c", 1), 1);
	l1_free(c);
}

/* The CLOCK sweep removes expired entries first, even referenced ones. */
static void test_sweep_takes_expired_first(void **state)
{
	struct test_clock clk = {0};
	char val[400];
	memset(val, 'v', sizeof val);
	struct l1 *c = cache_new(&clk, 4096, 1);

	assert_int_equal(l1_put(c, "short", 5, val, sizeof val, 100, NULL, NULL, 0), LV_OK);
	int k;
	for (k = 0;; k++) {
		char key[16];
		snprintf(key, sizeof key, "long%d", k);
		struct l1_stats before = stats_of(c);
		if (before.bytes + before.bytes / before.entries > before.max_bytes)
			break; /* one more would evict */
		assert_int_equal(l1_put(c, key, strlen(key), val, sizeof val, FAR, NULL, NULL, 0),
		                 LV_OK);
	}
	struct l1_entry *e = l1_get(c, "short", 5); /* referenced */
	l1_entry_unref(e);
	clk.now = 200;
	assert_int_equal(l1_put(c, "new", 3, val, sizeof val, FAR, NULL, NULL, 0), LV_OK);
	struct l1_stats st = stats_of(c);
	assert_int_equal(st.expirations, 1);
	assert_int_equal(st.evictions, 0);
	GET(c, "short", NULL);
	e = l1_get(c, "long0", 5); /* the sweep stopped at the expired entry */
	assert_non_null(e);
	l1_entry_unref(e);
	l1_free(c);
}

/* ---- the byte bound and CLOCK ------------------------------------------ */

static void test_byte_bound_random(void **state)
{
	static const struct {
		size_t max_bytes;
		unsigned shards;
		size_t max_val;
	} cases[] = {
	        {64 << 10, 1, 4000},
	        {64 << 10, 4, 4000},
	        {256 << 10, 16, 8000},
	        {16 << 10, 2, 200},
	};
	for (size_t i = 0; i < N(cases); i++) {
		struct test_clock clk = {0};
		struct l1 *c = cache_new(&clk, cases[i].max_bytes, cases[i].shards);
		uint64_t seed = 0x1234567 + i;
		char *val = malloc(cases[i].max_val);
		assert_non_null(val);
		memset(val, 'r', cases[i].max_val);
		size_t refused = 0;

		for (int op = 0; op < 5000; op++) {
			char key[32];
			int klen = snprintf(key, sizeof key, "k%u", (unsigned)(rnd(&seed) % 500));
			size_t vlen = rnd(&seed) % cases[i].max_val;
			clk.now += rnd(&seed) % 3;
			if (l1_put(c, key, (size_t)klen, val, vlen, clk.now + 1 + rnd(&seed) % 5000,
			           NULL, NULL, 0) != LV_OK) {
				assert_int_equal(errno, E2BIG);
				refused++;
			}
			struct l1_stats st = stats_of(c);
			assert_true(st.bytes <= st.max_bytes);
			assert_true(st.max_bytes <= cases[i].max_bytes);
			assert_true(st.entries <= 500);
		}
		struct l1_stats st = stats_of(c);
		assert_true(st.evictions > 0);
		assert_int_equal(st.inserts + refused, 5000);
		free(val);
		l1_free(c);
	}
}

/* Twelve 400-byte entries fit in the shard. A stream of cold entries goes
 * through it; the hot one is hit between puts and must never be evicted,
 * while an entry inserted alongside it and never hit goes early. */
static void test_clock_keeps_hot(void **state)
{
	struct test_clock clk = {0};
	char val[400];
	memset(val, 'c', sizeof val);
	struct l1 *c = cache_new(&clk, 12 * 512, 1);

	put_str(c, "hot", "H", FAR);
	put_str(c, "lukewarm", "L", FAR);
	for (int i = 0; i < 500; i++) {
		char key[16];
		snprintf(key, sizeof key, "cold%d", i);
		assert_int_equal(l1_put(c, key, strlen(key), val, sizeof val, FAR, NULL, NULL, 0),
		                 LV_OK);
		if (i % 3 == 0) /* hit now and then, not after every put */
			GET(c, "hot", "H");
	}
	GET(c, "hot", "H");
	GET(c, "lukewarm", NULL);
	struct l1_stats st = stats_of(c);
	assert_true(st.evictions >= 480);
	assert_true(st.bytes <= st.max_bytes);
	l1_free(c);
}

static void test_too_large(void **state)
{
	struct test_clock clk = {0};
	struct l1 *c = cache_new(&clk, 4 * 1024, 4); /* 1 KiB a shard */
	char big[2048];
	memset(big, 'b', sizeof big);

	put_str(c, "k", "small", FAR);
	static const struct {
		size_t klen, vlen, taglen;
		int rc;
	} cases[] = {
	        {1, 2048, 0, LV_ERR},
	        {1, 1024, 0, LV_ERR}, /* the budget, but not with the overhead */
	        {1, 900, 0, LV_OK},
	        {1, 0, 1500, LV_ERR}, /* tags count */
	        {1500, 0, 0, LV_ERR}, /* keys count */
	        {1, 500, 300, LV_OK},
	};
	for (size_t i = 0; i < N(cases); i++) {
		const char *tag = big;
		size_t tl = cases[i].taglen;
		const char *key = cases[i].klen == 1 ? "k" : big;
		errno = 0;
		int rc = l1_put(c, key, cases[i].klen, big, cases[i].vlen, FAR, &tag, &tl,
		                tl ? 1 : 0);
		if (rc != cases[i].rc)
			fail_msg("case %zu: rc %d, want %d", i, rc, cases[i].rc);
		if (rc == LV_ERR) {
			assert_int_equal(errno, E2BIG);
			/* the previous entry under the key is left in place */
			struct l1_entry *e = l1_get(c, "k", 1);
			assert_non_null(e);
			l1_entry_unref(e);
		}
	}
	/* a size whose arithmetic would overflow */
	errno = 0;
	assert_int_equal(l1_put(c, "k", 1, big, SIZE_MAX - 8, FAR, NULL, NULL, 0), LV_ERR);
	assert_int_equal(errno, E2BIG);
	assert_true(stats_of(c).bytes <= 4096);
	l1_free(c);
}

/* ---- purges ------------------------------------------------------------ */

enum purge_kind { P_KEY, P_PREFIX, P_TAG, P_ALL };

static const struct {
	const char *key;
	const char *tags[3];
	unsigned ntags;
} purge_set[] = {
        {"/api/users/1", {"user:1", "users"}, 2},
        {"/api/users/2", {"user:2", "users"}, 2},
        {"/api/orders/1", {"order:1", "user:1"}, 2},
        {"/static/a.js", {0}, 0},
        {"/api", {"root"}, 1},
};

static void test_purges(void **state)
{
	static const struct {
		enum purge_kind kind;
		const char *arg;
		size_t removed;
		unsigned gone; /* bit i: purge_set[i] removed */
	} cases[] = {
	        {P_KEY, "/api/users/1", 1, 0x01},
	        {P_KEY, "/api", 1, 0x10}, /* exact, not a prefix */
	        {P_KEY, "/nope", 0, 0},
	        {P_KEY, "/api/users/1/", 0, 0},
	        {P_PREFIX, "/api/users/", 2, 0x03},
	        {P_PREFIX, "/api", 4, 0x17},
	        {P_PREFIX, "/api/", 3, 0x07},
	        {P_PREFIX, "", 5, 0x1f},
	        {P_PREFIX, "/zzz", 0, 0},
	        {P_PREFIX, "/api/users/1/more", 0, 0}, /* longer than the key */
	        {P_TAG, "users", 2, 0x03},
	        {P_TAG, "user:1", 2, 0x05},
	        {P_TAG, "user", 0, 0}, /* tags match whole */
	        {P_TAG, "users2", 0, 0},
	        {P_TAG, "", 0, 0},
	        {P_TAG, "root", 1, 0x10},
	        {P_ALL, NULL, 5, 0x1f},
	};
	for (size_t i = 0; i < N(cases); i++) {
		struct test_clock clk = {0};
		struct l1 *c = cache_new(&clk, 1 << 20, 4);
		for (size_t k = 0; k < N(purge_set); k++)
			put_tagged(c, purge_set[k].key, purge_set[k].tags, purge_set[k].ntags);

		const char *a = cases[i].arg;
		size_t n = 0;
		switch (cases[i].kind) {
		case P_KEY:
			n = l1_purge_key(c, a, strlen(a));
			break;
		case P_PREFIX:
			n = l1_purge_prefix(c, a, strlen(a));
			break;
		case P_TAG:
			n = l1_purge_tag(c, a, strlen(a));
			break;
		case P_ALL:
			n = l1_purge_all(c);
			break;
		}
		if (n != cases[i].removed)
			fail_msg("case %zu (%s): removed %zu, want %zu", i, a ? a : "all", n,
			         cases[i].removed);
		for (size_t k = 0; k < N(purge_set); k++)
			GET(c, purge_set[k].key,
			    (cases[i].gone >> k) & 1 ? NULL : purge_set[k].key);
		struct l1_stats st = stats_of(c);
		assert_int_equal(st.entries, N(purge_set) - cases[i].removed);
		assert_int_equal(st.purged, cases[i].removed);
		/* a second identical purge finds nothing more */
		if (cases[i].kind == P_ALL)
			assert_int_equal(l1_purge_all(c), 0);
		l1_free(c);
	}
}

/* ---- keys are bytes ---------------------------------------------------- */

static void test_nul_keys(void **state)
{
	static const struct {
		const char *key;
		size_t klen;
		const char *val;
	} keys[] = {
	        {"a", 1, "plain"},
	        {"a\0", 2, "nul-end"},
	        {"a\0b", 3, "nul-b"},
	        {"a\0c", 3, "nul-c"},
	        {"\0", 1, "only-nul"},
	        {"\0\0\0\0\0\0\0\0\0", 9, "nine-nuls"},
	        {"\0\0\0\0\0\0\0\0", 8, "eight-nuls"},
	};
	struct test_clock clk = {0};
	struct l1 *c = cache_new(&clk, 1 << 20, 4);
	static const char tag[] = "t\0x";
	const char *tags[] = {tag};
	size_t tag_lens[] = {3};

	for (size_t i = 0; i < N(keys); i++)
		assert_int_equal(l1_put(c, keys[i].key, keys[i].klen, keys[i].val,
		                        strlen(keys[i].val), FAR, tags, tag_lens, i == 2 ? 1 : 0),
		                 LV_OK);
	for (size_t i = 0; i < N(keys); i++)
		expect_get(c, keys[i].key, keys[i].klen, keys[i].val);
	expect_get(c, "a\0d", 3, NULL);
	expect_get(c, "\0\0", 2, NULL);
	assert_int_equal(stats_of(c).entries, N(keys));

	assert_int_equal(l1_purge_tag(c, "t", 1), 0); /* the tag is three bytes */
	assert_int_equal(l1_purge_tag(c, tag, 3), 1);
	expect_get(c, "a\0b", 3, NULL);
	assert_int_equal(l1_purge_prefix(c, "a\0", 2), 2); /* "a\0" and "a\0c", not "a" */
	expect_get(c, "a", 1, "plain");
	assert_int_equal(l1_purge_prefix(c, "\0", 1), 3);
	assert_int_equal(stats_of(c).entries, 1);
	l1_free(c);
}

/* ---- scale ------------------------------------------------------------- */

static void test_many_shards(void **state)
{
	struct test_clock clk = {0};
	struct l1 *c = cache_new(&clk, 64 << 20, 4096);
	char key[32], val[32];

	for (int i = 0; i < 20000; i++) {
		snprintf(key, sizeof key, "/item/%d", i);
		snprintf(val, sizeof val, "v%d", i);
		put_str(c, key, val, FAR);
	}
	struct l1_stats st = stats_of(c);
	assert_int_equal(st.entries, 20000);
	assert_int_equal(st.evictions, 0);
	for (int i = 0; i < 20000; i++) {
		snprintf(key, sizeof key, "/item/%d", i);
		snprintf(val, sizeof val, "v%d", i);
		GET(c, key, val);
	}
	assert_int_equal(l1_purge_prefix(c, "/item/1", 7), 11111);
	assert_int_equal(l1_purge_all(c), 20000 - 11111);
	l1_free(c);
}

/* Random puts, gets and key purges on one large shard, checked against a
 * plain array: exercises table growth and deletion by backward shift. */
static void test_against_model(void **state)
{
	enum { KEYS = 300, OPS = 30000 };
	struct test_clock clk = {0};
	struct l1 *c = cache_new(&clk, 64 << 20, 1);
	static int model[KEYS]; /* 0: absent; else the version stored */
	uint64_t seed = 42;
	size_t present = 0;

	memset(model, 0, sizeof model);
	for (int op = 1; op <= OPS; op++) {
		unsigned k = (unsigned)(rnd(&seed) % KEYS);
		char key[40], val[24];
		/* lengths from 2 to 33 bytes, NULs included, to vary the tail path */
		size_t klen = 2 + k % 32;
		memset(key, 0, sizeof key);
		memcpy(key, &k, sizeof k);
		int vlen = snprintf(val, sizeof val, "v%d", op);
		switch (rnd(&seed) % 4) {
		case 0:
		case 1:
			assert_int_equal(
			        l1_put(c, key, klen, val, (size_t)vlen, FAR, NULL, NULL, 0), LV_OK);
			present += model[k] == 0;
			model[k] = op;
			break;
		case 2: {
			size_t n = l1_purge_key(c, key, klen);
			assert_int_equal(n, model[k] != 0);
			present -= n;
			model[k] = 0;
			break;
		}
		case 3: {
			char want[24];
			if (model[k])
				snprintf(want, sizeof want, "v%d", model[k]);
			expect_get(c, key, klen, model[k] ? want : NULL);
			break;
		}
		}
	}
	assert_int_equal(stats_of(c).entries, present);
	assert_int_equal(l1_purge_all(c), present);
	l1_free(c);
}

/* ---- threads ----------------------------------------------------------- */

enum { ST_THREADS = 4, ST_OPS = 20000, ST_KEYS = 200, ST_HOLD = 8 };

struct stress_arg {
	struct l1 *c;
	struct test_clock *clk;
	uint64_t seed;
	unsigned bad; /* values that did not match their key */
};

static int stress_key(char *key, size_t n, unsigned k)
{
	return snprintf(key, n, "/s/%u/%u", k % 10, k);
}

/* A value names its key in the first 4 bytes and repeats its low byte. */
static bool stress_value_ok(const struct l1_entry *e, unsigned k)
{
	size_t len;
	const unsigned char *v = l1_entry_value(e, &len);
	uint32_t got;
	if (len < sizeof got)
		return false;
	memcpy(&got, v, sizeof got);
	if (got != k)
		return false;
	for (size_t i = sizeof got; i < len; i++)
		if (v[i] != (unsigned char)k)
			return false;
	return true;
}

static void *stress_run(void *p)
{
	struct stress_arg *a = p;
	struct l1_entry *held[ST_HOLD] = {0};
	unsigned held_key[ST_HOLD] = {0};
	unsigned char val[1024];
	char key[32];

	for (int op = 0; op < ST_OPS; op++) {
		unsigned k = (unsigned)(rnd(&a->seed) % ST_KEYS);
		int klen = stress_key(key, sizeof key, k);
		unsigned r = (unsigned)(rnd(&a->seed) % 100);
		if (r < 55) {
			struct l1_entry *e = l1_get(a->c, key, (size_t)klen);
			if (!e)
				continue;
			if (!stress_value_ok(e, k))
				a->bad++;
			/* keep some references across other threads' removals */
			unsigned slot = (unsigned)(rnd(&a->seed) % ST_HOLD);
			if (held[slot] && !stress_value_ok(held[slot], held_key[slot]))
				a->bad++;
			l1_entry_unref(held[slot]);
			held[slot] = e;
			held_key[slot] = k;
		} else if (r < 90) {
			size_t vlen =
			        sizeof(uint32_t) + rnd(&a->seed) % (sizeof val - sizeof(uint32_t));
			memcpy(val, &k, sizeof k);
			memset(val + sizeof k, (unsigned char)k, vlen - sizeof k);
			char tag[8];
			snprintf(tag, sizeof tag, "t%u", k % 7);
			const char *tags[] = {tag};
			size_t tl[] = {strlen(tag)};
			uint64_t exp = test_now(a->clk) + 1 + rnd(&a->seed) % 200;
			if (l1_put(a->c, key, (size_t)klen, val, vlen, exp, tags, tl, 1) != LV_OK)
				a->bad++;
		} else if (r < 95) {
			(void)l1_purge_key(a->c, key, (size_t)klen);
		} else if (r < 97) {
			char pre[8];
			int pl = snprintf(pre, sizeof pre, "/s/%u/", k % 10);
			(void)l1_purge_prefix(a->c, pre, (size_t)pl);
		} else if (r < 99) {
			char tag[8];
			int tl = snprintf(tag, sizeof tag, "t%u", k % 7);
			(void)l1_purge_tag(a->c, tag, (size_t)tl);
		} else {
			struct l1_stats st;
			l1_stats(a->c, &st);
			if (st.bytes > st.max_bytes)
				a->bad++;
			__atomic_fetch_add(&a->clk->now, 1, __ATOMIC_RELAXED);
		}
	}
	for (unsigned i = 0; i < ST_HOLD; i++) {
		if (held[i] && !stress_value_ok(held[i], held_key[i]))
			a->bad++;
		l1_entry_unref(held[i]);
	}
	return NULL;
}

static void test_threads(void **state)
{
	struct test_clock clk = {0};
	/* small enough that puts evict: ~200 keys x ~600 bytes > 64 KiB */
	struct l1 *c = cache_new(&clk, 64 << 10, 16);
	pthread_t t[ST_THREADS];
	struct stress_arg args[ST_THREADS];

	for (unsigned i = 0; i < ST_THREADS; i++) {
		args[i] = (struct stress_arg){.c = c, .clk = &clk, .seed = 0x9e3779b9u * (i + 1)};
		assert_int_equal(pthread_create(&t[i], NULL, stress_run, &args[i]), 0);
	}
	for (unsigned i = 0; i < ST_THREADS; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(args[i].bad, 0);
	}

	/* Quiescent: every entry the stats count is reachable by its key. */
	struct l1_stats st = stats_of(c);
	assert_true(st.bytes <= st.max_bytes);
	assert_true(st.evictions > 0);
	assert_true(st.hits > 0);
	clk.now = 0; /* nothing expires during the count */
	size_t found = 0;
	for (unsigned k = 0; k < ST_KEYS; k++) {
		char key[32];
		int klen = stress_key(key, sizeof key, k);
		struct l1_entry *e = l1_get(c, key, (size_t)klen);
		if (e) {
			assert_true(stress_value_ok(e, k));
			found++;
		}
		l1_entry_unref(e);
	}
	assert_int_equal(found, st.entries);
	assert_int_equal(l1_purge_all(c), found);
	st = stats_of(c);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.bytes, 0);
	l1_free(c);
}

/* Groups: every key of a group shares a shard, and l1_purge_group removes
 * exactly the keys that start with the group and its separator, the same as
 * l1_purge_prefix would, with and without groups configured. */
static void test_purge_group(void **state)
{
	static const char *const keys[] = {
	    "s\x1f/a\x1fh1",          "s\x1f/a\x1fh2\x1fx=1", "s\x1f/a\x1fh1\x1evary", "s\x1f/ab\x1fh1",
	    "s\x1f/b\x1fh1",          "t\x1f/a\x1fh1",        "s\x1f/a",                "s",
	};
	const size_t nkeys = sizeof(keys) / sizeof(keys[0]);
	for (int grouped = 0; grouped < 2; grouped++) {
		struct test_clock clk = {1000};
		struct l1_config cfg = {.max_bytes = 1 << 20, .now_ms = test_now, .clock_ctx = &clk,
		                        .group_fields = grouped ? 2 : 0, .group_sep = 0x1f};
		struct l1 *c = l1_new(&cfg);
		assert_non_null(c);
		for (size_t i = 0; i < nkeys; i++)
			put_str(c, keys[i], "v", 1000000);
		for (size_t i = 0; i < nkeys; i++) {
			struct l1_entry *e = l1_get(c, keys[i], strlen(keys[i]));
			assert_non_null(e);
			l1_entry_unref(e);
		}
		/* the group s/a: three keys, not /ab, not /b, not service t, not the
		 * short keys that have no complete group */
		assert_int_equal(l1_purge_group(c, "s\x1f/a\x1f", 5), 3);
		assert_null(l1_get(c, keys[0], strlen(keys[0])));
		assert_null(l1_get(c, keys[1], strlen(keys[1])));
		assert_null(l1_get(c, keys[2], strlen(keys[2])));
		for (size_t i = 3; i < nkeys; i++) {
			struct l1_entry *e = l1_get(c, keys[i], strlen(keys[i]));
			assert_non_null(e);
			l1_entry_unref(e);
		}
		/* a prefix that is not exactly one group falls back to the walk */
		assert_int_equal(l1_purge_group(c, "s\x1f/a", 4), 2); /* "s/ab..." and "s/a" */
		assert_int_equal(l1_purge_group(c, "t\x1f", 2), 1);
		l1_free(c);
	}
}

/* l1_put_entry hands back the stored entry; l1_purge_entry removes exactly
 * it, never a newer entry under the same key; a detached entry serves a
 * value without a cache. */
static void test_put_entry_purge_entry(void **state)
{
	struct test_clock clk = {1000};
	struct l1_config cfg = {.max_bytes = 1 << 20, .now_ms = test_now, .clock_ctx = &clk};
	struct l1 *c = l1_new(&cfg);
	assert_non_null(c);
	struct l1_entry *old = NULL, *cur = NULL;
	assert_int_equal(l1_put_entry(c, "k", 1, "v1", 2, 100000, NULL, NULL, 0, &old), LV_OK);
	assert_non_null(old);
	assert_int_equal(l1_put_entry(c, "k", 1, "v2", 2, 100000, NULL, NULL, 0, &cur), LV_OK);
	assert_false(l1_purge_entry(c, old)); /* replaced: the newer one stays */
	struct l1_entry *e = l1_get(c, "k", 1);
	assert_ptr_equal(e, cur);
	l1_entry_unref(e);
	assert_true(l1_purge_entry(c, cur));
	assert_null(l1_get(c, "k", 1));
	assert_false(l1_purge_entry(c, cur));
	l1_entry_unref(old);
	l1_entry_unref(cur);

	/* expired at the put: nothing stored, no entry handed back */
	struct l1_entry *none = (struct l1_entry *)1;
	assert_int_equal(l1_put_entry(c, "k", 1, "v", 1, 999, NULL, NULL, 0, &none), LV_OK);
	assert_null(none);
	/* too large for a shard: E2BIG, no entry */
	size_t big = l1_max_entry(c) + 1;
	char *buf = calloc(1, big);
	assert_int_equal(l1_put_entry(c, "", 0, buf, big, 100000, NULL, NULL, 0, &none), LV_ERR);
	assert_int_equal(errno, E2BIG);
	assert_null(none);
	/* the largest that fits does fit */
	assert_int_equal(l1_put_entry(c, "", 0, buf, big - 1, 100000, NULL, NULL, 0, &none), LV_OK);
	l1_entry_unref(none);
	struct l1_entry *d = l1_entry_detached(buf, big);
	assert_non_null(d);
	size_t len;
	assert_ptr_not_equal(l1_entry_value(d, &len), buf);
	assert_int_equal(len, big);
	l1_entry_unref(d);
	free(buf);
	l1_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_purge_group),
	    cmocka_unit_test(test_put_entry_purge_entry),
	        cmocka_unit_test(test_config),
	        cmocka_unit_test(test_default_clock),
	        cmocka_unit_test(test_put_get_replace),
	        cmocka_unit_test(test_accounting),
	        cmocka_unit_test(test_ref_survives_removal),
	        cmocka_unit_test(test_expiry),
	        cmocka_unit_test(test_sweep_takes_expired_first),
	        cmocka_unit_test(test_byte_bound_random),
	        cmocka_unit_test(test_clock_keeps_hot),
	        cmocka_unit_test(test_too_large),
	        cmocka_unit_test(test_purges),
	        cmocka_unit_test(test_nul_keys),
	        cmocka_unit_test(test_many_shards),
	        cmocka_unit_test(test_against_model),
	        cmocka_unit_test(test_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
