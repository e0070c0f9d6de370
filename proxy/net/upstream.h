/*
 * upstream.h - the upstream side of a request: pooled keep-alive connections
 * per worker, sending the rebuilt request, streaming the body with
 * backpressure, parsing the response and streaming it to the client.
 */
#ifndef LEVEE_UPSTREAM_H
#define LEVEE_UPSTREAM_H

#include <event2/bufferevent.h>
#include <stdbool.h>

#include "net/loop.h"
#include "net/proxyline.h"

struct request;

struct upconn {
	struct upconn *next;          /* idle list */
	struct worker *w;
	struct bufferevent *bev;
	struct request *req;          /* the request using it, NULL when idle */
	struct sockaddr_storage addr; /* where it is connected, to drop stale pool entries after a reload */
	socklen_t addr_len;
	/* the PROXY line it opened with ("" none): it carries only requests
	 * that would send the same line, so one client's alone */
	char proxy_line[PROXYLINE_MAX];
	uint64_t idle_since;
	unsigned uses;
	bool connected;
	bool got_bytes;               /* any response byte seen for the current request */
};

/* The pipeline's last stage: send the request upstream (and set
 * r->exchange: the request and its connection reach the exchange through
 * it); its `done` hook releases the connection, to the pool if reusable,
 * else closed. */
struct stage;
extern const struct stage upstream_stage_def;
/* Close idle connections older than the keep-alive timeout (worker tick). */
void upstream_pool_reap(struct worker *w, uint64_t now);
void upstream_pool_clear(struct worker *w);

#endif
