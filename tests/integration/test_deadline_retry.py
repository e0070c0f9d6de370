"""Deadlines (route `timeout`, the client's X-Levee-Timeout-Ms) and route
retries with their budget (docs/protection.md), in front of the test origin.
"""
import time

from harness import free_port, metric_sum, once, wait_until

HDR = "X-Levee-Timeout-Ms"


def origin_header(origin, mark, path, name=HDR):
    """The value of header `name` on the origin's requests for `path`."""
    out = []
    for r in origin.requests(mark, path=path):
        vals = [v for n, v in r["headers"] if n.lower() == name.lower()]
        out.append(vals)
    return out


def timed(lv, target, headers=(), method="GET", body=None):
    t0 = time.monotonic()
    r = once(lv.port, method, target, headers, body, timeout=10)
    return r, time.monotonic() - t0


def set_origin(origin, name, mode="ok", ms=0, times=0):
    origin._get("/__fail?name=%s&mode=%s&ms=%d&times=%d" % (name, mode, ms, times))


# ---- deadlines -------------------------------------------------------------

def test_client_budget_is_honoured_and_sent_on(levee_factory, origin):
    """50 ms left: the answer (504 `deadline`) comes within about 50 ms, and
    the upstream was told the reduced budget."""
    lv = levee_factory({'route "r"': {"prefix": "/", "deadline_from_header": "true"}})
    mark = origin.mark()
    r, dt = timed(lv, "/slow?head_ms=2000", [(HDR, "50")])
    assert r.status == 504 and r.header("X-Levee-Reason") == "deadline", (r.status, r.headers)
    assert 0.045 <= dt < 0.5, dt
    seen = origin_header(origin, mark, "/slow")
    assert len(seen) == 1 and len(seen[0]) == 1, seen
    assert 0 < int(seen[0][0]) <= 50, seen
    assert metric_sum(lv.metrics(), "levee_deadline_expired_total") == 1
    assert metric_sum(lv.metrics(), "levee_request_outcomes_total", outcome="deadline") == 1


def test_route_timeout_and_the_sooner_of_the_two(levee_factory, origin):
    lv = levee_factory({'route "r"': {"prefix": "/", "timeout": "150ms", "deadline_from_header": "true"}})
    r, dt = timed(lv, "/slow?head_ms=2000")
    assert r.status == 504 and r.header("X-Levee-Reason") == "deadline"
    assert 0.14 <= dt < 0.6, dt
    # the client's longer budget does not extend the route's
    r, dt = timed(lv, "/slow?head_ms=2000", [(HDR, "5000")])
    assert r.status == 504 and dt < 0.6, dt
    # a shorter one wins
    r, dt = timed(lv, "/slow?head_ms=2000", [(HDR, "40")])
    assert r.status == 504 and dt < 0.14, dt
    # in time: the answer, and the upstream saw what was left of 150 ms
    mark = origin.mark()
    r = once(lv.port, "GET", "/echo", [(HDR, "9999")])
    assert r.status == 200
    seen = origin_header(origin, mark, "/echo")
    assert len(seen[0]) == 1 and 100 <= int(seen[0][0]) <= 150, seen  # replaced, not added


def test_spent_on_arrival_never_reaches_the_upstream(levee_factory, origin):
    lv = levee_factory({'route "r"': {"prefix": "/", "deadline_from_header": "true"}})
    mark = origin.mark()
    r, dt = timed(lv, "/echo", [(HDR, "0")])
    assert r.status == 504 and r.header("X-Levee-Reason") == "deadline"
    assert origin.requests(mark, path="/echo") == []
    # a value that is not a number is ignored, and passed on as it was
    r = once(lv.port, "GET", "/echo", [(HDR, "soon")])
    assert r.status == 200
    assert origin_header(origin, mark, "/echo") == [["soon"]]


def test_header_ignored_where_the_route_does_not_allow_it(levee_factory, origin):
    lv = levee_factory({'route "r"': {"prefix": "/"}})
    mark = origin.mark()
    r, dt = timed(lv, "/slow?head_ms=300", [(HDR, "20")])
    assert r.status == 200 and dt >= 0.29, dt
    assert origin_header(origin, mark, "/slow") == [["20"]]  # untouched


def one_slot_taken(levee_factory, route, head_ms):
    """A levee whose route has a bulkhead of one slot (queue 4, 10 s), that
    slot taken by a request the origin answers after head_ms: (lv, conn)."""
    r = {"prefix": "/", "bulkhead": "one"}
    r.update(route)
    lv = levee_factory({
        'bulkhead "one"': {"max_concurrent": "1", "max_queue": "4", "queue_timeout": "10s"},
        'route "r"': r,
    })
    first = lv.conn(timeout=5)
    first.send(b"GET /slow?head_ms=%d HTTP/1.1\r\nHost: t\r\n\r\n" % head_ms)
    wait_until(lambda: lv.status()["bulkheads"][0]["active"] == 1, 5, msg="the slot is taken")
    return lv, first


def test_deadline_bounds_the_bulkhead_queue(levee_factory, origin):
    lv, first = one_slot_taken(levee_factory, {"timeout": "200ms"}, 1500)
    r, dt = timed(lv, "/echo")
    assert r.status == 504 and r.header("X-Levee-Reason") == "deadline", r.headers
    assert 0.15 <= dt < 0.8, dt  # the deadline, not the queue's 10 s
    # it left the queue when it ended: the slot, freed, goes to nobody
    # (a waiter left behind in freed memory would be granted it: a crash)
    assert lv.status()["bulkheads"][0]["queued"] == 0
    assert first.read_response().status == 504  # its own deadline, 200 ms
    wait_until(lambda: lv.status()["bulkheads"][0]["active"] == 0, 5, msg="the slot came back")
    assert once(lv.port, "GET", "/echo").status == 200
    first.close()


def test_spent_budget_at_a_full_bulkhead(levee_factory, origin):
    """A client's 0 ms at a full bulkhead: 504 at once, no slot, no place in
    the queue, and levee lives on when the slot comes back."""
    lv, first = one_slot_taken(levee_factory, {"deadline_from_header": "true"}, 500)
    r = once(lv.port, "GET", "/echo", [(HDR, "0")])
    assert r.status == 504 and r.header("X-Levee-Reason") == "deadline"
    assert lv.status()["bulkheads"][0]["queued"] == 0
    assert first.read_response().status == 200
    wait_until(lambda: lv.status()["bulkheads"][0]["active"] == 0, 5, msg="the slot came back")
    assert once(lv.port, "GET", "/echo").status == 200
    first.close()


def test_deadline_answered_by_the_fallback(levee_factory, origin):
    lv = levee_factory({'route "r"': {"prefix": "/", "timeout": "100ms", "fallback": "static",
                                      "fallback_status": "200", "fallback_body": "later"}})
    r, dt = timed(lv, "/slow?head_ms=2000")
    assert r.status == 200 and r.body == b"later", (r.status, r.body)
    assert r.header("X-Levee-Reason") == "deadline; fallback=static", r.headers
    assert dt < 0.6, dt


# ---- retries -----------------------------------------------------------------

def test_retries_an_idempotent_request_until_it_succeeds(levee_factory, origin):
    name = "retry-ok-%d" % origin.start_mark
    lv = levee_factory({'route "r"': {"prefix": "/", "retries": "2", "retry_backoff": "5ms"}})
    set_origin(origin, name, "503", times=2)
    mark = origin.mark()
    r = once(lv.port, "GET", "/flaky/" + name)
    assert r.status == 200 and r.body == b"v1", (r.status, r.body)  # the 503s were never shown
    assert len(origin.requests(mark, path="/flaky/" + name)) == 3
    assert metric_sum(lv.metrics(), "levee_retries_status_total") == 2


def test_retries_stop_at_the_count_and_the_last_answer_stands(levee_factory, origin):
    name = "retry-fail-%d" % origin.start_mark
    lv = levee_factory({'route "r"': {"prefix": "/", "retries": "2", "retry_backoff": "5ms"}})
    set_origin(origin, name, "503")
    mark = origin.mark()
    r = once(lv.port, "GET", "/flaky/" + name)
    assert r.status == 503 and r.body == b"down"  # the upstream's own, after 3 attempts
    assert len(origin.requests(mark, path="/flaky/" + name)) == 3
    set_origin(origin, name, "ok")


def test_never_retried_with_a_body_or_a_post(levee_factory, origin):
    name = "retry-post-%d" % origin.start_mark
    lv = levee_factory({'route "r"': {"prefix": "/", "retries": "3", "retry_backoff": "5ms"}})
    set_origin(origin, name, "503")
    mark = origin.mark()
    assert once(lv.port, "POST", "/flaky/" + name, body=b"x" * 100).status == 503
    assert once(lv.port, "PUT", "/flaky/" + name, body=b"x" * 100).status == 503
    assert len(origin.requests(mark, path="/flaky/" + name)) == 2
    set_origin(origin, name, "ok")


def test_connect_failures_are_retried_then_502(levee_factory):
    dead = "127.0.0.1:%d" % free_port()
    lv = levee_factory({'route "r"': {"prefix": "/", "retries": "2", "retry_backoff": "5ms"}},
                       upstream=dead, wait="healthz")
    r = once(lv.port, "GET", "/x")
    assert r.status == 502 and r.header("X-Levee-Reason") == "upstream-connect"
    assert metric_sum(lv.metrics(), "levee_retries_connect_total") == 2


def test_the_budget_stops_retries(levee_factory, origin):
    name = "retry-budget-%d" % origin.start_mark
    lv = levee_factory({"upstream": {"retry_budget": "0%", "retry_budget_min": "1"},
                        'route "r"': {"prefix": "/", "retries": "3", "retry_backoff": "1ms"}})
    set_origin(origin, name, "503")
    mark = origin.mark()
    for _ in range(5):
        assert once(lv.port, "GET", "/flaky/" + name).status == 503
    seen = len(origin.requests(mark, path="/flaky/" + name))
    denied = metric_sum(lv.metrics(), "levee_retries_denied_total")
    # the floor: 1 per second over the 10 s window, so 10 retries at most:
    # 3 + 3 + 3 + 1, then the fourth request's second retry and the fifth's
    # first are refused, and their 503 goes to the client at once
    assert seen == 5 + 10, seen
    assert denied == 2, denied
    set_origin(origin, name, "ok")


def test_retries_within_the_deadline(levee_factory, origin):
    """A retry whose backoff would pass the deadline is not made: the
    failure is answered at once."""
    name = "retry-dl-%d" % origin.start_mark
    lv = levee_factory({'route "r"': {"prefix": "/", "retries": "5", "retry_backoff": "400ms",
                                      "retry_backoff_max": "400ms", "timeout": "100ms"}})
    set_origin(origin, name, "503")
    r, dt = timed(lv, "/flaky/" + name)
    assert r.status in (503, 504), r.status
    assert dt < 0.5, dt
    set_origin(origin, name, "ok")
