#include "net/mailbox.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct mb_item {
	struct mb_item *next;
	mailbox_fn fn;
	void *arg;
};

static void mailbox_drain(evutil_socket_t fd, short what, void *arg)
{
	struct mailbox *mb = arg;
	uint64_t v;
	while (read(fd, &v, sizeof(v)) < 0 && errno == EINTR)
		;
	pthread_mutex_lock(&mb->lock);
	struct mb_item *it = mb->head;
	mb->head = mb->tail = NULL;
	pthread_mutex_unlock(&mb->lock);
	while (it) {
		struct mb_item *next = it->next;
		it->fn(it->arg);
		free(it);
		it = next;
	}
}

void mailbox_flush(struct mailbox *mb)
{
	mailbox_drain(mb->efd, EV_READ, mb);
}

int mailbox_init(struct mailbox *mb, struct event_base *base)
{
	pthread_mutex_init(&mb->lock, NULL);
	mb->head = mb->tail = NULL;
	mb->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (mb->efd < 0)
		return LV_ERR;
	mb->ev = event_new(base, mb->efd, EV_READ | EV_PERSIST, mailbox_drain, mb);
	if (!mb->ev || event_add(mb->ev, NULL) < 0)
		return LV_ERR;
	return LV_OK;
}

void mailbox_destroy(struct mailbox *mb)
{
	if (mb->ev)
		event_free(mb->ev);
	if (mb->efd >= 0)
		close(mb->efd);
	for (struct mb_item *it = mb->head, *n; it; it = n) {
		n = it->next;
		free(it);
	}
	mb->head = mb->tail = NULL;
	pthread_mutex_destroy(&mb->lock);
}

int mailbox_post(struct mailbox *mb, mailbox_fn fn, void *arg)
{
	struct mb_item *it = malloc(sizeof(*it));
	if (!it)
		return LV_ERR;
	it->next = NULL;
	it->fn = fn;
	it->arg = arg;
	pthread_mutex_lock(&mb->lock);
	/* Only the first item of a batch wakes the owner: while the queue is
	 * not empty a wake-up is already on its way, and the drain takes the
	 * whole list after reading it. Saves a write(2) per item under load. */
	bool wake = mb->head == NULL;
	if (mb->tail)
		mb->tail->next = it;
	else
		mb->head = it;
	mb->tail = it;
	pthread_mutex_unlock(&mb->lock);
	uint64_t one = 1;
	while (wake && write(mb->efd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
	return LV_OK;
}
