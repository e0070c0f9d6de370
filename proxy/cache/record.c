/*
 * record.c - encoder, decoder and checksum of the cache record (layout and
 * versioning rules in record.h).
 *
 * Invariants:
 *  - The encoder and the decoder enforce the same rules, so every buffer that
 *    decodes is exactly what the encoder would write for the decoded fields.
 *    The fuzz target holds both sides to that.
 *  - record_decode() checks the whole structure before it returns RECORD_OK;
 *    the record_next_* iterators rely on that and do no bounds checks.
 *  - Integers are read and written a byte at a time, which is independent of
 *    host byte order and never dereferences an unaligned wider pointer.
 */
#include "cache/record.h"

#include <assert.h>
#include <string.h>

/* The largest record the limits allow must fit the u32 `total` field. */
static_assert((uint64_t)RECORD_HEADER_SIZE + 4 + RECORD_MAX_STR +
                              (uint64_t)RECORD_MAX_VARY * 2 * (4 + RECORD_MAX_STR) +
                              (uint64_t)RECORD_MAX_TAGS * (4 + RECORD_MAX_STR) +
                              (uint64_t)RECORD_MAX_HDRS * 2 * (4 + RECORD_MAX_STR) +
                              RECORD_MAX_BODY + RECORD_CHECKSUM_SIZE <=
                      UINT32_MAX,
              "record limits overflow the 32-bit total length");
static_assert(RECORD_MAX_HDRS <= UINT16_MAX && RECORD_MAX_TAGS <= UINT16_MAX &&
                      RECORD_MAX_VARY <= UINT16_MAX,
              "list counts are stored as u16");

/* Field offsets of the fixed header (record.h has the table). */
enum {
	OFF_MAGIC = 0,
	OFF_VERSION = 4,
	OFF_RESERVED = 5,
	OFF_FLAGS = 6,
	OFF_STATUS = 8,
	OFF_NVARY = 10,
	OFF_NTAGS = 12,
	OFF_NHDRS = 14,
	OFF_TOTAL = 16,
	OFF_BODY_LEN = 20,
	OFF_REQUEST_TIME = 24,
	OFF_RESPONSE_TIME = 32,
	OFF_INITIAL_AGE = 40,
	OFF_LIFETIME = 48,
	OFF_SWR = 56,
	OFF_SIE = 64,
	OFF_LAST_MODIFIED = 72,
};
static_assert(OFF_LAST_MODIFIED + 8 == RECORD_HEADER_SIZE, "header layout");

#define STATUS_MIN 100
#define STATUS_MAX 999

/* ---- little-endian integers ----------------------------------------------- */

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (unsigned)p[1] << 8);
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
	return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static uint8_t *wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	return p + 2;
}

static uint8_t *wr32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
	return p + 4;
}

static uint8_t *wr64(uint8_t *p, uint64_t v)
{
	wr32(p, (uint32_t)v);
	return wr32(p + 4, (uint32_t)(v >> 32));
}

/* ---- checksum: XXH64 ------------------------------------------------------ */

/* XXH64 as specified in xxHash's doc/xxhash_spec.md. Chosen over FNV-1a or a
 * table CRC because bodies can be large and every L1 or L2 read verifies the
 * whole record: XXH64 consumes 32 bytes per step in four independent lanes. */

#define XXH_P1 0x9E3779B185EBCA87ull
#define XXH_P2 0xC2B2AE3D27D4EB4Full
#define XXH_P3 0x165667B19E3779F9ull
#define XXH_P4 0x85EBCA77C2B2AE63ull
#define XXH_P5 0x27D4EB2F165667C5ull

static uint64_t rotl64(uint64_t x, unsigned r)
{
	return (x << r) | (x >> (64 - r));
}

static uint64_t xxh_round(uint64_t acc, uint64_t in)
{
	acc += in * XXH_P2;
	return rotl64(acc, 31) * XXH_P1;
}

static uint64_t xxh_merge(uint64_t acc, uint64_t v)
{
	acc ^= xxh_round(0, v);
	return acc * XXH_P1 + XXH_P4;
}

uint64_t record_checksum(const void *data, size_t len)
{
	const uint8_t *p = data;
	const uint8_t *end = p + len;
	uint64_t h;

	if (len >= 32) {
		uint64_t v1 = XXH_P1 + XXH_P2, v2 = XXH_P2, v3 = 0, v4 = 0 - XXH_P1;
		const uint8_t *last = end - 32;
		do {
			v1 = xxh_round(v1, rd64(p));
			v2 = xxh_round(v2, rd64(p + 8));
			v3 = xxh_round(v3, rd64(p + 16));
			v4 = xxh_round(v4, rd64(p + 24));
			p += 32;
		} while (p <= last);
		h = rotl64(v1, 1) + rotl64(v2, 7) + rotl64(v3, 12) + rotl64(v4, 18);
		h = xxh_merge(h, v1);
		h = xxh_merge(h, v2);
		h = xxh_merge(h, v3);
		h = xxh_merge(h, v4);
	} else {
		h = XXH_P5;
	}
	h += (uint64_t)len;
	for (; end - p >= 8; p += 8) {
		h ^= xxh_round(0, rd64(p));
		h = rotl64(h, 27) * XXH_P1 + XXH_P4;
	}
	if (end - p >= 4) {
		h ^= (uint64_t)rd32(p) * XXH_P1;
		h = rotl64(h, 23) * XXH_P2 + XXH_P3;
		p += 4;
	}
	for (; p < end; p++) {
		h ^= *p * XXH_P5;
		h = rotl64(h, 11) * XXH_P1;
	}
	h ^= h >> 33;
	h *= XXH_P2;
	h ^= h >> 29;
	h *= XXH_P3;
	h ^= h >> 32;
	return h;
}

/* ---- encoding ------------------------------------------------------------- */

/* Adds the encoded size of one string to *n. `named`: the string is a header,
 * Vary or tag name and must not be empty. */
static int str_measure(const struct record_str *s, bool named, size_t *n)
{
	if (s->p == NULL && s->len > 0)
		return RECORD_EINVAL;
	if (s->len > RECORD_MAX_STR)
		return RECORD_ELIMIT;
	if (named && s->len == 0)
		return RECORD_EINVAL;
	*n += 4 + (size_t)s->len;
	return RECORD_OK;
}

/* Validates `in` and computes its encoded size; the one place that knows the
 * encoder's rules. */
static int record_measure(const struct record_in *in, size_t *size)
{
	int rc;

	if (in == NULL)
		return RECORD_EINVAL;
	if (in->status < STATUS_MIN || in->status > STATUS_MAX || (in->flags & ~RECORD_F_ALL) ||
	    in->initial_age < 0 || in->lifetime < 0 || in->swr < 0 || in->sie < 0 ||
	    in->last_modified < -1)
		return RECORD_EINVAL;
	if (in->nvary > RECORD_MAX_VARY || in->ntags > RECORD_MAX_TAGS ||
	    in->nhdrs > RECORD_MAX_HDRS)
		return RECORD_ELIMIT;
	if ((in->nvary > 0 && (in->vary_names == NULL || in->vary_values == NULL)) ||
	    (in->ntags > 0 && in->tags == NULL) || (in->nhdrs > 0 && in->hdrs == NULL) ||
	    (in->nbody > 0 && in->body == NULL))
		return RECORD_EINVAL;

	size_t n = RECORD_HEADER_SIZE;
	if ((rc = str_measure(&in->etag, false, &n)) != RECORD_OK)
		return rc;
	for (uint32_t i = 0; i < in->nvary; i++) {
		if ((rc = str_measure(&in->vary_names[i], true, &n)) != RECORD_OK ||
		    (rc = str_measure(&in->vary_values[i], false, &n)) != RECORD_OK)
			return rc;
	}
	for (uint32_t i = 0; i < in->ntags; i++) {
		if ((rc = str_measure(&in->tags[i], true, &n)) != RECORD_OK)
			return rc;
	}
	for (uint32_t i = 0; i < in->nhdrs; i++) {
		if ((rc = str_measure(&in->hdrs[i].name, true, &n)) != RECORD_OK ||
		    (rc = str_measure(&in->hdrs[i].value, false, &n)) != RECORD_OK)
			return rc;
	}
	size_t body = 0;
	for (uint32_t i = 0; i < in->nbody; i++) {
		const struct iovec *c = &in->body[i];
		if (c->iov_base == NULL && c->iov_len > 0)
			return RECORD_EINVAL;
		/* written as a subtraction so that a huge chunk cannot wrap */
		if (c->iov_len > RECORD_MAX_BODY - body)
			return RECORD_ELIMIT;
		body += c->iov_len;
	}
	/* cannot overflow: the static_assert above bounds the sum */
	*size = n + body + RECORD_CHECKSUM_SIZE;
	return RECORD_OK;
}

size_t record_size(const struct record_in *in)
{
	size_t n;
	return record_measure(in, &n) == RECORD_OK ? n : 0;
}

static uint8_t *put_str(uint8_t *p, const struct record_str *s)
{
	p = wr32(p, s->len);
	if (s->len > 0)
		memcpy(p, s->p, s->len);
	return p + s->len;
}

int record_encode(const struct record_in *in, void *buf, size_t cap)
{
	size_t total;
	int rc = record_measure(in, &total);
	if (rc != RECORD_OK)
		return rc;
	if (buf == NULL || cap < total)
		return RECORD_ENOSPC;

	uint8_t *b = buf;
	memcpy(b + OFF_MAGIC, RECORD_MAGIC, 4);
	b[OFF_VERSION] = RECORD_VERSION;
	b[OFF_RESERVED] = 0;
	wr16(b + OFF_FLAGS, in->flags);
	wr16(b + OFF_STATUS, in->status);
	wr16(b + OFF_NVARY, (uint16_t)in->nvary);
	wr16(b + OFF_NTAGS, (uint16_t)in->ntags);
	wr16(b + OFF_NHDRS, (uint16_t)in->nhdrs);
	wr32(b + OFF_TOTAL, (uint32_t)total);
	wr64(b + OFF_REQUEST_TIME, (uint64_t)in->request_time);
	wr64(b + OFF_RESPONSE_TIME, (uint64_t)in->response_time);
	wr64(b + OFF_INITIAL_AGE, (uint64_t)in->initial_age);
	wr64(b + OFF_LIFETIME, (uint64_t)in->lifetime);
	wr64(b + OFF_SWR, (uint64_t)in->swr);
	wr64(b + OFF_SIE, (uint64_t)in->sie);
	wr64(b + OFF_LAST_MODIFIED, (uint64_t)in->last_modified);

	uint8_t *p = b + RECORD_HEADER_SIZE;
	p = put_str(p, &in->etag);
	for (uint32_t i = 0; i < in->nvary; i++) {
		p = put_str(p, &in->vary_names[i]);
		p = put_str(p, &in->vary_values[i]);
	}
	for (uint32_t i = 0; i < in->ntags; i++)
		p = put_str(p, &in->tags[i]);
	for (uint32_t i = 0; i < in->nhdrs; i++) {
		p = put_str(p, &in->hdrs[i].name);
		p = put_str(p, &in->hdrs[i].value);
	}
	wr32(b + OFF_BODY_LEN, (uint32_t)(total - RECORD_CHECKSUM_SIZE - (size_t)(p - b)));
	for (uint32_t i = 0; i < in->nbody; i++) {
		if (in->body[i].iov_len > 0)
			memcpy(p, in->body[i].iov_base, in->body[i].iov_len);
		p += in->body[i].iov_len;
	}
	assert((size_t)(p - b) + RECORD_CHECKSUM_SIZE == total);
	wr64(p, record_checksum(b, total - RECORD_CHECKSUM_SIZE));
	return RECORD_OK;
}

/* ---- decoding ------------------------------------------------------------- */

/* Takes one string from [*p, end). Same rules as str_measure(). */
static int take_str(const uint8_t **p, const uint8_t *end, bool named, struct record_str *out)
{
	if (end - *p < 4)
		return RECORD_ECORRUPT;
	uint32_t n = rd32(*p);
	if (n > RECORD_MAX_STR)
		return RECORD_ELIMIT;
	if ((size_t)(end - *p) - 4 < n || (named && n == 0))
		return RECORD_ECORRUPT;
	if (out != NULL) {
		out->p = (const char *)*p + 4;
		out->len = n;
	}
	*p += 4 + n;
	return RECORD_OK;
}

/* record_decode(), with the checksum compared only when <verify>. */
static int record_decode_as(const void *buf, size_t len, struct record_view *out, bool verify)
{
	const uint8_t *b = buf;
	int rc;

	/* Classify with as few bytes as possible: magic and version first, so
	 * that a record of another version is EVERSION whatever its length. */
	if (len == 0 || b == NULL)
		return RECORD_ETRUNC;
	if (memcmp(b, RECORD_MAGIC, len < 4 ? len : 4) != 0)
		return RECORD_EMAGIC;
	if (len <= OFF_VERSION)
		return RECORD_ETRUNC;
	if (b[OFF_VERSION] != RECORD_VERSION)
		return RECORD_EVERSION;
	if (len < RECORD_HEADER_SIZE)
		return RECORD_ETRUNC;
	uint32_t total = rd32(b + OFF_TOTAL);
	if (total < RECORD_MIN_SIZE)
		return RECORD_ECORRUPT;
	if (len < total)
		return RECORD_ETRUNC;
	if (len > total)
		return RECORD_ECORRUPT;
	/* Nothing past this point is trusted until the checksum matches; the
	 * fields are bounds-checked below whether it was compared or not. */
	if (verify && record_checksum(b, total - RECORD_CHECKSUM_SIZE) != rd64(b + total - RECORD_CHECKSUM_SIZE))
		return RECORD_ECHECKSUM;

	struct record_view v;
	v.version = b[OFF_VERSION];
	v.flags = rd16(b + OFF_FLAGS);
	v.status = rd16(b + OFF_STATUS);
	v.nvary = rd16(b + OFF_NVARY);
	v.ntags = rd16(b + OFF_NTAGS);
	v.nhdrs = rd16(b + OFF_NHDRS);
	uint32_t body_len = rd32(b + OFF_BODY_LEN);
	v.request_time = (int64_t)rd64(b + OFF_REQUEST_TIME);
	v.response_time = (int64_t)rd64(b + OFF_RESPONSE_TIME);
	v.initial_age = (int64_t)rd64(b + OFF_INITIAL_AGE);
	v.lifetime = (int64_t)rd64(b + OFF_LIFETIME);
	v.swr = (int64_t)rd64(b + OFF_SWR);
	v.sie = (int64_t)rd64(b + OFF_SIE);
	v.last_modified = (int64_t)rd64(b + OFF_LAST_MODIFIED);

	if (b[OFF_RESERVED] != 0 || (v.flags & ~RECORD_F_ALL) || v.status < STATUS_MIN ||
	    v.status > STATUS_MAX || v.initial_age < 0 || v.lifetime < 0 || v.swr < 0 ||
	    v.sie < 0 || v.last_modified < -1)
		return RECORD_ECORRUPT;
	if (v.nvary > RECORD_MAX_VARY || v.ntags > RECORD_MAX_TAGS || v.nhdrs > RECORD_MAX_HDRS ||
	    body_len > RECORD_MAX_BODY)
		return RECORD_ELIMIT;

	/* The strings fill [header end, body start) exactly. */
	const uint8_t *p = b + RECORD_HEADER_SIZE;
	const uint8_t *end = b + total - RECORD_CHECKSUM_SIZE;
	if ((size_t)(end - p) < body_len)
		return RECORD_ECORRUPT;
	end -= body_len;

	if ((rc = take_str(&p, end, false, &v.etag)) != RECORD_OK)
		return rc;
	v.vary_at = p;
	for (uint32_t i = 0; i < v.nvary; i++) {
		if ((rc = take_str(&p, end, true, NULL)) != RECORD_OK ||
		    (rc = take_str(&p, end, false, NULL)) != RECORD_OK)
			return rc;
	}
	v.tags_at = p;
	for (uint32_t i = 0; i < v.ntags; i++) {
		if ((rc = take_str(&p, end, true, NULL)) != RECORD_OK)
			return rc;
	}
	v.hdrs_at = p;
	for (uint32_t i = 0; i < v.nhdrs; i++) {
		if ((rc = take_str(&p, end, true, NULL)) != RECORD_OK ||
		    (rc = take_str(&p, end, false, NULL)) != RECORD_OK)
			return rc;
	}
	if (p != end)
		return RECORD_ECORRUPT;
	v.body = end;
	v.body_len = body_len;
	v.size = total;
	*out = v;
	return RECORD_OK;
}

/* ---- iteration ------------------------------------------------------------ */

/* Reads the string at base+*off, which record_decode() has bounds-checked. */
static struct record_str next_str(const uint8_t *base, size_t *off)
{
	struct record_str s;
	s.len = rd32(base + *off);
	s.p = (const char *)base + *off + 4;
	*off += 4 + (size_t)s.len;
	return s;
}

int record_decode(const void *buf, size_t len, struct record_view *out)
{
	return record_decode_as(buf, len, out, true);
}

int record_decode_checked(const void *buf, size_t len, struct record_view *out)
{
	return record_decode_as(buf, len, out, false);
}

bool record_next_vary(const struct record_view *v, struct record_cursor *c, struct record_str *name,
                      struct record_str *value)
{
	if (c->i >= v->nvary)
		return false;
	*name = next_str(v->vary_at, &c->off);
	*value = next_str(v->vary_at, &c->off);
	c->i++;
	return true;
}

bool record_next_tag(const struct record_view *v, struct record_cursor *c, struct record_str *tag)
{
	if (c->i >= v->ntags)
		return false;
	*tag = next_str(v->tags_at, &c->off);
	c->i++;
	return true;
}

unsigned record_tag_list(const struct record_view *v, const char **p, size_t *len, unsigned max)
{
	struct record_cursor c = {0};
	struct record_str t;
	unsigned n = 0;
	while (n < max && record_next_tag(v, &c, &t)) {
		p[n] = t.p;
		len[n] = t.len;
		n++;
	}
	return n;
}

bool record_next_hdr(const struct record_view *v, struct record_cursor *c, struct record_hdr *h)
{
	if (c->i >= v->nhdrs)
		return false;
	h->name = next_str(v->hdrs_at, &c->off);
	h->value = next_str(v->hdrs_at, &c->off);
	c->i++;
	return true;
}

/* ---- errors --------------------------------------------------------------- */

static const char *const record_errors[] = {
	[-RECORD_OK] = "ok",
	[-RECORD_ETRUNC] = "record truncated",
	[-RECORD_EMAGIC] = "not a levee cache record",
	[-RECORD_EVERSION] = "unknown record version",
	[-RECORD_ECHECKSUM] = "record checksum mismatch",
	[-RECORD_ELIMIT] = "record exceeds a size limit",
	[-RECORD_ECORRUPT] = "record structure corrupt",
	[-RECORD_EINVAL] = "invalid record field",
	[-RECORD_ENOSPC] = "record buffer too small",
};

const char *record_strerror(int code)
{
	if (code > 0 || code <= -(int)(sizeof(record_errors) / sizeof(record_errors[0])))
		return "unknown record error";
	return record_errors[-code];
}
