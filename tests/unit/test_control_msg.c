/*
 * test_control_msg.c - the control topic's messages (proxy/control/
 * control_msg.c): signatures, command decoding, the checks against service
 * and clock, the encoders.
 *
 * Tables of records (value, signature or none, key) go the whole way
 * through ctl_accept() with an injected clock: good commands, malformed
 * ones, wrong and missing signatures, no key, other services, expired and
 * too far ahead. Encoding is checked by decoding it again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "control/control_msg.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define NOW 1764200000000ull /* the injected clock */
#define KEY "0123456789abcdef-test-key"

enum sig { SIGNED, UNSIGNED_, WRONG_KEY, TAMPERED, SHORT_HDR, UPPER_HEX };

struct rec {
	const char *json;
	enum sig sig;
	enum ctl_verdict want;
	const char *why; /* expected detail, or NULL */
};

static enum ctl_verdict run(const char *key, const struct rec *r, struct ctl_cmd *c, const char **why)
{
	char sig[CTL_SIG_LEN + 1];
	const char *s = sig;
	size_t slen = CTL_SIG_LEN;
	size_t len = strlen(r->json);
	switch (r->sig) {
	case SIGNED:
		ctl_sign(KEY, strlen(KEY), r->json, len, sig);
		break;
	case UNSIGNED_:
		s = NULL;
		slen = 0;
		break;
	case WRONG_KEY:
		ctl_sign("another key of 16+ bytes", 24, r->json, len, sig);
		break;
	case TAMPERED:
		ctl_sign(KEY, strlen(KEY), r->json, len, sig);
		sig[CTL_SIG_LEN - 1] ^= 1;
		break;
	case SHORT_HDR:
		ctl_sign(KEY, strlen(KEY), r->json, len, sig);
		slen = CTL_SIG_LEN - 1;
		break;
	case UPPER_HEX:
		ctl_sign(KEY, strlen(KEY), r->json, len, sig);
		for (char *p = sig + sizeof(CTL_SIG_PREFIX) - 1; *p; p++)
			if (*p >= 'a' && *p <= 'f')
				*p = (char)(*p - 'a' + 'A');
		break;
	}
	return ctl_accept(key, key ? strlen(key) : 0, s, slen, r->json, len, "demo", NOW, c, why);
}

#define FORCE "{\"v\":1,\"type\":\"force-tier\",\"id\":\"ops-1\",\"service\":\"demo\",\"tier\":\"shed\","
#define UNTIL_OK "\"until\":1764200600000"

static const struct rec recs[] = {
    /* good */
    {FORCE UNTIL_OK "}", SIGNED, CTL_APPLY, "ok"},
    {FORCE UNTIL_OK ",\"reason\":\"db failover\",\"issued_by\":\"alice\",\"issued_at\":1764199999000}", SIGNED,
     CTL_APPLY, "ok"},
    {"{\"until\":1764200600000,\"tier\":\"normal\",\"service\":\"demo\",\"id\":\"x\",\"type\":\"force-tier\",\"v\":1}",
     SIGNED, CTL_APPLY, "ok"},
    {FORCE UNTIL_OK ",\"future\":{\"a\":[1,2,{\"b\":null}]}}", SIGNED, CTL_APPLY, "ok"},
    {"{\"v\":1,\"type\":\"clear-tier\",\"id\":\"ops-2\",\"service\":\"demo\",\"clear\":\"ops-1\"}", SIGNED, CTL_APPLY,
     "ok"},
    {"{\"v\":1,\"type\":\"clear-tier\",\"id\":\"ops-3\",\"service\":\"demo\",\"clear\":\"*\",\"reason\":\"over\"}",
     SIGNED, CTL_APPLY, "ok"},
    {" {\"v\":1,\"type\":\"clear-tier\",\"id\":\"ops-3\",\"service\":\"d\\u0065mo\",\"clear\":\"*\"}\n", SIGNED,
     CTL_APPLY, "ok"},
    {FORCE "\"until\":1764286400000}", SIGNED, CTL_APPLY, "ok"}, /* exactly 24 h ahead */
    /* ignored */
    {FORCE "\"until\":1764200000000}", SIGNED, CTL_EXPIRED, "expired"},
    {FORCE "\"until\":1}", SIGNED, CTL_EXPIRED, "expired"},
    {"{\"v\":1,\"type\":\"force-tier\",\"id\":\"o\",\"service\":\"other\",\"tier\":\"shed\"," UNTIL_OK "}", SIGNED,
     CTL_OTHER_SERVICE, "other-service"},
    {"{\"v\":1,\"type\":\"force-tier\",\"id\":\"o\",\"service\":\"Demo\",\"tier\":\"shed\"," UNTIL_OK "}", SIGNED,
     CTL_OTHER_SERVICE, "other-service"},
    {"{\"v\":1,\"type\":\"tier-change\",\"service\":\"demo\",\"instance\":\"a\",\"level\":1}", SIGNED, CTL_EVENT,
     NULL},
    /* refused: signature */
    {FORCE UNTIL_OK "}", UNSIGNED_, CTL_UNSIGNED, "unsigned"},
    {FORCE UNTIL_OK "}", WRONG_KEY, CTL_BAD_SIGNATURE, "bad-signature"},
    {FORCE UNTIL_OK "}", TAMPERED, CTL_BAD_SIGNATURE, "bad-signature"},
    {FORCE UNTIL_OK "}", SHORT_HDR, CTL_BAD_SIGNATURE, "bad-signature"},
    {FORCE UNTIL_OK "}", UPPER_HEX, CTL_BAD_SIGNATURE, "bad-signature"},
    {"not json at all", UNSIGNED_, CTL_UNSIGNED, "unsigned"}, /* nothing parsed before the signature */
    {"not json at all", WRONG_KEY, CTL_BAD_SIGNATURE, "bad-signature"},
    /* refused: too far ahead */
    {FORCE "\"until\":1764286400001}", SIGNED, CTL_TOO_FAR, "too-far"},
    /* refused: malformed */
    {"", SIGNED, CTL_MALFORMED, NULL},
    {"[]", SIGNED, CTL_MALFORMED, "not a JSON object"},
    {"{\"v\":1,}", SIGNED, CTL_MALFORMED, NULL},
    {FORCE UNTIL_OK "} x", SIGNED, CTL_MALFORMED, NULL},
    {FORCE UNTIL_OK ",\"reason\":\"a\tb\"}", SIGNED, CTL_MALFORMED, NULL}, /* raw control byte: JSON error */
    {"{\"type\":\"force-tier\",\"id\":\"a\",\"service\":\"demo\",\"tier\":\"shed\"," UNTIL_OK "}", SIGNED,
     CTL_MALFORMED, "\"v\" is missing"},
    {"{\"v\":2,\"type\":\"whatever\"}", SIGNED, CTL_MALFORMED, "unknown version"},
    {"{\"v\":\"1\",\"type\":\"force-tier\"}", SIGNED, CTL_MALFORMED, "\"v\" is not an integer"},
    {"{\"v\":1.0,\"type\":\"force-tier\"}", SIGNED, CTL_MALFORMED, "\"v\" is not an integer"},
    {"{\"v\":1,\"id\":\"a\",\"service\":\"demo\"}", SIGNED, CTL_MALFORMED, "\"type\" is missing"},
    {"{\"v\":1,\"type\":\"purge\",\"id\":\"a\",\"service\":\"demo\"}", SIGNED, CTL_MALFORMED, "unknown \"type\""},
    {"{\"v\":1,\"type\":\"force-tier\",\"service\":\"demo\",\"tier\":\"shed\"," UNTIL_OK "}", SIGNED, CTL_MALFORMED,
     "\"id\" is missing"},
    {"{\"v\":1,\"type\":\"force-tier\",\"id\":\"a\",\"tier\":\"shed\"," UNTIL_OK "}", SIGNED, CTL_MALFORMED,
     "\"service\" is missing"},
    {"{\"v\":1,\"type\":\"force-tier\",\"id\":\"a\",\"service\":\"demo\"," UNTIL_OK "}", SIGNED, CTL_MALFORMED,
     "\"tier\" is missing"},
    {FORCE "\"reason\":\"r\"}", SIGNED, CTL_MALFORMED, "\"until\" is missing"},
    {"{\"v\":1,\"type\":\"clear-tier\",\"id\":\"a\",\"service\":\"demo\"}", SIGNED, CTL_MALFORMED,
     "\"clear\" is missing"},
    {FORCE UNTIL_OK ",\"clear\":\"*\"}", SIGNED, CTL_MALFORMED, "\"clear\" does not belong to force-tier"},
    {"{\"v\":1,\"type\":\"clear-tier\",\"id\":\"a\",\"service\":\"demo\",\"clear\":\"*\"," UNTIL_OK "}", SIGNED,
     CTL_MALFORMED, "\"tier\" and \"until\" do not belong to clear-tier"},
    {FORCE "\"until\":\"1764200600000\"}", SIGNED, CTL_MALFORMED, "\"until\" is not a number"},
    {FORCE "\"until\":1764200600000.5}", SIGNED, CTL_MALFORMED, "\"until\" is not an integer in 1..2^53-1"},
    {FORCE "\"until\":-5}", SIGNED, CTL_MALFORMED, "\"until\" is not an integer in 1..2^53-1"},
    {FORCE "\"until\":9007199254740992}", SIGNED, CTL_MALFORMED, "\"until\" is not an integer in 1..2^53-1"},
    {FORCE "\"until\":null}", SIGNED, CTL_MALFORMED, "\"until\" is not a number"},
    {FORCE UNTIL_OK ",\"until\":1764200600000}", SIGNED, CTL_MALFORMED, "a member appears more than once"},
    {"{\"v\":1,\"type\":\"force-tier\",\"id\":\"\",\"service\":\"demo\",\"tier\":\"shed\"," UNTIL_OK "}", SIGNED,
     CTL_MALFORMED, "\"id\" is empty"},
    {"{\"v\":1,\"type\":\"force-tier\",\"id\":\"a b\",\"service\":\"demo\",\"tier\":\"shed\"," UNTIL_OK "}", SIGNED,
     CTL_MALFORMED, "\"id\" holds a forbidden character"},
    {"{\"v\":1,\"type\":\"force-tier\",\"id\":\"a\",\"service\":\"demo\",\"tier\":7," UNTIL_OK "}", SIGNED,
     CTL_MALFORMED, "\"tier\" is not a string"},
    {"{\"v\":1,\"type\":\"force-tier\",\"id\":\"a\",\"service\":\"de\\u0000mo\",\"tier\":\"shed\"," UNTIL_OK "}",
     SIGNED, CTL_MALFORMED, "\"service\" holds a forbidden character"},
    {"{\"v\":1,\"type\":\"force-tier\",\"id\":\"a\",\"service\":\"de\\u0085mo\",\"tier\":\"shed\"," UNTIL_OK "}",
     SIGNED, CTL_MALFORMED, "\"service\" holds a forbidden character"},
    {"{\"v\":1,\"type\":\"force-tier\",\"id\":\"a\",\"service\":\"demo\",\"tier\":\"shed\"," UNTIL_OK
     ",\"a\":[[[[[[[[1]]]]]]]]}",
     SIGNED, CTL_MALFORMED, NULL}, /* 9 levels */
};

static void test_records(void **state)
{
	(void)state;
	for (size_t i = 0; i < N(recs); i++) {
		struct ctl_cmd c;
		const char *why = NULL;
		enum ctl_verdict v = run(KEY, &recs[i], &c, &why);
		if (v != recs[i].want || (recs[i].why && (!why || strcmp(why, recs[i].why) != 0)))
			fail_msg("record %zu (%s): got %s (%s), want %s (%s)", i, recs[i].json, ctl_verdict_name(v),
			         why ? why : "-", ctl_verdict_name(recs[i].want), recs[i].why ? recs[i].why : "-");
	}
}

/* No key, or one too short: every record is refused alike, signed or not. */
static void test_no_key(void **state)
{
	(void)state;
	static const char *const keys[] = {NULL, "", "fifteen bytes!!"};
	for (size_t k = 0; k < N(keys); k++)
		for (size_t i = 0; i < N(recs); i++) {
			struct ctl_cmd c;
			const char *why = NULL;
			assert_int_equal(run(keys[k], &recs[i], &c, &why), CTL_NO_KEY);
			assert_string_equal(why, "no-key");
		}
}

static void test_long_strings(void **state)
{
	(void)state;
	char buf[CTL_MAX_BYTES + 64], reason[TIER_REASON_MAX + 1];
	struct ctl_cmd c;
	const char *why;
	for (size_t n = TIER_REASON_MAX - 1; n <= TIER_REASON_MAX; n++) {
		memset(reason, 'r', n);
		reason[n] = '\0';
		snprintf(buf, sizeof(buf), FORCE UNTIL_OK ",\"reason\":\"%s\"}", reason);
		enum ctl_verdict v = ctl_decode(buf, strlen(buf), &c, &why);
		if (n < TIER_REASON_MAX) {
			assert_int_equal(v, CTL_APPLY);
			assert_int_equal(strlen(c.reason), n);
		} else {
			assert_int_equal(v, CTL_MALFORMED);
			assert_string_equal(why, "\"reason\" is too long");
		}
	}
	char id[TIER_ID_MAX + 1];
	memset(id, 'i', TIER_ID_MAX);
	id[TIER_ID_MAX] = '\0';
	snprintf(buf, sizeof(buf), "{\"v\":1,\"type\":\"clear-tier\",\"id\":\"%s\",\"service\":\"demo\",\"clear\":\"*\"}",
	         id);
	assert_int_equal(ctl_decode(buf, strlen(buf), &c, &why), CTL_MALFORMED);
	assert_string_equal(why, "\"id\" is too long");
	/* the whole message over its bound, before any parsing */
	memset(buf, ' ', sizeof(buf));
	memcpy(buf, "{}", 2);
	assert_int_equal(ctl_decode(buf, CTL_MAX_BYTES + 1, &c, &why), CTL_MALFORMED);
	assert_string_equal(why, "over 4096 bytes");
}

static void test_decoded_fields(void **state)
{
	(void)state;
	static const char j[] = FORCE UNTIL_OK ",\"reason\":\"db \\\"failover\\\"\",\"issued_by\":\"al\\u00e9\"}";
	struct ctl_cmd c;
	const char *why;
	assert_int_equal(ctl_decode(j, sizeof(j) - 1, &c, &why), CTL_APPLY);
	assert_int_equal(c.type, CTL_FORCE);
	assert_string_equal(c.id, "ops-1");
	assert_string_equal(c.service, "demo");
	assert_string_equal(c.tier, "shed");
	assert_true(c.until_unix_ms == 1764200600000ull);
	assert_string_equal(c.reason, "db \"failover\"");
	assert_string_equal(c.issued_by, "al\xc3\xa9");
	assert_int_equal(c.issued_unix_ms, -1);
}

static void test_encode_round_trip(void **state)
{
	(void)state;
	static struct ctl_cmd cmds[3] = {
	    {.type = CTL_FORCE, .id = "cli.a.1", .service = "demo", .tier = "shed", .until_unix_ms = NOW + 60000,
	     .reason = "load \"test\" \\ now", .issued_by = "bob", .issued_unix_ms = (int64_t)NOW},
	    {.type = CTL_CLEAR, .id = "cli.a.2", .service = "demo", .clear = "*", .issued_unix_ms = -1},
	    {.type = CTL_FORCE, .id = "x", .service = "d", .tier = "normal", .until_unix_ms = 1, .issued_unix_ms = -1},
	};
	for (size_t i = 0; i < N(cmds); i++) {
		char out[CTL_MAX_BYTES];
		size_t n = ctl_encode(&cmds[i], out, sizeof(out));
		assert_true(n > 0);
		assert_int_equal(strlen(out), n);
		struct ctl_cmd back;
		const char *why;
		assert_int_equal(ctl_decode(out, n, &back, &why), CTL_APPLY);
		assert_memory_equal(&back, &cmds[i], sizeof(back));
		assert_int_equal(ctl_encode(&cmds[i], out, n), 0); /* no room for the NUL */
	}
	struct ctl_cmd bad = cmds[0];
	strcpy(bad.id, "a b");
	char out[256];
	assert_int_equal(ctl_encode(&bad, out, sizeof(out)), 0);
	bad = cmds[0];
	bad.until_unix_ms = 0;
	assert_int_equal(ctl_encode(&bad, out, sizeof(out)), 0);
}

static void test_event(void **state)
{
	(void)state;
	struct tier_force f = {.tier = "shed", .until_unix_ms = NOW + 5000, .source = "control", .id = "ops-1",
	                       .reason = "a \"quoted\"\nreason"};
	struct tier_change tc = {.from = 0, .to = 2, .from_name = "normal", .to_name = "shed", .force = &f,
	                         .unix_ms = NOW, .signals_json = "{\"inflight\":3}"};
	char out[1024];
	size_t n = ctl_event_encode(&tc, "demo", "pod-a", out, sizeof(out));
	assert_true(n > 0);
	assert_string_equal(out, "{\"v\":1,\"type\":\"tier-change\",\"service\":\"demo\",\"instance\":\"pod-a\","
	                         "\"from\":\"normal\",\"to\":\"shed\",\"level\":2,\"forced\":{\"tier\":\"shed\","
	                         "\"source\":\"control\",\"id\":\"ops-1\",\"reason\":\"a \\\"quoted\\\"\\u000areason\","
	                         "\"until_unix_ms\":1764200005000},\"signals\":{\"inflight\":3},"
	                         "\"time\":1764200000000}");
	/* it is strict JSON, and consumers see it as an event, not a command */
	struct ctl_cmd c;
	const char *why;
	assert_int_equal(ctl_decode(out, n, &c, &why), CTL_EVENT);
	tc.force = NULL;
	tc.signals_json = NULL;
	n = ctl_event_encode(&tc, "demo", "pod-a", out, sizeof(out));
	assert_non_null(strstr(out, "\"forced\":null,\"signals\":{},"));
	assert_int_equal(ctl_event_encode(&tc, "demo", "pod-a", out, n), 0);
}

/* Catching up: sequences of commands (F id ts: force; C target ts: clear)
 * and what is left pending, with how many were counted superseded. */
/* A tier name the policy lacks, for the fold's `known`. */
static bool known_tier(const char *tier, void *arg)
{
	(void)arg;
	return strcmp(tier, "zz") != 0;
}

static void test_fold(void **state)
{
	(void)state;
	static const struct {
		const char *steps[5];
		const char *pending; /* id, or NULL */
		unsigned moot;
	} t[] = {
	    {{"F a 1"}, "a", 0},
	    {{"F a 1", "F b 2"}, "b", 1},
	    {{"F a 1", "C a 2"}, NULL, 2},
	    {{"F a 1", "C * 2"}, NULL, 2},
	    {{"F a 1", "C x 2"}, "a", 1},          /* a clear of another forcing */
	    {{"F a 1", "C a 2", "F b 3"}, "b", 2},
	    {{"F a 5", "F b 3"}, "a", 1},          /* read out of record-time order */
	    {{"F a 5", "C a 3"}, "a", 1},          /* the clear came first */
	    {{"C * 2", "F a 1"}, NULL, 2},         /* a clear read before the older force it ended */
	    {{"C * 1", "F a 2"}, "a", 1},
	    {{"F a 1", "F a 1"}, "a", 1},          /* same time: the later record wins */
	    {{"F a 1", "C a 1", "F b 0", "C * 2"}, NULL, 4},
	    {{"F a 1", "F zz 2"}, "a", 1},         /* a tier this policy lacks was refused live */
	    {{"F a 1", "F b 2", "C b 3"}, NULL, 3}, /* b replaced a, then ended: a stays ended */
	    {{0}, NULL, 0},
	};
	for (size_t i = 0; i < N(t); i++) {
		struct ctl_fold f = {0};
		for (size_t k = 0; k < N(t[i].steps) && t[i].steps[k]; k++) {
			struct ctl_cmd c = {.issued_unix_ms = -1};
			char kind, id[16];
			long long ts;
			assert_int_equal(sscanf(t[i].steps[k], "%c %15s %lld", &kind, id, &ts), 3);
			c.type = kind == 'F' ? CTL_FORCE : CTL_CLEAR;
			snprintf(kind == 'F' ? c.id : c.clear, sizeof(c.id), "%s", id);
			if (kind == 'F')
				snprintf(c.tier, sizeof(c.tier), "%s", id);
			else
				snprintf(c.id, sizeof(c.id), "clear-%zu", k);
			assert_int_equal(ctl_fold_add(&f, &c, ts), LV_OK);
		}
		unsigned moot = 99;
		const struct ctl_cmd *c = ctl_fold_result(&f, known_tier, NULL, &moot);
		if (t[i].pending) {
			assert_non_null(c);
			assert_string_equal(c->id, t[i].pending);
		} else
			assert_null(c);
		assert_int_equal(moot, t[i].moot);
		ctl_fold_free(&f);
	}
	/* past the bound, the oldest drop out */
	struct ctl_fold f = {0};
	for (int k = 0; k < CTL_FOLD_MAX + 10; k++) {
		struct ctl_cmd c = {.type = CTL_FORCE};
		snprintf(c.id, sizeof(c.id), "f%d", k);
		snprintf(c.tier, sizeof(c.tier), "t");
		assert_int_equal(ctl_fold_add(&f, &c, CTL_FOLD_MAX + 10 - k), LV_OK); /* newest first */
	}
	assert_int_equal(f.n, CTL_FOLD_MAX);
	unsigned moot;
	const struct ctl_cmd *c = ctl_fold_result(&f, NULL, NULL, &moot);
	assert_string_equal(c->id, "f0"); /* the newest by record time */
	ctl_fold_free(&f);
}

static void test_names(void **state)
{
	(void)state;
	for (int v = 0; v < CTL_VERDICT_COUNT; v++)
		assert_string_not_equal(ctl_verdict_name((enum ctl_verdict)v), "unknown");
	assert_string_equal(ctl_verdict_name(CTL_VERDICT_COUNT), "unknown");
	assert_string_equal(ctl_verdict_name(CTL_BAD_SIGNATURE), "bad-signature");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_records),         cmocka_unit_test(test_no_key),
	    cmocka_unit_test(test_long_strings),    cmocka_unit_test(test_decoded_fields),
	    cmocka_unit_test(test_encode_round_trip), cmocka_unit_test(test_event),
	    cmocka_unit_test(test_fold),            cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
