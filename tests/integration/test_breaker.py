"""Circuit breakers (docs/protection.md) in front of the test origin, whose
/flaky/<name> answers ok, 503, slowly, or not at all, as the test sets it
(/__fail?name=..&mode=..).

Each test uses its own /flaky name, so the origin's request log tells how
many requests of that test reached it.
"""
import time

from harness import hget, metric_sum, once, wait_until

OPEN_FOR_S = 1.0
RAMP_S = 1.0


def policy(breaker=None, route=None, extra=None):
    b = {"window": "10s", "min_requests": "5", "failure_rate": "50%", "open_for": "1s",
         "half_open_probes": "2", "ramp": "1s"}
    b.update(breaker or {})
    rt = {"prefix": "/flaky/", "breaker": "b"}
    rt.update(route or {})
    sections = {
        "levee": {"workers": "2"},
        "upstream": {"response_timeout": "2s"},
        'breaker "b"': b,
        'route "flaky"': rt,
    }
    sections.update(extra or {})
    return sections


def set_origin(origin, name, mode="ok", ms=0):
    origin._get("/__fail?name=%s&mode=%s&ms=%d" % (name, mode, ms))


def brk(lv):
    return {b["name"]: b for b in lv.status()["breakers"]}["b"]


def brk_metric(lv, name, **labels):
    return metric_sum(lv.metrics(), name, breaker="b", **labels)


def timed_get(lv, target):
    t0 = time.monotonic()
    r = once(lv.port, "GET", target, timeout=5)
    return r, time.monotonic() - t0


def is_open_answer(r):
    return r.status == 503 and r.header("X-Levee-Reason") == "breaker-open; breaker=b"


def trip(lv, origin, name, n=5):
    """The origin fails /flaky/NAME; n calls through levee open the breaker."""
    set_origin(origin, name, "503")
    for _ in range(n):
        r = once(lv.port, "GET", "/flaky/" + name)
        assert r.status == 503 and r.header("X-Levee-Reason") is None, r  # the origin's own 503
    # The last outcome is recorded when the exchange ends, which may be just
    # after its answer reached the client (seen under TSan): wait for it.
    wait_until(lambda: brk(lv)["state"] == "open", 2, msg="the breaker opened after %d failures" % n)


def p99(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * 0.99))]


def test_opens_at_the_threshold_and_answers_fast_without_the_upstream(levee_factory, origin):
    name = "brk-open-%d" % origin.start_mark
    lv = levee_factory(policy({"open_for": "30s"}))
    set_origin(origin, name, "503")
    for i in range(4):  # below min_requests: no verdict yet
        assert once(lv.port, "GET", "/flaky/" + name).status == 503
        assert brk(lv)["state"] == "closed"
    assert once(lv.port, "GET", "/flaky/" + name).status == 503  # the fifth: 100% >= 50%
    st = wait_until(lambda: (lambda b: b if b["state"] == "open" else None)(brk(lv)), 2,
                    msg="the breaker opened at the fifth failure")
    assert "failure rate 100.0% of 5 calls" in st["reason"], st
    mark = origin.mark()
    lat = []
    for _ in range(200):
        r, dt = timed_get(lv, "/flaky/" + name)
        assert is_open_answer(r), (r.status, r.headers)
        assert 1 <= int(r.header("Retry-After")) <= 30, r.headers  # when it will probe
        lat.append(dt)
    print("open answers: n=%d p50=%.2fms p99=%.2fms" % (len(lat), sorted(lat)[len(lat) // 2] * 1e3,
                                                        p99(lat) * 1e3))
    assert p99(lat) < 0.005, p99(lat)
    assert origin.requests(mark, path="/flaky/" + name) == []  # not one reached the upstream
    assert brk_metric(lv, "levee_breaker_admissions_total", answer="reject") >= len(lat)
    assert brk_metric(lv, "levee_breaker_transitions_total", state="open") == 1
    assert metric_sum(lv.metrics(), "levee_request_outcomes_total", outcome="refused") >= len(lat)


def test_while_open_the_upstream_sees_only_probes(levee_factory, origin):
    """The service stays down for 3 s under 100 requests/s: each open_for
    ends in half-open, whose probes fail and reopen it at once, so the
    upstream sees at most half_open_probes requests per open_for."""
    name = "brk-probes-%d" % origin.start_mark
    lv = levee_factory(policy())
    trip(lv, origin, name)
    mark = origin.mark()
    t_end = time.monotonic() + 3.0
    sent = 0
    while time.monotonic() < t_end:
        once(lv.port, "GET", "/flaky/" + name)
        sent += 1
        time.sleep(0.01)
    seen = len(origin.requests(mark, path="/flaky/" + name))
    trips = brk(lv)["trips"]
    print("sent %d, upstream saw %d, trips %d" % (sent, seen, trips))
    assert sent > 150
    # 3 s / 1 s open_for: at most 3 half-open phases (4 with timing slack), 2 probes each
    assert 1 <= seen <= 2 * 4, seen
    assert trips >= 3, trips
    assert brk_metric(lv, "levee_breaker_transitions_total", state="half_open") >= 2


def test_recovery_goes_through_half_open_and_the_ramp(levee_factory, origin):
    """Healed at once after the trip: within open_for + ramp (+ slack) every
    request succeeds again, passing through half_open and a ramp whose
    passing share grows."""
    name = "brk-heal-%d" % origin.start_mark
    lv = levee_factory(policy())
    trip(lv, origin, name)
    t_trip = time.monotonic()
    set_origin(origin, name, "ok")
    timeline = []  # (seconds since the trip, ok?)
    states = set()
    while time.monotonic() - t_trip < OPEN_FOR_S + RAMP_S + 1.5:
        r = once(lv.port, "GET", "/flaky/" + name)
        assert r.status == 200 or is_open_answer(r), (r.status, r.headers)
        timeline.append((time.monotonic() - t_trip, r.status == 200))
        states.add(brk(lv)["state"])
        time.sleep(0.005)
    first_ok = next(t for t, ok in timeline if ok)
    assert first_ok >= OPEN_FOR_S * 0.95, first_ok  # nothing passed while open
    last_refused = max((t for t, ok in timeline if not ok), default=0)
    print("first ok at %.2fs, last refusal at %.2fs, states %s" % (first_ok, last_refused, states))
    # recovery within open_for + ramp + one bucket of the window (10 s / 10) and
    # the loop's own step
    assert last_refused <= OPEN_FOR_S + RAMP_S + 1.0 + 0.1, last_refused
    assert "ramp" in states, states
    during = [ok for t, ok in timeline if first_ok < t < last_refused]
    early = during[:len(during) // 3]
    late = during[-len(during) // 3:]
    assert sum(late) > sum(early), (early, late)  # the share grows
    st = brk(lv)
    assert st["state"] == "closed" and st["trips"] == 0, st
    assert brk_metric(lv, "levee_breaker_transitions_total", state="ramp") == 1
    assert brk_metric(lv, "levee_breaker_transitions_total", state="closed") == 1


def test_slow_calls_alone_trip_it(levee_factory, origin):
    name = "brk-slow-%d" % origin.start_mark
    lv = levee_factory(policy({"slow_call": "100ms", "slow_call_rate": "60%"}))
    set_origin(origin, name, "slow", ms=150)
    for _ in range(5):
        assert once(lv.port, "GET", "/flaky/" + name).status == 200  # slow, not failed
    st = brk(lv)
    assert st["state"] == "open", st
    assert st["window"]["slow"] == 5 and st["window"]["failures"] == 0, st
    assert "slow calls 100.0% of 5 calls" in st["reason"], st
    assert is_open_answer(once(lv.port, "GET", "/flaky/" + name))
    assert brk_metric(lv, "levee_breaker_slow_calls_total") == 5
    set_origin(origin, name, "ok")


def test_levees_own_refusals_do_not_trip_it(levee_factory, origin):
    """A bulkhead after the breaker refuses most of a burst: those refusals
    are levee's, not the service's, and count neither way."""
    name = "brk-bh-%d" % origin.start_mark
    lv = levee_factory(policy(route={"bulkhead": "one"},
                              extra={'bulkhead "one"': {"max_concurrent": "1", "max_queue": "0"}}))
    set_origin(origin, name, "slow", ms=400)
    conns = []
    for _ in range(12):
        c = lv.conn(timeout=5)
        c.send(b"GET /flaky/" + name.encode() + b" HTTP/1.1\r\nHost: t\r\n\r\n")
        conns.append(c)
    statuses = []
    reasons = []
    for c in conns:
        r = c.read_response()
        statuses.append(r.status)
        reasons.append(r.header("X-Levee-Reason"))
    assert statuses.count(200) >= 1, statuses
    assert reasons.count("bulkhead-full; bulkhead=one") >= 10, reasons
    st = brk(lv)
    assert st["state"] == "closed", st
    assert st["window"]["failures"] == 0, st
    assert brk_metric(lv, "levee_breaker_outcomes_total", result="ignored") >= 10
    set_origin(origin, name, "ok")


def test_a_reload_that_changes_thresholds_keeps_it_open(levee_factory, origin):
    name = "brk-reload-%d" % origin.start_mark
    lv = levee_factory(policy({"open_for": "5s"}))
    trip(lv, origin, name)
    before = brk(lv)
    sections = policy({"open_for": "5s", "failure_rate": "90%", "min_requests": "50"})
    sections["levee"] = dict(lv.sections["levee"], **sections["levee"])
    lv.write_policy(sections=sections)
    r = lv.admin_request("POST", "/reload")
    assert r.status == 200, r.body
    after = brk(lv)
    assert after["state"] == "open", after
    assert after["trips"] == before["trips"] and after["window"] == before["window"], (before, after)
    assert is_open_answer(once(lv.port, "GET", "/flaky/" + name))
    set_origin(origin, name, "ok")


def test_forced_by_hand(levee_factory, origin):
    name = "brk-force-%d" % origin.start_mark
    lv = levee_factory(policy())
    set_origin(origin, name, "ok")
    assert once(lv.port, "GET", "/flaky/" + name).status == 200

    r = lv.admin_request("POST", "/breaker?name=b&force=open&for=60s")
    assert r.status == 200, r.body
    assert b'"state":"open","forced":"open"' in r.body, r.body
    mark = origin.mark()
    r = once(lv.port, "GET", "/flaky/" + name)
    assert is_open_answer(r), r.headers
    assert 59 <= int(r.header("Retry-After")) <= 60, r.headers  # until the forcing ends, not twice that
    assert origin.requests(mark, path="/flaky/" + name) == []
    assert brk_metric(lv, "levee_breaker_forced") == 1

    r = lv.admin_request("POST", "/breaker?name=b&force=clear")
    assert r.status == 200 and b'"state":"half_open","forced":""' in r.body, r.body
    assert once(lv.port, "GET", "/flaky/" + name).status == 200  # a probe
    assert once(lv.port, "GET", "/flaky/" + name).status == 200
    wait_until(lambda: brk(lv)["state"] in ("ramp", "closed"), 2, msg="the probes passed")

    # forced closed: failures pass and do not trip it
    r = lv.admin_request("POST", "/breaker?name=b&force=closed&for=1m")
    assert r.status == 200, r.body
    set_origin(origin, name, "503")
    for _ in range(10):
        assert once(lv.port, "GET", "/flaky/" + name).header("X-Levee-Reason") is None
    assert brk(lv)["state"] == "closed"

    for q, want in (("/breaker?name=nope&force=open", 404), ("/breaker?name=b&force=sideways", 400),
                    ("/breaker?name=b", 400), ("/breaker?name=b&force=open&for=25h", 400),
                    ("/breaker?name=b&force=open&for=x", 400)):
        assert lv.admin_request("POST", q).status == want, q
    assert lv.admin_request("GET", "/breaker?name=b&force=open").status == 405
    set_origin(origin, name, "ok")


def test_429_where_the_route_says_so(levee_factory, origin):
    name = "brk-429-%d" % origin.start_mark
    lv = levee_factory(policy(route={"refusal_status": "429"}))
    trip(lv, origin, name)
    r = once(lv.port, "GET", "/flaky/" + name)
    assert r.status == 429 and hget(r.headers, "x-levee-reason") == "breaker-open; breaker=b", r.headers
    set_origin(origin, name, "ok")
