/*
 * resolver.c - one lookup thread, answers posted back through an eventfd
 * per request (see resolver.h).
 *
 * A request's life, under res->lock:
 *
 *   QUEUED --thread takes it--> RUNNING --answer--> DONE --loop--> callback, freed
 *   QUEUED --same name answered for another--> DONE
 *   cancel: QUEUED or DONE: freed at once;  RUNNING: CANCELLED, and the
 *   thread frees it when its lookup returns.
 *
 * Invariants:
 *  - The thread writes a request's eventfd only under the lock and only in
 *    DONE, and cancel closes the eventfd under the lock: an fd number that
 *    was closed (and maybe reused) is never written.
 *  - The event and the eventfd belong to the caller's loop and are freed
 *    there (callback or cancel), never by the thread; the thread frees only
 *    the memory of a request cancelled while it ran.
 */
#include "resolver.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netdb.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

enum resolve_state { RQ_QUEUED, RQ_RUNNING, RQ_DONE, RQ_CANCELLED };

struct resolve_req {
	struct resolve_req *next; /* in the queue */
	struct resolver *res;
	enum resolve_state state;
	char host[LV_HOST_MAX];
	int efd;
	struct event *ev;
	resolve_cb cb;
	void *arg;
	struct resolve_result result;
};

struct resolver {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t thread;
	bool started, stop;
	resolve_fn fn;
	void *fn_arg;
	struct resolve_req *head, *tail;
};

bool resolve_is_numeric(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];
	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

static void resolve_getaddrinfo(void *arg, const char *host, struct resolve_result *out)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
	int rc = getaddrinfo(host, NULL, &hints, &ai);
	memset(out, 0, sizeof(*out));
	if (rc != 0) {
		out->status = rc;
		snprintf(out->why, sizeof(out->why), "cannot resolve %s: %s", host,
		         rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
		return;
	}
	for (struct addrinfo *p = ai; p && out->n < RESOLVE_MAX_ADDRS; p = p->ai_next) {
		const void *a;
		if (p->ai_family == AF_INET6)
			a = &((const struct sockaddr_in6 *)p->ai_addr)->sin6_addr;
		else if (p->ai_family == AF_INET)
			a = &((const struct sockaddr_in *)p->ai_addr)->sin_addr;
		else
			continue;
		if (inet_ntop(p->ai_family, a, out->addrs[out->n], sizeof(out->addrs[0])))
			out->n++;
	}
	freeaddrinfo(ai);
	if (!out->n) {
		out->status = EAI_NONAME;
		snprintf(out->why, sizeof(out->why), "cannot resolve %s: no IPv4 or IPv6 address", host);
	}
}

struct resolver *resolver_new(resolve_fn fn, void *fn_arg)
{
	struct resolver *res = calloc(1, sizeof(*res));
	if (!res)
		return NULL;
	pthread_mutex_init(&res->lock, NULL);
	pthread_cond_init(&res->wake, NULL);
	res->fn = fn ? fn : resolve_getaddrinfo;
	res->fn_arg = fn_arg;
	return res;
}

void resolver_free(struct resolver *res)
{
	if (!res)
		return;
	pthread_mutex_lock(&res->lock);
	res->stop = true;
	pthread_cond_signal(&res->wake);
	pthread_mutex_unlock(&res->lock);
	if (res->started)
		pthread_join(res->thread, NULL);
	pthread_cond_destroy(&res->wake);
	pthread_mutex_destroy(&res->lock);
	free(res);
}

static struct resolver *resolver_the_process;
static pthread_once_t resolver_once = PTHREAD_ONCE_INIT;

static void resolver_process_init(void)
{
	resolver_the_process = resolver_new(NULL, NULL);
}

struct resolver *resolver_process(void)
{
	pthread_once(&resolver_once, resolver_process_init);
	return resolver_the_process;
}

static void resolve_unlink(struct resolver *res, struct resolve_req *req)
{
	for (struct resolve_req **pp = &res->head, *prev = NULL; *pp; prev = *pp, pp = &(*pp)->next) {
		if (*pp != req)
			continue;
		*pp = req->next;
		if (res->tail == req)
			res->tail = prev;
		return;
	}
}

/* Under the lock: <req> has its answer; wake its loop. */
static void resolve_post(struct resolve_req *req, const struct resolve_result *r)
{
	req->result = *r;
	req->state = RQ_DONE;
	uint64_t one = 1;
	while (write(req->efd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

static void *resolver_main(void *arg)
{
	struct resolver *res = arg;
	pthread_mutex_lock(&res->lock);
	for (;;) {
		while (!res->head && !res->stop)
			pthread_cond_wait(&res->wake, &res->lock);
		if (res->stop)
			break;
		struct resolve_req *req = res->head;
		resolve_unlink(res, req);
		req->state = RQ_RUNNING;
		char host[LV_HOST_MAX];
		memcpy(host, req->host, sizeof(host));
		pthread_mutex_unlock(&res->lock);

		struct resolve_result r;
		res->fn(res->fn_arg, host, &r);

		pthread_mutex_lock(&res->lock);
		if (req->state == RQ_CANCELLED)
			free(req);
		else
			resolve_post(req, &r);
		/* the same name, asked meanwhile: one answer serves them all */
		for (struct resolve_req *q = res->head, *next; q; q = next) {
			next = q->next;
			if (strcmp(q->host, host) == 0) {
				resolve_unlink(res, q);
				resolve_post(q, &r);
			}
		}
	}
	pthread_mutex_unlock(&res->lock);
	return NULL;
}

/* On the caller's loop: frees what the loop owns, and the request. */
static void resolve_release(struct resolve_req *req)
{
	event_free(req->ev);
	close(req->efd);
	free(req);
}

static void resolve_on_done(evutil_socket_t fd, short what, void *arg)
{
	struct resolve_req *req = arg;
	struct resolver *res = req->res;
	pthread_mutex_lock(&res->lock);
	bool done = req->state == RQ_DONE;
	pthread_mutex_unlock(&res->lock);
	if (!done)
		return; /* cannot happen: the fd is written in DONE only */
	struct resolve_result r = req->result;
	resolve_cb cb = req->cb;
	void *cbarg = req->arg;
	resolve_release(req);
	cb(cbarg, &r);
}

struct resolve_req *resolve_start(struct resolver *res, struct event_base *base, const char *host,
                                  resolve_cb cb, void *arg)
{
	struct resolve_req *req = calloc(1, sizeof(*req));
	if (!req)
		return NULL;
	req->res = res;
	req->cb = cb;
	req->arg = arg;
	snprintf(req->host, sizeof(req->host), "%s", host);
	req->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (req->efd < 0) {
		free(req);
		return NULL;
	}
	req->ev = event_new(base, req->efd, EV_READ, resolve_on_done, req);
	if (!req->ev || event_add(req->ev, NULL) < 0) {
		if (req->ev)
			event_free(req->ev);
		close(req->efd);
		free(req);
		return NULL;
	}
	pthread_mutex_lock(&res->lock);
	if (!res->started && pthread_create(&res->thread, NULL, resolver_main, res) == 0)
		res->started = true;
	if (!res->started) {
		pthread_mutex_unlock(&res->lock);
		resolve_release(req);
		return NULL;
	}
	req->state = RQ_QUEUED;
	if (res->tail)
		res->tail->next = req;
	else
		res->head = req;
	res->tail = req;
	pthread_cond_signal(&res->wake);
	pthread_mutex_unlock(&res->lock);
	return req;
}

void resolve_cancel(struct resolve_req *req)
{
	struct resolver *res = req->res;
	pthread_mutex_lock(&res->lock);
	switch (req->state) {
	case RQ_QUEUED:
		resolve_unlink(res, req);
		/* fall through */
	case RQ_DONE:
		pthread_mutex_unlock(&res->lock);
		resolve_release(req);
		return;
	case RQ_RUNNING:
		/* the thread frees the memory when its lookup returns */
		req->state = RQ_CANCELLED;
		event_free(req->ev);
		close(req->efd);
		req->ev = NULL;
		req->efd = -1;
		break;
	case RQ_CANCELLED:
		break;
	}
	pthread_mutex_unlock(&res->lock);
}
