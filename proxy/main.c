/*
 * main.c - command line, start-up, signals, drain and shutdown.
 *
 *   levee --policy FILE [--listen H:P] [--upstream H:P] [--admin H:P] [--probe H:P]
 *   levee --upstream H:P [--listen H:P] [--admin H:P] [--probe H:P]   built-in defaults
 *   levee check FILE                                      validate, exit 0/1
 *   levee check --print [--defaults] FILE                 the resolved policy (cli/print.c)
 *   levee diff OLD NEW | explain FILE METHOD URL ...      tools for ops (cli/)
 *   levee keys                                            document every key
 *   levee tier force|clear ...                            publish a control command
 *   levee --version
 *
 * Signals are delivered through libevent, so their handlers run inside the
 * main loop like any other callback: SIGHUP reloads, SIGUSR1 reopens the
 * access log, SIGTERM and SIGINT drain (a second one exits at once).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/admin.h"
#include "cache/cache_ctx.h"
#include "cache/cache_loop.h"
#include "cache/warmup.h"
#include "cli/cli.h"
#include "control/control.h"
#include "invalidate/invalidate.h"
#include "log.h"
#include "net/worker.h"
#include "pipeline.h"
#include "reload.h"
#include "resilience/tiers.h"
#include "resilience/bulkhead.h"
#include "server.h"

#define DRAIN_POLL_MS 50

/* The one server. Only main() names it; everything else is handed a
 * pointer (the callbacks below get it as their argument). */
static struct server server_instance;

static void usage(FILE *f)
{
	fputs("usage: levee --policy FILE [--listen HOST:PORT] [--upstream HOST:PORT] [--admin HOST:PORT]\n"
	      "                          [--probe HOST:PORT]\n"
	      "       levee --upstream HOST:PORT [--listen HOST:PORT] [--admin HOST:PORT] [--probe HOST:PORT]\n"
	      "       levee check FILE\n"
	      "       levee keys\n"
	      "       levee --version\n",
	      f);
	cli_usage(f);
	control_cli_usage(f);
}

static void print_diag(const struct lv_diag *d)
{
	for (size_t i = 0; i < d->n; i++)
		fprintf(stderr, "%s\n", d->lines[i]);
	for (size_t i = 0; i < d->nwarn; i++)
		fprintf(stderr, "%s\n", d->warnings[i]);
}

static int cmd_check(const char *path)
{
	struct lv_diag d = {0};
	struct lv_policy *p = NULL;
	if (policy_load_file(path, NULL, &p, &d) != LV_OK) {
		print_diag(&d);
		diag_free(&d);
		return 1;
	}
	/* warnings do not fail the check: the file would load as it is */
	print_diag(&d);
	printf("%s: ok (%zu route%s, %zu warning%s, checksum %s)\n", path, p->nroutes, p->nroutes == 1 ? "" : "s",
	       d.nwarn, d.nwarn == 1 ? "" : "s", p->checksum);
	policy_unref(p);
	diag_free(&d);
	return 0;
}

/* ---- drain and stop ---------------------------------------------------- */

static struct event *ev_term, *ev_int, *ev_usr1, *ev_drain, *ev_delay;
static uint64_t drain_deadline;

static void drain_poll(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;
	uint64_t open = atomic_load(&s->conns);
	if (open == 0 || now_us() >= drain_deadline) {
		if (open)
			log_warn("drain timeout: closing %llu connection(s) still open", (unsigned long long)open);
		else
			log_info("drained");
		event_base_loopbreak(s->main_base);
		return;
	}
	struct timeval tv = {0, DRAIN_POLL_MS * 1000};
	event_add(ev_drain, &tv);
}

/* After drain_delay: stop accepting and let requests in flight finish. */
static void drain_begin(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;
	struct runtime *rt = server_runtime_acquire(s);
	uint64_t grace = rt->policy->drain_timeout_ms;
	runtime_unref(rt);
	log_info("draining (up to %llu ms)", (unsigned long long)grace);
	drain_deadline = now_us() + grace * 1000;
	for (unsigned i = 0; i < s->nworkers; i++)
		worker_notify_drain(s->workers[i]);
	ev_drain = evtimer_new(s->main_base, drain_poll, s);
	drain_poll(-1, 0, s);
}

/* SIGUSR1: the access log file was moved (log rotation); open it again. */
static void on_reopen(evutil_socket_t sig, short what, void *arg)
{
	(void)sig, (void)what, (void)arg;
	accesslog_reopen(); /* a failure is logged, and the old file goes on */
}

static void on_terminate(evutil_socket_t sig, short what, void *arg)
{
	struct server *s = arg;
	if (atomic_exchange(&s->draining, 1)) {
		log_warn("second signal: exiting now");
		event_base_loopbreak(s->main_base);
		return;
	}
	/* /readyz fails from now on (s->draining); traffic is still served
	 * until drain_delay has passed, for the endpoints to catch up */
	struct runtime *rt = server_runtime_acquire(s);
	uint64_t delay = rt->policy->drain_delay_ms;
	runtime_unref(rt);
	if (!delay) {
		log_info("signal %d", (int)sig);
		drain_begin(-1, 0, s);
		return;
	}
	log_info("signal %d: not ready; serving %llu ms more before draining", (int)sig, (unsigned long long)delay);
	ev_delay = evtimer_new(s->main_base, drain_begin, s);
	struct timeval tv;
	tv_ms(&tv, delay);
	if (!ev_delay || event_add(ev_delay, &tv) < 0)
		drain_begin(-1, 0, s);
}

/* The warm-up's question: is every listener worker's Redis ready (as of
 * its last tick)? */
static bool workers_on_redis(void *arg)
{
	struct server *s = arg;
	for (unsigned i = 0; i < s->nlisteners; i++) {
		struct redis_stats st;
		if (cache_loop_redis_stats(s->workers[i], &st) &&
		    (st.state != REDIS_ST_READY || st.breaker != REDIS_BR_CLOSED))
			return false;
	}
	return true;
}

static void die(const char *fmt, const char *arg)
{
	fprintf(stderr, "levee: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	exit(1);
}

int main(int argc, char **argv)
{
	const char *policy_path = NULL;
	struct lv_overrides ov = {0};

	if (argc >= 2 && strcmp(argv[1], "check") == 0) {
		if (argc > 3 || (argc == 3 && strncmp(argv[2], "--", 2) == 0))
			return cli_check_print(argc - 2, argv + 2);
		if (argc != 3) {
			usage(stderr);
			return 2;
		}
		return cmd_check(argv[2]);
	}
	if (argc >= 2 && strcmp(argv[1], "diff") == 0)
		return cli_diff(argc - 2, argv + 2);
	if (argc >= 2 && strcmp(argv[1], "explain") == 0)
		return cli_explain(argc - 2, argv + 2);
	if (argc >= 2 && strcmp(argv[1], "tier") == 0)
		return control_cli(argc - 1, argv + 1);
	if (argc == 2 && strcmp(argv[1], "keys") == 0) {
		policy_keys_markdown(stdout);
		return 0;
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char **slot = NULL;
		if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
			printf("levee %s\n", LEVEE_VERSION);
			return 0;
		} else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(a, "--policy") == 0) {
			slot = &policy_path;
		} else if (strcmp(a, "--listen") == 0) {
			slot = &ov.listen;
		} else if (strcmp(a, "--upstream") == 0) {
			slot = &ov.upstream;
		} else if (strcmp(a, "--admin") == 0) {
			slot = &ov.admin;
		} else if (strcmp(a, "--probe") == 0) {
			slot = &ov.probe;
		} else {
			fprintf(stderr, "levee: unknown argument %s\n", a);
			usage(stderr);
			return 2;
		}
		if (i + 1 >= argc) {
			fprintf(stderr, "levee: %s needs a value\n", a);
			return 2;
		}
		*slot = argv[++i];
	}
	if (!policy_path && !ov.upstream) {
		usage(stderr);
		return 2;
	}

	signal(SIGPIPE, SIG_IGN);
	/* A reload or a log rotation asked before the loop's handlers are in
	 * place (a logrotate or kubelet racing the start) is dropped, not fatal:
	 * their default action would end the process. */
	signal(SIGHUP, SIG_IGN);
	signal(SIGUSR1, SIG_IGN);
	struct lv_diag d = {0};
	struct lv_policy *p = NULL;
	int rc = policy_path ? policy_load_file(policy_path, &ov, &p, &d) : policy_load_defaults(&ov, &p, &d);
	if (rc != LV_OK) {
		print_diag(&d);
		diag_free(&d);
		return 1;
	}
	log_set_level(p->log_level);
	for (size_t i = 0; i < d.nwarn; i++)
		log_warn("policy: %s", d.warnings[i]);
	diag_free(&d);
	if (accesslog_open(p->access_log) != LV_OK)
		return 1;
	struct server *s = &server_instance;
	server_init(s);
	if (policy_path)
		snprintf(s->policy_path, sizeof(s->policy_path), "%s", policy_path);
	s->ov = ov;

	char err[512];
	struct runtime *rt;
	if (runtime_build(p, &rt, err, sizeof(err)) != LV_OK || pipeline_runtime_attach(rt, err, sizeof(err)) != LV_OK)
		die("%s", err);
	/* the server takes over the reference; `rt` is borrowed from here on */
	runtime_unref(runtime_slot_swap(&s->runtime, rt));
	pipeline_init();
	if (server_cache_create(s, err, sizeof(err)) != LV_OK)
		die("%s", err);

	s->main_base = event_base_new();
	if (!s->main_base)
		die("%s", "event_base_new failed");

	/* LEVEE_CGROUP_ROOT stands for the cgroup2 mount (tests, odd layouts) */
	struct cgroup_paths cg = {.root = getenv("LEVEE_CGROUP_ROOT")};
	s->cpus = (struct cpus){.n = (unsigned)rt->policy->workers, .source = CPUS_POLICY};
	if (s->cpus.n == 0)
		cpus_budget(&cg, &s->cpus);
	unsigned n = s->cpus.n;
	if (server_workers_create(s, n, err, sizeof(err)) != LV_OK ||
	    server_bulkhead_threads(s, rt, err, sizeof(err)) != LV_OK)
		die("%s", err);
	server_protection_apply(s, rt);
	if (cache_l2_open(s->main_base, rt->policy, &s->redis, &s->l2, err, sizeof(err)) != LV_OK)
		die("%s", err);
	if (invalidate_start(rt->policy, s->cache, err, sizeof(err)) != LV_OK)
		die("%s", err);
	if (server_tiers_start(s, err, sizeof(err)) != LV_OK)
		die("%s", err);
	if (control_start(rt->policy, err, sizeof(err)) != LV_OK) /* after the tier core it drives */
		die("%s", err);
	if (admin_start(s, rt->policy, err, sizeof(err)) != LV_OK)
		die("%s", err);
	if (probe_start(s) != LV_OK || reload_init(s) != LV_OK)
		die("%s", "event setup failed");
	ev_term = evsignal_new(s->main_base, SIGTERM, on_terminate, s);
	ev_int = evsignal_new(s->main_base, SIGINT, on_terminate, s);
	ev_usr1 = evsignal_new(s->main_base, SIGUSR1, on_reopen, NULL);
	if (!ev_term || !ev_int || !ev_usr1 || event_add(ev_term, NULL) < 0 || event_add(ev_int, NULL) < 0 ||
	    event_add(ev_usr1, NULL) < 0)
		die("%s", "signal setup failed");
	if (server_workers_start(s) != LV_OK)
		die("%s", "cannot start worker thread");
	/* after the workers: the warm-up's requests go through their listener */
	const struct warmup_env wenv = {.base = s->main_base,
	                                .cache = s->cache,
	                                .redis = s->redis,
	                                .l2 = s->l2,
	                                .workers_on_redis = workers_on_redis,
	                                .ctx = s,
	                                .draining = &s->draining};
	if (warmup_start(&wenv, rt->policy, err, sizeof(err)) != LV_OK)
		die("%s", err);

	const struct lv_policy *cp = rt->policy;
	char sizing[2 * CGROUP_PATH_MAX];
	cpus_describe(&s->cpus, sizing, sizeof(sizing));
	log_info("levee %s: listening on %s:%u%s, upstream %s, admin %s:%u, workers %s, policy %s, via %s",
	         LEVEE_VERSION, cp->listen.host, cp->listen.port,
	         cp->transparent == LV_TRANSPARENT_ON ? " (transparent)" : "", rt->up_text, cp->admin.host,
	         cp->admin.port, sizing, cp->path[0] ? cp->path : "(built-in defaults)", s->via);

	event_base_dispatch(s->main_base);

	for (unsigned i = 0; i < s->nworkers; i++)
		worker_notify_stop(s->workers[i]);
	for (unsigned i = 0; i < s->nstarted; i++) /* a thread a failed reload did not start has none */
		worker_join(s->workers[i]);
	/* Every worker has stopped: no request moves any more. Forget the fills
	 * first, so that no teardown wakes a waiter on a worker torn down
	 * before it, then run what the mailboxes still hold (parked requests
	 * end at once now) and refuse further posts. */
	for (unsigned i = 0; i < s->nworkers; i++)
		s->workers[i]->closing = true;
	cache_fills_shutdown(s->cache);
	bulkhead_shutdown_all(); /* no worker is posted a grant after this */
	for (unsigned i = 0; i < s->nworkers; i++)
		mailbox_close(&s->workers[i]->mbox);
	/* after the workers: every write they answered has handed over its
	 * invalidations; Kafka gets a few seconds, the outbox the rest */
	uint64_t flush_ms = server_runtime(s)->policy->kafka.delivery_timeout_ms;
	if (flush_ms > 3000)
		flush_ms = 3000;
	invalidate_stop((int)flush_ms);
	control_stop(1000); /* before the tier core whose changes it publishes */
	tiers_stop();
	warmup_stop(); /* before server_destroy frees the Redis tier it uses */
	admin_stop();
	probe_stop();
	reload_stop();
	if (ev_drain)
		event_free(ev_drain);
	if (ev_delay)
		event_free(ev_delay);
	event_free(ev_term);
	event_free(ev_int);
	event_free(ev_usr1);
	/* the workers, the main thread's Redis tier, the cache, the base, the
	 * runtime */
	server_destroy(s);
	log_info("stopped");
	return 0;
}
