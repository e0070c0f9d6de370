/*
 * kafka.c - librdkafka, wrapped for one libevent loop (see kafka.h).
 *
 * Producer: enable.idempotence (acks=all, in order, no duplicates from
 * librdkafka's own retries), message.timeout.ms = [kafka] delivery_timeout,
 * linger.ms = [kafka] linger (5 ms: a little latency buys far fewer
 * broker requests under a write load). A fatal producer
 * error (possible with idempotence) purges the queue, so every queued
 * message is reported failed and the caller spools it, and replaces the
 * producer.
 *
 * Consumer: one group, subscribe() to the topic, enable.auto.commit with
 * enable.auto.offset.store=false: librdkafka commits only offsets the
 * caller stored after applying a message. Statistics every second give the
 * lag (high watermark - position per partition) and broker state.
 *
 * After each assignment one metadata request counts the topic's partitions,
 * so the caller can tell whether this replica got them all (it is alone in
 * its group, as it should be). Why not ask the coordinator for the group's
 * members: librdkafka 2.0.2's DescribeConsumerGroups deadlocked its main
 * thread (consumption stopped) when a broker lacked the API, seen against
 * its own mock cluster, and rd_kafka_list_groups() blocks the caller for a
 * round trip to every broker, every time it is asked.
 */
#include "invalidate/kafka.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "invalidate/json.h"
#include "log.h"

#define KAFKA_TICK_MS 100
#define KAFKA_POLL_BATCH 512 /* events served per wakeup before yielding to the loop */

struct kafka {
	struct event_base *base;
	struct kafka_handlers h;
	void *ctx;
	struct kafka_config cfg;
	char brokers[LV_HEADER_LIST_MAX], topic[256], group[256], client[256];

	rd_kafka_t *prod, *cons;
	rd_kafka_topic_t *prod_topic; /* held so the topic's metadata is fetched before the first event */
	int pipefd[2];
	struct event *ev_pipe, *ev_tick;
	unsigned in_flight;
	bool prod_fatal, paused, cons_closed;
	bool cons_abandoned; /* its close timed out: destroying it would wait as long again */
	bool broker_up; /* as the last statistics said */
};

/* ---- configuration ----------------------------------------------------- */

static int kafka_set(rd_kafka_conf_t *c, const char *name, const char *value, char *err, size_t errlen)
{
	char why[256];
	if (rd_kafka_conf_set(c, name, value, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
		snprintf(err, errlen, "kafka: %s=%s: %s", name, value, why);
		return LV_ERR;
	}
	return LV_OK;
}

void kafka_log_line(const char *who, int level, const char *fac, const char *buf)
{
	/* syslog levels. librdkafka reports every failed connection attempt
	 * as an error (3), twice a second while a broker is down; levee says
	 * once when no broker is reachable and once when one is again
	 * (invalidate.c, control.c), so only worse than that is an error here. */
	if (level <= 2)
		log_error("%s: %s: %s", who, fac, buf);
	else
		log_debug("%s: %s: %s", who, fac, buf);
}

static void kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	kafka_log_line("kafka", level, fac, buf);
}

static void kafka_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	struct kafka *k = opaque;
	if (err == RD_KAFKA_RESP_ERR__FATAL && rk == k->prod) {
		char why[512];
		rd_kafka_fatal_error(rk, why, sizeof(why));
		log_error("kafka: fatal producer error (%s); replacing the producer", why);
		k->prod_fatal = true;
		return;
	}
	/* transport errors repeat while a broker is down: debug, the lag and
	 * outbox metrics say it better */
	if (err == RD_KAFKA_RESP_ERR__TRANSPORT || err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
		log_debug("kafka: %s: %s", rk == k->prod ? "producer" : "consumer", reason);
	else
		log_warn("kafka: %s: %s", rk == k->prod ? "producer" : "consumer", reason);
}

static void kafka_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct kafka *k = opaque;
	if (k->in_flight)
		k->in_flight--;
	k->h.delivered(k->ctx, m->_private, m->err, m->err ? rd_kafka_err2str(m->err) : "", m->key, m->key_len,
	               m->payload, m->len);
}

static int kafka_stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
	struct kafka *k = opaque;
	struct kafka_lag l;
	if (kafka_stats_parse(json, len, k->topic, &l) == LV_OK) {
		k->broker_up = l.broker_up;
		k->h.lag(k->ctx, &l);
	}
	else
		log_debug("kafka: unreadable statistics (%zu bytes)", len);
	return 0; /* librdkafka frees json */
}

/* A partition this group never committed starts at `latest` - but only
 * in memory: a replica that stops before storing any offset would start
 * again at a newer `latest` and miss what was published in between. So
 * the start is resolved here, as the high watermark now, and committed
 * before consuming. Blocks the invalidate thread for two round trips, on
 * assignment only. */
static void kafka_pin_start(struct kafka *k, rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts)
{
	if (k->cfg.from_earliest || rd_kafka_committed(rk, parts, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return; /* earliest needs no pin; without an answer librdkafka resolves it */
	rd_kafka_topic_partition_list_t *pin = rd_kafka_topic_partition_list_new(parts->cnt);
	for (int i = 0; i < parts->cnt; i++) {
		rd_kafka_topic_partition_t *p = &parts->elems[i];
		int64_t lo, hi;
		if (p->offset >= 0 || rd_kafka_query_watermark_offsets(rk, p->topic, p->partition, &lo, &hi, 5000) !=
		                          RD_KAFKA_RESP_ERR_NO_ERROR)
			continue;
		p->offset = hi;
		rd_kafka_topic_partition_list_add(pin, p->topic, p->partition)->offset = hi;
	}
	if (pin->cnt) {
		/* not rd_kafka_commit(rk, pin, 0): that waits for the coordinator
		 * without a bound, and after a broker restart it can be gone for
		 * long enough to hang this thread, invalidations and shutdown
		 * with it (seen in test_tier_control's broker restart). Bounded
		 * here like the calls above; unanswered, the partitions start
		 * where librdkafka resolves them, as without a pin. */
		rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
		rd_kafka_resp_err_t e = q ? rd_kafka_commit_queue(rk, pin, q, NULL, NULL) : RD_KAFKA_RESP_ERR__CRIT_SYS_RESOURCE;
		if (!e) {
			rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 5000);
			e = ev ? rd_kafka_event_error(ev) : RD_KAFKA_RESP_ERR__TIMED_OUT;
			if (ev)
				rd_kafka_event_destroy(ev);
		}
		if (q)
			rd_kafka_queue_destroy(q); /* a reply still on its way holds the queue itself */
		if (e)
			log_warn("kafka: cannot commit the start of group %s: %s", k->group, rd_kafka_err2str(e));
		else
			log_info("kafka: group %s starts %d new partition(s) at their end", k->group, pin->cnt);
	}
	rd_kafka_topic_partition_list_destroy(pin);
}

/* The topic's partition count, from the metadata; 0 when it did not come.
 * Blocks the invalidate thread for one round trip, on assignment only. */
static unsigned kafka_topic_partitions(struct kafka *k, rd_kafka_t *rk)
{
	rd_kafka_topic_t *t = rd_kafka_topic_new(rk, k->topic, NULL);
	const struct rd_kafka_metadata *md = NULL;
	unsigned n = 0;
	if (t && rd_kafka_metadata(rk, 0, t, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
		for (int i = 0; i < md->topic_cnt; i++)
			if (strcmp(md->topics[i].topic, k->topic) == 0 && !md->topics[i].err)
				n = (unsigned)md->topics[i].partition_cnt;
	}
	if (md)
		rd_kafka_metadata_destroy(md);
	if (t)
		rd_kafka_topic_destroy(t);
	return n;
}

static void kafka_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                               void *opaque)
{
	struct kafka *k = opaque;
	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		kafka_pin_start(k, rk, parts);
		rd_kafka_assign(rk, parts);
		log_info("kafka: assigned %d partition(s) of %s in group %s", parts->cnt, k->topic, k->group);
		k->h.assigned(k->ctx, (unsigned)parts->cnt);
		struct kafka_assignment a = {(unsigned)parts->cnt, kafka_topic_partitions(k, rk)};
		k->h.assignment(k->ctx, &a);
	} else {
		rd_kafka_assign(rk, NULL);
		k->h.assigned(k->ctx, 0);
	}
}

struct kafka_prop {
	const char *name, *value; /* a NULL or empty value leaves librdkafka's default */
};

static int kafka_set_all(rd_kafka_conf_t *c, const struct kafka_prop *p, size_t n, char *err, size_t errlen)
{
	for (size_t i = 0; i < n; i++)
		if (p[i].value && *p[i].value && kafka_set(c, p[i].name, p[i].value, err, errlen) != LV_OK)
			return LV_ERR;
	return LV_OK;
}

/* A configuration: what every handle shares, then `props`. */
static rd_kafka_conf_t *kafka_conf(struct kafka *k, const struct kafka_prop *props, size_t n, char *err,
                                   size_t errlen)
{
	const struct kafka_prop common[] = {
	    {"bootstrap.servers", k->brokers},
	    {"client.id", k->client},
	    /* a broker that vanished is noticed in seconds, not minutes */
	    {"socket.keepalive.enable", "true"},
	    {"reconnect.backoff.max.ms", "1000"},
	    /* logs through the handle's queue too, so they run on our loop */
	    {"log.queue", "true"},
	    /* LEVEE_RDKAFKA_DEBUG=broker,cgrp,... turns on librdkafka's own
	     * debug contexts (logged at levee's debug level) */
	    {"debug", getenv("LEVEE_RDKAFKA_DEBUG")},
	    {"security.protocol", k->cfg.security_protocol},
	    {"sasl.mechanisms", k->cfg.sasl_mechanism},
	    {"sasl.username", k->cfg.sasl_username},
	    {"sasl.password", k->cfg.sasl_password},
	    {"ssl.ca.location", k->cfg.ssl_ca},
	};
	rd_kafka_conf_t *c = rd_kafka_conf_new();
	if (kafka_set_all(c, common, sizeof(common) / sizeof(common[0]), err, errlen) != LV_OK ||
	    kafka_set_all(c, props, n, err, errlen) != LV_OK) {
		rd_kafka_conf_destroy(c);
		return NULL;
	}
	rd_kafka_conf_set_opaque(c, k);
	rd_kafka_conf_set_log_cb(c, kafka_log_cb);
	rd_kafka_conf_set_error_cb(c, kafka_error_cb);
	return c;
}

/* rd_kafka_new(), which owns `c` on success; on failure `c` is destroyed. */
static rd_kafka_t *kafka_handle(rd_kafka_type_t type, rd_kafka_conf_t *c, char *err, size_t errlen)
{
	char why[512];
	rd_kafka_t *rk = rd_kafka_new(type, c, why, sizeof(why));
	if (!rk) {
		rd_kafka_conf_destroy(c);
		snprintf(err, errlen, "kafka: cannot create the %s: %s",
		         type == RD_KAFKA_PRODUCER ? "producer" : "consumer", why);
		return NULL;
	}
	/* logs to the main queue, which the caller forwards */
	rd_kafka_set_log_queue(rk, NULL);
	return rk;
}

/* Forwards `q` to the pipe: librdkafka writes a byte when it goes from
 * empty to non-empty, so every wakeup must drain it completely. */
static void kafka_forward(struct kafka *k, rd_kafka_queue_t *q)
{
	rd_kafka_queue_io_event_enable(q, k->pipefd[1], "k", 1);
	rd_kafka_queue_destroy(q);
}

static rd_kafka_t *kafka_producer_new(struct kafka *k, char *err, size_t errlen)
{
	char tmo[32], linger[32];
	snprintf(tmo, sizeof(tmo), "%" PRIu64, k->cfg.delivery_timeout_ms);
	snprintf(linger, sizeof(linger), "%" PRIu64, k->cfg.linger_ms);
	const struct kafka_prop props[] = {
	    {"enable.idempotence", "true"}, {"acks", "all"},
	    {"message.timeout.ms", tmo},    {"linger.ms", linger},
	    {"queue.buffering.max.messages", "100000"},
	};
	rd_kafka_conf_t *c = kafka_conf(k, props, sizeof(props) / sizeof(props[0]), err, errlen);
	if (!c)
		return NULL;
	rd_kafka_conf_set_dr_msg_cb(c, kafka_dr_cb);
	rd_kafka_t *rk = kafka_handle(RD_KAFKA_PRODUCER, c, err, errlen);
	if (!rk)
		return NULL;
	kafka_forward(k, rd_kafka_queue_get_main(rk));
	k->prod_topic = rd_kafka_topic_new(rk, k->topic, NULL);
	return rk;
}

static rd_kafka_t *kafka_consumer_new(struct kafka *k, char *err, size_t errlen)
{
	const struct kafka_prop props[] = {
	    {"group.id", k->group},
	    {"enable.auto.commit", "true"},
	    {"auto.commit.interval.ms", "1000"},
	    {"enable.auto.offset.store", "false"},
	    {"auto.offset.reset", k->cfg.from_earliest ? "earliest" : "latest"},
	    {"statistics.interval.ms", "1000"},
	    /* a restarted replica rejoins its own group: let the old member
	     * time out quickly */
	    {"session.timeout.ms", "10000"},
	    {"heartbeat.interval.ms", "1000"},
	    /* hand messages over as soon as they exist */
	    {"fetch.wait.max.ms", "100"},
	    {"topic.metadata.refresh.interval.ms", "10000"},
	};
	rd_kafka_conf_t *c = kafka_conf(k, props, sizeof(props) / sizeof(props[0]), err, errlen);
	if (!c)
		return NULL;
	rd_kafka_conf_set_stats_cb(c, kafka_stats_cb);
	rd_kafka_conf_set_rebalance_cb(c, kafka_rebalance_cb);
	rd_kafka_t *rk = kafka_handle(RD_KAFKA_CONSUMER, c, err, errlen);
	if (!rk)
		return NULL;
	/* one queue for messages, rebalances, errors, logs and statistics */
	rd_kafka_poll_set_consumer(rk);
	rd_kafka_topic_partition_list_t *t = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(t, k->topic, RD_KAFKA_PARTITION_UA);
	rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, t);
	rd_kafka_topic_partition_list_destroy(t);
	if (e) {
		snprintf(err, errlen, "kafka: cannot subscribe to %s: %s", k->topic, rd_kafka_err2str(e));
		rd_kafka_destroy(rk);
		return NULL;
	}
	kafka_forward(k, rd_kafka_queue_get_consumer(rk));
	return rk;
}

/* ---- the loop ---------------------------------------------------------- */

static void kafka_consume_one(struct kafka *k, rd_kafka_message_t *m)
{
	if (m->err) {
		if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
			log_debug("kafka: consumer: %s", rd_kafka_message_errstr(m));
		return;
	}
	struct kafka_msg km = {
	    .partition = m->partition,
	    .offset = m->offset,
	    .key = m->key,
	    .klen = m->key_len,
	    .value = m->payload,
	    .vlen = m->len,
	    .timestamp_ms = -1,
	};
	rd_kafka_timestamp_type_t tt;
	int64_t ts = rd_kafka_message_timestamp(m, &tt);
	if (tt != RD_KAFKA_TIMESTAMP_NOT_AVAILABLE)
		km.timestamp_ms = ts;
	rd_kafka_headers_t *hdrs;
	const void *hv;
	size_t hl;
	if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR &&
	    rd_kafka_header_get_last(hdrs, "levee-service", &hv, &hl) == RD_KAFKA_RESP_ERR_NO_ERROR && hv) {
		km.service_hdr = hv;
		km.service_hdr_len = hl;
	}
	k->h.message(k->ctx, &km);
}

static void kafka_producer_reset(struct kafka *k)
{
	k->prod_fatal = false;
	/* every queued message comes back failed, and is spooled by the caller */
	rd_kafka_purge(k->prod, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
	while (rd_kafka_poll(k->prod, 0) > 0)
		;
	if (k->prod_topic)
		rd_kafka_topic_destroy(k->prod_topic);
	k->prod_topic = NULL;
	rd_kafka_destroy(k->prod);
	k->in_flight = 0;
	char err[512];
	k->prod = kafka_producer_new(k, err, sizeof(err));
	if (!k->prod)
		log_error("%s; invalidations go to the outbox until a restart", err);
	k->h.producer_reset(k->ctx);
}

static void kafka_serve(struct kafka *k)
{
	int served = 0;
	if (k->prod)
		while (served < KAFKA_POLL_BATCH && rd_kafka_poll(k->prod, 0) > 0)
			served++;
	if (k->prod_fatal)
		kafka_producer_reset(k);
	while (k->cons && !k->paused && served < 2 * KAFKA_POLL_BATCH) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(k->cons, 0);
		if (!m)
			break;
		kafka_consume_one(k, m);
		rd_kafka_message_destroy(m);
		served++;
	}
	if (served >= KAFKA_POLL_BATCH) {
		/* more may be queued and librdkafka will not write the pipe
		 * again until the queue was empty: come back after other events */
		event_active(k->ev_pipe, EV_READ, 0);
	}
}

static void kafka_on_pipe(evutil_socket_t fd, short what, void *arg)
{
	char buf[256];
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	kafka_serve(arg);
}

static void kafka_on_tick(evutil_socket_t fd, short what, void *arg)
{
	kafka_serve(arg);
}

/* ---- public ------------------------------------------------------------ */

struct kafka *kafka_new(struct event_base *base, const struct kafka_config *cfg, const struct kafka_handlers *h,
                        void *ctx, char *err, size_t errlen)
{
	struct kafka *k = calloc(1, sizeof(*k));
	if (!k) {
		snprintf(err, errlen, "kafka: out of memory");
		return NULL;
	}
	k->base = base;
	k->h = *h;
	k->ctx = ctx;
	k->cfg = *cfg;
	k->pipefd[0] = k->pipefd[1] = -1;
	snprintf(k->brokers, sizeof(k->brokers), "%s", cfg->brokers);
	snprintf(k->topic, sizeof(k->topic), "%s", cfg->topic);
	snprintf(k->group, sizeof(k->group), "%s", cfg->group_id);
	snprintf(k->client, sizeof(k->client), "%s", cfg->client_id);
	if (pipe2(k->pipefd, O_NONBLOCK | O_CLOEXEC) < 0) {
		snprintf(err, errlen, "kafka: pipe: %s", strerror(errno));
		goto fail;
	}
	k->ev_pipe = event_new(base, k->pipefd[0], EV_READ | EV_PERSIST, kafka_on_pipe, k);
	k->ev_tick = event_new(base, -1, EV_PERSIST, kafka_on_tick, k);
	struct timeval tv = {0, KAFKA_TICK_MS * 1000};
	if (!k->ev_pipe || !k->ev_tick || event_add(k->ev_pipe, NULL) < 0 || event_add(k->ev_tick, &tv) < 0) {
		snprintf(err, errlen, "kafka: cannot register events");
		goto fail;
	}
	if (!(k->prod = kafka_producer_new(k, err, errlen)) || !(k->cons = kafka_consumer_new(k, err, errlen)))
		goto fail;
	return k;
fail:
	kafka_free(k);
	return NULL;
}

int kafka_produce(struct kafka *k, const void *key, size_t klen, const void *val, size_t vlen,
                  const char *service, void *opaque, char *err, size_t errlen)
{
	if (!k->prod) {
		snprintf(err, errlen, "no producer");
		return LV_ERR;
	}
	rd_kafka_resp_err_t e = rd_kafka_producev(
	    k->prod, RD_KAFKA_V_TOPIC(k->topic), RD_KAFKA_V_KEY(key, klen), RD_KAFKA_V_VALUE((void *)val, vlen),
	    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADER("levee-service", service, -1),
	    RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
	if (e) {
		snprintf(err, errlen, "%s", rd_kafka_err2str(e));
		return LV_ERR;
	}
	k->in_flight++;
	return LV_OK;
}

void kafka_store_offset(struct kafka *k, int32_t partition, int64_t offset)
{
	if (!k->cons)
		return;
	/* A fresh list each time: librdkafka caches a reference to the
	 * partition inside a list element, so a reused list would both pin the
	 * partition (rd_kafka_destroy then waits forever) and aim a later
	 * store at the partition it cached. */
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, k->topic, partition)->offset = offset + 1;
	rd_kafka_resp_err_t e = rd_kafka_offsets_store(k->cons, l);
	if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
		e = l->elems[0].err;
	rd_kafka_topic_partition_list_destroy(l);
	if (e && e != RD_KAFKA_RESP_ERR__STATE) /* __STATE: the partition was revoked meanwhile */
		log_debug("kafka: cannot store offset %" PRId64 " of partition %d: %s", offset, partition,
		          rd_kafka_err2str(e));
}

void kafka_consume_pause(struct kafka *k, bool pause)
{
	if (k->paused == pause)
		return;
	k->paused = pause;
	if (!pause)
		event_active(k->ev_pipe, EV_READ, 0);
}

unsigned kafka_in_flight(const struct kafka *k)
{
	return k->in_flight;
}

static int64_t kafka_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Leaves the group and commits stored offsets, but gives up at the
 * deadline: with the coordinator down, rd_kafka_consumer_close() would
 * wait out its own timeouts (about ten seconds here), past a pod's grace
 * period. What is not committed is consumed again after a restart. */
static void kafka_consumer_close_by(struct kafka *k, int64_t deadline)
{
	rd_kafka_queue_t *q = rd_kafka_queue_new(k->cons);
	rd_kafka_error_t *e = rd_kafka_consumer_close_queue(k->cons, q);
	if (e) {
		log_warn("kafka: cannot close the consumer: %s", rd_kafka_error_string(e));
		rd_kafka_error_destroy(e);
	} else {
		while (!rd_kafka_consumer_closed(k->cons) && kafka_ms() < deadline) {
			rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 50);
			if (!ev)
				continue;
			if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_REBALANCE)
				rd_kafka_assign(k->cons, NULL); /* closing revokes everything */
			rd_kafka_event_destroy(ev);
		}
	}
	k->cons_closed = rd_kafka_consumer_closed(k->cons);
	k->cons_abandoned = !k->cons_closed;
	if (!k->cons_closed)
		log_warn("kafka: the consumer did not leave its group in time; offsets stored since the last "
		         "auto-commit are consumed again after a restart (harmless: applying is idempotent)");
	rd_kafka_queue_destroy(q);
}

void kafka_close(struct kafka *k, int timeout_ms)
{
	int64_t deadline = kafka_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	if (k->prod) {
		if (timeout_ms > 0 && k->in_flight)
			rd_kafka_flush(k->prod, timeout_ms);
		rd_kafka_purge(k->prod, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
		while (rd_kafka_poll(k->prod, 0) > 0)
			;
	}
	if (k->cons && k->broker_up) {
		/* at least a moment to leave the group, even after a long flush */
		int64_t now = kafka_ms();
		kafka_consumer_close_by(k, deadline > now + 500 ? deadline : now + 500);
	} else if (k->cons) {
		/* no broker: a close would only wait for the coordinator; the
		 * offsets stored since the last auto-commit are consumed again
		 * after a restart, which is harmless */
		log_info("kafka: no broker reachable; leaving without committing");
		k->cons_abandoned = true;
	}
}

void kafka_free(struct kafka *k)
{
	if (!k)
		return;
	/* A consumer whose close timed out is left to the process exit, which
	 * follows: rd_kafka_destroy() would wait for the same coordinator.
	 * Its threads still run, so it must stop writing to the pipe before
	 * the pipe is closed below and its number reused by another file. */
	if (k->cons && !k->cons_abandoned) {
		rd_kafka_destroy(k->cons);
	} else if (k->cons) {
		rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(k->cons);
		if (q) {
			rd_kafka_queue_io_event_enable(q, -1, NULL, 0);
			rd_kafka_queue_destroy(q);
		}
	}
	if (k->prod_topic)
		rd_kafka_topic_destroy(k->prod_topic);
	if (k->prod)
		rd_kafka_destroy(k->prod);
	if (k->ev_pipe)
		event_free(k->ev_pipe);
	if (k->ev_tick)
		event_free(k->ev_tick);
	if (k->pipefd[0] >= 0)
		close(k->pipefd[0]);
	if (k->pipefd[1] >= 0)
		close(k->pipefd[1]);
	free(k);
}

/* ---- statistics -------------------------------------------------------- */

/* One partition object of the statistics: its numbers, or skipped. */
static int kafka_stats_partition(struct json_reader *r, struct kafka_lag *out)
{
	struct json_str name;
	int64_t part = -1, app = -1001, next = -1001, hi = -1001;
	bool desired = false;
	while (json_object_next(r, &name)) {
		int64_t *slot = json_str_eq(&name, "partition")     ? &part
		                : json_str_eq(&name, "app_offset")  ? &app
		                : json_str_eq(&name, "next_offset") ? &next
		                : json_str_eq(&name, "hi_offset")   ? &hi
		                                                    : NULL;
		int rc;
		if (slot)
			rc = json_read_int64(r, slot);
		else if (json_str_eq(&name, "desired"))
			rc = json_read_bool(r, &desired);
		else
			rc = json_skip(r);
		if (rc == JSON_ERR)
			return LV_ERR;
	}
	if (part < 0 || !desired || out->nparts >= KAFKA_MAX_PARTITIONS)
		return LV_OK; /* the "-1" pseudo-partition, or one not assigned to us */
	int64_t pos = app >= 0 ? app : next;
	unsigned i = out->nparts++;
	out->part[i] = (int32_t)part;
	out->pos[i] = pos;
	out->hi[i] = hi;
	if (pos >= 0 && hi >= 0) {
		out->nknown++;
		out->lag += hi > pos ? hi - pos : 0;
	}
	return LV_OK;
}

static int kafka_stats_topic(struct json_reader *r, struct kafka_lag *out)
{
	struct json_str name;
	while (json_object_next(r, &name)) {
		if (!json_str_eq(&name, "partitions")) {
			if (json_skip(r) == JSON_ERR)
				return LV_ERR;
			continue;
		}
		while (json_object_next(r, &name))
			if (kafka_stats_partition(r, out) != LV_OK)
				return LV_ERR;
	}
	return json_error(r, NULL) ? LV_ERR : LV_OK;
}

static int kafka_stats_brokers(struct json_reader *r, struct kafka_lag *out)
{
	struct json_str name;
	while (json_object_next(r, &name)) {
		char state[32] = "", source[16] = "";
		int64_t nodeid = -1;
		struct json_str field;
		while (json_object_next(r, &field)) {
			int rc;
			size_t len;
			if (json_str_eq(&field, "state"))
				rc = json_read_string(r, state, sizeof(state), &len, NULL);
			else if (json_str_eq(&field, "source"))
				rc = json_read_string(r, source, sizeof(source), &len, NULL);
			else if (json_str_eq(&field, "nodeid"))
				rc = json_read_int64(r, &nodeid);
			else
				rc = json_skip(r);
			if (rc == JSON_ERR)
				return LV_ERR;
		}
		/* bootstrap brokers have nodeid -1; the logical ones (the group
		 * coordinator) borrow a real broker's id but are no connection of
		 * their own */
		if (nodeid >= 0 && strcmp(source, "logical") != 0 && strcmp(state, "UP") == 0)
			out->broker_up = true;
	}
	return json_error(r, NULL) ? LV_ERR : LV_OK;
}

int kafka_stats_parse(const char *json, size_t len, const char *topic, struct kafka_lag *out)
{
	memset(out, 0, sizeof(*out));
	struct json_reader r;
	json_init(&r, json, len, JSON_DEPTH_DEFAULT);
	struct json_str name;
	while (json_object_next(&r, &name)) {
		int rc = LV_OK;
		if (json_str_eq(&name, "brokers")) {
			rc = kafka_stats_brokers(&r, out);
		} else if (json_str_eq(&name, "topics")) {
			struct json_str t;
			while (rc == LV_OK && json_object_next(&r, &t))
				rc = json_str_eq(&t, topic) ? kafka_stats_topic(&r, out) : (json_skip(&r) == JSON_ERR ? LV_ERR : LV_OK);
		} else if (json_skip(&r) == JSON_ERR) {
			rc = LV_ERR;
		}
		if (rc != LV_OK)
			return LV_ERR;
	}
	return json_finish(&r) == JSON_OK ? LV_OK : LV_ERR;
}
