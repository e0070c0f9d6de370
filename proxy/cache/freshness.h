/*
 * freshness.h - RFC 9111 rules for a shared cache: what may be stored, for
 * how long, and whether a stored response may answer a request.
 *
 * Everything here is a pure function over parsed heads (struct lv_head) and
 * times passed in as unix seconds. Nothing allocates, reads a clock or knows
 * about the event loop, so the cache stage and the record module can call it
 * from anywhere and the tests need no sleeping.
 *
 * Invariants and decisions:
 *   - Delta-seconds are parsed saturating at 2^31 (RFC 9111 §1.2.2); every
 *     age and lifetime computed here stays in [0, 2^31].
 *   - Directive values are read in token or quoted-string form (§5.2). An
 *     invalid or negative value makes the directive act conservatively:
 *     max-age, s-maxage (and the request's max-age) become 0; the stale
 *     windows become 0; an invalid max-stale or min-fresh is ignored.
 *     Duplicates keep the most conservative value: the smallest, except for
 *     min-fresh where the largest is the stricter (§4.2.1).
 *   - Qualified no-cache="f" and private="f" act as their unqualified forms.
 *   - Nothing is stored for a request other than GET, for 206, 304, 1xx, any
 *     5xx (levee policy, 501 included) or a status levee does not know; for
 *     no-store (request or response), private, Set-Cookie (unless the route
 *     allows it), Authorization without public / must-revalidate / s-maxage
 *     (§3.5, unless the route allows it) and Vary: * (§4.1).
 *   - any_status (origin mode only, a route's opt-in, §3): a 5xx or a status
 *     levee does not know is stored when the origin gave it freshness
 *     (s-maxage, max-age, Expires; or Last-Modified with `public` or a
 *     heuristically cacheable status such as 501). 206 and 304 never are.
 *   - must-understand (§5.2.2.3): with a status levee understands, the
 *     response's no-store is ignored and the other directives decide; with
 *     one it does not, the response is not stored, whatever any_status says.
 *   - Origin mode obeys Cache-Control. Lifetime is s-maxage, then max-age,
 *     then Expires - Date (§4.2.1; an invalid or repeated Expires means
 *     already expired), then 10% of Date - Last-Modified capped at
 *     heuristic_max (§4.2.2) for a heuristically cacheable status or a
 *     `public` response. Failing all of these, a no-cache response with a
 *     validator is stored with lifetime 0 to be revalidated on every use.
 *   - Fixed-TTL mode (origin_mode false) replaces the origin's freshness:
 *     lifetime = fixed_ttl, max-age / s-maxage / Expires / no-cache /
 *     must-revalidate are ignored and the stale windows are the route's. The
 *     safety rules above still apply, and only the heuristically cacheable
 *     statuses are stored (a fixed TTL should not pin a 302 or a 403).
 *   - s-maxage implies proxy-revalidate (§5.2.2.10), which forbids serving
 *     stale (§4.2.4): swr and sie become 0 when must_revalidate is set, and
 *     when the response says no-cache. One exception, because "s-maxage=60,
 *     stale-while-revalidate=30" is how CDN-minded origins ask for exactly
 *     that: when s-maxage is the only revalidate signal, the response's own
 *     stale-while-revalidate / stale-if-error (RFC 5861) still apply; the
 *     route's windows do not.
 *   - A missing or invalid Date is replaced by response_time (RFC 9110
 *     §6.6.1); fresh_eval.date says which value was used so the caller can
 *     add the Date header it stores.
 *   - Targeted fields (RFC 9213): the response's directives come from
 *     cc_for_storage(), so the first field of the route's list that is
 *     present and a valid, non-empty dictionary stands for Cache-Control
 *     and Expires in every rule above.
 */
#ifndef LEVEE_FRESHNESS_H
#define LEVEE_FRESHNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/head.h"

/* ---- Cache-Control ------------------------------------------------------ */

#define CC_ABSENT (-1)                   /* a delta-seconds directive that was not sent */
#define CC_DELTA_MAX INT64_C(2147483648) /* §1.2.2; also "max-stale" without a value */

enum cc_flag {
	CC_NO_STORE = 1u << 0,
	CC_NO_CACHE = 1u << 1, /* also no-cache="..." and, on requests, Pragma: no-cache */
	CC_PRIVATE = 1u << 2,  /* also private="..." */
	CC_PUBLIC = 1u << 3,
	CC_MUST_REVALIDATE = 1u << 4,
	CC_PROXY_REVALIDATE = 1u << 5,
	CC_NO_TRANSFORM = 1u << 6,
	CC_IMMUTABLE = 1u << 7,
	CC_ONLY_IF_CACHED = 1u << 8,
	CC_MAX_STALE = 1u << 9, /* max_stale holds the allowance */
	CC_MUST_UNDERSTAND = 1u << 10,
};

struct cc_directives {
	unsigned flags;  /* enum cc_flag */
	bool present;    /* at least one Cache-Control field line was parsed */
	bool targeted;   /* they came from a targeted field (RFC 9213): Expires does not count */
	int64_t max_age; /* all CC_ABSENT or in [0, CC_DELTA_MAX] */
	int64_t s_maxage;
	int64_t swr;       /* stale-while-revalidate */
	int64_t sie;       /* stale-if-error */
	int64_t max_stale; /* CC_DELTA_MAX when sent without a value */
	int64_t min_fresh;
};

void cc_init(struct cc_directives *d);
/* Adds the directives of one Cache-Control field line value <v> to <d>;
 * call once per line, after cc_init(). */
void cc_parse(struct cc_directives *d, const char *v, size_t len);
/* cc_init() plus every Cache-Control line of <hd>. */
void cc_from_head(struct cc_directives *d, const struct lv_head *hd);
/* cc_from_head() for a request, where `Pragma: no-cache` counts as
 * Cache-Control: no-cache when no Cache-Control line is present (§5.4). */
void cc_from_request(struct cc_directives *d, const struct lv_head *req);

/* The directives levee stores and judges the response <resp> by (RFC 9213
 * §2.1): those of the first field named in <fields> that <resp> carries
 * with a valid, non-empty Structured Fields Dictionary (RFC 8941; its lines
 * joined with ", "), with d->targeted set; failing that, cc_from_head().
 * <fields> is a route's cache_control_fields: lowercase names, ','
 * separated; NULL or "" for none. A field that is absent, empty, invalid or
 * over CC_TARGETED_MAX bytes counts as absent, and the next one is tried.
 * Mapping (§2.2): a directive's value must have its type: delta-seconds a
 * non-negative Integer (saturating at CC_DELTA_MAX), a flag Boolean true,
 * max-stale either; another value ignores the directive, except for the
 * directives that only restrict (no-store, no-cache, private,
 * must-revalidate, proxy-revalidate), which count whatever they carry, as
 * in cc_parse(). Parameters and unknown directives are ignored; a
 * repeated directive takes its last value (RFC 8941 §4.2.2). */
#define CC_TARGETED_MAX 2048
void cc_for_storage(struct cc_directives *d, const struct lv_head *resp, const char *fields);

/* The client asked not to reach the origin: when fresh_state() is not
 * FRESH_OK the caller answers 504 (§5.2.1.7). */
static inline bool cc_only_if_cached(const struct cc_directives *req_cc)
{
	return (req_cc->flags & CC_ONLY_IF_CACHED) != 0;
}

/* ---- HTTP dates (RFC 9110 §5.6.7) -------------------------------------- */

#define HTTP_DATE_LEN 29 /* "Sun, 06 Nov 1994 08:49:37 GMT" */

/* Parses IMF-fixdate, RFC 850 and asctime dates, with surrounding OWS.
 * Returns unix seconds, -1 if invalid. Dates before 1970 return 0 so that
 * -1 stays unambiguous (they only ever mean "long ago"). A two-digit RFC 850
 * year below 70 is 20yy, otherwise 19yy. */
int64_t http_date_parse(const char *s, size_t len);
/* Writes <t> as a NUL-terminated IMF-fixdate; returns HTTP_DATE_LEN. Times
 * are clamped to [1970, 9999]. */
size_t http_date_format(int64_t t, char out[32]);

/* ---- evaluating a response for storing --------------------------------- */

#define FRESH_HEURISTIC_MAX_DEFAULT 86400

struct fresh_options {
	bool origin_mode;         /* obey Cache-Control; false: fixed_ttl */
	int64_t fixed_ttl;        /* seconds, fixed-TTL mode only */
	bool allow_authorization; /* route opt-outs of the §3.5 and Set-Cookie rules */
	bool allow_set_cookie;
	bool any_status; /* origin mode: store any final status the origin gives
	                  * freshness (5xx and unknown ones included; not 206, 304) */
	int64_t heuristic_max; /* cap of the heuristic lifetime; 0 disables it */
	int64_t route_swr;     /* route stale windows, seconds */
	int64_t route_sie;
	const char *cc_fields; /* targeted fields, as cc_for_storage() takes them */
};

static inline void fresh_options_init(struct fresh_options *o)
{
	*o = (struct fresh_options){.origin_mode = true,
	                            .heuristic_max = FRESH_HEURISTIC_MAX_DEFAULT};
}

/* What the record module persists with a stored response: enough to answer
 * fresh_state() later without re-reading the head. */
struct fresh_stored {
	int64_t response_time; /* when the response head arrived */
	int64_t initial_age;   /* corrected_initial_age, §4.2.3 */
	int64_t lifetime;      /* freshness_lifetime, §4.2.1 */
	int64_t swr, sie;      /* stale windows past the lifetime; 0 = none */
	bool must_revalidate;  /* a stale copy needs validation even if the client allows it */
	bool no_cache;         /* validate on every use, even while fresh */
};

/* why_not values, compared by pointer. */
extern const char fresh_why_method[];  /* not GET */
extern const char fresh_why_status[];  /* not final, 304, 5xx or unknown */
extern const char fresh_why_partial[]; /* 206 */
extern const char fresh_why_no_store[];
extern const char fresh_why_private[];
extern const char fresh_why_set_cookie[];
extern const char fresh_why_authorization[];
extern const char fresh_why_vary_star[];    /* Vary: * or an invalid Vary member */
extern const char fresh_why_no_freshness[]; /* nothing says it may be reused */

struct fresh_eval {
	bool storable;
	const char *why_not; /* NULL when storable, else a fresh_why_* constant */
	struct fresh_stored st;
	bool heuristic; /* lifetime came from Last-Modified (§4.2.2) */
	bool has_etag;
	int64_t last_modified; /* -1 if absent or invalid */
	int64_t date;          /* Date, or response_time when absent or invalid */
};

/* Decides whether <resp>, the answer to <req>, may be stored and computes
 * what fresh_state() needs. <request_time> is when the request was sent
 * upstream and <response_time> when the response head arrived (§4.2.3).
 * Every field of <out> is filled even when the response is not storable. */
void fresh_evaluate(const struct lv_head *req, const struct lv_head *resp, int64_t request_time,
                    int64_t response_time, const struct fresh_options *opt, struct fresh_eval *out);

/* RFC 9110 §15.1's heuristically cacheable statuses: 200, 203, 204, 206,
 * 300, 301, 308, 404, 405, 410, 414, 501. */
bool fresh_status_heuristic(unsigned status);
/* Final statuses whose caching semantics levee knows (RFC 9110 §15, plus
 * 428, 429, 431, 451), 304 and 306 excepted: what must-understand asks. */
bool fresh_status_understood(unsigned status);

/* ---- reusing a stored response ----------------------------------------- */

/* current_age (§4.2.3): initial age plus the time spent in the cache; a clock
 * that went backwards adds nothing. Saturates at CC_DELTA_MAX. */
int64_t fresh_current_age(int64_t initial_age, int64_t stored_at, int64_t now);

/* What the cache stage does with a stored response, given the request's
 * directives (cc_from_request(); NULL for none). */
enum fresh_state {
	FRESH_OK,               /* serve it (fresh, or within the client's max-stale) */
	FRESH_STALE_SWR,        /* serve it and revalidate in the background */
	FRESH_STALE_SIE,        /* revalidate now; if that fails with an error (5xx,
	                         * no connection) the stored response may be served */
	FRESH_STALE_REVALIDATE, /* revalidate now; errors go to the client */
};

/* Rules: the stored response is fresh while current_age < lifetime. The
 * request's max-age (age must be <= it) and min-fresh (remaining lifetime
 * must be >= it) can reject a fresh copy; request no-cache or a stored
 * no_cache always revalidates. max-stale accepts a copy stale by no more than
 * its value unless must_revalidate. Then the swr window, then the sie window,
 * both counted from the end of the lifetime. A copy rejected only by the
 * request's max-age or min-fresh is still fresh, so it may serve an error. */
enum fresh_state fresh_state(const struct fresh_stored *st, const struct cc_directives *req_cc,
                             int64_t now);

/* A degradation tier's stretch-ttl: <st>'s freshness lifetime times
 * <factor> (below 1 counts as 1), saturating at CC_DELTA_MAX so that
 * fresh_state() stays in range. Only for judging a stored copy at lookup:
 * what is stored keeps its real lifetime. The stale windows still count
 * from the end of the (stretched) lifetime. */
void fresh_stretch(struct fresh_stored *st, uint64_t factor);

/* ---- Vary (§4.1) ------------------------------------------------------- */

enum vary_kind {
	VARY_NONE,     /* no Vary field, or only empty ones */
	VARY_LIST,     /* names written to the caller's buffer */
	VARY_STAR,     /* Vary: * or a member that is not a field name: never matches */
	VARY_TOO_LONG, /* the names do not fit the buffer */
};

/* Collects the field names of every Vary line of <resp>, lowercased, sorted,
 * without duplicates, joined by ',' into <out> (NUL-terminated), so that two
 * responses naming the same fields in another order agree. *len gets the
 * length (0 unless VARY_LIST). */
enum vary_kind vary_names(const struct lv_head *resp, char *out, size_t cap, size_t *len);

/* The secondary key built from a request's values for these names:
 * vary_secondary_key() in cache/vary.h. */

/* ---- conditional requests (RFC 9110 §13, RFC 9111 §4.3.2) -------------- */

/* Whether the stored response, with entity tag <etag> (as sent, quotes
 * included; empty for none) and <last_modified> (-1 for none; the caller
 * passes the stored Date instead, §4.3.2: cond_date_for()), lets the cache
 * answer <req> with 304.
 * If-None-Match (weak comparison, `*`, lists) takes precedence; only without
 * it is If-Modified-Since compared. Only GET and HEAD qualify. */
bool cond_not_modified(const struct lv_head *req, const char *etag, size_t etag_len,
                       int64_t last_modified);
/* What a stored response's If-Modified-Since is compared with (RFC 9111
 * §4.3.2): its Last-Modified, else its Date (<date>: -1 when it has none,
 * then <response_time>, when it was received and so the Date levee would
 * have given it). */
static inline int64_t cond_date_for(int64_t last_modified, int64_t date, int64_t response_time)
{
	return last_modified >= 0 ? last_modified : date >= 0 ? date : response_time;
}
/* Any of If-None-Match, If-Modified-Since, If-Match, If-Unmodified-Since,
 * If-Range. */
bool cond_has_conditionals(const struct lv_head *req);
/* The same but If-Range, which only chooses between a range and the whole
 * and never makes a 304: the conditionals whose answer is the client's. */
bool cond_has_preconditions(const struct lv_head *req);

#endif
