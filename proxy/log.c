#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static enum lv_log_level log_level = LV_LOG_INFO;
static int alog_fd = 1;
static char alog_path[LV_PATH_MAX]; /* a file's path; "" for stdout and off */
static pthread_mutex_t alog_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(enum lv_log_level level)
{
	__atomic_store_n(&log_level, level, __ATOMIC_RELAXED);
}

void log_timestamp(char out[64])
{
	struct timeval tv;
	struct tm tm;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
	         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));
}

size_t json_escape(char *dst, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	char *d = dst;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			*d++ = '\\';
			*d++ = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			*d++ = '\\';
			*d++ = 'u';
			*d++ = '0';
			*d++ = '0';
			*d++ = hex[c >> 4];
			*d++ = hex[c & 15];
		} else {
			*d++ = (char)c;
		}
	}
	return (size_t)(d - dst);
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return; /* nowhere left to report it */
		}
		p += w;
		n -= (size_t)w;
	}
}

void log_msg(enum lv_log_level level, const char *fmt, ...)
{
	if (level < __atomic_load_n(&log_level, __ATOMIC_RELAXED))
		return;
	char msg[2048], line[4096 + 256], ts[64];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(msg))
		n = sizeof(msg) - 1;
	log_timestamp(ts);
	size_t len = (size_t)snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"", ts,
	                              level_names[level]);
	if ((size_t)n > (sizeof(line) - len - 8) / 6)
		n = (int)((sizeof(line) - len - 8) / 6);
	len += json_escape(line + len, msg, (size_t)n);
	memcpy(line + len, "\"}\n", 3);
	len += 3;
	write_all(2, line, len);
}

bool log_limit_allow(struct log_limit *l, uint64_t now_us, uint64_t gap_us, uint64_t *skipped)
{
	if (l->any && now_us - l->last_us < gap_us) {
		l->skipped++;
		return false;
	}
	*skipped = l->skipped;
	l->any = true;
	l->last_us = now_us;
	l->skipped = 0;
	return true;
}

bool log_state_set(struct log_state *s, int state, uint64_t now_us, uint64_t gap_us, unsigned *changes)
{
	uint64_t skipped;
	if (s->logged < 0) {
		/* the first line is no change: it leaves the gap to the first one */
		s->logged = s->state = state;
		*changes = 0;
		return true;
	}
	if (state != s->state) {
		s->state = state;
		s->changes++;
	}
	if (state == s->logged || !log_limit_allow(&s->limit, now_us, gap_us, &skipped))
		return false;
	s->logged = state;
	*changes = s->changes;
	s->changes = 0;
	return true;
}

int accesslog_open(const char *spec)
{
	alog_path[0] = '\0';
	if (strcmp(spec, "stdout") == 0) {
		alog_fd = 1;
		return LV_OK;
	}
	if (strcmp(spec, "off") == 0) {
		alog_fd = -1;
		return LV_OK;
	}
	int fd = open(spec, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0) {
		log_error("access_log %s: %s", spec, strerror(errno));
		return LV_ERR;
	}
	alog_fd = fd;
	snprintf(alog_path, sizeof(alog_path), "%s", spec);
	return LV_OK;
}

/* The new file is opened first, then swapped in under the lock every flush
 * holds: a flush writes its whole lines to the old file or to the new one,
 * never part to each. Lines still in a worker's buffer go to the new file. */
int accesslog_reopen(void)
{
	if (!alog_path[0])
		return LV_OK; /* stdout or off: nothing to reopen */
	int fd = open(alog_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0) {
		/* keep writing where the log was: its lines are not lost, only
		 * in the file that was moved */
		log_error("access_log %s: cannot reopen: %s; still writing to the file it was", alog_path,
		          strerror(errno));
		return LV_ERR;
	}
	pthread_mutex_lock(&alog_lock);
	int old = alog_fd;
	__atomic_store_n(&alog_fd, fd, __ATOMIC_RELAXED); /* accesslog_enabled() reads it unlocked */
	pthread_mutex_unlock(&alog_lock);
	close(old);
	log_info("access_log %s: reopened", alog_path);
	return LV_OK;
}

int accesslog_enabled(void)
{
	return __atomic_load_n(&alog_fd, __ATOMIC_RELAXED) >= 0;
}

char *alog_reserve(struct alog_buf *b, size_t need)
{
	if (need > sizeof(b->buf))
		return NULL;
	if (sizeof(b->buf) - b->len < need)
		alog_flush(b);
	return b->buf + b->len;
}

void alog_commit(struct alog_buf *b, size_t used)
{
	b->len += used;
}

void alog_flush(struct alog_buf *b)
{
	if (!b->len)
		return;
	/* the fd is read under the lock: a reopen swaps it under the same one */
	pthread_mutex_lock(&alog_lock);
	if (alog_fd >= 0)
		write_all(alog_fd, b->buf, b->len);
	pthread_mutex_unlock(&alog_lock);
	b->len = 0;
}
