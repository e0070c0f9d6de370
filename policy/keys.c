/*
 * keys.c - THE table of policy keys, and everything derived from it but
 * the Markdown reference (keys_doc.c).
 *
 * Every key is one row below. The row drives parsing (its type), defaults
 * (written in policy syntax and parsed by the same code as the file, so a
 * bad default cannot hide), bounds (also in policy syntax, so messages read
 * "must be between 1KiB and 1MiB"), whether a reload may change it, and its
 * documentation (policy_keys_markdown() in keys_doc.c, pasted into policy/README.md and
 * checked by tests/unit/test_policy.c).
 *
 * Adding a key: add a field to struct lv_policy (or the element struct of a
 * named section) and one row here.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "policy_internal.h"

#define P(m) offsetof(struct lv_policy, m), sizeof(((struct lv_policy *)0)->m)
#define R(m) offsetof(struct lv_route, m), sizeof(((struct lv_route *)0)->m)
#define B(m) offsetof(struct lv_bulkhead, m), sizeof(((struct lv_bulkhead *)0)->m)
#define K(m) offsetof(struct lv_breaker, m), sizeof(((struct lv_breaker *)0)->m)
#define T(m) offsetof(struct lv_tier, m), sizeof(((struct lv_tier *)0)->m)

static const struct keys_section keys_section_table[] = {
	{"levee", false, "The process: its addresses, workers and logs.", 0, 0, 0, 0, 0, 0},
	{"limits", false,
	 "Bounds on what a client may send, and how long it may take. docs/http.md lists the "
	 "status levee answers when one is exceeded.",
	 0, 0, 0, 0, 0, 0},
	{"upstream", false, "The connection from levee to the service it protects.", 0, 0, 0, 0, 0, 0},
	{"redis", false,
	 "The shared cache tier (L2) in Redis, used by routes with `cache_ttl` beside the in-process "
	 "cache. Off unless `address` or `sentinels` is set; set one of them, not both. A Redis that is "
	 "down or slow never fails a request: levee passes through to the upstream.",
	 0, 0, 0, 0, 0, 0},
	{"kafka", false,
	 "Invalidation broadcast over Kafka: every successful write is published to `topic`, and every "
	 "replica applies every invalidation to its L1 and to Redis. Off unless `brokers` is set. "
	 "docs/invalidation.md explains the design; docs/invalidation-message.md is the message contract.",
	 0, 0, 0, 0, 0, 0},
	{"cache", false, "The in-process cache (L1) that routes with `cache_ttl` use.", 0, 0, 0, 0, 0, 0},
	{"warmup", false,
	 "Warm-up of a replica that starts with an empty cache: the hot set (keys by recent hits, kept in "
	 "Redis by sampling the hits of every replica) loaded from Redis into the L1, and a list of URLs "
	 "fetched from the origin through the normal fill path, at a bounded rate. None of these keys is "
	 "reloadable: a warm-up runs once, at start, and a reload does not restart it. docs/caching.md "
	 "\"Warm-up\" explains it.",
	 0, 0, 0, 0, 0, 0},
	{"route", true,
	 "One section per route, named `[route \"NAME\"]` (1-63 of `A-Z a-z 0-9 _ . -`, unique). "
	 "A request takes the first route, in file order, whose pattern and methods match. Each "
	 "route needs exactly one of `match` and `prefix`. At most 4096 routes.",
	 sizeof(struct lv_route), offsetof(struct lv_policy, routes), offsetof(struct lv_policy, nroutes),
	 LV_MAX_ROUTES, offsetof(struct lv_route, name), offsetof(struct lv_route, line)},
	{"bulkhead", true,
	 "One section per bulkhead, named `[bulkhead \"NAME\"]`: a cap on the upstream exchanges of the "
	 "routes that name it (`bulkhead = NAME`), shared by every worker of this levee, with a queue in "
	 "front. docs/protection.md explains slots, the queue and draining. At most 256 bulkheads.",
	 sizeof(struct lv_bulkhead), offsetof(struct lv_policy, bulkheads), offsetof(struct lv_policy, nbulkheads),
	 LV_MAX_BULKHEADS, offsetof(struct lv_bulkhead, name), offsetof(struct lv_bulkhead, line)},
	{"breaker", true,
	 "One section per circuit breaker, named `[breaker \"NAME\"]`, over the upstream exchanges of the "
	 "routes that name it (`breaker = NAME`), shared by every worker of this levee. It counts their "
	 "outcomes in a window; past a threshold it opens and levee answers those routes without asking "
	 "the upstream, then lets a few probes through, then ramps traffic back up. Levee's own refusals, "
	 "cache answers and clients that leave count neither way. docs/protection.md explains the states. "
	 "At most 256 breakers.",
	 sizeof(struct lv_breaker), offsetof(struct lv_policy, breakers), offsetof(struct lv_policy, nbreakers),
	 LV_MAX_BREAKERS, offsetof(struct lv_breaker, name), offsetof(struct lv_breaker, line)},
	{"tiers", false,
	 "How degradation tiers are evaluated: the signal tick, the window of the latency and error "
	 "figures, and what a client's cohort is hashed from. docs/tiers.md is the operator's guide.",
	 0, 0, 0, 0, 0, 0},
	{"tier", true,
	 "One section per degradation tier, named `[tier \"NAME\"]`, in order, least severe first (at most "
	 "16). A tier comes into force when its `enter` condition holds and the tier before it is in "
	 "force, and leaves when its `exit` condition holds and it has been in force for `hold`; at most "
	 "one step per tick either way. What a tier does adds to what the tiers before it do. Conditions "
	 "are written in the expression language of docs/tiers.md over the signals it lists.",
	 sizeof(struct lv_tier), offsetof(struct lv_policy, tiers), offsetof(struct lv_policy, ntiers),
	 LV_MAX_TIERS, offsetof(struct lv_tier, name), offsetof(struct lv_tier, line)},
};

const char *const lv_fallback_kind_names[LV_FB__COUNT] = {
#define LV_FB_NAME(e, word) [e] = word,
	LV_FALLBACK_KINDS(LV_FB_NAME)
#undef LV_FB_NAME
};

const char *const lv_alog_field_names[LV_AF__COUNT] = {
#define LV_AF_NAME(e, name) [e] = name,
	LV_ALOG_FIELDS(LV_AF_NAME)
#undef LV_AF_NAME
};

/* "|time|request_id|...": the field names as `words` (from the second byte) */
#define LV_AF_WORD(e, name) "|" name
static const char alog_field_words[] = LV_ALOG_FIELDS(LV_AF_WORD);
#undef LV_AF_WORD
/* a list is parsed through a bit mask of the words (keys_flag_item) */
_Static_assert(LV_AF__COUNT <= 32, "access log fields fit an unsigned mask");

/* clang-format off */
static const struct keys_def keys_def_table[] = {
/*	 section     key                 type         field                           default          min      max       words                    unit           reload one_of doc */
	{"levee",    "service",          KT_NAME,     P(service),                     "demo",          NULL,    NULL,     NULL,                    NULL,          false, 0, "Name of the protected service; it prefixes cache keys and names the sender of invalidation messages, so every replica of one service must agree."},
	{"levee",    "listen",           KT_HOSTPORT, P(listen),                      "0.0.0.0:15001", NULL,    NULL,     NULL,                    NULL,          false, 0, "Address for client traffic. Overridden by `--listen`."},
	{"levee",    "upstream",         KT_HOSTPORT, P(upstream),                    "127.0.0.1:8080",NULL,    NULL,     NULL,                    NULL,          true,  0, "The service levee protects. Overridden by `--upstream`."},
	{"levee",    "admin",            KT_HOSTPORT, P(admin),                       "127.0.0.1:15000",NULL,   NULL,     NULL,                    NULL,          false, 0, "Admin listener: /healthz, /readyz, /metrics, /status, POST /purge, POST /reload. Keep it on loopback; serve probes from `probe`. Overridden by `--admin`."},
	{"levee",    "probe",            KT_HOSTPORT, P(probe),                       "none",          NULL,    NULL,     "none",                  NULL,          false, 0, "Probe listener: only GET /healthz, /readyz and /metrics, for the kubelet and Prometheus from outside the pod while `admin` stays on loopback. `none`: off. Overridden by `--probe`."},
	{"levee",    "admin_token_env",  KT_NAME,     P(admin_token_env),             "LEVEE_ADMIN_TOKEN", NULL, NULL,    NULL,                    NULL,          false, 0, "Environment variable holding the admin token (16-255 visible ASCII bytes). When it is set, POST /purge, POST /reload and every other admin request but GET and HEAD need `Authorization: Bearer TOKEN`. Read once at start, never logged; the token itself never goes in this file."},
	{"levee",    "admin_insecure",   KT_BOOL,     P(admin_insecure),              "false",         NULL,    NULL,     NULL,                    NULL,          false, 0, "Let admin requests that change state through without a token on an `admin` address that is not loopback. Off: without a token they answer 403 there (on loopback they stay open)."},
	{"levee",    "workers",          KT_UINT,     P(workers),                     "auto",          "0",     "256",    "auto",                  "threads",     false, 0, "Worker threads, each with its own event loop; `auto` (or 0) is one per CPU the process may use: the CPUs of its affinity mask or its cgroup v2 CPU quota (`cpu.max`, rounded up), whichever is fewer (docs/operations.md)."},
	{"levee",    "max_connections",  KT_UINT,     P(max_connections),             "10000",         "1",     "1000000", NULL,                   "connections", true,  0, "Open client connections, all workers together; a connection past it gets 503 and is closed."},
	{"levee",    "drain_timeout",    KT_DURATION, P(drain_timeout_ms),            "25s",           "0",     "1h",     NULL,                    NULL,          true,  0, "On SIGTERM, longest wait for requests in flight to finish. Keep it below the pod's terminationGracePeriodSeconds."},
	{"levee",    "drain_delay",      KT_DURATION, P(drain_delay_ms),              "0",             "0",     "1h",     NULL,                    NULL,          true,  0, "On SIGTERM, /readyz fails at once but levee goes on accepting and serving this long before it drains, so that load balancers (Kubernetes endpoints) stop sending first. drain_delay plus drain_timeout should stay below terminationGracePeriodSeconds."},
	{"levee",    "access_log",       KT_PATH,     P(access_log),                  "stdout",        NULL,    NULL,     "stdout|off",            NULL,          false, 0, "Where access log lines go: `stdout`, `off`, or an absolute file path. A file is opened in append mode and reopened on SIGUSR1, after logrotate (or anyone) moved it away (docs/access-log.md)."},
	{"levee",    "access_log_fields", KT_FIELDS,  P(access_log_fields),           "all -referer",               NULL, NULL, alog_field_words + 1, NULL, true, 0, "The fields of an access log line, in the order written, separated by blanks or commas, or `all` of them in the order of docs/access-log.md, which lists them, less any named after it as `-FIELD` (`all -referer`). A reload changes them for the requests that start after it."},
	{"levee",    "access_log_format", KT_ENUM,    P(access_log_format),           "json",          NULL,    NULL,     "json|text",             NULL,          true,  0, "`json`: one JSON object per line, every chosen field a key, left out when the request has no value for it. `text`: the values alone, separated by one blank, in field order, `-` when absent, the free-text ones in double quotes. Both are escaped so that a line can never be split or forged (docs/access-log.md)."},
	{"levee",    "log_level",        KT_ENUM,     P(log_level),                   "info",          NULL,    NULL,     "debug|info|warn|error", NULL,          true,  0, "Least severe message written to stderr."},
	{"levee",    "trust_forwarded",  KT_BOOL,     P(trust_forwarded),             "false",         NULL,    NULL,     NULL,                    NULL,          true,  0, "Keep an incoming X-Forwarded-Proto instead of replacing it. Enable only behind a proxy that sets it."},
	{"levee",    "transparent",      KT_ENUM,     P(transparent),                 "off",           NULL,    NULL,     "off|on",                NULL,          true,  0, "`on`: client connections may reach `listen` redirected by the pod's nat rules (deploy/transparent/levee-transparent.sh), and levee reads each accepted connection's original destination (`SO_ORIGINAL_DST`) for the access log's `orig_dst`; one getsockopt per connection, none when `off`. A reload applies it to connections accepted afterwards. Loops are refused either way (508, docs/transparent.md)."},

	{"limits",   "header_bytes",     KT_SIZE,     P(limits.header_bytes),         "32KiB",         "1KiB",  "1MiB",   NULL,                    NULL,          true,  0, "Request line plus all header fields. Also bounds each upstream response head and each trailer section. Must be at least `uri_bytes`."},
	{"limits",   "headers",          KT_UINT,     P(limits.headers),              "100",           "1",     "1000",   NULL,                    "fields",      true,  0, "Header fields in one request."},
	{"limits",   "uri_bytes",        KT_SIZE,     P(limits.uri_bytes),            "8KiB",          "256",   "1MiB",   NULL,                    NULL,          true,  0, "Request target (path and query)."},
	{"limits",   "body_bytes",       KT_SIZE,     P(limits.body_bytes),           "1GiB",          "1",     "1TiB",   NULL,                    NULL,          true,  0, "Request body; a larger declared or streamed body gets 413."},
	{"limits",   "header_timeout",   KT_DURATION, P(limits.header_timeout_ms),    "10s",           "1ms",   "1h",     NULL,                    NULL,          true,  0, "Longest wait for a complete request head once its first byte arrived (then 408)."},
	{"limits",   "body_timeout",     KT_DURATION, P(limits.body_timeout_ms),      "30s",           "1ms",   "1h",     NULL,                    NULL,          true,  0, "Longest pause while reading a request body."},
	{"limits",   "idle_timeout",     KT_DURATION, P(limits.idle_timeout_ms),      "60s",           "1ms",   "1h",     NULL,                    NULL,          true,  0, "Keep-alive: longest wait for the next request on an open connection."},
	{"limits",   "send_timeout",     KT_DURATION, P(limits.send_timeout_ms),      "60s",           "1ms",   "1h",     NULL,                    NULL,          true,  0, "Longest pause while writing a response to a client that is not reading."},

	{"upstream", "connect_timeout",  KT_DURATION, P(up.connect_timeout_ms),       "2s",            "1ms",   "1h",     NULL,                    NULL,          true,  0, "Connecting to the upstream."},
	{"upstream", "response_timeout", KT_DURATION, P(up.response_timeout_ms),      "30s",           "1ms",   "1h",     NULL,                    NULL,          true,  0, "Until the response head arrives, then the longest pause within the response."},
	{"upstream", "keepalive",        KT_UINT,     P(up.keepalive),                "64",            "0",     "10000",  NULL,                    "connections", true,  0, "Idle upstream connections kept open per worker; 0 closes each after its response."},
	{"upstream", "keepalive_timeout",KT_DURATION, P(up.keepalive_timeout_ms),     "60s",           "1ms",   "1h",     NULL,                    NULL,          true,  0, "How long an idle upstream connection is kept. Keep it below the upstream's own idle timeout."},
	{"upstream", "deadline_header",  KT_NAME,     P(up.deadline_header),          "X-Levee-Timeout-Ms", NULL, NULL,     NULL,                    NULL,          true,  0, "The header that carries a request's remaining budget in whole milliseconds: read from the client on routes with `deadline_from_header`, and sent upstream, replacing the client's, on every request that has a deadline (`timeout` or the header). Envoy's `x-envoy-expected-rq-timeout-ms` is the same idea under another name."},
	{"upstream", "retry_budget",     KT_PERCENT,  P(up.retry_budget),             "20%",           "0%",    "100%",   NULL,                    NULL,          true,  0, "Retries (route `retries`) may be at most this share of the requests of the last 10 seconds on routes that retry, so retries cannot multiply a failure; past it a request gets its failure at once. The budget is one for this levee."},
	{"upstream", "retry_budget_min", KT_UINT,     P(up.retry_budget_min),         "3",             "0",     "10000",  NULL,                    "retries/s",   true,  0, "Retries allowed whatever `retry_budget` says, so a quiet route can still retry: this many per second on average over the 10-second window (so up to ten times this in a burst)."},
	{"upstream", "proxy_protocol",   KT_ENUM,     P(up.proxy_protocol),           "off",           NULL,    NULL,     "off|v1",                NULL,          true,  0, "`v1`: each upstream connection opens with a PROXY protocol v1 line (`PROXY TCP4 client dest cport dport`) that names its client and the address it dialled (the original destination in transparent mode), so that an app that speaks the protocol sees its clients' addresses instead of levee's. Such a connection carries the requests of one client connection only, so pooling helps keep-alive clients alone. Only for apps that expect the line: any other reads it as a bad request. A reload applies it to the connections opened afterwards."},
	{"upstream", "probe_interval",   KT_DURATION, P(up.probe_interval_ms),        "1s",            "100ms", "1h",     NULL,                    NULL,          true,  0, "How often readiness (/readyz) checks that the upstream accepts connections."},

	{"redis",    "address",          KT_HOSTPORT, P(redis.address),               "none",          NULL,    NULL,     "none",                   NULL,          false, 0, "One Redis primary: an address or a host name (a Kubernetes Service). A name is looked up off the event loops before every connection attempt, so a moved Service is followed at the next reconnect; one that does not resolve leaves levee serving without Redis, retrying."},
	{"redis",    "sentinels",        KT_HOSTPORTS,P(redis.sentinels),             "",              NULL,    NULL,     NULL,                    NULL,          false, 0, "Redis Sentinels (`h:p, h:p`, addresses or host names, looked up like `address`): levee asks them for `master` and follows failovers. A master they announce by name is looked up too."},
	{"redis",    "master",           KT_NAME,     P(redis.master),                "mymaster",      NULL,    NULL,     NULL,                    NULL,          false, 0, "The master name the Sentinels know."},
	{"redis",    "timeout",          KT_DURATION, P(redis.timeout_ms),            "25ms",          "1ms",   "10s",    NULL,                    NULL,          false, 0, "Per Redis command; a slower answer counts as a failure (the request goes on without L2)."},
	{"redis",    "connect_timeout",  KT_DURATION, P(redis.connect_timeout_ms),    "200ms",         "1ms",   "10s",    NULL,                    NULL,          false, 0, "Connecting to Redis or a Sentinel."},
	{"redis",    "lease",            KT_DURATION, P(redis.lease_ms),              "10s",           "100ms", "5m",     NULL,                    NULL,          false, 0, "How long the replica filling a key holds its lease; others wait for its entry meanwhile. Keep it above the upstream's usual response time."},
	{"redis",    "lease_wait",       KT_DURATION, P(redis.lease_wait_ms),         "1s",            "0",     "1m",     NULL,                    NULL,          false, 0, "How long a miss waits for another replica's fill before it goes upstream itself."},

	{"kafka",    "brokers",          KT_HOSTPORTS,P(kafka.brokers),               "",              NULL,    NULL,     NULL,                    NULL,          false, 0, "Bootstrap brokers (`h:p, h:p`; names are resolved by librdkafka on its own threads). Empty: no Kafka, invalidations stay local to this replica and Redis."},
	{"kafka",    "topic",            KT_TOPIC,    P(kafka.topic),                 "levee.invalidations", NULL, NULL,   NULL,                    NULL,          false, 0, "The invalidation topic, shared by every service; messages name their service. Partition it (keys spread by the invalidated item)."},
	{"kafka",    "security_protocol",KT_ENUM,     P(kafka.security_protocol),     "plaintext",     NULL,    NULL,     "plaintext|ssl|sasl_plaintext|sasl_ssl", NULL,  false, 0, "How levee talks to the brokers (librdkafka `security.protocol`)."},
	{"kafka",    "sasl_mechanism",   KT_ENUM,     P(kafka.sasl_mechanism),        "PLAIN",         NULL,    NULL,     "PLAIN|SCRAM-SHA-256|SCRAM-SHA-512", NULL,      false, 0, "SASL mechanism, with `sasl_plaintext` or `sasl_ssl`."},
	{"kafka",    "sasl_username",    KT_TEXT,     P(kafka.sasl_username),         "",              NULL,    NULL,     NULL,                    NULL,          false, 0, "SASL user name."},
	{"kafka",    "sasl_password",    KT_SECRET,    P(kafka.sasl_password),         "",              NULL,    NULL,     NULL,                    NULL,          false, 0, "SASL password. Keep it out of the file: `${KAFKA_PASSWORD}` takes it from the environment (a Kubernetes Secret)."},
	{"kafka",    "ssl_ca",           KT_PATH,     P(kafka.ssl_ca),                "system",        NULL,    NULL,     "system",                NULL,          false, 0, "CA certificates (PEM file) that verify the brokers, with `ssl` or `sasl_ssl`; `system`: the system's store."},
	{"kafka",    "instance",         KT_NAME,     P(kafka.instance),              "",              NULL,    NULL,     NULL,                    NULL,          false, 0, "This replica's name, in messages (`origin`) and in the default group id. Empty: `$POD_NAME`, else `$HOSTNAME`, else the host name. Two levees on one host need distinct names: two with one name share a group and split its partitions, which levee detects (an error in the log, `/readyz` fails)."},
	{"kafka",    "group_id",         KT_NAME,     P(kafka.group_id),              "",              NULL,    NULL,     NULL,                    NULL,          false, 0, "Consumer group. Empty: `levee.<service>.<instance>`, one group per replica, because every replica must see every event. Never share one group between replicas."},
	{"kafka",    "start_from",       KT_ENUM,     P(kafka.start_from),            "latest",        NULL,    NULL,     "latest|earliest",       NULL,          false, 0, "Where a new group starts reading: `latest` (the L1 starts empty, so older events cannot concern it) or `earliest` (replays the topic's retention into Redis). A known group resumes where it stopped."},
	{"kafka",    "outbox",           KT_PATH,     P(kafka.outbox),                "/var/lib/levee/outbox", NULL, NULL,  NULL,                    NULL,          false, 0, "Directory of the durable outbox, where events Kafka could not take wait to be replayed. One levee per directory (it is locked)."},
	{"kafka",    "outbox_max",       KT_SIZE,     P(kafka.outbox_max),            "64MiB",         "1MiB",  "64GiB",  NULL,                    NULL,          false, 0, "Bytes of undelivered events the outbox may hold. At the bound levee records one purge-everything event for the service in reserved space and stops caching until the outbox drains (docs/invalidation.md)."},
	{"kafka",    "outbox_fsync",     KT_ENUM,     P(kafka.outbox_fsync),          "batch",         NULL,    NULL,     "always|batch|never",    NULL,          false, 0, "When outbox writes reach the disk: `always` after each event, `batch` once per batch of events (one loop turn), `never` left to the kernel (survives a levee crash, not a machine crash)."},
	{"kafka",    "delivery_timeout", KT_DURATION, P(kafka.delivery_timeout_ms),   "5s",            "100ms", "5m",     NULL,                    NULL,          false, 0, "How long an event may wait for Kafka's acknowledgement before it goes to the outbox (librdkafka `message.timeout.ms`)."},
	{"kafka",    "linger",           KT_DURATION, P(kafka.linger_ms),             "5ms",           "0",     "1s",     NULL,                    NULL,          false, 0, "How long the producer waits to batch events (librdkafka `linger.ms`): invalidation latency against broker requests. At 5 ms, levee measured p99 under 20 ms from a write to the purge at another replica (docs/benchmarks.md)."},
	{"kafka",    "lag_budget",       KT_DURATION, P(kafka.lag_budget_ms),         "5s",            "100ms", "1h",     NULL,                    NULL,          false, 0, "How long this replica may be behind the topic (lag, or no broker) before its L1 is no longer trusted: lookups then skip the L1 until the consumer has caught up, and the L1 is emptied on recovery."},
	{"kafka",    "dedup_window",     KT_UINT,     P(kafka.dedup_window),          "100000",        "1",     "10000000", NULL,                  "events",      false, 0, "How many recent event ids are remembered to drop duplicates."},

	{"kafka",    "control_topic",    KT_TOPIC,    P(kafka.control_topic),         "",              NULL,    NULL,     NULL,                    NULL,          false, 0, "The control topic of coordinated degradation (docs/tiers.md, \"The control topic\"): levee publishes its tier changes there and applies the signed `force-tier` commands for its service. Empty: none."},
	{"kafka",    "control_key_env",  KT_NAME,     P(kafka.control_key_env),       "LEVEE_CONTROL_KEY", NULL, NULL,    NULL,                    NULL,          false, 0, "Environment variable holding the key (at least 16 bytes) that control commands are signed with (HMAC-SHA256). Without it every command is refused; levee still publishes its own tier changes."},

	{"cache",    "memory",           KT_SIZE,     P(cache.memory),                "64MiB",         "1MiB",  "64GiB",  NULL,                    NULL,          false, 0, "Bytes the in-process cache may hold, all workers together (entries, keys and bookkeeping)."},
	{"cache",    "max_object",       KT_SIZE,     P(cache.max_object),            "1MiB",          "1KiB",  "1GiB",   NULL,                    NULL,          true,  0, "Largest response body stored; a larger one is passed through (`Cache-Status: levee; fwd=miss; detail=too-large`). An entry larger than an L1 shard (`memory`/64) is kept in Redis only."},
	{"cache",    "key_host",         KT_NAME,     P(cache.key_host),              "request",       NULL,    NULL,     NULL,                    NULL,          true,  0, "The host part of every cache key, for routes that do not set `cache_key_host`: `request` (the request's Host, lowercased, without `:80`), `none` (no host: every name the service is reached by shares one entry and one lease), or one canonical host name that stands for all of them. Purges never look at the host either way (docs/caching.md, \"What goes into a key\")."},
	{"cache",    "uncacheable_ttl",  KT_DURATION, P(cache.uncacheable_ttl_ms),    "10s",           "0",     "1h",     NULL,                    NULL,          true,  0, "Hit-for-miss: after a URL's answer could not be stored (`no-store`, `private`, `Set-Cookie`, `Vary: *`, too large...), its misses go straight upstream this long, on this replica and, through a marker in Redis, on the others, instead of waiting for each other's fills. A storable answer ends it early. 0: off."},
	{"warmup",   "hot_keys",         KT_UINT,     P(warmup.hot_keys),             "256",           "0",     "100000", NULL,                    "keys",        false, 0, "At start, how many of the hot set's top keys are read from Redis into the L1, each checked like an L2 hit (generations, purges, freshness). 0: none. Needs `[redis]`."},
	{"warmup",   "hot_rate",         KT_UINT,     P(warmup.hot_rate),             "500",           "1",     "100000", NULL,                    "keys/s",      false, 0, "How fast those keys are read from Redis, at most."},
	{"warmup",   "hot_sample",       KT_UINT,     P(warmup.hot_sample),           "16",            "0",     "1000000", NULL,                   "hits",        false, 0, "One cache hit in this many (per worker) is counted in the hot set in Redis, with weight N; 0: the hot set is not written. Needs `[redis]`."},
	{"warmup",   "hot_writes",       KT_UINT,     P(warmup.hot_writes),           "100",           "1",     "10000",  NULL,                    "keys/s",      false, 0, "Distinct keys one worker adds to the hot set per second, at most, sent as one script a second; samples past it are dropped."},
	{"warmup",   "hot_size",         KT_UINT,     P(warmup.hot_size),             "1000",          "1",     "100000", NULL,                    "keys",        false, 0, "Keys the hot set keeps (the lowest scores are trimmed after each write)."},
	{"warmup",   "hot_half_life",    KT_DURATION, P(warmup.hot_half_life_ms),     "1h",            "1s",    "720h",   NULL,                    NULL,          false, 0, "Every score of the hot set is halved this often, so that yesterday's hot keys fade."},
	{"warmup",   "urls",             KT_LINE,     P(warmup.urls),                 "",              NULL,    NULL,     NULL,                    NULL,          false, 0, "URLs fetched at start, blank-separated: origin-form targets (`/api/users/1?x=y`) or `http://HOST[:PORT]/path`. One line, as every value (at most 199 bytes): a longer list goes in `urls_file`. Fetched before those of `urls_file`."},
	{"warmup",   "urls_file",        KT_PATH,     P(warmup.urls_file),            "none",          NULL,    NULL,     "none",                  NULL,          false, 0, "A file of URLs fetched at start, one per line (`#` comments and blank lines skipped), read and checked when the policy is loaded (at most 1 MiB and 10000 URLs with `urls`). `none`: no file."},
	{"warmup",   "host",             KT_TEXT,     P(warmup.host),                 "localhost",     NULL,    NULL,     NULL,                    NULL,          false, 0, "The Host a warm-up URL given without one is fetched with: the host clients use, since it is part of the cache key."},
	{"warmup",   "rate",             KT_UINT,     P(warmup.rate),                 "5",             "1",     "10000",  NULL,                    "requests/s",  false, 0, "Warm-up requests started per second, at most (evenly spaced)."},
	{"warmup",   "concurrency",      KT_UINT,     P(warmup.concurrency),          "2",             "1",     "64",     NULL,                    "requests",    false, 0, "Warm-up requests in flight at once, at most."},
	{"warmup",   "ready_wait",       KT_DURATION, P(warmup.ready_wait_ms),        "0",             "0",     "10m",    NULL,                    NULL,          false, 0, "How long /readyz answers 503 while the warm-up runs, at most; 0: readiness does not wait. Serving never waits."},

	{"route",    "match",            KT_GLOB,     R(pattern),                     NULL,            NULL,    NULL,     NULL,                    NULL,          true,  1, "Glob over the path: `*` is exactly one segment (or part of one, `*.png`), a final `**` any number of segments, the rest of the path; at most 9 wildcards. `invalidate` and the admin purge API take the same globs."},
	{"route",    "prefix",           KT_PREFIX,   R(pattern),                     NULL,            NULL,    NULL,     NULL,                    NULL,          true,  1, "Literal path prefix, e.g. `/static/`."},
	{"route",    "methods",          KT_METHODS,  R(methods),                     "any",           NULL,    NULL,     NULL,                    NULL,          true,  0, "Comma-separated methods the route applies to (`GET, HEAD`), or `any`."},
	{"route",    "cache_ttl",        KT_TTL,      R(cache_ttl_ms),                "off",           "1s",    "8760h",   NULL,                    NULL,          true,  0, "Cache GET answers: `off`; a fixed lifetime such as `60s` for origins that send no caching headers (`no-store`, `private` and `Set-Cookie` are still obeyed); or `origin`, to obey Cache-Control and Expires as an RFC 9111 shared cache."},
	{"route",    "negative_ttl",     KT_DURATION, R(negative_ttl_ms),             "5s",            "0",     "1h",     NULL,                    NULL,          true,  0, "Lifetime of a cached answer whose status is in `negative_status` (with a fixed `cache_ttl`); 0 does not cache them."},
	{"route",    "negative_status",  KT_STATUSES, R(negative_status),             "404",           NULL,    NULL,     NULL,                    NULL,          true,  0, "Statuses cached for `negative_ttl` (comma-separated, at most 16). A successful write to the same URL clears them."},
	{"route",    "stale_while_revalidate", KT_DURATION, R(swr_ms),                "0",             "0",     "24h",     NULL,                    NULL,          true,  0, "After an entry goes stale, serve it this long while one background request refreshes it."},
	{"route",    "stale_if_error",   KT_DURATION, R(sie_ms),                      "0",             "0",     "24h",     NULL,                    NULL,          true,  0, "After an entry goes stale, serve it this long when the upstream fails, times out or answers 5xx."},
	{"route",    "cache_key_headers",KT_HEADERS,  R(cache_key_headers),           "",              NULL,    NULL,     NULL,                    NULL,          true,  0, "Request headers whose values become part of the cache key, besides those the origin names in Vary (e.g. `Accept-Language`)."},
	{"route",    "cache_tags",       KT_TAGS,     R(cache_tags),                  "",              NULL,    NULL,     NULL,                    NULL,          true,  0, "Tags given to every entry the route stores, for purges by tag, besides the origin's Surrogate-Key; exact names, where `{1}`..`{9}` are the route's `match` wildcards (`user-{1}`)."},
	{"route",    "cache_key_host",   KT_NAME,     R(cache_key_host),              "",              NULL,    NULL,     NULL,                    NULL,          true,  0, "The host part of this route's cache keys: `request`, `none` or one canonical host, as `[cache] key_host` says; empty: that key's value. Only for a service that answers the same whatever name it is reached by (`svc`, `svc.ns.svc.cluster.local`, `10.0.0.5:8080`)."},
	{"route",    "cache_control_fields",KT_HEADERS,R(cache_control_fields),      "Levee-Cache-Control, CDN-Cache-Control", NULL, NULL, "none", NULL, true, 0, "Targeted cache-control fields (RFC 9213) levee obeys, in precedence order: the first one the response carries with a valid, non-empty Structured Fields dictionary replaces its Cache-Control and Expires for levee's own storing and freshness; an invalid one is ignored as if absent. The client still gets every field untouched. `none`: only Cache-Control and Expires count (docs/caching.md, \"Targeted Cache-Control\")."},
	{"route",    "unkeyed_headers",  KT_ENUM,     R(unkeyed_headers),             "strip",         NULL,    NULL,     "strip|bypass|forward",  NULL,          true,  0, "What a cacheable request does with request headers that can change the origin's answer but are not in the key (the forwarding and URL-rewrite families: `X-Forwarded-Host`, `Forwarded`, `X-Original-URL`..., listed in docs/caching.md): `strip` them before the request goes upstream, `bypass` the cache for requests that carry one, or `forward` them unkeyed (unsafe: a client can poison the cache). A header listed in `cache_key_headers` is keyed, and forwarded."},
	{"route",    "get_body",         KT_ENUM,     R(get_body),                    "strip",         NULL,    NULL,     "strip|bypass",          NULL,          true,  0, "What a cacheable GET or HEAD with a body does: `strip` reads and drops the body, so it never reaches the origin, and caches as usual; `bypass` forwards it with its body and does not use the cache."},
	{"route",    "cache_cookies",    KT_BOOL,     R(cache_cookies),               "false",         NULL,    NULL,     NULL,                    NULL,          true,  0, "Let requests that carry Cookie use the cache. Off: they bypass it. The cookie is not part of the key unless listed in `cache_key_headers`."},
	{"route",    "cache_authorization", KT_BOOL,  R(cache_authorization),         "false",         NULL,    NULL,     NULL,                    NULL,          true,  0, "Store answers to requests with Authorization. Off: only when the origin allows it (RFC 9111 §3.5: `public`, `s-maxage`, `must-revalidate`)."},
	{"route",    "cache_set_cookie", KT_BOOL,     R(cache_set_cookie),            "false",         NULL,    NULL,     NULL,                    NULL,          true,  0, "Store responses that carry Set-Cookie, without the Set-Cookie field. Off: they are never stored."},
	{"route",    "cache_any_status", KT_BOOL,     R(cache_any_status),            "false",         NULL,    NULL,     NULL,                    NULL,          true,  0, "With cache_ttl = origin, store a response of any final status (5xx and unknown ones too; never 206 or 304) when the origin gives it freshness (RFC 9111 section 3). Off: only statuses levee understands, and of the 5xx only 501 (cacheable by default, RFC 9110 section 15.1)."},
	{"route",    "bulkhead",         KT_NAME,     R(bulkhead),                    "",              NULL,    NULL,     NULL,                    NULL,          true,  0, "Names the `[bulkhead]` whose slots the route's upstream exchanges take. Cache hits never take a slot. Several routes may share one bulkhead."},
	{"route",    "refusal_status",   KT_ENUM,     R(refusal_status),              "503",           NULL,    NULL,     "503|429",               NULL,          true,  0, "Status of levee's own refusals on the route (a full bulkhead, a queue timeout): `503` (Service Unavailable) or `429` (Too Many Requests), both with Retry-After and X-Levee-Reason."},
	{"route",    "invalidate",       KT_INVALIDATIONS, R(invalidate),             "",              NULL,    NULL,     NULL,                    NULL,          true,  0, "What a successful write (any method but GET, HEAD, OPTIONS and TRACE, answered 2xx or 3xx) purges besides its own target, everywhere: `/api/users/{1}` a URL, `/api/users/**` every URL under `/api/users/`, `tag:user-{1}` a tag; `{1}`..`{9}` are the route's `match` wildcards. Paths take the globs of `match`; one with another wildcard purges every URL under its part before the first wildcard's segment (`/api/*/posts`: all of `/api/`), with a warning."},

	{"bulkhead", "isolation",        KT_ENUM,     B(isolation),                   "semaphore",     NULL,    NULL,     "semaphore|thread",      NULL,          true,  0, "`semaphore`: the exchanges run on the listener workers and the bulkhead only counts them. `thread`: once it has its slot, a request (its client connection with it) is handed to one of the bulkhead's own threads, each with its own event loop and upstream connections, and handed back to its listener worker when its answer is out; cache hits never leave the listener workers (docs/protection.md)."},
	{"bulkhead", "threads",          KT_UINT,     B(threads),                     "2",             "1",     "64",     NULL,                    "threads",     true,  0, "With `isolation = thread`: the bulkhead's threads, each an event loop serving many exchanges. A reload may raise it (threads start at once) or lower it (the extra threads stop taking new exchanges and stay idle until a restart)."},
	{"bulkhead", "max_concurrent",   KT_UINT,     B(max_concurrent),              "10",            "1",     "100000", "auto",                  "exchanges",   true,  0, "Upstream exchanges at once, all workers together. A slot is held until the exchange really ends (see `abandon_after`). A reload resizes it in place: in-flight exchanges keep their slots. `auto`: the limit adapts to the service's latency, between `adaptive_min` and `adaptive_max`, rising while latency stays near its baseline and falling when it grows (docs/protection.md, \"Adaptive concurrency\")."},
	{"bulkhead", "adaptive_min",     KT_UINT,     B(adaptive_min),                "2",             "1",     "100000", NULL,                    "exchanges",   true,  0, "With `max_concurrent = auto`: the lowest the limit goes, however slow the service. A reload that keeps the bulkhead keeps its measurements and clamps the limit to the new bounds."},
	{"bulkhead", "adaptive_max",     KT_UINT,     B(adaptive_max),                "200",           "1",     "100000", NULL,                    "exchanges",   true,  0, "With `max_concurrent = auto`: the highest the limit goes, however fast the service; at least `adaptive_min`."},
	{"bulkhead", "adaptive_smoothing", KT_PERCENT, B(adaptive_smoothing),         "20%",           "1%",    "100%",   NULL,                    NULL,          true,  0, "With `max_concurrent = auto`: how far the limit moves toward each window's target (100%: all the way). Lower is steadier and slower to react."},
	{"bulkhead", "adaptive_window",  KT_DURATION, B(adaptive_window_ms),          "250ms",         "10ms",  "1m",     NULL,                    NULL,          true,  0, "With `max_concurrent = auto`: the shortest time over which latency samples are averaged before the limit is recomputed; a window also needs 8 samples, so at low traffic it is longer."},
	{"bulkhead", "max_queue",        KT_UINT,     B(max_queue),                   "16",            "0",     "100000", NULL,                    "requests",    true,  0, "Requests waiting for a slot; one that finds the queue full is refused at once (X-Levee-Reason `bulkhead-full`). 0: no queue. Critical routes' requests have a queue this long of their own, served first."},
	{"bulkhead", "queue_timeout",    KT_DURATION, B(queue_timeout_ms),            "100ms",         "1ms",   "1m",     NULL,                    NULL,          true,  0, "Longest wait in the queue; a request still waiting then is refused (X-Levee-Reason `bulkhead-timeout`)."},
	{"bulkhead", "queue_order",      KT_ENUM,     B(queue_order),                 "adaptive_lifo", NULL,    NULL,     "adaptive_lifo|fifo",    NULL,          true,  0, "Who gets a freed slot: `fifo`, the oldest waiter; `adaptive_lifo`, the oldest while the queue drains quickly, the newest once the oldest has waited half of `queue_timeout` (a standing queue: the oldest would time out anyway, and serving the newest keeps the answers that do come fast)."},
	{"bulkhead", "abandon_after",    KT_DURATION, B(abandon_after_ms),            "30s",           "0",     "1h",     NULL,                    NULL,          true,  0, "When levee gives up on an exchange for its client (an upstream timeout, the client leaving), the service is usually still working on it: the connection stays open, the late answer is read and dropped, and the slot stays held until it arrives, or this long. Then the connection is closed and the slot freed. 0: close and free at once (the service's thread stays busy while levee lets another request in)."},
	{"route",    "timeout",          KT_DURATION, R(timeout_ms),                  "0",             "0",     "1h",     NULL,                    NULL,          true,  0, "The whole request's budget, from its head's arrival to the end of its answer: a bulkhead queue, a retry's backoff and the upstream exchange are bounded by it, and a request spent by then never goes upstream (a wait in the cache, behind another request's fill or for Redis, is not cut short: docs/protection.md); when it runs out levee answers 504 (X-Levee-Reason `deadline`), or the route's fallback, and stops the exchange. 0: none (the `[upstream]` timeouts still apply)."},
	{"route",    "deadline_from_header", KT_BOOL, R(deadline_from_header),        "false",         NULL,    NULL,     NULL,                    NULL,          true,  0, "Honour the client's `[upstream] deadline_header` (whole milliseconds left): the request's deadline is the sooner of it and `timeout`. A value that is not a number is ignored; 0 means already expired."},
	{"route",    "retries",          KT_UINT,     R(retries),                     "0",             "0",     "10",     NULL,                    "attempts",    true,  0, "More attempts after the first for an idempotent request (GET, HEAD, OPTIONS, TRACE, PUT, DELETE) without a body, when the connect fails or the answer's status is in `retry_statuses`; never once a byte of the answer went to the client. Each waits a backoff, and needs the `[upstream] retry_budget`."},
	{"route",    "retry_statuses",   KT_STATUS_SET, R(retry_statuses),            "502, 503, 504", NULL,    NULL,     NULL,                    NULL,          true,  0, "Answer statuses that are retried (with `retries`): statuses, ranges and classes, or `none` to retry failed connects only. The answer retried is dropped, never shown."},
	{"route",    "retry_backoff",    KT_DURATION, R(retry_backoff_ms),            "25ms",          "1ms",   "1m",     NULL,                    NULL,          true,  0, "The first retry waits a random time up to this (full jitter); each next one up to twice the last bound."},
	{"route",    "retry_backoff_max",KT_DURATION, R(retry_backoff_max_ms),        "250ms",         "1ms",   "1m",     NULL,                    NULL,          true,  0, "The longest bound a retry's backoff grows to."},
	{"route",    "breaker",          KT_NAME,     R(breaker),                     "",              NULL,    NULL,     NULL,                    NULL,          true,  0, "Names the `[breaker]` that counts the route's upstream outcomes and, while open, answers the route without asking the upstream (503 with X-Levee-Reason `breaker-open`). Several routes may share one breaker."},
	{"route",    "priority",         KT_ENUM,     R(priority),                    "normal",        NULL,    NULL,     "critical|normal|optional", NULL,       true,  0, "What degradation tiers shed first: `optional` routes at the first tier that sheds, `normal` ones later, and `critical` ones (log-in, payment) never: a tier's `shed` cannot name them. A critical route's requests also wait in a bulkhead queue of their own, served first, and keep the full limit when a tier scales the bulkhead down (docs/protection.md, \"The queue\")."},
	{"route",    "tier_cache_only",  KT_BOOL,     R(tier_cache_only),             "false",         NULL,    NULL,     NULL,                    NULL,          true,  0, "While a tier with the `cache-only` cache mode is in force, the route answers from the cache alone: a miss is refused (503 `tier-cache-only`, or the route's fallback) and the upstream is not asked. Only for routes whose stored answers may stand in for the service's for a while."},
	{"route",    "fallback",         KT_CHAIN,    R(fallback),                    "none",          NULL,    NULL,     "stale|static|status",   NULL,          true,  0, "What answers instead of levee's own error when the route's breaker is open, its bulkhead refuses, or the upstream times out or cannot be connected to: kinds tried in order, comma-separated, each at most once, or `none`. `stale`: the stored copy however old (up to `stale_fallback_max`), if there is one; `static`: `fallback_status` with `fallback_body` or `fallback_file`; `status`: levee's own refusal as `refusal_status` with Retry-After. Each answer carries X-Levee-Reason `CAUSE; fallback=KIND` (docs/protection.md)."},
	{"route",    "stale_fallback_max", KT_DURATION, R(stale_fallback_max_ms),     "1h",            "1s",    "168h",   NULL,                    NULL,          true,  0, "With `stale` in `fallback`: how long after it went stale a stored copy may still answer as a fallback. The route's entries are kept this much longer, in the L1 and in Redis."},
	{"route",    "fallback_status",  KT_UINT,     R(fallback_status),             "503",           "200",   "599",    NULL,                    "status",      true,  0, "Status of a `static` fallback answer (Retry-After is added to a 503 or 429)."},
	{"route",    "fallback_content_type", KT_LINE, R(fallback_content_type),      "text/plain; charset=utf-8", NULL, NULL, NULL,                NULL,          true,  0, "Content-Type of a `static` fallback answer."},
	{"route",    "fallback_body",    KT_LINE,     R(fallback_body),               "",              NULL,    NULL,     NULL,                    NULL,          true,  0, "Body of a `static` fallback answer: one line of text, sent as written (no newline added). Use `fallback_file` for more."},
	{"route",    "fallback_file",    KT_PATH,     R(fallback_file),               "none",          NULL,    NULL,     "none",                  NULL,          true,  0, "Body of a `static` fallback answer, read from this file (at most 64 KiB) when the policy is loaded or reloaded; a missing or unreadable file fails the load. `none`: use `fallback_body`."},
	{"breaker",  "window",           KT_WINDOW,   K(window),                      "10s",           "1s",    "1h",     NULL,                    NULL,          true,  0, "The calls the rates are computed over: a duration (`10s`: the calls of the last 10 seconds, in 10 buckets of a tenth each) or a count (`100 calls`: the last 100). A reload that changes it keeps the state and the figures (a count window keeps the newest calls; a duration window carries its totals into the current bucket)."},
	{"breaker",  "min_requests",     KT_UINT,     K(min_requests),                "20",            "1",     "100000", NULL,                    "calls",       true,  0, "Calls the window must hold before the breaker may open: a few failures of a quiet route do not trip it."},
	{"breaker",  "failure_rate",     KT_PERCENT,  K(failure_rate),                "50%",           "1%",    "100%",   NULL,                    NULL,          true,  0, "Share of the window's calls that failed (see `failure_statuses` and `failure_on`) at which the breaker opens."},
	{"breaker",  "slow_call",        KT_DURATION, K(slow_call_ms),                "0",             "0",     "1h",     NULL,                    NULL,          true,  0, "A call that takes at least this long (from sending the request to the end of the response) is slow, failed or not. 0: no call is slow."},
	{"breaker",  "slow_call_rate",   KT_PERCENT,  K(slow_call_rate),              "50%",           "1%",    "100%",   NULL,                    NULL,          true,  0, "Share of slow calls at which the breaker opens (with `slow_call` set), whether or not they failed: a service that answers in 20 s is down for its callers."},
	{"breaker",  "failure_statuses", KT_STATUS_SET, K(failure_statuses),          "500, 502-599",  NULL,    NULL,     NULL,                    NULL,          true,  0, "Response statuses that count as failures: statuses, ranges (`502-504`) and classes (`5xx`), comma-separated, or `none`. The default is every 5xx but 501 (Not Implemented is an answer, not an outage)."},
	{"breaker",  "failure_on",       KT_FLAGS,    K(failure_on),                  "timeout, connect, reset, truncated, bad", NULL, NULL, "timeout|connect|reset|truncated|bad|deadline", NULL, true, 0, "Exchanges without a usable answer that count as failures: `timeout` (none in time), `connect` (no connection), `reset` (closed before the response head), `truncated` (cut in the body), `bad` (an unparseable response), `deadline` (the request's own deadline ran out first: off by default, since a caller's short budget says little of the service); comma-separated, or `none`."},
	{"breaker",  "open_for",         KT_DURATION, K(open_for_ms),                 "5s",            "10ms",  "1h",     NULL,                    NULL,          true,  0, "How long the breaker stays open after it trips before it lets probes through."},
	{"breaker",  "open_for_max",     KT_DURATION, K(open_for_max_ms),             "0",             "0",     "24h",    NULL,                    NULL,          true,  0, "Each trip that follows another without a full recovery between them doubles `open_for`, up to this. 0 (or at most `open_for`): no doubling."},
	{"breaker",  "half_open_probes", KT_UINT,     K(half_open_probes),            "3",             "1",     "1000",   NULL,                    "calls",       true,  0, "Calls let through once `open_for` has passed, at most this many at once and in all; one failed or slow probe opens the breaker again, all of them passing starts the ramp."},
	{"breaker",  "ramp",             KT_DURATION, K(ramp_ms),                     "10s",           "0",     "1h",     NULL,                    NULL,          true,  0, "After the probes pass, the share of calls let through grows from a tenth to all over this time (like a slow start), the others answered as while open; a failure during the ramp opens the breaker again. 0: straight to closed."},
	{"bulkhead", "retry_after",      KT_DURATION, B(retry_after_ms),              "1s",            "1s",    "1h",     NULL,                    NULL,          true,  0, "Retry-After of the bulkhead's refusals, in whole seconds (rounded up)."},
	{"tiers",    "tick",             KT_DURATION, P(tiers_cfg.tick_ms),           "250ms",         "100ms", "1s",     NULL,                    NULL,          true,  0, "How often the signals are sampled and the tiers evaluated; a tier moves at most one step per tick."},
	{"tiers",    "window",           KT_DURATION, P(tiers_cfg.window_ms),         "10s",           "1s",    "5m",     NULL,                    NULL,          true,  0, "The sliding window of the latency percentiles, queue waits and error rates the signals report (rounded to whole ticks)."},
	{"tiers",    "cohort",           KT_COHORT,   P(tiers_cfg.cohort),            "address",       NULL,    NULL,     NULL,                    NULL,          true,  0, "What a client's cohort is hashed from when a tier sheds a share of a priority: `address` (the client's IP), `header:NAME` (say a user id the gateway sets) or `cookie:NAME`. A request without the header or cookie falls back on its address. The same clients are shed for as long as the share stands."},

	{"tier",     "enter",            KT_LINE,     T(enter),                       NULL,            NULL,    NULL,     NULL,                    NULL,          true,  1, "The condition under which the tier comes into force (while the tier before it is in force), in the expression language of docs/tiers.md: `queue_wait_p99 > 20ms or cpu > 85%`."},
	{"tier",     "exit",             KT_LINE,     T(exit),                        NULL,            NULL,    NULL,     NULL,                    NULL,          true,  2, "The condition under which the tier steps down once it has been in force for `hold`. Make it stricter than the opposite of `enter` (hysteresis): enter at 20 ms, exit under 10 ms."},
	{"tier",     "hold",             KT_DURATION, T(hold_ms),                     "10s",           "0",     "1h",     NULL,                    NULL,          true,  0, "The least time the tier stays in force before it may step down, however good the signals look."},
	{"tier",     "shadow",           KT_BOOL,     T(shadow),                      "false",         NULL,    NULL,     NULL,                    NULL,          true,  0, "Rehearse the tier: it comes and goes as configured, but changes no answer; what it would have shed is counted (`levee_tier_shadow_shed_total`) and logged once per tick. For tuning thresholds on live traffic."},
	{"tier",     "shed",             KT_SHED,     T(shed),                        "none",          NULL,    NULL,     NULL,                    NULL,          true,  0, "Which requests the tier refuses before any cache or upstream work: whole priorities (`optional`), or a share of one (`normal 30%`: the clients of the lowest 30% of cohorts, see [tiers] `cohort`), comma-separated, or `none`. Critical routes are never shed. A refusal is the route's `refusal_status` (503 or 429) with Retry-After and X-Levee-Reason `tier-shed; tier=NAME`."},
	{"tier",     "cache",            KT_FLAGS,    T(cache),                       "none",          NULL,    NULL,     "serve-stale|stretch-ttl|skip-lease|no-fill-optional|cache-only", NULL, true, 0, "Cache modes while in force (docs/tiers.md, \"Cache modes\", says which guarantee each relaxes): `serve-stale` (a stale stored copy answers at once, unrevalidated), `stretch-ttl` (freshness lifetimes times `ttl_factor`), `skip-lease` (a miss never waits for another's fill), `no-fill-optional` (misses on optional routes are not stored), `cache-only` (routes with `tier_cache_only` never ask the upstream); comma-separated, or `none`."},
	{"tier",     "ttl_factor",       KT_UINT,     T(ttl_factor),                  "2",             "1",     "100",    NULL,                    "times",       true,  0, "With `stretch-ttl`: what stored answers' freshness lifetimes are multiplied by while the tier holds. So that there is something to stretch, a policy with such a tier keeps every stored entry this many times longer, in the L1 and in Redis (docs/tier-cache-modes.md)."},
	{"tier",     "bulkhead_scale",   KT_PERCENT,  T(bulkhead_scale),              "100%",          "1%",    "100%",   NULL,                    NULL,          true,  0, "Every bulkhead's `max_concurrent` (for `auto`, the adaptive limit, which does not grow meanwhile) scaled to this share while the tier is in force, at least 1 slot: less concurrency against a struggling service. The scaled limit holds back normal and optional routes only; a critical route's request may still take a slot up to the full limit. Queue lengths are not scaled."},
	{"tier",     "retry_after",      KT_DURATION, T(retry_after_ms),              "5s",            "1s",    "1h",     NULL,                    NULL,          true,  0, "Retry-After of the tier's refusals, in whole seconds."},
};
/* clang-format on */

#define KEYS_N (sizeof(keys_def_table) / sizeof(keys_def_table[0]))
#define SECTIONS_N (sizeof(keys_section_table) / sizeof(keys_section_table[0]))

const struct keys_def *keys_table(size_t *n)
{
	*n = KEYS_N;
	return keys_def_table;
}

const struct keys_section *keys_sections(size_t *n)
{
	*n = SECTIONS_N;
	return keys_section_table;
}

const struct keys_section *keys_section_find(const char *name)
{
	for (size_t i = 0; i < SECTIONS_N; i++)
		if (strcmp(keys_section_table[i].name, name) == 0)
			return &keys_section_table[i];
	return NULL;
}

const struct keys_def *keys_find(const char *section, const char *name)
{
	for (size_t i = 0; i < KEYS_N; i++)
		if (strcmp(keys_def_table[i].section, section) == 0 &&
		    strcmp(keys_def_table[i].name, name) == 0)
			return &keys_def_table[i];
	return NULL;
}

/* ---- did you mean ------------------------------------------------------ */

#define KEYS_SUGGEST_LEN 64

/* Levenshtein distance, for names shorter than KEYS_SUGGEST_LEN. */
static size_t keys_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t row[KEYS_SUGGEST_LEN + 1];
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t best = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

void keys_suggest_consider(const char *name, const char *cand, const char **best, size_t *bestd)
{
	if (strlen(cand) >= KEYS_SUGGEST_LEN)
		return;
	size_t d = keys_distance(name, cand);
	if (d <= 2 && d < *bestd) {
		*best = cand;
		*bestd = d;
	}
}

const char *keys_suggest_section(const char *name)
{
	const char *best = NULL;
	size_t bestd = SIZE_MAX;
	if (strlen(name) >= KEYS_SUGGEST_LEN)
		return NULL;
	for (size_t i = 0; i < SECTIONS_N; i++)
		keys_suggest_consider(name, keys_section_table[i].name, &best, &bestd);
	return best;
}

const char *keys_suggest_key(const char *section, const char *name)
{
	const char *best = NULL;
	size_t bestd = SIZE_MAX;
	if (strlen(name) >= KEYS_SUGGEST_LEN)
		return NULL;
	for (size_t i = 0; i < KEYS_N; i++)
		if (strcmp(keys_def_table[i].section, section) == 0)
			keys_suggest_consider(name, keys_def_table[i].name, &best, &bestd);
	return best;
}

/* ---- parsing one value ------------------------------------------------- */

/* Parses a number-like value of `k` (no bounds). */
static int keys_number(const struct keys_def *k, const char *s, uint64_t *out, const char **why)
{
	switch (k->type) {
	case KT_DURATION:
	case KT_TTL:
		return value_duration_ms(s, out, why);
	case KT_SIZE:
		return value_size_bytes(s, out, why);
	default:
		if (k->words != NULL && strcmp(s, k->words) == 0) {
			*out = 0;
			return LV_OK;
		}
		return value_uint(s, 0, UINT64_MAX, out, why);
	}
}

static int keys_bounded(const struct keys_def *k, const char *s, uint64_t *out, char *err, size_t errsz)
{
	const char *why;
	uint64_t v, lo = 0, hi = UINT64_MAX;
	if (k->type == KT_UINT && k->words != NULL && strcmp(s, k->words) != 0 && *s != '\0' &&
	    !isdigit((unsigned char)*s)) {
		snprintf(err, errsz, "expected a whole number or %s", k->words);
		return LV_ERR;
	}
	if (k->type == KT_UINT && k->words != NULL && strcmp(s, k->words) == 0) {
		*out = 0; /* the word stands for 0, whatever the bounds of the numbers */
		return LV_OK;
	}
	if (keys_number(k, s, &v, &why) != LV_OK) {
		snprintf(err, errsz, "%s", why);
		return LV_ERR;
	}
	if ((k->min != NULL && keys_number(k, k->min, &lo, &why) != LV_OK) ||
	    (k->max != NULL && keys_number(k, k->max, &hi, &why) != LV_OK)) {
		snprintf(err, errsz, "bad bound in the key table: %s", why);
		return LV_ERR;
	}
	if (v < lo || v > hi) {
		if (k->min != NULL && k->max != NULL)
			snprintf(err, errsz, "must be between %s and %s", k->min, k->max);
		else if (k->min != NULL)
			snprintf(err, errsz, "must be at least %s", k->min);
		else
			snprintf(err, errsz, "must be at most %s", k->max);
		return LV_ERR;
	}
	*out = v;
	return LV_OK;
}

static bool keys_name_ok(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n >= max)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '.' && *s != '-')
			return false;
	return true;
}

static int keys_methods(const char *s, unsigned *out, char *err, size_t errsz)
{
	if (strcmp(s, "any") == 0) {
		*out = LV_M_ANY;
		return LV_OK;
	}
	unsigned mask = 0;
	const char *p = s;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		const char *tok = p;
		while (*p && *p != ',' && *p != ' ' && *p != '\t')
			p++;
		size_t len = (size_t)(p - tok);
		while (*p == ' ' || *p == '\t')
			p++;
		if (len == 0 || (*p != ',' && *p != '\0')) {
			snprintf(err, errsz, "expected a comma-separated list of methods, e.g. GET, HEAD");
			return LV_ERR;
		}
		unsigned bit = policy_method_bit(tok, len);
		if (bit == LV_M_OTHER) {
			snprintf(err, errsz,
			         "unknown method \"%.*s\" (use GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, "
			         "TRACE, or any; names are case-sensitive)",
			         (int)len, tok);
			return LV_ERR;
		}
		mask |= bit;
		if (*p == '\0')
			break;
		p++;
	}
	*out = mask;
	return LV_OK;
}

/* Writes `len` bytes of `v` to the field of `k`, after checking that the
 * table gives the field the size its type stores. */
static int keys_store(const struct keys_def *k, void *base, const void *v, size_t len, char *err,
                      size_t errsz)
{
	if (k->size != len) {
		snprintf(err, errsz, "key table gives the field a wrong size");
		return LV_ERR;
	}
	memcpy((char *)base + k->off, v, len);
	return LV_OK;
}

/* "10s" or "100 calls". */
static int keys_window(const struct keys_def *k, const char *text, struct lv_window *out, char *err, size_t errsz)
{
	const char *why;
	memset(out, 0, sizeof(*out));
	const char *sp = strchr(text, ' ');
	if (sp != NULL) {
		const char *unit = sp;
		while (*unit == ' ')
			unit++;
		char num[24];
		if ((strcmp(unit, "calls") != 0 && strcmp(unit, "call") != 0) || (size_t)(sp - text) >= sizeof(num)) {
			snprintf(err, errsz, "expected a duration (10s) or a number of calls (100 calls)");
			return LV_ERR;
		}
		snprintf(num, sizeof(num), "%.*s", (int)(sp - text), text);
		if (value_uint(num, 1, LV_WINDOW_MAX_CALLS, &out->calls, &why) != LV_OK) {
			snprintf(err, errsz, "must be between 1 and %d calls (or a duration)", LV_WINDOW_MAX_CALLS);
			return LV_ERR;
		}
		return LV_OK;
	}
	uint64_t lo = 0, hi = UINT64_MAX;
	if (value_duration_ms(text, &out->ms, &why) != LV_OK) {
		snprintf(err, errsz, "%s; or a number of calls (100 calls)", why);
		return LV_ERR;
	}
	if ((k->min && value_duration_ms(k->min, &lo, &why) != LV_OK) ||
	    (k->max && value_duration_ms(k->max, &hi, &why) != LV_OK)) {
		snprintf(err, errsz, "bad bound in the key table: %s", why);
		return LV_ERR;
	}
	if (out->ms < lo || out->ms > hi) {
		snprintf(err, errsz, "must be between %s and %s (or a number of calls)", k->min, k->max);
		return LV_ERR;
	}
	return LV_OK;
}

/* One element character of a list value: false (with err set) rejects it.
 * <p> points at the character inside its element, <start> at the element. */
typedef bool (*keys_elem_char)(const char *p, const char *start, char *err, size_t errsz);
/* One whole element of a list value, <len> bytes at <e>: false (with err
 * set) rejects it. */
typedef bool (*keys_elem_whole)(const char *e, size_t len, char *err, size_t errsz);

static bool keys_header_char(const char *p, const char *start, char *err, size_t errsz)
{
	unsigned char c = (unsigned char)*p;
	if (isalnum(c) || strchr("!#$%&'*+-.^_`|~", c))
		return true;
	snprintf(err, errsz, "'%c' cannot appear in a header name", c);
	return false;
}

/* Tags are what Surrogate-Key carries: visible characters without
 * separators, plus {1}..{9} placeholders. A tag is an exact name: '*', which
 * is a glob everywhere else in a policy, is refused rather than taken
 * literally. */
static bool keys_tag_char(const char *p, const char *start, char *err, size_t errsz)
{
	unsigned char c = (unsigned char)*p;
	if (c == '*') {
		snprintf(err, errsz, "'*' cannot appear in a tag: a tag is an exact name ({1}..{9} insert the route's "
		                     "wildcards)");
		return false;
	}
	if (c == '{') {
		if (p[1] < '1' || p[1] > '9' || p[2] != '}') {
			snprintf(err, errsz, "a placeholder is {1} to {9}");
			return false;
		}
		return true;
	}
	if (c == '}' ? p - start < 2 || p[-2] != '{' : (c <= ' ' || c >= 0x7f || c == '"')) {
		snprintf(err, errsz, "'%c' cannot appear in a tag", c);
		return false;
	}
	return true;
}

/* One character of an item of a route's `invalidate`: "/path" with {N}
 * placeholders and globs (the whole item is checked by keys_inval_item()),
 * or "tag:" and a tag. */
static bool keys_inval_char(const char *p, const char *start, char *err, size_t errsz)
{
	size_t at = (size_t)(p - start);
	bool tag = strncmp(start, "tag:", 4) == 0;
	if (at == 0 && *p != '/' && !tag) {
		snprintf(err, errsz, "an invalidation is /path, /path/** or tag:name");
		return false;
	}
	if (tag && at == 3 && (p[1] == ',' || p[1] == ' ' || p[1] == '\t' || p[1] == '\0')) {
		snprintf(err, errsz, "tag: needs a name");
		return false;
	}
	if (tag && at < 4)
		return true;
	if (*p == '*' && !tag)
		return true;
	if (*p == '?' || *p == '#') {
		snprintf(err, errsz, "'%c' cannot appear in an invalidation path", *p);
		return false;
	}
	return keys_tag_char(p, start, err, errsz);
}

/* A path of `invalidate` takes the globs of `match`, by the same rules. */
static bool keys_inval_item(const char *e, size_t len, char *err, size_t errsz)
{
	const char *why;
	if (strncmp(e, "tag:", 4) == 0 || route_pattern_check(LV_MATCH_GLOB, e, len, &why) == LV_OK)
		return true;
	snprintf(err, errsz, "%.*s: %s", (int)len, e, why);
	return false;
}

/* "A, b  c" -> "a,b,c" (lowercased when <lower>): elements separated by
 * commas or blanks, each character checked by <ok>. */
static int keys_list(const char *text, keys_elem_char ok, bool lower, const char *what, char *out, size_t cap,
                     char *err, size_t errsz)
{
	size_t o = 0;
	const char *p = text;
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (!*p)
			break;
		if (o && o + 1 < cap)
			out[o++] = ',';
		const char *start = p;
		while (*p && *p != ',' && *p != ' ' && *p != '\t') {
			if (!ok(p, start, err, errsz))
				return LV_ERR;
			if (o + 1 >= cap) {
				snprintf(err, errsz, "%s list too long (max %zu bytes)", what, cap - 1);
				return LV_ERR;
			}
			out[o++] = lower ? (char)tolower((unsigned char)*p) : *p;
			p++;
		}
	}
	out[o] = '\0';
	return LV_OK;
}

/* A string value into its char[] field, whose size bounds it. */
static int keys_store_str(const struct keys_def *k, char *field, const char *text, const char *too_long, char *err,
                          size_t errsz)
{
	size_t n = strlen(text);
	if (n >= k->size) {
		snprintf(err, errsz, "%s (max %zu bytes)", too_long, k->size - 1);
		return LV_ERR;
	}
	memcpy(field, text, n + 1);
	return LV_OK;
}

/* A list value into its char[] field, whose size bounds it: each character
 * checked by <ok>, then each whole element by <item> unless NULL. */
static int keys_set_list(const struct keys_def *k, char *field, const char *text, keys_elem_char ok,
                         keys_elem_whole item, bool lower, const char *what, char *err, size_t errsz)
{
	char v[LV_INVALIDATE_MAX];
	if (k->size > sizeof(v)) {
		snprintf(err, errsz, "key table gives the field a wrong size");
		return LV_ERR;
	}
	if (keys_list(text, ok, lower, what, v, k->size, err, errsz) != LV_OK)
		return LV_ERR;
	for (const char *e = v; item != NULL && *e;) {
		size_t len = strcspn(e, ",");
		if (!item(e, len, err, errsz))
			return LV_ERR;
		e += len + (e[len] == ',');
	}
	memcpy(field, v, strlen(v) + 1);
	return LV_OK;
}

int keys_set(const struct keys_def *k, void *base, const char *text, char *err, size_t errsz)
{
	const char *why = NULL;
	char *field = (char *)base + k->off;
	char list[128];

	switch (k->type) {
	case KT_NAME:
	case KT_TOPIC: {
		/* a name whose default is "" may be left empty: "work it out" */
		size_t max = k->type == KT_TOPIC ? 250 : k->size;
		bool empty_ok = k->def != NULL && k->def[0] == '\0' && text[0] == '\0';
		if (!empty_ok && !keys_name_ok(text, max < k->size ? max : k->size)) {
			snprintf(err, errsz, "must be 1-%zu characters of A-Z a-z 0-9 _ . -",
			         (max < k->size ? max : k->size) - 1);
			return LV_ERR;
		}
		memcpy(field, text, strlen(text) + 1);
		return LV_OK;
	}
	case KT_HOSTPORT: {
		struct lv_hostport hp;
		memset(&hp, 0, sizeof(hp));
		if (k->words != NULL && strcmp(text, k->words) == 0) /* "none": not set */
			return keys_store(k, base, &hp, sizeof(hp), err, errsz);
		if (value_hostport(text, &hp, &why) != LV_OK) {
			snprintf(err, errsz, "%s", why);
			return LV_ERR;
		}
		return keys_store(k, base, &hp, sizeof(hp), err, errsz);
	}
	case KT_DURATION:
	case KT_SIZE:
	case KT_UINT: {
		uint64_t v;
		if (keys_bounded(k, text, &v, err, errsz) != LV_OK)
			return LV_ERR;
		return keys_store(k, base, &v, sizeof(v), err, errsz);
	}
	case KT_BOOL: {
		bool v;
		if (value_bool(text, &v, &why) != LV_OK) {
			snprintf(err, errsz, "%s", why);
			return LV_ERR;
		}
		return keys_store(k, base, &v, sizeof(v), err, errsz);
	}
	case KT_PERCENT: {
		double v, lo = 0, hi = 100;
		if (value_percent(text, &v, &why) != LV_OK) {
			snprintf(err, errsz, "%s", why);
			return LV_ERR;
		}
		if ((k->min != NULL && value_percent(k->min, &lo, &why) != LV_OK) ||
		    (k->max != NULL && value_percent(k->max, &hi, &why) != LV_OK)) {
			snprintf(err, errsz, "bad bound in the key table: %s", why);
			return LV_ERR;
		}
		if (v < lo || v > hi) {
			snprintf(err, errsz, "must be between %s and %s", k->min ? k->min : "0%",
			         k->max ? k->max : "100%");
			return LV_ERR;
		}
		return keys_store(k, base, &v, sizeof(v), err, errsz);
	}
	case KT_ENUM: {
		int v = keys_word(k->words, text);
		if (v < 0) {
			keys_words_list(k->words, ", ", list, sizeof(list));
			snprintf(err, errsz, "must be one of %s", list);
			return LV_ERR;
		}
		return keys_store(k, base, &v, sizeof(v), err, errsz);
	}
	case KT_PATH: {
		if (keys_word(k->words, text) < 0) {
			bool ctl = false;
			for (const char *p = text; *p; p++)
				ctl |= (unsigned char)*p < ' ' || *p == 0x7f;
			if (text[0] != '/' || ctl) {
				if (k->words == NULL) {
					snprintf(err, errsz, "must be an absolute path");
					return LV_ERR;
				}
				keys_words_list(k->words, ", ", list, sizeof(list));
				snprintf(err, errsz, "must be %s, or an absolute path", list);
				return LV_ERR;
			}
		}
		return keys_store_str(k, field, text, "path too long", err, errsz);
	}
	case KT_METHODS: {
		unsigned v;
		if (keys_methods(text, &v, err, errsz) != LV_OK)
			return LV_ERR;
		return keys_store(k, base, &v, sizeof(v), err, errsz);
	}
	case KT_TTL: {
		uint64_t v;
		if (strcmp(text, "off") == 0) {
			v = LV_TTL_OFF;
		} else if (strcmp(text, "origin") == 0) {
			v = LV_TTL_ORIGIN;
		} else if (*text != '\0' && !isdigit((unsigned char)*text)) {
			snprintf(err, errsz, "expected off, origin or a duration such as 60s");
			return LV_ERR;
		} else if (keys_bounded(k, text, &v, err, errsz) != LV_OK) {
			return LV_ERR;
		}
		return keys_store(k, base, &v, sizeof(v), err, errsz);
	}
	case KT_STATUSES: {
		struct lv_statuses v;
		memset(&v, 0, sizeof(v));
		if (keys_statuses(text, &v, err, errsz) != LV_OK)
			return LV_ERR;
		return keys_store(k, base, &v, sizeof(v), err, errsz);
	}
	case KT_STATUS_SET: {
		struct lv_status_set v;
		if (keys_status_set(text, &v, err, errsz) != LV_OK)
			return LV_ERR;
		return keys_store(k, base, &v, sizeof(v), err, errsz);
	}
	case KT_FLAGS: {
		unsigned v;
		if (keys_flags(k->words, text, &v, err, errsz) != LV_OK)
			return LV_ERR;
		return keys_store(k, base, &v, sizeof(v), err, errsz);
	}
	case KT_FIELDS: {
		struct lv_alog_fields v;
		if (keys_fields(k->words, text, &v, err, errsz) != LV_OK)
			return LV_ERR;
		return keys_store(k, base, &v, sizeof(v), err, errsz);
	}
	case KT_CHAIN: {
		struct lv_fallback_chain v;
		if (keys_chain(k->words, text, &v, err, errsz) != LV_OK)
			return LV_ERR;
		return keys_store(k, base, &v, sizeof(v), err, errsz);
	}
	case KT_LINE:
		for (const char *q = text; *q; q++)
			if ((unsigned char)*q < ' ' || *q == 0x7f) {
				snprintf(err, errsz, "no control characters");
				return LV_ERR;
			}
		return keys_store_str(k, field, text, "too long", err, errsz);
	case KT_SHED: {
		struct lv_shed v;
		if (keys_shed(text, &v, err, errsz) != LV_OK)
			return LV_ERR;
		return keys_store(k, base, &v, sizeof(v), err, errsz);
	}
	case KT_COHORT: {
		struct lv_cohort_key v;
		if (keys_cohort(text, &v, err, errsz) != LV_OK)
			return LV_ERR;
		return keys_store(k, base, &v, sizeof(v), err, errsz);
	}
	case KT_WINDOW: {
		struct lv_window v;
		if (keys_window(k, text, &v, err, errsz) != LV_OK)
			return LV_ERR;
		return keys_store(k, base, &v, sizeof(v), err, errsz);
	}
	case KT_HOSTPORTS: {
		char v[LV_HEADER_LIST_MAX];
		size_t o = 0;
		const char *p = text;
		while (*p) {
			while (*p == ' ' || *p == '\t' || *p == ',')
				p++;
			if (!*p)
				break;
			const char *s = p;
			while (*p && *p != ',' && *p != ' ' && *p != '\t')
				p++;
			char one[LV_HOST_MAX + 8];
			struct lv_hostport hp;
			snprintf(one, sizeof(one), "%.*s", (int)(p - s), s);
			if (value_hostport(one, &hp, &why) != LV_OK) {
				snprintf(err, errsz, "%s: %s", one, why);
				return LV_ERR;
			}
			if (o + strlen(one) + 2 > sizeof(v)) {
				snprintf(err, errsz, "list too long (max %zu bytes)", sizeof(v) - 1);
				return LV_ERR;
			}
			o += (size_t)snprintf(v + o, sizeof(v) - o, "%s%s", o ? "," : "", one);
		}
		v[o] = '\0';
		if (k->size != sizeof(v)) {
			snprintf(err, errsz, "key table gives the field a wrong size");
			return LV_ERR;
		}
		memcpy(field, v, o + 1);
		return LV_OK;
	}
	case KT_INVALIDATIONS:
		return keys_set_list(k, field, text, keys_inval_char, keys_inval_item, false, "invalidation", err, errsz);
	case KT_SECRET:
		if (strcmp(text, LV_SECRET_MASK) == 0) {
			snprintf(err, errsz, "%s is what `levee check --print` writes in place of a secret, not a secret: "
			         "put the value back, or ${VAR} to take it from the environment", LV_SECRET_MASK);
			return LV_ERR;
		}
		/* otherwise a secret is a text */
		/* fall through */
	case KT_TEXT:
		for (const char *q = text; *q; q++)
			if ((unsigned char)*q <= ' ' || (unsigned char)*q >= 0x7f) {
				snprintf(err, errsz, "only printable ASCII without blanks");
				return LV_ERR;
			}
		return keys_store_str(k, field, text, "too long", err, errsz);
	case KT_HEADERS:
		if (k->words != NULL && strcmp(text, k->words) == 0) { /* "none": the empty list */
			field[0] = '\0';
			return LV_OK;
		}
		return keys_set_list(k, field, text, keys_header_char, NULL, true, "header", err, errsz);
	case KT_TAGS:
		return keys_set_list(k, field, text, keys_tag_char, NULL, false, "tag", err, errsz);
	case KT_GLOB:
	case KT_PREFIX: {
		/* The pattern, its length and its kind are one value: `base` is a route. */
		struct lv_route *r = base;
		enum lv_match_kind kind = k->type == KT_GLOB ? LV_MATCH_GLOB : LV_MATCH_PREFIX;
		size_t n = strlen(text);
		if (n >= sizeof(r->pattern)) {
			snprintf(err, errsz, "pattern too long (max %zu bytes)", sizeof(r->pattern) - 1);
			return LV_ERR;
		}
		if (route_pattern_check(kind, text, n, &why) != LV_OK) {
			snprintf(err, errsz, "%s", why);
			return LV_ERR;
		}
		memcpy(r->pattern, text, n + 1);
		r->pattern_len = n;
		r->kind = kind;
		return LV_OK;
	}
	}
	snprintf(err, errsz, "key table names an unknown type");
	return LV_ERR;
}

int keys_defaults(const struct keys_section *s, void *base, char *err, size_t errsz)
{
	for (size_t i = 0; i < KEYS_N; i++) {
		const struct keys_def *k = &keys_def_table[i];
		if (k->def == NULL || strcmp(k->section, s->name) != 0)
			continue;
		char why[KEYS_ERR_MAX];
		if (keys_set(k, base, k->def, why, sizeof(why)) != LV_OK) {
			snprintf(err, errsz, "default of [%s] %s: %s", k->section, k->name, why);
			return LV_ERR;
		}
	}
	return LV_OK;
}

bool keys_equal(const struct keys_def *k, const void *a, const void *b)
{
	const char *fa = (const char *)a + k->off, *fb = (const char *)b + k->off;
	switch (k->type) {
	case KT_NAME:
	case KT_PATH:
	case KT_HEADERS:
	case KT_TAGS:
	case KT_HOSTPORTS:
	case KT_TOPIC:
	case KT_INVALIDATIONS:
	case KT_TEXT:
	case KT_SECRET:
	case KT_LINE:
		return strcmp(fa, fb) == 0;
	case KT_HOSTPORT: {
		const struct lv_hostport *ha = (const void *)fa, *hb = (const void *)fb;
		return ha->port == hb->port && strcmp(ha->host, hb->host) == 0;
	}
	case KT_GLOB:
	case KT_PREFIX: {
		const struct lv_route *ra = a, *rb = b;
		return ra->kind == rb->kind && strcmp(ra->pattern, rb->pattern) == 0;
	}
	default:
		/* Scalars, all stored by keys_store() from one whole value. */
		return memcmp(fa, fb, k->size) == 0;
	}
}

/* ---- uses of the table ------------------------------------------------- */

void policy_keep_static(struct lv_policy *next, const struct lv_policy *running,
                        void (*cb)(const char *section, const char *key, void *arg), void *arg)
{
	for (size_t i = 0; i < KEYS_N; i++) {
		const struct keys_def *k = &keys_def_table[i];
		const struct keys_section *s = keys_section_find(k->section);
		/* Keys of named sections are all reloadable (the unit tests check it):
		 * their instances come and go with the file. */
		if (k->reload || s == NULL || s->named || keys_equal(k, running, next))
			continue;
		cb(k->section, k->name, arg);
		memcpy((char *)next + k->off, (const char *)running + k->off, k->size);
	}
}
