"""One outcome per request (proxy/outcome.h): every way a request ends is
recorded once, in the access log's "outcome" and in
levee_request_outcomes_total, so that breakers and tiers can tell the
upstream failing (and how) from levee refusing, the client leaving and the
cache answering."""
import socket
import time

from harness import cache_status_core, HttpConn, access_lines, build_request, free_port, metric_sum, once, wait_until

WAIT = 5


access = access_lines


def one(lv, target):
    """The one access log line for `target`, once it is written."""
    wait_until(lambda: len(access(lv, target)) >= 1, WAIT, msg="logged: " + target)
    lines = access(lv, target)
    assert len(lines) == 1, lines
    return lines[0]


def get(lv, target, headers=()):
    return once(lv.port, "GET", target, headers)


def test_each_outcome_once(levee_factory, origin):
    lv = levee_factory({
        "upstream": {"response_timeout": "300ms"},
        'bulkhead "b"': {"max_concurrent": "1", "max_queue": "0"},
        'route "cached"': {"prefix": "/bytes", "cache_ttl": "60s"},
        'route "hang"': {"prefix": "/hang", "bulkhead": "b"},
        'route "rest"': {"prefix": "/"},
    })
    cases = []

    assert get(lv, "/status/503").status == 503
    cases.append(("/status/503", "upstream", 503))          # a 5xx is an answer: the reader judges it
    assert get(lv, "/bytes?n=10").status == 200
    cases.append(("/bytes?n=10", None, 200))                # the miss: upstream, then the hit: cache
    assert get(lv, "/drop?after=10&cl=100").status == 200   # cut mid-body: the client sees it short
    cases.append(("/drop?after=10&cl=100", "upstream-truncated", 200))
    assert get(lv, "/drop?before=1").status == 502
    cases.append(("/drop?before=1", "upstream-reset", 502))
    assert get(lv, "/garbage").status == 502
    cases.append(("/garbage", "upstream-bad", 502))

    # the bulkhead's one slot: a hung request times out (504) and keeps it
    # while its late answer is awaited; the next one is refused
    assert get(lv, "/hang?a=1").status == 504
    cases.append(("/hang?a=1", "upstream-timeout", 504))
    assert get(lv, "/hang?a=2").status == 503
    cases.append(("/hang?a=2", "refused", 503))

    # a request levee takes and then refuses for what the client sent (a
    # head that does not even parse never becomes a request: it is counted
    # in levee_rejected_requests_total alone)
    c = HttpConn(lv.port)
    c.send(b"POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: 100000000000\r\n\r\n")
    assert c.read_response().status == 413
    c.close()
    cases.append(("/big", "client-bad", 413))


    for target, outcome, status in cases:
        if target == "/bytes?n=10":
            continue
        d = one(lv, target)
        assert (d["outcome"], d["status"]) == (outcome, status), d

    # the client leaves while the upstream works on its request (on a levee
    # whose response_timeout cannot fire first, however slow the machine)
    patient = levee_factory()
    c = HttpConn(patient.port)
    c.send(build_request("GET", "/slow?head_ms=2000"))
    wait_until(lambda: any(e.get("target") == "/slow?head_ms=2000" for e in origin.requests(0)), WAIT,
               msg="the request reached the origin")
    c.close()
    d = one(patient, "/slow?head_ms=2000")
    assert (d["outcome"], d["status"]) == ("client-gone", 499), d
    assert metric_sum(patient.metrics(), "levee_request_outcomes_total", outcome="client_gone") == 1

    assert get(lv, "/bytes?n=10").status == 200
    wait_until(lambda: len(access(lv, "/bytes?n=10")) == 2, WAIT, msg="hit logged")
    assert [d["outcome"] for d in access(lv, "/bytes?n=10")] == ["upstream", "cache"]

    m = lv.metrics()
    for outcome, n in {"upstream": 2, "cache": 1, "upstream-truncated": 1, "upstream-reset": 1,
                       "upstream-bad": 1, "upstream-timeout": 1, "refused": 1, "client-gone": 0,
                       "client-bad": 1}.items():
        # the access log's token, snake_case in the metrics (docs/metrics.md)
        assert metric_sum(m, "levee_request_outcomes_total", outcome=outcome.replace("-", "_")) == n, (outcome, m)


def test_connect_failure_and_stale_if_error_keep_the_upstream_failure(levee_factory, origin):
    """A stale answer served because the upstream failed is the upstream's
    failure all the same: that is what a breaker must count."""
    lv = levee_factory({'route "c"': {"prefix": "/", "cache_ttl": "origin", "stale_if_error": "60s"}})
    name = "oc-%d" % origin.start_mark
    assert get(lv, "/flaky/" + name).status == 200
    origin._get("/__fail?name=%s&mode=503" % name)
    time.sleep(1.1)  # the entry's lifetime is 1 s; nothing to poll for but time itself
    r = get(lv, "/flaky/" + name)
    assert r.status == 200 and cache_status_core(r.header("Cache-Status")) == "levee; hit; detail=stale-if-error"
    wait_until(lambda: len(access(lv, "/flaky/" + name)) == 2, WAIT, msg="logged")
    lines = access(lv, "/flaky/" + name)
    assert [d["outcome"] for d in lines] == ["upstream", "upstream"], lines  # a 503 answer, served stale
    origin._get("/__fail?name=%s&mode=drop" % name)
    assert get(lv, "/flaky/" + name).status == 200
    wait_until(lambda: len(access(lv, "/flaky/" + name)) == 3, WAIT, msg="logged")
    assert access(lv, "/flaky/" + name)[2]["outcome"] in ("upstream-reset", "upstream-bad")
    origin._get("/__fail?name=%s&mode=ok" % name)

    # nothing listens: a connect failure
    dead = levee_factory(upstream="127.0.0.1:%d" % free_port(), wait="healthz")
    assert get(dead, "/x").status == 502
    assert one(dead, "/x")["outcome"] == "upstream-connect"
