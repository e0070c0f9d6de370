/*
 * test_policy_values.c - loading values: every key type read into the
 * snapshot as written (sizes, durations, addresses, lists, environment
 * expansion), bulkheads with max_concurrent = auto, breakers, fallback
 * chains and the access log's fields, with the exact error lines of values
 * that must be refused.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "policy_internal.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#include "policy_expect.h"

/* Every field, set away from its default. */
static void test_load_values(void **state)
{
	(void)state;
	static const char text[] = "[levee]\n"
	                           "service = ${LV_TP_SVC}\n"
	                           "listen = [::]:9000\n"
	                           "upstream = app.default.svc:8081\n"
	                           "admin = 127.0.0.1:9001\n"
	                           "workers = 4\n"
	                           "max_connections = 500\n"
	                           "drain_timeout = 0\n"
	                           "access_log = /var/log/levee/access.log\n"
	                           "log_level = debug\n"
	                           "trust_forwarded = yes\n"
	                           "transparent = on\n"
	                           "[limits]\n"
	                           "header_bytes = 64KiB\n"
	                           "headers = 50\n"
	                           "uri_bytes = 2KB\n"
	                           "body_bytes = 10MB\n"
	                           "header_timeout = 5s\n"
	                           "body_timeout = 1m\n"
	                           "idle_timeout = 1h\n"
	                           "send_timeout = 1500ms\n"
	                           "[upstream]\n"
	                           "connect_timeout = 250ms\n"
	                           "response_timeout = 2m\n"
	                           "keepalive = 0\n"
	                           "keepalive_timeout = 5s\n"
	                           "probe_interval = 100ms\n"
	                           "[route \"users\"]\n"
	                           "match = /api/users/*\n"
	                           "methods = GET,HEAD , DELETE\n"
	                           "[route \"static\"]\n"
	                           "prefix = /static/\n";
	setenv("LV_TP_SVC", "shop-api", 1);
	struct lv_policy *p = load_ok("values", text);

	assert_string_equal(p->path, "v.ini");
	assert_int_equal(strlen(p->checksum), 16);
	assert_true(p->loaded_at > 0);
	assert_string_equal(p->service, "shop-api");
	assert_string_equal(p->listen.host, "::");
	assert_int_equal(p->listen.port, 9000);
	assert_string_equal(p->upstream.host, "app.default.svc");
	assert_int_equal(p->upstream.port, 8081);
	assert_string_equal(p->admin.host, "127.0.0.1");
	assert_int_equal(p->admin.port, 9001);
	assert_int_equal(p->workers, 4);
	assert_int_equal(p->max_connections, 500);
	assert_int_equal(p->drain_timeout_ms, 0);
	assert_string_equal(p->access_log, "/var/log/levee/access.log");
	assert_int_equal(p->log_level, LV_LOG_DEBUG);
	assert_true(p->trust_forwarded);
	assert_int_equal(p->transparent, LV_TRANSPARENT_ON);
	assert_int_equal(p->limits.header_bytes, 65536);
	assert_int_equal(p->limits.headers, 50);
	assert_int_equal(p->limits.uri_bytes, 2000);
	assert_int_equal(p->limits.body_bytes, 10000000);
	assert_int_equal(p->limits.header_timeout_ms, 5000);
	assert_int_equal(p->limits.body_timeout_ms, 60000);
	assert_int_equal(p->limits.idle_timeout_ms, 3600000);
	assert_int_equal(p->limits.send_timeout_ms, 1500);
	assert_int_equal(p->up.connect_timeout_ms, 250);
	assert_int_equal(p->up.response_timeout_ms, 120000);
	assert_int_equal(p->up.keepalive, 0);
	assert_int_equal(p->up.keepalive_timeout_ms, 5000);
	assert_int_equal(p->up.probe_interval_ms, 100);

	assert_int_equal(p->nroutes, 2);
	const struct lv_route *r = &p->routes[0];
	assert_string_equal(r->name, "users");
	assert_int_equal(r->kind, LV_MATCH_GLOB);
	assert_string_equal(r->pattern, "/api/users/*");
	assert_int_equal(r->pattern_len, 12);
	assert_int_equal(r->methods, LV_M_GET | LV_M_HEAD | LV_M_DELETE);
	assert_int_equal(r->line, 28);
	r = &p->routes[1];
	assert_string_equal(r->name, "static");
	assert_int_equal(r->kind, LV_MATCH_PREFIX);
	assert_string_equal(r->pattern, "/static/");
	assert_int_equal(r->methods, LV_M_ANY);
	policy_unref(p);
}

/* A bulkhead with max_concurrent = auto, and the adaptive keys' defaults. */
static void test_bulkhead_auto_values(void **state)
{
	(void)state;
	static const char text[] = "[bulkhead \"a\"]\n"
	                           "max_concurrent = auto\n"
	                           "adaptive_min = 3\n"
	                           "adaptive_max = 30\n"
	                           "adaptive_smoothing = 12.5%\n"
	                           "adaptive_window = 1s\n"
	                           "[bulkhead \"b\"]\n";
	struct lv_policy *p = load_ok("bulkhead auto values", text);
	assert_int_equal(p->nbulkheads, 2);
	const struct lv_bulkhead *a = &p->bulkheads[0], *b = &p->bulkheads[1];
	assert_int_equal(a->max_concurrent, 0); /* auto */
	assert_int_equal(a->adaptive_min, 3);
	assert_int_equal(a->adaptive_max, 30);
	assert_true(a->adaptive_smoothing > 12.49 && a->adaptive_smoothing < 12.51);
	assert_int_equal(a->adaptive_window_ms, 1000);
	/* the defaults */
	assert_int_equal(b->max_concurrent, 10);
	assert_int_equal(b->adaptive_min, 2);
	assert_int_equal(b->adaptive_max, 200);
	assert_true(b->adaptive_smoothing > 19.99 && b->adaptive_smoothing < 20.01);
	assert_int_equal(b->adaptive_window_ms, 250);
	policy_unref(p);
}

static void test_breaker_values(void **state)
{
	(void)state;
	static const char text[] = "[breaker \"a\"]\n"
	                           "window = 250 calls\n"
	                           "failure_statuses = 429, 502-504, 4xx\n"
	                           "failure_on = reset,bad\n"
	                           "[breaker \"b\"]\n"
	                           "failure_statuses = none\n"
	                           "failure_on = none\n";
	struct lv_policy *p = NULL;
	struct lv_diag d = {0};
	int rc = policy_load_string("v.ini", text, NULL, &p, &d);
	const char *none[] = {NULL};
	expect_errors("breaker values", rc, &d, none);
	assert_int_equal(p->nbreakers, 2);
	const struct lv_breaker *a = &p->breakers[0], *b = &p->breakers[1];
	assert_int_equal(a->window.calls, 250);
	assert_int_equal(a->window.ms, 0);
	static const unsigned in[] = {400, 429, 499, 502, 503, 504}, out[] = {399, 500, 501, 505, 599, 200};
	for (size_t i = 0; i < N(in); i++) {
		assert_true(status_set_has(&a->failure_statuses, in[i]));
		assert_false(status_set_has(&a->failure_statuses, out[i]));
	}
	assert_int_equal(a->failure_on, LV_BF_RESET | LV_BF_BAD);
	assert_int_equal(b->failure_on, 0);
	for (unsigned st = 100; st < 600; st++)
		assert_false(status_set_has(&b->failure_statuses, st));
	policy_unref(p);
	diag_free(&d);

	/* the defaults: 10 s, every 5xx but 501, every kind of failure */
	assert_int_equal(policy_load_string("v.ini", "[breaker \"c\"]\n", NULL, &p, &d), LV_OK);
	const struct lv_breaker *c = &p->breakers[0];
	assert_int_equal(c->window.ms, 10000);
	assert_int_equal(c->window.calls, 0);
	assert_true(status_set_has(&c->failure_statuses, 500));
	assert_false(status_set_has(&c->failure_statuses, 501));
	assert_true(status_set_has(&c->failure_statuses, 502));
	assert_true(status_set_has(&c->failure_statuses, 599));
	assert_false(status_set_has(&c->failure_statuses, 404));
	assert_int_equal(c->failure_on, LV_BF_TIMEOUT | LV_BF_CONNECT | LV_BF_RESET | LV_BF_TRUNCATED | LV_BF_BAD);
	assert_int_equal(c->min_requests, 20);
	assert_int_equal(c->open_for_ms, 5000);
	assert_int_equal(c->half_open_probes, 3);
	assert_int_equal(c->ramp_ms, 10000);
	policy_unref(p);
	diag_free(&d);
}

/* The fallback chain keeps its order; the file is read at load; the
 * defaults are no fallback at all. */
static void test_fallback_values(void **state)
{
	(void)state;
	char path[] = "/tmp/levee-fallback-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	static const char page[] = "<h1>down</h1>\n<p>back soon</p>\n";
	assert_int_equal(write(fd, page, sizeof(page) - 1), (ssize_t)(sizeof(page) - 1));
	close(fd);
	char text[512];
	snprintf(text, sizeof(text),
	         "[route \"a\"]\nprefix = /a\ncache_ttl = 1m\nfallback = static, stale\nfallback_file = %s\n"
	         "[route \"b\"]\nprefix = /b\n",
	         path);
	struct lv_policy *p = NULL;
	struct lv_diag d = {0};
	int rc = policy_load_string("v.ini", text, NULL, &p, &d);
	const char *none[] = {NULL};
	/* static first: the warning says stale is never tried */
	const char *warn[] = {"v.ini:4: [route \"a\"] warning: fallback: static always answers, so what follows it is never tried",
	                      NULL};
	expect_diag("fallback values", rc, &d, none, warn);
	const struct lv_route *a = &p->routes[0], *b = &p->routes[1];
	assert_int_equal(a->fallback.n, 2);
	assert_int_equal(a->fallback.kind[0], LV_FB_STATIC);
	assert_int_equal(a->fallback.kind[1], LV_FB_STALE);
	assert_true(route_fallback_has(a, LV_FB_STALE));
	assert_false(route_fallback_has(a, LV_FB_STATUS));
	assert_int_equal(a->fallback_file_len, sizeof(page) - 1);
	assert_memory_equal(a->fallback_file_data, page, sizeof(page) - 1);
	assert_int_equal(b->fallback.n, 0);
	assert_null(b->fallback_file_data);
	assert_int_equal(b->fallback_status, 503);
	assert_int_equal(b->stale_fallback_max_ms, 3600000);
	assert_string_equal(b->fallback_content_type, "text/plain; charset=utf-8");
	assert_string_equal(b->fallback_file, "none");
	policy_unref(p);
	diag_free(&d);

	/* a file over 64 KiB fails the load */
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	for (int i = 0; i <= LV_FALLBACK_FILE_MAX; i++)
		fputc('x', f);
	fclose(f);
	rc = policy_load_string("v.ini", text, NULL, &p, &d);
	char want[256];
	snprintf(want, sizeof(want), "v.ini:5: [route \"a\"] fallback_file: %s is larger than 64 KiB", path);
	const char *errs[] = {want, NULL};
	expect_errors("fallback file too large", rc, &d, errs);
	diag_free(&d);
	unlink(path);

	/* the key's words are the kinds, in the enum's order */
	const struct keys_def *k = keys_find("route", "fallback");
	char words[64] = "";
	for (int i = 0; i < LV_FB__COUNT; i++)
		snprintf(words + strlen(words), sizeof(words) - strlen(words), "%s%s", i ? "|" : "", lv_fallback_kind_names[i]);
	assert_string_equal(k->words, words);
}

/* The access log's fields keep the order given; `all` is every field, in
 * the order of the list. */
static void test_access_log_fields(void **state)
{
	(void)state;
	struct lv_policy *p = NULL;
	struct lv_diag d = {0};
	assert_int_equal(policy_load_string("p.ini",
	                                    "[levee]\naccess_log_fields = status, target time\n"
	                                    "access_log_format = text\n",
	                                    NULL, &p, &d),
	                 LV_OK);
	assert_int_equal(p->access_log_fields.n, 3);
	assert_int_equal(p->access_log_fields.f[0], LV_AF_STATUS);
	assert_int_equal(p->access_log_fields.f[1], LV_AF_TARGET);
	assert_int_equal(p->access_log_fields.f[2], LV_AF_TIME);
	assert_int_equal(p->access_log_format, LV_ALOG_TEXT);
	policy_unref(p);
	assert_int_equal(policy_load_string("p.ini", "[levee]\naccess_log_fields = all\n", NULL, &p, &d), LV_OK);
	assert_int_equal(p->access_log_fields.n, LV_AF__COUNT);
	for (unsigned i = 0; i < LV_AF__COUNT; i++)
		assert_int_equal(p->access_log_fields.f[i], i);
	policy_unref(p);
	/* all less some, in the documented order */
	assert_int_equal(policy_load_string("p.ini", "[levee]\naccess_log_fields = all -time, -referer\n", NULL, &p, &d),
	                 LV_OK);
	assert_int_equal(p->access_log_fields.n, LV_AF__COUNT - 2);
	assert_int_equal(p->access_log_fields.f[0], LV_AF_REQUEST_ID);
	policy_unref(p);
	/* after all, only -FIELD; leaving every field out says nothing */
	static const char *const bad[] = {"all time", "all -nosuch", "all -", "all,-time,+referer", "all none"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		char text[128];
		snprintf(text, sizeof(text), "[levee]\naccess_log_fields = %s\n", bad[i]);
		p = NULL;
		assert_int_equal(policy_load_string("p.ini", text, NULL, &p, &d), LV_ERR);
		assert_null(p);
		assert_non_null(strstr(d.lines[0], "p.ini:2:"));
		diag_free(&d);
	}
	char every[1024] = "[levee]\naccess_log_fields = all";
	for (unsigned i = 0; i < LV_AF__COUNT; i++) {
		strcat(every, " -");
		strcat(every, lv_alog_field_names[i]);
	}
	strcat(every, "\n");
	p = NULL;
	assert_int_equal(policy_load_string("p.ini", every, NULL, &p, &d), LV_ERR);
	diag_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_load_values),
		cmocka_unit_test(test_bulkhead_auto_values),
		cmocka_unit_test(test_breaker_values),
		cmocka_unit_test(test_fallback_values),
		cmocka_unit_test(test_access_log_fields),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
