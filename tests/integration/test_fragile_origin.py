"""Tests of the bulkhead test tools themselves, without levee: the fragile
origin (fragile_origin.py via fragile.py) really caps at W workers and its
dependency switches, and the open-loop generator (load.py) keeps its rate.
"""
import socket
import time

import pytest

import load
from fragile import fragile_factory  # noqa: F401  (fixture)
from harness import HttpConn

# measured under a load of its own: run alone, after the tests that run in parallel (tests/run)
pytestmark = pytest.mark.serial("measures latency and success rates under a load of its own")

W = 8


def send_get(port, path, timeout=10.0):
    c = HttpConn(port, timeout=timeout)
    c.send(("GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path).encode())
    return c


def nothing_within(conn, seconds):
    """True if no response byte arrives on conn within `seconds` (the one
    fixed window here: it checks that something does *not* happen)."""
    conn.sock.settimeout(seconds)
    try:
        conn.sock.recv(1, socket.MSG_PEEK)  # a byte or EOF: something happened
        return False
    except socket.timeout:
        return True


@pytest.mark.parametrize("model", ["request", "connection"])
def test_pool_caps_at_w_workers(fragile_factory, model):
    """W hung /slow requests take every worker: request W+1 is not even
    started and /fast waits behind them, while the control port answers.
    Releasing the dependency serves them all, and busy never passed W."""
    fo = fragile_factory(workers=W, model=model)
    fo.hang()
    slow = [send_get(fo.port, "/slow") for _ in range(W + 1)]
    st = fo.wait_hung(W)
    fast = send_get(fo.port, "/fast")
    assert nothing_within(fast, 0.3), "/fast was answered with every worker hung"
    st = fo.stats()
    assert (st["hung"], st["busy"], st["max_busy"], st["started"]["slow"]) == (W, W, W, W), st
    assert st["started"]["fast"] == 0 and st["served"]["fast"] == 0, st
    if model == "request":
        assert st["queued"] == 2, st  # the 9th /slow and /fast wait for a worker
    fo.release()
    for c in slow + [fast]:
        r = c.read_response(timeout=5)
        assert r is not None and r.status == 200, r
        c.close()
    st = fo.wait_idle()
    assert st["max_busy"] == W and st["served"]["slow"] == W + 1 and st["served"]["fast"] == 1, st


def test_fast_is_served_while_workers_are_free(fragile_factory):
    """W-1 hung requests leave one worker: /fast still answers, from it."""
    fo = fragile_factory(workers=W)
    fo.hang()
    slow = [send_get(fo.port, "/slow") for _ in range(W - 1)]
    fo.wait_hung(W - 1)
    for _ in range(5):
        c = send_get(fo.port, "/fast")
        r = c.read_response(timeout=2)
        c.close()
        assert r.status == 200 and r.body == b"fast\n", r
    fo.release()
    for c in slow:
        assert c.read_response(timeout=5).status == 200
        c.close()


def test_abandoned_request_keeps_its_worker(fragile_factory):
    """A client that leaves does not free the worker: the hung /slow goes on
    waiting for its dependency, then answers into the closed connection."""
    fo = fragile_factory(workers=2)
    fo.hang()
    c = send_get(fo.port, "/slow")
    fo.wait_hung(1)
    c.close()
    fo.reset()
    b = send_get(fo.port, "/fast")  # a request after the close is served and counted
    assert b.read_response(timeout=2).status == 200
    b.close()
    st = fo.stats()
    assert st["hung"] == 1 and st["busy"] >= 1 and st["served"]["slow"] == 0, st
    fo.release()
    st = fo.wait_stats(lambda s: s["served"]["slow"] == 1 and s["busy"] == 0, msg="abandoned /slow finished")
    assert st["hung"] == 0, st


def test_dependency_modes(fragile_factory):
    fo = fragile_factory(workers=2, dep_ms=20)
    assert fo.stats()["dep"] == {"mode": "ok", "ms": 20}

    def timed(path):
        t = time.monotonic()
        c = send_get(fo.port, path)
        r = c.read_response(timeout=5)
        c.close()
        assert r.status == 200 and r.body == b"slow\n", r
        return time.monotonic() - t

    assert timed("/slow?dep_ms=300") >= 0.3
    assert fo.release(ms=250) == {"mode": "ok", "ms": 250, "hung": 0}
    assert timed("/slow") >= 0.25
    fo.release(ms=0)
    assert timed("/slow") < 0.25
    assert fo.hang()["mode"] == "hang"
    c = send_get(fo.port, "/slow?dep_ms=0")
    assert fo.wait_hung(1)["dep"]["mode"] == "hang"
    assert nothing_within(c, 0.2)
    assert fo.release()["mode"] == "ok"
    r = c.read_response(timeout=5)
    c.close()
    assert r.status == 200
    assert fo.wait_idle()["hung"] == 0
    # /work keeps a worker for ms; unknown paths 404; the control port refuses unknown modes
    st0 = fo.stats()["served"]["work"]
    t = time.monotonic()
    c = send_get(fo.port, "/work?ms=200")
    assert c.read_response(timeout=5).status == 200
    c.close()
    assert time.monotonic() - t >= 0.2
    # the worker counts the request served after the client has its answer
    fo.wait_stats(lambda s: s["served"]["work"] == st0 + 1, msg="/work counted")
    c = send_get(fo.port, "/nope")
    assert c.read_response(timeout=5).status == 404
    c.close()
    with pytest.raises(AssertionError):
        fo.control("/__dep?mode=sideways")


@pytest.mark.parametrize("conn", ["pool", "new"])
def test_load_keeps_its_rate(fragile_factory, conn):
    """Two targets at 300/s for 3 s: every request starts on schedule
    (achieved rate within 10% of the asked one) and the origin saw each."""
    fo = fragile_factory(workers=W)
    targets = [load.Target(fo.port, "/fast", 300), load.Target(fo.port, "/slow", 300)]
    res = load.run(targets, 3.0, timeout=2.0, conn=conn)
    st = fo.stats()
    for name, route in (("/fast", "fast"), ("/slow", "slow")):
        r = res[name]
        assert r.sent == 900 and r.skipped == 0, r
        assert abs(r.send_rate - 300) <= 30, r
        assert r.lag_p99 < 0.05, r
        assert r.ok == 900 and r.status == {200: 900}, r
        assert st["started"][route] == 900, st
        assert len(r.latencies_ok) == len(r.latencies_all) == 900 and r.p50_ok <= r.p99_ok
    assert res["/slow"].p50_ok >= 0.02  # the dependency's 20 ms


def test_load_is_open_loop(fragile_factory):
    """With every worker hung, the generator still sends at its rate: the
    requests pile up and time out, none waits for another."""
    fo = fragile_factory(workers=W)
    fo.hang()
    res = load.run([load.Target(fo.port, "/slow", 100)], 2.0, timeout=1.0)["/slow"]
    assert res.sent == 200 and abs(res.send_rate - 100) <= 10, res
    assert res.ok == 0 and res.timeouts == 200, res
    assert res.p99_all >= 1.0 and res.p99_ok is None
    assert fo.stats()["hung"] == W
    fo.release()
    fo.wait_idle()


def test_load_keeps_non_2xx_samples(fragile_factory):
    fo = fragile_factory(workers=2)
    r = load.run([load.Target(fo.port, "/nope", 50, name="nope")], 0.5, samples=3)["nope"]
    assert r.sent == 25 and r.status == {404: 25} and r.ok == 0 and r.success_rate == 0.0, r
    assert len(r.samples) == 3
    s = r.samples[0]
    assert s["status"] == 404 and s["body"] == b"not found\n"
    assert dict((n.lower(), v) for n, v in s["headers"])["server"] == "fragile"
    assert r.window(0, 0.25)[0] in (12, 13) and r.window(0, 1)[1] == 0
