/*
 * outcome.h - how a request ended, one value per request, declared once.
 *
 * Recorded once per request (net/request.h: request_outcome()), read by every
 * stage's end hook, the access log and the metrics. A breaker counts the
 * upstream failures; levee's own refusals, cache answers and clients that
 * left count neither way.
 */
#ifndef LEVEE_OUTCOME_H
#define LEVEE_OUTCOME_H

#include <stdbool.h>

/* X(enum, token): how a request ended, as the access log and the metrics
 * name it. The upstream ones mean the upstream was asked; a stale answer
 * served because the upstream failed keeps the upstream's failure. */
#define REQUEST_OUTCOMES(X)                                                                         \
	X(OUT_NONE, "none")                                                                        \
	X(OUT_UPSTREAM, "upstream")             /* a complete response; r->up_status has its status */ \
	X(OUT_UP_CONNECT, "upstream-connect")   /* no connection */                                 \
	X(OUT_UP_TIMEOUT, "upstream-timeout")   /* no answer, or it stalled, in time */             \
	X(OUT_UP_RESET, "upstream-reset")       /* closed or reset before the response head */       \
	X(OUT_UP_TRUNCATED, "upstream-truncated") /* cut in the middle of the body */               \
	X(OUT_UP_BAD, "upstream-bad")           /* an unparseable or refused response */             \
	X(OUT_CACHE, "cache")                   /* answered from the cache, upstream not asked */    \
	X(OUT_REFUSED, "refused")               /* levee's own refusal: a limit, a bulkhead... */     \
	X(OUT_CLIENT_GONE, "client-gone")       /* the client left first */                          \
	X(OUT_DEADLINE, "deadline")             /* the request's own deadline passed first */         \
	X(OUT_CLIENT_BAD, "client-bad")         /* a bad, too large or too slow request */            \
	X(OUT_INTERNAL, "internal")

enum request_outcome {
#define REQ_OUT_ENUM(e, tok) e,
	REQUEST_OUTCOMES(REQ_OUT_ENUM)
#undef REQ_OUT_ENUM
	OUT__COUNT
};
extern const char *const request_outcome_names[OUT__COUNT];

/* The outcome of levee's own answer for `reason` (an enum lv_reason):
 * OUT_NONE for R_NONE. Every reason maps to exactly one outcome; a new
 * reason that is not listed fails to compile with -Wswitch. */
enum request_outcome outcome_of_reason(int reason);

/* True for the outcomes that say the upstream failed (a 5xx status is for
 * the reader to judge from r->up_status). */
static inline bool outcome_upstream_failed(enum request_outcome o)
{
	return o >= OUT_UP_CONNECT && o <= OUT_UP_BAD;
}

#endif
