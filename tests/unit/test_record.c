/*
 * test_record.c - the cache record format of proxy/cache/record.c.
 *
 * A table of records (built by small functions) goes through every property:
 * round trip, exact size, every truncation, every single-byte corruption.
 * Tables of bad inputs check the encoder's and the decoder's limits, and a
 * table of known XXH64 values pins the checksum to the published algorithm.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cache/record.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define S(lit) ((struct record_str){(lit), sizeof(lit) - 1})

/* ---- fixtures ------------------------------------------------------------- */

#define TEXT_CAP (4u << 20)
#define MAX_CHUNKS 2048
#define BIG_BODY ((1u << 20) + 12345)

struct fix {
	struct record_in in;
	struct record_str vn[RECORD_MAX_VARY + 1], vv[RECORD_MAX_VARY + 1];
	struct record_str tags[RECORD_MAX_TAGS + 1];
	struct record_hdr hdrs[RECORD_MAX_HDRS + 1];
	struct iovec body[MAX_CHUNKS];
	char text[TEXT_CAP]; /* storage for generated strings and bodies */
	size_t used;
};

static struct fix fx;

/* A generated string of `len` bytes, kept in fx.text. */
static struct record_str gen(size_t len, unsigned seed)
{
	assert_true(fx.used + len <= TEXT_CAP);
	char *p = fx.text + fx.used;
	for (size_t i = 0; i < len; i++)
		p[i] = (char)('a' + (i * 31 + seed) % 26);
	fx.used += len;
	return (struct record_str){p, (uint32_t)len};
}

static struct record_str fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static struct record_str fmt(const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	int n = vsnprintf(fx.text + fx.used, TEXT_CAP - fx.used, f, ap);
	va_end(ap);
	assert_true(n >= 0 && fx.used + (size_t)n < TEXT_CAP);
	struct record_str s = {fx.text + fx.used, (uint32_t)n};
	fx.used += (size_t)n;
	return s;
}

static void fix_reset(void)
{
	memset(&fx.in, 0, sizeof(fx.in));
	fx.used = 0;
	fx.in.status = 200;
	fx.in.last_modified = -1;
	fx.in.vary_names = fx.vn;
	fx.in.vary_values = fx.vv;
	fx.in.tags = fx.tags;
	fx.in.hdrs = fx.hdrs;
	fx.in.body = fx.body;
}

static void add_hdr(struct record_str name, struct record_str value)
{
	fx.hdrs[fx.in.nhdrs++] = (struct record_hdr){name, value};
}

static void add_body(const char *p, size_t len)
{
	assert_true(fx.in.nbody < MAX_CHUNKS);
	fx.body[fx.in.nbody++] = (struct iovec){(void *)p, len};
}

static void build_minimal(void)
{
	fix_reset();
}

static void build_typical(void)
{
	fix_reset();
	fx.in.request_time = 1700000000000;
	fx.in.response_time = 1700000000123;
	fx.in.initial_age = 5;
	fx.in.lifetime = 300;
	fx.in.last_modified = 1699990000;
	fx.in.etag = S("\"v1-abc\"");
	fx.vn[0] = S("accept-encoding");
	fx.vv[0] = S("gzip, br");
	fx.in.nvary = 1;
	fx.tags[0] = S("product:42");
	fx.tags[1] = S("catalog");
	fx.in.ntags = 2;
	add_hdr(S("Content-Type"), S("application/json"));
	add_hdr(S("Cache-Control"), S("max-age=300"));
	add_hdr(S("Cache-Control"), S("public"));
	add_hdr(S("Set-Cookie"), S("a=1"));
	add_hdr(S("Set-Cookie"), S("a=1"));
	add_body("{\"id\":42}", 9);
}

static void build_negative(void)
{
	fix_reset();
	fx.in.status = 404;
	fx.in.flags = RECORD_F_NEGATIVE | RECORD_F_HEURISTIC;
	fx.in.request_time = 1;
	fx.in.response_time = 2;
	fx.in.lifetime = 30;
	fx.in.swr = 10;
	fx.in.sie = 600;
	add_hdr(S("Content-Type"), S("text/plain"));
	add_body("not ", 4);
	add_body("found", 5);
}

/* Every flag; empty values, an empty Vary value (the request lacked the
 * field) and empty body chunks. */
static void build_empties(void)
{
	fix_reset();
	fx.in.status = 204;
	fx.in.flags = RECORD_F_ALL;
	fx.vn[0] = S("accept-language");
	fx.vv[0] = S("");
	fx.vn[1] = S("x-tenant");
	fx.vv[1] = S("t1");
	fx.in.nvary = 2;
	add_hdr(S("X-Empty"), S(""));
	add_hdr(S("X-Empty"), (struct record_str){NULL, 0});
	add_body(NULL, 0);
	add_body("", 0);
	add_body(NULL, 0);
}

/* Every list at its limit, names repeating. */
static void build_many(void)
{
	fix_reset();
	fx.in.status = 200;
	for (uint32_t i = 0; i < RECORD_MAX_VARY; i++) {
		fx.vn[i] = fmt("x-vary-%u", i);
		fx.vv[i] = fmt("value %u", i * 7);
	}
	fx.in.nvary = RECORD_MAX_VARY;
	for (uint32_t i = 0; i < RECORD_MAX_TAGS; i++)
		fx.tags[i] = fmt("tag-%u", i);
	fx.in.ntags = RECORD_MAX_TAGS;
	for (uint32_t i = 0; i < RECORD_MAX_HDRS; i++)
		add_hdr(fmt("X-H%u", i % 7), fmt("v%u", i));
	add_body("x", 1);
}

/* A body of about 1 MiB in ragged chunks, some empty, as an evbuffer yields. */
static void build_big_body(void)
{
	fix_reset();
	fx.in.lifetime = 3600;
	struct record_str all = gen(BIG_BODY, 7);
	size_t off = 0;
	for (unsigned i = 0; off < all.len; i++) {
		size_t n = (i * 2654435761u) % 2000;
		if (n > all.len - off)
			n = all.len - off;
		add_body(all.p + off, n);
		off += n;
	}
	add_hdr(S("Content-Length"), fmt("%u", BIG_BODY));
}

/* Bytes that text formats choke on, every string at its size limit. */
static void build_binary(void)
{
	fix_reset();
	fx.in.status = 999;
	fx.in.request_time = INT64_MIN;
	fx.in.response_time = INT64_MAX;
	fx.in.initial_age = INT64_MAX;
	fx.in.lifetime = 0;
	fx.in.last_modified = 0;
	fx.in.etag = gen(RECORD_MAX_STR, 1);
	fx.vn[0] = gen(RECORD_MAX_STR, 2);
	fx.vv[0] = gen(RECORD_MAX_STR, 3);
	fx.in.nvary = 1;
	fx.tags[0] = gen(RECORD_MAX_STR, 4);
	fx.in.ntags = 1;
	add_hdr((struct record_str){"\0\r\n:", 4}, (struct record_str){"\xff\x00\x80", 3});
	add_hdr(gen(RECORD_MAX_STR, 5), gen(RECORD_MAX_STR, 6));
	add_body("\0\0\0\xff", 4);
}

struct rec_case {
	const char *name;
	void (*build)(void);
};

static const struct rec_case rec_cases[] = {
	{"minimal", build_minimal},   {"typical", build_typical}, {"negative", build_negative},
	{"empties", build_empties},   {"many", build_many},       {"big-body", build_big_body},
	{"binary", build_binary},
};

/* Encodes fx.in into a buffer of exactly the record's size, so that the
 * sanitizers catch any access past it. */
static uint8_t *encode_fix(size_t *len)
{
	size_t n = record_size(&fx.in);
	assert_true(n >= RECORD_MIN_SIZE);
	uint8_t *buf = malloc(n);
	assert_non_null(buf);
	assert_int_equal(record_encode(&fx.in, buf, n), RECORD_OK);
	*len = n;
	return buf;
}

static void wr_le(uint8_t *p, unsigned width, uint64_t v)
{
	for (unsigned i = 0; i < width; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t rd_le(const uint8_t *p, unsigned width)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < width; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* Rewrites the checksum after a deliberate edit, to reach the checks that
 * follow it. */
static void reseal(uint8_t *buf, size_t len)
{
	wr_le(buf + len - 8, 8, record_checksum(buf, len - 8));
}

static void assert_str_eq(const char *what, struct record_str got, struct record_str want)
{
	if (got.len != want.len || (want.len > 0 && memcmp(got.p, want.p, want.len) != 0))
		fail_msg("%s: got %u bytes, want %u", what, got.len, want.len);
}

/* ---- properties over every record case ------------------------------------ */

static void test_round_trip(void **state)
{
	(void)state;
	for (size_t k = 0; k < N(rec_cases); k++) {
		rec_cases[k].build();
		const struct record_in *in = &fx.in;
		size_t len;
		uint8_t *buf = encode_fix(&len);
		struct record_view v;
		int rc = record_decode(buf, len, &v);
		if (rc != RECORD_OK)
			fail_msg("%s: decode: %s", rec_cases[k].name, record_strerror(rc));

		assert_int_equal(v.version, RECORD_VERSION);
		assert_int_equal(v.status, in->status);
		assert_int_equal(v.flags, in->flags);
		assert_true(v.request_time == in->request_time);
		assert_true(v.response_time == in->response_time);
		assert_true(v.initial_age == in->initial_age);
		assert_true(v.lifetime == in->lifetime);
		assert_true(v.swr == in->swr);
		assert_true(v.sie == in->sie);
		assert_true(v.last_modified == in->last_modified);
		assert_int_equal(v.size, len);
		assert_str_eq("etag", v.etag, in->etag);

		struct record_cursor c = {0};
		struct record_str name, value;
		uint32_t i = 0;
		while (record_next_vary(&v, &c, &name, &value)) {
			assert_true(i < in->nvary);
			assert_str_eq("vary name", name, in->vary_names[i]);
			assert_str_eq("vary value", value, in->vary_values[i]);
			i++;
		}
		assert_int_equal(i, in->nvary);
		assert_int_equal(v.nvary, in->nvary);

		c = (struct record_cursor){0};
		for (i = 0; record_next_tag(&v, &c, &name); i++) {
			assert_true(i < in->ntags);
			assert_str_eq("tag", name, in->tags[i]);
		}
		assert_int_equal(i, in->ntags);
		/* the same tags as the arrays purge checks take, and a cap */
		const char *tp[RECORD_MAX_TAGS];
		size_t tl[RECORD_MAX_TAGS];
		assert_int_equal(record_tag_list(&v, tp, tl, RECORD_MAX_TAGS), in->ntags);
		for (i = 0; i < in->ntags; i++)
			assert_str_eq("tag list", ((struct record_str){tp[i], (uint32_t)tl[i]}), in->tags[i]);
		if (in->ntags)
			assert_int_equal(record_tag_list(&v, tp, tl, in->ntags - 1), in->ntags - 1);

		c = (struct record_cursor){0};
		struct record_hdr h;
		for (i = 0; record_next_hdr(&v, &c, &h); i++) {
			assert_true(i < in->nhdrs);
			assert_str_eq("header name", h.name, in->hdrs[i].name);
			assert_str_eq("header value", h.value, in->hdrs[i].value);
		}
		assert_int_equal(i, in->nhdrs);
		/* the lists end where the body starts: nothing was skipped */
		assert_ptr_equal(v.hdrs_at + c.off, v.body);
		/* an exhausted cursor stays exhausted */
		assert_false(record_next_hdr(&v, &c, &h));

		size_t off = 0;
		for (uint32_t j = 0; j < in->nbody; j++) {
			assert_true(off + in->body[j].iov_len <= v.body_len);
			if (in->body[j].iov_len > 0)
				assert_memory_equal((const uint8_t *)v.body + off,
				                    in->body[j].iov_base, in->body[j].iov_len);
			off += in->body[j].iov_len;
		}
		assert_int_equal(off, v.body_len);
		assert_ptr_equal((const uint8_t *)v.body + v.body_len + 8, buf + len);
		free(buf);
	}
}

/* record_size() is exact: encode writes that many bytes and no more, and a
 * buffer one byte short is refused untouched. */
static void test_exact_size(void **state)
{
	(void)state;
	for (size_t k = 0; k < N(rec_cases); k++) {
		rec_cases[k].build();
		size_t n = record_size(&fx.in);
		assert_true(n > 0);
		size_t cap = n + 64;
		uint8_t *buf = malloc(cap);
		assert_non_null(buf);
		memset(buf, 0xa5, cap);
		assert_int_equal(record_encode(&fx.in, buf, n - 1), RECORD_ENOSPC);
		for (size_t i = 0; i < cap; i++)
			assert_int_equal(buf[i], 0xa5);
		assert_int_equal(record_encode(&fx.in, buf, cap), RECORD_OK);
		for (size_t i = n; i < cap; i++)
			assert_int_equal(buf[i], 0xa5);
		assert_int_equal(rd_le(buf + 16, 4), n);
		/* encoding is deterministic */
		uint8_t *again = malloc(n);
		assert_non_null(again);
		assert_int_equal(record_encode(&fx.in, again, n), RECORD_OK);
		assert_memory_equal(buf, again, n);
		free(again);
		free(buf);
	}
	assert_int_equal(record_encode(&fx.in, NULL, 0), RECORD_ENOSPC);
}

/* Every proper prefix of a valid record is ETRUNC. Small records are copied
 * to a buffer of exactly the prefix length so that ASan sees any over-read;
 * the big one is cut in place (its header alone decides). */
static void test_truncation(void **state)
{
	(void)state;
	for (size_t k = 0; k < N(rec_cases); k++) {
		rec_cases[k].build();
		size_t len;
		uint8_t *buf = encode_fix(&len);
		bool copy = len <= 256 * 1024;
		for (size_t cut = 0; cut < len; cut++) {
			uint8_t *p = buf;
			if (copy) {
				p = malloc(cut ? cut : 1);
				assert_non_null(p);
				memcpy(p, buf, cut);
			}
			struct record_view v;
			int rc = record_decode(p, cut, &v);
			if (rc != RECORD_ETRUNC)
				fail_msg("%s: prefix %zu of %zu: %s", rec_cases[k].name, cut, len,
				         record_strerror(rc));
			if (copy)
				free(p);
		}
		/* and one byte too many is not a record either */
		uint8_t *longer = malloc(len + 1);
		assert_non_null(longer);
		memcpy(longer, buf, len);
		longer[len] = 0;
		struct record_view v;
		assert_int_equal(record_decode(longer, len + 1, &v), RECORD_ECORRUPT);
		free(longer);
		free(buf);
	}
}

/* The error a corruption at byte `pos` must produce. */
static void expect_corrupt(const char *name, size_t pos, uint8_t mask, int rc)
{
	bool ok;
	if (pos < 4)
		ok = rc == RECORD_EMAGIC;
	else if (pos == 4)
		ok = rc == RECORD_EVERSION;
	else if (pos >= 16 && pos < 20) /* the total length */
		ok = rc == RECORD_ETRUNC || rc == RECORD_ECORRUPT;
	else
		ok = rc == RECORD_ECHECKSUM;
	if (!ok)
		fail_msg("%s: byte %zu ^ 0x%02x: %s", name, pos, mask, record_strerror(rc));
}

/* Any change of one byte is detected. Small records: every bit of every byte
 * and the whole byte; larger ones one bit per byte, or sampled bytes for the
 * big body, to keep the test within seconds. */
static void test_corruption(void **state)
{
	(void)state;
	static const uint8_t masks[] = {0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xff};
	for (size_t k = 0; k < N(rec_cases); k++) {
		rec_cases[k].build();
		size_t len;
		uint8_t *buf = encode_fix(&len);
		size_t stride = len > 256 * 1024 ? 997 : 1;
		bool all_masks = len <= 8192;
		for (size_t pos = 0; pos < len; pos += stride) {
			for (size_t m = 0; m < N(masks); m++) {
				uint8_t mask = all_masks ? masks[m] : masks[pos % 8];
				buf[pos] ^= mask;
				struct record_view v;
				expect_corrupt(rec_cases[k].name, pos, mask,
				               record_decode(buf, len, &v));
				buf[pos] ^= mask;
				if (!all_masks)
					break;
			}
		}
		struct record_view v;
		assert_int_equal(record_decode(buf, len, &v), RECORD_OK);
		free(buf);
	}
}

/* ---- decoder: bad headers ------------------------------------------------- */

struct bytes_case {
	const char *name;
	const char *data;
	size_t len;
	int want;
};

#define B(name, lit, want) {name, lit, sizeof(lit) - 1, want}

static void test_magic_and_version(void **state)
{
	(void)state;
	static const struct bytes_case cases[] = {
		B("empty", "", RECORD_ETRUNC),
		B("magic prefix", "LV", RECORD_ETRUNC),
		B("magic only", "LVRC", RECORD_ETRUNC),
		B("version 1, no header", "LVRC\x01", RECORD_ETRUNC),
		B("other byte", "X", RECORD_EMAGIC),
		B("json", "{\"status\":200}", RECORD_EMAGIC),
		B("lower case", "lvrc\x01", RECORD_EMAGIC),
		B("short bad magic", "LVX", RECORD_EMAGIC),
		B("version 0", "LVRC\x00", RECORD_EVERSION),
		B("version 2, short", "LVRC\x02", RECORD_EVERSION),
		B("version 255", "LVRC\xff garbage of any length", RECORD_EVERSION),
	};
	for (size_t i = 0; i < N(cases); i++) {
		struct record_view v;
		char *p = malloc(cases[i].len + 1);
		assert_non_null(p);
		memcpy(p, cases[i].data, cases[i].len);
		int rc = record_decode(p, cases[i].len, &v);
		free(p);
		if (rc != cases[i].want)
			fail_msg("%s: got %s, want %s", cases[i].name, record_strerror(rc),
			         record_strerror(cases[i].want));
	}

	/* a full, valid record of a future version is EVERSION, not corrupt */
	build_typical();
	size_t len;
	uint8_t *buf = encode_fix(&len);
	static const uint8_t versions[] = {0, 2, 3, 255};
	for (size_t i = 0; i < N(versions); i++) {
		buf[4] = versions[i];
		reseal(buf, len);
		struct record_view v;
		assert_int_equal(record_decode(buf, len, &v), RECORD_EVERSION);
	}
	free(buf);
	struct record_view v;
	assert_int_equal(record_decode(NULL, 0, &v), RECORD_ETRUNC);
}

/* ---- decoder: sealed records with bad fields ------------------------------ */

enum patch_mode { SET, ADD };

struct patch_case {
	const char *name;
	unsigned off, width;
	enum patch_mode mode;
	int64_t val;
	int want; /* ANY_STRUCT: ECORRUPT or ELIMIT, whichever misparse comes first */
};

#define ANY_STRUCT 1

static void test_decode_fields(void **state)
{
	(void)state;
	/* offsets from the layout table in record.h; the typical record's etag
	 * length is at 80 */
	static const struct patch_case cases[] = {
		{"reserved byte", 5, 1, SET, 1, RECORD_ECORRUPT},
		{"unknown flag", 6, 2, SET, 0x10, RECORD_ECORRUPT},
		{"top flag", 6, 2, SET, 0x8000, RECORD_ECORRUPT},
		{"status 99", 8, 2, SET, 99, RECORD_ECORRUPT},
		{"status 1000", 8, 2, SET, 1000, RECORD_ECORRUPT},
		{"status 0", 8, 2, SET, 0, RECORD_ECORRUPT},
		{"nvary over limit", 10, 2, SET, RECORD_MAX_VARY + 1, RECORD_ELIMIT},
		{"ntags over limit", 12, 2, SET, RECORD_MAX_TAGS + 1, RECORD_ELIMIT},
		{"nhdrs over limit", 14, 2, SET, RECORD_MAX_HDRS + 1, RECORD_ELIMIT},
		{"nhdrs one more", 14, 2, ADD, 1, RECORD_ECORRUPT},
		{"nhdrs one less", 14, 2, ADD, -1, RECORD_ECORRUPT},
		{"ntags one less", 12, 2, ADD, -1, RECORD_ECORRUPT},
		{"nvary one more", 10, 2, ADD, 1, RECORD_ECORRUPT},
		{"body over limit", 20, 4, SET, (int64_t)RECORD_MAX_BODY + 1, RECORD_ELIMIT},
		{"body one more", 20, 4, ADD, 1, RECORD_ECORRUPT},
		{"body one less", 20, 4, ADD, -1, RECORD_ECORRUPT},
		{"body larger than record", 20, 4, SET, 1 << 20, RECORD_ECORRUPT},
		{"negative initial_age", 40, 8, SET, -1, RECORD_ECORRUPT},
		{"negative lifetime", 48, 8, SET, INT64_MIN, RECORD_ECORRUPT},
		{"negative swr", 56, 8, SET, -5, RECORD_ECORRUPT},
		{"negative sie", 64, 8, SET, -1, RECORD_ECORRUPT},
		{"last_modified -2", 72, 8, SET, -2, RECORD_ECORRUPT},
		{"etag over limit", 80, 4, SET, RECORD_MAX_STR + 1, RECORD_ELIMIT},
		{"etag past the end", 80, 4, SET, 60000, RECORD_ECORRUPT},
		{"etag one more", 80, 4, ADD, 1, ANY_STRUCT},
		{"etag one less", 80, 4, ADD, -1, ANY_STRUCT},
		/* timestamps carry no rule: any value is data */
		{"request_time min", 24, 8, SET, INT64_MIN, RECORD_OK},
		{"response_time -1", 32, 8, SET, -1, RECORD_OK},
		{"last_modified -1", 72, 8, SET, -1, RECORD_OK},
	};
	build_typical();
	size_t len;
	uint8_t *good = encode_fix(&len);
	uint8_t *buf = malloc(len);
	assert_non_null(buf);
	for (size_t i = 0; i < N(cases); i++) {
		const struct patch_case *c = &cases[i];
		memcpy(buf, good, len);
		uint64_t v = (uint64_t)c->val;
		if (c->mode == ADD)
			v += rd_le(buf + c->off, c->width);
		wr_le(buf + c->off, c->width, v);
		reseal(buf, len);
		struct record_view view;
		memset(&view, 0x5a, sizeof(view));
		int rc = record_decode(buf, len, &view);
		bool ok = c->want == ANY_STRUCT ? rc == RECORD_ECORRUPT || rc == RECORD_ELIMIT
		                                : rc == c->want;
		if (!ok)
			fail_msg("%s: got %s, want %s", c->name, record_strerror(rc),
			         c->want == ANY_STRUCT ? "a structural error"
			                               : record_strerror(c->want));
		if (rc != RECORD_OK) {
			/* the view is untouched on error */
			const uint8_t *p = (const uint8_t *)&view;
			for (size_t j = 0; j < sizeof(view); j++)
				assert_int_equal(p[j], 0x5a);
		}
	}

	/* total below the minimum is corrupt even before the checksum */
	memcpy(buf, good, len);
	wr_le(buf + 16, 4, RECORD_MIN_SIZE - 1);
	struct record_view view;
	assert_int_equal(record_decode(buf, len, &view), RECORD_ECORRUPT);

	/* An empty header name is refused even with a valid checksum. The
	 * header (name "abcd", value "") is rewritten as (name "", value
	 * "abcd"), which keeps every length consistent. */
	fix_reset();
	add_hdr(S("abcd"), S(""));
	free(good);
	good = encode_fix(&len);
	/* after the empty etag: [4]"abcd"[0] becomes [0][4]"abcd" */
	size_t h = RECORD_HEADER_SIZE + 4;
	assert_int_equal(rd_le(good + h, 4), 4);
	wr_le(good + h, 4, 0);
	wr_le(good + h + 4, 4, 4);
	memcpy(good + h + 8, "abcd", 4);
	reseal(good, len);
	assert_int_equal(record_decode(good, len, &view), RECORD_ECORRUPT);
	free(good);
	free(buf);
}

/* ---- encoder: limits and invalid fields ----------------------------------- */

static char dummy;

static void over_hdrs(void)
{
	build_typical();
	for (uint32_t i = 0; i <= RECORD_MAX_HDRS; i++)
		fx.hdrs[i] = (struct record_hdr){S("X"), S("y")};
	fx.in.nhdrs = RECORD_MAX_HDRS + 1;
}
static void over_tags(void)
{
	build_typical();
	for (uint32_t i = 0; i <= RECORD_MAX_TAGS; i++)
		fx.tags[i] = S("t");
	fx.in.ntags = RECORD_MAX_TAGS + 1;
}
static void over_vary(void)
{
	build_typical();
	for (uint32_t i = 0; i <= RECORD_MAX_VARY; i++)
		fx.vn[i] = fx.vv[i] = S("v");
	fx.in.nvary = RECORD_MAX_VARY + 1;
}
static void over_etag(void)
{
	build_typical();
	fx.in.etag = gen(RECORD_MAX_STR + 1, 0);
}
static void over_hdr_value(void)
{
	build_typical();
	fx.hdrs[2].value = gen(RECORD_MAX_STR + 1, 0);
}
static void over_hdr_name(void)
{
	build_typical();
	fx.hdrs[0].name = gen(RECORD_MAX_STR + 1, 0);
}
static void over_tag(void)
{
	build_typical();
	fx.tags[1] = gen(RECORD_MAX_STR + 1, 0);
}
static void over_vary_value(void)
{
	build_typical();
	fx.vv[0] = gen(RECORD_MAX_STR + 1, 0);
}
/* the body limits never read the chunks, so a fake pointer is safe */
static void over_body_sum(void)
{
	build_typical();
	add_body(&dummy, RECORD_MAX_BODY);
}
static void over_body_chunk(void)
{
	build_typical();
	add_body(&dummy, SIZE_MAX);
}
static void bad_status_low(void)
{
	build_typical();
	fx.in.status = 99;
}
static void bad_status_high(void)
{
	build_typical();
	fx.in.status = 1000;
}
static void bad_flags(void)
{
	build_typical();
	fx.in.flags = RECORD_F_ALL + 1;
}
static void bad_age(void)
{
	build_typical();
	fx.in.initial_age = -1;
}
static void bad_lifetime(void)
{
	build_typical();
	fx.in.lifetime = -1;
}
static void bad_swr(void)
{
	build_typical();
	fx.in.swr = -1;
}
static void bad_sie(void)
{
	build_typical();
	fx.in.sie = INT64_MIN;
}
static void bad_last_modified(void)
{
	build_typical();
	fx.in.last_modified = -2;
}
static void empty_hdr_name(void)
{
	build_typical();
	fx.hdrs[3].name = S("");
}
static void empty_tag(void)
{
	build_typical();
	fx.tags[0] = S("");
}
static void empty_vary_name(void)
{
	build_typical();
	fx.vn[0] = S("");
}
static void null_string(void)
{
	build_typical();
	fx.hdrs[1].value = (struct record_str){NULL, 3};
}
static void null_chunk(void)
{
	build_typical();
	add_body(NULL, 1);
}
static void null_hdrs(void)
{
	build_typical();
	fx.in.hdrs = NULL;
}
static void null_tags(void)
{
	build_typical();
	fx.in.tags = NULL;
}
static void null_vary(void)
{
	build_typical();
	fx.in.vary_values = NULL;
}
static void null_body(void)
{
	build_typical();
	fx.in.body = NULL;
}

struct enc_case {
	const char *name;
	void (*build)(void);
	int want;
};

static void test_encode_rejects(void **state)
{
	(void)state;
	static const struct enc_case cases[] = {
		{"1001 headers", over_hdrs, RECORD_ELIMIT},
		{"257 tags", over_tags, RECORD_ELIMIT},
		{"65 vary", over_vary, RECORD_ELIMIT},
		{"etag 64 KiB + 1", over_etag, RECORD_ELIMIT},
		{"header value 64 KiB + 1", over_hdr_value, RECORD_ELIMIT},
		{"header name 64 KiB + 1", over_hdr_name, RECORD_ELIMIT},
		{"tag 64 KiB + 1", over_tag, RECORD_ELIMIT},
		{"vary value 64 KiB + 1", over_vary_value, RECORD_ELIMIT},
		{"body 1 GiB + 9", over_body_sum, RECORD_ELIMIT},
		{"chunk SIZE_MAX", over_body_chunk, RECORD_ELIMIT},
		{"status 99", bad_status_low, RECORD_EINVAL},
		{"status 1000", bad_status_high, RECORD_EINVAL},
		{"unknown flag", bad_flags, RECORD_EINVAL},
		{"negative age", bad_age, RECORD_EINVAL},
		{"negative lifetime", bad_lifetime, RECORD_EINVAL},
		{"negative swr", bad_swr, RECORD_EINVAL},
		{"negative sie", bad_sie, RECORD_EINVAL},
		{"last_modified -2", bad_last_modified, RECORD_EINVAL},
		{"empty header name", empty_hdr_name, RECORD_EINVAL},
		{"empty tag", empty_tag, RECORD_EINVAL},
		{"empty vary name", empty_vary_name, RECORD_EINVAL},
		{"NULL string", null_string, RECORD_EINVAL},
		{"NULL chunk", null_chunk, RECORD_EINVAL},
		{"NULL headers", null_hdrs, RECORD_EINVAL},
		{"NULL tags", null_tags, RECORD_EINVAL},
		{"NULL vary", null_vary, RECORD_EINVAL},
		{"NULL body", null_body, RECORD_EINVAL},
	};
	uint8_t buf[4096];
	for (size_t i = 0; i < N(cases); i++) {
		cases[i].build();
		assert_int_equal(record_size(&fx.in), 0);
		memset(buf, 0xa5, sizeof(buf));
		int rc = record_encode(&fx.in, buf, sizeof(buf));
		if (rc != cases[i].want)
			fail_msg("%s: got %s, want %s", cases[i].name, record_strerror(rc),
			         record_strerror(cases[i].want));
		for (size_t j = 0; j < sizeof(buf); j++)
			assert_int_equal(buf[j], 0xa5);
	}
	assert_int_equal(record_size(NULL), 0);
	assert_int_equal(record_encode(NULL, buf, sizeof(buf)), RECORD_EINVAL);
}

/* The limits themselves are allowed: a 1 GiB body is measured (not encoded;
 * measuring never reads the chunks). */
static void test_encode_at_limits(void **state)
{
	(void)state;
	build_minimal();
	size_t base = record_size(&fx.in);
	assert_int_equal(base, RECORD_MIN_SIZE);
	add_body(&dummy, RECORD_MAX_BODY - 1);
	add_body(&dummy, 1);
	assert_int_equal(record_size(&fx.in), base + RECORD_MAX_BODY);
	build_minimal();
	fx.in.etag = gen(RECORD_MAX_STR, 0);
	assert_int_equal(record_size(&fx.in), base + RECORD_MAX_STR);
}

/* ---- checksum and errors -------------------------------------------------- */

struct xxh_case {
	const char *data; /* NULL: `len` bytes of (i * 7 + 3) */
	size_t len;
	uint64_t want;
};

/* Values from the reference implementation (python-xxhash, xxh64, seed 0). */
static void test_checksum(void **state)
{
	(void)state;
	static const struct xxh_case cases[] = {
		{"", 0, 0xef46db3751d8e999ull},
		{"a", 1, 0xd24ec4f1a98c6e5bull},
		{"abc", 3, 0x44bc2cf5ad770999ull},
		{"Nobody inspects the spammish repetition", 39, 0xfbcea83c8a378bf1ull},
		{NULL, 4, 0x9bb64b7d66ee9fdaull},
		{NULL, 7, 0x9a7b149959ce60d8ull},
		{NULL, 8, 0xdab99d95c6f90092ull},
		{NULL, 12, 0xd52e407833af5133ull},
		{NULL, 31, 0xa2aa5f33cc4a6119ull},
		{NULL, 32, 0x23c3c17ef790fd97ull},
		{NULL, 33, 0x50a7cfc7ba588784ull},
		{NULL, 63, 0x5e3e54b431c7493cull},
		{NULL, 64, 0x0eb64b3ef6eeb01full},
		{NULL, 100, 0xa61f8d4c170fe531ull},
		{NULL, 1000, 0x5f235fa033f1a3fbull},
	};
	uint8_t pattern[1000];
	for (size_t i = 0; i < sizeof(pattern); i++)
		pattern[i] = (uint8_t)(i * 7 + 3);
	for (size_t i = 0; i < N(cases); i++) {
		const void *p = cases[i].data ? (const void *)cases[i].data : pattern;
		/* unaligned starts must give the same value */
		uint8_t shifted[1001];
		memcpy(shifted + 1, p, cases[i].len);
		uint64_t got = record_checksum(p, cases[i].len);
		if (got != cases[i].want || record_checksum(shifted + 1, cases[i].len) != got)
			fail_msg("xxh64 of %zu bytes: got %016llx, want %016llx", cases[i].len,
			         (unsigned long long)got, (unsigned long long)cases[i].want);
	}
}

static void test_strerror(void **state)
{
	(void)state;
	static const int codes[] = {RECORD_OK,      RECORD_ETRUNC,    RECORD_EMAGIC,
	                            RECORD_EVERSION, RECORD_ECHECKSUM, RECORD_ELIMIT,
	                            RECORD_ECORRUPT, RECORD_EINVAL,    RECORD_ENOSPC};
	const char *unknown = record_strerror(1);
	assert_non_null(unknown);
	for (size_t i = 0; i < N(codes); i++) {
		const char *s = record_strerror(codes[i]);
		assert_non_null(s);
		assert_true(s[0] != '\0');
		assert_ptr_not_equal(s, unknown);
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(s, record_strerror(codes[j]));
	}
	assert_ptr_equal(record_strerror(-9), unknown);
	assert_ptr_equal(record_strerror(INT32_MIN), unknown);
	assert_ptr_equal(record_strerror(INT32_MAX), unknown);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),      cmocka_unit_test(test_exact_size),
		cmocka_unit_test(test_truncation),      cmocka_unit_test(test_corruption),
		cmocka_unit_test(test_magic_and_version), cmocka_unit_test(test_decode_fields),
		cmocka_unit_test(test_encode_rejects),  cmocka_unit_test(test_encode_at_limits),
		cmocka_unit_test(test_checksum),        cmocka_unit_test(test_strerror),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
