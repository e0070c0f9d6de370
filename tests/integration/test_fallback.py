"""Per-route fallbacks (docs/protection.md, "Fallbacks"): when the breaker
is open, the bulkhead refuses, or the upstream times out or refuses
connections, the route's chain answers instead of levee's own error:
`stale` from the stored copy (L1, or L2 on a replica that never saw it),
`static` from the policy, `status` as levee's refusal. Every such answer
carries X-Levee-Reason CAUSE; fallback=KIND and is counted per route,
reason and fallback (levee_fallbacks_total{route,reason,fallback}).

The origin's /flaky/NAME answers "v<N>" with max-age=1 and an ETag, or
hangs, as /__fail says; each test uses its own NAME.
"""
import time

import pytest

from harness import cache_status_core, HttpConn, WAIT_SCALE, access_lines, free_port, metric_sum, once, wait_until
from redis_server import REDIS

WAIT = 5 * WAIT_SCALE
BODY = '{"error":"unavailable"}'


def set_origin(origin, name, mode="ok", ms=0):
    origin._get("/__fail?name=%s&mode=%s&ms=%d" % (name, mode, ms))


def route(**kw):
    rt = {"prefix": "/flaky/", "cache_ttl": "origin", "fallback": "stale, static",
          "fallback_content_type": "application/json", "fallback_body": BODY}
    rt.update(kw)
    return {k: v for k, v in rt.items() if v is not None}


def policy(rt=None, extra=None):
    sections = {
        "levee": {"workers": "2"},
        "upstream": {"response_timeout": "2s", "connect_timeout": "300ms"},
        'breaker "b"': {"min_requests": "5", "open_for": "30s"},
        'route "flaky"': rt or route(breaker="b"),
    }
    sections.update(extra or {})
    return sections


def fill_and_expire(lv, origin, name):
    """Stores /flaky/NAME ("v1", max-age=1), then lets it go stale: the
    wait is time itself, the entry's lifetime."""
    set_origin(origin, name, "ok")
    r = once(lv.port, "GET", "/flaky/" + name)
    assert r.status == 200 and r.body == b"v1", r
    assert "fwd=miss" in cache_status_core(r.header("Cache-Status")), r.headers
    time.sleep(1.2)


def fallbacks(lv, **labels):
    return metric_sum(lv.metrics(), "levee_fallbacks_total", **labels) or 0


def counted(lv, n, **labels):
    """levee_fallbacks_total{labels} reaches n: a stale answer is counted
    just after the client has it, so a test may read /metrics first."""
    wait_until(lambda: fallbacks(lv, **labels) >= n, WAIT, msg="levee_fallbacks_total%r >= %d" % (labels, n))
    assert fallbacks(lv, **labels) == n, (labels, fallbacks(lv, **labels))


def logged(lv, target, n=1):
    """The access log lines for `target`, once there are `n`."""
    return wait_until(lambda: len(access_lines(lv, target)) >= n and access_lines(lv, target), WAIT,
                      msg="access log for " + target)


def is_stale_fallback(r, reason):
    return (r.status == 200 and r.body == b"v1" and cache_status_core(r.header("Cache-Status")) == "levee; hit; detail=fallback"
            and r.header("X-Levee-Reason") == reason and int(r.header("Age")) >= 1)


def test_stale_from_l1_when_the_breaker_is_open_then_static(levee_factory, origin):
    name = "fb-open-%d" % origin.start_mark
    lv = levee_factory(policy())
    fill_and_expire(lv, origin, name)
    r = lv.admin_request("POST", "/breaker?name=b&force=open&for=60s")
    assert r.status == 200, r.body
    mark = origin.mark()
    r = once(lv.port, "GET", "/flaky/" + name)
    assert is_stale_fallback(r, "breaker-open; breaker=b; fallback=stale"), r
    assert r.header("ETag") == '"v1"', r.headers  # the stored response, as stored
    # nothing stored for this one: the chain falls through to static
    r = once(lv.port, "GET", "/flaky/%s-none" % name)
    assert r.status == 503, r
    assert r.header("X-Levee-Reason") == "breaker-open; breaker=b; fallback=static", r.headers
    assert r.header("Content-Type") == "application/json", r.headers
    assert r.body == BODY.encode(), r.body
    assert int(r.header("Retry-After")) >= 1, r.headers  # the breaker's own (when it will probe)
    assert origin.requests(mark, path="/flaky/" + name) == []  # the upstream was not asked
    counted(lv, 1, route="flaky", reason="breaker_open", fallback="stale")
    counted(lv, 1, route="flaky", reason="breaker_open", fallback="static")
    # the outcome stays levee's refusal; the log names the fallback
    line = logged(lv, "/flaky/" + name, 2)[-1]
    assert (line["status"], line["outcome"], line["reason"], line["fallback"]) == (
        200, "refused", "breaker-open", "stale"), line
    line = logged(lv, "/flaky/%s-none" % name)[-1]
    assert (line["status"], line["reason"], line["fallback"]) == (503, "breaker-open", "static"), line


def test_stale_when_the_upstream_times_out_and_the_breaker_counts_it(levee_factory, origin):
    name = "fb-timeout-%d" % origin.start_mark
    sections = policy(route(breaker="b", fallback="stale"))
    sections["upstream"]["response_timeout"] = "300ms"
    lv = levee_factory(sections)
    fill_and_expire(lv, origin, name)
    set_origin(origin, name, "hang")
    set_origin(origin, name + "-none", "hang")
    try:
        r = once(lv.port, "GET", "/flaky/" + name)
        assert is_stale_fallback(r, "upstream-timeout; fallback=stale"), r
        # a chain of stale alone, with nothing stored: levee's own error
        r = once(lv.port, "GET", "/flaky/%s-none" % name)
        assert r.status == 504 and r.header("X-Levee-Reason") == "upstream-timeout", r
    finally:
        set_origin(origin, name, "ok")
        set_origin(origin, name + "-none", "ok")
    counted(lv, 1, route="flaky", reason="upstream_timeout", fallback="stale")
    # the breaker counted two timeouts, not a cache answer (at the
    # request's end, just after its client had the answer)
    def window():
        return {b["name"]: b for b in lv.status()["breakers"]}["b"]["window"]
    wait_until(lambda: window()["failures"] >= 2, WAIT, msg="the breaker counts both timeouts")
    assert window()["failures"] == 2 and window()["calls"] == 3, window()  # the fill, then two timeouts
    line = logged(lv, "/flaky/" + name, 2)[-1]
    assert (line["outcome"], line["fallback"]) == ("upstream-timeout", "stale"), line


def test_stale_when_the_upstream_refuses_connections(levee_factory, origin):
    """The same levee, reloaded onto an upstream where nothing listens: its
    L1 still holds the entry."""
    name = "fb-connect-%d" % origin.start_mark
    lv = levee_factory(policy(route()))
    fill_and_expire(lv, origin, name)
    sections = dict(lv.sections)
    sections["levee"] = dict(sections["levee"], upstream="127.0.0.1:%d" % free_port())
    lv.write_policy(sections=sections)
    r = lv.admin_request("POST", "/reload")
    assert r.status == 200, r.body
    r = once(lv.port, "GET", "/flaky/" + name)
    assert is_stale_fallback(r, "upstream-connect; fallback=stale"), r
    counted(lv, 1, route="flaky", reason="upstream_connect", fallback="stale")


@pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")
def test_stale_from_l2_on_a_replica_that_never_stored_it(levee_factory, origin, redis):
    """Replica A fills Redis; replica B, whose upstream refuses connections,
    has nothing in its L1 and falls back on the expired L2 record."""
    name = "fb-l2-%d" % origin.start_mark
    extra = {"redis": {"address": "127.0.0.1:%d" % redis.port}}
    a = levee_factory(policy(route(), extra))
    fill_and_expire(a, origin, name)
    b = levee_factory(policy(route(), extra), upstream="127.0.0.1:%d" % free_port(), wait="healthz")
    wait_until(lambda: (metric_sum(b.metrics(), "levee_redis_connections_ready") or 0) >= 1, WAIT,
               msg="replica B connected to Redis")
    r = wait_until(lambda: (lambda r: r if r.status == 200 else None)(once(b.port, "GET", "/flaky/" + name)),
                   WAIT, msg="replica B falls back on the L2 record")
    assert is_stale_fallback(r, "upstream-connect; fallback=stale"), r
    wait_until(lambda: fallbacks(b, route="flaky", reason="upstream_connect", fallback="stale") >= 1, WAIT, msg="fallback counted")
    # a key Redis does not have: static
    r = once(b.port, "GET", "/flaky/%s-none" % name)
    assert r.status == 503 and r.header("X-Levee-Reason") == "upstream-connect; fallback=static", r
    assert r.body == BODY.encode()


def test_status_when_the_bulkhead_is_full(levee_factory, origin):
    name = "fb-bh-%d" % origin.start_mark
    sections = policy(route(fallback="status", cache_ttl="off", bulkhead="one", refusal_status="429",
                            fallback_content_type=None, fallback_body=None),
                      {'bulkhead "one"': {"max_concurrent": "1", "max_queue": "0", "retry_after": "3s"}})
    sections["upstream"]["response_timeout"] = "30s"  # the slow one holds the slot, and answers
    lv = levee_factory(sections)
    set_origin(origin, name, "slow", ms=1500)
    try:
        slow = lv.conn(timeout=10 * WAIT_SCALE)
        slow.send(b"GET /flaky/" + name.encode() + b" HTTP/1.1\r\nHost: t\r\n\r\n")
        origin.wait_event(lambda e: e.get("event") == "request" and e.get("target") == "/flaky/" + name,
                          since=origin.start_mark, timeout=WAIT)
        c = HttpConn(lv.port)
        r = c.request("GET", "/flaky/" + name)
        assert r.status == 429, r
        assert r.header("X-Levee-Reason") == "bulkhead-full; bulkhead=one; fallback=status", r.headers
        assert r.header("Retry-After") == "3", r.headers
        # levee's refusal keeps the connection (a 429 is not the client's fault)
        r = c.request("GET", "/flaky/" + name)
        assert r.status == 429, r
        c.close()
        assert slow.read_response().status == 200
    finally:
        set_origin(origin, name, "ok")
    counted(lv, 2, route="flaky", reason="bulkhead_full", fallback="status")


def test_static_from_a_file_with_its_own_status_keeps_the_connection(levee_factory, origin, tmp_path):
    name = "fb-file-%d" % origin.start_mark
    page = tmp_path / "down.html"
    page.write_bytes(b"<h1>back soon</h1>\n" * 100)
    lv = levee_factory(policy(route(breaker="b", fallback="static", cache_ttl="off", fallback_body=None,
                                    fallback_file=str(page), fallback_status="200",
                                    fallback_content_type="text/html; charset=utf-8")))
    assert lv.admin_request("POST", "/breaker?name=b&force=open&for=60s").status == 200
    c = HttpConn(lv.port)
    for _ in range(2):  # one connection: a 200 fallback does not close it
        r = c.request("GET", "/flaky/" + name)
        assert r.status == 200, r
        assert r.body == page.read_bytes()
        assert r.header("Content-Type") == "text/html; charset=utf-8", r.headers
        assert r.header("X-Levee-Reason") == "breaker-open; breaker=b; fallback=static", r.headers
        assert r.header("Retry-After") is None, r.headers
        assert r.header("Connection") is None, r.headers
    c.close()
    counted(lv, 2, route="flaky", reason="breaker_open", fallback="static")


def test_a_bad_upstream_answer_is_not_replaced(levee_factory, origin):
    lv = levee_factory(policy(route(prefix="/garbage", fallback="static", cache_ttl="off")))
    r = once(lv.port, "GET", "/garbage?kind=junk")
    assert r.status == 502, r
    assert r.header("X-Levee-Reason") == "upstream-bad-response", r.headers
    assert r.body != BODY.encode()
    assert fallbacks(lv) == 0
    line = logged(lv, "/garbage?kind=junk")[-1]
    assert "fallback" not in line, line


def test_entries_are_kept_for_stale_fallback_max_and_no_longer(levee_factory, origin):
    """A fixed one-second lifetime and no validators: without the fallback
    the entry would leave the L1 as it expires. The waits are the entry's
    lifetime and its stale_fallback_max."""
    lv = levee_factory(policy(route(prefix="/bytes", cache_ttl="1s", breaker="b", stale_fallback_max="2s")))
    target = "/bytes?n=7&fb=%d" % origin.start_mark
    r = once(lv.port, "GET", target)
    assert r.status == 200 and r.header("ETag") is None and r.header("Last-Modified") is None, r
    t0 = time.monotonic()
    assert lv.admin_request("POST", "/breaker?name=b&force=open&for=60s").status == 200
    time.sleep(max(0, t0 + 1.5 - time.monotonic()))
    r = once(lv.port, "GET", target)
    assert r.status == 200 and cache_status_core(r.header("Cache-Status")) == "levee; hit; detail=fallback", r
    assert r.body_len == 7 and int(r.header("Age")) >= 1, r
    time.sleep(max(0, t0 + 4.0 - time.monotonic()))  # 3 s stale: past stale_fallback_max
    r = once(lv.port, "GET", target)
    assert r.status == 503 and r.header("X-Levee-Reason") == "breaker-open; breaker=b; fallback=static", r
