/*
 * policy.h - the parsed, validated, immutable policy snapshot.
 *
 * A snapshot is built once (from a file, or from built-in defaults plus CLI
 * overrides), never modified afterwards, and shared between threads by
 * reference count. A reload builds a whole new snapshot and swaps the
 * pointer; requests keep the snapshot they started with until they finish.
 *
 * This module is a leaf: it depends on inih and libc only, never on the
 * event loop or the data path.
 */
#ifndef LEVEE_POLICY_H
#define LEVEE_POLICY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#define LV_WARN_UNUSED __attribute__((warn_unused_result))

#define LV_NAME_MAX 64  /* section names, service name, route names */
#define LV_HOST_MAX 256
#define LV_PATH_MAX 1024
#define LV_MAX_ROUTES 4096
#define LV_MAX_CAPTURES 9 /* {1}..{9} */

enum lv_status { LV_OK = 0, LV_ERR = -1, LV_EFULL = -2, LV_ECLOSED = -3 };

/* ---- diagnostics ------------------------------------------------------- */

/* Human-readable lines about a policy, owned by the caller; free with
 * diag_free().
 *
 * `lines` are errors, each formatted as "file:line: [section] key: reason".
 * `warnings` never make a load fail; each is formatted as
 * "file:line: [section] warning: reason". A load reports warnings only when
 * it has no errors, since a half-read file would give false ones. */
struct lv_diag {
	char **lines;
	size_t n, cap;
	char **warnings;
	size_t nwarn, capwarn;
};

void diag_add(struct lv_diag *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void diag_warn(struct lv_diag *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Frees the warnings past the first `keep`. */
void diag_drop_warnings(struct lv_diag *d, size_t keep);
void diag_free(struct lv_diag *d);

/* ---- values ------------------------------------------------------------ */

struct lv_hostport {
	char host[LV_HOST_MAX]; /* literal host or IP, without brackets */
	uint16_t port;
};

/* The checksum of no bytes at all: built-in defaults, or an empty file. */
#define LV_POLICY_EMPTY_CHECKSUM "cbf29ce484222325"

/* Method bits used by routes and by the data path. */
enum lv_method {
	LV_M_GET = 1u << 0,
	LV_M_HEAD = 1u << 1,
	LV_M_POST = 1u << 2,
	LV_M_PUT = 1u << 3,
	LV_M_PATCH = 1u << 4,
	LV_M_DELETE = 1u << 5,
	LV_M_OPTIONS = 1u << 6,
	LV_M_TRACE = 1u << 7,
	LV_M_OTHER = 1u << 8, /* any method not listed above */
};
#define LV_M_ANY 0x1ffu
/* The safe methods (RFC 9110 §9.2.1); every other one is unsafe, those
 * levee does not name (LV_M_OTHER: PROPFIND, M-SEARCH, PURGE...) included. */
#define LV_M_SAFE (LV_M_GET | LV_M_HEAD | LV_M_OPTIONS | LV_M_TRACE)
/* Writes (RFC 9111 §4.4): a 2xx or 3xx answer to one purges what it changed,
 * and its answer is read to the end even if its client leaves. */
#define LV_M_UNSAFE (LV_M_ANY & ~LV_M_SAFE)
/* Methods a route's `retries` may repeat (RFC 9110 §9.2.2). */
#define LV_M_IDEMPOTENT (LV_M_GET | LV_M_HEAD | LV_M_OPTIONS | LV_M_TRACE | LV_M_PUT | LV_M_DELETE)

/* Returns the bit for a method token, or LV_M_OTHER for a token that is valid
 * but not one of the named methods. */
unsigned policy_method_bit(const char *method, size_t len);
/* The name of one of the named bits (LV_M_GET..LV_M_TRACE), else NULL. */
const char *policy_method_name(unsigned bit);

/* Value parsers. Each returns LV_OK, or LV_ERR with *why pointing at a static
 * string that explains the problem (suitable after "key: "). They are exposed
 * for the unit tests and for the CLI overrides. */
int value_duration_ms(const char *s, uint64_t *out_ms, const char **why) LV_WARN_UNUSED;  /* "250ms", "5s", "2m", "1h"; bare "0" allowed */
int value_size_bytes(const char *s, uint64_t *out, const char **why) LV_WARN_UNUSED;      /* "512", "64KiB", "16MiB", "1GiB", also "KB"=1000 */
int value_percent(const char *s, double *out, const char **why) LV_WARN_UNUSED;           /* "50%" -> 50.0 */
int value_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out, const char **why) LV_WARN_UNUSED;
int value_bool(const char *s, bool *out, const char **why) LV_WARN_UNUSED;                /* true/false/yes/no/on/off/1/0 */
int value_hostport(const char *s, struct lv_hostport *out, const char **why) LV_WARN_UNUSED; /* "host:port", "[v6]:port" */
int value_host(const char *h, const char **why) LV_WARN_UNUSED; /* a DNS name or an IPv4 address (not IPv6) */
/* ${VAR} and ${VAR:-default} expansion from the process environment. An
 * unset ${VAR} without default is an error. Output is NUL-terminated. */
int value_expand_env(const char *in, char *out, size_t outsz, const char **why) LV_WARN_UNUSED;

/* ---- routes ------------------------------------------------------------ */

enum lv_match_kind {
	LV_MATCH_PREFIX, /* prefix = /static/   : path starts with the string */
	LV_MATCH_GLOB,   /* match  = a glob: '*' = one segment, '**' = rest */
};

/* cache_ttl: not cached, obey the origin (RFC 9111), or a fixed lifetime */
#define LV_TTL_OFF UINT64_MAX
#define LV_TTL_ORIGIN (UINT64_MAX - 1)

#define LV_MAX_STATUSES 16
struct lv_statuses {
	uint32_t n;
	uint16_t s[LV_MAX_STATUSES];
};

/* A set of HTTP statuses 100-599. */
struct lv_status_set {
	uint64_t bits[10];
};
static inline bool status_set_has(const struct lv_status_set *s, unsigned status)
{
	return status < 640 && ((s->bits[status / 64] >> (status % 64)) & 1u);
}

#define LV_HEADER_LIST_MAX 256
#define LV_INVALIDATE_MAX 512

enum lv_unkeyed { LV_UNKEYED_STRIP, LV_UNKEYED_BYPASS, LV_UNKEYED_FORWARD };

/* What a route's `fallback` chain may answer with instead of levee's own
 * error, one row each: the enum, the word in the policy, in X-Levee-Reason
 * (`fallback=stale`) and in the metrics. The key's words follow this order
 * (tests/unit/test_policy.c checks it). */
#define LV_FALLBACK_KINDS(X)                                                                        \
	X(LV_FB_STALE, "stale")   /* the stored copy, however old (up to stale_fallback_max) */   \
	X(LV_FB_STATIC, "static") /* fallback_status, fallback_content_type, fallback_body|file */ \
	X(LV_FB_STATUS, "status") /* levee's own refusal: refusal_status with Retry-After */

enum lv_fallback_kind {
#define LV_FB_ENUM(e, word) e,
	LV_FALLBACK_KINDS(LV_FB_ENUM)
#undef LV_FB_ENUM
	LV_FB__COUNT
};
extern const char *const lv_fallback_kind_names[LV_FB__COUNT];

/* An ordered chain of distinct fallback kinds; n == 0: none. */
struct lv_fallback_chain {
	uint8_t n;
	uint8_t kind[LV_FB__COUNT]; /* enum lv_fallback_kind, in the order tried */
};
#define LV_FALLBACK_FILE_MAX (64 * 1024) /* bytes of a fallback_file */
#define LV_FALLBACK_TEXT_MAX 200         /* a fallback_body or fallback_content_type line */
enum lv_get_body { LV_GET_BODY_STRIP, LV_GET_BODY_BYPASS };

struct lv_route {
	char name[LV_NAME_MAX];
	enum lv_match_kind kind;
	char pattern[LV_PATH_MAX];
	size_t pattern_len;
	unsigned methods; /* LV_M_* mask; LV_M_ANY when not restricted */
	int line;         /* line of the [route "..."] header, for messages */

	/* caching (proxy/cache/) */
	uint64_t cache_ttl_ms;            /* LV_TTL_OFF, LV_TTL_ORIGIN or milliseconds */
	uint64_t negative_ttl_ms;         /* for the statuses in negative_status */
	struct lv_statuses negative_status;
	uint64_t swr_ms, sie_ms;          /* stale-while-revalidate, stale-if-error windows */
	char cache_key_headers[LV_HEADER_LIST_MAX]; /* lowercase names, ',' separated */
	char cache_key_host[LV_NAME_MAX];  /* "": [cache] key_host; "request", "none", or one canonical host */
	char cache_tags[LV_HEADER_LIST_MAX];        /* tags for stored entries, ',' separated; {N} = capture N */
	/* the targeted fields (RFC 9213) that replace Cache-Control and Expires
	 * for levee's storing, lowercase, ',' separated, first one present and
	 * valid wins; "" = none (proxy/cache/freshness.h, cc_for_storage()) */
	char cache_control_fields[LV_HEADER_LIST_MAX];
	int unkeyed_headers;              /* enum lv_unkeyed: what a cacheable request does with unkeyed risky headers */
	int get_body;                     /* enum lv_get_body: a cacheable GET/HEAD that has a body */
	bool cache_cookies;               /* requests with Cookie may use the cache */
	bool cache_authorization;         /* store answers to requests with Authorization */
	bool cache_set_cookie;            /* store responses with Set-Cookie (without that field) */
	bool cache_any_status;            /* origin mode: store any status the origin gives freshness */
	/* what a successful write on the route purges besides its target, ','
	 * separated: "tag:name", or a path that may hold {1}..{9} and the globs
	 * of `match` (what it purges: route_purge_shape()) */
	char invalidate[LV_INVALIDATE_MAX];

	/* protection (proxy/resilience/) */
	char bulkhead[LV_NAME_MAX];       /* "" = none; else names a [bulkhead] */
	int bulkhead_idx;                 /* its index in lv_policy.bulkheads, -1 = none (set at load) */
	int bulkhead_line;                /* line of the `bulkhead` key, for the check across sections */
	int refusal_status;               /* enum lv_refusal_status: what levee's own refusals answer */
	uint64_t timeout_ms;              /* the whole request's budget; 0: none */
	bool deadline_from_header;        /* honour the client's [upstream] deadline_header */
	uint64_t retries;                 /* more attempts for an idempotent request without a body */
	struct lv_status_set retry_statuses; /* answers that are retried (besides failed connects) */
	uint64_t retry_backoff_ms, retry_backoff_max_ms;
	char breaker[LV_NAME_MAX];        /* "" = none; else names a [breaker] */
	int breaker_idx;                  /* its index in lv_policy.breakers, -1 = none (set at load) */
	int breaker_line;                 /* line of the `breaker` key */
	int priority;                     /* enum lv_priority: what tiers shed first */
	bool tier_cache_only;             /* a tier with cache-only answers it from the cache alone */

	/* fallbacks (proxy/resilience/fallback_stage.c): what answers instead
	 * of levee's own error when the breaker is open, the bulkhead refuses
	 * or the upstream times out or cannot be reached */
	struct lv_fallback_chain fallback;
	uint64_t stale_fallback_max_ms;   /* how long past its freshness a stored copy may serve */
	uint64_t fallback_status;         /* of a `static` answer */
	char fallback_content_type[LV_FALLBACK_TEXT_MAX];
	char fallback_body[LV_FALLBACK_TEXT_MAX];
	char fallback_file[LV_PATH_MAX];  /* "none", or read at load into fallback_file_data */
	char *fallback_file_data;         /* owned by the snapshot; NULL: no file */
	size_t fallback_file_len;
};

static inline bool route_fallback_has(const struct lv_route *r, enum lv_fallback_kind k)
{
	for (unsigned i = 0; r != NULL && i < r->fallback.n; i++)
		if (r->fallback.kind[i] == k)
			return true;
	return false;
}

enum lv_refusal_status { LV_REFUSE_503, LV_REFUSE_429 };
enum lv_bulkhead_isolation { LV_ISOLATION_SEMAPHORE, LV_ISOLATION_THREAD };
enum lv_queue_order { LV_QUEUE_ADAPTIVE_LIFO, LV_QUEUE_FIFO };

/* [bulkhead "NAME"]: a cap on the upstream exchanges of the routes that name
 * it, shared by every worker (proxy/resilience/bulkhead.h). */
struct lv_bulkhead {
	char name[LV_NAME_MAX];
	int line;
	int isolation;             /* enum lv_bulkhead_isolation */
	uint64_t max_concurrent;   /* exchanges at once; 0: `auto`, adaptive (resilience/adaptive.h) */
	uint64_t max_queue;        /* requests waiting for a slot */
	uint64_t queue_timeout_ms; /* longest wait for a slot */
	int queue_order;           /* enum lv_queue_order */
	uint64_t abandon_after_ms; /* a slot stays held this long after levee gave up on the exchange */
	uint64_t retry_after_ms;   /* Retry-After of a refusal, rounded up to seconds */
	uint64_t threads;          /* isolation = thread: the bulkhead's own event loops */
	/* max_concurrent = auto: the bounds of the limit, the share of each
	 * window's target taken (a percentage), the shortest window */
	uint64_t adaptive_min, adaptive_max;
	double adaptive_smoothing;
	uint64_t adaptive_window_ms;
};
#define LV_MAX_BULKHEADS 256
#define LV_MAX_BULKHEAD_THREADS 64

/* A breaker's window: the calls of the last `ms` milliseconds, or the last
 * `calls` calls; exactly one is set. */
struct lv_window {
	uint64_t ms, calls;
};
#define LV_WINDOW_MAX_CALLS 100000

/* What, besides the statuses, a breaker counts as a failure: the bits of
 * `failure_on`, in the order of its words. */
enum lv_breaker_failure {
	LV_BF_TIMEOUT = 1u << 0,   /* no answer, or it stalled, in time */
	LV_BF_CONNECT = 1u << 1,   /* no connection */
	LV_BF_RESET = 1u << 2,     /* closed or reset before the response head */
	LV_BF_TRUNCATED = 1u << 3, /* cut in the middle of the body */
	LV_BF_BAD = 1u << 4,       /* an unparseable response */
	LV_BF_DEADLINE = 1u << 5,  /* the request's own deadline passed first */
};

/* [breaker "NAME"]: a circuit breaker over the upstream exchanges of the
 * routes that name it, shared by every worker (proxy/resilience/breaker.h). */
struct lv_breaker {
	char name[LV_NAME_MAX];
	int line;
	struct lv_window window;
	uint64_t min_requests;     /* calls in the window before it may trip */
	double failure_rate;       /* percent of the window's calls that trips it */
	uint64_t slow_call_ms;     /* a call at least this long is slow; 0: none is */
	double slow_call_rate;     /* percent of slow calls that trips it */
	struct lv_status_set failure_statuses;
	unsigned failure_on;       /* enum lv_breaker_failure bits */
	uint64_t open_for_ms;      /* how long it stays open after a trip */
	uint64_t open_for_max_ms;  /* repeated trips double open_for up to this; 0: no doubling */
	uint64_t half_open_probes; /* calls let through to test the service */
	uint64_t ramp_ms;          /* after the probes pass, traffic grows to all over this */
};
#define LV_MAX_BREAKERS 256

/* A route's business priority: what degradation tiers shed first
 * (docs/tiers.md). A critical route is never shed by a tier. */
enum lv_priority { LV_PRIO_CRITICAL, LV_PRIO_NORMAL, LV_PRIO_OPTIONAL, LV_PRIO__COUNT };
extern const char *const lv_priority_names[LV_PRIO__COUNT];

/* What a tier does to the cache while in force (`cache` of [tier]), one bit
 * each, in the order of the key's words (docs/tiers.md, "Cache modes"). */
#define LV_CACHE_MODES(X)                                                                          \
	X(LV_CM_SERVE_STALE, "serve-stale")         /* a stale stored copy answers, no revalidation */ \
	X(LV_CM_STRETCH_TTL, "stretch-ttl")         /* freshness lifetimes times ttl_factor */    \
	X(LV_CM_SKIP_LEASE, "skip-lease")           /* never wait for another's fill */            \
	X(LV_CM_NO_FILL_OPTIONAL, "no-fill-optional") /* optional routes' misses are not stored */ \
	X(LV_CM_CACHE_ONLY, "cache-only")           /* routes with tier_cache_only: no upstream */
enum lv_cache_mode_bit {
#define LV_CM_BIT(e, word) e##_BIT,
	LV_CACHE_MODES(LV_CM_BIT)
#undef LV_CM_BIT
	LV_CM__COUNT
};
enum lv_cache_mode {
#define LV_CM_FLAG(e, word) e = 1u << e##_BIT,
	LV_CACHE_MODES(LV_CM_FLAG)
#undef LV_CM_FLAG
};

/* What share of each priority a tier sheds, in percent (0: none, 100: all);
 * [LV_PRIO_CRITICAL] is always 0. */
struct lv_shed {
	double pct[LV_PRIO__COUNT];
};

/* [tier "NAME"]: one degradation tier, in file order, least severe first
 * (proxy/resilience/tiers.h). What a tier does adds to what the tiers before
 * it do. */
#define LV_TIER_EXPR_MAX 200
#define LV_MAX_TIERS 16
struct expr;
struct lv_tier {
	char name[LV_NAME_MAX];
	int line;
	char enter[LV_TIER_EXPR_MAX], exit[LV_TIER_EXPR_MAX]; /* as written */
	int enter_line, exit_line;
	struct expr *enter_expr, *exit_expr; /* parsed at load, owned by the snapshot */
	uint64_t hold_ms;          /* least time in force before stepping down */
	bool shadow;               /* records what it would do, changes nothing */
	struct lv_shed shed;
	unsigned cache;            /* enum lv_cache_mode bits */
	uint64_t ttl_factor;       /* stretch-ttl: freshness lifetimes times this */
	double bulkhead_scale;     /* percent of each bulkhead's limits while in force */
	uint64_t retry_after_ms;   /* Retry-After of its refusals */
};

/* What a client's cohort is hashed from: its address, or the value of a
 * header or a cookie (the address when the request has none). */
enum lv_cohort { LV_COHORT_ADDRESS, LV_COHORT_HEADER, LV_COHORT_COOKIE };
struct lv_cohort_key {
	int kind;                /* enum lv_cohort */
	char name[LV_NAME_MAX];  /* the header or cookie; "" for the address */
};

/* The signals tier expressions may name, built at load from the policy's
 * routes, bulkheads and breakers (policy/signals.c). */
struct lv_signal_table;
struct lv_tier_level;

struct lv_policy;
struct route_index;
static inline bool route_caches(const struct lv_route *r)
{
	return r != NULL && r->cache_ttl_ms != LV_TTL_OFF;
}

static inline bool statuses_has(const struct lv_statuses *l, unsigned status)
{
	for (uint32_t i = 0; i < l->n; i++)
		if (l->s[i] == status)
			return true;
	return false;
}

/* Captured '*' / '**' spans of a glob match, as offsets into the path. */
struct lv_captures {
	int n;
	struct {
		uint32_t off, len;
	} c[LV_MAX_CAPTURES];
};

/* Pure matching function, exposed for tests. `path` is the path part of the
 * request target (no query). Returns true on match and fills `caps` when not
 * NULL. */
bool route_matches(const struct lv_route *r, const char *path, size_t len, unsigned method_bit,
                   struct lv_captures *caps);

/* Checks that a pattern is one route_matches() handles: starts with '/', no
 * whitespace, control bytes, '?' or '#'; for globs, at most one '*' per
 * segment, '**' only as the whole final segment, at most LV_MAX_CAPTURES
 * wildcards; for prefixes, no '*' at all. Also checks the paths of purges,
 * which take the same globs. */
int route_pattern_check(enum lv_match_kind kind, const char *pat, size_t len,
                        const char **why) LV_WARN_UNUSED;

/* What a purge of the paths a glob matches removes. A purge takes one URL
 * or every URL under a prefix (docs/invalidation-message.md), so:
 *   no wildcard        the URL itself;
 *   a final "**"       (a whole segment) the prefix before it: exactly the
 *                      paths it matches;
 *   any other '*'      every URL under the pattern's bytes up to the '/'
 *                      before its first '*': more than it matches, never less
 *                      (a purge too wide costs misses; one too narrow serves
 *                      stale answers).
 * <pat> passed route_pattern_check(LV_MATCH_GLOB); *keep is the length of
 * the URL or prefix at its start. */
enum lv_purge_shape { LV_PURGE_URL, LV_PURGE_PREFIX, LV_PURGE_WIDER };
enum lv_purge_shape route_purge_shape(const char *pat, size_t len, size_t *keep);

/* ---- the snapshot ------------------------------------------------------ */

enum lv_log_level { LV_LOG_DEBUG, LV_LOG_INFO, LV_LOG_WARN, LV_LOG_ERROR };

/* [levee] transparent: whether connections may arrive redirected by the
 * pod's nat rules (docs/transparent.md), so that levee reads each one's
 * original destination. */
enum lv_transparent { LV_TRANSPARENT_OFF, LV_TRANSPARENT_ON };

/* [upstream] proxy_protocol: whether each upstream connection opens with a
 * PROXY protocol line naming the client (docs/transparent.md). */
enum lv_proxy_protocol { LV_PROXY_PROTOCOL_OFF, LV_PROXY_PROTOCOL_V1 };

/* X(enum, name): the fields an access log line may carry, in no particular
 * order; `access_log_fields` picks some and their order. docs/access-log.md
 * says what each holds and how it is written. */
#define LV_ALOG_FIELDS(X)                                                                          \
	X(LV_AF_TIME, "time")                                                                      \
	X(LV_AF_REQUEST_ID, "request_id")                                                          \
	X(LV_AF_CLIENT, "client")                                                                  \
	X(LV_AF_ORIG_DST, "orig_dst")                                                              \
	X(LV_AF_METHOD, "method")                                                                  \
	X(LV_AF_HOST, "host")                                                                      \
	X(LV_AF_TARGET, "target")                                                                  \
	X(LV_AF_PROTOCOL, "protocol")                                                              \
	X(LV_AF_STATUS, "status")                                                                  \
	X(LV_AF_BYTES_IN, "bytes_in")                                                              \
	X(LV_AF_BYTES_SENT, "bytes_sent")                                                          \
	X(LV_AF_REQUEST_MS, "request_ms")                                                          \
	X(LV_AF_UPSTREAM_MS, "upstream_ms")                                                        \
	X(LV_AF_UPSTREAM_ADDR, "upstream_addr")                                                    \
	X(LV_AF_ROUTE, "route")                                                                    \
	X(LV_AF_CACHE, "cache")                                                                    \
	X(LV_AF_CACHE_LAYER, "cache_layer")                                                        \
	X(LV_AF_CACHE_STATUS, "cache_status")                                                      \
	X(LV_AF_OUTCOME, "outcome")                                                                \
	X(LV_AF_REASON, "reason")                                                                  \
	X(LV_AF_SHED, "shed")                                                                      \
	X(LV_AF_FALLBACK, "fallback")                                                              \
	X(LV_AF_TIER, "tier")                                                                      \
	X(LV_AF_BULKHEAD, "bulkhead")                                                              \
	X(LV_AF_BREAKER, "breaker")                                                                \
	X(LV_AF_BREAKER_STATE, "breaker_state")                                                    \
	X(LV_AF_USER_AGENT, "user_agent")                                                          \
	X(LV_AF_FORWARDED_FOR, "forwarded_for")                                                    \
	X(LV_AF_REFERER, "referer")

enum lv_alog_field {
#define LV_AF_ENUM(e, name) e,
	LV_ALOG_FIELDS(LV_AF_ENUM)
#undef LV_AF_ENUM
	LV_AF__COUNT
};
extern const char *const lv_alog_field_names[LV_AF__COUNT];

/* The fields of `access_log_fields`, in the order written, each once. */
struct lv_alog_fields {
	uint8_t n;
	uint8_t f[LV_AF__COUNT]; /* enum lv_alog_field */
};
enum lv_alog_format { LV_ALOG_JSON, LV_ALOG_TEXT };

struct lv_limits {
	uint64_t header_bytes;    /* [limits] header_bytes: request line + headers */
	uint64_t headers;         /* [limits] headers: header field count */
	uint64_t uri_bytes;       /* [limits] uri_bytes: request target length */
	uint64_t body_bytes;      /* [limits] body_bytes: request body */
	uint64_t header_timeout_ms;
	uint64_t body_timeout_ms; /* inactivity while reading a request body */
	uint64_t idle_timeout_ms; /* keep-alive idle between requests */
	uint64_t send_timeout_ms; /* inactivity while writing to the client */
};

struct lv_upstream_cfg {
	uint64_t connect_timeout_ms;
	uint64_t response_timeout_ms; /* to the response head, and inactivity after it */
	uint64_t keepalive;           /* idle connections kept per worker */
	uint64_t keepalive_timeout_ms;
	uint64_t probe_interval_ms;   /* readiness probe of the upstream */
	char deadline_header[LV_NAME_MAX]; /* the request's remaining budget, in ms, both ways */
	double retry_budget;          /* percent of recent requests that may be retries */
	uint64_t retry_budget_min;    /* retries per second allowed whatever the share */
	enum lv_proxy_protocol proxy_protocol; /* a PROXY line opens each upstream connection */
};

/* A warm-up list, parsed (warmup_list_parse): `n` items, each as two
 * NUL-terminated strings back to back in `data`: the authority ("" = the
 * [warmup] host) and the origin-form target. */
#define LV_WARM_LIST_MAX 10000u      /* items */
#define LV_WARM_LIST_FILE_MAX (1u << 20) /* bytes of urls_file */
#define LV_WARM_TARGET_MAX 8192u     /* bytes of one target */
struct lv_warm_list {
	char *data;
	size_t len;
	unsigned n;
};

/* Parses warm-up targets: one per line (`lines`; blank lines and lines
 * starting with '#' skipped) or blank-separated. An item is an origin-form
 * target ("/path?query") or "http://host[:port]/path"; nothing but visible
 * ASCII. Appends to `out` (whose data the caller frees). LV_ERR with a
 * reason in `err` and the 1-based line (or item) number in *at. */
int warmup_list_parse(const char *text, size_t len, bool lines, struct lv_warm_list *out, unsigned *at,
                      char *err, size_t errlen) LV_WARN_UNUSED;
/* Walks a parsed list: *pos starts at 0; false at the end. */
bool warmup_list_next(const struct lv_warm_list *l, size_t *pos, const char **authority, const char **target);

struct lv_policy {
	atomic_int refs;

	/* provenance */
	char path[LV_PATH_MAX];   /* "" when running on built-in defaults */
	char checksum[17];        /* FNV-1a 64 of the file bytes, hex; of "" for defaults */
	time_t loaded_at;         /* wall clock, seconds */

	/* [levee] */
	char service[LV_NAME_MAX];
	struct lv_hostport listen;
	struct lv_hostport upstream;
	struct lv_hostport admin;
	struct lv_hostport probe; /* read-only probe listener; host "" when off */
	char admin_token_env[LV_NAME_MAX]; /* names the variable with the admin token */
	bool admin_insecure;      /* no token on a non-loopback admin address: open, not 403 */
	uint64_t workers;         /* 0 = auto (one per CPU) */
	uint64_t max_connections;
	uint64_t drain_timeout_ms;
	uint64_t drain_delay_ms;  /* SIGTERM: /readyz fails, serving goes on this long, then drain */
	char access_log[LV_PATH_MAX]; /* "stdout", "off", or a file path */
	struct lv_alog_fields access_log_fields; /* what a line says, in order */
	enum lv_alog_format access_log_format;
	enum lv_log_level log_level;
	bool trust_forwarded;     /* keep an incoming X-Forwarded-Proto */
	enum lv_transparent transparent;

	struct lv_limits limits;  /* [limits] */
	struct lv_upstream_cfg up; /* [upstream] */
	struct {
		struct lv_hostport address;          /* host "" when not set */
		char sentinels[LV_HEADER_LIST_MAX];  /* "h:p,h:p", or "" */
		char master[LV_NAME_MAX];
		uint64_t timeout_ms, connect_timeout_ms, lease_ms, lease_wait_ms;
	} redis;                     /* [redis]: the shared tier (L2); off when neither address nor sentinels */
	struct {
		char brokers[LV_HEADER_LIST_MAX];    /* "h:p,h:p"; "" = Kafka off */
		char topic[LV_NAME_MAX * 4];
		char instance[LV_NAME_MAX];          /* "" = $POD_NAME, $HOSTNAME or the host name */
		char group_id[LV_NAME_MAX * 2];      /* "" = levee.<service>.<instance> */
		char outbox[LV_PATH_MAX];
		uint64_t outbox_max;
		int outbox_fsync;                    /* enum lv_outbox_fsync */
		uint64_t delivery_timeout_ms, linger_ms, lag_budget_ms, dedup_window;
		int start_from;                      /* enum lv_start_from */
		int security_protocol, sasl_mechanism; /* indexes into their keys' words */
		char sasl_username[256], sasl_password[256];
		char ssl_ca[LV_PATH_MAX];            /* "system", or a PEM file */
		char control_topic[LV_NAME_MAX * 4]; /* "" = no control topic (proxy/control/) */
		char control_key_env[LV_NAME_MAX];   /* names the variable with the HMAC key */
	} kafka;                     /* [kafka]: invalidation broadcast; off when brokers is empty */
	struct {
		uint64_t hot_keys;         /* top keys of the hot set loaded into L1 at start; 0 = none */
		uint64_t hot_rate;         /* entries a second read from Redis for that */
		uint64_t hot_sample;       /* one hit in N is written to the hot set; 0 = no hot set */
		uint64_t hot_writes;       /* keys a second one worker writes to the hot set, at most */
		uint64_t hot_size;         /* keys the hot set keeps */
		uint64_t hot_half_life_ms; /* scores halve this often */
		char urls[LV_PATH_MAX];      /* targets, blank-separated ("" = none) */
		char urls_file[LV_PATH_MAX]; /* "none", or a file of targets read at load */
		char host[LV_HOST_MAX];      /* Host of a target given without one */
		uint64_t rate;             /* warm-up requests a second to the origin */
		uint64_t concurrency;      /* warm-up requests in flight at once */
		uint64_t ready_wait_ms;    /* /readyz waits this long for the warm-up; 0 = not at all */
		struct lv_warm_list list;  /* urls then urls_file, parsed at load */
	} warmup;                    /* [warmup] (docs/caching.md "Warm-up") */
	struct {
		uint64_t memory;     /* [cache] memory: L1 bytes, all workers together */
		uint64_t max_object; /* [cache] max_object: larger responses are not stored */
		uint64_t uncacheable_ttl_ms; /* [cache] uncacheable_ttl: hit-for-miss duration */
		char key_host[LV_NAME_MAX];  /* [cache] key_host: "request", "none" or one canonical host */
	} cache;

	size_t nbulkheads;
	struct lv_bulkhead *bulkheads;
	size_t nbreakers;
	struct lv_breaker *breakers;

	struct {
		uint64_t tick_ms;    /* [tiers] tick: how often signals are sampled and tiers evaluated */
		uint64_t window_ms;  /* [tiers] window: of the latency and error figures */
		struct lv_cohort_key cohort; /* [tiers] cohort: what a client's cohort is hashed from */
	} tiers_cfg;
	size_t ntiers;
	struct lv_tier *tiers;
	struct lv_signal_table *signals; /* what tier expressions may name; NULL without tiers */
	struct lv_tier_level *tier_levels; /* [0..ntiers]: what each level does (policy/signals.h) */

	size_t nroutes;
	struct lv_route *routes;  /* in file order; first match wins */
	struct route_index *route_index; /* over `routes`, for policy_route_match() */
};

enum lv_outbox_fsync { LV_FSYNC_ALWAYS, LV_FSYNC_BATCH, LV_FSYNC_NEVER };
enum lv_start_from { LV_START_LATEST, LV_START_EARLIEST };

static inline bool policy_kafka_on(const struct lv_policy *p)
{
	return p->kafka.brokers[0] != '\0';
}

static inline bool policy_redis_on(const struct lv_policy *p)
{
	return p->redis.address.host[0] != '\0' || p->redis.sentinels[0] != '\0';
}

/* Command-line overrides; NULL fields are not overridden. */
struct lv_overrides {
	const char *listen;
	const char *upstream;
	const char *admin;
	const char *probe;
};

/* Parse and validate a policy file. On success *out holds a snapshot with one
 * reference. On failure returns LV_ERR, leaves *out untouched and adds one
 * line per problem to `diag` (all problems are reported, not just the first). */
int policy_load_file(const char *path, const struct lv_overrides *ov, struct lv_policy **out,
                     struct lv_diag *diag) LV_WARN_UNUSED;

/* Same, from in-memory text; `name` is used in messages as the file name.
 * Used by the unit tests. */
int policy_load_string(const char *name, const char *text, const struct lv_overrides *ov,
                       struct lv_policy **out, struct lv_diag *diag) LV_WARN_UNUSED;

/* The built-in defaults plus overrides (levee --upstream HOST:PORT). */
int policy_load_defaults(const struct lv_overrides *ov, struct lv_policy **out,
                         struct lv_diag *diag) LV_WARN_UNUSED;

void policy_ref(struct lv_policy *p);
void policy_unref(struct lv_policy *p);

/* First route, in file order, that matches; NULL when none does. The cost
 * does not grow with the number of routes, only with those whose literal
 * start the path begins with (policy/route_index.c). */
const struct lv_route *policy_route_match(const struct lv_policy *p, const char *path, size_t len,
                                          unsigned method_bit, struct lv_captures *caps);

/* Gives `next` the running value of every key that cannot change on reload,
 * calling `cb` for each whose value in `next` was different: the file asks
 * for it, but it takes a restart. So a snapshot always says what runs, and
 * the list of such keys is always against the process as it started. `next`
 * must not be shared yet. */
void policy_keep_static(struct lv_policy *next, const struct lv_policy *running,
                        void (*cb)(const char *section, const char *key, void *arg), void *arg);

/* ---- a snapshot's values, key by key (policy/walk.c) -------------------- */

/* What `levee check --print` writes in place of a secret's value. A secret
 * key refuses it as a value, so a printed file never loads as if the mask
 * were the secret. */
#define LV_SECRET_MASK "<masked>"

/* One key of a snapshot, or (key == NULL) the start of a section. */
struct lv_keyval {
	const char *section;  /* "route" */
	const char *instance; /* a named section's instance ("users"); NULL for the others */
	size_t index;         /* its place in its section, from 0 (named sections) */
	const char *key;      /* NULL: the section starts */
	const char *value;    /* in policy syntax, '$' doubled: a file line `key = value` loads to it */
	bool is_default;      /* the key's default (a key without one: false) */
	bool reload;          /* a reload may change it (policy_keep_static()) */
	bool secret;          /* its value is secret; with LV_WALK_MASK, `value` is LV_SECRET_MASK */
};

enum lv_walk_flags {
	LV_WALK_MASK = 1u << 0, /* secrets as LV_SECRET_MASK (an empty one stays empty) */
};

/* Calls `cb` for every section and every key of `p`, in key-table order
 * (named sections: each instance in file order), with each value as the
 * file would write it. Returns LV_OK, or LV_ERR when a value cannot be
 * written back as a line that loads to it (one that came from ${VAR} with
 * a " ;", a control byte, or blanks at its ends, or a line too long); then
 * `err` names it, and the walk stops. */
typedef void (*lv_walk_fn)(const struct lv_keyval *kv, void *arg);
int policy_walk(const struct lv_policy *p, unsigned flags, lv_walk_fn cb, void *arg, char *err,
                size_t errsz) LV_WARN_UNUSED;

/* Writes the documentation of every key (from the key table) as Markdown. */
void policy_keys_markdown(FILE *out);

#endif
