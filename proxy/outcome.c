/*
 * outcome.c - the names of the request outcomes (outcome.h).
 */
#include "outcome.h"

#include "reason.h"

const char *const request_outcome_names[OUT__COUNT] = {
#define REQ_OUT_NAME(e, tok) [e] = tok,
    REQUEST_OUTCOMES(REQ_OUT_NAME)
#undef REQ_OUT_NAME
};

enum request_outcome outcome_of_reason(int reason)
{
	switch ((enum lv_reason)reason) {
	case R_NONE:
		return OUT_NONE;
	case R_UP_CONNECT:
		return OUT_UP_CONNECT;
	case R_UP_BAD:
		return OUT_UP_BAD;
	case R_UP_TIMEOUT:
		return OUT_UP_TIMEOUT;
	case R_INTERNAL:
		return OUT_INTERNAL;
	case R_DEADLINE:
		return OUT_DEADLINE;
	case R_MAXCONN:
	case R_DRAINING:
	case R_NOT_CACHED:
	case R_BULKHEAD_FULL:
	case R_BULKHEAD_TIMEOUT:
	case R_BREAKER_OPEN:
	case R_TIER_SHED:
	case R_TIER_CACHE_ONLY:
	case R_LOOP:
		return OUT_REFUSED;
	case R_BAD_REQUEST:
	case R_METHOD:
	case R_HEADER_TIMEOUT:
	case R_BODY_TIMEOUT:
	case R_BODY_TOO_LARGE:
	case R_URI_TOO_LONG:
	case R_EXPECTATION:
	case R_HEADERS_TOO_LARGE:
	case R_TE:
	case R_METHOD_UNKNOWN:
	case R_VERSION:
	case R__COUNT:
		break;
	}
	return OUT_CLIENT_BAD;
}
