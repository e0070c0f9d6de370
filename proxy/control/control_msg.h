/*
 * control_msg.h - the messages of the control topic, version 1: commands
 * that force or clear a degradation tier on every replica of a service, the
 * tier-change events levee publishes, and the HMAC signature both carry.
 * docs/control-message.md is the contract for other programs.
 *
 *     {"v":1,"type":"force-tier","id":"ops-42","service":"demo","tier":"shed",
 *      "until":1764200600000,"reason":"db failover","issued_by":"alice"}
 *     {"v":1,"type":"clear-tier","id":"ops-43","service":"demo","clear":"ops-42"}
 *
 * Every message is signed: Kafka header `levee-signature` is
 * "hmac-sha256=" and the lowercase hex HMAC-SHA256 of the exact value bytes
 * under the shared key. The signature is checked before a byte of the value
 * is parsed.
 *
 * Pure: no librdkafka, no clock (the caller passes the time), no allocation.
 */
#ifndef LEVEE_CONTROL_MSG_H
#define LEVEE_CONTROL_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "resilience/tiers.h" /* struct tier_change, TIER_ID_MAX, TIER_REASON_MAX */

#define CTL_VERSION 1
#define CTL_MAX_BYTES 4096u                /* a whole command, checked before parsing */
#define CTL_MAX_DEPTH 8u                   /* JSON nesting, the command object is 1 */
#define CTL_KEY_MIN 16u                    /* bytes of key, at least */
#define CTL_HORIZON_MS (24ull * 3600 * 1000) /* "until" at most this far ahead; the lookback */
#define CTL_SIG_HEADER "levee-signature"
#define CTL_SIG_PREFIX "hmac-sha256="
#define CTL_SIG_LEN (sizeof(CTL_SIG_PREFIX) - 1 + 64) /* the header value, without a NUL */
#define CTL_UNTIL_MAX 9007199254740991ll   /* 2^53 - 1: exact in every JSON reader */

enum ctl_type { CTL_FORCE, CTL_CLEAR };

/* A decoded command. Strings are NUL-terminated; absent optional ones "". */
struct ctl_cmd {
	enum ctl_type type;
	char id[TIER_ID_MAX];           /* 1..63 bytes, 0x21..0x7e */
	char service[LV_NAME_MAX];      /* 1..63 bytes, no control character */
	char tier[LV_NAME_MAX];         /* force: a tier's name or "normal"; 1..63, 0x21..0x7e */
	uint64_t until_unix_ms;         /* force: 1..2^53-1, wall clock */
	char clear[TIER_ID_MAX];        /* clear: the forcing's id, or "*" for any */
	char reason[TIER_REASON_MAX];   /* optional, 0..255 bytes, no control character */
	char issued_by[LV_NAME_MAX];    /* optional, 0..63 bytes, no control character */
	int64_t issued_unix_ms;         /* optional "issued_at"; -1 when absent */
};

/* What became of a message. The refusals are errors of whoever sent it;
 * the ignored ones are normal (other services share the topic, commands
 * expire, deliveries repeat). */
enum ctl_verdict {
	CTL_APPLY = 0,
	/* refused */
	CTL_NO_KEY,        /* levee has no key (or one under CTL_KEY_MIN bytes): nothing is trusted */
	CTL_UNSIGNED,      /* no levee-signature header */
	CTL_BAD_SIGNATURE, /* a header that is malformed or does not match */
	CTL_MALFORMED,     /* too big, not strict JSON, wrong version, a field missing or bad */
	CTL_TOO_FAR,       /* "until" more than CTL_HORIZON_MS ahead */
	CTL_REJECTED,      /* the tier core refused it (an unknown tier) */
	CTL_REFUSED_END,
	/* ignored */
	CTL_EXPIRED = CTL_REFUSED_END, /* "until" already past at arrival */
	CTL_OTHER_SERVICE,             /* for another service */
	CTL_DUPLICATE,                 /* an id already applied */
	CTL_EVENT,                     /* a tier-change event, not a command */
	CTL_SUPERSEDED,                /* read while catching up, and overtaken by a newer command */
	CTL_VERDICT_COUNT
};
#define CTL_REFUSED_FIRST CTL_NO_KEY
#define CTL_IGNORED_FIRST CTL_EXPIRED

/* A short stable token per verdict ("no-key", "unsigned", ...), a metric label. */
const char *ctl_verdict_name(enum ctl_verdict v);

/* The levee-signature value for `msg`: CTL_SIG_LEN bytes and a NUL. */
void ctl_sign(const void *key, size_t klen, const void *msg, size_t len, char out[CTL_SIG_LEN + 1]);

/* CTL_APPLY when `sig` (the header's value, `slen` bytes; NULL when there is
 * no header) is the signature of `msg` under `key`; CTL_NO_KEY when klen <
 * CTL_KEY_MIN, else CTL_UNSIGNED or CTL_BAD_SIGNATURE. Constant time in the
 * signature's bytes. */
enum ctl_verdict ctl_verify(const void *key, size_t klen, const char *sig, size_t slen, const void *msg,
                            size_t len) LV_WARN_UNUSED;

/* Decodes a command. CTL_APPLY with *c filled, CTL_EVENT for a well-formed
 * version 1 tier-change event, or CTL_MALFORMED with *why a static reason
 * (for example "\"until\" is missing"). */
enum ctl_verdict ctl_decode(const char *in, size_t len, struct ctl_cmd *c, const char **why) LV_WARN_UNUSED;

/* What a decoded command means here, at wall-clock `now_ms`, for a levee of
 * `service`: CTL_OTHER_SERVICE, CTL_EXPIRED, CTL_TOO_FAR or CTL_APPLY. */
enum ctl_verdict ctl_check(const struct ctl_cmd *c, const char *service, uint64_t now_ms);

/* verify, decode, check: the whole way from a record to a command. */
enum ctl_verdict ctl_accept(const void *key, size_t klen, const char *sig, size_t slen, const char *val,
                            size_t vlen, const char *service, uint64_t now_ms, struct ctl_cmd *c,
                            const char **why) LV_WARN_UNUSED;

/* The fold a replica makes of the commands for its service it reads while
 * catching up after a start (expired ones too: they may have replaced an
 * older forcing): nothing is applied meanwhile; once caught up the
 * commands are replayed in record-time order (ties: the order read), as a
 * replica running all along would have applied them, and only the forcing
 * left pending at the end is applied (if it has not expired since). A
 * force-tier replaces what is pending, unless `known` says its tier is not
 * in this policy (refused, as it was live); a clear-tier of it (its id, or
 * "*") ends it. At most CTL_FOLD_MAX commands are kept: beyond, the oldest
 * by record time drop out. */
#define CTL_FOLD_MAX 4096
struct ctl_fold_entry {
	struct ctl_cmd cmd;
	int64_t ts;
	size_t seq;
};
struct ctl_fold {
	struct ctl_fold_entry *v;
	size_t n, cap, seq;
};
/* LV_ERR when out of memory (the command is not kept). */
int ctl_fold_add(struct ctl_fold *f, const struct ctl_cmd *c, int64_t ts) LV_WARN_UNUSED;
/* Replays the fold: the forcing pending at the end, or NULL; *moot gets
 * how many commands it made moot (every other one kept). The pointer is
 * valid until ctl_fold_free(). */
const struct ctl_cmd *ctl_fold_result(struct ctl_fold *f, bool (*known)(const char *tier, void *arg), void *arg,
                                      unsigned *moot);
void ctl_fold_free(struct ctl_fold *f);

/* Writes `c` as compact JSON, the members in the order of the examples
 * above, optional ones only when set. Returns the length (no NUL is counted,
 * one is written), or 0 when it does not fit or breaks a rule ctl_decode()
 * would refuse it for. */
size_t ctl_encode(const struct ctl_cmd *c, char *out, size_t cap) LV_WARN_UNUSED;

/* The tier-change event for `tc`, as this replica (`service`, `instance`)
 * publishes it:
 *   {"v":1,"type":"tier-change","service":..,"instance":..,"from":..,"to":..,
 *    "level":N,"forced":null|{"tier","source","id","reason","until_unix_ms"},
 *    "signals":{..},"time":UNIX_MS}
 * Returns the length (a NUL follows), or 0 when it does not fit. */
size_t ctl_event_encode(const struct tier_change *tc, const char *service, const char *instance, char *out,
                        size_t cap) LV_WARN_UNUSED;

#endif
