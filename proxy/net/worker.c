/*
 * worker.c - the threads that run loops: a listener worker's socket and
 * accept, the control messages (policy, drain, stop), the loop's one
 * periodic timer, and its life cycle (net/worker.h).
 */
#include "net/worker.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "net/conn.h"
#include "net/upstream.h"
#include "net/request.h"

#define WORKER_TICK_MS 100

/* ---- listener ---------------------------------------------------------- */

static void worker_on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int socklen,
                             void *arg)
{
	conn_accept(arg, fd, sa, socklen);
}

/* The workers share the listen address through SO_REUSEPORT, which would
 * just as gladly let a second levee (same user, same --listen) join them,
 * and the kernel would then split the traffic between two processes running
 * different policies. So before the first worker binds, a probe socket binds
 * the address without SO_REUSEPORT: that fails while any socket listens on
 * the address or overlaps it (0.0.0.0 and 127.0.0.1 on one port), and
 * SO_REUSEADDR lets it pass connections a previous levee left in TIME_WAIT,
 * so that a restart is not refused. Two levees started at the same instant
 * could both pass before either listens. */
static int listen_probe(const struct lv_hostport *hp, const struct sockaddr_storage *ss, socklen_t len, char *err,
                        size_t errlen)
{
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return LV_ERR;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	int rc = bind(fd, (const struct sockaddr *)ss, len);
	int e = errno;
	close(fd);
	if (rc == 0)
		return LV_OK;
	if (e == EADDRINUSE)
		snprintf(err, errlen,
		         "listen on %s:%u: the address is in use by another process (another levee with the same "
		         "--listen?); levee does not share its traffic port",
		         hp->host, hp->port);
	else
		snprintf(err, errlen, "listen on %s:%u: %s", hp->host, hp->port, strerror(e));
	return LV_ERR;
}

static int listen_socket(const struct runtime *rt, bool first, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t len;
	if (resolve_hostport(&rt->policy->listen, &ss, &len, err, errlen) != LV_OK)
		return -1;
	if (first && listen_probe(&rt->policy->listen, &ss, len, err, errlen) != LV_OK)
		return -1;
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 4096) < 0) {
		snprintf(err, errlen, "listen on %s:%u: %s", rt->policy->listen.host, rt->policy->listen.port,
		         strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int worker_listen(struct worker *w, const struct runtime *rt, char *err, size_t errlen)
{
	int fd = listen_socket(rt, w->id == 0, err, errlen);
	if (fd < 0)
		return LV_ERR;
	struct evconnlistener *lev = evconnlistener_new(w->base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE, -1, fd);
	if (!lev) {
		close(fd);
		snprintf(err, errlen, "evconnlistener_new failed");
		return LV_ERR;
	}
	if (listener_init(&w->listener, lev, worker_on_accept, w, w->name, &w->stats->accept_errors,
	                  &w->stats->accept_pauses) != LV_OK) {
		snprintf(err, errlen, "out of memory");
		return LV_ERR;
	}
	return LV_OK;
}

/* ---- periodic work: one timer per worker ------------------------------- */

static void worker_tick(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	alog_flush(w->alog);
	upstream_pool_reap(w, now_us());
	if (w->ext && w->ext->tick)
		w->ext->tick(w);
}

/* ---- mailbox handlers (run on the worker) ------------------------------ */

/* Each control message is an item embedded in the worker: a post allocates
 * nothing, and two posts of one message before it ran coalesce, which is
 * right for all three (the newest policy, drain, stop). */
static void worker_take_policy(struct mb_item *it)
{
	struct worker *w = mb_container(it, struct worker, mb_policy);
	struct runtime *rt = runtime_slot_acquire(w->runtimes);
	struct runtime *old = w->rt;
	w->rt = rt;
	runtime_unref(old);
}

static void worker_begin_drain(struct mb_item *it)
{
	struct worker *w = mb_container(it, struct worker, mb_drain);
	w->draining = true;
	listener_close(&w->listener);
	for (struct conn *c = w->conns, *next; c; c = next) {
		next = c->next;
		conn_drain(c);
	}
}

static void worker_stop(struct mb_item *it)
{
	struct worker *w = mb_container(it, struct worker, mb_stop);
	event_base_loopbreak(w->base);
}

void worker_notify_policy(struct worker *w)
{
	if (mailbox_post(&w->mbox, &w->mb_policy, worker_take_policy) != LV_OK)
		log_error("%s: cannot deliver the new policy (the thread has stopped)", w->name);
}

void worker_notify_drain(struct worker *w)
{
	if (mailbox_post(&w->mbox, &w->mb_drain, worker_begin_drain) != LV_OK)
		log_error("%s: cannot deliver drain (the thread has stopped)", w->name);
}

void worker_notify_stop(struct worker *w)
{
	if (mailbox_post(&w->mbox, &w->mb_stop, worker_stop) != LV_OK)
		log_error("%s: cannot deliver stop (the thread has stopped)", w->name);
}

/* ---- life cycle -------------------------------------------------------- */

int worker_create(struct worker *w, unsigned id, const char *loop_name, struct runtime_slot *runtimes,
                  atomic_uint_fast64_t *open_conns, char *err, size_t errlen)
{
	memset(w, 0, sizeof(*w));
	w->id = id;
	w->listens = loop_name == NULL;
	if (loop_name)
		snprintf(w->name, sizeof(w->name), "%s", loop_name);
	else
		snprintf(w->name, sizeof(w->name), "worker %u", id);
	w->mbox.efd = -1;
	struct event_config *cfg = event_config_new();
	if (!cfg) {
		snprintf(err, errlen, "out of memory");
		return LV_ERR;
	}
	/* Each base is touched by its own thread only; cross-thread work goes
	 * through the mailbox's eventfd, so the base needs no locks. */
	event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
	event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	w->base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	if (!w->base) {
		snprintf(err, errlen, "event_base_new failed");
		return LV_ERR;
	}
	w->runtimes = runtimes;
	w->open_conns = open_conns;
	struct runtime *rt = runtime_slot_acquire(runtimes);
	w->rt = rt;
	w->stats = calloc(1, sizeof(*w->stats));
	w->alog = malloc(sizeof(*w->alog));
	if (!w->stats || !w->alog) {
		snprintf(err, errlen, "out of memory");
		return LV_ERR;
	}
	w->alog->len = 0;
	loop_seed(w);
	/* no bound but the objects': every item is a request's or the
	 * worker's own, and requests are bounded by max_connections */
	if (mailbox_init(&w->mbox, w->base, 0) != LV_OK) {
		snprintf(err, errlen, "mailbox: %s", strerror(errno));
		return LV_ERR;
	}
	if (w->listens && worker_listen(w, rt, err, errlen) != LV_OK)
		return LV_ERR;
	w->tick = event_new(w->base, -1, EV_PERSIST, worker_tick, w);
	struct timeval tv = {0, WORKER_TICK_MS * 1000};
	if (!w->tick || event_add(w->tick, &tv) < 0) {
		snprintf(err, errlen, "timer setup failed");
		return LV_ERR;
	}
	return LV_OK;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	event_base_dispatch(w->base);
	alog_flush(w->alog);
	return NULL;
}

int worker_start(struct worker *w)
{
	return pthread_create(&w->thread, NULL, worker_main, w) == 0 ? LV_OK : LV_ERR;
}

void worker_join(struct worker *w)
{
	pthread_join(w->thread, NULL);
}

void worker_destroy(struct worker *w)
{
	/* what waits ends at once from now on (the server set it already
	 * when it stopped the loops) */
	w->closing = true;
	/* first: the last loop pass below must not accept a connection */
	listener_close(&w->listener);
	while (w->conns)
		conn_close(w->conns);
	request_loop_close(w); /* exchanges without a client: kept ones, orphans */
	upstream_pool_clear(w);
	if (w->ext && w->ext->close)
		w->ext->close(w); /* the cache's Redis tier: pending callbacks run now, with "closed" */
	/* one more pass runs the deferred frees that closing scheduled */
	if (w->base)
		event_base_loop(w->base, EVLOOP_NONBLOCK);
	/* the lines of the requests the closing above ended (those still in
	 * flight at the drain timeout): the loop's last flush was before them */
	if (w->alog)
		alog_flush(w->alog);
	if (w->tick)
		event_free(w->tick);
	mailbox_destroy(&w->mbox);
	arena_pool_clear(w);
	request_pool_clear(w);
	if (w->base)
		event_base_free(w->base);
	runtime_unref(w->rt);
	if (w->stats)
		stats_free_routes(w->stats);
	free(w->stats);
	free(w->alog);
}
