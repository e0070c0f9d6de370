/*
 * redis_watch.h - what the Redis clients of one process tell the operator:
 * one log line per change in the process's Redis health, not one per
 * connection, and the counters of connection events.
 *
 * Every struct redis of a process (one per worker, the main thread's, the
 * invalidate thread's) is a member of one watch and reports its connection
 * events to it. The watch folds them into one state for the process:
 *
 *   STARTING  no member has become ready or failed yet
 *   UP        every member's connection is ready
 *   DOWN      some member's is not, after a failure
 *
 * and logs: connected (STARTING -> UP), cannot connect (STARTING -> DOWN),
 * lost with the reason (UP -> DOWN), reconnected after N attempts and how
 * long (DOWN -> UP), still down (every <remind_ms> while DOWN), the master
 * moving (a Sentinel failover, once per process however many members see
 * it), and the breaker (open when the first member's opens, closed when no
 * member's is open).
 *
 * Rate limit, so that N members times a flapping Redis cannot flood the log:
 * each kind of line (down, up, breaker open, breaker closed, master) is
 * written at most once per <window_ms>. A line that is held back is counted,
 * and when the window ends one summary line gives the count and the state
 * then, so the last line about Redis always tells the truth. A flapping
 * Redis costs at most six lines per window, whatever the number of members.
 * The outcome of the first connection is never held back: it happens once. The watch has no timer: a report that was held back
 * returns when the summary is due, and the member arms its own timer to call
 * redis_watch_flush() then.
 *
 * Thread-safe: members report from their own threads under one mutex, taken
 * on connection events only (never per command). Time is passed in
 * (monotonic milliseconds), so tests drive it.
 */
#ifndef LEVEE_REDIS_WATCH_H
#define LEVEE_REDIS_WATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "policy.h"

/* A member's part, kept inside its struct redis and only touched by the
 * watch, under its lock. Zero-initialised before redis_watch_join(). */
struct redis_watch_member {
	bool joined, ready, breaker_open, retrying;
};

enum redis_watch_what {
	RW_ATTEMPT,        /* a connection attempt begins (resolve, discover or connect) */
	RW_READY,          /* the connection is ready: <addr> is where it went */
	RW_FAILED,         /* an attempt failed: <fail> says how, <why> the reason */
	RW_LOST,           /* a ready connection was lost: <why> */
	RW_BREAKER_OPEN,   /* <why> */
	RW_BREAKER_CLOSED,
	RW_MASTER,         /* Sentinel named the master <addr> */
};

enum redis_watch_fail {
	RW_FAIL_CONNECT, /* refused, reset, handshake refused, no sentinel knew the master */
	RW_FAIL_TIMEOUT, /* no answer within connect_timeout */
	RW_FAIL_RESOLVE, /* the name did not resolve */
};

struct redis_watch_event {
	enum redis_watch_what what;
	enum redis_watch_fail fail; /* RW_FAILED only */
	const char *addr;           /* the server as named ("host:port", and the address it resolved to) */
	const char *why;            /* RW_FAILED, RW_LOST, RW_BREAKER_OPEN; borrowed for the call */
	uint64_t now_ms;            /* monotonic */
};

enum redis_watch_state { RW_STARTING, RW_UP, RW_DOWN };
extern const char *const redis_watch_state_names[3]; /* "starting", "up", "down" */

/* Counters over every member, ever. */
struct redis_watch_stats {
	uint64_t connect_errors;     /* attempts that failed, timed out or not (RW_FAIL_CONNECT, _TIMEOUT) */
	uint64_t connect_timeouts;   /* of which timed out */
	uint64_t resolve_errors;     /* attempts whose name did not resolve */
	uint64_t losses;             /* ready connections lost */
	uint64_t reconnect_attempts; /* attempts after a failure or a loss */
	uint64_t reconnects;         /* of which ended ready */
	uint64_t failovers;          /* master moves, counted once per process */
	uint64_t breaker_opens;      /* members' breakers opening */
	uint64_t lines_held;         /* log lines the rate limit held back */
	enum redis_watch_state state;
};

/* Where lines go: log_msg by default (NULL <sink>). */
typedef void (*redis_watch_sink)(void *arg, enum lv_log_level level, const char *line);

struct redis_watch;

struct redis_watch *redis_watch_new(uint64_t window_ms, uint64_t remind_ms, redis_watch_sink sink,
                                    void *arg);
void redis_watch_free(struct redis_watch *w);

/* The process's one watch (10 s window, a reminder a minute), created on
 * first use, never freed. The three event loops with Redis clients open
 * them through cache_l2_open(), which hands them this. */
struct redis_watch *redis_watch_process(void);

void redis_watch_join(struct redis_watch *w, struct redis_watch_member *m);
/* A member goes away (shutdown): its state stops counting, nothing is logged. */
void redis_watch_leave(struct redis_watch *w, struct redis_watch_member *m);

/* Returns 0, or the monotonic time at which redis_watch_flush() should run
 * because a line was held back. */
uint64_t redis_watch_report(struct redis_watch *w, struct redis_watch_member *m,
                            const struct redis_watch_event *ev) LV_WARN_UNUSED;
/* Writes the summary of held-back lines once it is due. Returns 0, or when
 * to call again (not due yet). */
uint64_t redis_watch_flush(struct redis_watch *w, uint64_t now_ms) LV_WARN_UNUSED;

void redis_watch_stats(struct redis_watch *w, struct redis_watch_stats *out);

#endif
