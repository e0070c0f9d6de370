/*
 * test_policy.c - loading policies: a table of policy texts with the exact
 * error lines each must produce (the format is what `levee check` prints),
 * then defaults, overrides, reload checks, reference counting, the key
 * table itself, the examples, and policy/README.md against the key table.
 *
 * `test_policy --keys-markdown` prints the key reference for the README.
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
#define MAX_ERRS 6

struct load_case {
	const char *what;
	const char *text;
	const char *errors[MAX_ERRS]; /* none: the text must load */
};

static const struct load_case load_cases[] = {
	/* bulkheads */
	{"bulkhead", "[route \"u\"]\nprefix = /\nbulkhead = b\nrefusal_status = 429\n[bulkhead \"b\"]\n"
	             "isolation = thread\nthreads = 3\nmax_concurrent = 4\nmax_queue = 0\nqueue_timeout = 5ms\n"
	             "queue_order = fifo\nabandon_after = 0\nretry_after = 2s\n", {NULL}},
	{"bulkhead auto", "[bulkhead \"b\"]\nmax_concurrent = auto\nadaptive_min = 1\nadaptive_max = 100000\n"
	                  "adaptive_smoothing = 100%\nadaptive_window = 10ms\n", {NULL}},
	{"bulkhead auto bounds", "[bulkhead \"b\"]\nmax_concurrent = automatic\nadaptive_min = 0\nadaptive_max = 100001\n"
	                         "adaptive_smoothing = 0%\nadaptive_window = 5ms\n",
	 {"p.ini:2: [bulkhead \"b\"] max_concurrent: expected a whole number or auto",
	  "p.ini:3: [bulkhead \"b\"] adaptive_min: must be between 1 and 100000",
	  "p.ini:4: [bulkhead \"b\"] adaptive_max: must be between 1 and 100000",
	  "p.ini:5: [bulkhead \"b\"] adaptive_smoothing: must be between 1% and 100%",
	  "p.ini:6: [bulkhead \"b\"] adaptive_window: must be between 10ms and 1m"}},
	{"bulkhead auto min above max", "[bulkhead \"b\"]\nmax_concurrent = auto\nadaptive_min = 50\nadaptive_max = 40\n",
	 {"p.ini:1: [bulkhead \"b\"]: adaptive_min (50) is above adaptive_max (40)"}},
	{"bulkhead unknown", "[route \"u\"]\nprefix = /\n\nbulkhead = nope\n",
	 {"p.ini:4: [route \"u\"] bulkhead: no [bulkhead \"nope\"] section"}},
	{"bulkhead bounds", "[bulkhead \"b\"]\nmax_concurrent = 0\nthreads = 65\nqueue_timeout = 0\n",
	 {"p.ini:2: [bulkhead \"b\"] max_concurrent: must be between 1 and 100000",
	  "p.ini:3: [bulkhead \"b\"] threads: must be between 1 and 64",
	  "p.ini:4: [bulkhead \"b\"] queue_timeout: must be between 1ms and 1m"}},
	{"bulkhead words", "[bulkhead \"b\"]\nisolation = process\nqueue_order = lifo\n[route \"u\"]\nprefix = /\n"
	                   "refusal_status = 500\n",
	 {"p.ini:2: [bulkhead \"b\"] isolation: must be one of semaphore, thread",
	  "p.ini:3: [bulkhead \"b\"] queue_order: must be one of adaptive_lifo, fifo",
	  "p.ini:6: [route \"u\"] refusal_status: must be one of 503, 429"}},
	/* breakers */
	{"breaker", "[route \"u\"]\nprefix = /\nbreaker = k\n[breaker \"k\"]\nwindow = 100 calls\nmin_requests = 10\n"
	            "failure_rate = 25%\nslow_call = 2s\nslow_call_rate = 80%\nfailure_statuses = 5xx, 429\n"
	            "failure_on = connect, timeout\nopen_for = 1s\nopen_for_max = 1m\nhalf_open_probes = 5\nramp = 0\n",
	 {NULL}},
	{"breaker unknown", "[route \"u\"]\nprefix = /\nbreaker = nope\n",
	 {"p.ini:3: [route \"u\"] breaker: no [breaker \"nope\"] section"}},
	{"breaker windows", "[breaker \"a\"]\nwindow = 0 calls\n[breaker \"b\"]\nwindow = 500ms\n[breaker \"c\"]\n"
	                    "window = 5 minutes\n[breaker \"d\"]\nwindow = 100001 calls\n",
	 {"p.ini:2: [breaker \"a\"] window: must be between 1 and 100000 calls (or a duration)",
	  "p.ini:4: [breaker \"b\"] window: must be between 1s and 1h (or a number of calls)",
	  "p.ini:6: [breaker \"c\"] window: expected a duration (10s) or a number of calls (100 calls)",
	  "p.ini:8: [breaker \"d\"] window: must be between 1 and 100000 calls (or a duration)"}},
	{"breaker statuses", "[breaker \"a\"]\nfailure_statuses = 6xx\n[breaker \"b\"]\nfailure_statuses = 504-502\n"
	                     "[breaker \"c\"]\nfailure_statuses = ,\n[breaker \"d\"]\nfailure_statuses = 50x\n",
	 {"p.ini:2: [breaker \"a\"] failure_statuses: expected HTTP statuses (100-599), ranges such as 502-504 or classes such as 5xx, separated by commas, or none",
	  "p.ini:4: [breaker \"b\"] failure_statuses: expected HTTP statuses (100-599), ranges such as 502-504 or classes such as 5xx, separated by commas, or none",
	  "p.ini:6: [breaker \"c\"] failure_statuses: empty: write none for no status",
	  "p.ini:8: [breaker \"d\"] failure_statuses: expected HTTP statuses (100-599), ranges such as 502-504 or classes such as 5xx, separated by commas, or none"}},
	{"breaker failure_on", "[breaker \"a\"]\nfailure_on = timeout, slow\n",
	 {"p.ini:2: [breaker \"a\"] failure_on: 'slow' is not one of timeout, connect, reset, truncated, bad, deadline (or none)"}},
	/* fallbacks */
	{"fallback", "[route \"u\"]\nprefix = /\ncache_ttl = 10s\nfallback = stale, static\n"
	             "stale_fallback_max = 2h\nfallback_status = 200\nfallback_content_type = text/html\n"
	             "fallback_body = <p>back soon; really</p>\n", {NULL}},
	{"fallback words", "[route \"u\"]\nprefix = /\nfallback = stale, cached\n[route \"v\"]\nprefix = /v\n"
	                   "fallback = status, status\n[route \"w\"]\nprefix = /w\nfallback = ,\n",
	 {"p.ini:3: [route \"u\"] fallback: 'cached' is not one of stale, static, status (or none)",
	  "p.ini:6: [route \"v\"] fallback: 'status' is listed twice",
	  "p.ini:9: [route \"w\"] fallback: empty: write none for no fallback"}},
	{"fallback static without a body", "[route \"u\"]\nprefix = /\nfallback = static\n",
	 {"p.ini:3: [route \"u\"] fallback: static needs fallback_body or fallback_file"}},
	{"fallback stale without a cache", "[route \"u\"]\nprefix = /\nfallback = stale, status\n",
	 {"p.ini:3: [route \"u\"] fallback: stale needs cache_ttl: the route stores nothing to fall back on"}},
	{"fallback body and file", "[route \"u\"]\nprefix = /\nfallback = static\nfallback_body = x\n"
	                           "fallback_file = /etc/hostname\n",
	 {"p.ini:5: [route \"u\"] fallback_file: conflicts with fallback_body on line 4 (use only one)"}},
	{"fallback file missing", "[route \"u\"]\nprefix = /\nfallback = static\nfallback_file = /nonexistent/down.html\n",
	 {"p.ini:4: [route \"u\"] fallback_file: cannot open /nonexistent/down.html: No such file or directory"}},
	{"fallback file relative", "[route \"u\"]\nprefix = /\nfallback = static\nfallback_file = down.html\n",
	 {"p.ini:3: [route \"u\"] fallback: static needs fallback_body or fallback_file",
	  "p.ini:4: [route \"u\"] fallback_file: must be none, or an absolute path"}},
	{"fallback status bounds", "[route \"u\"]\nprefix = /\nfallback = static\nfallback_body = x\nfallback_status = 600\n"
	                           "[route \"v\"]\nprefix = /v\nfallback = static\nfallback_body = x\nfallback_status = 304\n",
	 {"p.ini:5: [route \"u\"] fallback_status: must be between 200 and 599",
	  "p.ini:10: [route \"v\"] fallback_status: a 304 carries no body"}},
	{"fallback body control bytes", "[route \"u\"]\nprefix = /\nfallback = static\nfallback_body = a\tb\n",
	 {"p.ini:4: [route \"u\"] fallback_body: no control characters"}},
	{"breaker min_requests over a count window", "[breaker \"a\"]\nwindow = 10 calls\nmin_requests = 11\n",
	 {"p.ini:1: [breaker \"a\"]: min_requests (11) is more than the window holds (10 calls): it could never open"}},
	{"bulkhead twice", "[bulkhead \"b\"]\n[bulkhead \"b\"]\n", {"p.ini:2: [bulkhead \"b\"]: duplicate bulkhead name (first on line 1)"}},
	/* caching keys */
	{"cache keys", "[cache]\nmemory = 8MiB\nmax_object = 64KiB\n[route \"u\"]\nprefix = /\ncache_ttl = origin\n"
	               "negative_status = 404,410 , 451\ncache_key_headers = Accept-Language,X-T\n", {NULL}},
	{"key_host", "[cache]\nkey_host = Svc.Example\n[route \"u\"]\nprefix = /u\ncache_key_host = none\n[route \"v\"]\n"
	             "prefix = /v\ncache_key_host = request\n", {NULL}},
	{"key_host not a name", "[cache]\nkey_host = svc:8080\n[route \"u\"]\nprefix = /\ncache_key_host = a b\n",
	 {"p.ini:2: [cache] key_host: must be 1-63 characters of A-Z a-z 0-9 _ . -",
	  "p.ini:5: [route \"u\"] cache_key_host: must be 1-63 characters of A-Z a-z 0-9 _ . -"}},
	{"key_host empty", "[cache]\nkey_host =\n", {"p.ini:2: [cache] key_host: must be 1-63 characters of A-Z a-z 0-9 _ . -"}},
	{"cache_ttl word", "[route \"u\"]\nprefix = /\ncache_ttl = forever\n",
	 {"p.ini:3: [route \"u\"] cache_ttl: expected off, origin or a duration such as 60s"}},
	{"cache_ttl bounds", "[route \"u\"]\nprefix = /\ncache_ttl = 500ms\n",
	 {"p.ini:3: [route \"u\"] cache_ttl: must be between 1s and 8760h"}},
	{"negative_status", "[route \"u\"]\nprefix = /\nnegative_status = 404, 4040\n",
	 {"p.ini:3: [route \"u\"] negative_status: expected HTTP statuses (100-599) separated by commas"}},
	{"negative_status range", "[route \"u\"]\nprefix = /\nnegative_status = 99\n",
	 {"p.ini:3: [route \"u\"] negative_status: expected HTTP statuses (100-599) separated by commas"}},
	{"cache_key_headers", "[route \"u\"]\nprefix = /\ncache_key_headers = a:b\n",
	 {"p.ini:3: [route \"u\"] cache_key_headers: ':' cannot appear in a header name"}},
	{"cache_control_fields", "[route \"u\"]\nprefix = /\ncache_control_fields = CDN-Cache-Control, X:Y\n",
	 {"p.ini:3: [route \"u\"] cache_control_fields: ':' cannot appear in a header name"}},
	{"cache_control_fields none", "[route \"u\"]\nprefix = /\ncache_control_fields = none\n", {NULL}},
	{"cache_tags", "[route \"u\"]\nmatch = /u/*\ncache_tags = users, user-{1} x:y\n", {NULL}},
	{"cache_tags placeholder", "[route \"u\"]\nprefix = /\ncache_tags = user-{0}\n",
	 {"p.ini:3: [route \"u\"] cache_tags: a placeholder is {1} to {9}"}},
	{"cache_tags brace", "[route \"u\"]\nprefix = /\ncache_tags = a}b\n",
	 {"p.ini:3: [route \"u\"] cache_tags: '}' cannot appear in a tag"}},
	{"cache_tags wildcard", "[route \"u\"]\nmatch = /u/*\ncache_tags = t-{3}\n",
	 {"p.ini:3: [route \"u\"] cache_tags: {3} names a wildcard the route's pattern does not have (it has 1)"}},
	{"cache_tags prefix route", "[route \"u\"]\nprefix = /u/\ncache_tags = u, user-{1}\n",
	 {"p.ini:3: [route \"u\"] cache_tags: {1} names a wildcard the route's pattern does not have (it has 0)"}},
	{"cache_tags and invalidate both wrong", "[route \"u\"]\nmatch = /u/**\ninvalidate = /u/{2}\ncache_tags = t-{2}\n",
	 {"p.ini:3: [route \"u\"] invalidate: {2} names a wildcard the route's pattern does not have (it has 1)",
	  "p.ini:4: [route \"u\"] cache_tags: {2} names a wildcard the route's pattern does not have (it has 1)"}},
	{"cache_tags of a later route", "[route \"a\"]\nmatch = /a/*/*\ncache_tags = a-{2}\n[route \"b\"]\nmatch = /b\ncache_tags = b-{1}\n",
	 {"p.ini:6: [route \"b\"] cache_tags: {1} names a wildcard the route's pattern does not have (it has 0)"}},
	{"invalidate", "[route \"u\"]\nmatch = /u/*/x/*\ninvalidate = /u/{1}, /u/**, tag:u-{2} /list /u/{1}/x/**\n", {NULL}},
	{"invalidate wildcard", "[route \"u\"]\nmatch = /u/*\ninvalidate = /u/{1}, tag:v-{2}\n",
	 {"p.ini:3: [route \"u\"] invalidate: {2} names a wildcard the route's pattern does not have (it has 1)"}},
	{"invalidate prefix route", "[route \"u\"]\nprefix = /u/\ninvalidate = /u/{1}\n",
	 {"p.ini:3: [route \"u\"] invalidate: {1} names a wildcard the route's pattern does not have (it has 0)"}},
	{"invalidate globstar inside", "[route \"u\"]\nprefix = /\ninvalidate = /a, /a/**/b\n",
	 {"p.ini:3: [route \"u\"] invalidate: /a/**/b: '**' is only allowed as the last segment (e.g. /static/**)"}},
	{"invalidate two stars in a segment", "[route \"u\"]\nprefix = /\ninvalidate = /a*b*\n",
	 {"p.ini:3: [route \"u\"] invalidate: /a*b*: at most one '*' per segment, and '**' only as a whole segment"}},
	{"invalidate tag glob", "[route \"u\"]\nprefix = /\ninvalidate = tag:user-*\n",
	 {"p.ini:3: [route \"u\"] invalidate: '*' cannot appear in a tag: a tag is an exact name ({1}..{9} insert "
	  "the route's wildcards)"}},
	{"cache_tags glob", "[route \"u\"]\nmatch = /u/*\ncache_tags = user-*\n",
	 {"p.ini:3: [route \"u\"] cache_tags: '*' cannot appear in a tag: a tag is an exact name ({1}..{9} insert "
	  "the route's wildcards)"}},
	{"invalidate relative", "[route \"u\"]\nprefix = /\ninvalidate = users\n",
	 {"p.ini:3: [route \"u\"] invalidate: an invalidation is /path, /path/** or tag:name"}},
	{"invalidate empty tag", "[route \"u\"]\nprefix = /\ninvalidate = tag:\n",
	 {"p.ini:3: [route \"u\"] invalidate: tag: needs a name"}},
	{"invalidate query", "[route \"u\"]\nprefix = /\ninvalidate = /a?b=1\n",
	 {"p.ini:3: [route \"u\"] invalidate: '?' cannot appear in an invalidation path"}},
	{"kafka", "[kafka]\nbrokers = kafka-0.kafka:9092, 127.0.0.1:9093\ntopic = a.b_c-d\noutbox_fsync = always\n", {NULL}},
	{"kafka topic", "[kafka]\ntopic = a/b\n",
	 {"p.ini:2: [kafka] topic: must be 1-249 characters of A-Z a-z 0-9 _ . -"}},
	{"kafka outbox", "[kafka]\noutbox = var/lib\n", {"p.ini:2: [kafka] outbox: must be an absolute path"}},
	/* warm-up */
	{"warmup", "[warmup]\nhot_keys = 0\nhot_rate = 1\nhot_sample = 0\nhot_writes = 10000\nhot_size = 1\n"
	           "hot_half_life = 720h\nurls = /a /b?x=1  http://h.example:8080/c http://[::1]:81\n"
	           "urls_file = none\nhost = api.example\nrate = 10000\nconcurrency = 64\nready_wait = 10m\n", {NULL}},
	{"warmup bounds", "[warmup]\nhot_keys = 100001\nhot_rate = 0\nhot_writes = 0\nhot_size = 0\n"
	                  "hot_half_life = 999ms\n",
	 {"p.ini:2: [warmup] hot_keys: must be between 0 and 100000",
	  "p.ini:3: [warmup] hot_rate: must be between 1 and 100000",
	  "p.ini:4: [warmup] hot_writes: must be between 1 and 10000",
	  "p.ini:5: [warmup] hot_size: must be between 1 and 100000",
	  "p.ini:6: [warmup] hot_half_life: must be between 1s and 720h"}},
	{"warmup bounds 2", "[warmup]\nrate = 10001\nconcurrency = 0\nready_wait = 11m\nhost = a b\n",
	 {"p.ini:2: [warmup] rate: must be between 1 and 10000",
	  "p.ini:3: [warmup] concurrency: must be between 1 and 64",
	  "p.ini:4: [warmup] ready_wait: must be between 0 and 10m",
	  "p.ini:5: [warmup] host: only printable ASCII without blanks"}},
	{"warmup url relative", "[warmup]\nurls = /ok api/users\n",
	 {"p.ini:2: [warmup] urls: URL 2: expected a target starting with / or an http:// URL"}},
	{"warmup url https", "[warmup]\nurls = https://h/a\n",
	 {"p.ini:2: [warmup] urls: URL 1: https URLs are not fetched: levee speaks plain HTTP to its origin"}},
	{"warmup url host", "[warmup]\nurls = http://bad_host!/a\n",
	 {"p.ini:2: [warmup] urls: URL 1: bad host in URL (expected http://HOST[:PORT]/path)"}},
	{"warmup url port", "[warmup]\nurls = http://h:123456/a\n",
	 {"p.ini:2: [warmup] urls: URL 1: bad host in URL (expected http://HOST[:PORT]/path)"}},
	{"warmup url empty host", "[warmup]\nurls = http:///a\n",
	 {"p.ini:2: [warmup] urls: URL 1: bad host in URL (expected http://HOST[:PORT]/path)"}},
	{"warmup url fragment", "[warmup]\nurls = /a#top\n",
	 {"p.ini:2: [warmup] urls: URL 1: URL holds a fragment (#), which is never sent"}},
	{"warmup url control", "[warmup]\nurls = /a\x01b\n",
	 {"p.ini:2: [warmup] urls: no control characters"}},
	{"warmup urls_file missing", "[warmup]\nurls_file = /nonexistent/warm.txt\n",
	 {"p.ini:2: [warmup] urls_file: cannot open /nonexistent/warm.txt: No such file or directory"}},
	{"warmup urls_file relative", "[warmup]\nurls_file = warm.txt\n",
	 {"p.ini:2: [warmup] urls_file: must be none, or an absolute path"}},
	{"redis address", "[redis]\naddress = 127.0.0.1:6379\ntimeout = 10ms\n", {NULL}},
	{"redis sentinels", "[redis]\nsentinels = 127.0.0.1:26379,  127.0.0.1:26380\nmaster = m1\n", {NULL}},
	{"redis both", "[redis]\naddress = 127.0.0.1:6379\nsentinels = 127.0.0.1:26379\n",
	 {"p.ini:3: [redis] sentinels: set address or sentinels, not both"}},
	{"redis bad sentinel", "[redis]\nsentinels = 127.0.0.1\n",
	 {"p.ini:2: [redis] sentinels: 127.0.0.1: missing :PORT (write HOST:PORT, e.g. 127.0.0.1:8080)"}},
	{"cache memory bounds", "[cache]\nmemory = 10KiB\n", {"p.ini:2: [cache] memory: must be between 1MiB and 64GiB"}},
	/* syntax */
	{"empty file", "", {NULL}},
	{"comments and blanks", "; a\n# b\n\n   \n\t\n[levee]\n  ; indented comment\n\t# too\n", {NULL}},
	{"no final newline", "[levee]\nworkers = 2", {NULL}},
	{"CRLF", "[levee]\r\nworkers = 2\r\n", {NULL}},
	{"byte order mark", "\xEF\xBB\xBF[levee]\nworkers = 2\n", {NULL}},
	{"spaces in header", "[ levee ] ; the process\n[ route  \"a\" ]\nprefix = /\n", {NULL}},
	{"inline comment", "[levee]\nservice = shop ; the name\nworkers=2;x\n",
	 {"p.ini:3: [levee] workers: expected a whole number"}},
	{"'#' is not an inline comment", "[levee]\nservice = shop #x\n",
	 {"p.ini:2: [levee] service: must be 1-63 characters of A-Z a-z 0-9 _ . -"}},
	{"continuation line", "[levee]\nupstream = 127.0.0.1:80\n  127.0.0.1:81\n",
	 {"p.ini:3: [levee] upstream: continuation lines are not supported; put the value on one line"}},
	{"continuation after a bad key", "[levee]\nnope = 1\n\tmore\n",
	 {"p.ini:2: [levee] nope: unknown key",
	  "p.ini:3: [levee] nope: continuation lines are not supported; put the value on one line"}},
	{"indented key", "[levee]\n  workers = 2\n",
	 {"p.ini:2: indented line; start sections and keys in the first column"}},
	{"indented header", "  [levee]\n", {"p.ini:1: indented line; start sections and keys in the first column"}},
	{"missing '='", "[levee]\nworkers 2\nworkers: 2\n",
	 {"p.ini:2: expected KEY = VALUE", "p.ini:3: expected KEY = VALUE"}},
	{"missing key", "[levee]\n= 2\n", {"p.ini:2: missing key name before '='"}},
	{"key before any section", "workers = 2\n",
	 {"p.ini:1: workers: key outside of any section (add a [levee] line above it)"}},
	{"empty value", "[levee]\nupstream =\nlisten = ; none\n",
	 {"p.ini:2: [levee] upstream: empty value", "p.ini:3: [levee] listen: empty value"}},

	/* section headers */
	{"unclosed header", "[levee\n", {"p.ini:1: missing ']' at the end of the section header"}},
	{"empty header", "[]\n", {"p.ini:1: missing section name after '['"}},
	{"text after header", "[levee] x\n[limits] # c\n",
	 {"p.ini:1: unexpected text after ']'",
	  "p.ini:2: unexpected text after ']' (a comment after a header starts with ';')"}},
	{"unquoted name", "[route users]\nprefix = /\n",
	 {"p.ini:1: section names must be quoted, e.g. [route \"users\"]"}},
	{"unclosed quote", "[route \"a]\n", {"p.ini:1: missing closing '\"' in section header"}},
	{"name where none is taken", "[levee \"x\"]\n",
	 {"p.ini:1: [levee \"x\"]: this section takes no name; write [levee]"}},
	{"route without name", "[route]\n", {"p.ini:1: [route]: needs a name, e.g. [route \"NAME\"]"}},
	{"bad route name", "[route \"a b\"]\n[route \"\"]\n",
	 {"p.ini:1: [route \"a b\"]: name must be 1-63 characters of A-Z a-z 0-9 _ . -",
	  "p.ini:2: [route \"\"]: name must be 1-63 characters of A-Z a-z 0-9 _ . -"}},
	{"route name of 63", "[route \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"]\nprefix = /\n", {NULL}},
	{"route name of 64", "[route \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"]\n",
	 {"p.ini:1: [route \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"]: name must be 1-63 characters of A-Z a-z 0-9 _ . -"}},
	{"unknown section", "[limit]\nheaders = 5\n[nosuch]\nx = 1\n",
	 {"p.ini:1: [limit]: unknown section (did you mean \"limits\"?)", "p.ini:3: [nosuch]: unknown section"}},
	{"duplicate section, keys still checked", "[levee]\n[limits]\n[levee]\nworkers = x\n",
	 {"p.ini:3: [levee]: duplicate section (first on line 1)",
	  "p.ini:4: [levee] workers: expected a whole number or auto"}},

	/* keys */
	{"duplicate key", "[levee]\nworkers = 2\nworkers = 3\n",
	 {"p.ini:3: [levee] workers: duplicate key (first set on line 2)"}},
	{"did you mean", "[limits]\nheader_byte = 1KiB\n",
	 {"p.ini:2: [limits] header_byte: unknown key (did you mean \"header_bytes\"?)"}},
	{"key of another section", "[levee]\nkeepalive = 1\nmatch = /a\n",
	 {"p.ini:2: [levee] keepalive: unknown key here (it belongs in [upstream])",
	  "p.ini:3: [levee] match: unknown key here (it belongs in [route \"NAME\"])"}},
	{"unknown key", "[levee]\nfrobnicate = 1\n", {"p.ini:2: [levee] frobnicate: unknown key"}},
	{"unset variable", "[levee]\nservice = ${LV_TP_UNSET}\n",
	 {"p.ini:2: [levee] service: environment variable LV_TP_UNSET is not set (give a default with ${LV_TP_UNSET:-VALUE})"}},
	{"variable default", "[levee]\nservice = ${LV_TP_UNSET:-fallback}\n", {NULL}},
	{"bad expansion", "[levee]\nservice = ${LV_TP_UNSET\n",
	 {"p.ini:2: [levee] service: unterminated ${ (missing '}')"}},
	{"bounds", "[limits]\nheaders = 0\nheader_bytes = 2MiB\n[upstream]\nprobe_interval = 50ms\n",
	 {"p.ini:2: [limits] headers: must be between 1 and 1000",
	  "p.ini:3: [limits] header_bytes: must be between 1KiB and 1MiB",
	  "p.ini:5: [upstream] probe_interval: must be between 100ms and 1h"}},
	{"workers", "[levee]\nworkers = 257\n", {"p.ini:2: [levee] workers: must be between 0 and 256"}},
	{"duration syntax", "[levee]\ndrain_timeout = 25\n",
	 {"p.ini:2: [levee] drain_timeout: missing unit (write e.g. 250ms, 5s, 2m or 1h)"}},
	{"access_log", "[levee]\naccess_log = logs/access.log\n",
	 {"p.ini:2: [levee] access_log: must be stdout, off, or an absolute path"}},
	{"access_log_fields", "[levee]\naccess_log_fields = time bytes status\n",
	 {"p.ini:2: [levee] access_log_fields: 'bytes' is not a field (docs/access-log.md lists them), nor all"}},
	{"access_log_fields twice", "[levee]\naccess_log_fields = time, status, time\n",
	 {"p.ini:2: [levee] access_log_fields: 'time' is listed twice"}},
	{"access_log_fields none", "[levee]\naccess_log_fields = none\n",
	 {"p.ini:2: [levee] access_log_fields: name at least one field; access_log = off turns the log off"}},
	{"access_log_fields empty", "[levee]\naccess_log_fields = ,\n",
	 {"p.ini:2: [levee] access_log_fields: empty: write none for no field"}},
	{"access_log_format", "[levee]\naccess_log_format = combined\n",
	 {"p.ini:2: [levee] access_log_format: must be one of json, text"}},
	{"log_level", "[levee]\nlog_level = verbose\n",
	 {"p.ini:2: [levee] log_level: must be one of debug, info, warn, error"}},
	{"transparent", "[levee]\ntransparent = true\n",
	 {"p.ini:2: [levee] transparent: must be one of off, on"}},
	{"bool", "[levee]\ntrust_forwarded = maybe\n",
	 {"p.ini:2: [levee] trust_forwarded: expected true or false (also yes/no, on/off, 1/0)"}},
	{"cache_any_status", "[route \"a\"]\nprefix = /\ncache_any_status = 5xx\n",
	 {"p.ini:3: [route \"a\"] cache_any_status: expected true or false (also yes/no, on/off, 1/0)"}},

	/* routes */
	{"route needs a pattern", "[route \"a\"]\nmethods = GET\n[route \"b\"]\n",
	 {"p.ini:1: [route \"a\"]: needs match or prefix", "p.ini:3: [route \"b\"]: needs match or prefix"}},
	{"match and prefix", "[route \"a\"]\nmatch = /a\nprefix = /b\n",
	 {"p.ini:3: [route \"a\"] prefix: conflicts with match on line 2 (use only one)"}},
	{"duplicate route, keys still checked", "[route \"a\"]\nprefix = /\n[route \"a\"]\nmatch = x\n",
	 {"p.ini:3: [route \"a\"]: duplicate route name (first on line 1)",
	  "p.ini:4: [route \"a\"] match: must start with '/'"}},
	{"glob rules", "[route \"a\"]\nmatch = /**/x\n[route \"b\"]\nprefix = /x/*\n",
	 {"p.ini:2: [route \"a\"] match: '**' is only allowed as the last segment (e.g. /static/**)",
	  "p.ini:4: [route \"b\"] prefix: a prefix is literal; use match = for '*' wildcards"}},
	{"methods", "[route \"a\"]\nprefix = /\nmethods = GET, FETCH\n[route \"b\"]\nprefix = /\nmethods = GET,\n",
	 {"p.ini:3: [route \"a\"] methods: unknown method \"FETCH\" (use GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE, or any; names are case-sensitive)",
	  "p.ini:6: [route \"b\"] methods: expected a comma-separated list of methods, e.g. GET, HEAD"}},

	/* a file with errors reports no warnings: they could be false */
	{"no warnings beside errors", "[route \"a\"]\nprefix = /\n[route \"b\"]\nprefix = /x\nmethods = FETCH\n",
	 {"p.ini:5: [route \"b\"] methods: unknown method \"FETCH\" (use GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, "
	  "TRACE, or any; names are case-sensitive)"}},


	/* checks across keys */
	{"uri_bytes over header_bytes (set)", "[limits]\nuri_bytes = 64KiB\n",
	 {"p.ini:2: [limits] uri_bytes: uri_bytes (65536) must not exceed header_bytes (32768)"}},
	{"uri_bytes over header_bytes (default)", "[limits]\nheader_bytes = 4KiB\n",
	 {"p.ini:2: [limits] header_bytes: uri_bytes (8192) must not exceed header_bytes (4096)"}},
	{"admin on listen", "[levee]\nadmin = 0.0.0.0:15001\n",
	 {"p.ini:2: [levee] admin: admin (0.0.0.0:15001) and listen (0.0.0.0:15001) overlap"}},
	{"listen on admin", "[levee]\nlisten = 127.0.0.1:15000\n",
	 {"p.ini:2: [levee] listen: admin (127.0.0.1:15000) and listen (127.0.0.1:15000) overlap"}},
	{"probe on listen", "[levee]\nprobe = 0.0.0.0:15001\n",
	 {"p.ini:2: [levee] probe: probe (0.0.0.0:15001) and listen (0.0.0.0:15001) overlap"}},
	{"probe on admin", "[levee]\nadmin = 127.0.0.1:9\nprobe = 0.0.0.0:9\n",
	 {"p.ini:3: [levee] probe: probe (0.0.0.0:9) and admin (127.0.0.1:9) overlap"}},
	{"probe beside admin", "[levee]\nprobe = 0.0.0.0:15002\n", {NULL}},
	{"probe off", "[levee]\nprobe = none\n", {NULL}},
	{"upstream loop", "[levee]\nupstream = 127.0.0.1:15001\n",
	 {"p.ini:2: [levee] upstream: upstream is levee's own listen address (0.0.0.0:15001); requests would loop"}},
	{"upstream elsewhere on the same port", "[levee]\nupstream = 10.0.0.5:15001\n", {NULL}},

	/* all errors, in file order although found at different times */
	{"many errors",
	 "[levee]\nworkers = many\n[limits]\nuri_bytes = 64KiB\nheaders = x\n[route \"r\"]\n[levey]\n",
	 {"p.ini:2: [levee] workers: expected a whole number or auto",
	  "p.ini:4: [limits] uri_bytes: uri_bytes (65536) must not exceed header_bytes (32768)",
	  "p.ini:5: [limits] headers: expected a number", "p.ini:6: [route \"r\"]: needs match or prefix",
	  "p.ini:7: [levey]: unknown section (did you mean \"levee\"?)"}},
};

/* Files that load, and the warnings levee check prints for each: routes
 * their own file makes useless. */
struct warn_case {
	const char *what;
	const char *text;
	const char *warnings[MAX_ERRS];
};

static const struct warn_case warn_cases[] = {
	{"transparent with a loopback listen", "[levee]\nlisten = 127.0.0.1:15006\ntransparent = on\n",
	 {"p.ini:3: [levee] warning: transparent = on, but listen is a loopback address (127.0.0.1:15006): the nat "
	  "rules redirect inbound connections to the address they arrived on, which this listener never sees; "
	  "listen on 0.0.0.0 (docs/transparent.md)"}},
	{"transparent with a wildcard listen", "[levee]\nlisten = 0.0.0.0:15006\ntransparent = on\n", {NULL}},
	{"a loopback listen without transparent", "[levee]\nlisten = 127.0.0.1:15006\ntransparent = off\n", {NULL}},
	{"bulkhead threads without thread isolation", "[bulkhead \"b\"]\nthreads = 4\n",
	 {"p.ini:2: [bulkhead \"b\"] warning: threads has no effect with isolation = semaphore"}},
	{"breaker slow_call_rate without slow_call", "[breaker \"k\"]\nslow_call_rate = 10%\n",
	 {"p.ini:2: [breaker \"k\"] warning: slow_call_rate has no effect without slow_call"}},
	{"breaker open_for_max not above open_for", "[breaker \"k\"]\nopen_for = 10s\nopen_for_max = 5s\n",
	 {"p.ini:3: [breaker \"k\"] warning: open_for_max is not above open_for: repeated trips are not doubled"}},
	{"bulkhead adaptive keys without auto", "[bulkhead \"b\"]\nmax_concurrent = 4\nadaptive_min = 3\nadaptive_window = 1s\n",
	 {"p.ini:3: [bulkhead \"b\"] warning: adaptive_min has no effect without max_concurrent = auto",
	  "p.ini:4: [bulkhead \"b\"] warning: adaptive_window has no effect without max_concurrent = auto"}},
	{"bulkhead adaptive keys with auto", "[bulkhead \"b\"]\nmax_concurrent = auto\nadaptive_max = 30\n", {NULL}},
	{"fallback keys without the chain", "[route \"u\"]\nprefix = /\nfallback_status = 200\nfallback_body = x\n"
	                                    "stale_fallback_max = 1m\n",
	 {"p.ini:3: [route \"u\"] warning: fallback_status has no effect without static in fallback",
	  "p.ini:4: [route \"u\"] warning: fallback_body has no effect without static in fallback",
	  "p.ini:5: [route \"u\"] warning: stale_fallback_max has no effect without stale in fallback"}},
	{"fallback after one that always answers", "[route \"u\"]\nprefix = /\nfallback = status, static\nfallback_body = x\n",
	 {"p.ini:3: [route \"u\"] warning: fallback: status always answers, so what follows it is never tried"}},
	{"bulkhead threads with thread isolation", "[bulkhead \"b\"]\nisolation = thread\nthreads = 4\n", {NULL}},
	{"shadowed by a prefix", "[route \"api\"]\nprefix = /api/\n[route \"users\"]\nmatch = /api/users/*\n",
	 {"p.ini:4: [route \"users\"] warning: never chosen: route \"api\" (line 1) comes first and matches every "
	  "request this one does; move this route above it, or narrow it"}},
	{"specific first is fine", "[route \"users\"]\nmatch = /api/users/*\n[route \"api\"]\nprefix = /api/\n", {NULL}},
	{"earlier route takes other methods only",
	 "[route \"w\"]\nprefix = /api/\nmethods = POST, PUT\n[route \"r\"]\nmatch = /api/**\nmethods = GET, HEAD\n",
	 {NULL}},
	{"shadowed method by method",
	 "[route \"r\"]\nmatch = /api/**\nmethods = GET\n[route \"w\"]\nmatch = /api/*/x\nmethods = POST\n"
	 "[route \"both\"]\nmatch = /api/u*/x\nmethods = GET, POST\n",
	 {"p.ini:8: [route \"both\"] warning: never chosen: routes \"r\" (line 1), \"w\" (line 4) come first and "
	  "between them match every request this one does (each for some of its methods); move this route above them, "
	  "or narrow them"}},
	{"partly shadowed is not reported",
	 "[route \"r\"]\nmatch = /api/**\nmethods = GET\n[route \"any\"]\nmatch = /api/users\n", {NULL}},
	{"same pattern twice", "[route \"a\"]\nmatch = /x/*.png\n[route \"b\"]\nmethods = GET\nmatch = /x/*.png\n",
	 {"p.ini:5: [route \"b\"] warning: never chosen: route \"a\" (line 1) comes first and matches every "
	  "request this one does; move this route above it, or narrow it"}},
	{"prefix under a globstar", "[route \"all\"]\nmatch = /*/**\n[route \"v1\"]\nprefix = /v1/users\n",
	 {"p.ini:4: [route \"v1\"] warning: never chosen: route \"all\" (line 1) comes first and matches every "
	  "request this one does; move this route above it, or narrow it"}},
	{"prefix shorter than the globstar's head", "[route \"all\"]\nmatch = /*/**\n[route \"v\"]\nprefix = /v\n",
	 {NULL}},
	{"non-ASCII pattern", "[route \"cafe\"]\nmatch = /caf\xc3\xa9/*\n",
	 {"p.ini:2: [route \"cafe\"] warning: this route can never match: its match has byte 0xC3, which no request "
	  "path carries (clients send it %-encoded, as %C3, and levee compares bytes without decoding)"}},
	{"non-ASCII prefix", "[route \"cafe\"]\nprefix = /\xe2\x82\xac\n",
	 {"p.ini:2: [route \"cafe\"] warning: this route can never match: its prefix has byte 0xE2, which no request "
	  "path carries (clients send it %-encoded, as %E2, and levee compares bytes without decoding)"}},
	{"match /*", "[route \"all\"]\nmatch = /*\ncache_ttl = 60s\n",
	 {"p.ini:2: [route \"all\"] warning: match /* takes one-segment paths only (/a, not / or /a/b); for every "
	  "path write /**"}},
	{"invalidate with one-segment globs",
	 "[route \"u\"]\nmatch = /u/*\ninvalidate = /api/users/*, /api/users*, /u/{1}/*.json, /u/{1}/**\n",
	 {"p.ini:3: [route \"u\"] warning: invalidate /api/users/*: '*' matches within one segment, which a purge "
	  "cannot take (it takes a URL or a prefix), so this purges every URL under /api/users/ (write /api/users/** to "
	  "say so)",
	  "p.ini:3: [route \"u\"] warning: invalidate /api/users*: '*' matches within one segment, which a purge "
	  "cannot take (it takes a URL or a prefix), so this purges every URL under /api/ (write /api/** to say so)",
	  "p.ini:3: [route \"u\"] warning: invalidate /u/{1}/*.json: '*' matches within one segment, which a purge "
	  "cannot take (it takes a URL or a prefix), so this purges every URL under /u/{1}/ (write /u/{1}/** to say so)"}},
	{"warnings in file order",
	 "[route \"a\"]\nprefix = /\n[route \"b\"]\nmatch = /*\n[route \"c\"]\nprefix = /x\n",
	 {"p.ini:4: [route \"b\"] warning: match /* takes one-segment paths only (/a, not / or /a/b); for every "
	  "path write /**",
	  "p.ini:4: [route \"b\"] warning: never chosen: route \"a\" (line 1) comes first and matches every "
	  "request this one does; move this route above it, or narrow it",
	  "p.ini:6: [route \"c\"] warning: never chosen: route \"a\" (line 1) comes first and matches every "
	  "request this one does; move this route above it, or narrow it"}},
};

#include "policy_expect.h"

/* Loads <text> as p.ini: exactly the errors <errors> and warnings <warnings>,
 * and a snapshot exactly when there are no errors. */
static void load_case_run(const char *what, const char *text, const char *const *errors,
                          const char *const *warnings)
{
	struct lv_policy *p = NULL;
	struct lv_diag d = {0};
	int rc = policy_load_string("p.ini", text, NULL, &p, &d);
	expect_diag(what, rc, &d, errors, warnings);
	if (rc == LV_OK)
		assert_non_null(p);
	else
		assert_null(p);
	policy_unref(p);
	diag_free(&d);
}

static const char *const no_lines[] = {NULL};

static void test_load_table(void **state)
{
	(void)state;
	unsetenv("LV_TP_UNSET");
	for (size_t i = 0; i < N(load_cases); i++)
		load_case_run(load_cases[i].what, load_cases[i].text, load_cases[i].errors, no_lines);
}

static void test_warn_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < N(warn_cases); i++)
		load_case_run(warn_cases[i].what, warn_cases[i].text, no_lines, warn_cases[i].warnings);
}

/* The loader's own limits, with generated texts. */
static void test_load_limits(void **state)
{
	(void)state;
	char text[256 * 40 + 64];
	struct lv_policy *p = NULL;
	struct lv_diag d = {0};

	/* A line of 199 bytes is fine, with either line ending; 200 is not. */
	for (int crlf = 0; crlf <= 1; crlf++) {
		snprintf(text, sizeof(text), "[levee]\n;%0198d%s[limits]\n", 0, crlf ? "\r\n" : "\n");
		assert_int_equal(policy_load_string("p.ini", text, NULL, &p, &d), LV_OK);
		policy_unref(p);
	}
	snprintf(text, sizeof(text), "[levee]\n;%0199d\nworkers = x\n", 0);
	assert_int_equal(policy_load_string("p.ini", text, NULL, &p, &d), LV_ERR);
	const char *want[] = {"p.ini:2: line too long (max 199 bytes)",
	                      "p.ini:3: [levee] workers: expected a whole number or auto", NULL};
	expect_errors("line too long", LV_ERR, &d, want);
	diag_free(&d);

	/* LV_MAX_ROUTES routes load; one more does not. */
	size_t cap = (LV_MAX_ROUTES + 1) * 40, o = 0;
	char *routes = malloc(cap);
	assert_non_null(routes);
	for (int i = 0; i <= LV_MAX_ROUTES; i++)
		o += (size_t)snprintf(routes + o, cap - o, "[route \"r%d\"]\nprefix = /%d\n", i, i);
	assert_int_equal(policy_load_string("p.ini", routes, NULL, &p, &d), LV_ERR);
	assert_int_equal(d.n, 1);
	assert_string_equal(d.lines[0], "p.ini:8193: [route \"r4096\"]: too many route sections (at most 4096)");
	diag_free(&d);
	routes[o - strlen("[route \"r4096\"]\nprefix = /4096\n")] = '\0';
	assert_int_equal(policy_load_string("p.ini", routes, NULL, &p, &d), LV_OK);
	assert_int_equal(p->nroutes, LV_MAX_ROUTES);
	assert_string_equal(p->routes[4095].name, "r4095");
	assert_string_equal(p->routes[4095].pattern, "/4095");
	assert_int_equal(p->routes[4095].line, 8191);
	/* /4, /40, /409 and /4095 all fit /4095/x: the first in the file wins */
	assert_ptr_equal(policy_route_match(p, "/4095/x", 7, LV_M_GET, NULL), &p->routes[4]);
	assert_ptr_equal(policy_route_match(p, "/0", 2, LV_M_GET, NULL), &p->routes[0]);
	assert_null(policy_route_match(p, "/x", 2, LV_M_GET, NULL));
	policy_unref(p);
	free(routes);

	/* A wrong file gives a bounded list of errors. */
	o = 0;
	for (int i = 0; i < 150; i++)
		o += (size_t)snprintf(text + o, sizeof(text) - o, "junk\n");
	assert_int_equal(policy_load_string("p.ini", text, NULL, &p, &d), LV_ERR);
	assert_int_equal(d.n, 101);
	assert_string_equal(d.lines[99], "p.ini:100: expected KEY = VALUE");
	assert_string_equal(d.lines[100], "p.ini: too many errors; the rest are not shown");
	diag_free(&d);
}

static void assert_defaults(const struct lv_policy *p)
{
	assert_string_equal(p->service, "demo");
	assert_string_equal(p->listen.host, "0.0.0.0");
	assert_int_equal(p->listen.port, 15001);
	assert_string_equal(p->admin.host, "127.0.0.1");
	assert_int_equal(p->admin.port, 15000);
	assert_int_equal(p->workers, 0);
	assert_int_equal(p->max_connections, 10000);
	assert_int_equal(p->drain_timeout_ms, 25000);
	assert_string_equal(p->access_log, "stdout");
	assert_int_equal(p->access_log_format, LV_ALOG_JSON);
	/* all but referer, in the documented order: the cache outcome
	 * (cache_status) is in a line by default */
	assert_int_equal(p->access_log_fields.n, LV_AF__COUNT - 1);
	assert_int_equal(p->access_log_fields.f[0], LV_AF_TIME);
	assert_int_equal(p->access_log_fields.f[3], LV_AF_ORIG_DST);
	assert_int_equal(p->access_log_fields.f[LV_AF__COUNT - 2], LV_AF_FORWARDED_FOR);
	bool has_cache_status = false;
	for (unsigned i = 0; i < p->access_log_fields.n; i++) {
		assert_true(p->access_log_fields.f[i] != LV_AF_REFERER);
		has_cache_status |= p->access_log_fields.f[i] == LV_AF_CACHE_STATUS;
	}
	assert_true(has_cache_status);
	assert_int_equal(p->log_level, LV_LOG_INFO);
	assert_false(p->trust_forwarded);
	assert_int_equal(p->transparent, LV_TRANSPARENT_OFF);
	assert_int_equal(p->limits.header_bytes, 32 * 1024);
	assert_int_equal(p->limits.headers, 100);
	assert_int_equal(p->limits.uri_bytes, 8 * 1024);
	assert_int_equal(p->limits.body_bytes, 1ull << 30);
	assert_int_equal(p->limits.header_timeout_ms, 10000);
	assert_int_equal(p->limits.body_timeout_ms, 30000);
	assert_int_equal(p->limits.idle_timeout_ms, 60000);
	assert_int_equal(p->limits.send_timeout_ms, 60000);
	assert_int_equal(p->up.connect_timeout_ms, 2000);
	assert_int_equal(p->up.response_timeout_ms, 30000);
	assert_int_equal(p->up.keepalive, 64);
	assert_int_equal(p->up.keepalive_timeout_ms, 60000);
	assert_int_equal(p->up.probe_interval_ms, 1000);
	assert_int_equal(p->nroutes, 0);
	assert_null(p->routes);
}

static void test_defaults(void **state)
{
	(void)state;
	struct lv_policy *p = NULL;
	struct lv_diag d = {0};

	assert_int_equal(policy_load_defaults(NULL, &p, &d), LV_OK);
	assert_defaults(p);
	assert_string_equal(p->upstream.host, "127.0.0.1");
	assert_int_equal(p->upstream.port, 8080);
	assert_string_equal(p->path, "");
	assert_string_equal(p->checksum, "cbf29ce484222325"); /* FNV-1a 64 of nothing */
	assert_int_equal(p->cache.memory, 64u << 20);
	assert_false(policy_redis_on(p));
	assert_string_equal(p->redis.master, "mymaster");
	assert_int_equal(p->redis.timeout_ms, 25);
	assert_int_equal(p->cache.max_object, 1u << 20);
	policy_unref(p);

	/* route caching defaults, and the parsed forms of the new types */
	assert_int_equal(policy_load_string("c.ini", "[route \"a\"]\nprefix = /\n[route \"b\"]\nprefix = /b\n"
	                                    "cache_ttl = 90s\nnegative_status = 404, 410\n"
	                                    "cache_key_headers = Accept-Language, X-Tenant\n[route \"c\"]\n"
	                                    "prefix = /c\ncache_ttl = origin\ncache_control_fields = none\n"
	                                    "[route \"d\"]\nprefix = /d\ncache_control_fields = X-Cc,  CDN-Cache-Control\n",
	                                    NULL, &p, &d),
	                 LV_OK);
	assert_false(route_caches(&p->routes[0]));
	assert_int_equal(p->routes[0].negative_ttl_ms, 5000);
	assert_true(statuses_has(&p->routes[0].negative_status, 404));
	assert_false(statuses_has(&p->routes[0].negative_status, 410));
	assert_int_equal(p->routes[1].cache_ttl_ms, 90000);
	assert_true(statuses_has(&p->routes[1].negative_status, 410));
	assert_string_equal(p->routes[1].cache_key_headers, "accept-language,x-tenant");
	assert_string_equal(p->routes[1].cache_key_host, ""); /* [cache] key_host decides */
	assert_string_equal(p->cache.key_host, "request");
	assert_string_equal(p->routes[0].cache_tags, "");
	assert_string_equal(p->routes[0].cache_control_fields, "levee-cache-control,cdn-cache-control");
	assert_int_equal(p->routes[2].cache_ttl_ms, LV_TTL_ORIGIN);
	assert_true(route_caches(&p->routes[2]));
	assert_string_equal(p->routes[2].cache_control_fields, "");
	assert_string_equal(p->routes[3].cache_control_fields, "x-cc,cdn-cache-control");
	assert_false(p->routes[2].cache_any_status); /* 5xx never stored unless asked */
	policy_unref(p);
	assert_int_equal(policy_load_string("c.ini", "[route \"c\"]\nprefix = /c\ncache_ttl = origin\n"
	                                    "cache_any_status = on\n",
	                                    NULL, &p, &d),
	                 LV_OK);
	assert_true(p->routes[0].cache_any_status);
	policy_unref(p);

	/* An empty file means the same. */
	assert_int_equal(policy_load_string("e.ini", "", NULL, &p, &d), LV_OK);
	assert_defaults(p);
	assert_string_equal(p->checksum, "cbf29ce484222325");
	assert_string_equal(p->checksum, LV_POLICY_EMPTY_CHECKSUM); /* what a reload refuses */
	policy_unref(p);
	assert_int_equal(policy_load_string("a.ini", "a", NULL, &p, &d), LV_ERR);
	diag_free(&d);
	assert_int_equal(policy_load_string("a.ini", ";a", NULL, &p, &d), LV_OK);
	assert_string_equal(p->checksum, "081a5f07b4d69861"); /* FNV-1a 64 of ";a" */
	policy_unref(p);
	assert_int_equal(d.n, 0);
}

static void test_overrides(void **state)
{
	(void)state;
	struct lv_policy *p = NULL;
	struct lv_diag d = {0};

	/* levee --upstream HOST:PORT runs on defaults. */
	struct lv_overrides ov = {.upstream = "10.1.2.3:99"};
	assert_int_equal(policy_load_defaults(&ov, &p, &d), LV_OK);
	assert_string_equal(p->upstream.host, "10.1.2.3");
	assert_int_equal(p->upstream.port, 99);
	assert_int_equal(p->listen.port, 15001);
	policy_unref(p);

	/* A flag wins over the file. */
	ov = (struct lv_overrides){
		.listen = "127.0.0.1:7000", .upstream = "[::1]:7001", .admin = "127.0.0.1:7002", .probe = "0.0.0.0:7003"};
	assert_int_equal(policy_load_string("o.ini", "[levee]\nupstream = 1.1.1.1:1\nlisten = 1.1.1.1:2\nprobe = none\n",
	                                    &ov, &p, &d),
	                 LV_OK);
	assert_int_equal(p->listen.port, 7000);
	assert_string_equal(p->upstream.host, "::1");
	assert_int_equal(p->admin.port, 7002);
	assert_string_equal(p->probe.host, "0.0.0.0");
	assert_int_equal(p->probe.port, 7003);
	policy_unref(p);
	/* probe is off unless asked for */
	assert_int_equal(policy_load_defaults(NULL, &p, &d), LV_OK);
	assert_string_equal(p->probe.host, "");
	policy_unref(p);

	static const struct {
		struct lv_overrides ov;
		const char *text;
		const char *errors[3];
	} bad[] = {
		{{.upstream = "nope"}, NULL, {"--upstream: missing :PORT (write HOST:PORT, e.g. 127.0.0.1:8080)"}},
		{{.listen = "0.0.0.0:0", .admin = ":1"}, NULL,
		 {"--listen: port must be a number from 1 to 65535",
		  "--admin: missing host (write 0.0.0.0:PORT for every address)"}},
		{{.admin = "0.0.0.0:15001"}, NULL, {"--admin: admin (0.0.0.0:15001) and listen (0.0.0.0:15001) overlap"}},
		{{.probe = "127.0.0.1:15000"}, NULL, {"--probe: probe (127.0.0.1:15000) and admin (127.0.0.1:15000) overlap"}},
		{{.probe = "nope"}, NULL, {"--probe: missing :PORT (write HOST:PORT, e.g. 127.0.0.1:8080)"}},
		{{.listen = "127.0.0.1:8080"}, NULL,
		 {"--listen: upstream is levee's own listen address (127.0.0.1:8080); requests would loop"}},
		{{.upstream = "127.0.0.1:9"}, "[levee]\nlisten = 127.0.0.1:9\n",
		 {"--upstream: upstream is levee's own listen address (127.0.0.1:9); requests would loop"}},
		{{.upstream = "x"}, "[levee]\nworkers = x\n",
		 {"f.ini:2: [levee] workers: expected a whole number or auto",
		  "--upstream: missing :PORT (write HOST:PORT, e.g. 127.0.0.1:8080)"}},
	};
	for (size_t i = 0; i < N(bad); i++) {
		p = NULL;
		int rc = bad[i].text ? policy_load_string("f.ini", bad[i].text, &bad[i].ov, &p, &d)
		                     : policy_load_defaults(&bad[i].ov, &p, &d);
		char what[32];
		snprintf(what, sizeof(what), "override %zu", i);
		expect_errors(what, rc, &d, bad[i].errors);
		assert_null(p);
		diag_free(&d);
	}
}

struct changes {
	char seen[512];
};

static void on_change(const char *section, const char *key, void *arg)
{
	struct changes *c = arg;
	size_t o = strlen(c->seen);
	snprintf(c->seen + o, sizeof(c->seen) - o, "%s%s.%s", o ? " " : "", section, key);
}

static void test_keep_static(void **state)
{
	(void)state;
	struct lv_policy *a = NULL, *b = NULL;
	struct lv_diag d = {0};
	assert_int_equal(policy_load_string("a.ini", "[levee]\nupstream = 10.0.0.1:80\n", NULL, &a, &d), LV_OK);

	/* Only reloadable keys change: nothing to report, and they keep the file's values. */
	assert_int_equal(policy_load_string("b.ini",
	                                    "[levee]\nupstream = 10.0.0.2:80\nlog_level = warn\n"
	                                    "max_connections = 5\n[limits]\nheaders = 7\n"
	                                    "[route \"x\"]\nprefix = /\n",
	                                    NULL, &b, &d),
	                 LV_OK);
	struct changes c = {""};
	policy_keep_static(b, a, on_change, &c);
	assert_string_equal(c.seen, "");
	assert_string_equal(b->upstream.host, "10.0.0.2");
	assert_int_equal(b->max_connections, 5);
	assert_int_equal(b->nroutes, 1);
	policy_unref(b);

	/* Every key that needs a restart, in table order; each keeps the running value. */
	assert_int_equal(policy_load_string("b.ini",
	                                    "[levee]\nservice = other\nlisten = 0.0.0.0:9\n"
	                                    "upstream = 10.0.0.2:80\nadmin = [::1]:15000\nworkers = 3\n"
	                                    "access_log = off\n",
	                                    NULL, &b, &d),
	                 LV_OK);
	policy_keep_static(b, a, on_change, &c);
	assert_string_equal(c.seen, "levee.service levee.listen levee.admin levee.workers levee.access_log");
	assert_string_equal(b->service, a->service);
	assert_int_equal(b->listen.port, a->listen.port);
	assert_string_equal(b->admin.host, a->admin.host);
	assert_int_equal(b->workers, a->workers);
	assert_string_equal(b->access_log, a->access_log);
	assert_string_equal(b->upstream.host, "10.0.0.2");
	/* and a second look finds nothing left to keep */
	c.seen[0] = '\0';
	policy_keep_static(b, a, on_change, &c);
	assert_string_equal(c.seen, "");

	/* Same values written differently are no change. */
	policy_unref(b);
	assert_int_equal(policy_load_string("b.ini", "[levee]\nworkers = 0\nlisten = 0.0.0.0:15001\n", NULL, &b, &d),
	                 LV_OK);
	policy_keep_static(b, a, on_change, &c);
	assert_string_equal(c.seen, "");
	policy_unref(a);
	policy_unref(b);
	diag_free(&d);
}

static void test_refcount(void **state)
{
	(void)state;
	struct lv_policy *p = NULL;
	struct lv_diag d = {0};
	assert_int_equal(policy_load_string("r.ini", "[route \"a\"]\nprefix = /\n", NULL, &p, &d), LV_OK);
	assert_int_equal(atomic_load(&p->refs), 1);
	policy_ref(p);
	policy_ref(p);
	assert_int_equal(atomic_load(&p->refs), 3);
	policy_unref(p);
	policy_unref(p);
	assert_int_equal(atomic_load(&p->refs), 1);
	assert_string_equal(p->routes[0].name, "a"); /* still alive */
	policy_unref(p);                              /* freed: ASan checks */
	policy_unref(NULL);
}

/* A failed load leaves *out alone and adds to, never replaces, the diag. */
static void test_failure_contract(void **state)
{
	(void)state;
	struct lv_policy *keep = (struct lv_policy *)0x1;
	struct lv_diag d = {0};
	diag_add(&d, "earlier");
	assert_int_equal(policy_load_string("p.ini", "[levee]\nworkers = x\n[levee]\n", NULL, &keep, &d), LV_ERR);
	assert_ptr_equal(keep, (struct lv_policy *)0x1);
	assert_int_equal(d.n, 3);
	assert_string_equal(d.lines[0], "earlier");
	assert_string_equal(d.lines[1], "p.ini:2: [levee] workers: expected a whole number or auto");
	assert_string_equal(d.lines[2], "p.ini:3: [levee]: duplicate section (first on line 1)");
	diag_free(&d);
}

static char *write_temp(const char *content, size_t len)
{
	char *path = strdup("/tmp/levee-test-policy-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, len), (ssize_t)len);
	close(fd);
	return path;
}

static void test_load_file(void **state)
{
	(void)state;
	struct lv_policy *p = NULL, *q = NULL;
	struct lv_diag d = {0};
	static const char text[] = "[levee]\nworkers = 2\n";

	char *path = write_temp(text, sizeof(text) - 1);
	assert_int_equal(policy_load_file(path, NULL, &p, &d), LV_OK);
	assert_string_equal(p->path, path);
	assert_int_equal(p->workers, 2);
	assert_int_equal(policy_load_string("s", text, NULL, &q, &d), LV_OK);
	assert_string_equal(p->checksum, q->checksum); /* of the bytes, not of the name */
	policy_unref(p);
	policy_unref(q);
	unlink(path);
	free(path);

	/* A NUL byte cannot be hidden in a file. */
	path = write_temp("[levee]\nworkers = 2\0junk\n", 25);
	assert_int_equal(policy_load_file(path, NULL, &p, &d), LV_ERR);
	assert_int_equal(d.n, 1);
	assert_non_null(strstr(d.lines[0], ":2: NUL byte in line"));
	diag_free(&d);
	unlink(path);
	free(path);

	/* Too large. */
	size_t big = 1024 * 1024 + 1;
	char *junk = malloc(big);
	memset(junk, ';', big);
	path = write_temp(junk, big);
	free(junk);
	assert_int_equal(policy_load_file(path, NULL, &p, &d), LV_ERR);
	assert_int_equal(d.n, 1);
	assert_non_null(strstr(d.lines[0], ": larger than 1048576 bytes"));
	diag_free(&d);
	unlink(path);
	free(path);

	assert_int_equal(policy_load_file("/nonexistent/levee.ini", NULL, &p, &d), LV_ERR);
	assert_int_equal(d.n, 1);
	assert_string_equal(d.lines[0], "/nonexistent/levee.ini: cannot open: No such file or directory");
	diag_free(&d);

	assert_int_equal(policy_load_file("/tmp", NULL, &p, &d), LV_ERR);
	assert_int_equal(d.n, 1);
	assert_string_equal(d.lines[0], "/tmp: cannot read: Is a directory");
	diag_free(&d);
}

/* Loads "[warmup]\n<before>urls_file = F\n", F a file holding `len` bytes
 * of `list` (removed after): the policy, or NULL with the errors in `d`.
 * `path` (when not NULL) gets F's name. */
static struct lv_policy *load_warm_file(const char *before, const char *list, size_t len, struct lv_diag *d,
                                        char *path, size_t cap)
{
	char *lpath = write_temp(list, len);
	char text[2048];
	snprintf(text, sizeof(text), "[warmup]\n%surls_file = %s\n", before, lpath);
	if (path)
		snprintf(path, cap, "%s", lpath);
	struct lv_policy *p = NULL;
	if (policy_load_string("p.ini", text, NULL, &p, d) != LV_OK)
		p = NULL;
	unlink(lpath);
	free(lpath);
	return p;
}

/* The warm-up list: the file's lines, comments, blanks and CRs skipped, its
 * bad lines named by number, and its bounds; inline URLs first. */
static void test_warmup_list(void **state)
{
	(void)state;
	struct lv_diag d = {0};
	static const char list[] = "# hot pages\n/a\r\n\n   \n  /b?q=1  \nhttp://h.example:81/c\n#/not\n";
	struct lv_policy *p = load_warm_file("urls = /first\n", list, sizeof(list) - 1, &d, NULL, 0);
	assert_non_null(p);
	assert_int_equal(p->warmup.list.n, 4);
	static const char *const want[][2] = {{"", "/first"}, {"", "/a"}, {"", "/b?q=1"}, {"h.example:81", "/c"}};
	size_t pos = 0;
	const char *auth, *target;
	for (size_t i = 0; i < N(want); i++) {
		assert_true(warmup_list_next(&p->warmup.list, &pos, &auth, &target));
		assert_string_equal(auth, want[i][0]);
		assert_string_equal(target, want[i][1]);
	}
	assert_false(warmup_list_next(&p->warmup.list, &pos, &auth, &target));
	policy_unref(p);

	/* a bad line: the file, its line number, why */
	char lpath[1024], expect[1200];
	assert_null(load_warm_file("\n", "/ok\n\n/bad line\n", 15, &d, lpath, sizeof(lpath)));
	assert_int_equal(d.n, 1);
	snprintf(expect, sizeof(expect), "p.ini:3: [warmup] urls_file: %s:3: URL holds a blank or a control character",
	         lpath);
	assert_string_equal(d.lines[0], expect);
	diag_free(&d);

	/* an empty file is an empty list */
	p = load_warm_file("", "", 0, &d, NULL, 0);
	assert_non_null(p);
	assert_int_equal(p->warmup.list.n, 0);
	policy_unref(p);

	/* 10000 URLs, then one more; and a file over 1 MiB */
	size_t cap = LV_WARM_LIST_MAX * 8 + LV_WARM_LIST_FILE_MAX + 16;
	char *big = malloc(cap);
	size_t o = 0;
	for (unsigned i = 0; i < LV_WARM_LIST_MAX; i++)
		o += (size_t)snprintf(big + o, cap - o, "/%u\n", i);
	p = load_warm_file("", big, o, &d, NULL, 0);
	assert_non_null(p);
	assert_int_equal(p->warmup.list.n, LV_WARM_LIST_MAX);
	policy_unref(p);
	assert_null(load_warm_file("urls = /one-more\n", big, o, &d, NULL, 0));
	assert_non_null(strstr(d.lines[0], ":10000: too many URLs (max 10000)"));
	diag_free(&d);
	memset(big, '#', LV_WARM_LIST_FILE_MAX + 1);
	assert_null(load_warm_file("", big, LV_WARM_LIST_FILE_MAX + 1, &d, NULL, 0));
	free(big);
	assert_non_null(strstr(d.lines[0], "is larger than 1 MiB"));
	diag_free(&d);

	/* a target at the bound, and one past it */
	char *tgt = malloc(LV_WARM_TARGET_MAX + 2);
	struct lv_warm_list l = {0};
	unsigned at = 0;
	char err[128];
	memset(tgt, 'a', LV_WARM_TARGET_MAX + 1);
	tgt[0] = '/';
	assert_int_equal(warmup_list_parse(tgt, LV_WARM_TARGET_MAX, false, &l, &at, err, sizeof(err)), LV_OK);
	assert_int_equal(warmup_list_parse(tgt, LV_WARM_TARGET_MAX + 1, false, &l, &at, err, sizeof(err)), LV_ERR);
	assert_string_equal(err, "URL too long (max 8192 bytes)");
	assert_int_equal(at, 1);
	assert_int_equal(l.n, 1);
	free(l.data);
	free(tgt);
}

/* Every row of the key table is sound: defaults and bounds parse with the
 * key's own parser, defaults lie within bounds, names are unique. */
static void test_key_table(void **state)
{
	(void)state;
	size_t n;
	const struct keys_def *keys = keys_table(&n);
	struct lv_policy *pol = calloc(1, sizeof(*pol));
	struct lv_route *route = calloc(1, sizeof(*route));
	char err[KEYS_ERR_MAX];

	assert_true(n > 0);
	for (size_t i = 0; i < n; i++) {
		const struct keys_def *k = &keys[i];
		const struct keys_section *s = keys_section_find(k->section);
		void *base = s != NULL && s->named ? (void *)route : (void *)pol;
		if (s == NULL)
			fail_msg("[%s] %s: no such section", k->section, k->name);
		if (k->doc == NULL || strlen(k->doc) < 10)
			fail_msg("[%s] %s: no documentation", k->section, k->name);
		for (size_t j = 0; j < i; j++)
			if (strcmp(keys[j].section, k->section) == 0 && strcmp(keys[j].name, k->name) == 0)
				fail_msg("[%s] %s: listed twice", k->section, k->name);
		if (s->named && !k->reload)
			fail_msg("[%s] %s: keys of named sections must be reloadable", k->section, k->name);
		if (k->def != NULL && keys_set(k, base, k->def, err, sizeof(err)) != LV_OK)
			fail_msg("[%s] %s: default \"%s\": %s", k->section, k->name, k->def, err);
		if (k->min != NULL && keys_set(k, base, k->min, err, sizeof(err)) != LV_OK)
			fail_msg("[%s] %s: min \"%s\": %s", k->section, k->name, k->min, err);
		if (k->max != NULL && keys_set(k, base, k->max, err, sizeof(err)) != LV_OK)
			fail_msg("[%s] %s: max \"%s\": %s", k->section, k->name, k->max, err);
		if (k->def == NULL && k->one_of == 0)
			fail_msg("[%s] %s: neither a default nor required", k->section, k->name);
		if (strchr(k->doc, '\n') != NULL)
			fail_msg("[%s] %s: doc must be one line", k->section, k->name);
	}
	free(pol);
	free(route);

	/* Section names are unique too. */
	size_t ns;
	const struct keys_section *secs = keys_sections(&ns);
	for (size_t i = 0; i < ns; i++)
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(secs[i].name, secs[j].name);
}

static char *read_all(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		fail_msg("%s: %s", path, strerror(errno));
	char *buf = malloc(1 << 20);
	size_t n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* policy/README.md carries the generated key reference: every heading and
 * row of policy_keys_markdown() must appear in it, exactly. Regenerate with
 * `build/tests/test_policy --keys-markdown`. */
static void test_readme_lists_every_key(void **state)
{
	(void)state;
	char *readme = read_all(LEVEE_SOURCE_DIR "/policy/README.md");
	char *md = NULL;
	size_t mdlen = 0;
	FILE *out = open_memstream(&md, &mdlen);
	policy_keys_markdown(out);
	fclose(out);

	size_t rows = 0, stale = 0;
	for (char *line = strtok(md, "\n"); line != NULL; line = strtok(NULL, "\n")) {
		if (strncmp(line, "| `", 3) != 0 && strncmp(line, "### [", 5) != 0)
			continue;
		rows++;
		if (strstr(readme, line) == NULL) {
			print_error("policy/README.md lacks or has a stale: %s\n", line);
			stale++;
		}
	}
	size_t nkeys;
	keys_table(&nkeys);
	size_t nsecs;
	keys_sections(&nsecs);
	assert_int_equal(rows, nkeys + nsecs);
	if (stale > 0)
		fail_msg("%zu lines of policy/README.md are out of date; regenerate them with "
		         "test_policy --keys-markdown",
		         stale);
	free(md);
	free(readme);
}

/* The examples load, and complete.ini really names every key. */
static void test_examples(void **state)
{
	(void)state;
	struct lv_policy *p = NULL;
	struct lv_diag d = {0};
	const char *minimal = LEVEE_SOURCE_DIR "/policy/examples/minimal.ini";
	const char *complete = LEVEE_SOURCE_DIR "/policy/examples/complete.ini";

	unsetenv("SERVICE_NAME");
	unsetenv("UPSTREAM");
	for (int pass = 0; pass < 2; pass++) {
		int rc = policy_load_file(minimal, NULL, &p, &d);
		const char *none[] = {NULL};
		expect_errors(minimal, rc, &d, none);
		assert_int_equal(p->upstream.port, pass ? 9999 : 8080);
		policy_unref(p);

		rc = policy_load_file(complete, NULL, &p, &d);
		expect_errors(complete, rc, &d, none);
		/* the examples are what people copy: not a warning in them */
		for (size_t w = 0; w < d.nwarn; w++)
			fail_msg("%s warns: %s", complete, d.warnings[w]);
		assert_string_equal(p->service, pass ? "shop" : "demo");
		assert_int_equal(p->upstream.port, pass ? 9999 : 8080);
		assert_int_equal(p->nroutes, 2);
		policy_unref(p);

		setenv("SERVICE_NAME", "shop", 1);
		setenv("UPSTREAM", "10.0.0.9:9999", 1);
	}
	diag_free(&d);
	unsetenv("SERVICE_NAME");
	unsetenv("UPSTREAM");

	char *text = read_all(complete);
	size_t n;
	const struct keys_def *keys = keys_table(&n);
	for (size_t i = 0; i < n; i++) {
		char needle[128];
		snprintf(needle, sizeof(needle), "\n%s = ", keys[i].name);
		if (strstr(text, needle) == NULL)
			fail_msg("complete.ini does not set [%s] %s", keys[i].section, keys[i].name);
	}
	free(text);
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--keys-markdown") == 0) {
		policy_keys_markdown(stdout);
		return 0;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_load_table),
		cmocka_unit_test(test_warn_table),
		cmocka_unit_test(test_load_limits),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_overrides),
		cmocka_unit_test(test_keep_static),
		cmocka_unit_test(test_refcount),
		cmocka_unit_test(test_failure_contract),
		cmocka_unit_test(test_load_file),
		cmocka_unit_test(test_warmup_list),
		cmocka_unit_test(test_key_table),
		cmocka_unit_test(test_readme_lists_every_key),
		cmocka_unit_test(test_examples),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
