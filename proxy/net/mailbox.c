/*
 * mailbox.c - see mailbox.h. The queue is a FIFO list of intrusive items
 * under one mutex; the eventfd is written only by the post that finds the
 * queue empty (a wake-up is already on its way otherwise), and the drain
 * takes the whole list at once, so a burst costs one write(2) and one read.
 */
#include "net/mailbox.h"

#include <errno.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Runs every item taken off the queue. An item stays `queued` until just
 * before its function runs: a post of it from another thread meanwhile
 * coalesces, and never touches `next` of an item still in the batch. Its
 * function may post it again. */
static void mailbox_run(struct mailbox *mb)
{
	pthread_mutex_lock(&mb->lock);
	struct mb_item *it = mb->head;
	mb->head = mb->tail = NULL;
	mb->n = 0;
	pthread_mutex_unlock(&mb->lock);
	while (it) {
		pthread_mutex_lock(&mb->lock);
		struct mb_item *next = it->next;
		mailbox_fn fn = it->fn;
		it->next = NULL;
		it->queued = false;
		pthread_mutex_unlock(&mb->lock);
		fn(it);
		it = next;
	}
}

static void mailbox_drain(evutil_socket_t fd, short what, void *arg)
{
	struct mailbox *mb = arg;
	uint64_t v;
	while (read(fd, &v, sizeof(v)) < 0 && errno == EINTR)
		;
	mailbox_run(mb);
}

void mailbox_flush(struct mailbox *mb)
{
	mailbox_run(mb);
}

int mailbox_init(struct mailbox *mb, struct event_base *base, unsigned cap)
{
	pthread_mutex_init(&mb->lock, NULL);
	mb->head = mb->tail = NULL;
	mb->n = mb->peak = 0;
	mb->cap = cap;
	mb->closed = false;
	mb->ev = NULL;
	mb->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (mb->efd < 0)
		return LV_ERR;
	mb->ev = event_new(base, mb->efd, EV_READ | EV_PERSIST, mailbox_drain, mb);
	if (!mb->ev || event_add(mb->ev, NULL) < 0)
		return LV_ERR;
	return LV_OK;
}

int mailbox_post(struct mailbox *mb, struct mb_item *it, mailbox_fn fn)
{
	pthread_mutex_lock(&mb->lock);
	if (mb->closed) {
		pthread_mutex_unlock(&mb->lock);
		return LV_ECLOSED;
	}
	if (it->queued) { /* already on its way: one run serves both posts */
		pthread_mutex_unlock(&mb->lock);
		return LV_OK;
	}
	if (mb->cap && mb->n >= mb->cap) {
		pthread_mutex_unlock(&mb->lock);
		return LV_EFULL;
	}
	it->fn = fn;
	it->next = NULL;
	it->queued = true;
	bool wake = mb->head == NULL;
	if (mb->tail)
		mb->tail->next = it;
	else
		mb->head = it;
	mb->tail = it;
	if (++mb->n > mb->peak)
		mb->peak = mb->n;
	pthread_mutex_unlock(&mb->lock);
	uint64_t one = 1;
	while (wake && write(mb->efd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
	return LV_OK;
}

void mailbox_close(struct mailbox *mb)
{
	/* run what is queued first: an item posted before the close was taken,
	 * so it must run; only later posts are refused */
	for (;;) {
		mailbox_run(mb);
		pthread_mutex_lock(&mb->lock);
		bool empty = mb->head == NULL;
		if (empty)
			mb->closed = true;
		pthread_mutex_unlock(&mb->lock);
		if (empty)
			return;
	}
}

void mailbox_destroy(struct mailbox *mb)
{
	if (!mb->closed && mb->efd >= 0)
		mailbox_close(mb);
	if (mb->ev)
		event_free(mb->ev);
	mb->ev = NULL;
	if (mb->efd >= 0)
		close(mb->efd);
	mb->efd = -1;
	pthread_mutex_destroy(&mb->lock);
}

void mailbox_depth(struct mailbox *mb, unsigned *now, unsigned *peak)
{
	pthread_mutex_lock(&mb->lock);
	*now = mb->n;
	*peak = mb->peak;
	pthread_mutex_unlock(&mb->lock);
}
