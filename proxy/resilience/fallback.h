/*
 * fallback.h - a route's fallback chain as pure logic: which kind answers a
 * failure, and how the answer is marked. fallback_stage.c runs it on the
 * request path; the tests run it without one.
 */
#ifndef LEVEE_FALLBACK_H
#define LEVEE_FALLBACK_H

#include <stdbool.h>
#include <stddef.h>

#include "policy.h"
#include "reason.h"

/* What the chain asks of its caller for a `stale` step: answer from a
 * stored copy, true if it did. */
struct fallback_try {
	bool (*stale)(void *arg);
	void *arg;
};

/* Walks <chain> in order for a failure of <reason>. LV_FB__COUNT: nothing
 * answers (the reason is no fallback cause, the chain is empty, or every
 * step passed): levee's own error goes out. LV_FB_STALE: t->stale
 * answered. LV_FB_STATIC, LV_FB_STATUS: the caller amends levee's refusal
 * into that answer. `static` and `status` always answer; `stale` only when
 * a stored copy can. */
enum lv_fallback_kind fallback_choose(const struct lv_fallback_chain *chain, enum lv_reason reason,
                                      const struct fallback_try *t);

/* The X-Levee-Reason parameters of a fallback answer: <detail> (the
 * refusal's own, "breaker=users", or NULL) then "fallback=KIND". Returns
 * false when it does not fit in <size> bytes (then it holds the marking
 * alone, "fallback=KIND"). */
bool fallback_detail(char *buf, size_t size, const char *detail, enum lv_fallback_kind kind);

#endif
