/*
 * test_dedup.c - the window of recent event ids of proxy/invalidate/dedup.c.
 *
 * Tables of ids and of scripted sequences pin the behaviour (seen, not seen,
 * eviction in FIFO order, no refresh on a repeat); a long randomized run over
 * several capacities and id universes is checked against a reference model
 * that keeps the ids themselves in an array and scans it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "invalidate/dedup.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void test_bad_capacity(void **state)
{
	(void)state;
	assert_null(dedup_new(0));
	assert_null(dedup_new(DEDUP_MAX_CAPACITY + 1));
	struct dedup *d = dedup_new(1);
	assert_non_null(d);
	assert_int_equal(dedup_count(d), 0);
	dedup_free(d);
	dedup_free(NULL);
}

/* Ids that a careless hash would confuse: empty, embedded NULs, prefixes,
 * lengths around the 256-byte hashing chunk. */
static void test_seen_not_seen(void **state)
{
	(void)state;
	static char big[1024];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)('a' + i % 26);
	const struct {
		const char *p;
		size_t len;
	} ids[] = {
		{"", 0},          {"a", 1},        {"a\0", 2},       {"\0a", 2},     {"\0\0", 2},
		{"ab", 2},        {"ba", 2},       {"abc", 3},       {"ab\0c", 4},   {"A", 1},
		{"0f8fad5b-d9cb-469f-a165-70867728950e", 36},        {big, 255},     {big, 256},
		{big, 257},       {big, 511},      {big, 512},       {big, 513},     {big, 1024},
		{big + 1, 256},   {big + 26, 256}, /* same bytes as big, 256: must be "seen" */
	};
	struct dedup *d = dedup_new(64);
	assert_non_null(d);
	for (size_t i = 0; i + 1 < N(ids); i++)
		if (dedup_check_and_add(d, ids[i].p, ids[i].len))
			fail_msg("id %zu (%zu bytes) reported seen on first sight", i, ids[i].len);
	assert_int_equal(dedup_count(d), N(ids) - 1);
	for (size_t i = 0; i < N(ids); i++)
		if (!dedup_check_and_add(d, ids[i].p, ids[i].len))
			fail_msg("id %zu (%zu bytes) not seen the second time", i, ids[i].len);
	assert_int_equal(dedup_count(d), N(ids) - 1);
	dedup_free(d);
}

/* Scripted sequences: id and the expected answer, one character per id. */
static void test_scripts(void **state)
{
	(void)state;
	const struct {
		uint32_t cap;
		const char *ids;  /* each character is one id */
		const char *want; /* 's' seen, '-' new */
		uint32_t count;   /* dedup_count() at the end */
	} cases[] = {
		{1, "aab", "-s-", 1},
		{1, "aba", "---", 1},                /* b evicts a */
		{2, "abab", "--ss", 2},
		{2, "abca", "----", 2},              /* c evicts a */
		{2, "abcb", "---s", 2},              /* b is newer than a, so it stays */
		{3, "abcdbcda", "----sss-", 3},      /* d evicts a; b, c, d remain */
		{2, "abaca", "--s--", 2},            /* the repeat did not refresh a: c evicts it */
		{4, "abcdeabcde", "----------", 4},  /* a window one too small forgets each in turn */
		{5, "abcdeabcde", "-----sssss", 5},
		{3, "aaaabbbb", "-sss-sss", 2},
	};
	for (size_t c = 0; c < N(cases); c++) {
		struct dedup *d = dedup_new(cases[c].cap);
		assert_non_null(d);
		for (size_t i = 0; cases[c].ids[i] != '\0'; i++) {
			bool seen = dedup_check_and_add(d, &cases[c].ids[i], 1);
			if (seen != (cases[c].want[i] == 's'))
				fail_msg("case %zu (cap %u, \"%s\"): id %zu '%c': got %s", c, cases[c].cap,
				         cases[c].ids, i, cases[c].ids[i], seen ? "seen" : "new");
		}
		assert_int_equal(dedup_count(d), cases[c].count);
		dedup_free(d);
	}
}

static void id_of(uint32_t v, char *buf, size_t *len)
{
	*len = (size_t)snprintf(buf, 32, "evt-%u", v);
}

/* A full window of 100k ids: the newest `cap` are remembered, the one before
 * them is not. Checking a remembered id changes nothing. */
static void test_large_window(void **state)
{
	(void)state;
	const uint32_t cap = 100000, total = 350000;
	struct dedup *d = dedup_new(cap);
	assert_non_null(d);
	char buf[32];
	size_t len;
	for (uint32_t v = 0; v < total; v++) {
		id_of(v, buf, &len);
		if (dedup_check_and_add(d, buf, len))
			fail_msg("new id %u reported seen", v);
	}
	assert_int_equal(dedup_count(d), cap);
	for (uint32_t v = total - cap; v < total; v++) {
		id_of(v, buf, &len);
		if (!dedup_check_and_add(d, buf, len))
			fail_msg("id %u is in the window but was not seen", v);
	}
	id_of(total - cap - 1, buf, &len);
	assert_false(dedup_check_and_add(d, buf, len));
	/* that re-added it and evicted the oldest, total - cap */
	id_of(total - cap, buf, &len);
	assert_false(dedup_check_and_add(d, buf, len));
	assert_int_equal(dedup_count(d), cap);
	dedup_free(d);
}

/* ---- randomized run against a reference model ----------------------------- */

static uint64_t rng_state;

static uint64_t rng(void)
{
	/* xorshift64*: deterministic, so a failure reproduces */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1Dull;
}

/* The model: the last `cap` distinct ids in a FIFO array, scanned. */
struct model {
	uint32_t cap, n, head;
	uint32_t *ids;
};

static bool model_check_and_add(struct model *m, uint32_t id)
{
	for (uint32_t i = 0; i < m->n; i++)
		if (m->ids[(m->head + i) % m->cap] == id)
			return true;
	if (m->n == m->cap) {
		m->ids[m->head] = id;
		m->head = (m->head + 1) % m->cap;
	} else {
		m->ids[(m->head + m->n++) % m->cap] = id;
	}
	return false;
}

static void test_random_vs_model(void **state)
{
	(void)state;
	const struct {
		uint32_t cap, universe, ops;
	} cases[] = {
		{1, 2, 20000},     {2, 3, 20000},     {3, 3, 20000},       {3, 8, 20000},
		{7, 10, 50000},    {8, 16, 50000},    {64, 65, 100000},    {64, 200, 100000},
		{100, 101, 100000}, {1000, 1500, 200000}, {1000, 5000, 200000}, {4096, 8192, 100000},
	};
	for (size_t c = 0; c < N(cases); c++) {
		rng_state = 0x9E3779B97F4A7C15ull + c;
		struct dedup *d = dedup_new(cases[c].cap);
		struct model m = {cases[c].cap, 0, 0, calloc(cases[c].cap, sizeof(uint32_t))};
		assert_non_null(d);
		assert_non_null(m.ids);
		uint64_t seen = 0;
		for (uint32_t i = 0; i < cases[c].ops; i++) {
			/* skewed: half the draws from a small hot set, so both answers
			 * are common and clusters form and dissolve in the table */
			uint32_t u = cases[c].universe;
			uint32_t id = (uint32_t)(rng() % ((rng() & 1) ? u : (u / 4 + 1)));
			char buf[32];
			size_t len;
			id_of(id, buf, &len);
			bool want = model_check_and_add(&m, id);
			bool got = dedup_check_and_add(d, buf, len);
			if (got != want)
				fail_msg("case %zu (cap %u, universe %u): op %u, id %u: got %d, want %d", c,
				         cases[c].cap, u, i, id, got, want);
			if (dedup_count(d) != m.n)
				fail_msg("case %zu: op %u: count %u, want %u", c, i, dedup_count(d), m.n);
			seen += got;
		}
		/* the run must have exercised both answers */
		assert_true(seen > 0 && seen < cases[c].ops);
		free(m.ids);
		dedup_free(d);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_capacity),  cmocka_unit_test(test_seen_not_seen),
		cmocka_unit_test(test_scripts),       cmocka_unit_test(test_large_window),
		cmocka_unit_test(test_random_vs_model),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
