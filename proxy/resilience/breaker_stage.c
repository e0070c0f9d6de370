/*
 * breaker_stage.c - the circuit breaker as a stage of the request path.
 *
 *   run    a route with `breaker = NAME` asks that breaker: a closed one
 *          lets the request on, a half-open one lets it on as a probe or
 *          turns it away, an open one turns it away at once, without the
 *          upstream (a 503, or the route's refusal_status, with Retry-After
 *          and X-Levee-Reason `breaker-open; breaker=NAME`);
 *   end    the outcome is final: the breaker counts it. An upstream answer
 *          is judged by the breaker's failure_statuses, an exchange that
 *          failed by its failure_on; levee's own refusals (a bulkhead
 *          after this stage), cache answers and clients that left count
 *          neither way, and a probe that ends so gives its place back;
 *   done   a request that entered the stage but never reached `end` (it
 *          cannot happen today; the hook keeps a probe from being lost
 *          if it ever does) is counted as neither.
 *
 * The stage runs after the cache (a hit never asks the breaker) and before
 * the bulkhead (an open breaker answers before the request waits for a
 * slot it would not use). Latency, for slow_call, runs from the request
 * going upstream to the end of its response.
 */
#include <stdio.h>

#include "net/request.h"
#include "resilience/breaker.h"
#include "resilience/breaker_stage.h"

/* The stage's own state in each request (request_state()). */
struct brk_req {
	struct breaker *b;   /* the breaker that admitted it; NULL: none */
	int seen;            /* enum brk_state + 1 at admission, for the log; 0: not asked */
	struct brk_ticket t; /* what the admission said */
	bool pending;        /* admitted, its outcome not counted yet */
};

static struct brk_req *BRK(struct request *r)
{
	return request_state(r, &breaker_stage_def);
}

static void brk_refuse(struct request *r, struct breaker *b, uint64_t now_ms)
{
	struct breaker_stats st;
	breaker_stats(b, now_ms, &st);
	char detail[LV_NAME_MAX + 16];
	snprintf(detail, sizeof(detail), "breaker=%s", b->named.name);
	/* open: when it will probe; half-open or ramping: soon */
	uint64_t left_ms = st.open_left_ms > st.forced_left_ms ? st.open_left_ms : st.forced_left_ms;
	uint64_t left_s = (left_ms + 999) / 1000;
	struct refusal rf = {
	    .status = r->route->refusal_status == LV_REFUSE_429 ? 429 : 0,
	    .retry_after = left_s ? (unsigned)left_s : 1,
	    .detail = detail,
	};
	request_refuse(r, R_BREAKER_OPEN, &rf);
}

static int brk_run(struct request *r)
{
	if (!r->route || r->route->breaker_idx < 0)
		return STAGE_NEXT;
	struct breaker *b = r->rt->breakers[r->route->breaker_idx];
	uint64_t now_ms = now_us() / 1000;
	struct brk_req *s = BRK(r);
	enum brk_admit a = breaker_admit(b, now_ms, &s->t);
	/* refused: open, whether by its window or by hand (forced) */
	s->seen = 1 + (a == BRK_REJECT ? BRK_OPEN : s->t.state);
	if (a == BRK_REJECT) {
		brk_refuse(r, b, now_ms);
		return STAGE_DONE;
	}
	s->b = b;
	s->pending = true;
	return STAGE_NEXT;
}

/* How the request's outcome counts for the breaker's policy `cfg`. */
static enum brk_result brk_judge(const struct request *r, const struct lv_breaker *cfg)
{
	switch (r->outcome) {
	case OUT_UPSTREAM:
		return breaker_judge(cfg, 0, (unsigned)r->up_status);
	case OUT_UP_CONNECT:
		return breaker_judge(cfg, LV_BF_CONNECT, 0);
	case OUT_UP_TIMEOUT:
		return breaker_judge(cfg, LV_BF_TIMEOUT, 0);
	case OUT_UP_RESET:
		return breaker_judge(cfg, LV_BF_RESET, 0);
	case OUT_UP_TRUNCATED:
		return breaker_judge(cfg, LV_BF_TRUNCATED, 0);
	case OUT_UP_BAD:
		return breaker_judge(cfg, LV_BF_BAD, 0);
	case OUT_DEADLINE:
		/* the caller's budget ran out: a failure only where the policy
		 * says so, else it counts neither way (not as a success) */
		return cfg->failure_on & LV_BF_DEADLINE ? BRK_FAIL : BRK_IGNORE;
	case OUT_NONE:
	case OUT_CACHE:
	case OUT_REFUSED:
	case OUT_CLIENT_GONE:
	case OUT_CLIENT_BAD:
	case OUT_INTERNAL:
	case OUT__COUNT:
		break;
	}
	return BRK_IGNORE;
}

static void brk_count(struct request *r, enum brk_result res)
{
	struct brk_req *s = BRK(r);
	if (!s->pending)
		return;
	s->pending = false;
	uint64_t now = now_us();
	uint64_t latency_ms = r->t_upstream && now > r->t_upstream ? (now - r->t_upstream) / 1000 : 0;
	breaker_record(s->b, &s->t, res, latency_ms, now / 1000);
}

static bool brk_end(struct request *r)
{
	struct brk_req *s = BRK(r);
	if (s->pending)
		brk_count(r, brk_judge(r, &r->rt->policy->breakers[r->route->breaker_idx]));
	return false;
}

static void brk_done(struct request *r)
{
	brk_count(r, BRK_IGNORE);
}

/* The breaker's state as this request found it: closed, open (refused),
 * half_open (a probe) or ramp. */
static void brk_log(struct request *r, struct alog_entry *e)
{
	struct brk_req *s = BRK(r);
	if (s->seen)
		alog_set_cstr(e, LV_AF_BREAKER_STATE, breaker_state_names[s->seen - 1]);
}

const struct stage breaker_stage_def = {
    .name = "breaker",
    .log = brk_log,
    .state_size = sizeof(struct brk_req),
    .run = brk_run,
    .end = brk_end,
    .done = brk_done,
};
