/*
 * test_kafka.c - proxy/invalidate/kafka.c: the statistics parser, and the
 * producer and consumer against librdkafka's mock cluster.
 *
 * The parser is driven by a table over statistics documents. Three are
 * unaltered captures of what librdkafka 2.0.2 emits for a consumer of a mock
 * cluster (tests/unit/data/kafka_stats_{up,down,revoked}.json); the others
 * are edits of such a capture that put in what a capture rarely shows at the
 * right moment: a bootstrap broker, a coordinator not yet delegated, lag, an
 * unknown high watermark, another member's partition.
 *
 * The rest runs a real kafka.c instance on a test-owned event loop against
 * a fresh three-broker mock cluster per test (so a test that fails with the
 * brokers down cannot affect the next). The callbacks only record what they
 * saw; every assertion is made in the test body, after the loop has run
 * until a condition held or a deadline passed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <event2/event.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "invalidate/kafka.h"
#include "log.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* rdkafka_protocol.h (the RD_KAFKAP_* names) is not installed by Debian. */
#define KAFKA_API_PRODUCE 0
#define KAFKA_API_INIT_PRODUCER_ID 22

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The whole file, NUL terminated (the NUL is not counted in *len). */
static char *read_data(const char *name, size_t *len)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/tests/unit/data/%s", LEVEE_SOURCE_DIR, name);
	FILE *f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot open %s", path);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	long n = ftell(f);
	assert_true(n >= 0);
	assert_int_equal(fseek(f, 0, SEEK_SET), 0);
	char *p = malloc((size_t)n + 1);
	assert_non_null(p);
	assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	p[n] = '\0';
	*len = (size_t)n;
	return p;
}

/* ---- kafka_stats_parse() ---------------------------------------------------- */

#define MAXP 4

struct stats_case {
	const char *name;
	const char *file; /* under tests/unit/data, or NULL for `text` */
	const char *text;
	const char *topic;
	int rc;
	/* expected when rc == LV_OK */
	bool broker_up;
	unsigned nparts, nknown;
	int64_t lag;
	int32_t part[MAXP];
	int64_t pos[MAXP], hi[MAXP];
};

/* A small document that holds none of our partitions, and one that is not
 * statistics at all. */
/* clang-format off */
#define NOPART(n, t, up) {.name = (n), .text = (t), .topic = "inv", .rc = LV_OK, .broker_up = (up)}
#define BAD(n, t) {.name = (n), .text = (t), .topic = "inv", .rc = LV_ERR}

static const struct stats_case stats_cases[] = {
	/* captures, unaltered */
	{"capture: all brokers up", "kafka_stats_up.json", NULL, "inv", LV_OK,
	 true, 3, 3, 0, {0, 1, 2}, {12, 6, 12}, {12, 6, 12}},
	{"capture: all brokers up, the other topic", "kafka_stats_up.json", NULL, "other", LV_OK,
	 true, 2, 2, 0, {0, 1}, {2, 8}, {2, 8}},
	{.name = "capture: a topic it does not hold", .file = "kafka_stats_up.json",
	 .topic = "absent", .rc = LV_OK, .broker_up = true},
	{"capture: every broker reconnecting", "kafka_stats_down.json", NULL, "inv", LV_OK,
	 false, 3, 3, 0, {0, 1, 2}, {12, 6, 12}, {12, 6, 12}},
	{.name = "capture: partitions revoked", .file = "kafka_stats_revoked.json",
	 .topic = "inv", .rc = LV_OK, .broker_up = true},

	/* edited captures: a bootstrap broker and a coordinator not yet
	 * delegated (both nodeid -1) are UP and must not count; "0" lags by 12; "1" has handed nothing to the
	 * app yet (app_offset -1001: position is next_offset 17, lag 3); "2"
	 * has no high watermark yet; "3" is another member's (desired false);
	 * "-1" is the pseudo-partition; "other" lags by 500 */
	{"lagging, broker 1 up", "kafka_stats_lag.json", NULL, "inv", LV_OK,
	 true, 3, 2, 15, {0, 1, 2}, {40, 17, 9}, {52, 20, -1001}},
	{"lagging, broker 1 connecting", "kafka_stats_lag_connect.json", NULL, "inv", LV_OK,
	 false, 3, 2, 15, {0, 1, 2}, {40, 17, 9}, {52, 20, -1001}},
	{"lagging, the other topic", "kafka_stats_lag.json", NULL, "other", LV_OK,
	 true, 1, 1, 500, {0}, {0}, {500}},

	/* small documents */
	NOPART("empty object", "{}", false),
	NOPART("empty sections", "{\"brokers\":{},\"topics\":{}}", false),
	NOPART("whitespace around", " \r\n\t{ }\n", false),
	NOPART("state before nodeid",
	       "{\"brokers\":{\"h:9093/1\":{\"state\":\"UP\",\"nodeid\":1}}}", true),
	NOPART("bootstrap broker only",
	       "{\"brokers\":{\"h:9092/bootstrap\":{\"nodeid\":-1,\"state\":\"UP\"}}}", false),
	/* 16 characters: longer than the parser's buffer, and not UP */
	NOPART("state APIVERSION_QUERY",
	       "{\"brokers\":{\"h:9093/1\":{\"nodeid\":1,\"state\":\"APIVERSION_QUERY\"}}}", false),
	NOPART("partition -1 even when desired",
	       "{\"topics\":{\"inv\":{\"partitions\":{\"-1\":{\"partition\":-1,\"desired\":true,"
	       "\"app_offset\":0,\"hi_offset\":100}}}}}", false),
	{"position past the high watermark", NULL,
	 "{\"topics\":{\"inv\":{\"partitions\":{\"0\":{\"partition\":0,\"desired\":true,"
	 "\"app_offset\":12,\"next_offset\":12,\"hi_offset\":10}}}}}",
	 "inv", LV_OK, false, 1, 1, 0, {0}, {12}, {10}},
	{"nothing known", NULL,
	 "{\"topics\":{\"inv\":{\"partitions\":{\"0\":{\"partition\":0,\"desired\":true,"
	 "\"app_offset\":-1001,\"next_offset\":-1001,\"hi_offset\":-1001}}}}}",
	 "inv", LV_OK, false, 1, 0, 0, {0}, {-1001}, {-1001}},

	/* not statistics */
	BAD("empty input", ""),
	BAD("whitespace only", " \n"),
	BAD("unclosed object", "{"),
	BAD("array", "[]"),
	BAD("null", "null"),
	BAD("two documents", "{} {}"),
	BAD("brokers is an array", "{\"brokers\":[]}"),
	BAD("topic is an array", "{\"topics\":{\"inv\":[]}}"),
	BAD("partitions is an array", "{\"topics\":{\"inv\":{\"partitions\":[]}}}"),
	BAD("partition is a string",
	    "{\"topics\":{\"inv\":{\"partitions\":{\"0\":{\"partition\":\"0\"}}}}}"),
	BAD("desired is a number",
	    "{\"topics\":{\"inv\":{\"partitions\":{\"0\":{\"desired\":1}}}}}"),
	BAD("nodeid is a string", "{\"brokers\":{\"b\":{\"nodeid\":\"1\"}}}"),
	BAD("state is a number", "{\"brokers\":{\"b\":{\"state\":1}}}"),
	BAD("trailing comma in a broker",
	    "{\"brokers\":{\"b\":{\"nodeid\":1,\"state\":\"UP\",}}}"),
	BAD("broken inside another topic",
	    "{\"topics\":{\"other\":{\"partitions\":{\"0\":{\"partition\":0,}}}}}"),
	BAD("broken after the topics", "{\"topics\":{},\"cgrp\":{\"state\":up}}"),
};
/* clang-format on */

static void check_lag(const char *name, const struct kafka_lag *l, const struct stats_case *c)
{
	if (l->broker_up != c->broker_up)
		fail_msg("%s: broker_up %d, want %d", name, l->broker_up, c->broker_up);
	if (l->nparts != c->nparts || l->nknown != c->nknown || l->lag != c->lag)
		fail_msg("%s: nparts %u nknown %u lag %lld, want %u %u %lld", name, l->nparts,
		         l->nknown, (long long)l->lag, c->nparts, c->nknown, (long long)c->lag);
	for (unsigned i = 0; i < c->nparts && i < MAXP; i++)
		if (l->part[i] != c->part[i] || l->pos[i] != c->pos[i] || l->hi[i] != c->hi[i])
			fail_msg("%s: [%u] partition %d pos %lld hi %lld, want %d %lld %lld", name,
			         i, l->part[i], (long long)l->pos[i], (long long)l->hi[i],
			         c->part[i], (long long)c->pos[i], (long long)c->hi[i]);
}

static void test_stats_table(void **state)
{
	for (size_t i = 0; i < N(stats_cases); i++) {
		const struct stats_case *c = &stats_cases[i];
		size_t len;
		char *doc;
		if (c->file) {
			doc = read_data(c->file, &len);
		} else {
			/* exactly sized, so the sanitizer sees any read past the end */
			len = strlen(c->text);
			doc = malloc(len ? len : 1);
			assert_non_null(doc);
			memcpy(doc, c->text, len);
		}
		struct kafka_lag l;
		memset(&l, 0xa5, sizeof(l)); /* the parser must reset everything */
		int rc = kafka_stats_parse(doc, len, c->topic, &l);
		free(doc);
		if (rc != c->rc)
			fail_msg("%s: rc %d, want %d", c->name, rc, c->rc);
		if (rc == LV_OK)
			check_lag(c->name, &l, c);
	}
}

/* Every proper prefix of a real document is malformed, and is read without
 * going past its end. */
static void test_stats_truncated(void **state)
{
	size_t len;
	char *doc = read_data("kafka_stats_up.json", &len);
	for (size_t n = 0; n < len; n++) {
		char *p = malloc(n ? n : 1);
		assert_non_null(p);
		memcpy(p, doc, n);
		struct kafka_lag l;
		int rc = kafka_stats_parse(p, n, "inv", &l);
		free(p);
		if (rc != LV_ERR)
			fail_msg("a prefix of %zu of %zu bytes parsed", n, len);
	}
	free(doc);
}

/* More assigned partitions than struct kafka_lag holds: the first
 * KAFKA_MAX_PARTITIONS are reported, the rest ignored. */
static void test_stats_partition_bound(void **state)
{
	enum { NMANY = KAFKA_MAX_PARTITIONS + 44 };
	size_t cap = 128 + NMANY * 128, len = 0;
	char *doc = malloc(cap);
	assert_non_null(doc);
	len += (size_t)snprintf(doc + len, cap - len, "{\"topics\":{\"inv\":{\"partitions\":{");
	for (int p = 0; p < NMANY; p++)
		len += (size_t)snprintf(
		        doc + len, cap - len,
		        "%s\"%d\":{\"partition\":%d,\"desired\":true,\"app_offset\":%d,\"hi_offset\":%d}",
		        p ? "," : "", p, p, p, p + 1);
	len += (size_t)snprintf(doc + len, cap - len, "}}}}");
	assert_true(len < cap);
	struct kafka_lag l;
	assert_int_equal(kafka_stats_parse(doc, len, "inv", &l), LV_OK);
	free(doc);
	assert_int_equal(l.nparts, KAFKA_MAX_PARTITIONS);
	assert_int_equal(l.nknown, KAFKA_MAX_PARTITIONS);
	assert_int_equal(l.lag, KAFKA_MAX_PARTITIONS);
	assert_int_equal(l.part[KAFKA_MAX_PARTITIONS - 1], KAFKA_MAX_PARTITIONS - 1);
	assert_int_equal(l.hi[KAFKA_MAX_PARTITIONS - 1], KAFKA_MAX_PARTITIONS);
}

/* librdkafka 2.0.2 gives the "GroupCoordinator" logical broker the node id
 * of the broker it is delegated to, not -1 ("source":"logical" tells it
 * apart). Here every real broker is reconnecting and only the coordinator's
 * own connection is UP: that must not count as a broker up. */
static void test_stats_logical_coordinator(void **state)
{
	size_t len;
	char *doc = read_data("kafka_stats_coordinator_up.json", &len);
	struct kafka_lag l;
	int rc = kafka_stats_parse(doc, len, "inv", &l);
	free(doc);
	assert_int_equal(rc, LV_OK);
	assert_int_equal(l.nparts, 3);
	if (l.broker_up)
		fail_msg(
		        "the delegated GroupCoordinator (nodeid 2, source logical) was counted as a broker up");
}

/* ---- the mock cluster --------------------------------------------------- */

#define NBROKERS 3
#define NPARTS 3
#define NKEYS 5
#define MAX_SENT 256
#define MAX_GOT 512

/* One produced message, and what became of it. Its address is the opaque. */
struct sent {
	char key[16], svc[16];
	unsigned char val[48];
	size_t klen, vlen;
	unsigned key_no, seq; /* seq: its rank among the messages of its key */
	int ndelivered, err;
	bool echo_ok; /* `delivered` passed back its key and value */
};

struct got {
	unsigned idx; /* into env.sent */
	int32_t part;
	int64_t off;
};

struct env;

/* What one kafka instance's callbacks saw. */
struct rec {
	struct env *env;
	struct kafka *k;
	bool store; /* store the offset of each message consumed */
	int64_t t_new;

	unsigned ndelivered, nfailed, nmisordered;
	int64_t last_dseq[NKEYS]; /* last seq reported delivered OK, per key */
	int64_t t_last_failed;

	unsigned ngot, nbad; /* nbad: matched nothing sent, or bytes differ */
	struct got got[MAX_GOT];

	unsigned nlag;
	struct kafka_lag last_lag;
	int64_t t_first_lag, t_lag_ready; /* ready: broker up and all partitions assigned */

	unsigned nassigned, assigned;
	int64_t t_assigned;
	unsigned nreset;

	unsigned nassignments;
	struct kafka_assignment last_assignment;
};

struct env {
	rd_kafka_t *host; /* hosts the mock cluster */
	rd_kafka_mock_cluster_t *mc;
	char bootstraps[256], topic[64], group[64];
	struct event_base *base;
	struct event *ev_beat; /* wakes the loop so a deadline is always noticed */
	bool up_on_failures;   /* set the brokers up once `fail_target` failures came */
	unsigned fail_target;
	struct sent sent[MAX_SENT];
	unsigned nsent;
	struct rec a, b;
};

static void brokers_set(struct env *e, bool up)
{
	for (int32_t id = 1; id <= NBROKERS; id++)
		assert_int_equal(up ? rd_kafka_mock_broker_set_up(e->mc, id)
		                    : rd_kafka_mock_broker_set_down(e->mc, id),
		                 RD_KAFKA_RESP_ERR_NO_ERROR);
}

static void on_delivered(void *ctx, void *opaque, int err, const char *errstr, const void *key,
                         size_t klen, const void *val, size_t vlen)
{
	struct rec *r = ctx;
	struct sent *s = opaque;
	s->ndelivered++;
	s->err = err;
	s->echo_ok = klen == s->klen && vlen == s->vlen && memcmp(key, s->key, klen) == 0 &&
	             memcmp(val, s->val, vlen) == 0;
	r->ndelivered++;
	if (err) {
		r->nfailed++;
		r->t_last_failed = now_ms();
		/* the brokers come back while kafka_close() is still blocked, so
		 * that its consumer half does not wait for them */
		if (r->env->up_on_failures && r->nfailed == r->env->fail_target)
			for (int32_t id = 1; id <= NBROKERS; id++)
				rd_kafka_mock_broker_set_up(r->env->mc, id);
	} else {
		if ((int64_t)s->seq <= r->last_dseq[s->key_no])
			r->nmisordered++;
		r->last_dseq[s->key_no] = s->seq;
	}
}

static void on_message(void *ctx, const struct kafka_msg *m)
{
	struct rec *r = ctx;
	struct env *e = r->env;
	const unsigned char *v = m->value;
	unsigned idx;
	/* values are "m<idx>/..." followed by the bytes 00 ff */
	if (m->vlen < 3 || v[m->vlen - 2] != 0 || v[m->vlen - 1] != 0xff ||
	    sscanf(m->value, "m%u/", &idx) != 1 || idx >= e->nsent) {
		r->nbad++;
		return;
	}
	const struct sent *s = &e->sent[idx];
	if (m->klen != s->klen || memcmp(m->key, s->key, s->klen) != 0 || m->vlen != s->vlen ||
	    memcmp(m->value, s->val, s->vlen) != 0 || !m->service_hdr ||
	    m->service_hdr_len != strlen(s->svc) ||
	    memcmp(m->service_hdr, s->svc, m->service_hdr_len) != 0)
		r->nbad++;
	if (r->ngot < MAX_GOT)
		r->got[r->ngot] = (struct got){idx, m->partition, m->offset};
	r->ngot++;
	if (r->store)
		kafka_store_offset(r->k, m->partition, m->offset);
}

static void on_lag(void *ctx, const struct kafka_lag *l)
{
	struct rec *r = ctx;
	if (r->nlag++ == 0)
		r->t_first_lag = now_ms();
	r->last_lag = *l;
	if (!r->t_lag_ready && l->broker_up && l->nparts == NPARTS)
		r->t_lag_ready = now_ms();
}

static void on_assigned(void *ctx, unsigned n)
{
	struct rec *r = ctx;
	r->nassigned++;
	r->assigned = n;
	if (n == NPARTS && !r->t_assigned)
		r->t_assigned = now_ms();
}

static void on_producer_reset(void *ctx)
{
	struct rec *r = ctx;
	r->nreset++;
}

static void on_assignment(void *ctx, const struct kafka_assignment *a)
{
	struct rec *r = ctx;
	r->nassignments++;
	r->last_assignment = *a;
}

static const struct kafka_handlers handlers = {
        .delivered = on_delivered,
        .message = on_message,
        .lag = on_lag,
        .assigned = on_assigned,
        .producer_reset = on_producer_reset,
        .assignment = on_assignment,
};

static void on_beat(evutil_socket_t fd, short what, void *arg)
{
}

static int env_setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	assert_non_null(e);
	char why[512];
	rd_kafka_conf_t *c = rd_kafka_conf_new();
	/* quiet: the host logs the brokers the tests take down on purpose */
	assert_int_equal(rd_kafka_conf_set(c, "log_level", "0", why, sizeof(why)),
	                 RD_KAFKA_CONF_OK);
	e->host = rd_kafka_new(RD_KAFKA_PRODUCER, c, why, sizeof(why));
	if (!e->host)
		fail_msg("mock host: %s", why);
	e->mc = rd_kafka_mock_cluster_new(e->host, NBROKERS);
	assert_non_null(e->mc);
	snprintf(e->bootstraps, sizeof(e->bootstraps), "%s",
	         rd_kafka_mock_cluster_bootstraps(e->mc));
	static unsigned serial;
	serial++;
	snprintf(e->topic, sizeof(e->topic), "levee-inv-%u", serial);
	snprintf(e->group, sizeof(e->group), "levee-test-%ld-%u", (long)getpid(), serial);
	assert_int_equal(rd_kafka_mock_topic_create(e->mc, e->topic, NPARTS, NBROKERS),
	                 RD_KAFKA_RESP_ERR_NO_ERROR);
	e->base = event_base_new();
	assert_non_null(e->base);
	e->ev_beat = event_new(e->base, -1, EV_PERSIST, on_beat, NULL);
	struct timeval tv = {0, 50 * 1000};
	assert_non_null(e->ev_beat);
	assert_int_equal(event_add(e->ev_beat, &tv), 0);
	*state = e;
	return 0;
}

static void rec_close(struct rec *r, int timeout_ms)
{
	if (!r->k)
		return;
	kafka_close(r->k, timeout_ms);
	kafka_free(r->k);
	r->k = NULL;
}

static int env_teardown(void **state)
{
	struct env *e = *state;
	/* after a failure the brokers may still be down: close would wait */
	for (int32_t id = 1; id <= NBROKERS; id++)
		rd_kafka_mock_broker_set_up(e->mc, id);
	rec_close(&e->a, 0);
	rec_close(&e->b, 0);
	event_free(e->ev_beat);
	event_base_free(e->base);
	rd_kafka_mock_cluster_destroy(e->mc);
	rd_kafka_destroy(e->host);
	free(e);
	return 0;
}

static void rec_start(struct env *e, struct rec *r, bool store, uint64_t delivery_timeout_ms)
{
	memset(r, 0, sizeof(*r));
	r->env = e;
	r->store = store;
	for (int i = 0; i < NKEYS; i++)
		r->last_dseq[i] = -1;
	struct kafka_config cfg = {
	        .brokers = e->bootstraps,
	        .topic = e->topic,
	        .group_id = e->group,
	        .client_id = "levee-test",
	        .from_earliest = true,
	        .delivery_timeout_ms = delivery_timeout_ms,
	};
	char err[512] = "";
	r->t_new = now_ms();
	r->k = kafka_new(e->base, &cfg, &handlers, r, err, sizeof(err));
	if (!r->k)
		fail_msg("kafka_new: %s", err);
}

/* Produces `n` more messages through `r`, keys interleaved. */
static void produce(struct env *e, struct rec *r, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		assert_true(e->nsent < MAX_SENT);
		unsigned idx = e->nsent++;
		struct sent *s = &e->sent[idx];
		memset(s, 0, sizeof(*s));
		s->key_no = idx % NKEYS;
		s->seq = idx / NKEYS;
		s->klen = (size_t)snprintf(s->key, sizeof(s->key), "key-%u", s->key_no);
		snprintf(s->svc, sizeof(s->svc), "svc-%u", s->key_no);
		int len = snprintf((char *)s->val, sizeof(s->val), "m%u/key-%u/seq-%u", idx,
		                   s->key_no, s->seq);
		s->val[len] = 0x00;
		s->val[len + 1] = 0xff;
		s->vlen = (size_t)len + 2;
		char err[256];
		if (kafka_produce(r->k, s->key, s->klen, s->val, s->vlen, s->svc, s, err,
		                  sizeof(err)) != LV_OK)
			fail_msg("kafka_produce %u: %s", idx, err);
	}
}

/* Runs the loop until `cond` holds or `ms` have passed. */
#define RUN_UNTIL(e, ms, cond)                                                                     \
	do {                                                                                       \
		int64_t deadline_ = now_ms() + (ms);                                               \
		while (!(cond) && now_ms() < deadline_)                                            \
			event_base_loop((e)->base, EVLOOP_ONCE);                                   \
	} while (0)

/* Messages [from, to) were each reported once: delivered, or failed. */
static void check_delivered(const struct env *e, unsigned from, unsigned to, bool failed)
{
	for (unsigned i = from; i < to; i++) {
		const struct sent *s = &e->sent[i];
		if (s->ndelivered != 1)
			fail_msg("message %u reported %d times", i, s->ndelivered);
		if (failed ? s->err == 0 : s->err != 0)
			fail_msg("message %u: err %d (%s), want %s", i, s->err,
			         rd_kafka_err2str(s->err), failed ? "a failure" : "none");
		if (!s->echo_ok)
			fail_msg("message %u: delivered did not pass back its key and value", i);
	}
}

/* `r` consumed exactly messages [from, to), each once, intact, and in order
 * within each key: one partition per key, offsets and sequence rising. */
static void check_consumed(const struct rec *r, unsigned from, unsigned to)
{
	const struct env *e = r->env;
	assert_int_equal(r->nbad, 0);
	if (r->ngot != to - from)
		fail_msg("consumed %u messages, want %u", r->ngot, to - from);
	unsigned seen[MAX_SENT] = {0};
	int32_t part[NKEYS];
	int64_t off[NKEYS], seq[NKEYS];
	for (int k = 0; k < NKEYS; k++)
		part[k] = -1, off[k] = -1, seq[k] = -1;
	for (unsigned i = 0; i < r->ngot; i++) {
		const struct got *g = &r->got[i];
		if (g->idx < from || g->idx >= to)
			fail_msg("consumed message %u, outside [%u, %u)", g->idx, from, to);
		if (seen[g->idx]++)
			fail_msg("message %u consumed twice", g->idx);
		const struct sent *s = &e->sent[g->idx];
		unsigned k = s->key_no;
		if (part[k] >= 0 && g->part != part[k])
			fail_msg("key %u on partitions %d and %d", k, part[k], g->part);
		if (g->off <= off[k] || (int64_t)s->seq <= seq[k])
			fail_msg(
			        "key %u out of order: seq %u at offset %lld after seq %lld at offset %lld",
			        k, s->seq, (long long)g->off, (long long)seq[k], (long long)off[k]);
		part[k] = g->part;
		off[k] = g->off;
		seq[k] = s->seq;
	}
}

/* a, b, g, then c. One instance produces 100 messages, 20 for each of 5
 * keys, interleaved, consumes them and stores their offsets; the lag and
 * assignment callbacks are checked on the way.
 *
 * Then a second instance of the group must resume exactly after those 100.
 * The first stops consuming before it produces 10 more, so what it commits
 * on close is exactly the first 100; with from_earliest, a lost commit would
 * show as 110 messages. (One test rather than two: a group's first join
 * costs the mock's 3 s initial rebalance delay, and the second instance
 * another session.timeout.ms - 1 s, which is 9 s.) */
static void test_produce_consume_resume(void **state)
{
	struct env *e = *state;
	struct rec *a = &e->a, *b = &e->b;
	rec_start(e, a, true, 10000);
	produce(e, a, 100);
	assert_int_equal(kafka_in_flight(a->k), 100);
	RUN_UNTIL(e, 15000, a->ndelivered == 100 && a->ngot == 100 && a->t_lag_ready);
	int64_t t_all = now_ms() - a->t_new;

	assert_int_equal(a->ndelivered, 100);
	assert_int_equal(a->nfailed, 0);
	assert_int_equal(a->nmisordered, 0);
	check_delivered(e, 0, 100, false);
	assert_int_equal(kafka_in_flight(a->k), 0);
	check_consumed(a, 0, 100);

	assert_int_equal(a->assigned, NPARTS);
	assert_true(a->t_assigned > 0);
	assert_true(a->nlag > 0);
	assert_true(a->t_first_lag - a->t_new <= 3000);
	assert_true(a->t_lag_ready > 0);
	assert_true(a->t_lag_ready - a->t_assigned <= 3000);
	assert_int_equal(a->nreset, 0);
	/* alone in its group: every partition of the topic */
	assert_true(a->nassignments >= 1);
	assert_int_equal(a->last_assignment.assigned, NPARTS);
	assert_int_equal(a->last_assignment.partitions, NPARTS);

	kafka_consume_pause(a->k, true);
	produce(e, a, 10);
	RUN_UNTIL(e, 5000, a->ndelivered == 110);
	check_delivered(e, 100, 110, false);
	assert_int_equal(a->ngot, 100);
	int64_t t0 = now_ms();
	rec_close(a, 1000);
	int64_t t_close = now_ms() - t0;

	rec_start(e, b, true, 10000);
	/* done when the position is the high watermark on every partition */
	RUN_UNTIL(e, 15000,
	          b->ngot >= 10 && b->last_lag.nparts == NPARTS && b->last_lag.nknown == NPARTS &&
	                  b->last_lag.lag == 0);
	assert_int_equal(b->last_lag.nparts, NPARTS);
	assert_int_equal(b->last_lag.lag, 0);
	check_consumed(b, 100, 110);
	print_message(
	        "    assigned after %lld ms, lag ready %lld ms later, 100 round-tripped in %lld ms; "
	        "closed in %lld ms; the second instance assigned after %lld ms\n",
	        (long long)(a->t_assigned - a->t_new), (long long)(a->t_lag_ready - a->t_assigned),
	        (long long)t_all, (long long)t_close, (long long)(b->t_assigned - b->t_new));
}

/* Two instances in one group (two levees with one instance name): each
 * assignment says so, with fewer partitions than the topic has; once one
 * leaves, the other is given them all again. */
static void test_shared_group(void **state)
{
	struct env *e = *state;
	struct rec *a = &e->a, *b = &e->b;
	rec_start(e, a, true, 10000);
	RUN_UNTIL(e, 15000, a->last_assignment.assigned == NPARTS);
	assert_int_equal(a->last_assignment.partitions, NPARTS);
	rec_start(e, b, true, 10000);
	/* The rebalance takes the mock's initial delay plus a session timeout
	 * when a member is slow to rejoin; under TSan that has passed 20 s. */
	int64_t t0 = now_ms();
	RUN_UNTIL(e, 60000,
	          b->nassignments && a->last_assignment.assigned < NPARTS &&
	                  a->last_assignment.assigned + b->last_assignment.assigned == NPARTS);
	print_message("    shared after %lld ms: a has %u, b has %u of %u (%u and %u assignment(s))\n",
	              (long long)(now_ms() - t0), a->last_assignment.assigned, b->last_assignment.assigned,
	              NPARTS, a->nassignments, b->nassignments);
	assert_true(a->last_assignment.assigned < NPARTS);
	assert_true(b->last_assignment.assigned < NPARTS);
	assert_int_equal(a->last_assignment.assigned + b->last_assignment.assigned, NPARTS);
	assert_int_equal(a->last_assignment.partitions, NPARTS);
	assert_int_equal(b->last_assignment.partitions, NPARTS);
	rec_close(b, 1000);
	RUN_UNTIL(e, 60000, a->last_assignment.assigned == NPARTS);
	assert_int_equal(a->last_assignment.assigned, NPARTS);
}

/* d: with every broker down, each message fails after the delivery timeout
 * and comes back with its key and value (levee spools those); once the
 * brokers are back, messages go through again. */
static void test_delivery_failure(void **state)
{
	struct env *e = *state;
	struct rec *a = &e->a;
	rec_start(e, a, false, 500);
	produce(e, a, 5);
	RUN_UNTIL(e, 10000, a->ndelivered == 5);
	check_delivered(e, 0, 5, false);

	brokers_set(e, false);
	int64_t t0 = now_ms();
	produce(e, a, 5);
	RUN_UNTIL(e, 5000, a->ndelivered == 10);
	int64_t t_fail = a->t_last_failed - t0;
	assert_int_equal(a->nfailed, 5);
	check_delivered(e, 5, 10, true);
	assert_int_equal(kafka_in_flight(a->k), 0);
	if (t_fail > 2000)
		fail_msg("the last failure came %lld ms after producing", (long long)t_fail);

	/* A message produced while the producer reconnects may still time
	 * out (500 ms is short): batches go until one is delivered whole. */
	brokers_set(e, true);
	t0 = now_ms();
	unsigned from = e->nsent, batches = 0;
	bool ok = false;
	while (!ok && now_ms() - t0 < 15000) {
		unsigned first = e->nsent, want = a->ndelivered + 5;
		produce(e, a, 5);
		batches++;
		RUN_UNTIL(e, 5000, a->ndelivered == want);
		assert_int_equal(a->ndelivered, want);
		ok = true;
		for (unsigned i = first; i < e->nsent; i++)
			ok = ok && e->sent[i].err == 0;
	}
	assert_true(ok);
	for (unsigned i = from; i < e->nsent; i++) {
		assert_int_equal(e->sent[i].ndelivered, 1);
		assert_true(e->sent[i].echo_ok);
	}
	assert_int_equal(kafka_in_flight(a->k), 0);
	print_message("    failed after %lld ms (timeout 500 ms); through again %lld ms after the "
	              "brokers came back, in %u batch(es)\n",
	              (long long)t_fail, (long long)(now_ms() - t0), batches);
}

/* e: retriable errors injected into Produce requests, and every partition's
 * leader moved midway: each message delivered exactly once, in order per
 * key. */
static void test_injected_errors(void **state)
{
	struct env *e = *state;
	struct rec *a = &e->a;
	rec_start(e, a, false, 10000);
	rd_kafka_mock_push_request_errors(
	        e->mc, KAFKA_API_PRODUCE, 4, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
	        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
	        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT);
	produce(e, a, 25);
	RUN_UNTIL(e, 10000, a->ndelivered == 25);
	check_delivered(e, 0, 25, false);

	/* Then the leaders move, under more injected errors. Only the
	 * producer's side is checked in this test: with errors injected into
	 * the mock's Produce handling, librdkafka 2.0.2's consumer sometimes
	 * does not fetch one of the messages for more than 10 s (seen under
	 * ASan in CI, before and after the leader move). The consumer is
	 * checked without injected errors in test_produce_consume_resume, and
	 * levee does not rely on a quick catch-up: a consumer that does not
	 * reach the high watermarks is "behind", and past lag_budget the L1 is
	 * skipped (test_lag.c). */
	for (int32_t p = 0; p < NPARTS; p++)
		assert_int_equal(rd_kafka_mock_partition_set_leader(e->mc, e->topic, p,
		                                                    (p + 1) % NBROKERS + 1),
		                 RD_KAFKA_RESP_ERR_NO_ERROR);
	rd_kafka_mock_push_request_errors(
	        e->mc, KAFKA_API_PRODUCE, 3, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
	        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION);
	produce(e, a, 25);
	RUN_UNTIL(e, 15000, a->ndelivered == 50);
	assert_int_equal(a->nfailed, 0);
	assert_int_equal(a->nmisordered, 0);
	check_delivered(e, 0, 50, false);
	assert_int_equal(a->nreset, 0);
}

/* A fatal producer error replaces the producer. In librdkafka 2.0.2 a
 * non-transactional idempotent producer is failed for good when the cluster
 * refuses it a producer id (CLUSTER_AUTHORIZATION_FAILED on InitProducerId):
 * what it held is reported failed, once, with its key and value, and the
 * new producer delivers. The brokers answer 300 ms late until then, so the
 * messages are queued well before the refusal. */
static void test_producer_fatal(void **state)
{
	struct env *e = *state;
	struct rec *a = &e->a;
	for (int32_t id = 1; id <= NBROKERS; id++)
		assert_int_equal(rd_kafka_mock_broker_set_rtt(e->mc, id, 300),
		                 RD_KAFKA_RESP_ERR_NO_ERROR);
	rd_kafka_mock_push_request_errors(e->mc, KAFKA_API_INIT_PRODUCER_ID, 1,
	                                  RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED);
	rec_start(e, a, false, 10000);
	produce(e, a, 5);
	RUN_UNTIL(e, 10000, a->nreset == 1 && a->ndelivered == 5);
	assert_int_equal(a->nreset, 1);
	assert_int_equal(a->nfailed, 5);
	check_delivered(e, 0, 5, true);
	assert_int_equal(kafka_in_flight(a->k), 0);

	for (int32_t id = 1; id <= NBROKERS; id++)
		assert_int_equal(rd_kafka_mock_broker_set_rtt(e->mc, id, 0),
		                 RD_KAFKA_RESP_ERR_NO_ERROR);
	produce(e, a, 5);
	RUN_UNTIL(e, 10000, a->ndelivered == 10);
	check_delivered(e, 5, 10, false);
	assert_int_equal(kafka_in_flight(a->k), 0);
	assert_int_equal(a->nreset, 1);
}

/* f: kafka_close() with messages queued and the brokers down reports every
 * one failed before it returns. The brokers come back from the callback of
 * the last failure, so the consumer half of the close does not wait. */
static void test_close_in_flight(void **state)
{
	struct env *e = *state;
	struct rec *a = &e->a;
	rec_start(e, a, false, 30000);
	produce(e, a, 5);
	RUN_UNTIL(e, 10000, a->ndelivered == 5);
	check_delivered(e, 0, 5, false);

	brokers_set(e, false);
	produce(e, a, 5);
	assert_int_equal(kafka_in_flight(a->k), 5);
	e->up_on_failures = true;
	e->fail_target = 5;
	int64_t t0 = now_ms();
	kafka_close(a->k, 200);
	int64_t t_close = now_ms() - t0;
	assert_int_equal(a->nfailed, 5);
	check_delivered(e, 5, 10, true);
	assert_int_equal(kafka_in_flight(a->k), 0);
	int64_t t_fail = a->t_last_failed - t0;
	if (t_fail > 1000)
		fail_msg("the last failure came %lld ms into kafka_close(200)", (long long)t_fail);
	kafka_free(a->k);
	a->k = NULL;
	print_message(
	        "    all failed %lld ms into kafka_close(200), which returned after %lld ms\n",
	        (long long)t_fail, (long long)t_close);
}

int main(void)
{
	log_set_level(LV_LOG_ERROR);
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_stats_table),
	        cmocka_unit_test(test_stats_truncated),
	        cmocka_unit_test(test_stats_partition_bound),
	        cmocka_unit_test(test_stats_logical_coordinator),
	        cmocka_unit_test_setup_teardown(test_produce_consume_resume, env_setup,
	                                        env_teardown),
	        cmocka_unit_test_setup_teardown(test_shared_group, env_setup, env_teardown),
	        cmocka_unit_test_setup_teardown(test_delivery_failure, env_setup, env_teardown),
	        cmocka_unit_test_setup_teardown(test_injected_errors, env_setup, env_teardown),
	        cmocka_unit_test_setup_teardown(test_producer_fatal, env_setup, env_teardown),
	        cmocka_unit_test_setup_teardown(test_close_in_flight, env_setup, env_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
