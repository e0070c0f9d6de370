/*
 * listener.h - a listening socket that pauses, rather than spins, when
 * accept() fails for want of resources.
 *
 * A listening socket stays readable while connections wait in its backlog.
 * When accept() fails because the process is out of descriptors or memory
 * (EMFILE, ENFILE, ENOBUFS, ENOMEM), an event loop that keeps listening
 * wakes at once, fails again and logs each time: a whole core and megabytes
 * of identical lines a second, which leaves even less for the connections
 * that would free descriptors. Like nginx and HAProxy, a listener here stops
 * accepting for LISTENER_PAUSE_MS instead and then tries again, as long as
 * the shortage lasts. One line is logged when a shortage starts and one when
 * it ends (a whole LISTENER_QUIET_MS without a failure), and both counters
 * given to listener_init() count as it goes.
 *
 * A listener belongs to the thread of its event base: its counters have that
 * thread as their only writer.
 */
#ifndef LEVEE_LISTENER_H
#define LEVEE_LISTENER_H

#include <event2/listener.h>
#include <stdbool.h>
#include <stdint.h>

#include "policy.h"

#define LISTENER_PAUSE_MS 100
#define LISTENER_QUIET_MS 1000

struct listener {
	struct evconnlistener *lev; /* NULL once closed */
	struct event *retry;        /* ends a pause, then watches for the end of the shortage */
	evconnlistener_cb cb;       /* the owner's accept callback, and its argument */
	void *arg;
	char name[32];              /* who is listening, for the log ("worker 0", "admin") */
	uint64_t *errors, *pauses;  /* counters: failed accepts, pauses */
	uint64_t shortage_errors;   /* failed accepts in the current shortage, 0 when none */
	uint64_t shortage_pauses;
	bool paused;
};

/* Takes `lev` over (made with no callback, so that it waits for this): its
 * accepts go to `cb` with `arg`, its accept errors are handled as above. On
 * failure `lev` is freed. */
int listener_init(struct listener *l, struct evconnlistener *lev, evconnlistener_cb cb, void *arg, const char *name,
                  uint64_t *errors, uint64_t *pauses) LV_WARN_UNUSED;
/* Stops listening and closes the socket; a closed listener may be closed again. */
void listener_close(struct listener *l);

#endif
