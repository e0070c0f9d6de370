/*
 * sfv.h - RFC 8941 Structured Field Values: a strict parser for Dictionaries
 * and what a Dictionary holds (Items, Inner Lists, Parameters, and the bare
 * items Integer, Decimal, String, Token, Byte Sequence and Boolean).
 *
 * A leaf: it allocates nothing and knows nothing of HTTP heads or the cache.
 * Every value it hands out points into the caller's text, which must outlive
 * it. The HTTP side (joining a field's lines with ", ", trimming OWS around
 * the value) is the caller's.
 *
 * Invariants and decisions:
 *   - Strict (§4.2): one failure anywhere makes the whole field invalid, and
 *     the member callback runs only once the whole field has parsed (the
 *     text is read twice), so a caller never acts on half a field.
 *   - Duplicate keys (§4.2.2, §4.2.3.2): the last one wins. The callback sees
 *     every member in field order; a later call with a key replaces what an
 *     earlier call with that key gave. sfv_param_find() applies the same
 *     rule to parameters.
 *   - Sizes (§3): exactly what a parser must support is accepted, and
 *     nothing larger, so the work per field is bounded by these numbers and
 *     the field's length: SFV_*_MAX below. Members and parameters are
 *     counted as written, duplicates included. Larger is SFV_ELIMIT.
 *   - A Decimal is held as an integer count of thousandths (its three
 *     fraction digits are exact that way): 1.5 is 1500.
 *   - Byte Sequences: padding may be missing and pad bits may be non-zero
 *     (§4.2.7 says a parser should not fail on either); any other base64
 *     error fails.
 */
#ifndef LEVEE_HTTP_SFV_H
#define LEVEE_HTTP_SFV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SFV_DICT_MAX 1024   /* members of a Dictionary (§3.2) */
#define SFV_INNER_MAX 256   /* members of an Inner List (§3.1.1) */
#define SFV_PARAMS_MAX 256  /* parameters of one Item or Inner List (§3.1.2) */
#define SFV_KEY_MAX 64      /* characters of a key (§3.1.2, §3.2) */
#define SFV_STRING_MAX 1024 /* characters of a String, escapes resolved (§3.3.3) */
#define SFV_TOKEN_MAX 512   /* characters of a Token (§3.3.4) */
#define SFV_BYTES_MAX 16384 /* decoded bytes of a Byte Sequence (§3.3.5) */

enum sfv_status {
	SFV_EINVAL = -1, /* not a valid Dictionary */
	SFV_ELIMIT = -2, /* valid syntax, but past one of the SFV_*_MAX sizes */
};

enum sfv_type {
	SFV_INTEGER,
	SFV_DECIMAL,
	SFV_STRING,
	SFV_TOKEN,
	SFV_BYTES,
	SFV_BOOLEAN,
	SFV_INNER_LIST, /* only as a member's value, never a bare item */
};

struct sfv_bare {
	enum sfv_type type;
	int64_t num;   /* Integer; Decimal in thousandths; Boolean 0 or 1 */
	const char *s; /* String: the text between the quotes, escapes as sent;
	                * Token: the token; Byte Sequence: the base64 between the
	                * colons; Inner List: what is between the parentheses */
	size_t len;
};

struct sfv_item {
	struct sfv_bare v;
	const char *params; /* ";a=1;b" as sent, from the first ';'; len 0: none */
	size_t params_len;
};

/* One member: <key> (<key_len> bytes, lowercase) is bound to <it>. Both
 * point into the parsed text and live as long as it does. */
typedef void (*sfv_member_cb)(const char *key, size_t key_len, const struct sfv_item *it,
                              void *arg);

/* Parses the field value <s> (<len> bytes) as a Dictionary (§4.2.2). On
 * success calls <cb> (which may be NULL: a validity check) for each member
 * in order and returns the number of members as written, 0 for an empty
 * field; otherwise returns SFV_EINVAL or SFV_ELIMIT without calling it. */
int sfv_dict_parse(const char *s, size_t len, sfv_member_cb cb, void *arg)
        __attribute__((warn_unused_result));

/* The members of an Inner List <list>, in order: start with *pos = 0; each
 * call fills <out> and returns true, false after the last. Only for items
 * that sfv_dict_parse() handed out. */
bool sfv_inner_next(const struct sfv_item *list, size_t *pos, struct sfv_item *out);
/* The parameters of <it>, in order, duplicates included: start with
 * *pos = 0. A parameter without a value is Boolean true. */
bool sfv_param_next(const struct sfv_item *it, size_t *pos, const char **key, size_t *key_len,
                    struct sfv_bare *val);
/* The value of parameter <key> of <it>: the last one of that name. */
bool sfv_param_find(const struct sfv_item *it, const char *key, size_t key_len,
                    struct sfv_bare *val);

/* A String's characters, escapes resolved, into <out>; returns their count,
 * or -1 when <v> is not a String or they do not fit <cap>. */
ptrdiff_t sfv_string_copy(const struct sfv_bare *v, char *out, size_t cap);
/* A Byte Sequence decoded into <out>; returns the byte count, or -1 when <v>
 * is not a Byte Sequence or the bytes do not fit <cap>. */
ptrdiff_t sfv_bytes_decode(const struct sfv_bare *v, unsigned char *out, size_t cap);

#endif
