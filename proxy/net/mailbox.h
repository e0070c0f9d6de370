/*
 * mailbox.h - hand work to another thread's event loop.
 *
 * Any thread posts an item; the item's function runs on the owning thread's
 * event_base, in FIFO order. The wake-up is an eventfd, so the event bases
 * themselves run without locks.
 *
 * Items are intrusive: a struct mb_item lives inside the object it stands
 * for (a request, a worker's control message, an invalidation event), so a
 * post allocates nothing and cannot fail for want of memory. An item is in
 * at most one mailbox at a time: posting an item that is still queued
 * coalesces into the queued post.
 *
 * Bounded: at most `cap` items are queued; a post past it returns LV_EFULL
 * and leaves the item with the caller. Because items are intrusive, the
 * queue also never holds more items than there are objects that embed one.
 *
 * Closable, and nothing is lost: mailbox_close() runs, on the owner, every
 * item still queued, then refuses further posts with LV_ECLOSED, again
 * leaving the item with its poster. So every item is, exactly once, either
 * run by the owner or handed back to the poster.
 */
#ifndef LEVEE_MAILBOX_H
#define LEVEE_MAILBOX_H

#include <event2/event.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "policy.h"

struct mb_item;
typedef void (*mailbox_fn)(struct mb_item *it);

struct mb_item {
	struct mb_item *next;
	mailbox_fn fn;
	bool queued; /* under the mailbox's lock */
};

struct mailbox {
	pthread_mutex_t lock;
	struct mb_item *head, *tail;
	unsigned n, cap, peak;
	bool closed;
	int efd;
	struct event *ev;
};

/* Owner thread's base; cap 0 means no bound but the objects'. */
int mailbox_init(struct mailbox *mb, struct event_base *base, unsigned cap) LV_WARN_UNUSED;
/* Thread-safe. LV_OK: fn(it) runs on the owner (once, however many posts
 * coalesced). LV_EFULL or LV_ECLOSED: not queued; the caller keeps it. */
int mailbox_post(struct mailbox *mb, struct mb_item *it, mailbox_fn fn) LV_WARN_UNUSED;
/* Owner thread (or any thread once the owner's loop has stopped): runs
 * what is queued now without waiting for the loop. */
void mailbox_flush(struct mailbox *mb);
/* Runs what is queued, then refuses posts (LV_ECLOSED) from now on. */
void mailbox_close(struct mailbox *mb);
/* Frees the mailbox; it must be closed. */
void mailbox_destroy(struct mailbox *mb);
/* Items queued now, and the most ever queued at once. */
void mailbox_depth(struct mailbox *mb, unsigned *now, unsigned *peak);

/* The object that embeds item `it` as `member`. */
#define mb_container(it, type, member) ((type *)(void *)((char *)(it) - offsetof(type, member)))

#endif
