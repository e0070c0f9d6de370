/*
 * test_request.c - the request path's contract with its stages, on a real
 * loop and a real client connection (a socketpair), with fake stages:
 *
 *   - stages run in path order; only the stages a request entered get
 *     hooks, `end` and `done` last stage first, `fail` and `client_gone`
 *     as request.h says;
 *   - one outcome, recorded once, is what every `end` hook sees;
 *   - each stage's state block is its own, aligned, and zeroed for the
 *     next request on the same connection;
 *   - a request that goes on without its client is still ended, hooks and
 *     all, when its loop is torn down.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <event2/buffer.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/conn.h"
#include "net/request.h"
#include "net/worker.h"

/* ---- what the fake stages saw ------------------------------------------- */

static char trace[512];
static enum request_outcome seen_outcome[3];
static int mode; /* what stage B does */
enum { B_REFUSE, B_PARK, B_ANSWER_IN_FAIL, B_ORPHAN, B_AMEND_IN_FAIL };
static struct request *parked;

static void note(const char *what)
{
	size_t n = strlen(trace);
	snprintf(trace + n, sizeof(trace) - n, "%s%s", n ? " " : "", what);
}

struct a_state {
	uint64_t pattern[3];
};
struct b_state {
	char bytes[100];
};

static const struct stage stage_a, stage_b, stage_c;

static int a_run(struct request *r)
{
	note("a.run");
	struct a_state *s = request_state(r, &stage_a);
	assert_int_equal((uintptr_t)s % _Alignof(max_align_t), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(s->pattern[i], 0); /* zeroed, also on a reused request */
	for (int i = 0; i < 3; i++)
		s->pattern[i] = 0xa5a5a5a5a5a5a5a5ull;
	assert_ptr_equal(request_of_state(s, &stage_a), r);
	return STAGE_NEXT;
}

static bool a_fail(struct request *r, enum lv_reason reason, struct refusal *rf)
{
	note("a.fail");
	if (mode == B_AMEND_IN_FAIL) /* b amended it first (last stage first) */
		assert_int_equal(rf->status, 200);
	return false;
}

static bool a_end(struct request *r)
{
	note("a.end");
	seen_outcome[0] = r->outcome;
	return false;
}

static void a_done(struct request *r)
{
	note("a.done");
}

static bool a_gone(struct request *r)
{
	note("a.gone");
	return true;
}

static int b_run(struct request *r)
{
	note("b.run");
	struct b_state *s = request_state(r, &stage_b);
	struct a_state *as = request_state(r, &stage_a);
	assert_true((char *)s >= (char *)(as + 1) || (char *)(s + 1) <= (char *)as); /* apart */
	memset(s->bytes, 0x5a, sizeof(s->bytes));
	if (mode == B_PARK) {
		parked = r;
		return STAGE_ASYNC;
	}
	if (mode == B_ORPHAN) {
		/* answers, lets the client go, and goes on without it (as the
		 * cache's background refresh does) */
		struct conn *c = r->conn;
		evbuffer_add_printf(conn_output(c), "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
		assert_true(conn_flush(c));
		r->status = 200;
		r->resp_done = true;
		c->req = NULL;
		r->conn = NULL;
		r->background = true;
		conn_request_done(c);
		parked = r;
		return STAGE_ASYNC;
	}
	struct refusal rf = {.status = 429, .retry_after = 7, .detail = "fake=b"};
	request_refuse(r, R_BULKHEAD_FULL, &rf);
	return STAGE_DONE;
}

static bool b_fail(struct request *r, enum lv_reason reason, struct refusal *rf)
{
	note("b.fail");
	assert_int_equal(reason, R_BULKHEAD_FULL);
	if (mode == B_AMEND_IN_FAIL) {
		/* a stage that turns levee's answer into its own (a fallback) */
		assert_string_equal(rf->detail, "fake=b");
		rf->status = 200;
		rf->detail = "fake=b; amended";
		rf->content_type = "application/json";
		rf->body = "{\"ok\":0}";
		rf->body_len = 8;
		return false;
	}
	if (mode != B_ANSWER_IN_FAIL)
		return false;
	/* a stage that answers instead (as the cache does from a stale copy) */
	struct conn *c = r->conn;
	evbuffer_add_printf(conn_output(c), "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
	assert_true(conn_flush(c));
	r->status = 200;
	request_finish(r);
	return true;
}

static bool b_end(struct request *r)
{
	note("b.end");
	seen_outcome[1] = r->outcome;
	return false;
}

static void b_done(struct request *r)
{
	note("b.done");
}

static bool b_gone(struct request *r)
{
	note("b.gone");
	return true;
}

static int c_run(struct request *r)
{
	note("c.run");
	return STAGE_DONE;
}

static bool c_end(struct request *r)
{
	note("c.end");
	return false;
}

static void c_done(struct request *r)
{
	note("c.done");
}

static const struct stage stage_a = {.name = "a", .state_size = sizeof(struct a_state), .run = a_run,
                                     .fail = a_fail, .end = a_end, .done = a_done, .client_gone = a_gone};
static const struct stage stage_b = {.name = "b", .state_size = sizeof(struct b_state), .run = b_run,
                                     .fail = b_fail, .end = b_end, .done = b_done, .client_gone = b_gone};
static const struct stage stage_c = {.name = "c", .run = c_run, .end = c_end, .done = c_done};
static const struct stage *const path[] = {&stage_a, &stage_b, &stage_c};

/* ---- one loop, one client ------------------------------------------------- */

struct env {
	struct runtime_slot slot;
	atomic_uint_fast64_t open;
	struct worker w;
	int client; /* the test's end of the socketpair */
	bool destroyed; /* the test tore the loop down itself */
};

static int setup(void **state)
{
	static struct env e;
	memset(&e, 0, sizeof(e));
	struct lv_diag d = {0};
	struct lv_overrides ov = {.upstream = "127.0.0.1:9"};
	struct lv_policy *p;
	assert_int_equal(policy_load_defaults(&ov, &p, &d), LV_OK);
	diag_free(&d);
	struct runtime *rt;
	char err[256];
	assert_int_equal(runtime_build(p, &rt, err, sizeof(err)), LV_OK);
	runtime_slot_init(&e.slot);
	runtime_unref(runtime_slot_swap(&e.slot, rt));
	assert_int_equal(worker_create(&e.w, 0, "test loop", &e.slot, &e.open, err, sizeof(err)), LV_OK);
	e.w.listens = true; /* pool requests as a listener worker does (it has no listener socket) */
	request_path_set(path, 3);
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	struct sockaddr sa = {.sa_family = AF_UNIX};
	conn_accept(&e.w, sv[0], &sa, sizeof(sa));
	e.client = sv[1];
	*state = &e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	if (!e->destroyed) {
		close(e->client);
		e->w.closing = true;
		worker_destroy(&e->w);
	}
	runtime_slot_destroy(&e->slot);
	return 0;
}

/* Runs the loop until the client has `want` bytes of answer, or 2 s. */
static size_t roundtrip(struct env *e, const char *req, char *out, size_t cap, size_t want)
{
	trace[0] = '\0';
	memset(seen_outcome, 0, sizeof(seen_outcome));
	assert_int_equal(write(e->client, req, strlen(req)), (ssize_t)strlen(req));
	size_t got = 0;
	for (int i = 0; i < 400 && got < want; i++) {
		event_base_loop(e->w.base, EVLOOP_NONBLOCK);
		struct pollfd pf = {.fd = e->client, .events = POLLIN};
		if (poll(&pf, 1, 5) == 1) {
			ssize_t n = read(e->client, out + got, cap - 1 - got);
			if (n > 0)
				got += (size_t)n;
		}
	}
	out[got] = '\0';
	return got;
}

static void spin(struct env *e, int rounds)
{
	for (int i = 0; i < rounds; i++) {
		event_base_loop(e->w.base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
}

/* A stage that refuses: every entered stage's fail hook, last first; then
 * end and done last first; the stage after it never runs. */
static void test_refusal_hooks_and_outcome(void **state)
{
	struct env *e = *state;
	mode = B_REFUSE;
	char buf[2048];
	roundtrip(e, "GET /x HTTP/1.1\r\nHost: t\r\n\r\n", buf, sizeof(buf), 12);
	spin(e, 5);
	assert_string_equal(trace, "a.run b.run b.fail a.fail b.end a.end b.done a.done");
	assert_non_null(strstr(buf, "HTTP/1.1 429 Too Many Requests\r\n"));
	assert_non_null(strstr(buf, "\r\nRetry-After: 7\r\n"));
	assert_non_null(strstr(buf, "\r\nX-Levee-Reason: bulkhead-full; fake=b\r\n"));
	assert_int_equal(seen_outcome[0], OUT_REFUSED);
	assert_int_equal(seen_outcome[1], OUT_REFUSED);
	assert_int_equal(e->w.stats->outcomes[OUT_REFUSED], 1);

	/* the same connection, the next request: blocks zeroed again (a_run
	 * asserts it), the same hooks */
	roundtrip(e, "GET /y HTTP/1.1\r\nHost: t\r\n\r\n", buf, sizeof(buf), 12);
	spin(e, 5);
	assert_string_equal(trace, "a.run b.run b.fail a.fail b.end a.end b.done a.done");
	assert_int_equal(e->w.stats->outcomes[OUT_REFUSED], 2);
}

/* A fail hook that answers stops the others and levee's own answer. */
static void test_fail_hook_takes_over(void **state)
{
	struct env *e = *state;
	mode = B_ANSWER_IN_FAIL;
	char buf[2048];
	roundtrip(e, "GET /x HTTP/1.1\r\nHost: t\r\n\r\n", buf, sizeof(buf), 40);
	spin(e, 5);
	assert_string_equal(trace, "a.run b.run b.fail b.end a.end b.done a.done");
	assert_true(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
	assert_null(strstr(buf, "429"));
	/* recorded before the takeover: the refusal stays the outcome */
	assert_int_equal(seen_outcome[0], OUT_REFUSED);
}

/* A fail hook that amends the refusal: the stages before it still run,
 * then levee writes the amended answer, body and all. */
static void test_fail_hook_amends(void **state)
{
	struct env *e = *state;
	mode = B_AMEND_IN_FAIL;
	char buf[2048];
	roundtrip(e, "GET /x HTTP/1.1\r\nHost: t\r\n\r\n", buf, sizeof(buf), 150);
	spin(e, 5);
	assert_string_equal(trace, "a.run b.run b.fail a.fail b.end a.end b.done a.done");
	assert_true(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
	assert_non_null(strstr(buf, "\r\nContent-Type: application/json\r\nContent-Length: 8\r\n"));
	assert_non_null(strstr(buf, "\r\nX-Levee-Reason: bulkhead-full; fake=b; amended\r\n"));
	assert_null(strstr(buf, "Retry-After"));
	assert_non_null(strstr(buf, "\r\n\r\n{\"ok\":0}"));
	assert_int_equal(seen_outcome[0], OUT_REFUSED);
}

/* Sends a request that stage B takes over as <m> says, with <want> bytes of
 * answer in <buf>; the trace is cleared for what comes next. */
static void park(struct env *e, int m, char *buf, size_t cap, size_t want)
{
	mode = m;
	parked = NULL;
	roundtrip(e, "GET /x HTTP/1.1\r\nHost: t\r\n\r\n", buf, cap, want);
	spin(e, 5);
	assert_non_null(parked);
	assert_string_equal(trace, "a.run b.run");
	trace[0] = '\0';
}

/* A client that leaves a parked request: client_gone in path order for the
 * stages entered, then end and done last first; outcome client-gone. */
static void test_client_gone(void **state)
{
	struct env *e = *state;
	char buf[64];
	park(e, B_PARK, buf, sizeof(buf), 0);
	shutdown(e->client, SHUT_RDWR);
	spin(e, 20);
	assert_string_equal(trace, "a.gone b.gone b.end a.end b.done a.done");
	assert_int_equal(seen_outcome[0], OUT_CLIENT_GONE);
	assert_int_equal(e->w.stats->outcomes[OUT_CLIENT_GONE], 1);
}

/* A request that left its client (answered, and going on in the background)
 * is on no connection and not kept: the loop's teardown still ends it, as
 * if its client had left, with every hook (LeakSanitizer checks that its
 * memory went back, under ASan). */
static void test_orphan_ends_at_teardown(void **state)
{
	struct env *e = *state;
	char buf[256];
	park(e, B_ORPHAN, buf, sizeof(buf), 40);
	assert_true(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
	assert_int_equal(e->w.nreqs, 1);
	close(e->client);
	e->w.closing = true;
	worker_destroy(&e->w);
	e->destroyed = true;
	assert_string_equal(trace, "a.gone b.gone b.end a.end b.done a.done");
	assert_int_equal(e->w.nreqs, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_refusal_hooks_and_outcome, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fail_hook_takes_over, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fail_hook_amends, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_client_gone, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_orphan_ends_at_teardown, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
