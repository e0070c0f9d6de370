/*
 * test_l2.c - the Redis cache tier's protocol against a real redis-server,
 * started on a free loopback port in a private directory: fills and leases
 * between two "replicas" (two clients), purges by URL, prefix and surrogate
 * tags, the race between a slow fill and a purge, lease expiry and
 * compare-and-delete, the NOSCRIPT fallback, binary records, and l2_free()
 * with commands in flight.
 *
 * Every wait polls with a deadline; the test kills exactly the PID it
 * started, in its teardown (and the child dies with the test process through
 * PR_SET_PDEATHSIG if it crashes).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
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

#include "cache/key.h"
#include "cache/l2.h"
#include "redis_harness.h"
#include "cache/redis.h"

#define WAIT_MS 3000

/* ---- fixture: one redis-server, two clients, two l2s ------------------- */

struct fixture {
	struct redis_temp t;
	uint16_t port;           /* t's */
	struct event_base *base; /* t's */
	struct redis *ra, *rb;
	struct l2 *a, *b; /* two replicas sharing one Redis */
};


static bool run_until(struct fixture *f, cond_fn cond, void *ctx, unsigned ms)
{
	return loop_until(f->base, cond, ctx, ms);
}

static bool is_available(void *ctx)
{
	return redis_available(ctx);
}

static struct redis *client(struct fixture *f)
{
	struct redis_config cfg = {.port = f->port, .command_timeout_ms = 2000};
	snprintf(cfg.host, sizeof(cfg.host), "127.0.0.1");
	char err[256] = "";
	struct redis *r = redis_new(f->base, &cfg, err, sizeof(err));
	if (!r)
		fail_msg("redis_new: %s", err);
	assert_true(run_until(f, is_available, r, WAIT_MS));
	return r;
}

static int setup(void **state)
{
	if (!have_exe("redis-server")) {
		*state = NULL;
		return 0;
	}
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	redis_temp_start(&f->t, "l2");
	f->base = f->t.base;
	f->port = f->t.port;
	*state = f;

	f->ra = client(f);
	f->rb = client(f);
	f->a = l2_new(f->ra);
	f->b = l2_new(f->rb);
	assert_non_null(f->a);
	assert_non_null(f->b);
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	if (!f)
		return 0;
	l2_free(f->a);
	l2_free(f->b);
	if (f->ra)
		redis_free(f->ra);
	if (f->rb)
		redis_free(f->rb);
	redis_temp_stop(&f->t);
	free(f);
	return 0;
}

#define REQUIRE_REDIS(f)                                                                           \
	do {                                                                                       \
		if (!(f))                                                                          \
			skip();                                                                    \
	} while (0)

/* ---- synchronous wrappers ---------------------------------------------- */

struct outcome {
	int calls;
	enum l2_err err;
	int res;
	long long value;
	struct l2_lease lease;
	char *rec;
	size_t len;
};

static bool has_outcome(void *ctx)
{
	return ((struct outcome *)ctx)->calls > 0;
}

static void on_lookup(struct l2 *l2, enum l2_err err, enum l2_lookup_res res, const char *rec,
                      size_t len, void *arg)
{
	struct outcome *o = arg;
	o->calls++;
	o->err = err;
	o->res = res;
	assert_true((rec != NULL) == (res == L2_HIT));
	if (rec) {
		o->rec = malloc(len ? len : 1);
		assert_non_null(o->rec);
		memcpy(o->rec, rec, len);
		o->len = len;
	}
}

static void on_begin(struct l2 *l2, enum l2_err err, const struct l2_lease *lease, void *arg)
{
	struct outcome *o = arg;
	o->calls++;
	o->err = err;
	assert_true((lease == NULL) == (err != L2_ENONE));
	if (lease)
		o->lease = *lease;
}

static void on_commit(struct l2 *l2, enum l2_err err, enum l2_commit_res res, void *arg)
{
	struct outcome *o = arg;
	o->calls++;
	o->err = err;
	o->res = res;
}

static void on_int(struct l2 *l2, enum l2_err err, long long value, void *arg)
{
	struct outcome *o = arg;
	o->calls++;
	o->err = err;
	o->value = value;
}

static void wait_outcome(struct fixture *f, struct outcome *o)
{
	/* Never synchronous. */
	assert_int_equal(o->calls, 0);
	assert_true(run_until(f, has_outcome, o, WAIT_MS));
	assert_int_equal(o->calls, 1);
	if (o->err != L2_ENONE)
		fail_msg("l2 error: %s", l2_strerror(o->err));
}

/* The key of one request and the tags of its entry. */
struct req {
	char key[512];
	size_t keylen;
	char tagbuf[8][L2_TAG_MAX];
	struct l2_str tags[8];
	unsigned ntags;
};

static void add_tag(struct req *q, const char *t, size_t len)
{
	assert_true(len > 0);
	assert_true(q->ntags < 8);
	memcpy(q->tagbuf[q->ntags], t, len);
	q->tags[q->ntags].p = q->tagbuf[q->ntags];
	q->tags[q->ntags].len = len;
	q->ntags++;
}

/* Copies a req, pointing the tags at the copy's own buffers. */
static void req_copy(struct req *dst, const struct req *src)
{
	*dst = *src;
	for (unsigned i = 0; i < dst->ntags; i++)
		dst->tags[i].p = dst->tagbuf[i];
}

/* svc US path US host [US vary...], tagged with its URL, its path prefixes
 * and the surrogate key <skey> when not NULL. */
static void make_req(struct req *out, const char *path, const char *host, const char *vary,
                     const char *skey)
{
	struct req q;
	memset(&q, 0, sizeof(q));
	q.keylen =
	        (size_t)snprintf(q.key, sizeof(q.key), "svc%c%s%c%s", KEY_SEP, path, KEY_SEP, host);
	if (vary)
		q.keylen += (size_t)snprintf(q.key + q.keylen, sizeof(q.key) - q.keylen, "%c%s",
		                             KEY_VARY_SEP, vary);
	char t[L2_TAG_MAX];
	size_t n = l2_tag_url(q.key, q.keylen, t, sizeof(t));
	add_tag(&q, t, n);
	size_t lens[8];
	unsigned np = l2_prefix_lens(path, strlen(path), lens, 4);
	for (unsigned i = 0; i < np; i++)
		add_tag(&q, t, l2_tag_prefix("svc", path, lens[i], t, sizeof(t)));
	if (skey)
		add_tag(&q, t, l2_tag_key("svc", skey, strlen(skey), t, sizeof(t)));
	req_copy(out, &q);
}

static struct outcome lookup(struct fixture *f, struct l2 *l2, const struct req *q)
{
	struct outcome o = {0};
	assert_int_equal(l2_lookup(l2, q->key, q->keylen, on_lookup, &o), LV_OK);
	wait_outcome(f, &o);
	return o;
}

static void expect_miss(struct fixture *f, struct l2 *l2, const struct req *q)
{
	struct outcome o = lookup(f, l2, q);
	assert_int_not_equal(o.res, L2_HIT);
}

static void expect_hit(struct fixture *f, struct l2 *l2, const struct req *q, const char *rec,
                       size_t len)
{
	struct outcome o = lookup(f, l2, q);
	assert_int_equal(o.res, L2_HIT);
	assert_int_equal(o.len, len);
	assert_memory_equal(o.rec, rec, len);
	free(o.rec);
}

static struct l2_lease begin(struct fixture *f, struct l2 *l2, const struct req *q, uint64_t ttl)
{
	struct outcome o = {0};
	assert_int_equal(l2_fill_begin(l2, q->key, q->keylen, q->tags, q->ntags, ttl, on_begin, &o),
	                 LV_OK);
	wait_outcome(f, &o);
	assert_int_equal(o.lease.ngens, q->ntags);
	return o.lease;
}

static int commit(struct fixture *f, struct l2 *l2, const struct req *q,
                  const struct l2_lease *lease, const char *rec, size_t len)
{
	struct outcome o = {0};
	assert_int_equal(l2_fill_commit(l2, q->key, q->keylen, lease, q->tags, q->ntags, rec, len,
	                                60000, on_commit, &o),
	                 LV_OK);
	wait_outcome(f, &o);
	return o.res;
}

static long long fill_abort(struct fixture *f, struct l2 *l2, const struct req *q,
                            const struct l2_lease *lease)
{
	struct outcome o = {0};
	assert_int_equal(l2_fill_abort(l2, q->key, q->keylen, lease, on_int, &o), LV_OK);
	wait_outcome(f, &o);
	return o.value;
}

static long long purge(struct fixture *f, struct l2 *l2, const struct l2_str *tag)
{
	struct outcome o = {0};
	assert_int_equal(l2_purge_tag(l2, tag->p, tag->len, on_int, &o), LV_OK);
	wait_outcome(f, &o);
	return o.value;
}

/* Fills q from replica l2 with rec, which must be stored. */
static void fill(struct fixture *f, struct l2 *l2, const struct req *q, const char *rec, size_t len)
{
	struct l2_lease ls = begin(f, l2, q, 5000);
	assert_true(ls.won);
	assert_int_equal(commit(f, l2, q, &ls, rec, len), L2_COMMIT_STORED);
}

static const char REC[] = {'L', 'V', 'R', 'C', 1,    0,    0,          0,
                           'a', 0,   0,   'b', '\r', '\n', (char)0xff, 0};

/* ---- tests ---------------------------------------------------------------- */

static void test_tags(void **state)
{
	char k[256], t[L2_TAG_MAX];
	int kl = snprintf(k, sizeof(k), "svc%c/a?x=1%cexample.com%caccept=x%caccept-encoding=gzip",
	                  KEY_SEP, KEY_SEP, KEY_SEP, KEY_VARY_SEP);
	size_t n = l2_tag_url(k, (size_t)kl, t, sizeof(t));
	char want[64];
	int wl = snprintf(want, sizeof(want), "u:svc%c/a?x=1%cexample.com", KEY_SEP, KEY_SEP);
	assert_int_equal(n, wl);
	assert_memory_equal(t, want, n);
	/* Vary variants and key-header variants share the URL tag. */
	kl = snprintf(k, sizeof(k), "svc%c/a?x=1%cexample.com%caccept=y", KEY_SEP, KEY_SEP,
	              KEY_VARY_SEP);
	assert_int_equal(l2_tag_url(k, (size_t)kl, t, sizeof(t)), wl);
	assert_int_equal(l2_tag_url("svc", 3, t, sizeof(t)), 0);
	assert_int_equal(l2_tag_url(k, (size_t)kl, t, 5), 0);

	size_t lens[8];
	assert_int_equal(l2_prefix_lens("/api/users/7?q=/x/", 18, lens, 8), 3);
	assert_int_equal(lens[0], 1);
	assert_int_equal(lens[1], 5);
	assert_int_equal(lens[2], 11);
	assert_int_equal(l2_prefix_lens("/api/users/7", 12, lens, 2), 2);

	n = l2_tag_prefix("svc", "/api/", 5, t, sizeof(t));
	wl = snprintf(want, sizeof(want), "p:svc%c/api/", KEY_SEP);
	assert_int_equal(n, wl);
	assert_memory_equal(t, want, n);
	n = l2_tag_key("svc", "user-7", 6, t, sizeof(t));
	wl = snprintf(want, sizeof(want), "k:svc%cuser-7", KEY_SEP);
	assert_int_equal(n, wl);
	assert_memory_equal(t, want, n);
}

/* Miss, one replica wins the lease, the other loses, commit, shared hit. */
static void test_fill_and_share(void **state)
{
	struct fixture *f = *state;
	REQUIRE_REDIS(f);
	struct req q;
	make_req(&q, "/api/users/7", "example.com", NULL, "user-7");

	struct outcome o = lookup(f, f->b, &q);
	assert_int_equal(o.res, L2_MISS);

	struct l2_lease la = begin(f, f->a, &q, 5000);
	assert_true(la.won);
	/* the winner created every generation, each with a fresh value */
	for (unsigned i = 0; i < la.ngens; i++)
		assert_true(la.gens[i] > 0 && la.gens[i] <= (uint64_t)INT64_MAX);
	struct l2_lease lb = begin(f, f->b, &q, 5000);
	assert_false(lb.won);
	assert_int_equal(lb.token_len, la.token_len);
	assert_memory_equal(lb.token, la.token, la.token_len); /* who holds it */

	assert_int_equal(commit(f, f->a, &q, &la, REC, sizeof(REC)), L2_COMMIT_STORED);
	expect_hit(f, f->b, &q, REC, sizeof(REC));
	expect_hit(f, f->a, &q, REC, sizeof(REC));

	/* The lease went with the commit: the next fill wins at once. */
	struct l2_lease again = begin(f, f->b, &q, 5000);
	assert_true(again.won);
	assert_int_equal(fill_abort(f, f->b, &q, &again), 1);

	/* A large binary record, and a binary key. */
	size_t big = 300000;
	char *rec = malloc(big);
	assert_non_null(rec);
	for (size_t i = 0; i < big; i++)
		rec[i] = (char)(i * 131 % 256);
	struct req bq;
	req_copy(&bq, &q);
	bq.key[3] = '\0'; /* "svc\0..." is another key */
	fill(f, f->a, &bq, rec, big);
	expect_hit(f, f->b, &bq, rec, big);
	expect_hit(f, f->b, &q, REC, sizeof(REC));
	free(rec);
}

static struct outcome lookup_tags(struct fixture *f, struct l2 *l2, const struct req *q, unsigned ntags)
{
	struct outcome o = {0};
	assert_int_equal(l2_lookup_tags(l2, q->key, q->keylen, q->tags, ntags, on_lookup, &o), LV_OK);
	wait_outcome(f, &o);
	return o;
}

/* The MGET lookup agrees with the script lookup: hits while every
 * generation holds, stale once any moved, and an entry with tags the caller
 * did not name is checked by the script. */
static void test_lookup_without_script(void **state)
{
	struct fixture *f = *state;
	REQUIRE_REDIS(f);
	struct req q;
	make_req(&q, "/api/users/8", "example.com", NULL, "user-8");
	assert_true(q.ntags >= 3);
	struct outcome o = lookup_tags(f, f->b, &q, q.ntags);
	assert_int_equal(o.res, L2_MISS);
	fill(f, f->a, &q, REC, sizeof(REC));
	o = lookup_tags(f, f->b, &q, q.ntags);
	assert_int_equal(o.res, L2_HIT);
	assert_int_equal(o.len, sizeof(REC));
	assert_memory_equal(o.rec, REC, sizeof(REC));
	free(o.rec);
	o = lookup_tags(f, f->b, &q, 1); /* names only the URL tag: the rest via the script */
	assert_int_equal(o.res, L2_HIT);
	free(o.rec);
	assert_true(purge(f, f->a, &q.tags[q.ntags - 1]) >= 1);
	o = lookup_tags(f, f->b, &q, q.ntags);
	assert_int_equal(o.res, L2_STALE);
	o = lookup_tags(f, f->b, &q, 1); /* the moved tag is one it did not name */
	assert_int_not_equal(o.res, L2_HIT);
	free(o.rec);
}

static void test_purges(void **state)
{
	struct fixture *f = *state;
	REQUIRE_REDIS(f);
	struct req q;
	make_req(&q, "/api/users/7", "example.com", NULL, "user-7");
	struct req v;
	make_req(&v, "/api/users/7", "example.com", "accept=text/html", NULL);
	struct req other;
	make_req(&other, "/static/app.js", "example.com", NULL, "assets");
	/* tags: 0 url, 1 "/", 2 "/api/", 3 "/api/users/", 4 surrogate */
	assert_int_equal(q.ntags, 5);

	fill(f, f->a, &q, REC, sizeof(REC));
	fill(f, f->a, &v, "variant", 7);
	fill(f, f->a, &other, "js", 2);

	/* An unrelated tag: everything stays. */
	assert_int_equal(purge(f, f->b, &other.tags[3]), 1); /* k:svc US assets */
	expect_hit(f, f->b, &q, REC, sizeof(REC));
	expect_hit(f, f->b, &v, "variant", 7);
	expect_miss(f, f->b, &other);

	/* The URL tag covers the Vary variant too. */
	assert_int_equal(purge(f, f->b, &q.tags[0]), 1);
	struct outcome o = lookup(f, f->b, &q);
	assert_int_equal(o.res, L2_STALE); /* found dead, deleted */
	o = lookup(f, f->b, &q);
	assert_int_equal(o.res, L2_MISS);
	expect_miss(f, f->b, &v);

	/* Refilled after the purge: current generations, so a hit again. */
	fill(f, f->a, &q, REC, sizeof(REC));
	expect_hit(f, f->b, &q, REC, sizeof(REC));

	/* A prefix purge. */
	assert_int_equal(purge(f, f->b, &q.tags[2]), 1); /* "/api/" */
	expect_miss(f, f->b, &q);

	/* A surrogate key purge. */
	fill(f, f->a, &q, REC, sizeof(REC));
	expect_hit(f, f->b, &q, REC, sizeof(REC));
	assert_int_equal(purge(f, f->b, &q.tags[4]), 1);
	expect_miss(f, f->b, &q);
}

/* A fill that began before a purge must not land after it. */
static void test_race(void **state)
{
	struct fixture *f = *state;
	REQUIRE_REDIS(f);
	struct req q;
	make_req(&q, "/api/users/7", "example.com", NULL, "user-7");

	struct l2_lease ls = begin(f, f->a, &q, 5000);
	assert_true(ls.won);
	/* A write on another replica purges one of the entry's tags while the
	 * fill is at the upstream. */
	assert_int_equal(purge(f, f->b, &q.tags[3]), 1);
	assert_int_equal(commit(f, f->a, &q, &ls, REC, sizeof(REC)), L2_COMMIT_PURGED);
	expect_miss(f, f->b, &q);

	/* The refused commit released the lease, and the next fill, which reads
	 * the new generation, is stored. */
	struct l2_lease next = begin(f, f->b, &q, 5000);
	assert_true(next.won);
	assert_true(next.gens[3] != ls.gens[3]); /* created again, with a new value */
	assert_true(next.gens[2] == ls.gens[2]); /* untouched */
	assert_int_equal(commit(f, f->b, &q, &next, "v2", 2), L2_COMMIT_STORED);
	expect_hit(f, f->a, &q, "v2", 2);
}

struct begin_poll {
	struct fixture *f;
	struct l2 *l2;
	const struct req *q;
	struct l2_lease lease;
};

static bool begin_won(void *ctx)
{
	struct begin_poll *p = ctx;
	p->lease = begin(p->f, p->l2, p->q, 5000);
	if (!p->lease.won)
		pause_ms(10);
	return p->lease.won;
}

static void test_lease_expiry(void **state)
{
	struct fixture *f = *state;
	REQUIRE_REDIS(f);
	struct req q;
	make_req(&q, "/slow", "example.com", NULL, NULL);

	uint64_t t0 = now_ms();
	struct l2_lease old = begin(f, f->a, &q, 100);
	assert_true(old.won);
	assert_false(begin(f, f->b, &q, 5000).won);

	struct begin_poll p = {f, f->b, &q, {0}};
	assert_true(run_until(f, begin_won, &p, WAIT_MS));
	assert_true(now_ms() - t0 >= 90);

	/* The old holder comes back late: its commit and abort do nothing. */
	assert_int_equal(commit(f, f->a, &q, &old, "old", 3), L2_COMMIT_LEASE_LOST);
	assert_int_equal(fill_abort(f, f->a, &q, &old), 0);
	expect_miss(f, f->a, &q);
	assert_int_equal(commit(f, f->b, &q, &p.lease, "new", 3), L2_COMMIT_STORED);
	expect_hit(f, f->a, &q, "new", 3);
}

static void test_abort_is_compare_and_delete(void **state)
{
	struct fixture *f = *state;
	REQUIRE_REDIS(f);
	struct req q;
	make_req(&q, "/x", "example.com", NULL, NULL);

	struct l2_lease mine = begin(f, f->a, &q, 5000);
	assert_true(mine.won);
	struct l2_lease forged = mine;
	forged.token[0] = forged.token[0] == 'z' ? 'y' : 'z';
	assert_int_equal(fill_abort(f, f->b, &q, &forged), 0);
	assert_false(begin(f, f->b, &q, 5000).won); /* still held */
	assert_int_equal(commit(f, f->b, &q, &forged, "no", 2), L2_COMMIT_LEASE_LOST);

	assert_int_equal(fill_abort(f, f->a, &q, &mine), 1);
	assert_true(begin(f, f->b, &q, 5000).won);
}

static long long noscript_errors(struct fixture *f)
{
	redisContext *c = sync_connect(f->port);
	assert_non_null(c);
	redisReply *rep = redisCommand(c, "INFO errorstats");
	assert_non_null(rep);
	assert_int_equal(rep->type, REDIS_REPLY_STRING);
	long long n = 0;
	const char *s = strstr(rep->str, "errorstat_NOSCRIPT:count=");
	if (s)
		n = atoll(s + strlen("errorstat_NOSCRIPT:count="));
	freeReplyObject(rep);
	redisFree(c);
	return n;
}

static void script_flush(struct fixture *f)
{
	redisContext *c = sync_connect(f->port);
	assert_non_null(c);
	redisReply *rep = redisCommand(c, "SCRIPT FLUSH");
	assert_non_null(rep);
	assert_int_equal(rep->type, REDIS_REPLY_STATUS);
	freeReplyObject(rep);
	redisFree(c);
}

/* Runs one command on a plain connection; returns its reply type. */
static int sync_cmd(struct fixture *f, const char *fmt, const char *arg)
{
	redisContext *c = sync_connect(f->port);
	assert_non_null(c);
	redisReply *rep = arg ? redisCommand(c, fmt, arg) : redisCommand(c, fmt);
	assert_non_null(rep);
	int type = rep->type;
	freeReplyObject(rep);
	redisFree(c);
	return type;
}

/* Redis at maxmemory with noeviction refuses what adds data (a fill), but
 * takes the purge: after it, no lookup returns the entry. */
static void test_purge_at_maxmemory(void **state)
{
	struct fixture *f = *state;
	REQUIRE_REDIS(f);
	struct req q;
	make_req(&q, "/api/users/7", "example.com", NULL, "user-7");
	fill(f, f->a, &q, REC, sizeof(REC));
	expect_hit(f, f->b, &q, REC, sizeof(REC));
	assert_int_equal(sync_cmd(f, "CONFIG SET maxmemory-policy noeviction", NULL), REDIS_REPLY_STATUS);
	assert_int_equal(sync_cmd(f, "CONFIG SET maxmemory 1", NULL), REDIS_REPLY_STATUS);
	assert_int_equal(sync_cmd(f, "SET probe %s", "x"), REDIS_REPLY_ERROR); /* really refusing */

	assert_int_equal(purge(f, f->a, &q.tags[0]), 1);
	expect_miss(f, f->b, &q);
	assert_int_not_equal(lookup_tags(f, f->b, &q, q.ntags).res, L2_HIT);
	/* a fill is refused while Redis is full */
	struct outcome o = {0};
	assert_int_equal(l2_fill_begin(f->b, q.key, q.keylen, q.tags, q.ntags, 5000, on_begin, &o), LV_OK);
	assert_true(run_until(f, has_outcome, &o, WAIT_MS));
	assert_int_not_equal(o.err, L2_ENONE);
	assert_int_equal(sync_cmd(f, "CONFIG SET maxmemory 0", NULL), REDIS_REPLY_STATUS);
}

/* A generation that is gone (evicted, expired, or deleted by hand) is never
 * current: the entries naming it miss, and the next fill makes a new one. */
static void test_absent_generation_is_never_current(void **state)
{
	struct fixture *f = *state;
	REQUIRE_REDIS(f);
	struct req q;
	make_req(&q, "/api/users/7", "example.com", NULL, "user-7");
	fill(f, f->a, &q, REC, sizeof(REC));
	expect_hit(f, f->b, &q, REC, sizeof(REC));
	char gk[L2_TAG_MAX + 16];
	snprintf(gk, sizeof(gk), "levee:g:{%.*s}", (int)q.tags[1].len, q.tags[1].p);
	assert_int_equal(sync_cmd(f, "DEL %s", gk), REDIS_REPLY_INTEGER);
	assert_int_not_equal(lookup_tags(f, f->b, &q, q.ntags).res, L2_HIT);
	expect_miss(f, f->b, &q);
	/* every generation an entry names lives at least as long as it */
	fill(f, f->a, &q, REC, sizeof(REC));
	redisContext *c = sync_connect(f->port);
	for (unsigned i = 0; i < q.ntags; i++) {
		snprintf(gk, sizeof(gk), "levee:g:{%.*s}", (int)q.tags[i].len, q.tags[i].p);
		redisReply *rep = redisCommand(c, "PTTL %s", gk);
		assert_int_equal(rep->type, REDIS_REPLY_INTEGER);
		assert_true(rep->integer >= 59000); /* commit() stores for 60 s */
		freeReplyObject(rep);
	}
	redisFree(c);
}

/* Hit-for-miss: the marker in place of the lease makes other replicas'
 * lookups and begins say "pass", never touches another's lease, and can be
 * cleared. */
static void test_pass_marker(void **state)
{
	struct fixture *f = *state;
	REQUIRE_REDIS(f);
	struct req q;
	make_req(&q, "/api/users/7", "example.com", NULL, "user-7");
	struct l2_lease la = begin(f, f->a, &q, 5000);
	assert_true(la.won);
	/* b has no lease and a holds one: b's marker is refused */
	struct outcome o = {0};
	assert_int_equal(l2_fill_pass(f->b, q.key, q.keylen, NULL, 10000, on_int, &o), LV_OK);
	wait_outcome(f, &o);
	assert_int_equal(o.value, 0);
	/* a's own marker replaces its lease */
	o = (struct outcome){0};
	assert_int_equal(l2_fill_pass(f->a, q.key, q.keylen, &la, 10000, on_int, &o), LV_OK);
	wait_outcome(f, &o);
	assert_int_equal(o.value, 1);
	assert_int_equal(lookup_tags(f, f->b, &q, q.ntags).res, L2_PASS);
	struct l2_lease lb = begin(f, f->b, &q, 5000);
	assert_false(lb.won);
	assert_true(lb.pass);
	/* cleared: a fill can win again */
	o = (struct outcome){0};
	assert_int_equal(l2_pass_clear(f->b, q.key, q.keylen, on_int, &o), LV_OK);
	wait_outcome(f, &o);
	assert_int_equal(o.value, 1);
	assert_int_equal(lookup_tags(f, f->b, &q, q.ntags).res, L2_MISS);
	struct l2_lease again = begin(f, f->b, &q, 5000);
	assert_true(again.won);
	assert_false(again.pass);
}

static void test_noscript(void **state)
{
	struct fixture *f = *state;
	REQUIRE_REDIS(f);
	struct req q;
	make_req(&q, "/api/users/7", "example.com", NULL, "user-7");

	/* Warm up: the SHAs are loaded by now (SCRIPT LOAD went out with the
	 * first operations and replies in order). */
	fill(f, f->a, &q, REC, sizeof(REC));
	expect_hit(f, f->a, &q, REC, sizeof(REC));
	expect_hit(f, f->a, &q, REC, sizeof(REC));
	long long before = noscript_errors(f);

	script_flush(f);
	expect_hit(f, f->a, &q, REC, sizeof(REC));
	assert_true(noscript_errors(f) > before); /* EVALSHA was refused, EVAL answered */

	script_flush(f);
	struct req q2;
	make_req(&q2, "/api/users/8", "example.com", NULL, NULL);
	struct l2_lease ls = begin(f, f->a, &q2, 5000);
	assert_true(ls.won);
	script_flush(f);
	assert_int_equal(commit(f, f->a, &q2, &ls, "8", 1), L2_COMMIT_STORED);
	script_flush(f);
	expect_hit(f, f->a, &q2, "8", 1);
	struct l2_lease again = begin(f, f->a, &q2, 5000);
	script_flush(f);
	assert_int_equal(fill_abort(f, f->a, &q2, &again), 1);
}

/* l2_free() with commands in flight: each callback runs once, with
 * L2_ECLOSED, inside l2_free(); the late replies are absorbed. */
static void test_free_in_flight(void **state)
{
	struct fixture *f = *state;
	REQUIRE_REDIS(f);
	struct req q;
	make_req(&q, "/x", "example.com", NULL, NULL);
	struct outcome o1 = {0}, o2 = {0};
	assert_int_equal(l2_lookup(f->a, q.key, q.keylen, on_lookup, &o1), LV_OK);
	assert_int_equal(l2_purge_tag(f->a, q.tags[0].p, q.tags[0].len, on_int, &o2), LV_OK);
	l2_free(f->a);
	f->a = NULL;
	assert_int_equal(o1.calls, 1);
	assert_int_equal(o1.err, L2_ECLOSED);
	assert_int_equal(o2.calls, 1);
	assert_int_equal(o2.err, L2_ECLOSED);
	/* Let the replies arrive and be dropped. */
	struct outcome o3 = {0};
	assert_int_equal(l2_lookup(f->b, q.key, q.keylen, on_lookup, &o3), LV_OK);
	wait_outcome(f, &o3);
	assert_int_equal(o1.calls, 1);
}

static void test_bounds(void **state)
{
	struct fixture *f = *state;
	REQUIRE_REDIS(f);
	struct req q;
	make_req(&q, "/x", "example.com", NULL, NULL);
	struct l2_str many[L2_MAX_TAGS + 1];
	for (unsigned i = 0; i <= L2_MAX_TAGS; i++)
		many[i] = q.tags[0];
	struct outcome o = {0};
	assert_int_equal(
	        l2_fill_begin(f->a, q.key, q.keylen, many, L2_MAX_TAGS + 1, 1000, on_begin, &o),
	        LV_ERR);
	assert_int_equal(l2_lookup(f->a, q.key, 0, on_lookup, &o), LV_ERR);
	struct l2_str empty = {"", 0};
	assert_int_equal(l2_purge_tag(f->a, empty.p, empty.len, on_int, &o), LV_ERR);
	struct l2_lease lost = {.won = false};
	assert_int_equal(
	        l2_fill_commit(f->a, q.key, q.keylen, &lost, NULL, 0, "x", 1, 1000, on_commit, &o),
	        LV_ERR);
	assert_int_equal(o.calls, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_tags),
	        cmocka_unit_test_setup_teardown(test_fill_and_share, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_purges, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_lookup_without_script, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_race, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_lease_expiry, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_abort_is_compare_and_delete, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_noscript, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_purge_at_maxmemory, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_absent_generation_is_never_current, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_pass_marker, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_free_in_flight, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_bounds, setup, teardown),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
