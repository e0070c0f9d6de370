/*
 * listener.c - accept() failures that do not spin (see listener.h).
 *
 * States: listening → (accept fails for want of resources) paused, the
 * socket out of the event loop, for LISTENER_PAUSE_MS → listening again,
 * watched for LISTENER_QUIET_MS: another failure pauses again, a quiet
 * period ends the shortage. One timer serves both waits.
 */
#include "net/listener.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "stats.h"

static void listener_arm(struct listener *l, unsigned ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
	event_add(l->retry, &tv);
}

static void listener_on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa, int socklen,
                               void *arg)
{
	struct listener *l = arg;
	l->cb(lev, fd, sa, socklen, l->arg);
}

static bool listener_shortage(int err)
{
	return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

static void listener_on_error(struct evconnlistener *lev, void *arg)
{
	struct listener *l = arg;
	int err = EVUTIL_SOCKET_ERROR();
	stat_inc(*l->errors);
	if (!listener_shortage(err)) {
		/* the connection that failed has left the backlog: accepting
		 * again at once cannot meet the same failure */
		log_error("%s: accept: %s", l->name, evutil_socket_error_to_string(err));
		return;
	}
	if (!l->shortage_errors)
		log_warn("%s: accept: %s; not accepting for %d ms at a time until that passes", l->name,
		         evutil_socket_error_to_string(err), LISTENER_PAUSE_MS);
	l->shortage_errors++;
	l->shortage_pauses++;
	stat_inc(*l->pauses);
	l->paused = true;
	evconnlistener_disable(lev);
	listener_arm(l, LISTENER_PAUSE_MS);
}

static void listener_retry(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;
	if (l->paused) {
		l->paused = false;
		evconnlistener_enable(l->lev);
		listener_arm(l, LISTENER_QUIET_MS); /* unless a failure pauses again first */
		return;
	}
	unsigned long long paused_ms = (unsigned long long)l->shortage_pauses * LISTENER_PAUSE_MS;
	log_info("%s: accepting again, after %llu failed accepts and %llu ms without accepting", l->name,
	         (unsigned long long)l->shortage_errors, paused_ms);
	l->shortage_errors = l->shortage_pauses = 0;
}

int listener_init(struct listener *l, struct evconnlistener *lev, evconnlistener_cb cb, void *arg, const char *name,
                  uint64_t *errors, uint64_t *pauses)
{
	memset(l, 0, sizeof(*l));
	l->retry = evtimer_new(evconnlistener_get_base(lev), listener_retry, l);
	if (!l->retry) {
		evconnlistener_free(lev);
		return LV_ERR;
	}
	l->lev = lev;
	l->cb = cb;
	l->arg = arg;
	snprintf(l->name, sizeof(l->name), "%s", name);
	l->errors = errors;
	l->pauses = pauses;
	evconnlistener_set_cb(lev, listener_on_accept, l);
	evconnlistener_set_error_cb(lev, listener_on_error);
	return LV_OK;
}

void listener_close(struct listener *l)
{
	if (l->retry)
		event_free(l->retry);
	l->retry = NULL;
	if (l->lev)
		evconnlistener_free(l->lev);
	l->lev = NULL;
}
