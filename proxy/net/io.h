/*
 * io.h - write a bufferevent's pending output now.
 *
 * bufferevents write from the event loop: adding output arms the write event
 * (an epoll_ctl), the loop reports the socket writable, then it writes. For a
 * proxy answering small requests that is two extra syscalls per response.
 * levee writes at once instead and enables the write event only for what the
 * socket did not take; that path keeps the send timeout and backpressure.
 *
 * A socket bufferevent freezes the start of its output buffer so that only it
 * drains it; we unfreeze around our own write, as libevent does internally.
 */
#ifndef LEVEE_IO_H
#define LEVEE_IO_H

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <errno.h>
#include <stdbool.h>

/* Returns false when the socket is dead; *written gets the bytes sent. */
static inline bool bev_write_now(struct bufferevent *bev, size_t *written)
{
	struct evbuffer *out = bufferevent_get_output(bev);
	*written = 0;
	if (!evbuffer_get_length(out))
		return true;
	evbuffer_unfreeze(out, 1);
	int n = evbuffer_write(out, bufferevent_getfd(bev));
	int saved = errno;
	evbuffer_freeze(out, 1);
	if (n < 0 && saved != EAGAIN && saved != EINTR)
		return false;
	if (n > 0)
		*written = (size_t)n;
	/* Enabling the write event (re)starts its timeout: do it when it is
	 * off, or when this write made progress, so that the send timeout
	 * measures the time since the peer last took a byte, not since levee
	 * last had something to say. */
	if (evbuffer_get_length(out) && (n > 0 || !(bufferevent_get_enabled(bev) & EV_WRITE)))
		bufferevent_enable(bev, EV_WRITE);
	return true;
}

#endif
