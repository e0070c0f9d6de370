/*
 * accesslog.h - one access log line: the values a request ended with, the
 * fields the policy chose, and the line they make, JSON or text.
 *
 * Invariants of a line written by alog_format():
 *   - it is at most ALOG_LINE_MAX bytes and ends with its only '\n';
 *   - it holds no control byte, and no byte above 0x7e: every value from a
 *     client is escaped, so a line can never be split, and a value can never
 *     close its quotes and forge a field (docs/access-log.md);
 *   - a value cut to its field's bound (alog_field_max) is marked as cut,
 *     outside the value where no client text can reach: the JSON line gets
 *     a "truncated" array naming the fields, the text value is followed by
 *     `...` after its closing quote.
 * Nothing here allocates: the caller gives the buffer (a worker's, log.h).
 */
#ifndef LEVEE_ACCESSLOG_H
#define LEVEE_ACCESSLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy.h"

#define ALOG_LINE_MAX 8192 /* bytes of a line, its '\n' included */

/* One field's value. A string is borrowed, not copied: it lives as long as
 * the request being logged. */
enum alog_kind {
	ALOG_ABSENT, /* "-" in text, null in JSON */
	ALOG_STR,    /* s[0..n), escaped */
	ALOG_UINT,   /* u */
	ALOG_USEC,   /* u microseconds, written as milliseconds with 3 decimals */
	ALOG_TIME,   /* u microseconds since the epoch, written RFC 3339 UTC with ms */
};

struct alog_value {
	enum alog_kind kind;
	const char *s;
	size_t n;
	uint64_t u;
};

/* Every field a request can tell, chosen or not; ALOG_ABSENT (zero) for
 * what it does not have. */
struct alog_entry {
	struct alog_value v[LV_AF__COUNT];
};

static inline void alog_set_str(struct alog_entry *e, enum lv_alog_field f, const char *s, size_t n)
{
	e->v[f] = (struct alog_value){.kind = ALOG_STR, .s = s, .n = n};
}
void alog_set_cstr(struct alog_entry *e, enum lv_alog_field f, const char *s); /* NULL: absent */
static inline void alog_set_num(struct alog_entry *e, enum lv_alog_field f, enum alog_kind kind, uint64_t u)
{
	e->v[f] = (struct alog_value){.kind = kind, .u = u};
}

/* The most bytes a field's value may take in a line once escaped; past it,
 * the value is cut (and marked). */
size_t alog_field_max(enum lv_alog_field f);

/* Escapes s[0..n) into dst, at most `cap` bytes, never cutting an escape in
 * two: JSON string content (`"` and `\` backslashed, any other byte below
 * 0x20 or above 0x7e as \u00XX) or, for text, `"` and `\` backslashed and
 * any other byte below 0x20 or above 0x7e as \xXX, plus the blank when the
 * value is written without quotes. Returns the bytes written; *cut says
 * whether all of s did not fit. */
size_t alog_escape(char *dst, size_t cap, const char *s, size_t n, enum lv_alog_format fmt, bool quoted,
                   bool *cut);

/* Writes the line for `e` with fields `fields` into dst (ALOG_LINE_MAX bytes
 * at least); returns its length, '\n' included. */
size_t alog_format(char *dst, const struct lv_alog_fields *fields, enum lv_alog_format fmt,
                   const struct alog_entry *e);

/* The Cache-Status parameters of an answer ("hit; detail=l2",
 * "fwd=miss; stored") as the access log's cache outcome: hit, stale, miss,
 * revalidated, bypass, uri-miss... (docs/access-log.md), and the layer that
 * answered: "l1", "l2", or NULL when the cache did not answer. */
const char *alog_cache_outcome(const char *params, const char **layer);

#endif
