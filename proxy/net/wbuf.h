/*
 * wbuf.h - a bounded writer into space reserved in an evbuffer.
 *
 * Heads are written straight into the output buffer's own memory: reserve
 * an upper bound, write, commit what was used. No intermediate copy, no
 * printf on the hot path. Writing past the bound sets `overflow` instead.
 */
#ifndef LEVEE_WBUF_H
#define LEVEE_WBUF_H

#include <event2/buffer.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

struct wb {
	struct evbuffer *out;
	struct evbuffer_iovec v;
	char *p, *end;
	bool overflow;
};

/* Reserves `bound` bytes; false when the evbuffer cannot. */
static inline bool wb_begin(struct wb *w, struct evbuffer *out, size_t bound)
{
	w->out = out;
	w->overflow = false;
	if (evbuffer_reserve_space(out, (ev_ssize_t)bound, &w->v, 1) < 1)
		return false;
	w->p = w->v.iov_base;
	w->end = w->p + bound;
	return true;
}

static inline void wb_put(struct wb *w, const char *s, size_t n)
{
	if ((size_t)(w->end - w->p) < n) {
		w->overflow = true;
		return;
	}
	memcpy(w->p, s, n);
	w->p += n;
}

#define WB_LIT(w, s) wb_put(w, s, sizeof(s) - 1)

static inline void wb_str(struct wb *w, const char *s)
{
	wb_put(w, s, strlen(s));
}

static inline void wb_u64(struct wb *w, uint64_t v)
{
	char tmp[24], *q = tmp + sizeof(tmp);
	do {
		*--q = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	wb_put(w, q, (size_t)(tmp + sizeof(tmp) - q));
}

/* Commits what was written; returns its length, or -1 on overflow (nothing
 * is committed then). */
static inline int wb_end(struct wb *w)
{
	if (w->overflow)
		return -1;
	w->v.iov_len = (size_t)(w->p - (char *)w->v.iov_base);
	if (evbuffer_commit_space(w->out, &w->v, 1) < 0)
		return -1;
	return (int)w->v.iov_len;
}

#endif
