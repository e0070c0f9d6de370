/*
 * redis_watch.c - one process-wide view of its Redis connections, logged
 * once per change and rate-limited (see redis_watch.h).
 *
 * Invariants, under w->lock:
 *  - w->ready and w->open count the joined members whose flags say so.
 *  - w->held > 0 exactly when some line was held back and its summary is
 *    still owed; w->flush_at is then when it is due.
 */
#include "cache/redis_watch.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

const char *const redis_watch_state_names[3] = {[RW_STARTING] = "starting", [RW_UP] = "up", [RW_DOWN] = "down"};

#define RW_ADDR_MAX (LV_HOST_MAX * 2 + 16)
#define RW_WHY_MAX 256

/* The kinds of line the rate limit counts separately. RWK_FIRST is never
 * held: it is the first connection's outcome (connected, cannot connect,
 * connected after all), each at most once in the process's life. */
enum rw_kind { RWK_DOWN, RWK_UP, RWK_OPEN, RWK_CLOSED, RWK_MASTER, RWK_FIRST, RWK_COUNT };

struct redis_watch {
	pthread_mutex_t lock;
	uint64_t window_ms, remind_ms;
	redis_watch_sink sink;
	void *sink_arg;

	unsigned members, ready, open;
	bool ever_up;
	uint64_t down_since_ms, down_attempts;
	uint64_t remind_at_ms; /* while DOWN: when the next "still not connected" is due */
	char addr[RW_ADDR_MAX];   /* the server the last event named */
	char master[RW_ADDR_MAX]; /* as Sentinel last named it; "" in direct mode */
	char why[RW_WHY_MAX];     /* the last failure, while DOWN */

	bool wrote[RWK_COUNT];
	uint64_t last_line_ms[RWK_COUNT];
	unsigned held;
	uint64_t flush_at;

	struct redis_watch_stats st;
};

static void redis_watch_log_sink(void *arg, enum lv_log_level level, const char *line)
{
	log_msg(level, "%s", line);
}

struct redis_watch *redis_watch_new(uint64_t window_ms, uint64_t remind_ms, redis_watch_sink sink,
                                    void *arg)
{
	struct redis_watch *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	pthread_mutex_init(&w->lock, NULL);
	w->window_ms = window_ms;
	w->remind_ms = remind_ms > window_ms ? remind_ms : window_ms;
	w->sink = sink ? sink : redis_watch_log_sink;
	w->sink_arg = arg;
	w->st.state = RW_STARTING;
	return w;
}

void redis_watch_free(struct redis_watch *w)
{
	if (!w)
		return;
	pthread_mutex_destroy(&w->lock);
	free(w);
}

static struct redis_watch *redis_watch_the_process;
static pthread_once_t redis_watch_once = PTHREAD_ONCE_INIT;

static void redis_watch_process_init(void)
{
	redis_watch_the_process = redis_watch_new(10000, 60000, NULL, NULL);
}

struct redis_watch *redis_watch_process(void)
{
	pthread_once(&redis_watch_once, redis_watch_process_init);
	return redis_watch_the_process;
}

static void redis_watch_copy(char *dst, size_t cap, const char *src)
{
	snprintf(dst, cap, "%s", src ? src : "");
}

/* Writes one line of <kind>, or holds it back if that kind already wrote
 * one within the window. Returns when a summary is due (0: none owed). */
static uint64_t redis_watch_line(struct redis_watch *w, enum rw_kind kind, enum lv_log_level level,
                                 uint64_t now, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static uint64_t redis_watch_line(struct redis_watch *w, enum rw_kind kind, enum lv_log_level level,
                                 uint64_t now, const char *fmt, ...)
{
	if (kind != RWK_FIRST && w->wrote[kind] && now - w->last_line_ms[kind] < w->window_ms) {
		uint64_t due = w->last_line_ms[kind] + w->window_ms;
		if (!w->held || due < w->flush_at)
			w->flush_at = due;
		w->held++;
		w->st.lines_held++;
		return w->flush_at;
	}
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	w->wrote[kind] = true;
	w->last_line_ms[kind] = now;
	w->sink(w->sink_arg, level, line);
	return w->held ? w->flush_at : 0;
}

static double redis_watch_secs(uint64_t from, uint64_t to)
{
	return to > from ? (double)(to - from) / 1000.0 : 0.0;
}

/* The process's Redis state in words, for the summary line. */
static void redis_watch_describe(const struct redis_watch *w, uint64_t now, char *out, size_t cap)
{
	int n;
	if (w->st.state == RW_UP)
		n = snprintf(out, cap, "connected to %s, %u of %u connections ready", w->addr, w->ready,
		             w->members);
	else if (w->st.state == RW_DOWN)
		n = snprintf(out, cap, "not connected to %s (%s) for %.1f s, %u of %u connections ready",
		             w->addr, w->why, redis_watch_secs(w->down_since_ms, now), w->ready, w->members);
	else
		n = snprintf(out, cap, "connecting to %s", w->addr);
	if (n > 0 && (size_t)n < cap && w->open)
		snprintf(out + n, cap - (size_t)n, ", breaker open on %u", w->open);
}

static uint64_t redis_watch_went_down(struct redis_watch *w, const struct redis_watch_event *ev)
{
	bool lost = w->st.state == RW_UP && ev->what == RW_LOST;
	w->st.state = RW_DOWN;
	w->down_since_ms = ev->now_ms;
	w->down_attempts = 0;
	w->remind_at_ms = ev->now_ms + w->remind_ms;
	if (lost)
		return redis_watch_line(w, RWK_DOWN, LV_LOG_WARN, ev->now_ms,
		                        "redis: lost the connection to %s (%s); requests pass through "
		                        "without Redis until it is back",
		                        w->addr, w->why);
	return redis_watch_line(w, w->ever_up ? RWK_DOWN : RWK_FIRST, LV_LOG_WARN, ev->now_ms,
	                        "redis: cannot connect to %s (%s); serving without Redis (requests "
	                        "pass through) and retrying",
	                        w->addr, w->why);
}

/* A failure or a loss: the member's flags, the counters, then the process. */
static uint64_t redis_watch_failure(struct redis_watch *w, struct redis_watch_member *m,
                                    const struct redis_watch_event *ev)
{
	if (ev->what == RW_LOST)
		w->st.losses++;
	else if (ev->fail == RW_FAIL_RESOLVE)
		w->st.resolve_errors++;
	else
		w->st.connect_errors++;
	w->st.connect_timeouts += ev->what == RW_FAILED && ev->fail == RW_FAIL_TIMEOUT;
	if (m->ready) {
		m->ready = false;
		w->ready--;
	}
	m->retrying = true;
	redis_watch_copy(w->addr, sizeof(w->addr), ev->addr);
	redis_watch_copy(w->why, sizeof(w->why), ev->why);
	if (w->st.state != RW_DOWN)
		return redis_watch_went_down(w, ev);
	if (ev->now_ms < w->remind_at_ms)
		return w->held ? w->flush_at : 0;
	w->remind_at_ms = ev->now_ms + w->remind_ms;
	return redis_watch_line(w, RWK_DOWN, LV_LOG_WARN, ev->now_ms,
	                        "redis: still not connected to %s (%s): %llu attempts in %.0f s, %u of "
	                        "%u connections ready",
	                        w->addr, w->why, (unsigned long long)w->down_attempts,
	                        redis_watch_secs(w->down_since_ms, ev->now_ms), w->ready, w->members);
}

static uint64_t redis_watch_ready(struct redis_watch *w, struct redis_watch_member *m,
                                  const struct redis_watch_event *ev)
{
	if (!m->ready) {
		m->ready = true;
		w->ready++;
	}
	w->st.reconnects += m->retrying;
	m->retrying = false;
	redis_watch_copy(w->addr, sizeof(w->addr), ev->addr);
	if (w->st.state == RW_UP || w->ready < w->members)
		return w->held ? w->flush_at : 0;
	bool was_down = w->st.state == RW_DOWN, again = w->ever_up;
	w->st.state = RW_UP;
	w->ever_up = true;
	if (!was_down)
		return redis_watch_line(w, RWK_FIRST, LV_LOG_INFO, ev->now_ms,
		                        "redis: connected to %s (%u connection%s)", w->addr, w->members,
		                        w->members == 1 ? "" : "s");
	return redis_watch_line(w, again ? RWK_UP : RWK_FIRST, LV_LOG_INFO, ev->now_ms,
	                        "redis: %s to %s after %llu attempts, %.1f s after the first failure",
	                        again ? "reconnected" : "connected", w->addr,
	                        (unsigned long long)w->down_attempts,
	                        redis_watch_secs(w->down_since_ms, ev->now_ms));
}

static uint64_t redis_watch_breaker(struct redis_watch *w, struct redis_watch_member *m,
                                    const struct redis_watch_event *ev)
{
	bool open = ev->what == RW_BREAKER_OPEN;
	if (m->breaker_open == open)
		return w->held ? w->flush_at : 0;
	m->breaker_open = open;
	if (open) {
		w->st.breaker_opens++;
		if (++w->open == 1)
			return redis_watch_line(w, RWK_OPEN, LV_LOG_WARN, ev->now_ms,
			                        "redis: breaker open (%s); Redis is skipped, then probed",
			                        ev->why ? ev->why : "failures");
	} else if (--w->open == 0) {
		return redis_watch_line(w, RWK_CLOSED, LV_LOG_INFO, ev->now_ms,
		                        "redis: breaker closed, Redis answers again");
	}
	return w->held ? w->flush_at : 0;
}

static uint64_t redis_watch_master(struct redis_watch *w, const struct redis_watch_event *ev)
{
	if (!w->master[0] || strcmp(w->master, ev->addr) == 0) {
		redis_watch_copy(w->master, sizeof(w->master), ev->addr);
		return w->held ? w->flush_at : 0;
	}
	char old[RW_ADDR_MAX];
	memcpy(old, w->master, sizeof(old));
	redis_watch_copy(w->master, sizeof(w->master), ev->addr);
	w->st.failovers++;
	return redis_watch_line(w, RWK_MASTER, LV_LOG_WARN, ev->now_ms,
	                        "redis: the master moved from %s to %s (Sentinel failover)", old,
	                        w->master);
}

void redis_watch_join(struct redis_watch *w, struct redis_watch_member *m)
{
	pthread_mutex_lock(&w->lock);
	if (!m->joined) {
		m->joined = true;
		w->members++;
	}
	pthread_mutex_unlock(&w->lock);
}

void redis_watch_leave(struct redis_watch *w, struct redis_watch_member *m)
{
	pthread_mutex_lock(&w->lock);
	if (m->joined) {
		w->ready -= m->ready;
		w->open -= m->breaker_open;
		w->members--;
		*m = (struct redis_watch_member){0};
	}
	pthread_mutex_unlock(&w->lock);
}

uint64_t redis_watch_report(struct redis_watch *w, struct redis_watch_member *m,
                            const struct redis_watch_event *ev)
{
	uint64_t due = 0;
	pthread_mutex_lock(&w->lock);
	switch (ev->what) {
	case RW_ATTEMPT:
		if (m->retrying) {
			w->st.reconnect_attempts++;
			w->down_attempts++;
		}
		due = w->held ? w->flush_at : 0;
		break;
	case RW_READY:
		due = redis_watch_ready(w, m, ev);
		break;
	case RW_FAILED:
	case RW_LOST:
		due = redis_watch_failure(w, m, ev);
		break;
	case RW_BREAKER_OPEN:
	case RW_BREAKER_CLOSED:
		due = redis_watch_breaker(w, m, ev);
		break;
	case RW_MASTER:
		due = redis_watch_master(w, ev);
		break;
	}
	pthread_mutex_unlock(&w->lock);
	return due;
}

uint64_t redis_watch_flush(struct redis_watch *w, uint64_t now_ms)
{
	pthread_mutex_lock(&w->lock);
	uint64_t due = w->held ? w->flush_at : 0;
	if (due && now_ms >= due) {
		char state[RW_ADDR_MAX + RW_WHY_MAX + 128];
		redis_watch_describe(w, now_ms, state, sizeof(state));
		char line[sizeof(state) + 128];
		snprintf(line, sizeof(line),
		         "redis: %u change%s not logged (one line of a kind per %.0f s at most); now %s",
		         w->held, w->held == 1 ? "" : "s", (double)w->window_ms / 1000.0, state);
		w->held = 0;
		due = 0;
		w->sink(w->sink_arg, w->st.state == RW_UP ? LV_LOG_INFO : LV_LOG_WARN, line);
	}
	pthread_mutex_unlock(&w->lock);
	return due;
}

void redis_watch_stats(struct redis_watch *w, struct redis_watch_stats *out)
{
	pthread_mutex_lock(&w->lock);
	*out = w->st;
	pthread_mutex_unlock(&w->lock);
}
