"""Bulkheads (docs/protection.md) in front of a fragile origin.

The origin (fragile_origin.py) is a legacy service with W=8 worker threads;
its /slow calls a dependency that the test switches to hang. The control
run without a bulkhead (test_bulkhead_control.py) shows /fast collapsing
to a few percent; here the same load runs with a bulkhead capping /slow.
"""
import json
import signal
import time

import load
from fragile import BASELINE_S, FAST_RATE, HANG_S, SLOW_RATE, TIMEOUT, W, hang_scenario
from fragile import fragile_factory  # noqa: F401  (fixture)
from harness import cache_status_core, WAIT_SCALE, hget, metric_sum, wait_until
import pytest

# measured under a load of its own: run alone, after the tests that run in parallel (tests/run)
pytestmark = pytest.mark.serial("measures latency and success rates under a load of its own")


def policy(**bulkhead):
    bh = {"max_concurrent": "2", "max_queue": "0", "queue_timeout": "50ms"}
    bh.update(bulkhead)
    return {
        "levee": {"workers": "2"},
        "upstream": {"connect_timeout": "5s", "response_timeout": "60s"},
        'bulkhead "slow"': bh,
        'route "slow"': {"prefix": "/slow", "bulkhead": "slow"},
        'route "fast"': {"prefix": "/fast"},
    }


def p99_bound(base):
    """Within 2x of the route's own baseline p99, with a floor of 20 ms for
    the scheduling noise of a Python load generator sharing 2 cores with
    levee and the origin (its own send lag reaches 10-20 ms at p99, and
    counts in these latencies, measured from each request's scheduled
    time)."""
    return max(2 * base.p99_ok, base.p99_ok + 0.020 * WAIT_SCALE)


def bh_metric(lv, name, **labels):
    return metric_sum(lv.metrics(), name, bulkhead="slow", **labels)


def bh_status(lv):
    return {b["name"]: b for b in lv.status()["bulkheads"]}["slow"]


def reload_with(lv, sections):
    """Writes `sections` over the levee's own addresses, and reloads."""
    merged = {k: dict(v) for k, v in lv.sections.items() if k in ("levee",)}
    for k, v in sections.items():
        merged.setdefault(k, {}).update(v)
    lv.write_policy(sections=merged)
    r = lv.admin_request("POST", "/reload")
    assert r.status == 200, r.body


def terminate_with_queued(lv, conns, queued):
    """SIGTERM: the `queued` requests are refused at their queue_timeout,
    the running ones cut at the drain timeout, and levee exits 0 (under
    ASan: without a leak)."""
    lv.expected_exit = True
    lv.signal(signal.SIGTERM)
    statuses = []
    for c in conns:
        try:
            statuses.append(c.read_response().status)
        except Exception:
            statuses.append(None)  # cut at the drain timeout
    assert statuses.count(503) == queued, statuses
    assert lv.wait_exit(10 * WAIT_SCALE) == 0


def start_slow(lv, n):
    """n /slow requests in flight (their answers are never read here)."""
    conns = []
    for _ in range(n):
        c = lv.conn(timeout=30)
        c.send(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
        conns.append(c)
    return conns


def test_bulkhead_keeps_fast_alive_behind_hung_slow(fragile_factory, levee_factory):
    """The control run's load, with /slow capped at 2: /fast keeps >= 99%
    success and its p99 stays near its own baseline, while /slow's excess
    is refused at once with 503, Retry-After and X-Levee-Reason."""
    fo = fragile_factory(workers=W)
    lv = levee_factory(policy(), upstream=fo.addr)

    base, fast, slow, st = hang_scenario(fo, lv.port)
    assert fast.success_rate >= 0.99, fast
    assert fast.p99_ok <= p99_bound(base), (base.p99_ok, fast.p99_ok)
    assert st["hung"] == 2, st  # exactly the bulkhead's slots reached the dependency
    refused = slow.status.get(503, 0)
    assert refused >= 0.9 * (slow.sent - 2), slow
    for s in slow.samples:
        h = s["headers"]
        assert s["status"] == 503
        assert hget(h, "x-levee-reason") == "bulkhead-full; bulkhead=slow", h
        assert hget(h, "retry-after") == "1", h
    # refusals are immediate (these latencies count from the scheduled send,
    # so they include the generator's own lag; test_queue_timeout_and_429
    # measures them alone)
    lat = sorted(lat for _, what, lat in slow.records if what == 503)
    p99 = lat[int(0.99 * (len(lat) - 1))]
    assert p99 < 0.050 * WAIT_SCALE, p99
    assert bh_metric(lv, "levee_bulkhead_rejected_total", reason="full") == refused
    assert metric_sum(lv.metrics(), "levee_request_outcomes_total", outcome="refused") >= refused
    fo.release()
    wait_until(lambda: bh_metric(lv, "levee_bulkhead_active") == 0, 10 * WAIT_SCALE, msg="slots back")


def test_queue_timeout_and_429(fragile_factory, levee_factory):
    """A queued request that gets no slot within queue_timeout is refused
    fast, with the route's 429, Retry-After from retry_after, and the
    reason naming the bulkhead; a queue that is full refuses at once."""
    fo = fragile_factory(workers=W)
    sections = policy(max_concurrent="1", max_queue="2", queue_timeout="5ms", retry_after="3s")
    sections['route "slow"']["refusal_status"] = "429"
    lv = levee_factory(sections, upstream=fo.addr)
    fo.hang()
    held = start_slow(lv, 1)
    fo.wait_hung(1)
    wait_until(lambda: bh_metric(lv, "levee_bulkhead_active") == 1, 5 * WAIT_SCALE, msg="slot taken")
    lats = []  # past queue_timeout: a timeout refusal cannot come before it
    c = lv.conn()
    for _ in range(200):
        t0 = time.monotonic()
        r = c.request("GET", "/slow")
        lats.append(time.monotonic() - t0 - 0.005)
        assert r.status == 429, r
        assert hget(r.headers, "x-levee-reason") == "bulkhead-timeout; bulkhead=slow"
        assert hget(r.headers, "retry-after") == "3"
    lats.sort()
    print("queue-timeout refusals, past queue_timeout (5ms): p50 %.2f ms, p99 %.2f ms"
          % (lats[100] * 1e3, lats[197] * 1e3))
    assert lats[int(0.99 * (len(lats) - 1))] < 0.010 * WAIT_SCALE, lats[-5:]
    assert bh_metric(lv, "levee_bulkhead_rejected_total", reason="timeout") == 200
    # the queue-wait histogram saw each of them wait about queue_timeout
    assert bh_metric(lv, "levee_bulkhead_queue_wait_seconds_count") == 200

    # a full queue: two waiters fill it (queue_timeout long enough to hold)
    lv2 = levee_factory(policy(max_concurrent="1", max_queue="2", queue_timeout="10s"), upstream=fo.addr)
    held2 = start_slow(lv2, 3)  # one runs, two wait
    wait_until(lambda: bh_metric(lv2, "levee_bulkhead_queued") == 2, 5 * WAIT_SCALE, msg="queue full")
    c2 = lv2.conn()
    lats = []
    for _ in range(200):
        t0 = time.monotonic()
        r = c2.request("GET", "/slow")
        lats.append(time.monotonic() - t0)
        assert r.status == 503 and hget(r.headers, "x-levee-reason") == "bulkhead-full; bulkhead=slow"
        assert hget(r.headers, "retry-after") == "1"
    lats.sort()
    print("queue-full refusals: p50 %.2f ms, p99 %.2f ms" % (lats[100] * 1e3, lats[197] * 1e3))
    assert lats[int(0.99 * (len(lats) - 1))] < 0.010 * WAIT_SCALE, lats[-5:]
    s = bh_status(lv2)
    assert (s["active"], s["queued"], s["max_concurrent"], s["max_queue"]) == (1, 2, 1, 2), s
    fo.release()
    for c in held + held2:
        c.close()
    wait_until(lambda: bh_metric(lv2, "levee_bulkhead_active") == 0 and bh_metric(lv2, "levee_bulkhead_queued") == 0,
               10 * WAIT_SCALE, msg="all done")


def test_slot_held_until_the_service_finishes(fragile_factory, levee_factory):
    """levee times out for its client, but the service is still working:
    the slot stays held (the third request is refused) until the late
    answer arrives, which is drained; the connection is then reused."""
    fo = fragile_factory(workers=W)
    sections = policy(max_concurrent="2", abandon_after="30s")
    sections["upstream"]["response_timeout"] = "300ms"
    sections["levee"]["workers"] = "1"  # one upstream pool, to see the drained connections reused
    lv = levee_factory(sections, upstream=fo.addr)
    assert lv.get("/fast").status == 200
    fo.hang()
    for r in [lv.get("/slow", timeout=5), lv.get("/slow", timeout=5)]:
        assert r.status == 504, r
    s = bh_status(lv)
    assert (s["active"], s["draining"]) == (2, 2), s
    assert fo.stats()["hung"] == 2
    r = lv.get("/slow")
    assert r.status == 503 and hget(r.headers, "x-levee-reason").startswith("bulkhead-full")
    assert fo.stats()["hung"] == 2  # the service never saw more than the bulkhead's 2
    opened = metric_sum(lv.metrics(), "levee_upstream_connections_opened_total")
    fo.release()
    wait_until(lambda: bh_status(lv)["active"] == 0, 10 * WAIT_SCALE, msg="late answers drained")
    assert bh_metric(lv, "levee_bulkhead_drained_total", result="complete") == 2
    assert bh_metric(lv, "levee_bulkhead_draining") == 0
    # the drained connections went back to the pool: new requests reuse them
    for _ in range(4):
        assert lv.get("/slow").status == 200
    assert metric_sum(lv.metrics(), "levee_upstream_connections_opened_total") == opened
    out = [json.loads(l) for l in lv.stdout().splitlines() if l.startswith("{") and '"status"' in l]
    timeouts = [l for l in out if l.get("target") == "/slow" and l["status"] == 504]
    assert len(timeouts) == 2 and all(l["outcome"] == "upstream-timeout" for l in timeouts), timeouts


def test_abandon_after_frees_the_slot(fragile_factory, levee_factory):
    """A late answer that never comes: after abandon_after the connection is
    closed and the slot freed (counted as abandoned)."""
    fo = fragile_factory(workers=W)
    sections = policy(max_concurrent="1", abandon_after="400ms")
    sections["upstream"]["response_timeout"] = "200ms"
    lv = levee_factory(sections, upstream=fo.addr)
    fo.hang()
    t0 = time.monotonic()
    assert lv.get("/slow", timeout=5).status == 504
    assert bh_status(lv)["active"] == 1
    wait_until(lambda: bh_status(lv)["active"] == 0, 5 * WAIT_SCALE, msg="abandoned")
    assert time.monotonic() - t0 >= 0.55
    assert bh_metric(lv, "levee_bulkhead_drained_total", result="abandoned") == 1
    fo.release()


def test_client_leaving_keeps_the_slot(fragile_factory, levee_factory):
    """A client that leaves does not free the slot while its request still
    occupies the service."""
    fo = fragile_factory(workers=W)
    lv = levee_factory(policy(max_concurrent="1"), upstream=fo.addr)
    fo.hang()
    (c,) = start_slow(lv, 1)
    fo.wait_hung(1)
    c.close()
    wait_until(lambda: bh_status(lv)["draining"] == 1, 5 * WAIT_SCALE, msg="kept")
    assert lv.get("/slow").status == 503
    fo.release()
    wait_until(lambda: bh_status(lv)["active"] == 0, 5 * WAIT_SCALE, msg="drained")
    assert lv.get("/slow").status == 200


def test_reload_resizes_with_requests_in_flight(fragile_factory, levee_factory):
    """A reload that keeps the bulkhead's name keeps its accounting: the 2
    slots in use stay counted, the new limit lets 2 more in, none is lost
    or counted twice."""
    fo = fragile_factory(workers=W)
    lv = levee_factory(policy(max_concurrent="2", max_queue="4", queue_timeout="20s"), upstream=fo.addr)
    fo.hang()
    conns = start_slow(lv, 4)  # 2 run, 2 wait
    fo.wait_hung(2)
    wait_until(lambda: bh_status(lv)["queued"] == 2, 5 * WAIT_SCALE, msg="2 queued")
    reload_with(lv, policy(max_concurrent="4", max_queue="4", queue_timeout="20s"))
    fo.wait_hung(4)  # the two waiters got the new slots
    s = bh_status(lv)
    assert (s["active"], s["queued"], s["max_concurrent"]) == (4, 0, 4), s
    # shrink below what is in use: nothing is cut, new requests wait
    reload_with(lv, policy(max_concurrent="1", max_queue="0", queue_timeout="20s"))
    assert lv.get("/slow").status == 503
    assert bh_status(lv)["active"] == 4
    fo.release()
    for c in conns:
        r = c.read_response()
        assert r.status == 200, r
    wait_until(lambda: bh_status(lv)["active"] == 0, 5 * WAIT_SCALE, msg="all released")
    s = bh_status(lv)
    assert s["acquired"] == 4 and s["queued"] == 0, s


def test_drain_with_queued_and_running(fragile_factory, levee_factory):
    """SIGTERM with requests running in the bulkhead and others queued: the
    queued ones are answered (a slot, or a refusal), the running ones are
    cut at the drain timeout, and levee exits 0 (leak-free under ASan)."""
    fo = fragile_factory(workers=W)
    sections = policy(max_concurrent="2", max_queue="4", queue_timeout="500ms")
    sections["levee"]["drain_timeout"] = "1s"
    lv = levee_factory(sections, upstream=fo.addr)
    fo.hang()
    conns = start_slow(lv, 5)
    fo.wait_hung(2)
    wait_until(lambda: bh_status(lv)["queued"] == 3, 5 * WAIT_SCALE, msg="3 queued")
    terminate_with_queued(lv, conns, 3)
    fo.release()


# ---- isolation = thread -------------------------------------------------------

def thread_policy(**bulkhead):
    sections = policy(isolation="thread", threads="2", **bulkhead)
    sections["levee"]["workers"] = "1"
    sections['route "cached"'] = {"prefix": "/fast/cached", "cache_ttl": "60s"}
    # the cached route must come first: routes match in file order
    return {k: sections[k] for k in ["levee", "upstream", 'bulkhead "slow"', 'route "cached"', 'route "slow"',
                                     'route "fast"']}


def test_thread_isolation_keeps_the_listener_free(fragile_factory, levee_factory):
    """The /slow exchanges run on the bulkhead's 2 threads: with its
    dependency hung and 6 slots stuck, cache hits and /fast on the one
    listener worker keep their success and latency."""
    fo = fragile_factory(workers=W)
    lv = levee_factory(thread_policy(max_concurrent="6"), upstream=fo.addr)
    assert lv.get("/fast/cached").status == 200  # stored
    targets = [load.Target(lv.port, "/fast", FAST_RATE), load.Target(lv.port, "/fast/cached", FAST_RATE)]
    base = load.run(targets, BASELINE_S, timeout=TIMEOUT)
    assert all(r.success_rate == 1.0 for r in base.values()), base

    fo.reset()
    fo.hang()
    res = load.run(targets + [load.Target(lv.port, "/slow", SLOW_RATE)], HANG_S, timeout=TIMEOUT)
    for name in ("/fast", "/fast/cached"):
        r, b = res[name], base[name]
        print("hang:", r.summary(), "baseline p99 %.1f ms" % (b.p99_ok * 1e3))
        assert r.success_rate >= 0.99, r
        assert r.p99_ok <= p99_bound(b), (name, b.p99_ok, r.p99_ok)
    slow = res["/slow"]
    assert slow.ok == 0 and slow.status.get(503, 0) >= 0.9 * (slow.sent - 6), slow
    assert fo.stats()["hung"] == 6
    s = bh_status(lv)
    assert (s["isolation"], s["threads"], s["active"]) == ("thread", 2, 6), s
    assert s["handoffs"] == 6, s  # only requests that got a slot leave the listener
    st = lv.status()
    assert (st["workers"], st["bulkhead_threads"]) == (1, 2), st
    fo.release()
    wait_until(lambda: bh_status(lv)["active"] == 0, 10 * WAIT_SCALE, msg="slots back")


def test_thread_isolation_round_trip_on_one_connection(fragile_factory, levee_factory):
    """A keep-alive connection goes to a bulkhead thread for /slow and comes
    back for the next request: pipelined requests alternate between the two
    and their answers come in order."""
    fo = fragile_factory(workers=W)
    lv = levee_factory(thread_policy(max_concurrent="4"), upstream=fo.addr)
    c = lv.conn()
    for _ in range(3):
        assert c.request("GET", "/slow").status == 200
        r = c.request("GET", "/fast/cached")
        assert r.status == 200
    assert cache_status_core(r.header("Cache-Status")).startswith("levee; hit")
    reqs = b"".join(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % p
                    for p in [b"/slow", b"/fast/cached", b"/slow", b"/fast", b"/slow"])
    c.send(reqs)
    bodies = [c.read_response().body for _ in range(5)]
    assert bodies[1] == bodies[3] == b"fast\n", bodies
    assert all(b for b in bodies), bodies
    assert bh_status(lv)["handoffs"] == 6
    assert metric_sum(lv.metrics(), "levee_request_outcomes_total", outcome="upstream") >= 7


def test_thread_isolation_request_bodies(levee_factory, origin):
    """Request bodies that arrive before, during and after the hand-off reach
    the upstream whole, in both framings, across buffer sizes."""
    lv = levee_factory({
        "levee": {"workers": "1"},
        'bulkhead "up"': {"isolation": "thread", "threads": "2", "max_concurrent": "4"},
        'route "sink"': {"prefix": "/sink", "bulkhead": "up"},
    })
    import hashlib
    from harness import chunked, pattern_bytes
    c = lv.conn()
    for n in (0, 1, 8191, 65536, 300000, 1048576):
        body = pattern_bytes(0, n)
        for framing in ("cl", "chunked"):
            if framing == "cl":
                r = c.request("POST", "/sink", headers=[("Content-Length", str(n))], body=body)
            else:
                c.send(b"POST /sink HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" +
                       chunked(body, size=16384))
                r = c.read_response()
            assert r.status == 200, (n, framing, r)
            got = json.loads(r.body)
            assert (got["len"], got["sha256"]) == (n, hashlib.sha256(body).hexdigest()), (n, framing, got)
    assert {b["name"]: b for b in lv.status()["bulkheads"]}["up"]["handoffs"] == 12


def test_thread_isolation_client_leaves_and_drain(fragile_factory, levee_factory):
    """A client that leaves while its exchange runs on a bulkhead thread
    keeps the slot until the service answers; SIGTERM with exchanges
    running there and requests queued ends cleanly (exit 0, no leak under
    ASan)."""
    fo = fragile_factory(workers=W)
    sections = thread_policy(max_concurrent="2", max_queue="4", queue_timeout="500ms")
    sections["levee"]["drain_timeout"] = "1s"
    lv = levee_factory(sections, upstream=fo.addr)
    fo.hang()
    (gone,) = start_slow(lv, 1)
    fo.wait_hung(1)
    gone.close()
    wait_until(lambda: bh_status(lv)["draining"] == 1, 5 * WAIT_SCALE, msg="kept on the thread")
    conns = start_slow(lv, 4)  # one gets the last slot, three wait
    fo.wait_hung(2)
    wait_until(lambda: bh_status(lv)["queued"] == 3, 5 * WAIT_SCALE, msg="queued")
    terminate_with_queued(lv, conns, 3)
    fo.release()


def test_reload_to_thread_isolation_and_more_threads(fragile_factory, levee_factory):
    """A reload turns a semaphore bulkhead into a thread one and raises its
    threads; requests in flight keep their slots throughout."""
    fo = fragile_factory(workers=W)
    lv = levee_factory(policy(max_concurrent="3", max_queue="0"), upstream=fo.addr)
    fo.hang()
    held = start_slow(lv, 1)
    fo.wait_hung(1)
    assert bh_status(lv)["isolation"] == "semaphore"
    reload_with(lv, thread_policy(max_concurrent="3", max_queue="0"))
    s = bh_status(lv)
    assert (s["isolation"], s["threads"], s["active"]) == ("thread", 2, 1), s
    held += start_slow(lv, 1)
    fo.wait_hung(2)
    sections = thread_policy(max_concurrent="3", max_queue="0")
    sections['bulkhead "slow"']["threads"] = "3"
    reload_with(lv, sections)
    assert lv.status()["bulkhead_threads"] == 3
    held += start_slow(lv, 1)
    fo.wait_hung(3)
    assert lv.get("/slow").status == 503
    fo.release()
    for c in held:
        assert c.read_response().status == 200
    wait_until(lambda: bh_status(lv)["active"] == 0, 5 * WAIT_SCALE, msg="released")
    assert bh_status(lv)["handoffs"] == 2


# ---- the cache in front of a bulkhead ------------------------------------------

def cached_policy(isolation="semaphore"):
    sections = policy(max_concurrent="2", isolation=isolation)
    if isolation == "thread":
        sections['bulkhead "slow"']["threads"] = "1"
    sections["levee"]["workers"] = "1"
    sections["upstream"]["response_timeout"] = "300ms"
    return sections


def test_stale_while_revalidate_refresh_through_a_thread_bulkhead(fragile_factory, levee_factory):
    """The refresh behind a stale answer has no client connection to hand
    over: it runs in its slot on the listener worker (this crashed levee)."""
    fo = fragile_factory(workers=W)
    sections = cached_policy("thread")
    sections['route "slow"'].update({"cache_ttl": "1s", "stale_while_revalidate": "30s"})
    lv = levee_factory(sections, upstream=fo.addr)
    assert lv.get("/slow").status == 200
    served = fo.wait_stats(lambda s: s["served"]["slow"] == 1, msg="the fill counted")["served"]["slow"]
    time.sleep(1.1)  # the entry's lifetime is 1 s; nothing to poll for but time itself
    r = lv.get("/slow")
    assert r.status == 200 and cache_status_core(r.header("Cache-Status")) == "levee; hit; detail=stale", cache_status_core(r.header("Cache-Status"))
    wait_until(lambda: fo.stats()["served"]["slow"] == served + 1, 5 * WAIT_SCALE, msg="refreshed")
    wait_until(lambda: bh_status(lv)["active"] == 0, 5 * WAIT_SCALE, msg="slot back")
    assert cache_status_core(lv.get("/slow").header("Cache-Status")).startswith("levee; hit")
    assert lv.get("/fast").status == 200  # and levee is alive


def test_stale_if_error_keeps_the_busy_connection_out_of_the_pool(fragile_factory, levee_factory):
    """A stale answer after an upstream timeout: the client is served, but
    the service still works on the request. The slot stays held, and the
    connection, whose late answer is still to come, is not pooled: the next
    request must not read it as its own."""
    fo = fragile_factory(workers=W)
    sections = cached_policy()
    sections['route "slow"'].update({"cache_ttl": "1s", "stale_if_error": "60s"})
    lv = levee_factory(sections, upstream=fo.addr)
    assert lv.get("/slow").status == 200
    fo.hang()
    time.sleep(1.1)  # the entry's lifetime is 1 s; nothing to poll for but time itself
    r = lv.get("/slow", timeout=5)
    assert r.status == 200 and cache_status_core(r.header("Cache-Status")) == "levee; hit; detail=stale-if-error"
    s = bh_status(lv)
    assert (s["active"], s["draining"]) == (1, 1), s
    c = lv.conn()
    assert c.request("GET", "/fast").body == b"fast\n"
    fo.release()
    wait_until(lambda: bh_status(lv)["active"] == 0, 5 * WAIT_SCALE, msg="late answer drained")
    for _ in range(3):
        assert c.request("GET", "/fast").body == b"fast\n"
    assert bh_metric(lv, "levee_bulkhead_drained_total", result="complete") == 1


def test_connect_failure_is_not_kept(levee_factory):
    """Nothing listens upstream: the 502 frees the slot at once (a connect
    that failed has no service working on it)."""
    from harness import free_port
    sections = policy(max_concurrent="1", max_queue="0")
    lv = levee_factory(sections, upstream="127.0.0.1:%d" % free_port(), wait="healthz")
    for _ in range(3):
        assert lv.get("/slow").status == 502
    s = bh_status(lv)
    assert (s["active"], s["draining"], s["rejected_full"]) == (0, 0, 0), s
    assert metric_sum(lv.metrics(), "levee_upstream_connect_errors_total") == 3
