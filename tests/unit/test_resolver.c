/* test_resolver.c - host names looked up off the loop (proxy/resolver.c):
 * answers come back on the loop that asked, never inside resolve_start();
 * a cancelled request never calls back, whether it was queued, running or
 * answered; names asked while a lookup runs share its answer; and the
 * default lookup (getaddrinfo) formats its answers. The lookup is injected:
 * a gate the test opens decides when it returns, so nothing sleeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "resolver.h"

/* ---- an injected lookup, held at a gate --------------------------------- */

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_open;
static unsigned lookups, entered;
static char answer[INET6_ADDRSTRLEN];

static void gated_lookup(void *arg, const char *host, struct resolve_result *out)
{
	pthread_mutex_lock(&gate_lock);
	entered++;
	pthread_cond_broadcast(&gate_cond);
	while (!gate_open)
		pthread_cond_wait(&gate_cond, &gate_lock);
	lookups++;
	memset(out, 0, sizeof(*out));
	if (strcmp(host, "nowhere") == 0) {
		out->status = -2;
		snprintf(out->why, sizeof(out->why), "cannot resolve %s: no", host);
	} else {
		out->n = 1;
		snprintf(out->addrs[0], sizeof(out->addrs[0]), "%s", answer);
	}
	pthread_mutex_unlock(&gate_lock);
}

static void gate(bool open)
{
	pthread_mutex_lock(&gate_lock);
	gate_open = open;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_lock);
}

/* Waits until the thread is inside <n> lookups (bounded). */
static void wait_entered(unsigned n)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 5;
	pthread_mutex_lock(&gate_lock);
	while (entered < n)
		assert_int_equal(pthread_cond_timedwait(&gate_cond, &gate_lock, &until), 0);
	pthread_mutex_unlock(&gate_lock);
}

/* ---- the loop side ------------------------------------------------------ */

struct got {
	int calls;
	struct resolve_result r;
	pthread_t thread;
};

static void on_resolved(void *arg, const struct resolve_result *res)
{
	struct got *g = arg;
	g->calls++;
	g->r = *res;
	g->thread = pthread_self();
}

/* Runs the loop until every <g> has its answer, at most 5 s. */
static void run_until_answered(struct event_base *base, struct got *g, unsigned n)
{
	time_t until = time(NULL) + 5;
	for (;;) {
		bool all = true;
		for (unsigned i = 0; i < n; i++)
			all = all && g[i].calls > 0;
		if (all)
			return;
		assert_true(time(NULL) <= until);
		struct timeval tv = {0, 10000};
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
}

static struct event_base *base;
static struct resolver *res;

static int setup(void **state)
{
	gate(false);
	lookups = entered = 0;
	snprintf(answer, sizeof(answer), "10.0.0.5");
	base = event_base_new();
	res = resolver_new(gated_lookup, NULL);
	assert_non_null(base);
	assert_non_null(res);
	return 0;
}

static int teardown(void **state)
{
	gate(true);
	resolver_free(res);
	event_base_free(base);
	return 0;
}

static void test_answer_on_the_loop_that_asked(void **state)
{
	struct got g = {0};
	gate(true);
	struct resolve_req *rq = resolve_start(res, base, "redis.default.svc", on_resolved, &g);
	assert_non_null(rq);
	assert_int_equal(g.calls, 0); /* never inside resolve_start() */
	run_until_answered(base, &g, 1);
	assert_int_equal(g.calls, 1);
	assert_int_equal(g.r.status, 0);
	assert_int_equal(g.r.n, 1);
	assert_string_equal(g.r.addrs[0], "10.0.0.5");
	assert_true(pthread_equal(g.thread, pthread_self()));

	/* asked again: looked up again (a moved name is followed) */
	snprintf(answer, sizeof(answer), "10.0.0.9");
	struct got g2 = {0};
	assert_non_null(resolve_start(res, base, "redis.default.svc", on_resolved, &g2));
	run_until_answered(base, &g2, 1);
	assert_string_equal(g2.r.addrs[0], "10.0.0.9");
	assert_int_equal(lookups, 2);

	struct got bad = {0};
	assert_non_null(resolve_start(res, base, "nowhere", on_resolved, &bad));
	run_until_answered(base, &bad, 1);
	assert_int_not_equal(bad.r.status, 0);
	assert_string_equal(bad.r.why, "cannot resolve nowhere: no");
}

/* N loops' worth of requests for one name, asked while a lookup of it runs:
 * one more lookup, not N. */
static void test_waiting_requests_share_an_answer(void **state)
{
	struct got g[5] = {{0}};
	assert_non_null(resolve_start(res, base, "redis.default.svc", on_resolved, &g[0]));
	wait_entered(1);
	for (int i = 1; i < 4; i++)
		assert_non_null(resolve_start(res, base, "redis.default.svc", on_resolved, &g[i]));
	assert_non_null(resolve_start(res, base, "other.svc", on_resolved, &g[4]));
	gate(true);
	run_until_answered(base, g, 5);
	assert_int_equal(lookups, 2); /* the running one, then other.svc */
	for (int i = 0; i < 5; i++) {
		assert_int_equal(g[i].calls, 1);
		assert_string_equal(g[i].r.addrs[0], "10.0.0.5");
	}
}

/* Cancelled while running, while queued, and after the answer was posted
 * but before the loop ran: no callback, nothing leaked (ASan builds). */
static void test_cancel_in_every_state(void **state)
{
	struct got running = {0}, queued = {0}, posted = {0}, after = {0};
	struct resolve_req *r1 = resolve_start(res, base, "a.svc", on_resolved, &running);
	assert_non_null(r1);
	wait_entered(1);
	struct resolve_req *r2 = resolve_start(res, base, "b.svc", on_resolved, &queued);
	assert_non_null(r2);
	resolve_cancel(r2);
	resolve_cancel(r1);
	gate(true);

	struct resolve_req *r3 = resolve_start(res, base, "c.svc", on_resolved, &posted);
	assert_non_null(r3);
	/* a request behind it proves c.svc was answered before we cancel it */
	assert_non_null(resolve_start(res, base, "d.svc", on_resolved, &after));
	wait_entered(3); /* a.svc, c.svc, then d.svc: b.svc was never looked up */
	resolve_cancel(r3);
	run_until_answered(base, &after, 1);
	/* give any stray callback its chance */
	struct timeval tv = {0, 20000};
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
	assert_int_equal(running.calls + queued.calls + posted.calls, 0);
	assert_int_equal(after.calls, 1);
}

/* The default lookup: the system's resolver, /etc/hosts included. */
static void test_getaddrinfo(void **state)
{
	struct resolver *sys = resolver_new(NULL, NULL);
	assert_non_null(sys);
	struct got g[2] = {{0}};
	assert_non_null(resolve_start(sys, base, "localhost", on_resolved, &g[0]));
	assert_non_null(resolve_start(sys, base, "no-such-host.invalid", on_resolved, &g[1]));
	run_until_answered(base, g, 2);
	assert_int_equal(g[0].r.status, 0);
	bool loopback = false;
	for (unsigned i = 0; i < g[0].r.n; i++)
		loopback = loopback || strcmp(g[0].r.addrs[i], "127.0.0.1") == 0 ||
		           strcmp(g[0].r.addrs[i], "::1") == 0;
	assert_true(loopback);
	assert_int_not_equal(g[1].r.status, 0);
	assert_non_null(strstr(g[1].r.why, "cannot resolve no-such-host.invalid: "));
	resolver_free(sys);

	assert_true(resolve_is_numeric("10.1.2.3"));
	assert_true(resolve_is_numeric("::1"));
	assert_false(resolve_is_numeric("localhost"));
	assert_false(resolve_is_numeric("10.1.2.300"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_answer_on_the_loop_that_asked, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_waiting_requests_share_an_answer, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_cancel_in_every_state, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_getaddrinfo, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
