/*
 * fallback_stage.c - a route's `fallback` chain as a stage of the request
 * path.
 *
 *   run    nothing: the stage is there for its hook;
 *   fail   levee is about to answer with its own error. When the reason is
 *          a fallback cause (reason.h: an open breaker, a bulkhead's
 *          refusal, an upstream that timed out or could not be reached)
 *          the route's chain is tried in order:
 *            stale   the cache answers from the copy it found, however
 *                    stale (cache_fallback_stale()); when it has none,
 *                    the next kind is tried;
 *            static  levee's refusal becomes the route's answer:
 *                    fallback_status, fallback_content_type, the body;
 *            status  levee's refusal as refusal_status (503 or 429);
 *          each with X-Levee-Reason `CAUSE[; DETAIL]; fallback=KIND`,
 *          counted in levee_fallbacks_total{route,cause,kind} and named in
 *          the access log. `static` and `status` amend the refusal the
 *          request path writes (struct refusal), so levee's own answers
 *          are written in one place, with Retry-After on a 503 or 429.
 *
 * The stage sits right after the route, before the cache: fail hooks run
 * last stage first, so the cache's own stale-if-error (what the origin or
 * the route's stale_if_error allow) has its say before the fallbacks, and
 * the fallbacks have the last word before levee's own error. The request's
 * outcome is left as it was: a breaker still counts the upstream's failure.
 */
#include <string.h>

#include "cache/cache.h"
#include "net/request.h"
#include "resilience/fallback.h"
#include "resilience/fallback_stage.h"
#include "stats.h"

/* The stage's own state in each request (request_state()): the marking of
 * its answer, which must last until the answer is written. */
struct fb_req {
	char detail[LV_NAME_MAX + 64]; /* X-Levee-Reason parameters */
	char mark[LV_NAME_MAX + 128];  /* "X-Levee-Reason: ...\r\n", for a stored answer */
};

static struct fb_req *FB(struct request *r)
{
	return request_state(r, &fallback_stage_def);
}

static int fb_run(struct request *r)
{
	return STAGE_NEXT;
}

struct fb_stale {
	struct request *r;
	enum lv_reason reason;
	const char *detail; /* the refusal's own */
};

/* The chain's `stale` step. The request ends when it answers. */
static bool fb_stale(void *arg)
{
	struct fb_stale *a = arg;
	struct request *r = a->r;
	struct fb_req *s = FB(r);
	fallback_detail(s->detail, sizeof(s->detail), a->detail, LV_FB_STALE);
	snprintf(s->mark, sizeof(s->mark), "X-Levee-Reason: %s; %s\r\n", lv_reasons[a->reason].token, s->detail);
	r->fallback = lv_fallback_kind_names[LV_FB_STALE]; /* logged at the request's end, inside the call */
	if (cache_fallback_stale(r, r->route->stale_fallback_max_ms, s->mark))
		return true;
	r->fallback = NULL;
	return false;
}

static bool fb_fail(struct request *r, enum lv_reason reason, struct refusal *rf)
{
	const struct lv_route *rt = r->route;
	int cause = reason_fallback_cause(reason);
	if (!rt || !rt->fallback.n || cause < 0)
		return false;
	/* a stale answer ends the request: what is counted is read first */
	struct lv_stats *st = r->w->stats;
	unsigned route_stat = r->route_stat;
	struct fb_stale a = {r, reason, rf->detail};
	struct fallback_try t = {fb_stale, &a};
	enum lv_fallback_kind k = fallback_choose(&rt->fallback, reason, &t);
	if (k == LV_FB__COUNT)
		return false;
	stats_record_fallback(st, route_stat, cause, k);
	if (k == LV_FB_STALE)
		return true;
	struct fb_req *s = FB(r);
	r->fallback = lv_fallback_kind_names[k];
	fallback_detail(s->detail, sizeof(s->detail), rf->detail, k);
	rf->detail = s->detail;
	if (k == LV_FB_STATUS) {
		rf->status = rt->refusal_status == LV_REFUSE_429 ? 429 : 503;
		return false;
	}
	rf->status = (int)rt->fallback_status;
	rf->content_type = rt->fallback_content_type;
	rf->body = rt->fallback_file_data ? rt->fallback_file_data : rt->fallback_body;
	rf->body_len = rt->fallback_file_data ? rt->fallback_file_len : strlen(rt->fallback_body);
	return false;
}

const struct stage fallback_stage_def = {
    .name = "fallback",
    .state_size = sizeof(struct fb_req),
    .run = fb_run,
    .fail = fb_fail,
};
