/*
 * replay.c - the in-flight window of the outbox replay (replay.h).
 */
#include "invalidate/replay.h"

unsigned replay_push(struct replay_window *w, uint64_t next)
{
	unsigned slot = replay_next_slot(w);
	w->slot[slot].next = next;
	w->slot[slot].done = false;
	w->slot[slot].ok = false;
	w->n++;
	return slot;
}

uint64_t replay_done(struct replay_window *w, unsigned slot, bool ok)
{
	w->slot[slot].done = true;
	w->slot[slot].ok = ok;
	uint64_t ack = 0;
	while (w->n && w->slot[w->head].done) {
		if (!w->slot[w->head].ok)
			w->blocked = true;
		else if (!w->blocked)
			ack = w->slot[w->head].next;
		w->head = (w->head + 1) % REPLAY_WINDOW;
		w->n--;
	}
	return ack;
}

void replay_restart(struct replay_window *w)
{
	w->blocked = false;
}
