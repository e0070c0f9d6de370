/*
 * bulkhead_stage.c - the bulkhead as a stage of the request path.
 *
 *   run    a route with `bulkhead = NAME` takes a slot of that bulkhead
 *          before its upstream exchange, or waits in its queue (the
 *          request's timer bounds the wait), or is refused at once;
 *   end    the request is over for its client while its exchange still
 *          runs (levee timed out, the client left): the slot stays held and
 *          the exchange is kept, so the late answer is drained, up to
 *          abandon_after;
 *   done   the exchange really ended: the slot goes back, with the time it
 *          was held as a latency sample when the exchange tells of the
 *          service (sample_of below; max_concurrent = auto feeds on it);
 *   client_gone
 *          the client left while its grant is on the way: the request
 *          ends when the grant arrives.
 *
 * Ownership: the request, its timer and its wake-up item belong to its
 * worker. The waiter inside it is shared with the bulkhead's queue, under
 * the bulkhead's mutex. A grant arrives from whichever thread freed the
 * slot, as a post to the owner's mailbox; the wake-up item is the request's
 * own, so the post allocates nothing.
 */
#include <stdio.h>

#include "net/conn.h"
#include "net/request.h"
#include "resilience/bulkhead.h"
#include "resilience/bulkhead_stage.h"

/* The stage's own state in each request (request_state()). */
struct bh_req {
	struct bulkhead *b;   /* the bulkhead it queued in or holds a slot of */
	struct bh_waiter wait; /* its place in that bulkhead's queue, and its state */
	struct mb_item wake;  /* the grant of a slot, posted to the request's worker */
	uint64_t held_us;     /* when it took its slot */
	bool by_deadline;     /* its wait in the queue ends at its deadline, before queue_timeout */
};

static struct bh_req *BH(struct request *r)
{
	return request_state(r, &bulkhead_stage_def);
}

static struct bulkhead *route_bulkhead(const struct request *r)
{
	if (!r->route || r->route->bulkhead_idx < 0)
		return NULL;
	return r->rt->bulkheads[r->route->bulkhead_idx];
}

static void bh_refuse(struct request *r, enum lv_reason reason)
{
	const struct lv_bulkhead *cfg = &r->rt->policy->bulkheads[r->route->bulkhead_idx];
	char detail[LV_NAME_MAX + 16];
	snprintf(detail, sizeof(detail), "bulkhead=%s", cfg->name);
	struct refusal rf = {
	    .status = r->route->refusal_status == LV_REFUSE_429 ? 429 : 0,
	    .retry_after = (unsigned)((cfg->retry_after_ms + 999) / 1000),
	    .detail = detail,
	};
	request_refuse(r, reason, &rf);
}

/* The request has its slot: on with the exchange, here or on one of the
 * bulkhead's threads (the connection goes with it; conn_handoff). */
static int bh_go(struct request *r)
{
	struct worker *to = BH(r)->wait.loop;
	if (!to || !r->conn)
		return STAGE_NEXT;
	request_timer_stop(r);
	conn_handoff(r->conn, to);
	return STAGE_ASYNC;
}

/* On the owner: the slot this request waited for is its own now. */
static void bh_wake(struct mb_item *it)
{
	struct bh_req *bh = mb_container(it, struct bh_req, wake);
	struct request *r = request_of_state(bh, &bulkhead_stage_def);
	bulkhead_take(bh->b, &bh->wait);
	bh->held_us = now_us();
	request_timer_stop(r);
	if ((!r->conn && !r->background) || r->w->closing) {
		/* it left while the grant was on its way, or levee is stopping
		 * (this runs from the mailbox's close): end it, upstream unasked */
		request_client_gone(r);
		return;
	}
	if (bh_go(r) == STAGE_NEXT)
		request_resume(r);
}

/* On the thread that freed the slot. */
static bool bh_granted(struct bh_waiter *wt)
{
	struct bh_req *bh = mb_container(wt, struct bh_req, wait);
	struct request *r = request_of_state(bh, &bulkhead_stage_def);
	return mailbox_post(&r->w->mbox, &bh->wake, bh_wake) == LV_OK;
}

/* The wait in the queue ended: queue_timeout, or the request's deadline
 * when that came first. Off the queue first, under the bulkhead's lock;
 * only then may the request end. */
static void bh_queue_timeout(struct request *r)
{
	bool spent = BH(r)->by_deadline;
	if (!bulkhead_cancel(BH(r)->b, &BH(r)->wait, !spent, now_us()))
		return; /* the grant is on its way: bh_wake runs next (and the upstream stage sees the deadline) */
	if (spent)
		request_deadline_passed(r);
	else
		bh_refuse(r, R_BULKHEAD_TIMEOUT);
}

static int bh_run(struct request *r)
{
	struct bulkhead *b = route_bulkhead(r);
	if (!b)
		return STAGE_NEXT;
	if (r->deadline_us && !request_budget_ms(r)) {
		request_deadline_passed(r); /* spent: no slot, no queue */
		return STAGE_DONE;
	}
	struct bh_req *bh = BH(r);
	bh->b = b;
	bh->wait.granted = bh_granted;
	/* a background refresh (its client answered from a stale copy) has no
	 * connection to hand over: it runs where it is, in its slot */
	bh->wait.movable = r->conn != NULL;
	bh->wait.critical = r->route->priority == LV_PRIO_CRITICAL;
	switch (bulkhead_acquire(b, &bh->wait, now_us())) {
	case BH_ACQUIRED:
		bh->held_us = now_us();
		return bh_go(r);
	case BH_WAITING: {
		uint64_t ms = r->rt->policy->bulkheads[r->route->bulkhead_idx].queue_timeout_ms;
		uint64_t left = request_budget_ms(r);
		bh->by_deadline = left < ms;
		request_timer_arm(r, bh->by_deadline ? left : ms, bh_queue_timeout);
		return STAGE_ASYNC;
	}
	case BH_FULL:
		bh_refuse(r, R_BULKHEAD_FULL);
		return STAGE_DONE;
	case BH_CLOSED:
		request_refuse(r, R_DRAINING, NULL);
		return STAGE_DONE;
	}
	return STAGE_DONE;
}

/* The client left: false while a grant is on its way to the request (it
 * ends when the grant arrives), true when it may end now. */
static bool bh_client_gone(struct request *r)
{
	if (!BH(r)->b)
		return true; /* the route has no bulkhead */
	/* under the bulkhead's lock: a grant may be setting the state on
	 * another thread right now. A request holding its slot may end (the
	 * slot goes back in bh_done, or stays with a kept exchange). */
	return bulkhead_cancel(BH(r)->b, &BH(r)->wait, false, now_us());
}

static bool bh_end(struct request *r)
{
	struct bh_req *bh = BH(r);
	if (bh->wait.state != BH_HOLDING || r->w->closing || !request_exchange_live(r))
		return false;
	uint64_t ms = r->rt->policy->bulkheads[r->route->bulkhead_idx].abandon_after_ms;
	if (!ms)
		return false;
	r->abandon_ms = ms;
	bulkhead_note_drain(bh->b, BH_DRAIN_BEGIN);
	return true;
}

/* Whether the time a slot was held is a sample of the service's latency:
 * the exchange reached the service and ended there, answered or failed
 * (a timeout is a long sample, the very signal of a slow service). Not one:
 * no connection (the service never saw it), an exchange cut when its
 * client left (it ended early, a short sample the service did not give),
 * anything that never went upstream. A kept exchange ended at the service's
 * own pace, however its client fared. */
static bool sample_of(const struct request *r)
{
	if (r->kept != KEPT_NO)
		return r->kept != KEPT_RUNNING;
	switch (r->outcome) {
	case OUT_UPSTREAM:
	case OUT_UP_TIMEOUT:
	case OUT_DEADLINE: /* the service did not answer within the request's budget */
	case OUT_UP_RESET:
	case OUT_UP_TRUNCATED:
	case OUT_UP_BAD:
		return true;
	default:
		return false;
	}
}

static void bh_done(struct request *r)
{
	struct bh_req *bh = BH(r);
	struct bulkhead *b = bh->b;
	if (!b)
		return;
	if (r->kept != KEPT_NO) {
		static const enum bh_drain how[] = {
		    [KEPT_RUNNING] = BH_DRAIN_CLOSED, /* cannot be: the final end is after the exchange's */
		    [KEPT_COMPLETE] = BH_DRAIN_COMPLETE,
		    [KEPT_CLOSED] = BH_DRAIN_CLOSED,
		    [KEPT_ABANDONED] = BH_DRAIN_ABANDONED,
		};
		bulkhead_note_drain(b, how[r->kept]);
	}
	if (bh->wait.state == BH_HOLDING) {
		uint64_t now = now_us();
		if (sample_of(r))
			bulkhead_release_sample(b, now, now > bh->held_us ? now - bh->held_us : 0);
		else
			bulkhead_release(b, now);
	}
	/* never so today: every end of a queued request takes it off the queue
	 * first (bh_queue_timeout, bh_client_gone); if a path ever forgets,
	 * the waiter must not stay linked in memory that is about to go */
	if (bh->wait.state == BH_QUEUED)
		bulkhead_cancel(b, &bh->wait, false, now_us());
	bh->wait.state = BH_NONE;
	bh->b = NULL;
}

const struct stage bulkhead_stage_def = {
    .name = "bulkhead",
    .state_size = sizeof(struct bh_req),
    .run = bh_run,
    .end = bh_end,
    .done = bh_done,
    .client_gone = bh_client_gone,
};
