/*
 * test_mailbox.c - the intrusive mailbox: FIFO order, the bound, coalescing,
 * closing, and nothing lost with many producers and one consumer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "net/mailbox.h"

struct msg {
	struct mb_item mb;
	int id;
	int runs;
};

static int order[64];
static int norder;

static void record(struct mb_item *it)
{
	struct msg *m = mb_container(it, struct msg, mb);
	m->runs++;
	if (norder < 64)
		order[norder++] = m->id;
}

static void test_fifo_and_coalescing(void **state)
{
	(void)state;
	struct event_base *base = event_base_new();
	struct mailbox mb;
	assert_int_equal(mailbox_init(&mb, base, 0), LV_OK);
	struct msg m[3] = {{.id = 0}, {.id = 1}, {.id = 2}};
	norder = 0;
	for (int i = 0; i < 3; i++)
		assert_int_equal(mailbox_post(&mb, &m[i].mb, record), LV_OK);
	assert_int_equal(mailbox_post(&mb, &m[1].mb, record), LV_OK); /* still queued: coalesces */
	unsigned now, peak;
	mailbox_depth(&mb, &now, &peak);
	assert_int_equal(now, 3);
	event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	assert_int_equal(norder, 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(order[i], i);
		assert_int_equal(m[i].runs, 1);
	}
	/* once run, an item may be posted again */
	assert_int_equal(mailbox_post(&mb, &m[1].mb, record), LV_OK);
	mailbox_flush(&mb);
	assert_int_equal(m[1].runs, 2);
	mailbox_destroy(&mb);
	event_base_free(base);
}

/* An item of the batch being run is posted again before its turn (another
 * thread's post; here, an earlier item's function): the post coalesces,
 * every item of the batch runs once and in order, nothing after it is
 * lost. Before the fix the post rewrote the pending item's `next`, and the
 * rest of the batch was dropped. */
static struct mailbox *repost_mb;
static struct msg repost[4];

static void repost_later(struct mb_item *it)
{
	record(it);
	assert_int_equal(mailbox_post(repost_mb, &repost[2].mb, record), LV_OK);
}

static void test_post_while_its_batch_runs(void **state)
{
	(void)state;
	struct event_base *base = event_base_new();
	struct mailbox mb;
	assert_int_equal(mailbox_init(&mb, base, 0), LV_OK);
	repost_mb = &mb;
	norder = 0;
	for (int i = 0; i < 4; i++) {
		repost[i] = (struct msg){.id = i};
		assert_int_equal(mailbox_post(&mb, &repost[i].mb, i == 0 ? repost_later : record), LV_OK);
	}
	mailbox_flush(&mb);
	assert_int_equal(norder, 4);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(order[i], i);
		assert_int_equal(repost[i].runs, 1);
	}
	mailbox_destroy(&mb);
	event_base_free(base);
}

static void test_bound(void **state)
{
	(void)state;
	struct event_base *base = event_base_new();
	struct mailbox mb;
	assert_int_equal(mailbox_init(&mb, base, 2), LV_OK);
	struct msg m[3] = {{.id = 0}, {.id = 1}, {.id = 2}};
	norder = 0;
	assert_int_equal(mailbox_post(&mb, &m[0].mb, record), LV_OK);
	assert_int_equal(mailbox_post(&mb, &m[1].mb, record), LV_OK);
	assert_int_equal(mailbox_post(&mb, &m[2].mb, record), LV_EFULL); /* the caller keeps it */
	assert_false(m[2].mb.queued);
	mailbox_flush(&mb);
	assert_int_equal(m[2].runs, 0);
	assert_int_equal(mailbox_post(&mb, &m[2].mb, record), LV_OK); /* room again */
	mailbox_flush(&mb);
	assert_int_equal(m[2].runs, 1);
	unsigned now, peak;
	mailbox_depth(&mb, &now, &peak);
	assert_int_equal(now, 0);
	assert_int_equal(peak, 2);
	mailbox_destroy(&mb);
	event_base_free(base);
}

static struct mailbox *reposting_mb;

static void repost_once(struct mb_item *it)
{
	struct msg *m = mb_container(it, struct msg, mb);
	if (m->runs++ == 0)
		assert_int_equal(mailbox_post(reposting_mb, it, repost_once), LV_OK);
}

/* What was posted before the close runs, even what an item posts while the
 * close drains; everything after is handed back. */
static void test_close(void **state)
{
	(void)state;
	struct event_base *base = event_base_new();
	struct mailbox mb;
	assert_int_equal(mailbox_init(&mb, base, 0), LV_OK);
	reposting_mb = &mb;
	struct msg a = {.id = 7}, b = {.id = 8};
	assert_int_equal(mailbox_post(&mb, &a.mb, repost_once), LV_OK);
	mailbox_close(&mb);
	assert_int_equal(a.runs, 2);
	assert_int_equal(mailbox_post(&mb, &b.mb, record), LV_ECLOSED);
	assert_false(b.mb.queued);
	assert_int_equal(b.runs, 0);
	mailbox_destroy(&mb);
	event_base_free(base);
}

#define PRODUCERS 4
#define PER_PRODUCER 20000

struct producer {
	struct mailbox *mb;
	struct msg *msgs;
	atomic_int *full;
};

static atomic_int consumed;

static void count(struct mb_item *it)
{
	struct msg *m = mb_container(it, struct msg, mb);
	m->runs++;
	atomic_fetch_add(&consumed, 1);
}

static void *produce(void *arg)
{
	struct producer *p = arg;
	for (int i = 0; i < PER_PRODUCER; i++) {
		/* a bounded mailbox pushes back: try again, never drop */
		while (mailbox_post(p->mb, &p->msgs[i].mb, count) == LV_EFULL)
			atomic_fetch_add(p->full, 1);
	}
	return NULL;
}

static void test_many_producers_nothing_lost(void **state)
{
	(void)state;
	struct event_base *base = event_base_new();
	struct mailbox mb;
	assert_int_equal(mailbox_init(&mb, base, 256), LV_OK);
	struct msg *msgs = calloc(PRODUCERS * PER_PRODUCER, sizeof(*msgs));
	assert_non_null(msgs);
	atomic_int full = 0;
	atomic_store(&consumed, 0);
	pthread_t t[PRODUCERS];
	struct producer p[PRODUCERS];
	for (int i = 0; i < PRODUCERS; i++) {
		p[i] = (struct producer){&mb, msgs + (size_t)i * PER_PRODUCER, &full};
		assert_int_equal(pthread_create(&t[i], NULL, produce, &p[i]), 0);
	}
	while (atomic_load(&consumed) < PRODUCERS * PER_PRODUCER)
		event_base_loop(base, EVLOOP_ONCE);
	for (int i = 0; i < PRODUCERS; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < PRODUCERS * PER_PRODUCER; i++)
		assert_int_equal(msgs[i].runs, 1);
	unsigned now, peak;
	mailbox_depth(&mb, &now, &peak);
	assert_int_equal(now, 0);
	assert_true(peak <= 256);
	mailbox_close(&mb);
	mailbox_destroy(&mb);
	event_base_free(base);
	free(msgs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fifo_and_coalescing),
	    cmocka_unit_test(test_post_while_its_batch_runs),
	    cmocka_unit_test(test_bound),
	    cmocka_unit_test(test_close),
	    cmocka_unit_test(test_many_producers_nothing_lost),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
