/*
 * replay.h - the window of outbox records in flight to Kafka, and which
 * prefix of the outbox their delivery reports acknowledge. Pure: no I/O.
 *
 * Records are pushed in outbox order; delivery reports come back in any
 * order (one partition's are ordered, different partitions' are not). The
 * acknowledged position only ever moves over a contiguous run of delivered
 * records from the oldest. A failed record blocks the window: nothing after
 * it is acknowledged, even what is delivered later, because the retry
 * resends everything from the outbox cursor (consumers drop the duplicates
 * by id). Finished slots are dropped from the window either way, so that
 * it empties and the retry can begin.
 */
#ifndef LEVEE_INVALIDATE_REPLAY_H
#define LEVEE_INVALIDATE_REPLAY_H

#include <stdbool.h>
#include <stdint.h>

#define REPLAY_WINDOW 1024u

struct replay_window {
	struct {
		uint64_t next; /* outbox position after the record */
		bool done, ok;
	} slot[REPLAY_WINDOW];
	unsigned head, n;
	bool blocked; /* a record failed: acknowledge nothing until the restart */
};

static inline bool replay_full(const struct replay_window *w)
{
	return w->n == REPLAY_WINDOW;
}

/* The slot the next replay_push() takes (to tag a message before it is
 * known to be queued). */
static inline unsigned replay_next_slot(const struct replay_window *w)
{
	return (w->head + w->n) % REPLAY_WINDOW;
}

/* Adds the record ending at outbox position `next`; returns its slot, to
 * pass to replay_done(). The window must not be full. */
unsigned replay_push(struct replay_window *w, uint64_t next);

/* The report for `slot`. Returns the outbox position now acknowledged (to
 * pass to outbox_ack), or 0 when it did not move. */
uint64_t replay_done(struct replay_window *w, unsigned slot, bool ok);

/* Before a retry from the outbox cursor: the window must be empty. */
void replay_restart(struct replay_window *w);

#endif
