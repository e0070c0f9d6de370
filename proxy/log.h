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

#include <stddef.h>
#include <stdint.h>

#include "policy.h"

void log_set_level(enum lv_log_level level);
void log_msg(enum lv_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_debug(...) log_msg(LV_LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LV_LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LV_LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LV_LOG_ERROR, __VA_ARGS__)

/* Opens the access log: "stdout", "off" or a file path (appended to).
 * Start-up only. */
int accesslog_open(const char *spec) LV_WARN_UNUSED;
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
