/*
 * control.c - the control topic's consumer and publisher (see control.h).
 *
 * Why its own librdkafka handles, not invalidate/kafka.c's: that wrapper's
 * consumer is a group member subscribed to the invalidation topic, storing
 * offsets after each apply, so that one replica resumes where it stopped.
 * The control topic wants the opposite: no group, no commits, every
 * replica reading every partition from (now - 24 h) at each start, so that
 * a restarted replica finds a command still in force. And its producer is
 * driven from the invalidate thread's loop only, while tier changes are
 * published from the main thread. Two small handles of our own cost less
 * than bending either to the other's rules.
 *
 * Why a thread of its own, not the main loop: assigning by time takes
 * blocking calls (the topic's metadata, rd_kafka_offsets_for_times), up to
 * seconds each while a broker is down, and no loop may block. The thread
 * owns both handles' polling; the main thread only calls rd_kafka_producev()
 * (thread-safe) from the tier core's change callback, and reads counters.
 *
 * Invariants:
 *  - A record is verified (control_msg.c) before its value is parsed, and
 *    counted exactly once: applied, refused by reason, or ignored by reason.
 *  - Until every assigned partition has been read to its end ("caught
 *    up"), commands are folded, not applied: only the newest one for this
 *    service still in force (by record time, then record order) reaches the
 *    tier core, so a restart does not replay a day of forcings.
 *  - A command id is applied once (a window of recent ids, dedup.c).
 *  - Nothing here blocks the main thread or fails a request: a producev
 *    that cannot queue counts a failed event and goes on.
 */
#include "control/control.h"

#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "control/control_msg.h"
#include "invalidate/dedup.h"
#include "invalidate/invalidate.h"
#include "invalidate/kafka.h"
#include "log.h"
#include "net/loop.h"
#include "resilience/tiers.h"
#include "stats.h"

#define CONTROL_POLL_MS 100
#define CONTROL_RETRY_MS 1000       /* between attempts to assign while Kafka is away */
#define CONTROL_CALL_MS 2000        /* bound of each blocking metadata or offsets call */
#define CONTROL_CATCHUP_MS 15000    /* caught up at the latest this long after assignment */
#define CONTROL_DEDUP 4096          /* command ids remembered */
#define CONTROL_WARN_GAP_US 10000000 /* one refusal line per 10 s, with the count held back */
#define CONTROL_MAX_PARTS 1024
#define CONTROL_KEY_MAX 1024

struct control_last {
	bool any;
	char id[TIER_ID_MAX], tier[LV_NAME_MAX], reason[TIER_REASON_MAX], type[16];
	uint64_t until_unix_ms, applied_unix_ms;
};

static struct control {
	bool on;
	pthread_t thread;
	atomic_bool stop;
	rd_kafka_t *cons, *prod;
	char service[LV_NAME_MAX], instance[LV_NAME_MAX], topic[LV_NAME_MAX * 4], group[LV_NAME_MAX * 3];
	unsigned char key[CONTROL_KEY_MAX];
	size_t klen;
	char key_env[LV_NAME_MAX];
	struct dedup *dd;
	struct log_limit warn_limit;

	/* the control thread's only */
	int nparts, neof;
	bool eof[CONTROL_MAX_PARTS];
	uint64_t assigned_at_ms;
	bool folding;
	struct ctl_fold fold; /* while folding: the newest force pending */

	/* read by the main thread */
	atomic_bool publishing;
	atomic_int assigned;
	atomic_bool caught_up;
	atomic_ullong verdicts[CTL_VERDICT_COUNT];
	atomic_ullong published, failed;
	pthread_mutex_t mu; /* last */
	struct control_last last;
} ctl = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* ---- librdkafka -------------------------------------------------------- */

static void control_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	kafka_log_line("control: kafka", level, fac, buf);
}

static void control_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	log_debug("control: kafka: %s", reason);
}

static void control_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	if (m->err) {
		atomic_fetch_add(&ctl.failed, 1);
		log_warn("control: tier-change event not delivered: %s", rd_kafka_err2str(m->err));
	} else
		atomic_fetch_add(&ctl.published, 1);
}

/* Sets each (name, value) of `props` on `c`; a NULL or empty value leaves
 * librdkafka's default. */
static int control_conf_set(rd_kafka_conf_t *c, const char *const (*props)[2], size_t n, char *err,
                            size_t errlen)
{
	char why[512];
	for (size_t i = 0; i < n; i++) {
		if (!props[i][1] || !*props[i][1])
			continue;
		if (rd_kafka_conf_set(c, props[i][0], props[i][1], why, sizeof(why)) != RD_KAFKA_CONF_OK) {
			snprintf(err, errlen, "kafka: %s: %s", props[i][0], why);
			return LV_ERR;
		}
	}
	return LV_OK;
}

int control_kafka_conf(void *conf, const struct lv_policy *p, const char *brokers, char *err, size_t errlen)
{
	static const char *const protocols[] = {"plaintext", "ssl", "sasl_plaintext", "sasl_ssl"};
	static const char *const mechanisms[] = {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"};
	bool sasl = p && p->kafka.security_protocol >= 2;
	const char *const props[][2] = {
	    {"bootstrap.servers", brokers},
	    {"security.protocol", p ? protocols[p->kafka.security_protocol] : NULL},
	    {"sasl.mechanisms", sasl ? mechanisms[p->kafka.sasl_mechanism] : NULL},
	    {"sasl.username", sasl ? p->kafka.sasl_username : NULL},
	    {"sasl.password", sasl ? p->kafka.sasl_password : NULL},
	    {"ssl.ca.location", p && strcmp(p->kafka.ssl_ca, "system") != 0 ? p->kafka.ssl_ca : NULL},
	    {"debug", getenv("LEVEE_RDKAFKA_DEBUG")},
	};
	return control_conf_set(conf, props, sizeof(props) / sizeof(props[0]), err, errlen);
}

static rd_kafka_t *control_handle(const struct lv_policy *p, rd_kafka_type_t type, char *err, size_t errlen)
{
	char tmo[32];
	snprintf(tmo, sizeof(tmo), "%" PRIu64, p->kafka.delivery_timeout_ms);
	const char *const props[][2] = {
	    {"client.id", ctl.instance},
	    {"socket.keepalive.enable", "true"},
	    {"reconnect.backoff.max.ms", "1000"},
	    /* the producer: an event is worth little late, and never twice as much as once */
	    {"acks", type == RD_KAFKA_PRODUCER ? "all" : NULL},
	    {"linger.ms", type == RD_KAFKA_PRODUCER ? "0" : NULL},
	    {"message.timeout.ms", type == RD_KAFKA_PRODUCER ? tmo : NULL},
	    /* the consumer: a group id only because librdkafka's consumer API
	     * wants one; nothing is ever committed under it, and assign()
	     * never joins it, so it leaves nothing behind on the broker */
	    {"group.id", type == RD_KAFKA_CONSUMER ? ctl.group : NULL},
	    {"enable.auto.commit", type == RD_KAFKA_CONSUMER ? "false" : NULL},
	    {"enable.auto.offset.store", type == RD_KAFKA_CONSUMER ? "false" : NULL},
	    {"enable.partition.eof", type == RD_KAFKA_CONSUMER ? "true" : NULL},
	    {"auto.offset.reset", type == RD_KAFKA_CONSUMER ? "latest" : NULL},
	    {"fetch.wait.max.ms", type == RD_KAFKA_CONSUMER ? "100" : NULL},
	};
	rd_kafka_conf_t *c = rd_kafka_conf_new();
	if (control_kafka_conf(c, p, p->kafka.brokers, err, errlen) != LV_OK ||
	    control_conf_set(c, props, sizeof(props) / sizeof(props[0]), err, errlen) != LV_OK) {
		rd_kafka_conf_destroy(c);
		return NULL;
	}
	char why[512];
	rd_kafka_conf_set_log_cb(c, control_log_cb);
	rd_kafka_conf_set_error_cb(c, control_error_cb);
	if (type == RD_KAFKA_PRODUCER)
		rd_kafka_conf_set_dr_msg_cb(c, control_dr_cb);
	rd_kafka_t *rk = rd_kafka_new(type, c, why, sizeof(why));
	if (!rk) {
		rd_kafka_conf_destroy(c);
		snprintf(err, errlen, "control: cannot create the Kafka %s: %s",
		         type == RD_KAFKA_PRODUCER ? "producer" : "consumer", why);
		return NULL;
	}
	if (type == RD_KAFKA_CONSUMER)
		rd_kafka_poll_set_consumer(rk);
	return rk;
}

/* Every partition of the topic, from the first record of the last 24 h
 * (the end where there is none). Blocking; the control thread only. */
static int control_assign(void)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_t *t = rd_kafka_topic_new(ctl.cons, ctl.topic, NULL);
	int n = -1;
	if (t && rd_kafka_metadata(ctl.cons, 0, t, &md, CONTROL_CALL_MS) == RD_KAFKA_RESP_ERR_NO_ERROR)
		for (int i = 0; i < md->topic_cnt; i++)
			if (strcmp(md->topics[i].topic, ctl.topic) == 0 && !md->topics[i].err)
				n = md->topics[i].partition_cnt;
	if (md)
		rd_kafka_metadata_destroy(md);
	if (t)
		rd_kafka_topic_destroy(t);
	if (n <= 0)
		return LV_ERR;
	if (n > CONTROL_MAX_PARTS)
		n = CONTROL_MAX_PARTS;
	rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(n);
	int64_t since = (int64_t)(now_unix_ms() - CTL_HORIZON_MS);
	for (int i = 0; i < n; i++)
		rd_kafka_topic_partition_list_add(parts, ctl.topic, i)->offset = since;
	rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(ctl.cons, parts, CONTROL_CALL_MS);
	if (e) {
		log_debug("control: offsets for times: %s", rd_kafka_err2str(e));
		rd_kafka_topic_partition_list_destroy(parts);
		return LV_ERR;
	}
	for (int i = 0; i < parts->cnt; i++)
		if (parts->elems[i].err || parts->elems[i].offset < 0)
			parts->elems[i].offset = RD_KAFKA_OFFSET_END; /* nothing that recent */
	e = rd_kafka_assign(ctl.cons, parts);
	rd_kafka_topic_partition_list_destroy(parts);
	if (e) {
		log_warn("control: cannot assign %s: %s", ctl.topic, rd_kafka_err2str(e));
		return LV_ERR;
	}
	ctl.nparts = n;
	ctl.neof = 0;
	memset(ctl.eof, 0, sizeof(ctl.eof));
	ctl.assigned_at_ms = now_unix_ms();
	atomic_store(&ctl.assigned, n);
	log_info("control: reading %d partition(s) of %s from the last 24 h", n, ctl.topic);
	return LV_OK;
}

/* ---- applying commands ------------------------------------------------- */

static void control_count(enum ctl_verdict v, const char *why, const rd_kafka_message_t *m)
{
	atomic_fetch_add(&ctl.verdicts[v], 1);
	if (v == CTL_APPLY || v >= CTL_IGNORED_FIRST)
		return;
	uint64_t skipped;
	if (log_limit_allow(&ctl.warn_limit, now_us(), CONTROL_WARN_GAP_US, &skipped))
		log_warn("control: refused a command (%s: %s) at %s[%" PRId32 "]@%" PRId64 "%s", ctl_verdict_name(v),
		         why, ctl.topic, m->partition, m->offset, skipped ? " (and earlier ones not logged)" : "");
}

static void control_remember(const struct ctl_cmd *c)
{
	pthread_mutex_lock(&ctl.mu);
	ctl.last.any = true;
	snprintf(ctl.last.id, sizeof(ctl.last.id), "%s", c->id);
	snprintf(ctl.last.type, sizeof(ctl.last.type), "%s", c->type == CTL_FORCE ? "force-tier" : "clear-tier");
	snprintf(ctl.last.tier, sizeof(ctl.last.tier), "%s", c->type == CTL_FORCE ? c->tier : "");
	snprintf(ctl.last.reason, sizeof(ctl.last.reason), "%s", c->reason);
	ctl.last.until_unix_ms = c->type == CTL_FORCE ? c->until_unix_ms : 0;
	ctl.last.applied_unix_ms = now_unix_ms();
	pthread_mutex_unlock(&ctl.mu);
}

/* Hands `c` to the tier core. The verdict: APPLY or REJECTED. */
static enum ctl_verdict control_apply(const struct ctl_cmd *c, const char **why)
{
	static char err[256];
	if (c->type == CTL_FORCE) {
		struct tier_force f = {.until_unix_ms = c->until_unix_ms};
		snprintf(f.tier, sizeof(f.tier), "%s", c->tier);
		snprintf(f.source, sizeof(f.source), "control");
		snprintf(f.id, sizeof(f.id), "%s", c->id);
		snprintf(f.reason, sizeof(f.reason), "%s", c->reason);
		if (tiers_force(&f, err, sizeof(err)) != LV_OK) {
			*why = err;
			return CTL_REJECTED;
		}
		log_info("control: forced tier %s until %" PRIu64 " (id %s, reason \"%s\")", c->tier, c->until_unix_ms,
		         c->id, c->reason);
	} else {
		bool ended = tiers_clear(strcmp(c->clear, "*") == 0 ? NULL : c->clear);
		log_info("control: clear %s (id %s): %s", c->clear, c->id,
		         ended ? "ended a forcing" : "nothing to end");
	}
	control_remember(c);
	return CTL_APPLY;
}

static bool control_tier_known(const char *tier, void *arg)
{
	(void)arg;
	return tiers_known(tier);
}

static void control_caught_up(void)
{
	ctl.folding = false;
	atomic_store(&ctl.caught_up, true);
	unsigned moot = 0;
	const struct ctl_cmd *c = ctl_fold_result(&ctl.fold, control_tier_known, NULL, &moot);
	atomic_fetch_add(&ctl.verdicts[CTL_SUPERSEDED], moot);
	if (!c) {
		log_info("control: caught up with %s; no command in force", ctl.topic);
		ctl_fold_free(&ctl.fold);
		return;
	}
	const char *why = "ok";
	enum ctl_verdict v = ctl_check(c, ctl.service, now_unix_ms());
	if (v == CTL_APPLY)
		v = control_apply(c, &why);
	log_info("control: caught up with %s; the command in force, %s: %s", ctl.topic, c->id, ctl_verdict_name(v));
	atomic_fetch_add(&ctl.verdicts[v], 1);
	ctl_fold_free(&ctl.fold);
}

static void control_record(const rd_kafka_message_t *m)
{
	const void *sig = NULL;
	size_t slen = 0;
	rd_kafka_headers_t *hdrs;
	if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR &&
	    rd_kafka_header_get_last(hdrs, CTL_SIG_HEADER, &sig, &slen) != RD_KAFKA_RESP_ERR_NO_ERROR)
		sig = NULL;
	if (!sig)
		slen = 0;
	static const char empty[1];
	struct ctl_cmd c;
	const char *why = "";
	enum ctl_verdict v = ctl_accept(ctl.key, ctl.klen, sig, slen,
	                                m->payload ? (const char *)m->payload : empty, m->len, ctl.service,
	                                now_unix_ms(), &c, &why);
	/* while catching up, an expired forcing still counts: it may have
	 * replaced an older one that has not expired (ctl_fold_result()) */
	bool fold = ctl.folding && (v == CTL_APPLY || (v == CTL_EXPIRED && c.type == CTL_FORCE));
	if ((v == CTL_APPLY || fold) && dedup_check_and_add(ctl.dd, c.id, strlen(c.id))) {
		v = CTL_DUPLICATE;
		fold = false;
	}
	if (fold) {
		rd_kafka_timestamp_type_t tt;
		int64_t ts = rd_kafka_message_timestamp(m, &tt);
		if (ctl_fold_add(&ctl.fold, &c, tt == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? 0 : ts) == LV_OK)
			return; /* counted once caught up */
		why = "out of memory while catching up";
		v = CTL_REJECTED;
	}
	if (v == CTL_APPLY)
		v = control_apply(&c, &why);
	control_count(v, why, m);
}

static void control_consume(rd_kafka_message_t *m)
{
	if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
		if (m->partition >= 0 && m->partition < ctl.nparts && !ctl.eof[m->partition]) {
			ctl.eof[m->partition] = true;
			if (++ctl.neof == ctl.nparts && ctl.folding)
				control_caught_up();
		}
		return;
	}
	if (m->err) {
		log_debug("control: consumer: %s", rd_kafka_message_errstr(m));
		return;
	}
	control_record(m);
}

static void *control_main(void *arg)
{
	uint64_t next_try = 0;
	while (!atomic_load(&ctl.stop)) {
		rd_kafka_poll(ctl.prod, 0);
		if (!atomic_load(&ctl.assigned)) {
			if (now_unix_ms() < next_try) {
				struct timespec ts = {0, CONTROL_POLL_MS * 1000000L};
				nanosleep(&ts, NULL);
				continue;
			}
			if (control_assign() != LV_OK) {
				next_try = now_unix_ms() + CONTROL_RETRY_MS;
				continue;
			}
		}
		rd_kafka_message_t *m = rd_kafka_consumer_poll(ctl.cons, CONTROL_POLL_MS);
		if (m) {
			control_consume(m);
			rd_kafka_message_destroy(m);
		}
		if (ctl.folding && now_unix_ms() - ctl.assigned_at_ms > CONTROL_CATCHUP_MS) {
			log_warn("control: %d of %d partition(s) of %s not read to their end in %d s; "
			         "applying what was read",
			         ctl.nparts - ctl.neof, ctl.nparts, ctl.topic, CONTROL_CATCHUP_MS / 1000);
			control_caught_up();
		}
	}
	return NULL;
}

/* ---- publishing tier changes ------------------------------------------- */

/* The tier core's callback, on the main thread: queue the event, never wait. */
static void control_on_change(void *arg, const struct tier_change *tc)
{
	if (!atomic_load(&ctl.publishing))
		return;
	char val[CTL_MAX_BYTES];
	size_t n = ctl_event_encode(tc, ctl.service, ctl.instance, val, sizeof(val));
	if (!n) {
		atomic_fetch_add(&ctl.failed, 1);
		return;
	}
	char sig[CTL_SIG_LEN + 1];
	bool signed_ = ctl.klen >= CTL_KEY_MIN;
	if (signed_)
		ctl_sign(ctl.key, ctl.klen, val, n, sig);
	rd_kafka_resp_err_t e =
	    signed_ ? rd_kafka_producev(ctl.prod, RD_KAFKA_V_TOPIC(ctl.topic), RD_KAFKA_V_VALUE(val, n),
	                                RD_KAFKA_V_KEY(ctl.service, strlen(ctl.service)),
	                                RD_KAFKA_V_HEADER(CTL_SIG_HEADER, sig, CTL_SIG_LEN),
	                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)
	            : rd_kafka_producev(ctl.prod, RD_KAFKA_V_TOPIC(ctl.topic), RD_KAFKA_V_VALUE(val, n),
	                                RD_KAFKA_V_KEY(ctl.service, strlen(ctl.service)),
	                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
	if (e) {
		atomic_fetch_add(&ctl.failed, 1);
		log_warn("control: tier-change event not queued: %s", rd_kafka_err2str(e));
	}
}

/* ---- public ------------------------------------------------------------ */

int control_start(const struct lv_policy *p, char *err, size_t errlen)
{
	if (!policy_kafka_on(p) || !p->kafka.control_topic[0])
		return LV_OK;
	snprintf(ctl.service, sizeof(ctl.service), "%s", p->service);
	snprintf(ctl.topic, sizeof(ctl.topic), "%s", p->kafka.control_topic);
	snprintf(ctl.key_env, sizeof(ctl.key_env), "%s", p->kafka.control_key_env);
	invalidate_instance_name(p, ctl.instance, sizeof(ctl.instance));
	snprintf(ctl.group, sizeof(ctl.group), "levee.control.%s.%s", ctl.service, ctl.instance);
	const char *key = getenv(p->kafka.control_key_env);
	ctl.klen = key ? strlen(key) : 0;
	if (ctl.klen > sizeof(ctl.key))
		ctl.klen = 0;
	if (ctl.klen >= CTL_KEY_MIN)
		memcpy(ctl.key, key, ctl.klen);
	else {
		ctl.klen = 0;
		log_warn("control: $%s holds no key of at least %u bytes: every command on %s is refused, and tier "
		         "changes go out unsigned",
		         p->kafka.control_key_env, CTL_KEY_MIN, ctl.topic);
	}
	if (!(ctl.dd = dedup_new(CONTROL_DEDUP))) {
		snprintf(err, errlen, "control: out of memory");
		return LV_ERR;
	}
	if (!(ctl.prod = control_handle(p, RD_KAFKA_PRODUCER, err, errlen)) ||
	    !(ctl.cons = control_handle(p, RD_KAFKA_CONSUMER, err, errlen)))
		return LV_ERR;
	ctl.folding = true;
	if (pthread_create(&ctl.thread, NULL, control_main, NULL) != 0) {
		snprintf(err, errlen, "control: cannot start its thread");
		return LV_ERR;
	}
	ctl.on = true;
	atomic_store(&ctl.publishing, true);
	tiers_on_change(control_on_change, NULL);
	log_info("control: topic %s, service %s, instance %s, key %s", ctl.topic, ctl.service, ctl.instance,
	         ctl.klen ? "present" : "absent");
	return LV_OK;
}

void control_stop(int timeout_ms)
{
	if (!ctl.on)
		return;
	atomic_store(&ctl.publishing, false);
	atomic_store(&ctl.stop, true);
	pthread_join(ctl.thread, NULL);
	ctl.on = false;
	rd_kafka_flush(ctl.prod, timeout_ms);
	rd_kafka_destroy(ctl.prod);
	rd_kafka_destroy_flags(ctl.cons, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
	ctl.prod = ctl.cons = NULL;
	dedup_free(ctl.dd);
	ctl.dd = NULL;
	memset(ctl.key, 0, sizeof(ctl.key));
}

static void json_text(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

/* `prefix` (the member's name), then `s` as a JSON string, or null. */
static void json_member(FILE *f, const char *prefix, const char *s)
{
	fputs(prefix, f);
	if (s)
		json_text(f, s);
	else
		fputs("null", f);
}

/* The counts of verdicts [first, end): JSON members, or with `metric`
 * one Prometheus sample each, labelled by reason. */
static void control_verdicts(FILE *f, int first, int end, const char *metric)
{
	for (int v = first; v < end; v++) {
		unsigned long long n = atomic_load(&ctl.verdicts[v]);
		char value[PROM_VALUE_MAX];
		if (metric)
			fprintf(f, "%s{reason=\"%s\"} %llu\n", metric, prom_value(value, ctl_verdict_name(v)), n);
		else
			fprintf(f, "%s\"%s\":%llu", v == first ? "" : ",", ctl_verdict_name(v), n);
	}
}

void control_status_json(void *file)
{
	FILE *f = file;
	if (!ctl.on) {
		fputs("\"control\":{\"enabled\":false}", f);
		return;
	}
	json_member(f, "\"control\":{\"enabled\":true,\"topic\":", ctl.topic);
	json_member(f, ",\"key_env\":", ctl.key_env);
	fprintf(f, ",\"key\":%s,\"assigned_partitions\":%d,\"caught_up\":%s,\"applied\":%llu,\"refused\":{",
	        ctl.klen ? "true" : "false", atomic_load(&ctl.assigned), atomic_load(&ctl.caught_up) ? "true" : "false",
	        (unsigned long long)atomic_load(&ctl.verdicts[CTL_APPLY]));
	control_verdicts(f, CTL_REFUSED_FIRST, CTL_REFUSED_END, NULL);
	fputs("},\"ignored\":{", f);
	control_verdicts(f, CTL_IGNORED_FIRST, CTL_VERDICT_COUNT, NULL);
	fprintf(f, "},\"events\":{\"published\":%llu,\"failed\":%llu},\"last_applied\":",
	        (unsigned long long)atomic_load(&ctl.published), (unsigned long long)atomic_load(&ctl.failed));
	pthread_mutex_lock(&ctl.mu);
	struct control_last l = ctl.last;
	pthread_mutex_unlock(&ctl.mu);
	if (!l.any) {
		fputs("null}", f);
		return;
	}
	json_member(f, "{\"id\":", l.id);
	json_member(f, ",\"type\":", l.type);
	json_member(f, ",\"tier\":", l.tier[0] ? l.tier : NULL);
	json_member(f, ",\"reason\":", l.reason);
	fprintf(f, ",\"until_unix_ms\":%" PRIu64 ",\"applied_unix_ms\":%" PRIu64 "}}", l.until_unix_ms,
	        l.applied_unix_ms);
}

void control_render_prometheus(void *file)
{
	FILE *f = file;
	if (!ctl.on)
		return;
	fprintf(f,
	        "# HELP levee_control_commands_applied_total Control commands for this service handed to the tier "
	        "core\n# TYPE levee_control_commands_applied_total counter\nlevee_control_commands_applied_total "
	        "%llu\n",
	        (unsigned long long)atomic_load(&ctl.verdicts[CTL_APPLY]));
	fputs("# HELP levee_control_commands_refused_total Control records refused, by reason (logged at warn)\n"
	      "# TYPE levee_control_commands_refused_total counter\n",
	      f);
	control_verdicts(f, CTL_REFUSED_FIRST, CTL_REFUSED_END, "levee_control_commands_refused_total");
	fputs("# HELP levee_control_commands_ignored_total Control records ignored: expired at arrival, for another "
	      "service, an id already applied, tier-change events\n# TYPE levee_control_commands_ignored_total "
	      "counter\n",
	      f);
	control_verdicts(f, CTL_IGNORED_FIRST, CTL_VERDICT_COUNT, "levee_control_commands_ignored_total");
	fprintf(f,
	        "# HELP levee_control_events_published_total Tier-change events the broker acknowledged\n"
	        "# TYPE levee_control_events_published_total counter\nlevee_control_events_published_total %llu\n"
	        "# HELP levee_control_events_failed_total Tier-change events not queued or not delivered\n"
	        "# TYPE levee_control_events_failed_total counter\nlevee_control_events_failed_total %llu\n"
	        "# HELP levee_control_key_present 1 when the control key is set (at least 16 bytes)\n"
	        "# TYPE levee_control_key_present gauge\nlevee_control_key_present %d\n"
	        "# HELP levee_control_caught_up 1 once the last 24 h of the control topic have been read\n"
	        "# TYPE levee_control_caught_up gauge\nlevee_control_caught_up %d\n",
	        (unsigned long long)atomic_load(&ctl.published), (unsigned long long)atomic_load(&ctl.failed),
	        ctl.klen ? 1 : 0, atomic_load(&ctl.caught_up) ? 1 : 0);
}
