/*
 * mailbox.h - hand work to another thread's event loop.
 *
 * Any thread posts a function and an argument; the function runs on the
 * owning thread's event_base, in order. The wake-up is an eventfd, so the
 * event bases themselves run without locks. This is how the main thread
 * tells workers about a new policy or a drain, and the primitive later stages
 * (bulkhead thread pools) use to move a request between threads.
 */
#ifndef LEVEE_MAILBOX_H
#define LEVEE_MAILBOX_H

#include <event2/event.h>
#include <pthread.h>

#include "policy.h"

typedef void (*mailbox_fn)(void *arg);

struct mb_item;

struct mailbox {
	pthread_mutex_t lock;
	struct mb_item *head, *tail;
	int efd;
	struct event *ev;
};

int mailbox_init(struct mailbox *mb, struct event_base *base) LV_WARN_UNUSED;
void mailbox_destroy(struct mailbox *mb);
/* Thread-safe. Returns LV_ERR only when out of memory. */
int mailbox_post(struct mailbox *mb, mailbox_fn fn, void *arg) LV_WARN_UNUSED;
/* Runs what is queued now, on the owning thread, without waiting for the
 * loop (at shutdown). */
void mailbox_flush(struct mailbox *mb);

#endif
