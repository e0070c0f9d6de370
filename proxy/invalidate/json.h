/*
 * json.h - a small, strict RFC 8259 pull reader over a byte buffer.
 *
 * The caller walks the document in order and asks for each value as the type
 * it expects; nothing is built in memory and nothing allocates. It serves two
 * readers in levee: invalidation messages that other programs write
 * (message.c), and librdkafka's statistics JSON.
 *
 * Strictness. Accepted is exactly the RFC 8259 grammar, UTF-8 encoded: no
 * comments, no trailing commas, no single quotes, no leading zeros, no NaN or
 * Infinity, no unescaped control characters (U+0000..U+001F) in strings, no
 * invalid UTF-8 (overlong forms, surrogates, code points past U+10FFFF) and no
 * lone surrogate escapes; no byte-order mark; whitespace is only space, tab,
 * CR and LF. Containers may nest at most `max_depth` deep (the outermost
 * container is depth 1).
 *
 * Walking. A reader is always in one of three places: a value is expected
 * (at the start, after a member name, after json_array_next() returned true);
 * just inside a container; or after a value. Read each expected value exactly
 * once, with json_read_*(), json_skip(), or by iterating it:
 *
 *     struct json_str name;
 *     while (json_object_next(r, &name)) {        // enters the object
 *             if (json_str_eq(&name, "state"))
 *                     rc = json_read_string(r, buf, sizeof(buf), &len, NULL);
 *             else
 *                     rc = json_skip(r);
 *     }
 *     if (json_finish(r) != JSON_OK) ...           // whole document read?
 *
 * Errors. A malformed document, or a call that does not fit the position
 * (reading a string where an object is, iterating an object as an array), is
 * JSON_ERR: the reader stops for good, every later call fails, and
 * json_error() gives the byte offset and a static reason. A well-formed value
 * the call cannot return as asked (an integer out of range, a string longer
 * than the buffer) is JSON_ERANGE: that value is consumed and the reader goes
 * on. Iterators return false both at the end of a container and on error, so
 * check json_error() or json_finish() after a loop.
 */
#ifndef LEVEE_INVALIDATE_JSON_H
#define LEVEE_INVALIDATE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef LV_WARN_UNUSED
#define LV_WARN_UNUSED __attribute__((warn_unused_result))
#endif

#define JSON_DEPTH_DEFAULT 32
#define JSON_DEPTH_MAX 64 /* the nesting stack is one 64-bit word */

enum json_status {
	JSON_OK = 0,      /* == LV_OK */
	JSON_ERR = -1,    /* == LV_ERR: malformed input or misuse; the reader has stopped */
	JSON_ERANGE = -2, /* a valid value that does not fit the call; consumed, go on */
};

enum json_kind {
	JSON_OBJECT,
	JSON_ARRAY,
	JSON_STRING,
	JSON_NUMBER,
	JSON_TRUE,
	JSON_FALSE,
	JSON_NULL,
	JSON_END,   /* no value is expected here: iterate the container, or the document is done */
	JSON_ERROR, /* the reader has stopped; see json_error() */
};

/* A string exactly as it appears between its quotes: validated, not decoded.
 * Points into the reader's text. */
struct json_str {
	const char *p;
	size_t len;
	bool escaped; /* holds at least one backslash escape */
};

/* On the caller's stack; initialise with json_init(). The fields are private. */
struct json_reader {
	const char *text;
	size_t len, pos;
	unsigned depth, max_depth;
	uint64_t arrays;     /* bit d-1 set: the container at depth d is an array */
	unsigned char state; /* where the reader is (json.c) */
	const char *err;     /* NULL until an error */
	size_t err_pos;
};

/* The reason json_error() gives when the document nests deeper than the
 * reader's max_depth, for callers that classify that case apart. Compare the
 * pointer. */
extern const char json_err_depth[];

/* Reads `len` bytes at `text`, which must stay unchanged while the reader and
 * any json_str taken from it are used. `max_depth` 0 means JSON_DEPTH_DEFAULT;
 * values above JSON_DEPTH_MAX are lowered to it. */
void json_init(struct json_reader *r, const char *text, size_t len, unsigned max_depth);

/* The kind of the value expected next, without consuming it. JSON_END when no
 * value is expected at this point, JSON_ERROR when the reader has stopped or
 * the next bytes cannot start a value. */
enum json_kind json_peek(struct json_reader *r);

/* Iterates the members of an object. Where a value is expected, the first call
 * enters it (JSON_ERR if that value is not an object); each call then yields
 * one member's name and leaves the reader expecting its value, which the
 * caller must read or skip before the next call. Returns false once the object
 * has closed, or on error. */
bool json_object_next(struct json_reader *r, struct json_str *name);

/* Like json_object_next() for an array: true when an element follows (the
 * reader expects it), false once the array has closed, or on error. */
bool json_array_next(struct json_reader *r);

/* Advances to the next member named `name` in the current object, skipping
 * the members before it, and leaves the reader expecting its value. Returns
 * false, with the object closed, when no later member has that name. The
 * first call enters the object, as json_object_next() does. */
bool json_object_find(struct json_reader *r, const char *name);

/* Reads a string value, decoded to UTF-8, into `out` followed by a NUL; the
 * decoded length (without the NUL) goes to *len. JSON_ERANGE when it needs
 * more than `cap` bytes with the NUL, or when it contains U+0000 and `nul` is
 * NULL; with `nul` given, *nul says whether it contains U+0000. A decoded
 * string is never longer than its JSON form, so `cap` = input length + 1 is
 * always enough. */
int json_read_string(struct json_reader *r, char *out, size_t cap, size_t *len,
                     bool *nul) LV_WARN_UNUSED;

/* Reads an integer. Any other number (a fraction, an exponent, a value
 * outside int64) is JSON_ERANGE; a value that is not a number is JSON_ERR. */
int json_read_int64(struct json_reader *r, int64_t *out) LV_WARN_UNUSED;

/* Reads true or false; anything else is JSON_ERR. */
int json_read_bool(struct json_reader *r, bool *out) LV_WARN_UNUSED;

/* Consumes the expected value, whatever its kind, validating all of it. */
int json_skip(struct json_reader *r) LV_WARN_UNUSED;

/* JSON_OK when the one top-level value has been read and only whitespace
 * follows it. */
int json_finish(struct json_reader *r) LV_WARN_UNUSED;

/* NULL while the reader is fine; otherwise a static reason, with the byte
 * offset where it was found in *offset (when not NULL). */
const char *json_error(const struct json_reader *r, size_t *offset);

/* Whether the decoded value of `s` equals the NUL-terminated `lit`. Without
 * escapes this is a length check and a memcmp. */
bool json_str_eq(const struct json_str *s, const char *lit);

/* Decodes `s` (from json_object_next()) like json_read_string(): NUL
 * terminated, JSON_ERANGE when `cap` is too small. */
int json_str_decode(const struct json_str *s, char *out, size_t cap, size_t *len) LV_WARN_UNUSED;

/* The length of the well-formed UTF-8 sequence at the start of [p, p+avail):
 * 1..4, or 0 when it is not one (overlong, surrogate, past U+10FFFF,
 * truncated, a stray continuation byte). */
size_t json_utf8_len(const char *p, size_t avail);

#endif
