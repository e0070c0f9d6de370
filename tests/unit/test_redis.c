/*
 * test_redis.c - the Redis client against real redis-server and
 * redis-sentinel processes, started on free loopback ports in a private
 * directory: round trips, binary values, pipelining order, deferred
 * failures, per-command timeouts, loss and return of the server with the
 * breaker, and a Sentinel failover; host names for the server and the
 * sentinels, looked up again at each reconnect (through a resolver whose
 * answers the test sets); and what each of these tells the watch (the log
 * lines and counters of the process).
 *
 * Every wait polls with a deadline; nothing sleeps a fixed time hoping the
 * other side is ready. Each test kills exactly the PIDs it started, in its
 * teardown, so a failed assertion leaves no server behind (and the children
 * die with the test process through PR_SET_PDEATHSIG if it crashes).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <pthread.h>

#include "redis_harness.h"
#include "cache/redis.h"
#include "resolver.h"

#define MAX_PROCS 8
#define MAX_LINES 256
#define MAX_NAMES 4

/* The names the test's resolver knows, and what they resolve to now. It
 * runs on the resolver's thread, hence the lock. */
static pthread_mutex_t names_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	char name[64], ip[64];
} names[MAX_NAMES];

static void set_name(const char *name, const char *ip)
{
	pthread_mutex_lock(&names_lock);
	unsigned i = 0;
	while (i < MAX_NAMES - 1 && names[i].name[0] && strcmp(names[i].name, name) != 0)
		i++;
	snprintf(names[i].name, sizeof(names[i].name), "%s", name);
	snprintf(names[i].ip, sizeof(names[i].ip), "%s", ip ? ip : "");
	pthread_mutex_unlock(&names_lock);
}

static void table_lookup(void *arg, const char *host, struct resolve_result *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&names_lock);
	for (unsigned i = 0; i < MAX_NAMES; i++)
		if (strcmp(names[i].name, host) == 0 && names[i].ip[0]) {
			snprintf(out->addrs[0], sizeof(out->addrs[0]), "%s", names[i].ip);
			out->n = 1;
		}
	pthread_mutex_unlock(&names_lock);
	if (!out->n) {
		out->status = -2;
		snprintf(out->why, sizeof(out->why), "cannot resolve %s: not in the test's table", host);
	}
}

struct fixture {
	char dir[64];
	pid_t pids[MAX_PROCS];
	unsigned npids;
	struct event_base *base;
	struct event *tick;
	struct redis_watch *watch;
	struct resolver *resolver;
	char lines[MAX_LINES][512];
	unsigned nlines;
};

static void capture_line(void *arg, enum lv_log_level level, const char *line)
{
	struct fixture *f = arg;
	if (f->nlines < MAX_LINES)
		snprintf(f->lines[f->nlines++], sizeof(f->lines[0]), "%s", line);
}

/* How many captured lines contain <needle>. */
static unsigned lines_with(const struct fixture *f, const char *needle)
{
	unsigned n = 0;
	for (unsigned i = 0; i < f->nlines; i++)
		n += strstr(f->lines[i], needle) != NULL;
	return n;
}

static struct redis_watch_stats watch_stats(struct fixture *f)
{
	struct redis_watch_stats s;
	redis_watch_stats(f->watch, &s);
	return s;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/levee-redis-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->base = event_base_new();
	assert_non_null(f->base);
	/* Wakes EVLOOP_ONCE regularly so run_until() can check its deadline. */
	f->tick = event_new(f->base, -1, EV_PERSIST, on_tick, NULL);
	struct timeval tv = {0, 5000};
	event_add(f->tick, &tv);
	/* no rate limit: every line these tests cause is captured */
	f->watch = redis_watch_new(0, 60000, capture_line, f);
	assert_non_null(f->watch);
	memset(names, 0, sizeof(names));
	f->resolver = resolver_new(table_lookup, NULL);
	assert_non_null(f->resolver);
	*state = f;
	return 0;
}

static void kill_proc(struct fixture *f, unsigned i)
{
	if (f->pids[i] > 0) {
		kill(f->pids[i], SIGKILL);
		waitpid(f->pids[i], NULL, 0);
		f->pids[i] = 0;
	}
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	for (unsigned i = 0; i < f->npids; i++)
		kill_proc(f, i);
	event_free(f->tick);
	event_base_free(f->base);
	redis_watch_free(f->watch);
	resolver_free(f->resolver);
	nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* Starts argv[0] with its output in <dir>/<log>; returns its slot. */
static unsigned spawn(struct fixture *f, const char *log, char *const argv[])
{
	assert_true(f->npids < MAX_PROCS);
	char logpath[128];
	snprintf(logpath, sizeof(logpath), "%s/%s", f->dir, log);
	f->pids[f->npids] = spawn_logged(logpath, argv);
	return f->npids++;
}

static unsigned start_redis_at(struct fixture *f, const char *ip, uint16_t port,
                               uint16_t master_port)
{
	char p[8], log[48], db[48], mp[8], bind[32];
	snprintf(p, sizeof(p), "%u", port);
	snprintf(log, sizeof(log), "redis-%s-%u.log", ip, port);
	snprintf(db, sizeof(db), "dump-%s-%u.rdb", ip, port);
	snprintf(mp, sizeof(mp), "%u", master_port);
	snprintf(bind, sizeof(bind), "%s", ip);
	char *argv[] = {"redis-server", "--port", p, "--bind", bind, "--save", "",
	                "--appendonly", "no", "--dir", f->dir, "--dbfilename", db,
	                /* full syncs start at once, not after the default 5 s */
	                "--repl-diskless-sync-delay", "0", master_port ? "--replicaof" : NULL,
	                "127.0.0.1", mp, NULL};
	return spawn(f, log, argv);
}

static unsigned start_redis(struct fixture *f, uint16_t port, uint16_t master_port)
{
	return start_redis_at(f, "127.0.0.1", port, master_port);
}

static bool reply_contains(const redisReply *rep, const char *needle)
{
	if (rep->type == REDIS_REPLY_STRING || rep->type == REDIS_REPLY_STATUS)
		return strstr(rep->str, needle) != NULL;
	if (rep->type == REDIS_REPLY_ARRAY)
		for (size_t i = 0; i < rep->elements; i++)
			if (reply_contains(rep->element[i], needle))
				return true;
	return false;
}

/* Polls a command until its reply (as text) contains <needle>. */
static void wait_reply_contains(uint16_t port, const char *needle, unsigned ms, const char *fmt,
                                ...)
{
	uint64_t deadline = now_ms() + ms;
	for (;;) {
		redisContext *c = sync_connect(port);
		bool ok = false;
		if (c) {
			va_list ap;
			va_start(ap, fmt);
			redisReply *rep = redisvCommand(c, fmt, ap);
			va_end(ap);
			ok = rep && reply_contains(rep, needle);
			if (rep)
				freeReplyObject(rep);
			redisFree(c);
		}
		if (ok)
			return;
		if (now_ms() > deadline)
			fail_msg("'%s' on port %u never showed '%s'", fmt, port, needle);
		pause_ms(20);
	}
}


static bool run_until(struct fixture *f, cond_fn cond, void *ctx, unsigned ms)
{
	return loop_until(f->base, cond, ctx, ms);
}

static bool is_available(void *ctx)
{
	return redis_available(ctx);
}

static bool is_unavailable(void *ctx)
{
	return !redis_available(ctx);
}

/* One command's outcome, filled by its callback. */
struct result {
	int calls;
	enum redis_err err;
	int type;
	long long integer;
	char str[64];
	size_t len;
	uint64_t at_ms;
};

static void on_result(struct redis *r, const redisReply *reply, enum redis_err err, void *arg)
{
	struct result *res = arg;
	res->calls++;
	res->err = err;
	res->at_ms = now_ms();
	assert_true((reply == NULL) == (err != REDIS_ENONE));
	if (!reply)
		return;
	res->type = reply->type;
	res->integer = reply->integer;
	if (reply->str && reply->len <= sizeof(res->str)) {
		memcpy(res->str, reply->str, reply->len);
		res->len = reply->len;
	}
}

static bool has_result(void *ctx)
{
	return ((struct result *)ctx)->calls > 0;
}

static void cmd(struct redis *r, struct result *res, int argc, const char **argv,
                const size_t *lens)
{
	size_t l[8];
	if (!lens) {
		for (int i = 0; i < argc; i++)
			l[i] = strlen(argv[i]);
		lens = l;
	}
	memset(res, 0, sizeof(*res));
	assert_int_equal(redis_command(r, on_result, res, argc, argv, lens), LV_OK);
	/* Never synchronous. */
	assert_int_equal(res->calls, 0);
}

/* Sends one command and runs the loop until its callback. */
static void roundtrip(struct fixture *f, struct redis *r, struct result *res, int argc,
                      const char **argv, const size_t *lens)
{
	cmd(r, res, argc, argv, lens);
	assert_true(run_until(f, has_result, res, 3000));
	assert_int_equal(res->calls, 1);
}

static void set_ok(struct fixture *f, struct redis *r, const char *key, const char *val)
{
	struct result res;
	const char *argv[] = {"SET", key, val};
	roundtrip(f, r, &res, 3, argv, NULL);
	assert_int_equal(res.err, REDIS_ENONE);
	if (res.type != REDIS_REPLY_STATUS)
		fail_msg("SET got reply type %d: %.*s", res.type, (int)res.len, res.str);
	assert_memory_equal(res.str, "OK", 2);
}

static struct redis *client(struct fixture *f, struct redis_config *cfg)
{
	cfg->watch = f->watch;
	cfg->resolver = f->resolver;
	char err[256] = "";
	struct redis *r = redis_new(f->base, cfg, err, sizeof(err));
	if (!r)
		fail_msg("redis_new: %s", err);
	return r;
}

static struct redis_config direct_cfg(uint16_t port)
{
	struct redis_config cfg = {.port = port, .command_timeout_ms = 2000};
	snprintf(cfg.host, sizeof(cfg.host), "127.0.0.1");
	return cfg;
}

#define REQUIRE_REDIS()                                                                            \
	do {                                                                                       \
		if (!have_exe("redis-server"))                                                     \
			skip();                                                                    \
	} while (0)

/* ---- direct mode ------------------------------------------------------ */

struct incr_state {
	unsigned next, bad, done;
};

struct incr_slot {
	struct incr_state *st;
	unsigned idx;
};

static void on_incr_slot(struct redis *r, const redisReply *reply, enum redis_err err, void *arg)
{
	struct incr_slot *slot = arg;
	struct incr_state *s = slot->st;
	/* In order: the i-th callback is for the i-th command and sees i+1. */
	if (err != REDIS_ENONE || reply->type != REDIS_REPLY_INTEGER || slot->idx != s->next ||
	    reply->integer != (long long)slot->idx + 1)
		s->bad++;
	s->next++;
	s->done++;
}

static bool incr_done(void *ctx)
{
	return ((struct incr_state *)ctx)->done == 1000;
}

static void on_closed(struct redis *r, const redisReply *reply, enum redis_err err, void *arg)
{
	int *n = arg;
	assert_null(reply);
	assert_int_equal(err, REDIS_ECLOSED);
	/* redis_free() is in progress: new commands are refused, not queued. */
	const char *argv[] = {"PING"};
	size_t len = 4;
	assert_int_equal(redis_command(r, on_result, NULL, 1, argv, &len), LV_ERR);
	(*n)++;
}

static void test_direct(void **state)
{
	REQUIRE_REDIS();
	struct fixture *f = *state;
	uint16_t port = free_port();
	start_redis(f, port, 0);
	wait_ping(port, 5000);

	struct redis_config cfg = direct_cfg(port);
	struct redis *r = client(f, &cfg);
	assert_false(redis_available(r));
	assert_true(run_until(f, is_available, r, 3000));

	set_ok(f, r, "plain", "value");
	struct result res;
	const char *get[] = {"GET", "plain"};
	roundtrip(f, r, &res, 2, get, NULL);
	assert_int_equal(res.type, REDIS_REPLY_STRING);
	assert_int_equal(res.len, 5);
	assert_memory_equal(res.str, "value", 5);

	/* Binary safe: NUL bytes in the key and the value. */
	static const char bkey[] = {'k', 0, 'e', 'y'};
	static const char bval[] = {'a', 0, 'b', 0, 0, 'c', (char)0xff};
	const char *bset[] = {"SET", bkey, bval};
	const size_t bsetl[] = {3, sizeof(bkey), sizeof(bval)};
	roundtrip(f, r, &res, 3, bset, bsetl);
	assert_int_equal(res.type, REDIS_REPLY_STATUS);
	const char *bget[] = {"GET", bkey};
	const size_t bgetl[] = {3, sizeof(bkey)};
	roundtrip(f, r, &res, 2, bget, bgetl);
	assert_int_equal(res.type, REDIS_REPLY_STRING);
	assert_int_equal(res.len, sizeof(bval));
	assert_memory_equal(res.str, bval, sizeof(bval));
	const char *kget[] = {"GET", "k"}; /* the key is not cut at its NUL */
	roundtrip(f, r, &res, 2, kget, NULL);
	assert_int_equal(res.type, REDIS_REPLY_NIL);

	/* 1000 pipelined INCRs: every callback, in send order. */
	struct incr_state st = {0};
	static struct incr_slot slots[1000];
	const char *incr[] = {"INCR", "counter"};
	const size_t incrl[] = {4, 7};
	for (unsigned i = 0; i < 1000; i++) {
		slots[i] = (struct incr_slot){.st = &st, .idx = i};
		assert_int_equal(redis_command(r, on_incr_slot, &slots[i], 2, incr, incrl), LV_OK);
	}
	assert_int_equal(st.done, 0);
	assert_true(run_until(f, incr_done, &st, 5000));
	assert_int_equal(st.bad, 0);

	struct redis_stats stats;
	redis_get_stats(r, &stats);
	assert_int_equal(stats.state, REDIS_ST_READY);
	assert_int_equal(stats.breaker, REDIS_BR_CLOSED);
	assert_true(stats.commands >= 1005);
	assert_true(stats.latency_count >= 1005);
	assert_int_equal(stats.errors, 0);
	assert_int_equal(stats.timeouts, 0);
	char want[32];
	snprintf(want, sizeof(want), "127.0.0.1:%u", port);
	assert_string_equal(stats.master_addr, want);

	/* Freed with commands in flight: each gets REDIS_ECLOSED once, inside
	 * redis_free(). */
	int closed = 0;
	for (int i = 0; i < 10; i++) {
		const char *ping[] = {"PING"};
		const size_t pingl[] = {4};
		assert_int_equal(redis_command(r, on_closed, &closed, 1, ping, pingl), LV_OK);
	}
	redis_free(r);
	assert_int_equal(closed, 10);
}

static bool breaker_open(void *ctx)
{
	struct redis_stats s;
	redis_get_stats(ctx, &s);
	return s.breaker == REDIS_BR_OPEN;
}

struct free_in_cb {
	struct redis *r;
	int replies, closed;
};

static void on_free_in_cb(struct redis *r, const redisReply *reply, enum redis_err err, void *arg)
{
	struct free_in_cb *s = arg;
	if (err == REDIS_ECLOSED) {
		s->closed++;
		return;
	}
	assert_int_equal(err, REDIS_ENONE);
	if (s->replies++ == 0) {
		/* The owner goes away inside a reply callback, with more
		 * replies on the wire: the rest get ECLOSED, right here. */
		redis_free(s->r);
		s->r = NULL;
	}
}

static bool freed_in_cb(void *ctx)
{
	return ((struct free_in_cb *)ctx)->r == NULL;
}

static void test_free_inside_callback(void **state)
{
	REQUIRE_REDIS();
	struct fixture *f = *state;
	uint16_t port = free_port();
	start_redis(f, port, 0);
	wait_ping(port, 5000);
	struct redis_config cfg = direct_cfg(port);
	struct free_in_cb s = {.r = client(f, &cfg)};
	assert_true(run_until(f, is_available, s.r, 3000));
	const char *ping[] = {"PING"};
	const size_t pingl[] = {4};
	for (int i = 0; i < 5; i++)
		assert_int_equal(redis_command(s.r, on_free_in_cb, &s, 1, ping, pingl), LV_OK);
	assert_true(run_until(f, freed_in_cb, &s, 3000));
	assert_int_equal(s.replies, 1);
	assert_int_equal(s.closed, 4);
	/* Late replies for the freed client must not reach anything. */
	uint64_t until = now_ms() + 50;
	while (now_ms() < until)
		event_base_loop(f->base, EVLOOP_ONCE);
	assert_int_equal(s.replies + s.closed, 5);
}

/* AUTH and SELECT run on every connect; a wrong password never gets ready. */
static void test_auth_select(void **state)
{
	REQUIRE_REDIS();
	struct fixture *f = *state;
	uint16_t port = free_port();
	char p[8], db[32];
	snprintf(p, sizeof(p), "%u", port);
	snprintf(db, sizeof(db), "dump-%u.rdb", port);
	char *argv[] = {"redis-server",
	                "--port",
	                p,
	                "--bind",
	                "127.0.0.1",
	                "--save",
	                "",
	                "--dir",
	                f->dir,
	                "--dbfilename",
	                db,
	                "--requirepass",
	                "s3cret",
	                NULL};
	spawn(f, "auth.log", argv);

	struct redis_config bad = direct_cfg(port);
	snprintf(bad.password, sizeof(bad.password), "wrong");
	bad.backoff_min_ms = 10;
	bad.backoff_max_ms = 20;
	struct redis *rb = client(f, &bad);

	struct redis_config cfg = direct_cfg(port);
	snprintf(cfg.password, sizeof(cfg.password), "s3cret");
	cfg.db = 3;
	cfg.backoff_min_ms = 10;
	cfg.backoff_max_ms = 50;
	struct redis *r = client(f, &cfg);
	assert_true(run_until(f, is_available, r, 5000));
	set_ok(f, r, "in-db3", "yes");

	redisContext *c = sync_connect(port);
	assert_non_null(c);
	redisReply *rep = redisCommand(c, "AUTH s3cret");
	assert_non_null(rep);
	freeReplyObject(rep);
	rep = redisCommand(c, "GET in-db3");
	assert_non_null(rep);
	assert_int_equal(rep->type, REDIS_REPLY_NIL); /* not in db 0 */
	freeReplyObject(rep);
	rep = redisCommand(c, "SELECT 3");
	freeReplyObject(rep);
	rep = redisCommand(c, "GET in-db3");
	assert_non_null(rep);
	assert_int_equal(rep->type, REDIS_REPLY_STRING);
	assert_string_equal(rep->str, "yes");
	freeReplyObject(rep);
	redisFree(c);

	/* Every handshake of the other client fails: its breaker opens. */
	assert_true(run_until(f, breaker_open, rb, 3000));
	assert_false(redis_available(rb));
	struct redis_stats st;
	redis_get_stats(rb, &st);
	assert_int_not_equal(st.state, REDIS_ST_READY);
	redis_free(rb);
	redis_free(r);
}

/* ---- deferred failures ------------------------------------------------ */

static void test_down_is_deferred(void **state)
{
	struct fixture *f = *state;
	uint16_t port = free_port(); /* nothing listens there */
	struct redis_config cfg = direct_cfg(port);
	cfg.backoff_min_ms = 1000; /* no second attempt during this test */
	struct redis *r = client(f, &cfg);
	struct result res;
	const char *argv[] = {"GET", "x"};
	cmd(r, &res, 2, argv, NULL);
	assert_true(run_until(f, has_result, &res, 1000));
	assert_int_equal(res.err, REDIS_EDOWN);
	assert_false(redis_available(r));
	/* Exactly once: more loop iterations bring no second call. */
	uint64_t until = now_ms() + 50;
	while (now_ms() < until)
		event_base_loop(f->base, EVLOOP_ONCE);
	assert_int_equal(res.calls, 1);
	struct redis_stats stats;
	redis_get_stats(r, &stats);
	assert_int_equal(stats.state, REDIS_ST_DOWN);
	assert_int_equal(stats.errors, 1);
	/* The refused connect is logged with its reason and counted. */
	assert_int_equal(lines_with(f, "cannot connect to 127.0.0.1:"), 1);
	assert_int_equal(lines_with(f, "Connection refused"), 1);
	assert_int_equal(watch_stats(f).connect_errors, 1);
	assert_int_equal(watch_stats(f).state, RW_DOWN);

	/* A peer that accepts TCP but never answers: the handshake deadline
	 * (connect_timeout) fails each attempt and the breaker opens. */
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(lfd >= 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 64), 0);
	socklen_t salen = sizeof(sa);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &salen), 0);
	struct redis_config mute = direct_cfg(ntohs(sa.sin_port));
	mute.connect_timeout_ms = 50;
	mute.backoff_min_ms = 10;
	mute.backoff_max_ms = 20;
	mute.breaker_failures = 2;
	struct redis *rm = client(f, &mute);
	uint64_t t0 = now_ms();
	assert_true(run_until(f, breaker_open, rm, 2000));
	assert_true(now_ms() - t0 >= 90); /* two 50 ms deadlines, not an instant refusal */
	redis_get_stats(rm, &stats);
	assert_int_not_equal(stats.state, REDIS_ST_READY);
	assert_true(watch_stats(f).connect_timeouts >= 2);
	assert_true(watch_stats(f).reconnect_attempts >= 1);
	assert_int_equal(lines_with(f, "breaker open (2 failures in a row)"), 1);
	redis_free(rm);
	close(lfd);

	/* Bad configs are refused up front, never resolved or blocked on: a
	 * name without a resolver to look it up, a host that is no name. */
	char err[256];
	struct redis_config bad = direct_cfg(port);
	snprintf(bad.host, sizeof(bad.host), "localhost");
	assert_null(redis_new(f->base, &bad, err, sizeof(err)));
	assert_non_null(strstr(err, "is a name, and there is no resolver"));
	snprintf(bad.host, sizeof(bad.host), "no name!");
	bad.resolver = f->resolver;
	assert_null(redis_new(f->base, &bad, err, sizeof(err)));
	assert_non_null(strstr(err, "is not an address or host name"));
	struct redis_config nomaster = {.nsentinels = 1, .sentinel_ports = {26379}};
	snprintf(nomaster.sentinels[0], sizeof(nomaster.sentinels[0]), "127.0.0.1");
	assert_null(redis_new(f->base, &nomaster, err, sizeof(err)));
	redis_free(r);
}

/* ---- timeout ---------------------------------------------------------- */

static void test_timeout(void **state)
{
	REQUIRE_REDIS();
	struct fixture *f = *state;
	uint16_t port = free_port();
	start_redis(f, port, 0);
	wait_ping(port, 5000);

	struct redis_config cfg = direct_cfg(port);
	cfg.command_timeout_ms = 50;
	struct redis *r = client(f, &cfg);
	assert_true(run_until(f, is_available, r, 3000));
	set_ok(f, r, "k", "before");

	/* Another client stalls the server for every client for 300 ms. */
	redisContext *c = sync_connect(port);
	assert_non_null(c);
	redisReply *rep = redisCommand(c, "CLIENT PAUSE 300");
	assert_non_null(rep);
	assert_int_equal(rep->type, REDIS_REPLY_STATUS);
	freeReplyObject(rep);

	struct result res;
	const char *get[] = {"GET", "k"};
	uint64_t t0 = now_ms();
	cmd(r, &res, 2, get, NULL);
	assert_true(run_until(f, has_result, &res, 1000));
	uint64_t took = res.at_ms - t0;
	assert_int_equal(res.err, REDIS_ETIMEOUT);
	if (took < 45 || took > 150)
		fail_msg("timeout after %llu ms, want about 50", (unsigned long long)took);

	/* Wait out the pause on the other connection (it blocks until then). */
	rep = redisCommand(c, "PING");
	assert_non_null(rep);
	freeReplyObject(rep);
	redisFree(c);

	/* The late GET reply must be absorbed, not handed to the next command:
	 * SET then GET see their own replies. */
	set_ok(f, r, "k", "after");
	struct result res2;
	roundtrip(f, r, &res2, 2, get, NULL);
	assert_int_equal(res2.err, REDIS_ENONE);
	assert_int_equal(res2.type, REDIS_REPLY_STRING);
	assert_memory_equal(res2.str, "after", 5);
	assert_int_equal(res.calls, 1);

	struct redis_stats stats;
	redis_get_stats(r, &stats);
	assert_int_equal(stats.timeouts, 1);
	assert_int_equal(stats.breaker, REDIS_BR_CLOSED);
	assert_true(redis_available(r));
	redis_free(r);
}

/* ---- server lost and back: errors, breaker, reconnect ------------------ */

static bool all_called(void *ctx)
{
	struct result *res = ctx;
	for (int i = 0; i < 5; i++)
		if (res[i].calls == 0)
			return false;
	return true;
}

static void test_reconnect_breaker(void **state)
{
	REQUIRE_REDIS();
	struct fixture *f = *state;
	uint16_t port = free_port();
	unsigned slot = start_redis(f, port, 0);
	wait_ping(port, 5000);

	struct redis_config cfg = direct_cfg(port);
	cfg.command_timeout_ms = 500;
	cfg.connect_timeout_ms = 200;
	cfg.backoff_min_ms = 20;
	cfg.backoff_max_ms = 100;
	cfg.breaker_failures = 3;
	cfg.breaker_open_ms = 300;
	struct redis *r = client(f, &cfg);
	assert_true(run_until(f, is_available, r, 3000));
	set_ok(f, r, "k", "v");

	/* Commands in flight when the server dies all fail, once each. */
	struct result res[5];
	const char *get[] = {"GET", "k"};
	for (int i = 0; i < 5; i++)
		cmd(r, &res[i], 2, get, NULL);
	kill_proc(f, slot);
	assert_true(run_until(f, all_called, res, 2000));
	for (int i = 0; i < 5; i++) {
		assert_int_equal(res[i].calls, 1);
		assert_int_equal(res[i].err, REDIS_EIO);
	}
	assert_false(redis_available(r));

	/* Reconnects keep failing: the breaker opens, commands fail fast. */
	assert_true(run_until(f, breaker_open, r, 3000));
	struct result down;
	cmd(r, &down, 2, get, NULL);
	assert_true(run_until(f, has_result, &down, 1000));
	assert_int_equal(down.err, REDIS_EDOWN);

	/* Back on the same port: reconnect, half-open probe, closed. */
	start_redis(f, port, 0);
	wait_ping(port, 5000);
	assert_true(run_until(f, is_available, r, 5000));
	struct redis_stats stats;
	redis_get_stats(r, &stats);
	assert_int_equal(stats.breaker, REDIS_BR_CLOSED);
	assert_int_equal(stats.state, REDIS_ST_READY);
	assert_true(stats.errors >= 6);
	/* What the process was told: one line each, with the reasons. */
	struct redis_watch_stats ws = watch_stats(f);
	assert_int_equal(ws.losses, 1);
	assert_true(ws.connect_errors >= 2);
	assert_true(ws.reconnect_attempts >= 3);
	assert_int_equal(ws.reconnects, 1);
	assert_true(ws.breaker_opens >= 1);
	assert_int_equal(ws.state, RW_UP);
	assert_int_equal(lines_with(f, "redis: connected to 127.0.0.1:"), 1);
	assert_int_equal(lines_with(f, "lost the connection to 127.0.0.1:"), 1);
	assert_int_equal(lines_with(f, "breaker open (3 failures in a row)"), 1);
	assert_int_equal(lines_with(f, "redis: reconnected to 127.0.0.1:"), 1);
	assert_true(lines_with(f, "breaker closed") >= 1);
	set_ok(f, r, "k", "again");
	redis_free(r);
}

/* ---- host names -------------------------------------------------------- */

static bool get_is(struct fixture *f, const char *ip, uint16_t port, const char *key, const char *want)
{
	redisContext *c = sync_connect_at(ip, port);
	assert_non_null(c);
	redisReply *rep = redisCommand(c, "GET %s", key);
	bool ok = rep && rep->type == REDIS_REPLY_STRING && strcmp(rep->str, want) == 0;
	if (rep)
		freeReplyObject(rep);
	redisFree(c);
	return ok;
}

/* A name is looked up again at every reconnect: when it moves (a Service
 * recreated with another address), the client follows it. */
static void test_name_is_followed_when_it_moves(void **state)
{
	REQUIRE_REDIS();
	struct fixture *f = *state;
	uint16_t port = free_port();
	unsigned old_slot = start_redis_at(f, "127.0.0.1", port, 0);
	start_redis_at(f, "127.0.0.2", port, 0);
	wait_ping_at("127.0.0.1", port, 5000);
	wait_ping_at("127.0.0.2", port, 5000);
	set_name("redis.test", "127.0.0.1");

	struct redis_config cfg = direct_cfg(port);
	snprintf(cfg.host, sizeof(cfg.host), "redis.test");
	cfg.backoff_min_ms = 10;
	cfg.backoff_max_ms = 50;
	struct redis *r = client(f, &cfg);
	assert_true(run_until(f, is_available, r, 3000));
	set_ok(f, r, "where", "first");
	assert_true(get_is(f, "127.0.0.1", port, "where", "first"));
	char line[128];
	snprintf(line, sizeof(line), "redis: connected to redis.test:%u (127.0.0.1)", port);
	assert_int_equal(lines_with(f, line), 1);

	set_name("redis.test", "127.0.0.2");
	kill_proc(f, old_slot);
	assert_true(run_until(f, is_unavailable, r, 3000));
	assert_true(run_until(f, is_available, r, 5000));
	set_ok(f, r, "where", "second");
	assert_true(get_is(f, "127.0.0.2", port, "where", "second"));
	snprintf(line, sizeof(line), "redis: reconnected to redis.test:%u (127.0.0.2)", port);
	assert_int_equal(lines_with(f, line), 1);
	struct redis_stats st;
	redis_get_stats(r, &st);
	snprintf(line, sizeof(line), "redis.test:%u", port);
	assert_string_equal(st.master_addr, line);
	redis_free(r);
}

static bool resolve_failed_twice(void *ctx)
{
	return watch_stats(ctx).resolve_errors >= 2;
}

/* A name that does not resolve yet is no start-up error: the client says so
 * once, keeps trying, and connects once the name resolves. */
static void test_name_that_does_not_resolve_yet(void **state)
{
	REQUIRE_REDIS();
	struct fixture *f = *state;
	uint16_t port = free_port();
	start_redis(f, port, 0);
	wait_ping(port, 5000);
	struct redis_config cfg = direct_cfg(port);
	snprintf(cfg.host, sizeof(cfg.host), "late.test");
	cfg.backoff_min_ms = 10;
	cfg.backoff_max_ms = 20;
	struct redis *r = client(f, &cfg);
	assert_true(run_until(f, resolve_failed_twice, f, 3000));
	assert_false(redis_available(r));
	struct result res;
	const char *get[] = {"GET", "x"};
	cmd(r, &res, 2, get, NULL);
	assert_true(run_until(f, has_result, &res, 1000));
	assert_int_equal(res.err, REDIS_EDOWN); /* callers pass through */
	char line[160];
	snprintf(line, sizeof(line),
	         "redis: cannot connect to late.test:%u (cannot resolve late.test: not in the test's table)",
	         port);
	assert_int_equal(lines_with(f, line), 1);

	set_name("late.test", "127.0.0.1");
	assert_true(run_until(f, is_available, r, 3000));
	set_ok(f, r, "k", "v");
	snprintf(line, sizeof(line), "redis: connected to late.test:%u (127.0.0.1) after", port);
	assert_int_equal(lines_with(f, line), 1);
	assert_int_equal(watch_stats(f).connect_errors, 0);
	redis_free(r);
}

/* ---- Sentinel --------------------------------------------------------- */

/* Starts a sentinel on <sport> whose config ends with <monitor> (the
 * monitor line and its options), and waits for it to answer. */
static void start_sentinel(struct fixture *f, uint16_t sport, const char *monitor)
{
	char conf[128], log[48];
	snprintf(conf, sizeof(conf), "%s/sentinel-%u.conf", f->dir, sport);
	snprintf(log, sizeof(log), "sentinel-%u.log", sport);
	FILE *fp = fopen(conf, "w");
	assert_non_null(fp);
	fprintf(fp, "port %u\nbind 127.0.0.1\ndir %s\n%s", sport, f->dir, monitor);
	fclose(fp);
	char *argv[] = {"redis-server", conf, "--sentinel", NULL};
	spawn(f, log, argv);
	wait_ping(sport, 5000);
}

/* A client of the sentinel <host>:<sport> for "mymaster". */
static struct redis *sentinel_client(struct fixture *f, const char *host, uint16_t sport)
{
	struct redis_config cfg = {.nsentinels = 1,
	                           .sentinel_ports = {sport},
	                           .command_timeout_ms = 1000,
	                           .connect_timeout_ms = 500,
	                           .backoff_min_ms = 20,
	                           .backoff_max_ms = 200};
	snprintf(cfg.sentinels[0], sizeof(cfg.sentinels[0]), "%s", host);
	snprintf(cfg.master, sizeof(cfg.master), "mymaster");
	return client(f, &cfg);
}

static uint16_t want_port;

static bool followed_failover(void *ctx)
{
	struct redis_stats s;
	redis_get_stats(ctx, &s);
	char want[32];
	snprintf(want, sizeof(want), "127.0.0.1:%u", want_port);
	return strcmp(s.master_addr, want) == 0 && redis_available(ctx);
}

static void test_sentinel_failover(void **state)
{
	REQUIRE_REDIS();
	struct fixture *f = *state;
	uint16_t mport = free_port(), rport = free_port(), sport = free_port();
	unsigned master_slot = start_redis(f, mport, 0);
	wait_ping(mport, 5000);
	start_redis(f, rport, mport);
	wait_ping(rport, 5000);
	wait_reply_contains(rport, "master_link_status:up", 5000, "INFO replication");

	char monitor[256];
	snprintf(monitor, sizeof(monitor),
	         "sentinel monitor mymaster 127.0.0.1 %u 1\n"
	         "sentinel down-after-milliseconds mymaster 500\n"
	         "sentinel failover-timeout mymaster 2000\n"
	         "sentinel parallel-syncs mymaster 1\n",
	         mport);
	start_sentinel(f, sport, monitor);
	char rp[16];
	snprintf(rp, sizeof(rp), "%u", rport);
	/* The sentinel has learnt of the replica (from the master's INFO). */
	wait_reply_contains(sport, rp, 5000, "SENTINEL replicas mymaster");

	struct redis *r = sentinel_client(f, "127.0.0.1", sport);
	assert_true(run_until(f, is_available, r, 3000));
	struct redis_stats stats;
	redis_get_stats(r, &stats);
	char want[32];
	snprintf(want, sizeof(want), "127.0.0.1:%u", mport);
	assert_string_equal(stats.master_addr, want);
	assert_int_equal(watch_stats(f).failovers, 0);
	set_ok(f, r, "k", "on-master");

	/* Our +switch-master subscription is in place before we fail over. */
	wait_reply_contains(sport, "cmd=subscribe", 3000, "CLIENT LIST");

	/* Freeze the old master, as a partition would: our connection to it
	 * stays up and the sentinel's CLIENT KILL never reaches it, so only
	 * the +switch-master message can move us. */
	assert_int_equal(kill(f->pids[master_slot], SIGSTOP), 0);

	uint64_t deadline = now_ms() + 5000;
	for (;;) {
		redisContext *c = sync_connect(sport);
		assert_non_null(c);
		redisReply *rep = redisCommand(c, "SENTINEL FAILOVER mymaster");
		bool ok = rep && rep->type == REDIS_REPLY_STATUS;
		if (rep)
			freeReplyObject(rep);
		redisFree(c);
		if (ok)
			break;
		/* -NOGOODSLAVE until the sentinel has the replica's INFO. */
		assert_true(now_ms() < deadline);
		pause_ms(50);
	}

	want_port = rport;
	assert_true(run_until(f, followed_failover, r, 15000));
	assert_int_equal(watch_stats(f).failovers, 1);
	char moved[96];
	snprintf(moved, sizeof(moved), "the master moved from 127.0.0.1:%u to 127.0.0.1:%u", mport, rport);
	assert_int_equal(lines_with(f, moved), 1);
	set_ok(f, r, "k", "on-new-master");
	struct result res;
	const char *get[] = {"GET", "k"};
	roundtrip(f, r, &res, 2, get, NULL);
	assert_int_equal(res.type, REDIS_REPLY_STRING);
	assert_memory_equal(res.str, "on-new-master", 13);
	redis_free(r);
}

/* Sentinels given by name, announcing the master by name (Redis 6.2's
 * resolve-hostnames and announce-hostnames, as Kubernetes charts set them):
 * every one of the three lookups (discovery, subscription, master). */
static void test_sentinel_names(void **state)
{
	REQUIRE_REDIS();
	struct fixture *f = *state;
	uint16_t mport = free_port(), sport = free_port();
	start_redis(f, mport, 0);
	wait_ping(mport, 5000);
	char monitor[160];
	snprintf(monitor, sizeof(monitor),
	         "sentinel resolve-hostnames yes\nsentinel announce-hostnames yes\n"
	         "sentinel monitor mymaster localhost %u 1\n",
	         mport);
	start_sentinel(f, sport, monitor);
	wait_reply_contains(sport, "localhost", 5000, "SENTINEL get-master-addr-by-name mymaster");
	set_name("sentinel.test", "127.0.0.1");
	set_name("localhost", "127.0.0.1");

	struct redis *r = sentinel_client(f, "sentinel.test", sport);
	assert_true(run_until(f, is_available, r, 5000));
	set_ok(f, r, "k", "named");
	struct redis_stats stats;
	redis_get_stats(r, &stats);
	char want[64];
	snprintf(want, sizeof(want), "localhost:%u", mport);
	assert_string_equal(stats.master_addr, want);
	char line[96];
	snprintf(line, sizeof(line), "redis: connected to localhost:%u (127.0.0.1)", mport);
	assert_int_equal(lines_with(f, line), 1);
	/* the +switch-master subscription found the sentinel by name too */
	wait_reply_contains(sport, "cmd=subscribe", 3000, "CLIENT LIST");
	redis_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_direct, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_free_inside_callback, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_auth_select, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_down_is_deferred, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_reconnect_breaker, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_sentinel_failover, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_name_is_followed_when_it_moves, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_name_that_does_not_resolve_yet, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_sentinel_names, setup, teardown),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
