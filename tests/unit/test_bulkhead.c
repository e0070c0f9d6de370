/*
 * test_bulkhead.c - the process-wide bulkhead of proxy/resilience/bulkhead.c:
 * slots, the queue and its bound, fifo and adaptive_lifo hand-offs (both
 * sides of the half-timeout boundary), cancelling, grants that cannot be
 * told, resizing and the registry, shutdown, the counters and the queue-wait
 * histogram as Prometheus and /status show them, and the cap holding with
 * many threads.
 *
 * Time is what the tests pass as `now_us`; nothing sleeps. The registry is
 * process-global: each test uses its own name and puts every bulkhead it
 * got, and the shutdown test, which closes every live bulkhead, runs last.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "invalidate/json.h"
#include "resilience/bulkhead.h"

/* ---- helpers ------------------------------------------------------------- */

struct tw {
	struct bh_waiter w;
	int id;
	int grants;  /* times `granted` ran */
	bool refuse; /* `granted` answers false: its loop has stopped */
};

static int order[64]; /* ids, in the order `granted` ran */
static int norder;

static bool on_grant(struct bh_waiter *wt)
{
	struct tw *t = (struct tw *)(void *)((char *)wt - offsetof(struct tw, w));
	t->grants++;
	if (norder < 64)
		order[norder++] = t->id;
	return !t->refuse;
}

static void tw_init(struct tw *t, size_t n)
{
	memset(t, 0, n * sizeof(*t));
	for (size_t i = 0; i < n; i++) {
		t[i].id = (int)i;
		t[i].w.granted = on_grant;
	}
	norder = 0;
}

static struct lv_bulkhead cfg_of(const char *name, uint64_t max_concurrent, uint64_t max_queue,
                                 uint64_t queue_timeout_ms, int queue_order)
{
	struct lv_bulkhead c = {
	    .max_concurrent = max_concurrent,
	    .max_queue = max_queue,
	    .queue_timeout_ms = queue_timeout_ms,
	    .queue_order = queue_order,
	};
	snprintf(c.name, sizeof(c.name), "%s", name);
	return c;
}

static struct bulkhead *bh_new(const char *name, uint64_t max_concurrent, uint64_t max_queue,
                               uint64_t queue_timeout_ms, int queue_order)
{
	struct lv_bulkhead c = cfg_of(name, max_concurrent, max_queue, queue_timeout_ms, queue_order);
	struct bulkhead *b = bulkhead_get(&c);
	assert_non_null(b);
	return b;
}

static struct bulkhead_stats stats_of(struct bulkhead *b)
{
	struct bulkhead_stats s;
	bulkhead_stats(b, &s);
	return s;
}

/* `granted` ran for exactly these ids, in this order. */
static void expect_order(const int *ids, int n)
{
	assert_int_equal(norder, n);
	for (int i = 0; i < n; i++)
		assert_int_equal(order[i], ids[i]);
}

/* Slots in use and requests waiting, as a scrape sees them. */
static void expect_load(struct bulkhead *b, uint64_t active, uint64_t queued)
{
	struct bulkhead_stats s = stats_of(b);
	assert_int_equal(s.active, active);
	assert_int_equal(s.queued, queued);
}

/* Gives back the last `held` slots, which nobody waits for, and the reference. */
static void release_and_put(struct bulkhead *b, int held, uint64_t now_us)
{
	int before = norder;
	for (int i = 0; i < held; i++)
		bulkhead_release(b, now_us);
	assert_int_equal(norder, before); /* to the pool, not to a waiter */
	expect_load(b, 0, 0);
	bulkhead_put(b);
}

/* A released slot went to waiter `t`: it takes it. */
static void expect_granted(struct bulkhead *b, struct tw *t)
{
	assert_int_equal(t->grants, 1);
	assert_int_equal(t->w.state, BH_GRANTED);
	bulkhead_take(b, &t->w);
	assert_int_equal(t->w.state, BH_HOLDING);
}

/* What `render` writes, NUL-terminated; the caller frees it. */
static char *capture(void (*render)(FILE *f), size_t *len)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);
	assert_non_null(f);
	render(f);
	assert_int_equal(fclose(f), 0);
	if (len)
		*len = n;
	return buf;
}

/* Each of `lines` is in the Prometheus output. */
static void expect_prometheus(const char *const *lines, size_t n)
{
	char *prom = capture(bulkhead_render_prometheus, NULL);
	for (size_t i = 0; i < n; i++)
		if (!strstr(prom, lines[i]))
			fail_msg("missing from the Prometheus output: %s\n%s", lines[i], prom);
	free(prom);
}

/* ---- slots and the queue ------------------------------------------------- */

static void test_acquire_queue_full(void **state)
{
	(void)state;
	struct bulkhead *b = bh_new("acq", 2, 2, 100, LV_QUEUE_FIFO);
	static struct tw t[5];
	tw_init(t, 5);
	assert_int_equal(bulkhead_acquire(b, &t[0].w, 0), BH_ACQUIRED);
	assert_int_equal(bulkhead_acquire(b, &t[1].w, 0), BH_ACQUIRED);
	assert_int_equal(t[0].w.state, BH_HOLDING);
	assert_int_equal(t[1].w.state, BH_HOLDING);
	assert_int_equal(bulkhead_acquire(b, &t[2].w, 10), BH_WAITING);
	assert_int_equal(bulkhead_acquire(b, &t[3].w, 20), BH_WAITING);
	assert_int_equal(t[2].w.state, BH_QUEUED);
	assert_int_equal(t[2].w.since_us, 10);
	assert_int_equal(bulkhead_acquire(b, &t[4].w, 30), BH_FULL);
	assert_int_equal(t[4].w.state, BH_NONE);

	struct bulkhead_stats s = stats_of(b);
	assert_int_equal(s.active, 2);
	assert_int_equal(s.queued, 2);
	assert_int_equal(s.max_concurrent, 2);
	assert_int_equal(s.max_queue, 2);
	assert_int_equal(s.acquired, 2);
	assert_int_equal(s.queued_total, 2);
	assert_int_equal(s.rejected_full, 1);
	assert_int_equal(s.rejected_timeout, 0);
	assert_int_equal(norder, 0); /* nobody was granted anything */

	assert_true(bulkhead_cancel(b, &t[2].w, false, 40));
	assert_true(bulkhead_cancel(b, &t[3].w, false, 40));
	release_and_put(b, 2, 50);
	assert_int_equal(norder, 0);
}

static void test_no_queue(void **state)
{
	(void)state;
	struct bulkhead *b = bh_new("noq", 1, 0, 100, LV_QUEUE_FIFO);
	static struct tw t[2];
	tw_init(t, 2);
	assert_int_equal(bulkhead_acquire(b, &t[0].w, 0), BH_ACQUIRED);
	assert_int_equal(bulkhead_acquire(b, &t[1].w, 0), BH_FULL); /* max_queue 0: no waiting */
	struct bulkhead_stats s = stats_of(b);
	assert_int_equal(s.queued, 0);
	assert_int_equal(s.queued_total, 0);
	assert_int_equal(s.rejected_full, 1);
	bulkhead_release(b, 0);
	assert_int_equal(bulkhead_acquire(b, &t[1].w, 0), BH_ACQUIRED); /* the slot is back */
	release_and_put(b, 1, 0);
}

static void test_release_hands_off(void **state)
{
	(void)state;
	struct bulkhead *b = bh_new("handoff", 1, 2, 100, LV_QUEUE_FIFO);
	static struct tw t[2];
	tw_init(t, 2);
	assert_int_equal(bulkhead_acquire(b, &t[0].w, 0), BH_ACQUIRED);
	assert_int_equal(bulkhead_acquire(b, &t[1].w, 0), BH_WAITING);
	bulkhead_release(b, 5);
	/* the slot went to the waiter: the count did not drop */
	expect_granted(b, &t[1]);
	expect_load(b, 1, 0);
	assert_int_equal(stats_of(b).acquired, 2);
	/* nobody waits: the slot goes back to the pool */
	bulkhead_release(b, 6);
	expect_load(b, 0, 0);
	assert_int_equal(stats_of(b).acquired, 2);
	assert_int_equal(t[1].grants, 1);
	bulkhead_put(b);
}

/* ---- ordering ------------------------------------------------------------ */

static void test_fifo_order(void **state)
{
	(void)state;
	struct bulkhead *b = bh_new("fifo", 1, 3, 100, LV_QUEUE_FIFO);
	static struct tw t[4];
	tw_init(t, 4);
	assert_int_equal(bulkhead_acquire(b, &t[0].w, 0), BH_ACQUIRED);
	for (int i = 1; i <= 3; i++)
		assert_int_equal(bulkhead_acquire(b, &t[i].w, (uint64_t)i * 10), BH_WAITING);
	/* far past half of queue_timeout: fifo still gives the oldest */
	for (int i = 1; i <= 3; i++) {
		bulkhead_release(b, 10000000);
		expect_granted(b, &t[i]);
	}
	expect_order((const int[]){1, 2, 3}, 3);
	release_and_put(b, 1, 10000000);
}

static void test_adaptive_lifo_boundary(void **state)
{
	(void)state;
	/* queue_timeout 100 ms: the boundary is a wait of 50 000 us */
	struct bulkhead *b = bh_new("alifo", 1, 3, 100, LV_QUEUE_ADAPTIVE_LIFO);
	static struct tw t[4];
	tw_init(t, 4);
	assert_int_equal(bulkhead_acquire(b, &t[0].w, 0), BH_ACQUIRED);
	assert_int_equal(bulkhead_acquire(b, &t[1].w, 1000), BH_WAITING);
	assert_int_equal(bulkhead_acquire(b, &t[2].w, 2000), BH_WAITING);
	assert_int_equal(bulkhead_acquire(b, &t[3].w, 3000), BH_WAITING);
	/* the oldest has waited 49 999 us, just under half: the oldest */
	bulkhead_release(b, 1000 + 49999);
	expect_granted(b, &t[1]);
	/* the oldest (t[2]) has waited exactly half: the newest */
	bulkhead_release(b, 2000 + 50000);
	expect_granted(b, &t[3]);
	/* one left: it is both */
	bulkhead_release(b, 2000 + 50000);
	expect_granted(b, &t[2]);
	expect_order((const int[]){1, 3, 2}, 3);
	release_and_put(b, 1, 60000);
}

/* The releasing thread read its clock before taking the lock, and a waiter
 * queued in between with a later time: the oldest has waited no time at all,
 * so adaptive_lifo must still give the oldest. */
static void test_adaptive_lifo_clock_behind(void **state)
{
	(void)state;
	struct bulkhead *b = bh_new("alifo-behind", 1, 2, 100, LV_QUEUE_ADAPTIVE_LIFO);
	static struct tw t[3];
	tw_init(t, 3);
	assert_int_equal(bulkhead_acquire(b, &t[0].w, 5000), BH_ACQUIRED);
	assert_int_equal(bulkhead_acquire(b, &t[1].w, 5000), BH_WAITING);
	assert_int_equal(bulkhead_acquire(b, &t[2].w, 5001), BH_WAITING);
	bulkhead_release(b, 4999);
	expect_granted(b, &t[1]);
	assert_int_equal(t[2].w.state, BH_QUEUED);
	struct bulkhead_stats s = stats_of(b);
	assert_int_equal(s.wait_hist[0], 1); /* a wait "before" it began counts as none */
	assert_true(s.wait_sum_s == 0.0);
	bulkhead_release(b, 6000);
	expect_granted(b, &t[2]);
	release_and_put(b, 1, 6000);
}

/* ---- cancelling ---------------------------------------------------------- */

static void test_cancel(void **state)
{
	(void)state;
	struct bulkhead *b = bh_new("cancel", 1, 3, 100, LV_QUEUE_FIFO);
	static struct tw t[5];
	tw_init(t, 5);
	assert_true(bulkhead_cancel(b, &t[4].w, false, 0)); /* never queued: nothing to take off */
	assert_int_equal(t[4].w.state, BH_NONE);
	assert_int_equal(bulkhead_acquire(b, &t[0].w, 0), BH_ACQUIRED);
	for (int i = 1; i <= 3; i++)
		assert_int_equal(bulkhead_acquire(b, &t[i].w, 0), BH_WAITING);

	/* a timeout */
	assert_true(bulkhead_cancel(b, &t[1].w, true, 1000));
	assert_int_equal(t[1].w.state, BH_CANCELLED);
	struct bulkhead_stats s = stats_of(b);
	assert_int_equal(s.queued, 2);
	assert_int_equal(s.rejected_timeout, 1);
	/* the client left: not a timeout */
	assert_true(bulkhead_cancel(b, &t[2].w, false, 1000));
	assert_int_equal(t[2].w.state, BH_CANCELLED);
	s = stats_of(b);
	assert_int_equal(s.queued, 1);
	assert_int_equal(s.rejected_timeout, 1);
	/* once more: still off, counted once */
	assert_true(bulkhead_cancel(b, &t[2].w, true, 2000));
	assert_int_equal(t[2].w.state, BH_CANCELLED);
	s = stats_of(b);
	assert_int_equal(s.rejected_timeout, 1);
	assert_int_equal(s.wait_count, 2);

	/* the cancelled are passed over */
	bulkhead_release(b, 3000);
	assert_int_equal(t[1].grants, 0);
	assert_int_equal(t[2].grants, 0);
	assert_int_equal(t[3].grants, 1);
	assert_int_equal(t[3].w.state, BH_GRANTED);
	/* granted before the cancel got the lock: false, the grant is on its way */
	assert_false(bulkhead_cancel(b, &t[3].w, true, 3000));
	assert_int_equal(t[3].w.state, BH_GRANTED);
	assert_int_equal(stats_of(b).rejected_timeout, 1);
	bulkhead_take(b, &t[3].w);
	assert_int_equal(t[3].w.state, BH_HOLDING);
	assert_true(bulkhead_cancel(b, &t[3].w, false, 3000)); /* holding: no grant on its way */
	assert_int_equal(t[3].w.state, BH_HOLDING);
	bulkhead_take(b, &t[3].w); /* taking again changes nothing */
	assert_int_equal(t[3].w.state, BH_HOLDING);

	expect_load(b, 1, 0);
	release_and_put(b, 1, 4000);
	assert_int_equal(t[1].grants + t[2].grants, 0);
}

/* ---- grants that cannot be told ------------------------------------------ */

static void test_refused_grant(void **state)
{
	(void)state;
	struct bulkhead *b = bh_new("refused", 1, 3, 100, LV_QUEUE_FIFO);
	static struct tw t[4];
	tw_init(t, 4);
	t[1].refuse = true;
	t[3].refuse = true;
	assert_int_equal(bulkhead_acquire(b, &t[0].w, 0), BH_ACQUIRED);
	assert_int_equal(bulkhead_acquire(b, &t[1].w, 0), BH_WAITING);
	assert_int_equal(bulkhead_acquire(b, &t[2].w, 0), BH_WAITING);
	/* t[1]'s loop stopped: the slot goes on to t[2] */
	bulkhead_release(b, 10);
	assert_int_equal(t[1].grants, 1);
	assert_int_equal(t[1].w.state, BH_CANCELLED);
	expect_granted(b, &t[2]);
	expect_load(b, 1, 0);
	assert_int_equal(stats_of(b).acquired, 2); /* t[0] and t[2]; the refused grant took nothing */

	/* refused with nobody behind it: the slot goes back to the pool */
	assert_int_equal(bulkhead_acquire(b, &t[3].w, 20), BH_WAITING);
	bulkhead_release(b, 30);
	assert_int_equal(t[3].grants, 1);
	assert_int_equal(t[3].w.state, BH_CANCELLED);
	expect_load(b, 0, 0);
	assert_int_equal(stats_of(b).acquired, 2);
	assert_int_equal(bulkhead_acquire(b, &t[0].w, 40), BH_ACQUIRED);
	release_and_put(b, 1, 50);
}

/* ---- resizing and the registry ------------------------------------------- */

/* A tier's scale: normal and optional requests get the scaled limit, a
 * critical one the full limit, ahead of the others waiting; the queue keeps
 * its length; back at 100% the waiters get the slots. */
static void test_scale(void **state)
{
	(void)state;
	struct lv_bulkhead c = cfg_of("scale", 4, 2, 100, LV_QUEUE_FIFO);
	struct bulkhead *b = bulkhead_get(&c);
	assert_non_null(b);
	static struct tw t[8];
	tw_init(t, 8);
	bulkhead_scale(b, 50.0);
	assert_int_equal(stats_of(b).max_concurrent, 2);
	assert_int_equal(stats_of(b).max_queue, 2);
	assert_true(stats_of(b).scale == 50.0);
	assert_int_equal(bulkhead_acquire(b, &t[0].w, 0), BH_ACQUIRED);
	assert_int_equal(bulkhead_acquire(b, &t[1].w, 0), BH_ACQUIRED);
	assert_int_equal(bulkhead_acquire(b, &t[2].w, 0), BH_WAITING); /* held back by the scale */
	assert_int_equal(bulkhead_acquire(b, &t[3].w, 0), BH_WAITING);
	assert_int_equal(bulkhead_acquire(b, &t[4].w, 0), BH_FULL);
	/* critical: up to the full limit, past the others waiting; then in a
	 * queue of its own, served first */
	t[5].w.critical = t[6].w.critical = t[7].w.critical = true;
	assert_int_equal(bulkhead_acquire(b, &t[5].w, 0), BH_ACQUIRED);
	assert_int_equal(bulkhead_acquire(b, &t[6].w, 0), BH_ACQUIRED);
	assert_int_equal(bulkhead_acquire(b, &t[7].w, 0), BH_WAITING);
	expect_load(b, 4, 3);
	bulkhead_release(b, 10);
	expect_granted(b, &t[7]); /* ahead of t[2], queued before it */
	expect_load(b, 4, 2);
	/* releases above the scaled limit grant nothing */
	bulkhead_release(b, 10);
	bulkhead_release(b, 10);
	expect_load(b, 2, 2);
	assert_int_equal(t[2].grants, 0);
	/* the tier ends: the waiters get the freed slots at once */
	bulkhead_scale(b, 100.0);
	expect_granted(b, &t[2]);
	expect_granted(b, &t[3]);
	expect_load(b, 4, 0);
	for (int i = 0; i < 4; i++)
		bulkhead_release(b, 20);
	expect_load(b, 0, 0);
	/* critical ones have a queue as long as the others' of their own */
	tw_init(t, 8);
	t[7].w.critical = true;
	for (int i = 0; i < 4; i++)
		assert_int_equal(bulkhead_acquire(b, &t[i].w, 30), BH_ACQUIRED);
	assert_int_equal(bulkhead_acquire(b, &t[4].w, 30), BH_WAITING);
	assert_int_equal(bulkhead_acquire(b, &t[5].w, 30), BH_WAITING);
	assert_int_equal(bulkhead_acquire(b, &t[6].w, 30), BH_FULL);
	assert_int_equal(bulkhead_acquire(b, &t[7].w, 30), BH_WAITING);
	expect_load(b, 4, 3);
	assert_true(bulkhead_cancel(b, &t[7].w, false, 40));
	assert_true(bulkhead_cancel(b, &t[4].w, false, 40));
	assert_true(bulkhead_cancel(b, &t[5].w, false, 40));
	for (int i = 0; i < 4; i++)
		bulkhead_release(b, 50);
	expect_load(b, 0, 0);
	/* 1% of 4: one slot, never none */
	bulkhead_scale(b, 1.0);
	assert_int_equal(stats_of(b).max_concurrent, 1);
	bulkhead_scale(b, 100.0);
	bulkhead_put(b);
}

static void test_resize(void **state)
{
	(void)state;
	struct lv_bulkhead c = cfg_of("resize", 1, 4, 100, LV_QUEUE_FIFO);
	struct bulkhead *b = bulkhead_get(&c);
	assert_non_null(b);
	static struct tw t[6];
	tw_init(t, 6);
	t[4].refuse = true;
	assert_int_equal(bulkhead_acquire(b, &t[0].w, 0), BH_ACQUIRED);
	for (int i = 1; i <= 3; i++)
		assert_int_equal(bulkhead_acquire(b, &t[i].w, 0), BH_WAITING);

	/* a reload builds a runtime naming it with other limits: taking the
	 * reference changes nothing (that reload may still be refused) */
	c.max_concurrent = 3;
	struct bulkhead *b2 = bulkhead_get(&c);
	assert_ptr_equal(b2, b);
	assert_int_equal(stats_of(b).max_concurrent, 1);
	assert_int_equal(norder, 0);
	expect_load(b, 1, 3);

	/* applied: grown to 3, two waiters get the new slots at once */
	bulkhead_apply(b, &c, NULL, 0);
	expect_granted(b, &t[1]);
	expect_granted(b, &t[2]);
	assert_int_equal(t[3].w.state, BH_QUEUED);
	expect_load(b, 3, 1);
	assert_int_equal(stats_of(b).max_concurrent, 3);

	/* shrunk to 1: nothing is taken back, releases above the cap grant nothing */
	c.max_concurrent = 1;
	struct bulkhead *b3 = bulkhead_get(&c);
	assert_ptr_equal(b3, b);
	bulkhead_apply(b, &c, NULL, 0);
	assert_int_equal(stats_of(b).active, 3);
	bulkhead_release(b, 10);
	expect_load(b, 2, 1);
	bulkhead_release(b, 10);
	expect_load(b, 1, 1);
	assert_int_equal(t[3].grants, 0);
	/* back at the cap: the next release hands off again */
	bulkhead_release(b, 10);
	expect_granted(b, &t[3]);
	expect_load(b, 1, 0);

	/* grown while the first new slot's waiter cannot be told: it goes on */
	assert_int_equal(bulkhead_acquire(b, &t[4].w, 20), BH_WAITING);
	assert_int_equal(bulkhead_acquire(b, &t[5].w, 20), BH_WAITING);
	c.max_concurrent = 2;
	struct bulkhead *b4 = bulkhead_get(&c);
	assert_ptr_equal(b4, b);
	bulkhead_apply(b, &c, NULL, 0);
	assert_int_equal(t[4].w.state, BH_CANCELLED);
	expect_granted(b, &t[5]);
	expect_load(b, 2, 0);
	bulkhead_release(b, 30);
	bulkhead_release(b, 30);
	expect_load(b, 0, 0);

	/* another name is another bulkhead */
	struct lv_bulkhead oc = cfg_of("resize-other", 1, 0, 100, LV_QUEUE_FIFO);
	struct bulkhead *o = bulkhead_get(&oc);
	assert_non_null(o);
	assert_true(o != b);
	assert_int_equal(bulkhead_acquire(o, &t[0].w, 0), BH_ACQUIRED);
	assert_int_equal(stats_of(b).active, 0);
	release_and_put(o, 1, 0);

	/* four references: the object lives until the last put */
	bulkhead_put(b4);
	bulkhead_put(b3);
	bulkhead_put(b2);
	assert_int_equal(stats_of(b).max_concurrent, 2); /* still there (ASan would say) */
	char *prom = capture(bulkhead_render_prometheus, NULL);
	assert_non_null(strstr(prom, "levee_bulkhead_active{bulkhead=\"resize\"} 0\n"));
	assert_null(strstr(prom, "bulkhead=\"resize-other\""));
	free(prom);
	bulkhead_put(b);
	prom = capture(bulkhead_render_prometheus, NULL);
	assert_null(strstr(prom, "bulkhead=\"resize\""));
	free(prom);
	bulkhead_put(NULL); /* allowed */

	/* the name again, after the last put: a new bulkhead, with the limits
	 * it is first named with */
	c.max_concurrent = 7;
	b = bulkhead_get(&c);
	assert_non_null(b);
	assert_int_equal(stats_of(b).acquired, 0);
	assert_int_equal(stats_of(b).max_concurrent, 7);
	release_and_put(b, 0, 0);
}

/* max_concurrent = auto: released slots' samples move the limit; one that
 * rises grants waiters at once; a reload keeps the measurements while the
 * bulkhead stays adaptive, and a switch from a fixed limit starts from it;
 * the limit and its inputs show in /metrics and /status. */
static void test_adaptive_limit(void **state)
{
	(void)state;
	struct lv_bulkhead c = cfg_of("auto", 0, 16, 100, LV_QUEUE_FIFO);
	c.adaptive_min = 2;
	c.adaptive_max = 10;
	c.adaptive_smoothing = 100;
	c.adaptive_window_ms = 1;
	struct bulkhead *b = bulkhead_get(&c);
	assert_non_null(b);
	assert_int_equal(stats_of(b).max_concurrent, 2); /* a new one starts at min */
	static struct tw t[12];
	tw_init(t, 12);
	for (int i = 0; i < 2; i++)
		assert_int_equal(bulkhead_acquire(b, &t[i].w, 0), BH_ACQUIRED);
	for (int i = 2; i < 12; i++)
		assert_int_equal(bulkhead_acquire(b, &t[i].w, 0), BH_WAITING);
	/* 7 samples: no window yet, each slot passes to the next waiter */
	for (int i = 0; i < 7; i++) {
		bulkhead_release_sample(b, 500, 1000);
		expect_granted(b, &t[2 + i]);
	}
	expect_load(b, 2, 3);
	/* not a sample: it counts nowhere */
	bulkhead_release(b, 600);
	expect_granted(b, &t[9]);
	assert_int_equal(stats_of(b).samples, 7);
	/* the 8th, after the window: 2 x 1 + sqrt(2) = 3.41, so 3 slots, and the
	 * new one goes to a waiter at once, with the released one */
	bulkhead_release_sample(b, 2000, 1000);
	expect_granted(b, &t[10]);
	expect_granted(b, &t[11]);
	struct bulkhead_stats s = stats_of(b);
	expect_load(b, 3, 0);
	assert_true(s.adaptive);
	assert_int_equal(s.max_concurrent, 3);
	assert_true(s.limit > 3.41 && s.limit < 3.42);
	assert_true(s.long_rtt_s > 0.000999 && s.long_rtt_s < 0.001001);
	assert_true(s.gradient == 1.0);
	assert_int_equal(s.samples, 8);
	assert_int_equal(s.windows, 1);

	static const char *const lines[] = {
	    "\nlevee_bulkhead_max_concurrent{bulkhead=\"auto\"} 3\n",
	    "\nlevee_bulkhead_adaptive_limit{bulkhead=\"auto\"} 3.41421\n",
	    "\nlevee_bulkhead_adaptive_gradient{bulkhead=\"auto\"} 1\n",
	    "\nlevee_bulkhead_rtt_seconds{bulkhead=\"auto\",window=\"long\"} 0.001000\n",
	    "\nlevee_bulkhead_rtt_seconds{bulkhead=\"auto\",window=\"short\"} 0.001000\n",
	    "\nlevee_bulkhead_adaptive_samples_total{bulkhead=\"auto\"} 8\n",
	};
	expect_prometheus(lines, sizeof(lines) / sizeof(lines[0]));
	char *js = capture(bulkhead_status_json, NULL);
	if (!strstr(js, "\"max_concurrent\":3,") ||
	    !strstr(js, ",\"adaptive\":{\"limit\":3.414,\"min\":2,\"max\":10,\"long_rtt_ms\":1.000,"
	                "\"short_rtt_ms\":1.000,\"gradient\":1.000,\"samples\":8,\"windows\":1,\"probing\":false}}"))
		fail_msg("no adaptive object in %s", js);
	free(js);

	/* a reload with other bounds keeps the measurements, clamps the limit */
	c.adaptive_min = 4;
	struct bulkhead *b2 = bulkhead_get(&c);
	assert_ptr_equal(b2, b);
	assert_int_equal(stats_of(b).max_concurrent, 3); /* not yet applied */
	bulkhead_apply(b, &c, NULL, 0);
	s = stats_of(b);
	assert_int_equal(s.max_concurrent, 4);
	assert_int_equal(s.samples, 8);
	bulkhead_put(b2);

	/* fixed, then auto again: it starts over from the fixed limit */
	c.max_concurrent = 7;
	bulkhead_apply(b, &c, NULL, 0);
	s = stats_of(b);
	assert_false(s.adaptive);
	assert_int_equal(s.max_concurrent, 7);
	c.max_concurrent = 0;
	bulkhead_apply(b, &c, NULL, 0);
	s = stats_of(b);
	assert_true(s.adaptive);
	assert_int_equal(s.max_concurrent, 7);
	assert_int_equal(s.samples, 0);
	release_and_put(b, 3, 3000);
}

/* ---- counters and rendering ---------------------------------------------- */

static void test_stats_and_rendering(void **state)
{
	(void)state;
	struct bulkhead *b = bh_new("st", 2, 1, 100, LV_QUEUE_FIFO);
	static struct tw t[8];
	tw_init(t, 8);
	assert_int_equal(bulkhead_acquire(b, &t[0].w, 0), BH_ACQUIRED);
	assert_int_equal(bulkhead_acquire(b, &t[1].w, 0), BH_ACQUIRED);
	/* waits on either side of bounds: 1 ms, 2.5 ms, and past the last */
	static const uint64_t waits_us[] = {1000, 1001, 2500, 2501, 3000000};
	for (int i = 0; i < 5; i++) {
		assert_int_equal(bulkhead_acquire(b, &t[2 + i].w, 100), BH_WAITING);
		bulkhead_release(b, 100 + waits_us[i]);
		expect_granted(b, &t[2 + i]);
	}
	/* one more queues, the next finds the queue full, the one queued times out */
	assert_int_equal(bulkhead_acquire(b, &t[7].w, 200), BH_WAITING);
	assert_int_equal(bulkhead_acquire(b, &t[0].w, 200), BH_FULL);
	assert_true(bulkhead_cancel(b, &t[7].w, true, 200)); /* a wait of 0 */
	bulkhead_note_drain(b, BH_DRAIN_BEGIN);
	bulkhead_note_drain(b, BH_DRAIN_BEGIN);
	bulkhead_note_drain(b, BH_DRAIN_COMPLETE);

	struct bulkhead_stats s = stats_of(b);
	assert_int_equal(s.active, 2);
	assert_int_equal(s.queued, 0);
	assert_int_equal(s.acquired, 7);
	assert_int_equal(s.queued_total, 6);
	assert_int_equal(s.rejected_full, 1);
	assert_int_equal(s.rejected_timeout, 1);
	assert_int_equal(s.rejected_closed, 0);
	assert_int_equal(s.draining, 1);
	assert_int_equal(s.drained_complete, 1);
	assert_int_equal(s.wait_count, 6);
	static const uint64_t hist[BH_WAIT_BUCKETS] = {2, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1};
	for (int i = 0; i < BH_WAIT_BUCKETS; i++)
		assert_int_equal(s.wait_hist[i], hist[i]);
	assert_true(s.wait_sum_s > 3.007001 && s.wait_sum_s < 3.007003);

	static const char *const lines[] = {
	    "# TYPE levee_bulkhead_active gauge\n",
	    "\nlevee_bulkhead_active{bulkhead=\"st\"} 2\n",
	    "\nlevee_bulkhead_queued{bulkhead=\"st\"} 0\n",
	    "\nlevee_bulkhead_draining{bulkhead=\"st\"} 1\n",
	    "\nlevee_bulkhead_max_concurrent{bulkhead=\"st\"} 2\n",
	    "\nlevee_bulkhead_max_queue{bulkhead=\"st\"} 1\n",
	    "# TYPE levee_bulkhead_acquired_total counter\n",
	    "\nlevee_bulkhead_acquired_total{bulkhead=\"st\"} 7\n",
	    "\nlevee_bulkhead_rejected_total{bulkhead=\"st\",reason=\"full\"} 1\n",
	    "\nlevee_bulkhead_rejected_total{bulkhead=\"st\",reason=\"timeout\"} 1\n",
	    "\nlevee_bulkhead_rejected_total{bulkhead=\"st\",reason=\"closed\"} 0\n",
	    "\nlevee_bulkhead_drained_total{bulkhead=\"st\",result=\"complete\"} 1\n",
	    "\nlevee_bulkhead_drained_total{bulkhead=\"st\",result=\"abandoned\"} 0\n",
	    "# TYPE levee_bulkhead_queue_wait_seconds histogram\n",
	    "\nlevee_bulkhead_queue_wait_seconds_bucket{bulkhead=\"st\",le=\"0.001\"} 2\n",
	    "\nlevee_bulkhead_queue_wait_seconds_bucket{bulkhead=\"st\",le=\"0.0025\"} 4\n",
	    "\nlevee_bulkhead_queue_wait_seconds_bucket{bulkhead=\"st\",le=\"0.005\"} 5\n",
	    "\nlevee_bulkhead_queue_wait_seconds_bucket{bulkhead=\"st\",le=\"2.5\"} 5\n",
	    "\nlevee_bulkhead_queue_wait_seconds_bucket{bulkhead=\"st\",le=\"+Inf\"} 6\n",
	    "\nlevee_bulkhead_queue_wait_seconds_sum{bulkhead=\"st\"} 3.007002\n",
	    "\nlevee_bulkhead_queue_wait_seconds_count{bulkhead=\"st\"} 6\n",
	};
	expect_prometheus(lines, sizeof(lines) / sizeof(lines[0]));

	/* /status: one well-formed array, with this bulkhead's object in it */
	size_t len;
	char *js = capture(bulkhead_status_json, &len);
	struct json_reader r;
	json_init(&r, js, len, 0);
	bool found = false;
	while (json_array_next(&r)) {
		struct json_str k;
		char name[LV_NAME_MAX] = "", iso[32] = "";
		int64_t v[12] = {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1};
		static const char *const keys[12] = {"active",        "queued",        "draining",  "max_concurrent",
		                                     "max_queue",     "acquired",      "rejected_full",
		                                     "rejected_timeout", "abandoned",  "threads", "handoffs",
		                                     "scale_pct"};
		while (json_object_next(&r, &k)) {
			size_t n;
			if (json_str_eq(&k, "name")) {
				assert_int_equal(json_read_string(&r, name, sizeof(name), &n, NULL), JSON_OK);
				continue;
			}
			if (json_str_eq(&k, "isolation")) {
				assert_int_equal(json_read_string(&r, iso, sizeof(iso), &n, NULL), JSON_OK);
				continue;
			}
			size_t j = 0;
			while (j < 12 && !json_str_eq(&k, keys[j]))
				j++;
			if (j == 12)
				fail_msg("unexpected field %.*s in %s", (int)k.len, k.p, js);
			assert_int_equal(json_read_int64(&r, &v[j]), JSON_OK);
		}
		if (strcmp(name, "st") != 0)
			continue;
		found = true;
		assert_string_equal(iso, "semaphore");
		assert_int_equal(v[11], 100); /* no tier scales it */
		static const int64_t want[11] = {2, 0, 1, 2, 1, 7, 1, 1, 0, 0, 0};
		for (int j = 0; j < 11; j++)
			if (v[j] != want[j])
				fail_msg("%s is %lld, not %lld, in %s", keys[j], (long long)v[j], (long long)want[j], js);
	}
	if (json_finish(&r) != JSON_OK)
		fail_msg("not JSON: %s (%s)", js, json_error(&r, NULL));
	assert_true(found);
	free(js);

	bulkhead_note_drain(b, BH_DRAIN_ABANDONED);
	release_and_put(b, 2, 300);
}

/* ---- thread isolation: the loops --------------------------------------- */

/* A slot given to a movable waiter comes with one of the bulkhead's
 * threads, in turn, only with isolation = thread and once it has threads;
 * a reload that switches isolation or lowers the count takes effect at the
 * next slot given. */
static struct worker *slot_loop(struct bulkhead *b, struct tw *t, bool movable)
{
	t->w.movable = movable;
	assert_int_equal(bulkhead_acquire(b, &t->w, 0), BH_ACQUIRED);
	struct worker *w = t->w.loop;
	bulkhead_release(b, 0);
	return w;
}

static void test_loops_in_turn(void **state)
{
	(void)state;
	struct lv_bulkhead c = cfg_of("loops", 1, 2, 100, LV_QUEUE_FIFO);
	struct bulkhead *b = bulkhead_get(&c);
	assert_non_null(b);
	static struct tw t[3];
	tw_init(t, 3);
	static int dummy[3];
	struct worker *loops[3] = {(struct worker *)(void *)&dummy[0], (struct worker *)(void *)&dummy[1],
	                           (struct worker *)(void *)&dummy[2]};
	assert_null(slot_loop(b, &t[0], true)); /* semaphore */
	bulkhead_apply(b, &c, loops, 3);
	assert_null(slot_loop(b, &t[0], true)); /* still semaphore: the loops wait */
	c.isolation = LV_ISOLATION_THREAD;
	bulkhead_apply(b, &c, loops, 3);
	for (int round = 0; round < 2; round++)
		for (int i = 0; i < 3; i++)
			assert_ptr_equal(slot_loop(b, &t[0], true), loops[i]);
	assert_null(slot_loop(b, &t[0], false)); /* nothing to move: in place, no turn used */
	assert_ptr_equal(slot_loop(b, &t[0], true), loops[0]);

	/* a waiter's thread comes with its grant */
	t[0].w.movable = t[1].w.movable = t[2].w.movable = true;
	assert_int_equal(bulkhead_acquire(b, &t[0].w, 0), BH_ACQUIRED);
	assert_ptr_equal(t[0].w.loop, loops[1]);
	assert_int_equal(bulkhead_acquire(b, &t[1].w, 0), BH_WAITING);
	assert_null(t[1].w.loop);
	t[1].refuse = true; /* its loop stopped: the turn goes to the next waiter */
	assert_int_equal(bulkhead_acquire(b, &t[2].w, 0), BH_WAITING);
	bulkhead_release(b, 0);
	assert_int_equal(t[1].w.state, BH_CANCELLED);
	expect_granted(b, &t[2]);
	assert_ptr_equal(t[2].w.loop, loops[0]);
	bulkhead_release(b, 0);

	bulkhead_apply(b, &c, loops, 2); /* threads lowered */
	for (int i = 0; i < 4; i++) {
		struct worker *w = slot_loop(b, &t[0], true);
		assert_true(w == loops[0] || w == loops[1]);
	}
	struct bulkhead_stats st = stats_of(b);
	assert_int_equal(st.handoffs, 13); /* the refused grant's turn is not counted */
	assert_int_equal(st.threads, 2);
	bulkhead_apply(b, &c, NULL, 0);
	assert_null(slot_loop(b, &t[0], true)); /* thread isolation without threads yet: in place */
	bulkhead_put(b);
}

/* ---- many threads -------------------------------------------------------- */

#define TH_THREADS 8
#define TH_ROUNDS 10000
#define TH_CAP 3

struct th {
	struct bh_waiter w;
	pthread_mutex_t m;
	pthread_cond_t c;
	bool told; /* under m */
	struct bulkhead *b;
};

static atomic_uint_fast64_t th_clock; /* the injected clock: a tick per read */
static atomic_int th_holding;         /* threads between holding and releasing */
static atomic_int th_errors;
static atomic_int th_running;
static bool th_adaptive; /* max_concurrent = auto: each release is a sample */

static uint64_t th_now(void)
{
	return atomic_fetch_add(&th_clock, 1);
}

static bool th_granted(struct bh_waiter *wt)
{
	struct th *t = (struct th *)(void *)((char *)wt - offsetof(struct th, w));
	pthread_mutex_lock(&t->m);
	t->told = true;
	pthread_cond_signal(&t->c);
	pthread_mutex_unlock(&t->m);
	return true;
}

static void *th_main(void *arg)
{
	struct th *t = arg;
	for (int i = 0; i < TH_ROUNDS; i++) {
		pthread_mutex_lock(&t->m);
		t->told = false;
		pthread_mutex_unlock(&t->m);
		enum bh_rc rc = bulkhead_acquire(t->b, &t->w, th_now());
		if (rc == BH_WAITING) {
			pthread_mutex_lock(&t->m);
			while (!t->told)
				pthread_cond_wait(&t->c, &t->m);
			pthread_mutex_unlock(&t->m);
			bulkhead_take(t->b, &t->w);
		} else if (rc != BH_ACQUIRED) {
			atomic_fetch_add(&th_errors, 1);
			break;
		}
		if (atomic_fetch_add(&th_holding, 1) + 1 > TH_CAP)
			atomic_fetch_add(&th_errors, 1);
		if (i % 8 == 0)
			sched_yield(); /* hold it a while, so that the others find the slots taken */
		if (i % 64 == 0) {
			struct bulkhead_stats s;
			bulkhead_stats(t->b, &s);
			if (s.active > TH_CAP || s.active < 1)
				atomic_fetch_add(&th_errors, 1);
		}
		atomic_fetch_sub(&th_holding, 1);
		if (th_adaptive) /* latencies that swing, so the limit moves up and down */
			bulkhead_release_sample(t->b, th_now(), (uint64_t)(1000 + (i / 256 % 4) * 4000));
		else
			bulkhead_release(t->b, th_now());
	}
	atomic_fetch_sub(&th_running, 1);
	return NULL;
}

static void many_threads(bool adaptive)
{
	/* queue_timeout 1 ms = 1000 ticks: adaptive_lifo switches between both */
	struct lv_bulkhead c = cfg_of(adaptive ? "threads-auto" : "threads", adaptive ? 0 : TH_CAP, TH_THREADS, 1,
	                              LV_QUEUE_ADAPTIVE_LIFO);
	c.adaptive_min = 1;
	c.adaptive_max = TH_CAP;
	c.adaptive_smoothing = 100;
	c.adaptive_window_ms = 0; /* a window every 8 samples */
	struct bulkhead *b = bulkhead_get(&c);
	assert_non_null(b);
	th_adaptive = adaptive;
	static struct th th[TH_THREADS];
	pthread_t tid[TH_THREADS];
	atomic_store(&th_clock, 0);
	atomic_store(&th_holding, 0);
	atomic_store(&th_errors, 0);
	atomic_store(&th_running, TH_THREADS);
	for (int i = 0; i < TH_THREADS; i++) {
		memset(&th[i], 0, sizeof(th[i]));
		pthread_mutex_init(&th[i].m, NULL);
		pthread_cond_init(&th[i].c, NULL);
		th[i].w.granted = th_granted;
		th[i].b = b;
	}
	for (int i = 0; i < TH_THREADS; i++)
		assert_int_equal(pthread_create(&tid[i], NULL, th_main, &th[i]), 0);
	/* and a scraper meanwhile */
	uint64_t samples = 0;
	while (atomic_load(&th_running) > 0) {
		struct bulkhead_stats s;
		bulkhead_stats(b, &s);
		if (s.active > TH_CAP || s.queued > TH_THREADS - (adaptive ? 1 : TH_CAP))
			atomic_fetch_add(&th_errors, 1);
		samples++;
		sched_yield(); /* leave the CPUs to the workers */
	}
	for (int i = 0; i < TH_THREADS; i++)
		assert_int_equal(pthread_join(tid[i], NULL), 0);
	assert_int_equal(atomic_load(&th_errors), 0);
	assert_true(samples > 0);

	expect_load(b, 0, 0);
	struct bulkhead_stats s = stats_of(b);
	assert_int_equal(s.acquired, TH_THREADS * TH_ROUNDS);
	assert_int_equal(s.rejected_full + s.rejected_timeout + s.rejected_closed, 0);
	assert_int_equal(s.wait_count, s.queued_total);
	assert_true(s.queued_total > 0); /* the hand-off path ran, not only free slots */
	if (adaptive) {
		/* all but those a probe passed over (ended above its min) */
		assert_true(s.samples > TH_THREADS * TH_ROUNDS * 9 / 10 && s.samples <= TH_THREADS * TH_ROUNDS);
		assert_true(s.windows > 100);
	}
	for (int i = 0; i < TH_THREADS; i++) {
		assert_int_equal(th[i].w.state, BH_HOLDING); /* the last slot it held */
		pthread_cond_destroy(&th[i].c);
		pthread_mutex_destroy(&th[i].m);
	}
	bulkhead_put(b);
}

static void test_many_threads(void **state)
{
	(void)state;
	many_threads(false);
}

/* The same with max_concurrent = auto, its limit moving between 1 and the
 * cap while the threads take and give back slots. */
static void test_many_threads_adaptive(void **state)
{
	(void)state;
	many_threads(true);
}

/* ---- shutdown (last: it closes every live bulkhead) ---------------------- */

static void test_shutdown_all(void **state)
{
	(void)state;
	struct bulkhead *b = bh_new("shut", 1, 3, 100, LV_QUEUE_FIFO);
	struct bulkhead *o = bh_new("shut-other", 1, 1, 100, LV_QUEUE_FIFO);
	static struct tw t[5];
	tw_init(t, 5);
	assert_int_equal(bulkhead_acquire(b, &t[0].w, 0), BH_ACQUIRED);
	assert_int_equal(bulkhead_acquire(b, &t[1].w, 0), BH_WAITING);
	assert_int_equal(bulkhead_acquire(b, &t[2].w, 0), BH_WAITING);
	assert_int_equal(bulkhead_acquire(o, &t[3].w, 0), BH_ACQUIRED);
	assert_int_equal(bulkhead_acquire(o, &t[4].w, 0), BH_WAITING);

	bulkhead_shutdown_all();
	assert_int_equal(t[1].w.state, BH_CANCELLED);
	assert_int_equal(t[2].w.state, BH_CANCELLED);
	assert_int_equal(t[4].w.state, BH_CANCELLED);
	assert_int_equal(stats_of(b).queued, 0);
	assert_int_equal(stats_of(o).queued, 0);
	/* a cancel that comes after: it is off */
	assert_true(bulkhead_cancel(b, &t[1].w, true, 10));
	assert_int_equal(stats_of(b).rejected_timeout, 0);

	static struct tw late;
	tw_init(&late, 1);
	assert_int_equal(bulkhead_acquire(b, &late.w, 10), BH_CLOSED);
	assert_int_equal(bulkhead_acquire(o, &late.w, 10), BH_CLOSED);
	assert_int_equal(stats_of(b).rejected_closed, 3); /* the two cancelled by the shutdown, and the late one */

	/* the held slots still come back, to nobody */
	bulkhead_release(b, 20);
	bulkhead_release(o, 20);
	assert_int_equal(norder, 0);
	assert_int_equal(stats_of(b).active, 0);
	assert_int_equal(stats_of(o).active, 0);
	assert_int_equal(bulkhead_acquire(b, &late.w, 30), BH_CLOSED);
	/* nor does a reload open it again or grant anything */
	struct lv_bulkhead c = cfg_of("shut", 5, 3, 100, LV_QUEUE_FIFO);
	struct bulkhead *b2 = bulkhead_get(&c);
	assert_ptr_equal(b2, b);
	bulkhead_apply(b, &c, NULL, 0);
	assert_int_equal(bulkhead_acquire(b, &late.w, 40), BH_CLOSED);
	assert_int_equal(norder, 0);
	bulkhead_put(b2);
	bulkhead_put(o);
	bulkhead_put(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_acquire_queue_full),
	    cmocka_unit_test(test_no_queue),
	    cmocka_unit_test(test_release_hands_off),
	    cmocka_unit_test(test_fifo_order),
	    cmocka_unit_test(test_adaptive_lifo_boundary),
	    cmocka_unit_test(test_adaptive_lifo_clock_behind),
	    cmocka_unit_test(test_cancel),
	    cmocka_unit_test(test_refused_grant),
	    cmocka_unit_test(test_resize),
	    cmocka_unit_test(test_scale),
	    cmocka_unit_test(test_adaptive_limit),
	    cmocka_unit_test(test_stats_and_rendering),
	    cmocka_unit_test(test_many_threads),
	    cmocka_unit_test(test_many_threads_adaptive),
	    cmocka_unit_test(test_loops_in_turn),
	    cmocka_unit_test(test_shutdown_all),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
