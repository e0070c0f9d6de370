"""Process wrapper for fragile_origin.py, the legacy-Tomcat-like origin with
a fixed worker pool (see its docstring), for the bulkhead tests.

    from fragile import FragileOrigin, fragile_factory   # class, fixture

    fo = FragileOrigin(workdir, workers=8)     # started, ready, or raises
    fo.addr                      # "127.0.0.1:PORT", for levee's upstream
    fo.hang(); fo.release()      # the dependency of /slow hangs / answers
    fo.wait_hung(8)              # 8 /slow requests are blocked
    fo.stats()["busy"]           # see fragile_origin.py for the fields
    fo.stop()                    # SIGKILL by PID, then wait

Waits poll the control port against a deadline; nothing sleeps a fixed
time.
"""
import json
import os
import select
import subprocess
import time

import pytest

import load
from harness import HERE, PYTHON, HttpConn, _die_with_parent, wait_until


class FragileOrigin:
    def __init__(self, workdir, workers=8, model="request", backlog=1024, dep_ms=20,
                 max_connections=None, keepalive_timeout=None, port=0, start=True):
        """model: "request" (a worker per request, the default) or
        "connection" (a worker per connection, Tomcat BIO)."""
        self.workdir = workdir
        self.workers = workers
        self.model = model
        self.args = [PYTHON, os.path.join(HERE, "fragile_origin.py"), "--port", str(port),
                     "--workers", str(workers), "--model", model, "--backlog", str(backlog),
                     "--dep-ms", str(dep_ms)]
        if max_connections is not None:
            self.args += ["--max-connections", str(max_connections)]
        if keepalive_timeout is not None:
            self.args += ["--keepalive-timeout", str(keepalive_timeout)]
        self.proc = None
        self.port = self.control_port = None
        self.addr = None
        if start:
            self.start()

    def start(self, timeout=30.0):
        # a bound for a loaded machine (CI shares two cores), not a wait: READY ends it
        self.stderr_path = os.path.join(self.workdir, "fragile-%d.stderr" % time.time_ns())
        errf = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=errf,
                                     stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        errf.close()
        self.pid = self.proc.pid
        deadline = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n"):
            r, _, _ = select.select([self.proc.stdout], [], [], max(0, deadline - time.monotonic()))
            if not r:
                self.stop()
                raise RuntimeError("fragile origin did not print READY within %.0fs; stderr:\n%s"
                                   % (timeout, self.stderr()))
            ch = os.read(self.proc.stdout.fileno(), 64)
            if not ch:
                self.proc.wait(5)
                raise RuntimeError("fragile origin exited at start (rc=%s); stderr:\n%s"
                                   % (self.proc.returncode, self.stderr()))
            line += ch
        _, port, cport = line.split()
        self.port, self.control_port = int(port), int(cport)
        self.addr = "127.0.0.1:%d" % self.port
        return self

    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    # -- control port (answered by its own thread, never by the worker pool)
    def control(self, path, timeout=3.0):
        c = HttpConn(self.control_port, timeout=timeout)
        try:
            c.send(("GET %s HTTP/1.1\r\nHost: control\r\nConnection: close\r\n\r\n" % path).encode())
            r = c.read_response()
            if r is None or r.status != 200:
                raise AssertionError("fragile control %s answered %r" % (path, r))
            return json.loads(r.body)
        finally:
            c.close()

    def stats(self):
        """{workers, model, busy, max_busy, queued, hung, started{route},
        served{route}, abandoned, connections{accepted, open}, dep{mode, ms}};
        routes: fast, slow, work, other."""
        return self.control("/__stats")

    def reset(self):
        """Zero the counters; max_busy restarts from the busy count now."""
        return self.control("/__reset")

    def dep(self, mode, ms=None):
        """Switch the dependency of /slow: "hang" or "ok" (ms: its latency)."""
        return self.control("/__dep?mode=%s%s" % (mode, "" if ms is None else "&ms=%d" % ms))

    def hang(self):
        return self.dep("hang")

    def release(self, ms=None):
        return self.dep("ok", ms)

    def wait_stats(self, pred, timeout=5.0, msg="fragile origin stats"):
        """Poll stats() until pred(stats) is true; returns those stats."""
        return wait_until(lambda: (lambda s: s if pred(s) else None)(self.stats()), timeout,
                          interval=0.02, msg=msg)

    def wait_hung(self, n, timeout=5.0):
        return self.wait_stats(lambda s: s["hung"] >= n, timeout, "%d hung /slow requests" % n)

    def wait_busy(self, n, timeout=5.0):
        return self.wait_stats(lambda s: s["busy"] >= n, timeout, "%d busy workers" % n)

    def wait_idle(self, timeout=10.0):
        """No worker busy, nothing queued, nothing hung."""
        return self.wait_stats(lambda s: s["busy"] == 0 and not s["queued"] and s["hung"] == 0,
                               timeout, "an idle worker pool")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        if self.proc is not None and self.proc.stdout:
            self.proc.stdout.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


@pytest.fixture
def fragile_factory(tmp_path):
    """fragile_factory(**kw) -> a started FragileOrigin (keywords of
    FragileOrigin); all are killed at teardown."""
    made = []

    def make(**kw):
        d = tmp_path / ("fragile%d" % len(made))
        d.mkdir()
        fo = FragileOrigin(str(d), start=False, **kw)
        made.append(fo)
        fo.start()
        return fo

    yield make
    for fo in made:
        fo.stop()


# ---- the scenario the bulkhead tests share ------------------------------

# The fragile origin's pool, and the load: open loop, requests per second,
# seconds, and the client's per-request timeout.
W = 8
FAST_RATE, SLOW_RATE = 100, 50
BASELINE_S, HANG_S = 2.0, 4.0
TIMEOUT = 2.0


def hang_scenario(fo, port):
    """/fast alone through the proxy at `port` (the baseline), then /slow
    and /fast together with /slow's dependency hanging. Returns (base,
    fast, slow, origin stats); load.Result each, stats at the end of the
    hang. The generator must have kept its rate, so a collapse is the
    proxy's and the origin's doing."""
    base = load.run([load.Target(port, "/fast", FAST_RATE)], BASELINE_S, timeout=TIMEOUT)["/fast"]
    assert base.success_rate == 1.0, base
    fo.reset()
    fo.hang()
    res = load.run([load.Target(port, "/slow", SLOW_RATE), load.Target(port, "/fast", FAST_RATE)],
                   HANG_S, timeout=TIMEOUT)
    fast, slow = res["/fast"], res["/slow"]
    st = fo.stats()
    print("baseline:", base.summary())
    print("hang:", fast.summary())
    print("hang:", slow.summary())
    print("origin:", st)
    assert abs(fast.send_rate - FAST_RATE) <= 0.1 * FAST_RATE, fast
    assert slow.ok == 0, slow
    return base, fast, slow, st
