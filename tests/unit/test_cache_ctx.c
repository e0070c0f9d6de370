/* test_cache_ctx.c - the process's cache as a value: each test makes a
 * fresh struct cache, and two caches share nothing (the purge log, the L1,
 * the counters, the fills and hit-for-miss marks, the publisher). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "cache/cache_ctx.h"
#include "cache/key.h"
#include "cache/l1.h"

static struct lv_policy policy; /* only [cache] memory is read */

static int setup(void **state)
{
	policy.cache.memory = 1 << 20;
	struct cache *c = cache_new(&policy);
	assert_non_null(c);
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	cache_free(*state);
	return 0;
}

/* The L1 key of (service, target, host), as key_build() writes it. */
static size_t entry_key(const char *target, char *out, size_t cap)
{
	size_t n = key_path_prefix("svc", target, strlen(target), out, cap - 8);
	assert_true(n > 0);
	out[n++] = KEY_SEP;
	memcpy(out + n, "host", 4);
	return n + 4;
}

static void put(struct cache *c, const char *target)
{
	char k[KEY_MAX];
	size_t n = entry_key(target, k, sizeof(k));
	assert_int_equal(l1_put(c->l1, k, n, "v", 1, UINT64_MAX / 2, NULL, NULL, 0), LV_OK);
}

static void test_fresh_cache_is_empty(void **state)
{
	struct cache *c = *state;
	struct lv_cache_counters n;
	cache_counters(c, &n);
	assert_int_equal(n.hits + n.misses + n.stores + n.purged_entries, 0);
	assert_int_equal(purge_epoch(&c->purges), 0);
	assert_true(purge_fence_floor(&c->purges) == UINT64_MAX);
	assert_null(cache_publisher(c));
}

/* A purge logs itself (fills that began before it refuse to store), removes
 * what the L1 holds of its URL, and counts it, in its own cache only. */
static void test_purge_is_per_cache(void **state)
{
	struct cache *a = *state;
	struct cache *b = cache_new(&policy);
	assert_non_null(b);
	put(a, "/x");
	put(a, "/y");
	put(b, "/x");
	assert_int_equal(cache_purge_url(a, NULL, "svc", "/x", 2), 1);
	assert_int_equal(purge_epoch(&a->purges), 1);
	assert_int_equal(purge_epoch(&b->purges), 0);

	char k[KEY_MAX];
	size_t kl = entry_key("/x", k, sizeof(k));
	assert_true(purged_since(&a->purges, 0, k, kl, NULL, NULL, 0));
	assert_false(purged_since(&a->purges, 1, k, kl, NULL, NULL, 0));
	assert_false(purged_since(&b->purges, 0, k, kl, NULL, NULL, 0));

	struct lv_cache_counters n;
	cache_counters(a, &n);
	assert_int_equal(n.purged_entries, 1);
	cache_counters(b, &n);
	assert_int_equal(n.purged_entries, 0);
	assert_int_equal(cache_purge_all(b, NULL, "svc"), 1);
	assert_int_equal(cache_purge_all(a, NULL, "svc"), 1); /* "/y" was left */
	cache_free(b);
}

/* Without Redis a purge has no L2 half: nothing is pending, nothing is
 * fenced, nothing waits to be retried. */
static void test_purge_without_l2(void **state)
{
	struct cache *c = *state;
	bool pending = true;
	cache_purge(c, NULL, CACHE_PURGE_TAG, "svc", "t1", 2, NULL, NULL, &pending);
	assert_false(pending);
	assert_true(purge_fence_floor(&c->purges) == UINT64_MAX);
	struct cache_purge_retry_stats st;
	purge_retry_stats(&c->purges, &st);
	assert_int_equal(st.waiting, 0);
	assert_false(st.fenced);
}

/* One fill per key in flight; a second claimer is told it is busy; the
 * fill's end clears the filler's slot; shutdown forgets fills in flight. */
static void test_fills(void **state)
{
	struct cache *c = *state;
	struct cache *other = cache_new(&policy);
	assert_non_null(other);
	struct cache_fill *mine = NULL, *again = NULL, *theirs = NULL;
	assert_int_equal(fill_claim(&c->fills, "k", 1, &mine, NULL), CLAIM_OWNER);
	assert_non_null(mine);
	assert_int_equal(fill_claim(&c->fills, "k", 1, &again, NULL), CLAIM_BUSY);
	assert_null(again);
	assert_int_equal(fill_claim(&other->fills, "k", 1, &theirs, NULL), CLAIM_OWNER);
	fill_finish(&mine, FILL_STORED);
	assert_null(mine);
	assert_int_equal(fill_claim(&c->fills, "k", 1, &again, NULL), CLAIM_OWNER);
	cache_fills_shutdown(c);
	assert_null(again);
	cache_fills_shutdown(other);
	assert_null(theirs);
	cache_free(other);
}

static void test_pass_marks(void **state)
{
	struct cache *c = *state;
	struct cache *other = cache_new(&policy);
	assert_non_null(other);
	pass_mark(&c->fills, "k", 1, 60000);
	assert_true(pass_marked(&c->fills, "k", 1));
	assert_false(pass_marked(&other->fills, "k", 1));
	assert_true(pass_clear(&c->fills, "k", 1));
	assert_false(pass_marked(&c->fills, "k", 1));
	pass_mark(&c->fills, "k", 1, 0); /* no uncacheable_ttl: no mark */
	assert_false(pass_marked(&c->fills, "k", 1));
	cache_free(other);
}

static void publish(const struct inval_item *items, unsigned n)
{
}

static enum inval_cache_mode mode_off(void)
{
	return INVAL_CACHE_OFF;
}

static void test_publisher(void **state)
{
	struct cache *c = *state;
	static const struct cache_publisher pub = {.publish = publish, .mode = mode_off};
	cache_set_publisher(c, &pub);
	assert_ptr_equal(cache_publisher(c), &pub);
	assert_int_equal(cache_publisher(c)->mode(), INVAL_CACHE_OFF);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_fresh_cache_is_empty, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_purge_is_per_cache, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_purge_without_l2, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fills, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pass_marks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_publisher, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
