/*
 * test_hotset.c - the hot set: the 1-in-N sampler and its batch bounds on
 * an injected clock, and the script against a real redis-server: weights,
 * decay by half-lives of an injected wall clock, the size bound, and a
 * Redis that is down costing nothing but the batch.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "redis_harness.h"
#include "cache/hotset.h"
#include "cache/redis.h"

#define HALF 60000u /* ms */

static struct hotset *sampler(uint64_t sample, uint64_t writes)
{
	struct hotset_cfg cfg = {.sample = sample, .writes = writes, .size = 100, .half_life_ms = HALF};
	struct hotset *h = hotset_new(&cfg, "svc");
	assert_non_null(h);
	return h;
}

static uint64_t weight_of(const struct hotset *h, const char *key)
{
	for (unsigned i = 0; i < hotset_batch_len(h); i++) {
		size_t len;
		uint64_t w;
		const char *k = hotset_batch_key(h, i, &len, &w);
		if (len == strlen(key) && memcmp(k, key, len) == 0)
			return w;
	}
	return 0;
}

static void test_off(void **state)
{
	(void)state;
	struct hotset_cfg cfg = {.sample = 0, .writes = 10, .size = 10, .half_life_ms = HALF};
	assert_null(hotset_new(&cfg, "svc"));
	char k[64];
	assert_int_equal(hotset_key("svc", k, sizeof(k)), strlen("levee:hot:{svc}"));
	assert_string_equal(k, "levee:hot:{svc}");
	assert_int_equal(hotset_key("svc", k, 8), 0); /* does not fit */
}

/* One hit in N is taken, with weight N; repeats of a key add up. */
static void test_one_in_n(void **state)
{
	(void)state;
	struct hotset *h = sampler(4, 10);
	int taken = 0;
	for (int i = 1; i <= 12; i++)
		taken += hotset_hit(h, "a", 1);
	assert_int_equal(taken, 3);
	assert_int_equal(hotset_batch_len(h), 1);
	assert_int_equal(weight_of(h, "a"), 12);
	/* the counter runs across keys: hits 13..16, the 16th is b */
	for (int i = 0; i < 3; i++)
		assert_false(hotset_hit(h, "c", 1));
	assert_true(hotset_hit(h, "b", 1));
	assert_int_equal(weight_of(h, "b"), 4);
	assert_int_equal(weight_of(h, "c"), 0);
	hotset_free(h);

	h = sampler(1, 10); /* every hit */
	for (int i = 0; i < 5; i++)
		assert_true(hotset_hit(h, "k", 1));
	assert_int_equal(weight_of(h, "k"), 5);
	hotset_free(h);
}

/* At most `writes` distinct keys a batch; a key already in it still counts.
 * Keys past HOTSET_KEY_MAX, or past the arena, are dropped. */
static void test_bounds(void **state)
{
	(void)state;
	struct hotset *h = sampler(1, 3);
	assert_true(hotset_hit(h, "k1", 2));
	assert_true(hotset_hit(h, "k2", 2));
	assert_true(hotset_hit(h, "k3", 2));
	assert_false(hotset_hit(h, "k4", 2));
	assert_true(hotset_hit(h, "k1", 2));
	assert_int_equal(hotset_batch_len(h), 3);
	assert_int_equal(weight_of(h, "k1"), 2);
	hotset_free(h);

	h = sampler(1, 1000);
	static char big[HOTSET_KEY_MAX + 1];
	memset(big, 'x', sizeof(big));
	assert_false(hotset_hit(h, big, HOTSET_KEY_MAX + 1));
	assert_true(hotset_hit(h, big, HOTSET_KEY_MAX)); /* the bound itself */
	/* the arena: distinct keys of HOTSET_KEY_MAX bytes until it is full */
	unsigned n = 1;
	for (unsigned i = 0; i < 100; i++) {
		big[0] = (char)('A' + i % 26);
		big[1] = (char)('A' + i / 26);
		n += hotset_hit(h, big, HOTSET_KEY_MAX);
	}
	assert_int_equal(n, HOTSET_ARENA / HOTSET_KEY_MAX);
	assert_int_equal(hotset_batch_len(h), n);
	hotset_free(h);
}

/* A batch is due a second after the last flush, not before, and never
 * while empty; a flush without Redis drops the batch and restarts it. */
static void test_due(void **state)
{
	(void)state;
	struct hotset *h = sampler(1, 10);
	uint64_t t = 5000000;
	hotset_flush(h, NULL, t, 0); /* empty: only starts the second */
	assert_false(hotset_due(h, t + 5000));
	assert_true(hotset_hit(h, "a", 1));
	assert_false(hotset_due(h, t + HOTSET_FLUSH_MS - 1));
	assert_true(hotset_due(h, t + HOTSET_FLUSH_MS));
	struct hotset_counters before, after;
	hotset_counters(&before);
	hotset_flush(h, NULL, t + HOTSET_FLUSH_MS, 0);
	hotset_counters(&after);
	assert_int_equal(after.errors, before.errors + 1);
	assert_int_equal(hotset_batch_len(h), 0);
	assert_true(hotset_hit(h, "a", 1));
	assert_false(hotset_due(h, t + HOTSET_FLUSH_MS + 999));
	assert_true(hotset_due(h, t + 2 * HOTSET_FLUSH_MS));
	hotset_free(h);
}

/* ---- against Redis ------------------------------------------------------ */

struct fixture {
	struct redis_temp t;
	struct redis *r;
	redisContext *sync;
};

static bool is_available(void *ctx)
{
	return redis_available(ctx);
}

static int setup(void **state)
{
	*state = NULL;
	if (!have_exe("redis-server"))
		return 0;
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	redis_temp_start(&f->t, "hot");
	*state = f;
	struct redis_config cfg = {.port = f->t.port, .command_timeout_ms = 2000};
	snprintf(cfg.host, sizeof(cfg.host), "127.0.0.1");
	char err[256] = "";
	f->r = redis_new(f->t.base, &cfg, err, sizeof(err));
	assert_non_null(f->r);
	assert_true(loop_until(f->t.base, is_available, f->r, 3000));
	f->sync = sync_connect(f->t.port);
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	if (!f)
		return 0;
	redis_free(f->r);
	redisFree(f->sync);
	redis_temp_stop(&f->t);
	free(f);
	return 0;
}

static uint64_t flushes(void)
{
	struct hotset_counters c;
	hotset_counters(&c);
	return c.flushes + c.errors;
}

struct wait_flush {
	uint64_t want;
};

static bool flushed(void *ctx)
{
	return flushes() >= ((struct wait_flush *)ctx)->want;
}

/* Sends the batch with the wall clock at `unix_ms` and waits for Redis. */
static void flush_at(struct fixture *f, struct hotset *h, uint64_t unix_ms)
{
	struct wait_flush w = {flushes() + 1};
	hotset_flush(h, f->r, 0, unix_ms);
	assert_true(loop_until(f->t.base, flushed, &w, 3000));
}

static double score(struct fixture *f, const char *member)
{
	redisReply *rep = redisCommand(f->sync, "ZSCORE levee:hot:{svc} %s", member);
	assert_non_null(rep);
	double v = rep->type == REDIS_REPLY_STRING ? atof(rep->str) : -1;
	freeReplyObject(rep);
	return v;
}

static long long card(struct fixture *f)
{
	redisReply *rep = redisCommand(f->sync, "ZCARD levee:hot:{svc}");
	assert_non_null(rep);
	long long v = rep->integer;
	freeReplyObject(rep);
	return v;
}

static void hits(struct hotset *h, const char *key, int n)
{
	for (int i = 0; i < n; i++)
		hotset_hit(h, key, strlen(key));
}

/* Weights add up; a half-life later every score is halved before the new
 * batch adds to it; scores below 0.5 go; the set keeps `size` members. */
static void test_redis_decay_and_bound(void **state)
{
	struct fixture *f = *state;
	if (!f)
		skip();
	struct hotset_cfg cfg = {.sample = 1, .writes = 10, .size = 3, .half_life_ms = HALF};
	struct hotset *h = hotset_new(&cfg, "svc");
	assert_non_null(h);
	uint64_t t0 = 1700000000000ull;
	hits(h, "a", 8);
	hits(h, "b", 2);
	flush_at(f, h, t0);
	assert_true(score(f, "a") == 8 && score(f, "b") == 2);

	hits(h, "a", 1);
	flush_at(f, h, t0 + HALF / 32); /* too soon to decay */
	assert_true(score(f, "a") == 9);

	hits(h, "b", 1);
	flush_at(f, h, t0 + HALF); /* a half-life after the stamp */
	assert_true(score(f, "a") == 4.5);
	assert_true(score(f, "b") == 2); /* 1 + 1 */

	uint64_t sent = flushes();
	hotset_flush(h, f->r, 0, t0 + HALF); /* an empty batch sends nothing */
	assert_int_equal(flushes(), sent);
	hits(h, "c", 1);
	flush_at(f, h, t0 + 3 * HALF); /* two more: a quarter */
	assert_true(score(f, "a") == 4.5 / 4);
	assert_true(score(f, "b") == 0.5); /* kept: only scores below 0.5 go */
	assert_true(score(f, "c") == 1);

	hits(h, "d", 3);
	hits(h, "e", 2);
	flush_at(f, h, t0 + 3 * HALF);
	assert_int_equal(card(f), 3); /* the two lowest, b (0.5) and c (1), trimmed */
	assert_true(score(f, "b") < 0 && score(f, "c") < 0);
	assert_true(score(f, "a") == 4.5 / 4 && score(f, "d") == 3 && score(f, "e") == 2);

	/* two more half-lives: a (1.125) falls to 0.28, below 0.5, and goes */
	hits(h, "e", 1);
	flush_at(f, h, t0 + 5 * HALF);
	assert_true(score(f, "a") < 0 && score(f, "d") == 0.75 && score(f, "e") == 1.5);
	hotset_free(h);
}

/* Redis gone: the batch is lost, counted, and nothing else happens. */
static void test_redis_down(void **state)
{
	struct fixture *f = *state;
	if (!f)
		skip();
	struct hotset_cfg cfg = {.sample = 1, .writes = 10, .size = 3, .half_life_ms = HALF};
	struct hotset *h = hotset_new(&cfg, "svc");
	kill(f->t.pid, SIGKILL);
	waitpid(f->t.pid, NULL, 0);
	f->t.pid = 0;
	hits(h, "a", 1);
	struct hotset_counters before, after;
	hotset_counters(&before);
	uint64_t want = flushes() + 1;
	hotset_flush(h, f->r, 0, 1);
	struct wait_flush w = {want};
	assert_true(loop_until(f->t.base, flushed, &w, 3000));
	hotset_counters(&after);
	assert_int_equal(after.errors, before.errors + 1);
	assert_int_equal(after.flushes, before.flushes);
	assert_int_equal(hotset_batch_len(h), 0);
	hotset_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_off),
	        cmocka_unit_test(test_one_in_n),
	        cmocka_unit_test(test_bounds),
	        cmocka_unit_test(test_due),
	        cmocka_unit_test_setup_teardown(test_redis_decay_and_bound, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_redis_down, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
