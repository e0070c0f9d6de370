/*
 * reason.h - every answer levee produces itself, declared once.
 *
 * Each row: enum name, the token sent in X-Levee-Reason and used as a metric
 * label, the HTTP status, and the short plain-text body. Code compares the
 * enum, never the text.
 */
#ifndef LEVEE_REASON_H
#define LEVEE_REASON_H

#define LV_REASONS(X)                                                                              \
	X(R_NONE, "none", 0, "")                                                                   \
	X(R_BAD_REQUEST, "bad-request", 400, "malformed or ambiguous request")                     \
	X(R_METHOD, "method-not-allowed", 405, "method not supported by this proxy")               \
	X(R_HEADER_TIMEOUT, "header-timeout", 408, "request head not received in time")            \
	X(R_BODY_TIMEOUT, "body-timeout", 408, "request body not received in time")                \
	X(R_BODY_TOO_LARGE, "body-too-large", 413, "request body too large")                       \
	X(R_URI_TOO_LONG, "uri-too-long", 414, "request target too long")                          \
	X(R_EXPECTATION, "expectation-failed", 417, "unsupported expectation")                     \
	X(R_HEADERS_TOO_LARGE, "headers-too-large", 431, "request header fields too large")        \
	X(R_INTERNAL, "internal", 500, "internal error")                                           \
	X(R_TE, "unsupported-transfer-coding", 501, "transfer coding not supported")               \
	X(R_METHOD_UNKNOWN, "method-not-implemented", 501, "a request method token longer than a request head may be (RFC 9110 section 15.6.2)") \
	X(R_UP_CONNECT, "upstream-connect", 502, "could not connect to the upstream")              \
	X(R_UP_BAD, "upstream-bad-response", 502, "invalid or no response from the upstream")      \
	X(R_MAXCONN, "max-connections", 503, "too many connections")                               \
	X(R_DRAINING, "draining", 503, "shutting down")                                            \
	X(R_BULKHEAD_FULL, "bulkhead-full", 503, "every slot of the bulkhead is taken and its queue is full") \
	X(R_BULKHEAD_TIMEOUT, "bulkhead-timeout", 503, "no bulkhead slot came free in time")       \
	X(R_BREAKER_OPEN, "breaker-open", 503, "the circuit breaker is open: the upstream was not asked") \
	X(R_TIER_SHED, "tier-shed", 503, "shed by the degradation tier in force: try again later")  \
	X(R_TIER_CACHE_ONLY, "tier-cache-only", 503, "not in the cache, and the tier in force serves this route from the cache only") \
	X(R_UP_TIMEOUT, "upstream-timeout", 504, "the upstream did not answer in time")            \
	X(R_DEADLINE, "deadline", 504, "the request's deadline passed before its answer")          \
	X(R_NOT_CACHED, "only-if-cached", 504, "not in the cache (only-if-cached)")                 \
	X(R_LOOP, "loop-detected", 508, "the request already passed through this levee: refused, so that it cannot loop") \
	X(R_VERSION, "http-version", 505, "HTTP version not supported")

enum lv_reason {
#define LV_R_ENUM(e, tok, st, msg) e,
	LV_REASONS(LV_R_ENUM)
#undef LV_R_ENUM
	R__COUNT
};

struct lv_reason_info {
	const char *token;
	int status;
	const char *message;
};

extern const struct lv_reason_info lv_reasons[R__COUNT];

/* The failures a route's `fallback` chain may answer instead of levee's own
 * error, one line each: anything else (a bad request, a bad upstream
 * answer, only-if-cached...) is no fallback material. Their order is that
 * of the fallback metrics' `cause` label. */
#define LV_FALLBACK_CAUSES(X)                                                                      \
	X(R_BREAKER_OPEN)                                                                          \
	X(R_BULKHEAD_FULL)                                                                         \
	X(R_BULKHEAD_TIMEOUT)                                                                      \
	X(R_UP_TIMEOUT)                                                                            \
	X(R_UP_CONNECT)                                                                            \
	X(R_DEADLINE)                                                                              \
	X(R_TIER_SHED)                                                                             \
	X(R_TIER_CACHE_ONLY)

enum {
#define LV_FC_COUNT(e) +1
	LV_FALLBACK_CAUSES_N = 0 LV_FALLBACK_CAUSES(LV_FC_COUNT)
#undef LV_FC_COUNT
};
extern const enum lv_reason lv_fallback_causes[LV_FALLBACK_CAUSES_N];
/* The index of <reason> in LV_FALLBACK_CAUSES, or -1 when no fallback may
 * answer it. */
int reason_fallback_cause(enum lv_reason reason);

/* The reason phrase for a status levee writes itself. */
const char *http_status_phrase(int status);

#endif
