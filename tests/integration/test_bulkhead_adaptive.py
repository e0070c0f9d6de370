"""max_concurrent = auto (docs/protection.md, "Adaptive concurrency") in
front of the fragile origin (fragile_origin.py: W=8 workers, /slow calls a
dependency whose latency the control port sets).

Closed-loop clients keep /slow busy. With the dependency at 20 ms the limit
settles; raised to 200 ms, the limit falls toward its floor; back at 20 ms,
it climbs back. Each phase waits on the limit, with a deadline, as /status
shows it; the numbers are printed for the docs.
"""
import statistics
import threading
import time

from fragile import W
from fragile import fragile_factory  # noqa: F401  (fixture)
from harness import WAIT_SCALE, HttpConn, metric_sum, wait_until
from test_bulkhead import reload_with
import pytest

# measured under a load of its own: run alone, after the tests that run in parallel (tests/run)
pytestmark = pytest.mark.serial("measures latency and success rates under a load of its own")

CLIENTS = 12
FAST_MS, SLOW_MS = 20, 200


def policy():
    return {
        "levee": {"workers": "2"},
        "upstream": {"connect_timeout": "5s", "response_timeout": "10s"},
        'bulkhead "slow"': {
            "max_concurrent": "auto",
            "adaptive_min": "2",
            "adaptive_max": "64",
            "adaptive_smoothing": "50%",
            "adaptive_window": "250ms",
            "max_queue": "64",
            "queue_timeout": "1s",
        },
        'route "slow"': {"prefix": "/slow", "bulkhead": "slow"},
    }


class Clients:
    """CLIENTS threads, each a keep-alive connection asking /slow in a loop
    (a refusal waits 20 ms before the next ask), until stop()."""

    def __init__(self, port):
        self.port = port
        self.stopping = threading.Event()
        self.status = {}
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(CLIENTS)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def _run(self):
        c = None
        while not self.stopping.is_set():
            try:
                if c is None:
                    c = HttpConn(self.port, timeout=15)
                r = c.request("GET", "/slow")
                st = r.status
            except Exception:
                st = None
                if c:
                    c.close()
                c = None
            with self.lock:
                self.status[st] = self.status.get(st, 0) + 1
            if st != 200:
                time.sleep(0.02)
        if c:
            c.close()

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(20)


def adaptive(lv):
    b = {b["name"]: b for b in lv.status()["bulkheads"]}["slow"]
    return b["adaptive"], b["max_concurrent"]


def watch(lv, seconds):
    """The limit every 100 ms for `seconds`, but during a probe (one window
    at min, after a long congestion: possible on a loaded machine)."""
    out = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        a = adaptive(lv)[0]
        if not a["probing"]:
            out.append(a["limit"])
        time.sleep(0.1)
    return out


def test_limit_follows_the_service_latency(fragile_factory, levee_factory):
    fo = fragile_factory(workers=W, dep_ms=FAST_MS)
    lv = levee_factory(policy(), upstream=fo.addr)
    a, mc = adaptive(lv)
    assert a["limit"] == 2 and a["min"] == 2 and a["max"] == 64 and mc == 2, a  # a new bulkhead starts at min

    cl = Clients(lv.port).start()
    try:
        # steady: the limit rises from min, then settles
        wait_until(lambda: adaptive(lv)[0]["windows"] >= 12, 10 * WAIT_SCALE, msg="12 windows")
        steady = watch(lv, 2.0)
        before = statistics.median(steady)
        a, mc = adaptive(lv)
        print("steady: limit median %.1f (%.1f..%.1f), rtt long %.1f ms short %.1f ms, gradient %.2f"
              % (before, min(steady), max(steady), a["long_rtt_ms"], a["short_rtt_ms"], a["gradient"]))
        assert before >= 6, steady
        assert max(steady) <= 2.5 * min(steady), steady  # settled, not swinging
        assert FAST_MS * 0.9 <= a["long_rtt_ms"] <= FAST_MS * 3, a

        # the service slows down: latency x10, the limit falls near its floor
        # (4: where 0.5 x limit + sqrt(limit) = limit)
        fo.dep("ok", SLOW_MS)
        t0 = time.monotonic()
        fell = wait_until(lambda: (lambda a: a if a["limit"] <= 6 and not a["probing"] else None)(adaptive(lv)[0]),
                          15 * WAIT_SCALE, msg="the limit falling")
        took_down = time.monotonic() - t0
        during = statistics.median(watch(lv, 1.0))
        a, mc = adaptive(lv)
        print("slow: limit %.1f after %.1f s, then median %.1f; rtt long %.1f ms short %.1f ms, gradient %.2f"
              % (fell["limit"], took_down, during, a["long_rtt_ms"], a["short_rtt_ms"], a["gradient"]))
        assert during <= 6, during
        assert a["short_rtt_ms"] >= SLOW_MS * 0.9, a
        assert a["gradient"] < 1, a
        assert a["long_rtt_ms"] < SLOW_MS / 2, a  # the baseline did not follow the slowdown
        # the gauges agree with /status
        m = lv.metrics()
        assert metric_sum(m, "levee_bulkhead_max_concurrent", bulkhead="slow") == mc
        assert metric_sum(m, "levee_bulkhead_adaptive_limit", bulkhead="slow") is not None
        assert metric_sum(m, "levee_bulkhead_rtt_seconds", bulkhead="slow", window="short") >= SLOW_MS * 0.9 / 1e3
        assert metric_sum(m, "levee_bulkhead_adaptive_samples_total", bulkhead="slow") > 0

        # it recovers: the limit climbs back
        fo.dep("ok", FAST_MS)
        t0 = time.monotonic()
        wait_until(lambda: adaptive(lv)[0]["limit"] >= 0.8 * before, 15 * WAIT_SCALE, msg="the limit climbing back")
        took_up = time.monotonic() - t0
        after = statistics.median(watch(lv, 1.0))
        a, mc = adaptive(lv)
        print("recovered: limit back to %.1f of %.1f in %.1f s, then median %.1f; rtt long %.1f ms short %.1f ms"
              % (0.8 * before, before, took_up, after, a["long_rtt_ms"], a["short_rtt_ms"]))
        assert after >= 0.8 * before * 0.8, after
    finally:
        cl.stop()
    print("client statuses:", cl.status)
    assert cl.status.get(200, 0) > 0
    wait_until(lambda: metric_sum(lv.metrics(), "levee_bulkhead_active", bulkhead="slow") == 0, 10 * WAIT_SCALE,
               msg="slots back")


def test_reload_keeps_the_measurements(fragile_factory, levee_factory):
    """A reload that keeps the bulkhead's name and stays auto keeps the
    limit's measurements; new bounds clamp the limit at once."""
    fo = fragile_factory(workers=W, dep_ms=FAST_MS)
    lv = levee_factory(policy(), upstream=fo.addr)
    cl = Clients(lv.port).start()
    try:
        wait_until(lambda: adaptive(lv)[0]["limit"] >= 5, 10 * WAIT_SCALE, msg="the limit rising")
        samples = adaptive(lv)[0]["samples"]
        sections = policy()
        sections['bulkhead "slow"']["adaptive_max"] = "4"
        reload_with(lv, sections)
        a, mc = adaptive(lv)
        assert a["max"] == 4 and a["limit"] <= 4 and mc <= 4, a
        assert a["samples"] >= samples, (a, samples)  # not started over
    finally:
        cl.stop()
