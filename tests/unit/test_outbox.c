/*
 * test_outbox.c - the durable queue of proxy/invalidate/outbox.c.
 *
 * Every test runs in its own directory under /tmp (the outbox is one level
 * below it, so that mkdir -p is exercised) and removes it afterwards. Crash
 * recovery is tested by editing the files the way a crash or a bad disk
 * would: cutting the data file at every byte of its last record, flipping
 * every byte of it, forging state slots; the format comes from outbox.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache/record.h"
#include "invalidate/outbox.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define HDR OUTBOX_FILE_HEADER_SIZE
#define OVH OUTBOX_REC_OVERHEAD

/* ---- fixture: a fresh directory per test ---------------------------------- */

struct fix {
	char root[64];      /* mkdtemp */
	char dir[128];      /* root/spool/outbox: the outbox */
	char data[192];     /* dir/outbox.lvq */
	char statef[192];   /* dir/outbox.state */
};

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	snprintf(f->root, sizeof(f->root), "/tmp/levee-test-outbox-XXXXXX");
	assert_non_null(mkdtemp(f->root));
	snprintf(f->dir, sizeof(f->dir), "%s/spool/outbox", f->root);
	snprintf(f->data, sizeof(f->data), "%s/outbox.lvq", f->dir);
	snprintf(f->statef, sizeof(f->statef), "%s/outbox.state", f->dir);
	*state = f;
	return 0;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static int teardown(void **state)
{
	struct fix *f = *state;
	int rc = nftw(f->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return rc;
}

/* ---- helpers --------------------------------------------------------------- */

static struct outbox *ob_open(const struct fix *f, uint64_t max, uint64_t reserve,
                              enum outbox_sync sync, struct outbox_recovery *rep)
{
	struct outbox_cfg cfg = {f->dir, max, reserve, sync};
	struct outbox *o = NULL;
	char err[512] = "";
	if (outbox_open(&cfg, &o, rep, err, sizeof(err)) != LV_OK)
		fail_msg("outbox_open: %s", err);
	return o;
}

/* Expects outbox_open to fail; returns the message. */
static const char *ob_open_fails(const struct fix *f, uint64_t max, uint64_t reserve)
{
	static char err[512];
	struct outbox_cfg cfg = {f->dir, max, reserve, OUTBOX_SYNC_BATCH};
	struct outbox *o = (struct outbox *)&err; /* must stay untouched */
	err[0] = '\0';
	if (outbox_open(&cfg, &o, NULL, err, sizeof(err)) != LV_ERR)
		fail_msg("outbox_open succeeded on %s", f->dir);
	assert_ptr_equal(o, (struct outbox *)&err);
	assert_non_null(strstr(err, f->dir));
	return err;
}

/* Record i: key "k<i>", value of a length that varies with i (0 included),
 * with content derived from i, so that any mix-up shows. */
static size_t val_len(uint32_t i)
{
	return (i * 37u) % 97u;
}

static void rec_make(uint32_t i, char *key, size_t *klen, char *val, size_t *vlen)
{
	*klen = (size_t)snprintf(key, 32, "k%u", i);
	*vlen = val_len(i);
	for (size_t j = 0; j < *vlen; j++)
		val[j] = (char)(i * 7u + j);
}

static uint64_t rec_size(uint32_t i)
{
	char key[32], val[128];
	size_t klen, vlen;
	rec_make(i, key, &klen, val, &vlen);
	return OVH + klen + vlen;
}

static void append_i(struct outbox *o, uint32_t i)
{
	char key[32], val[128];
	size_t klen, vlen;
	rec_make(i, key, &klen, val, &vlen);
	if (outbox_append(o, key, klen, val, vlen, false) != LV_OK)
		fail_msg("append %u: %s", i, outbox_error(o));
}

static void check_rec(const struct outbox_rec *r, uint32_t i)
{
	char key[32], val[128];
	size_t klen, vlen;
	rec_make(i, key, &klen, val, &vlen);
	if (r->klen != klen || memcmp(r->key, key, klen) != 0)
		fail_msg("record %u: key is \"%.*s\"", i, (int)r->klen, (const char *)r->key);
	if (r->vlen != vlen || (vlen > 0 && memcmp(r->val, val, vlen) != 0))
		fail_msg("record %u: wrong value (%zu bytes, want %zu)", i, r->vlen, vlen);
	if (r->next != r->pos + OVH + klen + vlen)
		fail_msg("record %u: next %llu for pos %llu", i, (unsigned long long)r->next,
		         (unsigned long long)r->pos);
}

/* Replays from the start, expecting records first..first+n-1; returns the
 * end position. */
static uint64_t expect_replay(struct outbox *o, uint32_t first, uint32_t n)
{
	uint64_t pos = outbox_start(o);
	struct outbox_rec r;
	for (uint32_t i = 0; i < n; i++) {
		int rc = outbox_next(o, &pos, &r);
		if (rc != 1)
			fail_msg("replay: record %u of %u: rc %d: %s", i, n, rc, outbox_error(o));
		check_rec(&r, first + i);
		assert_int_equal(pos, r.next);
	}
	assert_int_equal(outbox_next(o, &pos, &r), 0);
	assert_int_equal(pos, outbox_end(o));
	return pos;
}

static struct outbox_stats stats(const struct outbox *o)
{
	struct outbox_stats s;
	outbox_stats(o, &s);
	return s;
}

static uint64_t file_size(const char *path)
{
	struct stat sb;
	assert_int_equal(stat(path, &sb), 0);
	return (uint64_t)sb.st_size;
}

static void *slurp(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	struct stat sb;
	assert_int_equal(fstat(fd, &sb), 0);
	void *buf = malloc((size_t)sb.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(read(fd, buf, (size_t)sb.st_size), sb.st_size);
	close(fd);
	*len = (size_t)sb.st_size;
	return buf;
}

static void spit(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0640);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

static void wr64le(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t rd64le(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* Writes outbox.state with one slot (at offset 0), as outbox.h lays it out. */
static void forge_state(const struct fix *f, uint64_t seq, uint64_t id, uint64_t cursor)
{
	uint8_t s[40] = {'L', 'V', 'O', 'S', 1};
	wr64le(s + 8, seq);
	wr64le(s + 16, id);
	wr64le(s + 24, cursor);
	wr64le(s + 32, record_checksum(s, 32));
	spit(f->statef, s, sizeof(s));
}

static uint64_t data_file_id(const struct fix *f)
{
	size_t len;
	uint8_t *b = slurp(f->data, &len);
	assert_true(len >= HDR);
	uint64_t id = rd64le(b + 8);
	free(b);
	return id;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- round trip, under every sync policy ---------------------------------- */

static void test_round_trip(void **state)
{
	struct fix *f = *state;
	static const enum outbox_sync policies[] = {OUTBOX_SYNC_ALWAYS, OUTBOX_SYNC_BATCH,
	                                            OUTBOX_SYNC_NEVER};
	for (size_t p = 0; p < N(policies); p++) {
		struct outbox_recovery rep;
		struct outbox *o = ob_open(f, 1 << 20, 0, policies[p], &rep);
		uint64_t start = outbox_start(o);
		assert_int_equal(rep.pending_records, 0);
		assert_int_equal(rep.dropped_records, 0);
		assert_int_equal(outbox_end(o), start);
		uint64_t bytes = 0;
		for (uint32_t i = 0; i < 50; i++) {
			append_i(o, i);
			bytes += rec_size(i);
		}
		assert_int_equal(outbox_sync(o), LV_OK);
		assert_int_equal(outbox_sync(o), LV_OK); /* nothing dirty */
		struct outbox_stats s = stats(o);
		assert_int_equal(s.pending_records, 50);
		assert_int_equal(s.pending_bytes, bytes);
		assert_int_equal(s.max_bytes, 1 << 20);
		assert_int_equal(s.appended, 50);
		assert_int_equal(s.acked, 0);
		assert_int_equal(s.file_bytes, HDR + bytes);
		assert_int_equal(file_size(f->data), HDR + bytes);

		uint64_t end = expect_replay(o, 0, 50);
		assert_int_equal(end, start + bytes);
		assert_int_equal(outbox_ack(o, end), LV_OK);
		s = stats(o);
		assert_int_equal(s.pending_records, 0);
		assert_int_equal(s.pending_bytes, 0);
		assert_int_equal(s.acked, 50);
		/* drained: the file is back to its header, positions go on */
		assert_int_equal(file_size(f->data), HDR);
		assert_int_equal(s.file_bytes, HDR);
		assert_int_equal(outbox_start(o), end);
		assert_int_equal(outbox_end(o), end);
		expect_replay(o, 0, 0);
		outbox_close(o);

		/* nothing comes back */
		o = ob_open(f, 1 << 20, 0, policies[p], &rep);
		assert_int_equal(rep.pending_records, 0);
		assert_int_equal(outbox_start(o), end);
		outbox_close(o);
	}
}

/* ---- reopen: only what was not acknowledged comes back -------------------- */

static void test_reopen_replays_unacked(void **state)
{
	struct fix *f = *state;
	static const enum outbox_sync policies[] = {OUTBOX_SYNC_ALWAYS, OUTBOX_SYNC_BATCH,
	                                            OUTBOX_SYNC_NEVER};
	for (size_t p = 0; p < N(policies); p++) {
		struct outbox *o = ob_open(f, 1 << 20, 0, policies[p], NULL);
		for (uint32_t i = 0; i < 10; i++)
			append_i(o, i);
		uint64_t pos = outbox_start(o);
		struct outbox_rec r;
		for (uint32_t i = 0; i < 4; i++)
			assert_int_equal(outbox_next(o, &pos, &r), 1);
		assert_int_equal(outbox_ack(o, r.next), LV_OK);
		/* acknowledging again, or less, changes nothing */
		assert_int_equal(outbox_ack(o, r.next), LV_OK);
		assert_int_equal(outbox_ack(o, r.pos), LV_OK);
		assert_int_equal(stats(o).acked, 4);
		outbox_close(o);

		struct outbox_recovery rep;
		o = ob_open(f, 1 << 20, 0, policies[p], &rep);
		assert_int_equal(rep.pending_records, 6);
		assert_int_equal(stats(o).pending_records, 6);
		assert_int_equal(outbox_start(o), r.next);
		uint64_t end = expect_replay(o, 4, 6);
		/* twice: reading does not consume */
		expect_replay(o, 4, 6);
		assert_int_equal(outbox_ack(o, end), LV_OK);
		outbox_close(o);
	}
}

/* ---- interleaved appends, reads, acks and reopens against a model ------------ */

static uint64_t rng_state;

static uint32_t rng(uint32_t n)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 33) % n;
}

static void test_interleaved(void **state)
{
	struct fix *f = *state;
	rng_state = 0x853c49e6748fea9bull;
	/* The model: records are numbered in append order; next_id is the next
	 * one to append, acked the first undelivered, read the next to read.
	 * pos_of[i] is the position of record i once read. */
	enum { OPS = 20000, MAXREC = OPS * 3 };
	uint64_t *pos_of = calloc(MAXREC + 1, sizeof(uint64_t));
	assert_non_null(pos_of);
	uint32_t next_id = 0, acked = 0, read = 0;
	uint64_t rpos;
	struct outbox *o = ob_open(f, 1 << 30, 0, OUTBOX_SYNC_NEVER, NULL);
	rpos = outbox_start(o);
	unsigned resets = 0, reopens = 0;
	for (uint32_t op = 0; op < OPS; op++) {
		uint32_t what = rng(100);
		if (what < 40) { /* append a few */
			for (uint32_t k = rng(3) + 1; k > 0 && next_id < MAXREC; k--)
				append_i(o, next_id++);
		} else if (what < 75) { /* read a few */
			for (uint32_t k = rng(8) + 1; k > 0; k--) {
				struct outbox_rec r;
				int rc = outbox_next(o, &rpos, &r);
				if (read == next_id) {
					assert_int_equal(rc, 0);
					break;
				}
				if (rc != 1)
					fail_msg("op %u: next: rc %d: %s", op, rc, outbox_error(o));
				check_rec(&r, read);
				pos_of[read] = r.pos;
				pos_of[++read] = r.next;
			}
		} else if (what < 97) { /* acknowledge some of what was read */
			if (read > acked) {
				uint32_t upto = acked + 1 + rng(read - acked);
				bool drains = upto == next_id;
				assert_int_equal(outbox_ack(o, pos_of[upto]), LV_OK);
				acked = upto;
				resets += drains;
			}
		} else { /* restart: the reader starts over at the cursor */
			outbox_close(o);
			struct outbox_recovery rep;
			o = ob_open(f, 1 << 30, 0, OUTBOX_SYNC_NEVER, &rep);
			assert_int_equal(rep.pending_records, next_id - acked);
			assert_int_equal(rep.dropped_records, 0);
			rpos = outbox_start(o);
			read = acked;
			pos_of[read] = rpos;
			reopens++;
		}
		struct outbox_stats s = stats(o);
		if (s.pending_records != next_id - acked)
			fail_msg("op %u: pending %llu, want %u", op, (unsigned long long)s.pending_records,
			         next_id - acked);
	}
	printf("interleaved: %u records, %u drains, %u reopens\n", next_id, resets, reopens);
	/* the run went through drains (file resets) and restarts */
	assert_true(resets > 10);
	assert_true(reopens > 10);
	uint64_t end = expect_replay(o, acked, next_id - acked);
	assert_int_equal(outbox_ack(o, end), LV_OK);
	outbox_close(o);
	free(pos_of);
}

/* ---- the delivered head is reclaimed ---------------------------------------- */

/* The queue never drains, yet the file stays bounded: the delivered head is
 * dropped by copying the rest into a new file, and positions held across it
 * stay valid. */
static void test_compaction(void **state)
{
	struct fix *f = *state;
	const uint64_t max = 64 * 1024; /* the head limit is then the 1 MiB floor */
	struct outbox *o = ob_open(f, max, 0, OUTBOX_SYNC_BATCH, NULL);
	static char val[1000];
	uint64_t rpos = outbox_start(o), max_file = 0;
	uint32_t appended = 0, acked = 0;
	char key[32];
	while (appended < 6000) {
		for (int k = 0; k < 2; k++) {
			int n = snprintf(key, sizeof(key), "c%u", appended);
			memset(val, 'a' + appended % 26, sizeof(val));
			assert_int_equal(outbox_append(o, key, (size_t)n, val, sizeof(val), false), LV_OK);
			appended++;
		}
		/* read and deliver one: the backlog grows by one per round, then is
		 * kept at a few records so it never drains */
		struct outbox_rec r;
		assert_int_equal(outbox_next(o, &rpos, &r), 1);
		int n = snprintf(key, sizeof(key), "c%u", acked);
		assert_int_equal(r.klen, (size_t)n);
		assert_memory_equal(r.key, key, (size_t)n);
		assert_int_equal(((const char *)r.val)[999], 'a' + acked % 26);
		assert_int_equal(outbox_ack(o, r.next), LV_OK);
		acked++;
		if (appended - acked > 20) {
			assert_int_equal(outbox_next(o, &rpos, &r), 1);
			assert_int_equal(outbox_ack(o, r.next), LV_OK);
			acked++;
		}
		uint64_t fb = file_size(f->data);
		assert_int_equal(fb, stats(o).file_bytes);
		if (fb > max_file)
			max_file = fb;
	}
	assert_true(appended - acked > 0);
	/* 6 MB went through; the file never exceeded the head limit plus the
	 * backlog */
	assert_true(max_file <= HDR + (1u << 20) + max);
	assert_true(outbox_start(o) > 5 * (1u << 20));
	uint32_t left = appended - acked;
	outbox_close(o);

	struct outbox_recovery rep;
	o = ob_open(f, max, 0, OUTBOX_SYNC_BATCH, &rep);
	assert_int_equal(rep.pending_records, left);
	rpos = outbox_start(o);
	for (uint32_t i = 0; i < left; i++) {
		struct outbox_rec r;
		assert_int_equal(outbox_next(o, &rpos, &r), 1);
		int n = snprintf(key, sizeof(key), "c%u", acked + i);
		assert_memory_equal(r.key, key, (size_t)n);
	}
	outbox_close(o);
}

/* ---- the bound --------------------------------------------------------------- */

struct bound_step {
	char op;          /* 'a' append, 'r' append with use_reserve, 'k' ack the oldest, 'd' ack all */
	uint32_t size;    /* record size for appends, framing included */
	int want;         /* for appends: LV_OK or OUTBOX_FULL */
	uint64_t pending; /* pending bytes after the step */
};

static void test_bound(void **state)
{
	struct fix *f = *state;
	const struct {
		const char *name;
		uint64_t max, reserve;
		bool big_head; /* ends with more than max bytes in the file */
		struct bound_step steps[16];
	} cases[] = {
		{"exactly at the limit, no reserve", 1000, 0, false,
		 {{'a', 1000, LV_OK, 1000}, {'a', 16, OUTBOX_FULL, 1000}, {'d', 0, 0, 0},
		  {'a', 1001, OUTBOX_FULL, 0}, {'a', 999, LV_OK, 999}, {'a', 16, OUTBOX_FULL, 999},
		  {'r', 16, OUTBOX_FULL, 999}, {'d', 0, 0, 0}}},
		{"the reserve is for use_reserve only, and usable once", 1000, 100, false,
		 {{'a', 300, LV_OK, 300}, {'a', 300, LV_OK, 600}, {'a', 300, LV_OK, 900},
		  {'a', 16, OUTBOX_FULL, 900}, {'r', 100, LV_OK, 1000}, {'r', 16, OUTBOX_FULL, 1000},
		  {'a', 16, OUTBOX_FULL, 1000}, {'k', 0, 0, 700}, {'a', 201, OUTBOX_FULL, 700},
		  {'a', 200, LV_OK, 900}, {'r', 101, OUTBOX_FULL, 900}, {'r', 100, LV_OK, 1000}}},
		{"a record larger than the bound", 100, 10, false,
		 {{'r', 101, OUTBOX_FULL, 0}, {'a', 91, OUTBOX_FULL, 0}, {'a', 84, LV_OK, 84},
		  {'a', 16, OUTBOX_FULL, 84}, {'r', 16, LV_OK, 100}, {'r', 16, OUTBOX_FULL, 100}}},
		{"delivered but unreclaimed bytes do not count", 1000, 0, true,
		 {{'a', 400, LV_OK, 400}, {'a', 400, LV_OK, 800}, {'a', 200, LV_OK, 1000},
		  {'k', 0, 0, 600}, {'k', 0, 0, 200}, {'a', 800, LV_OK, 1000},
		  {'a', 16, OUTBOX_FULL, 1000}}},
	};
	static char val[2000];
	for (size_t c = 0; c < N(cases); c++) {
		struct outbox *o = ob_open(f, cases[c].max, cases[c].reserve, OUTBOX_SYNC_NEVER, NULL);
		uint64_t sizes[32];
		uint32_t head = 0, tail = 0; /* sizes[head..tail) are the pending records */
		for (size_t i = 0; i < N(cases[c].steps) && cases[c].steps[i].op != 0; i++) {
			const struct bound_step *st = &cases[c].steps[i];
			if (st->op == 'a' || st->op == 'r') {
				int rc = outbox_append(o, NULL, 0, val, st->size - OVH, st->op == 'r');
				if (rc != st->want)
					fail_msg("%s: step %zu: append of %u bytes: rc %d, want %d", cases[c].name,
					         i, st->size, rc, st->want);
				if (rc == LV_OK)
					sizes[tail++] = st->size;
			} else if (st->op == 'k') {
				assert_int_equal(outbox_ack(o, outbox_start(o) + sizes[head++]), LV_OK);
			} else {
				assert_int_equal(outbox_ack(o, outbox_end(o)), LV_OK);
				head = tail;
			}
			struct outbox_stats s = stats(o);
			if (s.pending_bytes != st->pending || s.pending_records != tail - head)
				fail_msg("%s: step %zu: pending %llu bytes in %llu records, want %llu in %u",
				         cases[c].name, i, (unsigned long long)s.pending_bytes,
				         (unsigned long long)s.pending_records, (unsigned long long)st->pending,
				         tail - head);
		}
		if (cases[c].big_head)
			assert_true(file_size(f->data) > HDR + cases[c].max);
		assert_int_equal(outbox_ack(o, outbox_end(o)), LV_OK);
		assert_int_equal(file_size(f->data), HDR);
		outbox_close(o);
	}
}

/* ---- crash recovery ------------------------------------------------------------ */

/* Writes records 0..n-1, closes, and returns the data file's bytes; *last is
 * the file offset of the last record. */
static uint8_t *build_file(const struct fix *f, uint32_t n, size_t *len, uint64_t *last)
{
	struct outbox *o = ob_open(f, 1 << 20, 0, OUTBOX_SYNC_BATCH, NULL);
	for (uint32_t i = 0; i < n; i++)
		append_i(o, i);
	*last = HDR + outbox_end(o) - outbox_start(o) - rec_size(n - 1);
	outbox_close(o);
	return slurp(f->data, len);
}

/* A crash in the middle of appending the last record, at every byte. */
static void test_torn_tail(void **state)
{
	struct fix *f = *state;
	size_t len;
	uint64_t last;
	/* record 4: "k4" and a 51-byte value, 69 bytes */
	uint8_t *orig = build_file(f, 5, &len, &last);
	assert_int_equal(len - last, rec_size(4));
	for (uint64_t cut = last; cut < len; cut++) {
		spit(f->data, orig, (size_t)cut);
		struct outbox_recovery rep;
		struct outbox *o = ob_open(f, 1 << 20, 0, OUTBOX_SYNC_BATCH, &rep);
		if (rep.dropped_bytes != cut - last || rep.dropped_records != (cut > last) ||
		    rep.pending_records != 4)
			fail_msg("cut at %llu: dropped %llu bytes, %llu records; %llu pending",
			         (unsigned long long)cut, (unsigned long long)rep.dropped_bytes,
			         (unsigned long long)rep.dropped_records,
			         (unsigned long long)rep.pending_records);
		if (cut > last)
			assert_int_equal(rep.dropped_offset, last);
		assert_int_equal(stats(o).dropped_at_recovery, cut > last);
		assert_int_equal(stats(o).dropped_bytes_at_recovery, cut - last);
		assert_int_equal(file_size(f->data), last);
		expect_replay(o, 0, 4);
		/* appends go on cleanly after the cut */
		append_i(o, 4);
		expect_replay(o, 0, 5);
		outbox_close(o);
		/* and the next open finds nothing wrong */
		o = ob_open(f, 1 << 20, 0, OUTBOX_SYNC_BATCH, &rep);
		assert_int_equal(rep.dropped_bytes, 0);
		assert_int_equal(rep.pending_records, 5);
		outbox_close(o);
	}
	free(orig);
}

/* A flipped byte anywhere in the last record loses that record only. */
static void test_corrupt_last_record(void **state)
{
	struct fix *f = *state;
	size_t len;
	uint64_t last;
	uint8_t *orig = build_file(f, 5, &len, &last);
	static const uint8_t masks[] = {0x01, 0x80, 0xff};
	for (size_t m = 0; m < N(masks); m++) {
		for (uint64_t at = last; at < len; at++) {
			orig[at] ^= masks[m];
			spit(f->data, orig, len);
			orig[at] ^= masks[m];
			struct outbox_recovery rep;
			struct outbox *o = ob_open(f, 1 << 20, 0, OUTBOX_SYNC_NEVER, &rep);
			if (rep.dropped_records != 1 || rep.dropped_bytes != len - last ||
			    rep.pending_records != 4)
				fail_msg("byte %llu ^ %02x: dropped %llu records, %llu bytes; %llu pending",
				         (unsigned long long)at, masks[m],
				         (unsigned long long)rep.dropped_records,
				         (unsigned long long)rep.dropped_bytes,
				         (unsigned long long)rep.pending_records);
			assert_int_equal(stats(o).dropped_at_recovery, 1);
			expect_replay(o, 0, 4);
			outbox_close(o);
		}
	}
	free(orig);
}

/* Corruption in the middle is not a torn write: the bad record and the intact
 * ones after it are dropped (the count says so), the ones before survive. */
static void test_corrupt_middle_record(void **state)
{
	struct fix *f = *state;
	size_t len;
	uint64_t last;
	uint8_t *orig = build_file(f, 6, &len, &last);
	uint64_t off2 = HDR + rec_size(0) + rec_size(1);
	orig[off2 + 9] ^= 0x10; /* inside record 2's key */
	spit(f->data, orig, len);
	struct outbox_recovery rep;
	struct outbox *o = ob_open(f, 1 << 20, 0, OUTBOX_SYNC_BATCH, &rep);
	assert_int_equal(rep.pending_records, 2);
	assert_int_equal(rep.dropped_records, 4);
	assert_int_equal(rep.dropped_bytes, len - off2);
	assert_int_equal(rep.dropped_offset, off2);
	expect_replay(o, 0, 2);
	outbox_close(o);
	free(orig);
}

/* Files that are not ours are refused and left exactly as they were. */
static void test_bad_header(void **state)
{
	struct fix *f = *state;
	uint8_t good[HDR] = {'L', 'V', 'O', 'B', 1};
	wr64le(good + 8, 42);
	wr64le(good + 24, record_checksum(good, 24));
	uint8_t badsum[HDR], v2[HDR], v2other[HDR], badmagic[HDR];
	memcpy(badsum, good, HDR);
	badsum[30] ^= 1;
	memcpy(v2, good, HDR);
	v2[4] = 2;
	wr64le(v2 + 24, record_checksum(v2, 24));
	memcpy(v2other, v2, HDR); /* a later version may put something else there */
	v2other[25] ^= 1;
	memcpy(badmagic, good, HDR);
	badmagic[0] = 'X';
	wr64le(badmagic + 24, record_checksum(badmagic, 24));
	static const char text[] = "# levee policy\n[levee]\nlisten = 0.0.0.0:8080\n";
	const struct {
		const char *file; /* "lvq" or "state" */
		const void *p;
		size_t len;
		const char *want; /* in the message */
	} cases[] = {
		{"lvq", "", 0, "not an outbox data file"},
		{"lvq", good, 10, "not an outbox data file"},
		{"lvq", badmagic, HDR, "bad magic"},
		{"lvq", badsum, HDR, "bad header checksum"},
		{"lvq", v2, HDR, "version 2"},
		{"lvq", v2other, HDR, "version 2"},
		{"lvq", text, sizeof(text) - 1, "not an outbox data file"},
		{"state", text, sizeof(text) - 1, "not an outbox state file"},
	};
	char spool[160];
	snprintf(spool, sizeof(spool), "%s/spool", f->root);
	assert_int_equal(mkdir(spool, 0750), 0);
	assert_int_equal(mkdir(f->dir, 0750), 0);
	for (size_t c = 0; c < N(cases); c++) {
		unlink(f->data);
		unlink(f->statef);
		const char *path = strcmp(cases[c].file, "lvq") == 0 ? f->data : f->statef;
		spit(path, cases[c].p, cases[c].len);
		const char *err = ob_open_fails(f, 1 << 20, 0);
		if (strstr(err, cases[c].want) == NULL ||
		    strstr(err, cases[c].file[0] == 'l' ? "outbox.lvq" : "outbox.state") == NULL)
			fail_msg("case %zu: message \"%s\"", c, err);
		size_t len;
		void *after = slurp(path, &len);
		assert_int_equal(len, cases[c].len);
		assert_memory_equal(after, cases[c].p, len);
		free(after);
	}
	/* a good header with the state gone opens */
	unlink(f->statef);
	spit(f->data, good, HDR);
	struct outbox *o = ob_open(f, 1 << 20, 0, OUTBOX_SYNC_BATCH, NULL);
	outbox_close(o);
}

/* The state slots: a cursor for another data file means "replay it all"; a
 * cursor beyond the end is brought back; no state replays everything. */
static void test_state_recovery(void **state)
{
	struct fix *f = *state;
	struct outbox *o = ob_open(f, 1 << 20, 0, OUTBOX_SYNC_BATCH, NULL);
	for (uint32_t i = 0; i < 6; i++)
		append_i(o, i);
	uint64_t start = outbox_start(o), end = outbox_end(o);
	uint64_t after2 = start + rec_size(0) + rec_size(1);
	assert_int_equal(outbox_ack(o, after2), LV_OK);
	outbox_close(o);
	uint64_t id = data_file_id(f);

	const struct {
		const char *name;
		bool remove;
		uint64_t id, cursor;
		uint32_t first, pending;
	} cases[] = {
		{"the state as written", false, id, after2, 2, 4},
		{"another file's cursor", false, id + 1, after2, 0, 6},
		{"cursor beyond the end", false, id, end + 1000, 6, 0},
		{"cursor at the base", false, id, start, 0, 6},
		{"no state file", true, 0, 0, 0, 6},
	};
	for (size_t c = 0; c < N(cases); c++) {
		if (cases[c].remove)
			unlink(f->statef);
		else
			forge_state(f, 7, cases[c].id, cases[c].cursor);
		struct outbox_recovery rep;
		o = ob_open(f, 1 << 20, 0, OUTBOX_SYNC_BATCH, &rep);
		if (rep.pending_records != cases[c].pending)
			fail_msg("%s: %llu pending, want %u", cases[c].name,
			         (unsigned long long)rep.pending_records, cases[c].pending);
		assert_int_equal(rep.dropped_records, 0);
		expect_replay(o, cases[c].first, cases[c].pending);
		outbox_close(o);
	}
	/* a torn state slot falls back to the other one */
	forge_state(f, 7, id, after2);
	int fd = open(f->statef, O_WRONLY);
	assert_true(fd >= 0);
	uint8_t s[40] = {'L', 'V', 'O', 'S', 1};
	wr64le(s + 8, 8);
	wr64le(s + 16, id);
	wr64le(s + 24, end);
	wr64le(s + 32, record_checksum(s, 32) ^ 1); /* torn */
	assert_int_equal(pwrite(fd, s, sizeof(s), 512), (ssize_t)sizeof(s));
	close(fd);
	struct outbox_recovery rep;
	o = ob_open(f, 1 << 20, 0, OUTBOX_SYNC_BATCH, &rep);
	assert_int_equal(rep.pending_records, 4);
	outbox_close(o);
	/* the newer intact slot wins over the older one */
	forge_state(f, 7, id, after2);
	fd = open(f->statef, O_WRONLY);
	assert_true(fd >= 0);
	wr64le(s + 24, after2 + rec_size(2));
	wr64le(s + 32, record_checksum(s, 32));
	assert_int_equal(pwrite(fd, s, sizeof(s), 512), (ssize_t)sizeof(s));
	close(fd);
	o = ob_open(f, 1 << 20, 0, OUTBOX_SYNC_BATCH, &rep);
	assert_int_equal(rep.pending_records, 3);
	expect_replay(o, 3, 3);
	outbox_close(o);
}

/* ---- lock, limits, errors ----------------------------------------------------------- */

static void test_lock(void **state)
{
	struct fix *f = *state;
	struct outbox *a = ob_open(f, 1 << 20, 0, OUTBOX_SYNC_BATCH, NULL);
	const char *err = ob_open_fails(f, 1 << 20, 0);
	if (strstr(err, "locked by another process") == NULL)
		fail_msg("message \"%s\"", err);
	append_i(a, 0);
	outbox_close(a);
	struct outbox_recovery rep;
	struct outbox *b = ob_open(f, 1 << 20, 0, OUTBOX_SYNC_BATCH, &rep);
	assert_int_equal(rep.pending_records, 1);
	outbox_close(b);
}

static void test_limits(void **state)
{
	struct fix *f = *state;
	struct outbox *o = ob_open(f, 8u << 20, 0, OUTBOX_SYNC_BATCH, NULL);
	char *key = malloc(OUTBOX_MAX_KEY + 1), *val = malloc(OUTBOX_MAX_VAL + 1);
	assert_non_null(key);
	assert_non_null(val);
	for (size_t i = 0; i <= OUTBOX_MAX_KEY; i++)
		key[i] = (char)(i * 13);
	for (size_t i = 0; i <= OUTBOX_MAX_VAL; i++)
		val[i] = (char)(i * 7 + 1);
	const struct {
		size_t klen, vlen;
		int want;
	} cases[] = {
		{0, 0, LV_OK},
		{OUTBOX_MAX_KEY, 0, LV_OK},
		{0, OUTBOX_MAX_VAL, LV_OK},
		{OUTBOX_MAX_KEY, OUTBOX_MAX_VAL, LV_OK},
		{OUTBOX_MAX_KEY + 1, 0, LV_ERR},
		{0, OUTBOX_MAX_VAL + 1, LV_ERR},
		{OUTBOX_MAX_KEY + 1, OUTBOX_MAX_VAL + 1, LV_ERR},
		{SIZE_MAX, 1, LV_ERR},
		{1, 1, LV_OK},
	};
	for (size_t c = 0; c < N(cases); c++) {
		int rc = outbox_append(o, cases[c].klen ? key : NULL, cases[c].klen,
		                       cases[c].vlen ? val : NULL, cases[c].vlen, false);
		if (rc != cases[c].want)
			fail_msg("case %zu: rc %d: %s", c, rc, outbox_error(o));
		if (rc == LV_ERR) {
			assert_non_null(strstr(outbox_error(o), "the limits are"));
			assert_non_null(strstr(outbox_error(o), f->dir));
		}
	}
	assert_int_equal(stats(o).pending_records, 5);
	outbox_close(o);
	/* read back after a reopen, byte for byte */
	o = ob_open(f, 8u << 20, 0, OUTBOX_SYNC_BATCH, NULL);
	uint64_t pos = outbox_start(o);
	for (size_t c = 0; c < N(cases); c++) {
		if (cases[c].want != LV_OK)
			continue;
		struct outbox_rec r;
		assert_int_equal(outbox_next(o, &pos, &r), 1);
		assert_int_equal(r.klen, cases[c].klen);
		assert_int_equal(r.vlen, cases[c].vlen);
		assert_memory_equal(r.key, key, r.klen);
		assert_memory_equal(r.val, val, r.vlen);
	}
	outbox_close(o);
	free(key);
	free(val);
}

static void test_errors(void **state)
{
	struct fix *f = *state;
	/* bad configuration */
	const char *err = ob_open_fails(f, 0, 0);
	assert_non_null(strstr(err, "max_bytes"));
	err = ob_open_fails(f, 100, 100);
	assert_non_null(strstr(err, "reserve_bytes"));

	/* the directory cannot be created: a file is in the way */
	char spool[160];
	snprintf(spool, sizeof(spool), "%s/spool", f->root);
	spit(spool, "x", 1);
	err = ob_open_fails(f, 1 << 20, 0);
	if (strstr(err, "cannot create") == NULL || strstr(err, "Not a directory") == NULL)
		fail_msg("message \"%s\"", err);
	assert_int_equal(unlink(spool), 0);

	/* positions that are not record boundaries */
	struct outbox *o = ob_open(f, 1 << 20, 0, OUTBOX_SYNC_BATCH, NULL);
	for (uint32_t i = 0; i < 3; i++)
		append_i(o, i);
	uint64_t start = outbox_start(o), end = outbox_end(o);
	struct outbox_rec r;
	uint64_t pos = end + 1;
	assert_int_equal(outbox_next(o, &pos, &r), LV_ERR);
	assert_non_null(strstr(outbox_error(o), "outside"));
	pos = start + 1;
	assert_int_equal(outbox_next(o, &pos, &r), LV_ERR);
	assert_non_null(strstr(outbox_error(o), "corrupt"));
	assert_int_equal(pos, start + 1);
	assert_int_equal(outbox_ack(o, end + 1), LV_ERR);
	assert_non_null(strstr(outbox_error(o), "past the end"));
	assert_int_equal(outbox_ack(o, start + rec_size(0) + 1), LV_ERR);
	assert_non_null(strstr(outbox_error(o), "not a record boundary"));
	/* nothing changed */
	assert_int_equal(outbox_start(o), start);
	assert_int_equal(stats(o).pending_records, 3);
	expect_replay(o, 0, 3);
	outbox_close(o);
}

/* A write that fails half way (here: EFBIG from RLIMIT_FSIZE) stores nothing
 * and leaves no torn record behind. */
static void test_write_failure(void **state)
{
	struct fix *f = *state;
	struct outbox *o = ob_open(f, 1 << 20, 0, OUTBOX_SYNC_BATCH, NULL);
	for (uint32_t i = 0; i < 3; i++)
		append_i(o, i);
	uint64_t size = file_size(f->data);
	struct rlimit old, lim;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	void (*oldsig)(int) = signal(SIGXFSZ, SIG_IGN);
	lim = old;
	lim.rlim_cur = (rlim_t)size + 50;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	/* 219 bytes: the kernel writes the first 50, then refuses */
	static char val[200];
	int rc = outbox_append(o, "big", 3, val, sizeof(val), false);
	uint64_t size_after = file_size(f->data);
	/* record 3 is 32 bytes: fits */
	char key[32], v3[128];
	size_t klen, vlen;
	rec_make(3, key, &klen, v3, &vlen);
	int rc3 = outbox_append(o, key, klen, v3, vlen, false);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, oldsig);
	assert_int_equal(rc, LV_ERR);
	assert_non_null(strstr(outbox_error(o), "cannot append to outbox.lvq"));
	assert_int_equal(size_after, size);
	assert_int_equal(rc3, LV_OK);
	assert_int_equal(file_size(f->data), size + rec_size(3));
	assert_int_equal(stats(o).pending_records, 4);
	assert_int_equal(stats(o).appended, 4);
	expect_replay(o, 0, 4);
	outbox_close(o);
	struct outbox_recovery rep;
	o = ob_open(f, 1 << 20, 0, OUTBOX_SYNC_BATCH, &rep);
	assert_int_equal(rep.dropped_bytes, 0);
	assert_int_equal(rep.pending_records, 4);
	expect_replay(o, 0, 4);
	outbox_close(o);
}

/* ---- volume ------------------------------------------------------------------------ */

static void test_100k(void **state)
{
	struct fix *f = *state;
	enum { COUNT = 100000 };
	struct outbox *o = ob_open(f, 64u << 20, 64u << 10, OUTBOX_SYNC_BATCH, NULL);
	char key[32], val[64];
	double t0 = now_s();
	for (uint32_t i = 0; i < COUNT; i++) {
		int klen = snprintf(key, sizeof(key), "ev-%u", i);
		memset(val, 'a' + i % 26, sizeof(val));
		memcpy(val, &i, sizeof(i));
		if (outbox_append(o, key, (size_t)klen, val, sizeof(val), false) != LV_OK)
			fail_msg("append %u: %s", i, outbox_error(o));
		if (i % 1000 == 999)
			assert_int_equal(outbox_sync(o), LV_OK);
	}
	assert_int_equal(outbox_sync(o), LV_OK);
	double t1 = now_s();
	uint64_t bytes = stats(o).pending_bytes;
	outbox_close(o);
	struct outbox_recovery rep;
	o = ob_open(f, 64u << 20, 64u << 10, OUTBOX_SYNC_BATCH, &rep);
	double t2 = now_s();
	assert_int_equal(rep.pending_records, COUNT);
	uint64_t pos = outbox_start(o);
	for (uint32_t i = 0; i < COUNT; i++) {
		struct outbox_rec r;
		if (outbox_next(o, &pos, &r) != 1)
			fail_msg("next %u: %s", i, outbox_error(o));
		int klen = snprintf(key, sizeof(key), "ev-%u", i);
		uint32_t got;
		memcpy(&got, r.val, sizeof(got));
		if (r.klen != (size_t)klen || memcmp(r.key, key, r.klen) != 0 || got != i)
			fail_msg("record %u out of order", i);
		if (i % 100 == 99 && outbox_ack(o, r.next) != LV_OK)
			fail_msg("ack %u: %s", i, outbox_error(o));
	}
	assert_int_equal(outbox_sync(o), LV_OK);
	double t3 = now_s();
	assert_int_equal(stats(o).pending_records, 0);
	assert_int_equal(file_size(f->data), HDR);
	outbox_close(o);
	printf("outbox %u records, %llu bytes: append (sync every 1000) %.3f s, reopen (verifies "
	       "all) %.3f s, replay (ack every 100) %.3f s\n", COUNT, (unsigned long long)bytes,
	       t1 - t0, t2 - t1, t3 - t2);

	/* and the fsync-every-call policy, on a smaller count */
	o = ob_open(f, 64u << 20, 0, OUTBOX_SYNC_ALWAYS, NULL);
	t0 = now_s();
	for (uint32_t i = 0; i < 200; i++)
		append_i(o, i);
	t1 = now_s();
	uint64_t end = expect_replay(o, 0, 200);
	assert_int_equal(outbox_ack(o, end), LV_OK);
	outbox_close(o);
	printf("outbox 200 appends with SYNC_ALWAYS: %.3f s (%.2f ms each)\n", t1 - t0,
	       (t1 - t0) * 1e3 / 200);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_round_trip),        T(test_reopen_replays_unacked), T(test_interleaved),
		T(test_compaction),        T(test_bound),                  T(test_torn_tail),
		T(test_corrupt_last_record), T(test_corrupt_middle_record), T(test_bad_header),
		T(test_state_recovery),    T(test_lock),                   T(test_limits),
		T(test_errors),            T(test_write_failure),          T(test_100k),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
