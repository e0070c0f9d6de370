"""Drain on SIGTERM (docs/http.md, "Drain (SIGTERM)")."""
import signal
import socket
import threading
import time

from harness import HttpConn, build_request, connect_refused, tokens, wait_until


def new_connection_refused_or_rejected(port):
    """After drain started a new connection must not be served: refused,
    or closed/reset/503 at once. Returns a description, or None if served."""
    if connect_refused(port):
        return "refused"
    c = HttpConn(port, timeout=1.0)
    try:
        try:
            c.send(build_request("GET", "/echo?during-drain"))
            r = c.read_response(timeout=1.0)
        except TimeoutError:
            return None  # accepted by the kernel and left hanging: not acceptable
        except OSError:
            return "reset"
        if r is None:
            return "closed"
        if r.status == 503 and r.reason_token == "draining":
            return "503"
        return None
    finally:
        c.close()


def readyz(lv):
    try:
        return lv.admin_get("/readyz", timeout=1)[0]
    except (OSError, AssertionError) as e:
        return repr(e)


def start_in_flight(lv, target):
    box = {}

    def run():
        c = HttpConn(lv.port, timeout=15)
        try:
            box["resp"] = c.request("GET", target, timeout=15)
            box["closed"] = c.wait_closed(2)
        except Exception as e:  # reported by the test
            box["error"] = e
        finally:
            c.close()
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, box


def test_drain_completes_in_flight_request(levee_factory, origin):
    lv = levee_factory({"levee": {"drain_timeout": "5s"}})
    mark = origin.mark()
    t, box = start_in_flight(lv, "/slow?head_ms=1500&drain=1")
    origin.wait_event(lambda e: e["event"] == "request" and "drain=1" in e["target"], since=mark, timeout=3,
                      msg="the slow request to reach the origin")
    t0 = time.monotonic()
    lv.expected_exit = True
    lv.signal(signal.SIGTERM)
    wait_until(lambda: readyz(lv) == 503, 1.0, interval=0.02, msg="/readyz to answer 503 during drain")
    how = new_connection_refused_or_rejected(lv.port)
    assert how, "a new connection was served (or left hanging) during drain"
    t.join(10)
    assert "error" not in box, box.get("error")
    r = box["resp"]
    assert r is not None and r.status == 200 and r.complete, r
    assert "close" in tokens(r.headers, "Connection"), "in-flight responses during drain carry Connection: close"
    assert box["closed"]
    rc = lv.wait_exit(5)
    elapsed = time.monotonic() - t0
    assert rc == 0, "levee exit code %r after drain; stderr:\n%s" % (rc, lv.stderr()[-2000:])
    assert elapsed < 4.0, "levee took %.1fs to exit although its last request finished after 1.5s" % elapsed


def test_drain_closes_idle_keepalive_connections(levee_factory):
    lv = levee_factory({"levee": {"drain_timeout": "5s"}})
    c = lv.conn()
    assert c.request("GET", "/echo").status == 200
    t0 = time.monotonic()
    lv.expected_exit = True
    lv.signal(signal.SIGTERM)
    assert c.wait_closed(2), "idle keep-alive connection not closed on drain"
    rc = lv.wait_exit(3)
    assert rc == 0, rc
    assert time.monotonic() - t0 < 2.0, "levee waited although no request was in flight"


def test_drain_timeout_exceeded(levee_factory, origin):
    lv = levee_factory({"levee": {"drain_timeout": "1s"}, "upstream": {"response_timeout": "30s"}})
    mark = origin.mark()
    t, box = start_in_flight(lv, "/hang?drain=2")
    origin.wait_event(lambda e: e["event"] == "request" and "drain=2" in e["target"], since=mark, timeout=3)
    t0 = time.monotonic()
    lv.expected_exit = True
    lv.signal(signal.SIGTERM)
    rc = lv.wait_exit(4)
    elapsed = time.monotonic() - t0
    assert rc == 0, "levee exit code %r (None = still running 4s after SIGTERM with drain_timeout=1s)" % rc
    assert 0.8 <= elapsed <= 2.5, "exited %.2fs after SIGTERM with drain_timeout=1s" % elapsed
    t.join(5)
    assert box.get("resp") is None or box["resp"].status >= 500 or not box["resp"].complete


def test_sigint_stops_levee(levee_factory):
    lv = levee_factory()
    lv.expected_exit = True
    lv.signal(signal.SIGINT)
    assert lv.wait_exit(5) is not None, "levee ignores SIGINT"


def test_drain_delay_keeps_serving_while_not_ready(levee_factory, origin):
    """With drain_delay, SIGTERM makes /readyz fail at once, but new
    connections are still served until the delay has passed; then the usual
    drain, and exit 0."""
    lv = levee_factory({"levee": {"drain_delay": "1500ms", "drain_timeout": "2s"}})
    lv.expected_exit = True
    t0 = time.monotonic()
    lv.signal(signal.SIGTERM)
    wait_until(lambda: readyz(lv) == 503, 1.0, interval=0.02, msg="/readyz to answer 503 at once")
    c = HttpConn(lv.port, timeout=2)
    r = c.request("GET", "/echo?during-delay")
    c.close()
    assert time.monotonic() - t0 < 1.5, "the check ran too late to prove anything"
    assert r.status == 200, "a new connection during drain_delay must still be served"
    wait_until(lambda: new_connection_refused_or_rejected(lv.port), 4.0, interval=0.05,
               msg="new connections refused once drain_delay has passed")
    assert time.monotonic() - t0 >= 1.4, "levee stopped accepting before drain_delay"
    assert lv.wait_exit(5) == 0


def test_drain_timeout_with_parked_coalescing_waiters(levee_factory, origin):
    """Drain runs out while requests on every worker wait behind one slow
    fill: levee tears the workers down with waiters parked on them and must
    exit cleanly. It used to free worker 0 with waiters parked on it, then
    wake them from worker 1's fill through the freed mailbox (under ASan, a
    reported use-after-free). Which worker gets the fill is up to the
    kernel's SO_REUSEPORT spread, so the scenario runs several times: the old
    code failed about one run in four."""
    for run in range(8):
        lv = levee_factory({"levee": {"workers": "2", "drain_timeout": "300ms"},
                            'route "c"': {"prefix": "/", "cache_ttl": "60s"}})
        conns = []
        for _ in range(16):  # spread over both workers
            c = HttpConn(lv.port, timeout=10)
            c.send(build_request("GET", "/slow?head_ms=3000&n=5&parked=%d" % run))
            conns.append(c)
        wait_until(lambda: lv.metric("levee_cache_lookups_total", result="miss") == 16, 5,
                   msg="every request parked behind the fill")
        lv.expected_exit = True
        lv.signal(signal.SIGTERM)
        rc = lv.wait_exit(10)
        assert rc == 0, "run %d: rc=%s: %s" % (run, rc, lv.stderr()[-2000:])
        for c in conns:
            c.close()
