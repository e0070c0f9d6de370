/*
 * log.h - levelled JSON logs on stderr, and the buffered JSON access log.
 *
 * Error logs are rare and written at once, one line per write(2). The access
 * log is written once per request on the hot path, so each worker formats
 * lines into its own buffer and flushes it when it fills up or on the
 * worker's tick; a flush is one write(2) of whole lines under a mutex, so
 * lines from different workers never interleave.
 */
#ifndef LEVEE_LOG_H
#define LEVEE_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy.h"

void log_set_level(enum lv_log_level level);
void log_msg(enum lv_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_debug(...) log_msg(LV_LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LV_LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LV_LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LV_LOG_ERROR, __VA_ARGS__)

/* A line about something that may happen often (refused requests, a peer
 * that flaps): at most one per gap. Time is the caller's (microseconds, any
 * monotonic origin), so the rules are tested without a clock. */
struct log_limit {
	bool any;         /* a line was allowed before */
	uint64_t last_us; /* when */
	uint64_t skipped; /* lines held back since */
};

/* Whether to log now; if so, *skipped is how many were held back since the
 * last line. */
bool log_limit_allow(struct log_limit *l, uint64_t now_us, uint64_t gap_us, uint64_t *skipped);

/* A two-valued state (reachable or not) whose changes are logged once each,
 * at most one line per gap; the first value seen is logged at once. Changes
 * within a gap are counted and held back; the state then is logged when the
 * gap ends, unless it is the one the log already says. */
struct log_state {
	struct log_limit limit;
	int logged;       /* the state the log says; -1 before the first line */
	int state;        /* the state seen last */
	unsigned changes; /* since the last line */
};

#define LOG_STATE_INIT {.logged = -1, .state = -1}

/* Records `state` (0 or 1); whether to log it now. If so, *changes is the
 * number of changes the line covers: 0 for the first line, 1 for a plain
 * change, more when some were held back. */
bool log_state_set(struct log_state *s, int state, uint64_t now_us, uint64_t gap_us, unsigned *changes);

/* Opens the access log: "stdout", "off" or a file path (appended to).
 * Start-up only. */
int accesslog_open(const char *spec) LV_WARN_UNUSED;
/* Opens the file again by its path, after it was moved (SIGUSR1, for log
 * rotation); any thread. On failure the log goes on in the file it was in,
 * and the error is logged. */
int accesslog_reopen(void);
int accesslog_enabled(void);

#define ALOG_BUF 65536

struct alog_buf {
	size_t len;
	char buf[ALOG_BUF];
};

/* Appends one line (the caller formats it with alog_reserve/alog_commit). */
char *alog_reserve(struct alog_buf *b, size_t need);
void alog_commit(struct alog_buf *b, size_t used);
void alog_flush(struct alog_buf *b);

/* Appends `s` to `dst` as the inside of a JSON string, escaping as needed;
 * returns the number of bytes written (at most 6*n). */
size_t json_escape(char *dst, const char *s, size_t n);

/* ISO-8601 UTC timestamp with milliseconds, 24 bytes + NUL; the buffer is larger to satisfy the compiler. */
void log_timestamp(char out[64]);

#endif
