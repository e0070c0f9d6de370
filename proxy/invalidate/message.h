/*
 * message.h - the invalidation message, version 1: what travels on the Kafka
 * invalidation topic.
 *
 * Other programs write these messages (services, CDC pipelines, operators
 * with kcat), so the format is a public contract, specified for them in
 * docs/invalidation-message.md. In short: one JSON object,
 *
 *     {"v":1,"id":"...","service":"demo","origin":"pod-a","ts":1764200000123,
 *      "keys":["/api/users/42?x=1"],"prefixes":["/api/users/"],
 *      "tags":["user-42"],"all":false}
 *
 * with "v", "id" and "service" required, members in any order, unknown
 * members ignored, a duplicate known member an error, and null accepted for
 * no known member. The limits below are part of the contract.
 *
 * Decoding never allocates, never reads outside the input, and classifies
 * every rejected message as one msg_status so that consumers can count them.
 * When a message has several problems the status reported is the first in
 * this order: TOO_BIG (checked before parsing); SYNTAX, or LIMIT for nesting
 * deeper than MSG_MAX_DEPTH (either stops the reading); VERSION; FIELD;
 * LIMIT for too many items; EMPTY. A version error therefore wins over any
 * field error: a version-2 message may have fields version 1 does not
 * understand.
 */
#ifndef LEVEE_INVALIDATE_MESSAGE_H
#define LEVEE_INVALIDATE_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef LV_WARN_UNUSED
#define LV_WARN_UNUSED __attribute__((warn_unused_result))
#endif

#define MSG_VERSION 1
#define MSG_MAX_BYTES 65536u /* the whole message, whitespace included */
#define MSG_MAX_ITEMS 256u   /* keys, prefixes and tags together */
#define MSG_MAX_DEPTH 16u    /* JSON nesting; the message object is depth 1 */
#define MSG_ID_MAX 128u      /* bytes; "id" is 1..128 bytes of 0x21..0x7e */
#define MSG_SERVICE_MAX 128u /* bytes; "service" is 1..128 */
#define MSG_ORIGIN_MAX 128u  /* bytes; "origin" is 0..128 */
#define MSG_TARGET_MAX 4096u /* bytes; each key and prefix is 1..4096, starting with '/' */
#define MSG_TAG_MAX 256u     /* bytes; each tag is 1..256 */

/* Decode results. MSG_OK is 0; the others are small positive numbers so that
 * a consumer can index a counter array with them (MSG_E_COUNT entries). */
enum msg_status {
	MSG_OK = 0,
	MSG_E_TOO_BIG, /* over MSG_MAX_BYTES, or larger than the scratch buffer */
	MSG_E_SYNTAX,  /* not well-formed JSON, or not a JSON object */
	MSG_E_VERSION, /* "v" is an integer other than 1 */
	MSG_E_FIELD, /* a known member missing, duplicated, of the wrong type or out of its rules */
	MSG_E_LIMIT, /* more than MSG_MAX_ITEMS items, or nested deeper than MSG_MAX_DEPTH */
	MSG_E_EMPTY, /* no item, and "all" is not true */
	MSG_E_COUNT
};

/* A byte string. Strings a decode returns are also NUL-terminated (none may
 * contain U+0000). An absent "origin" has p == NULL. */
struct msg_str {
	const char *p;
	size_t len;
};

enum msg_item_kind {
	MSG_KEY,    /* "keys": one request target, on every host and in every variant */
	MSG_PREFIX, /* "prefixes": every target whose path starts with it */
	MSG_TAG,    /* "tags": every entry carrying that tag */
};

struct msg_item {
	enum msg_item_kind kind;
	struct msg_str s;
};

struct inval_msg {
	int64_t version; /* MSG_VERSION after a decode; on MSG_E_VERSION, the one found */
	struct msg_str id;
	struct msg_str service;
	struct msg_str origin; /* p == NULL when absent */
	int64_t ts;            /* unix milliseconds, -1 when absent */
	bool all;
	/* The items grouped by kind: every key, then every prefix, then every
	 * tag, each kind in message order. The encoder writes them in that
	 * order too; it accepts them in any order. */
	size_t nitems;
	struct msg_item items[MSG_MAX_ITEMS];
};

/* Where a decode failed, for logs. `detail` is a static string (for example
 * "\"id\" is missing"), never NULL after a decode; `offset` is the byte where
 * a syntax error was found, else 0. */
struct msg_error {
	const char *detail;
	size_t offset;
};

/* Decodes the `len` bytes at `in`. Decoded strings are written to `scratch`
 * (`cap` >= `len` is always enough; a smaller buffer is MSG_E_TOO_BIG) and
 * every string of *m points there; `in` may be released after the call.
 * Returns an msg_status; `err` (may be NULL) says why. On error *m holds
 * nothing useful, except `version` on MSG_E_VERSION. */
int msg_decode(const char *in, size_t len, char *scratch, size_t cap, struct inval_msg *m,
               struct msg_error *err) LV_WARN_UNUSED;

/* Writes `m` as compact JSON (members in the order shown above; "v":1, "id"
 * and "service" always; "origin" when its p is set; "ts" when >= 0; "all"
 * when true; each item array when not empty), not NUL-terminated. Returns the
 * length, or 0 when `cap` is too small or `m` breaks a rule a decoder would
 * reject it for (the encoder and the decoder share the rules, so whatever
 * encodes also decodes, to the same message). m->version is not read. */
size_t msg_encode(const struct inval_msg *m, char *out, size_t cap) LV_WARN_UNUSED;

/* A short stable token per status, usable as a metric label: "ok",
 * "too_big", "syntax", "version", "field", "limit", "empty"; "unknown" for
 * any other value. */
const char *msg_strerror(int code);

/* The JSON member name for an item kind: "keys", "prefixes", "tags". */
const char *msg_item_kind_name(enum msg_item_kind kind);

#endif
