/*
 * outcome.c - the names of the request outcomes (outcome.h).
 */
#include "outcome.h"

const char *const request_outcome_names[OUT__COUNT] = {
#define REQ_OUT_NAME(e, tok) [e] = tok,
    REQUEST_OUTCOMES(REQ_OUT_NAME)
#undef REQ_OUT_NAME
};
