/*
 * record.h - the versioned binary cache record.
 *
 * A cached response is stored as one contiguous byte string, in the
 * in-process cache (L1) and in Redis (L2). Levee versions run side by side
 * during a rollout and share L2, so the byte layout below is a persistent
 * contract: change it only by adding a new version.
 *
 * Layout of version 1. Integers are little-endian and unaligned; "str" is a
 * u32 byte length followed by that many bytes (no terminator).
 *
 *   offset  size  field
 *        0     4  magic "LVRC" (4c 56 52 43); never changes
 *        4     1  version = 1; never moves
 *        5     1  reserved, 0
 *        6     2  flags (RECORD_F_*); bits not defined by the version are 0
 *        8     2  HTTP status, 100..999
 *       10     2  nvary: number of Vary entries, <= RECORD_MAX_VARY
 *       12     2  ntags: number of tags, <= RECORD_MAX_TAGS
 *       14     2  nhdrs: number of stored header fields, <= RECORD_MAX_HDRS
 *       16     4  total: size of the whole record, checksum included
 *       20     4  body_len, <= RECORD_MAX_BODY
 *       24     8  request_time: i64 unix milliseconds, when the request went upstream
 *       32     8  response_time: i64 unix milliseconds, when the response arrived
 *                 (= stored_at)
 *       40     8  initial_age: i64 seconds, >= 0 (RFC 9111 4.2.3 corrected_initial_age)
 *       48     8  lifetime: i64 seconds, >= 0 (freshness lifetime)
 *       56     8  stale_while_revalidate: i64 seconds, >= 0
 *       64     8  stale_if_error: i64 seconds, >= 0
 *       72     8  last_modified: i64 unix seconds, -1 when absent
 *       80        etag: str (empty when absent)
 *                 nvary x (name: str, value: str)   request header names the
 *                     response varies on, with the request's values for them
 *                 ntags x (tag: str)                surrogate keys
 *                 nhdrs x (name: str, value: str)   response fields to replay,
 *                     in order, duplicates allowed
 *                 body: body_len bytes
 *  total-8     8  checksum: XXH64 (seed 0) of bytes [0, total-8)
 *
 * Every str is at most RECORD_MAX_STR bytes; header, Vary and tag names are
 * non-empty. The parts must add up to `total` exactly, and `total` must equal
 * the length of the stored value: nothing may trail the checksum.
 *
 * Time units: absolute instants are milliseconds, so that the request and
 * response times keep the upstream's delay precisely; durations are seconds,
 * the unit of every HTTP caching directive.
 *
 * Versioning rules:
 *  - Bytes 0..4 (magic and version) keep their meaning in every version, so
 *    any reader can classify any record.
 *  - A new field, a new flag bit or a new meaning for an old one needs a new
 *    version number. An unknown flag bit is therefore corruption, never
 *    "ignore": a flag may forbid serving without revalidation.
 *  - A decoder accepts only the versions it knows and returns RECORD_EVERSION
 *    for others. The caller treats that as a miss, refetches, and overwrites
 *    the entry in its own version. During a rollout the two versions may
 *    overwrite each other; that costs hit rate, never correctness.
 *
 * Decoding is zero-copy: a record_view points into the caller's buffer, which
 * must stay alive and unchanged while the view is used. Nothing here
 * allocates.
 */
#ifndef LEVEE_CACHE_RECORD_H
#define LEVEE_CACHE_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#ifndef LV_WARN_UNUSED
#define LV_WARN_UNUSED __attribute__((warn_unused_result))
#endif

#define RECORD_MAGIC "LVRC"
#define RECORD_VERSION 1
#define RECORD_HEADER_SIZE 80u
#define RECORD_CHECKSUM_SIZE 8u
/* fixed header, an empty etag and the checksum */
#define RECORD_MIN_SIZE (RECORD_HEADER_SIZE + 4u + RECORD_CHECKSUM_SIZE)

/* Hard limits, checked by the encoder and the decoder alike. */
#define RECORD_MAX_HDRS 1000u
#define RECORD_MAX_TAGS 256u
#define RECORD_MAX_VARY 64u
#define RECORD_MAX_STR (64u * 1024u)
#define RECORD_MAX_BODY (1u << 30)

enum record_flag {
	RECORD_F_NEGATIVE = 1u << 0,        /* a cached error (e.g. 404) */
	RECORD_F_HEURISTIC = 1u << 1,       /* lifetime is heuristic (RFC 9111 4.2.2) */
	RECORD_F_MUST_REVALIDATE = 1u << 2, /* must-revalidate or proxy-revalidate */
	RECORD_F_NO_CACHE = 1u << 3,        /* no-cache: revalidate before every use */
};
#define RECORD_F_ALL 0x000fu /* the flags version 1 defines */

/* Results. RECORD_OK is 0 so that `if (rc != 0)` works as for LV_OK; every
 * decode error means "treat as a miss". Compare codes, never the text. */
enum record_status {
	RECORD_OK = 0,
	RECORD_ETRUNC = -1,    /* shorter than its header says */
	RECORD_EMAGIC = -2,    /* not a levee record */
	RECORD_EVERSION = -3,  /* a version this build does not know */
	RECORD_ECHECKSUM = -4, /* checksum mismatch */
	RECORD_ELIMIT = -5,    /* a count or size over the hard limits */
	RECORD_ECORRUPT = -6,  /* inconsistent structure or field value */
	RECORD_EINVAL = -7,    /* encode: a field out of range or a NULL pointer */
	RECORD_ENOSPC = -8,    /* encode: the buffer is smaller than record_size() */
};

/* A byte string; not NUL-terminated. `p` may be NULL only when `len` is 0. */
struct record_str {
	const char *p;
	uint32_t len;
};

struct record_hdr {
	struct record_str name, value;
};

/* What the encoder takes. All pointers are borrowed for the call only. */
struct record_in {
	uint16_t status;
	uint16_t flags;
	int64_t request_time, response_time;     /* unix ms */
	int64_t initial_age, lifetime, swr, sie; /* seconds, >= 0 */
	int64_t last_modified;                   /* unix s, or -1 */
	struct record_str etag;
	const struct record_str *vary_names, *vary_values; /* nvary each */
	uint32_t nvary;
	const struct record_str *tags;
	uint32_t ntags;
	const struct record_hdr *hdrs;
	uint32_t nhdrs;
	/* the body as chunks, so that a body accumulated in pieces (an evbuffer
	 * peeked into iovecs) is copied once, straight into the record */
	const struct iovec *body;
	uint32_t nbody;
};

/* A decoded record. Every pointer points into the decoded buffer. The lists
 * are walked with the record_next_* functions. */
struct record_view {
	uint8_t version;
	uint16_t status;
	uint16_t flags;
	int64_t request_time, response_time;
	int64_t initial_age, lifetime, swr, sie;
	int64_t last_modified;
	struct record_str etag;
	uint32_t nvary, ntags, nhdrs;
	const void *body;
	size_t body_len;
	size_t size; /* the whole record, in bytes */
	/* private: where each list starts */
	const uint8_t *vary_at, *tags_at, *hdrs_at;
};

/* Position in one of a view's lists. Zero it to start; use one cursor per
 * list. */
struct record_cursor {
	uint32_t i;
	size_t off;
};

/* The exact encoded size of `in`, or 0 when `in` is invalid or over a limit
 * (record_encode() then says which). */
size_t record_size(const struct record_in *in);

/* Writes exactly record_size(in) bytes to `buf`. Returns RECORD_OK,
 * RECORD_ELIMIT, RECORD_EINVAL or RECORD_ENOSPC; on error nothing is
 * written. */
int record_encode(const struct record_in *in, void *buf, size_t cap) LV_WARN_UNUSED;

/* Checks `len` bytes at `buf` (magic, version, length, checksum, then every
 * field and limit) and fills `*out` on success. Never reads outside
 * [buf, buf+len), never allocates. On error `*out` is left untouched. */
int record_decode(const void *buf, size_t len, struct record_view *out) LV_WARN_UNUSED;
/* The same, for a record this process has already checked, so without the
 * checksum: every L1 entry (encoded here, or decoded from Redis before it
 * was put). The checksum is a pass over the whole body, most of a hit's
 * CPU for a large entry (a range of it, too); the fields are still
 * bounds-checked, so a corrupt record is refused, never misread past its
 * end. */
int record_decode_checked(const void *buf, size_t len, struct record_view *out) LV_WARN_UNUSED;

/* Iterate a decoded view's lists. Each returns false once the list is done.
 * Only valid on a view that record_decode() filled. */
bool record_next_vary(const struct record_view *v, struct record_cursor *c, struct record_str *name,
                      struct record_str *value);
bool record_next_tag(const struct record_view *v, struct record_cursor *c, struct record_str *tag);
/* The first <max> tags of <v> as pointers into the record and lengths (the
 * shape purge checks take); returns how many. */
unsigned record_tag_list(const struct record_view *v, const char **p, size_t *len, unsigned max);
bool record_next_hdr(const struct record_view *v, struct record_cursor *c, struct record_hdr *h);

/* The record checksum: XXH64 with seed 0, as specified by the xxHash project,
 * so that tools in other languages can verify records with a stock library. */
uint64_t record_checksum(const void *p, size_t len);

/* A static description of a RECORD_* code; never NULL. */
const char *record_strerror(int code);

#endif
