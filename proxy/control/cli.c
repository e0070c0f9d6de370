/*
 * cli.c - `levee tier force` and `levee tier clear`: publish one signed
 * command on the control topic and wait for the broker to take it.
 *
 *   levee tier force --brokers H:P --topic T --service S --tier NAME --for 10m
 *                    [--reason TEXT] [--id ID] [--key-env NAME]
 *   levee tier clear --brokers H:P --topic T --service S [--id ID] [--reason TEXT]
 *                    [--key-env NAME]
 *   levee tier force|clear --policy FILE ...
 *
 * The key is read from $LEVEE_CONTROL_KEY, or the variable --key-env names.
 * With --policy, brokers, topic, service, key variable and the Kafka
 * security settings come from that policy file (the one the pod runs), and
 * the options above override them.
 * On success the command's JSON goes to stdout and the exit status is 0;
 * 1 when it could not be published (no key, Kafka did not take it within
 * CLI_WAIT_MS), 2 for a usage error.
 */
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "control/control.h"
#include "control/control_msg.h"
#include "net/loop.h"

#define CLI_WAIT_MS 10000

void control_cli_usage(void *file)
{
	fputs("       levee tier force --brokers HOST:PORT --topic TOPIC --service NAME --tier TIER --for DURATION\n"
	      "                        [--reason TEXT] [--id ID] [--key-env VAR]\n"
	      "       levee tier clear --brokers HOST:PORT --topic TOPIC --service NAME [--id FORCING-ID|*]\n"
	      "                        [--reason TEXT] [--key-env VAR]\n"
	      "         publish a signed command on the control topic (docs/control-message.md); the key is\n"
	      "         read from $LEVEE_CONTROL_KEY or $VAR; TIER is a tier's name or normal; DURATION as in\n"
	      "         the policy (30s, 10m, 1h; at most 24h); clear --id names the forcing to end (default *);\n"
	      "         --policy FILE takes brokers, topic, service, key variable and TLS/SASL from that file\n",
	      file);
}

struct cli_dr {
	int done;
	rd_kafka_resp_err_t err;
};

static void cli_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct cli_dr *d = opaque;
	d->done = 1;
	d->err = m->err;
}

/* librdkafka says every failed connection attempt; the one line that
 * matters is the delivery's fate, below */
static void cli_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	if (level <= 2)
		fprintf(stderr, "levee tier: kafka: %s: %s\n", fac, buf);
}

static int cli_usage(const char *why)
{
	fprintf(stderr, "levee tier: %s\nusage:\n", why);
	control_cli_usage(stderr);
	return 2;
}

/* Signs and publishes `val`; 0, or 1 with the reason on stderr. */
static int cli_publish(const struct lv_policy *p, const char *brokers, const char *topic, const char *service,
                       const char *key, size_t klen, const char *val, size_t n)
{
	char why[512], sig[CTL_SIG_LEN + 1];
	struct cli_dr d = {0};
	ctl_sign(key, klen, val, n, sig);
	rd_kafka_conf_t *c = rd_kafka_conf_new();
	if (control_kafka_conf(c, p, brokers, why, sizeof(why)) != LV_OK ||
	    rd_kafka_conf_set(c, "acks", "all", why, sizeof(why)) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(c, "message.timeout.ms", "9000", why, sizeof(why)) != RD_KAFKA_CONF_OK) {
		fprintf(stderr, "levee tier: %s\n", why);
		rd_kafka_conf_destroy(c);
		return 1;
	}
	rd_kafka_conf_set_dr_msg_cb(c, cli_dr_cb);
	rd_kafka_conf_set_log_cb(c, cli_log_cb);
	rd_kafka_conf_set_opaque(c, &d);
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, why, sizeof(why));
	if (!rk) {
		fprintf(stderr, "levee tier: %s\n", why);
		rd_kafka_conf_destroy(c);
		return 1;
	}
	rd_kafka_resp_err_t e = rd_kafka_producev(
	    rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_VALUE((void *)val, n), RD_KAFKA_V_KEY(service, strlen(service)),
	    RD_KAFKA_V_HEADER(CTL_SIG_HEADER, sig, CTL_SIG_LEN), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
	    RD_KAFKA_V_END);
	if (!e) {
		rd_kafka_flush(rk, CLI_WAIT_MS);
		e = d.done ? d.err : RD_KAFKA_RESP_ERR__TIMED_OUT;
	}
	rd_kafka_destroy(rk);
	if (e) {
		fprintf(stderr, "levee tier: not published to %s on %s: %s\n", topic, brokers, rd_kafka_err2str(e));
		return 1;
	}
	return 0;
}

static int cli_run(const struct lv_policy *p, bool force, const char *brokers, const char *topic,
                   const char *service, const char *tier, const char *dur, const char *reason, const char *id,
                   const char *key_env);

int control_cli(int argc, char **argv)
{
	if (argc < 2 || (strcmp(argv[1], "force") != 0 && strcmp(argv[1], "clear") != 0))
		return cli_usage("tier force or tier clear");
	bool force = strcmp(argv[1], "force") == 0;
	const char *brokers = NULL, *topic = NULL, *service = NULL, *tier = NULL, *dur = NULL, *reason = "",
	           *id = NULL, *key_env = NULL, *policy = NULL;
	for (int i = 2; i < argc; i++) {
		static const char *const names[] = {"--brokers", "--topic", "--service", "--tier",   "--for",
		                                    "--reason",  "--id",    "--key-env", "--policy"};
		const char **slots[] = {&brokers, &topic, &service, &tier, &dur, &reason, &id, &key_env, &policy};
		size_t k = 0;
		while (k < sizeof(names) / sizeof(names[0]) && strcmp(argv[i], names[k]) != 0)
			k++;
		if (k == sizeof(names) / sizeof(names[0]))
			return cli_usage("unknown argument");
		if (i + 1 >= argc)
			return cli_usage("an option needs a value");
		*slots[k] = argv[++i];
	}
	struct lv_policy *p = NULL;
	if (policy) {
		struct lv_diag d = {0};
		if (policy_load_file(policy, NULL, &p, &d) != LV_OK) {
			for (size_t i = 0; i < d.n; i++)
				fprintf(stderr, "%s\n", d.lines[i]);
			diag_free(&d);
			return 1;
		}
		diag_free(&d);
		brokers = brokers ? brokers : p->kafka.brokers[0] ? p->kafka.brokers : NULL;
		topic = topic ? topic : p->kafka.control_topic[0] ? p->kafka.control_topic : NULL;
		service = service ? service : p->service;
		key_env = key_env ? key_env : p->kafka.control_key_env;
	}
	int rc = cli_run(p, force, brokers, topic, service, tier, dur, reason, id,
	                 key_env ? key_env : "LEVEE_CONTROL_KEY");
	if (p)
		policy_unref(p);
	return rc;
}

/* The command from the options, signed and published. */
static int cli_run(const struct lv_policy *p, bool force, const char *brokers, const char *topic,
                   const char *service, const char *tier, const char *dur, const char *reason, const char *id,
                   const char *key_env)
{
	if (!brokers || !topic || !service)
		return cli_usage("--brokers, --topic and --service are required (or a --policy that has them)");
	if (force && (!tier || !dur))
		return cli_usage("force needs --tier and --for");
	if (!force && (tier || dur))
		return cli_usage("clear takes no --tier or --for");

	struct ctl_cmd c = {.type = force ? CTL_FORCE : CTL_CLEAR, .issued_unix_ms = (int64_t)now_unix_ms()};
	uint64_t ms = 0;
	const char *why;
	if (force && (value_duration_ms(dur, &ms, &why) != LV_OK || ms == 0 || ms > CTL_HORIZON_MS))
		return cli_usage("--for: a duration from 1ms to 24h");
	char host[64] = "cli";
	gethostname(host, sizeof(host));
	host[sizeof(host) - 1] = '\0';
	for (char *h = host; *h; h++)
		if (*h <= ' ' || *h >= 0x7f)
			*h = '_';
	uint32_t rnd = 0;
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = (uint32_t)getpid();
	if (force && id)
		snprintf(c.id, sizeof(c.id), "%s", id);
	else
		snprintf(c.id, sizeof(c.id), "cli.%.24s.%" PRIu64 ".%08" PRIx32, host, now_unix_ms(), rnd);
	snprintf(c.service, sizeof(c.service), "%s", service);
	if (force) {
		snprintf(c.tier, sizeof(c.tier), "%s", tier);
		c.until_unix_ms = now_unix_ms() + ms;
	} else
		snprintf(c.clear, sizeof(c.clear), "%s", id ? id : "*");
	snprintf(c.reason, sizeof(c.reason), "%s", reason);
	const char *user = getenv("USER");
	snprintf(c.issued_by, sizeof(c.issued_by), "%s@%s", user && *user ? user : "levee", host);
	char val[CTL_MAX_BYTES + 1];
	size_t n = ctl_encode(&c, val, sizeof(val));
	if (!n)
		return cli_usage("a value breaks the rules of docs/control-message.md (id, service, tier: printable, "
		                 "no space, under 64 bytes; reason under 256)");

	const char *key = getenv(key_env);
	size_t klen = key ? strlen(key) : 0;
	if (klen < CTL_KEY_MIN) {
		fprintf(stderr, "levee tier: $%s holds no key of at least %u bytes\n", key_env, CTL_KEY_MIN);
		return 1;
	}
	if (cli_publish(p, brokers, topic, service, key, klen, val, n) != 0)
		return 1;
	printf("%s\n", val);
	return 0;
}
