#!/usr/bin/env python3
"""Overload at 3x capacity through nginx proxy_pass, HAProxy (maxconn and
timeout queue), levee with a bulkhead alone and levee with degradation
tiers, one after the other, each in front of a fresh fragile origin.

The scenario is the integration test's (tests/integration/overload.py): a
legacy-like origin with W=4 worker threads and a FIFO queue, 40 ms per
request, so its capacity C is about 100 requests per second (measured
first, closed loop); three routes, critical, normal and optional; open-loop
load (tests/integration/load.py) at 3xC for 20 s, 20% / 30% / 50%.

For each proxy it prints the critical route's success share and p99 (of
its 2xx answers, from each request's scheduled send), and goodput: 2xx
answers per second across the routes, against C.

    bench/tiers.py                        --seconds 20 by default
    bench/tiers.py --levee build-release/levee

HAProxy is set as a competent operator would set it in front of a service
with 4 workers: `maxconn 4` on the server (the excess waits in HAProxy's
queue, not in the service's) and `timeout queue 1s`: under the clients' 2 s
timeout, so a queued request is refused with 503 before its client gives up
and the service never works for a client that has left, and 25 times the
service time, so a burst is ridden out rather than refused.

Loopback only: ports 17401-17416. Needs nginx and HAProxy
(deploy/install-deps.sh --bench).
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import load  # noqa: E402
import overload  # noqa: E402
from fragile import FragileOrigin  # noqa: E402
from harness import render_policy  # noqa: E402
from outage import NGINX_CONF, wait_port  # noqa: E402  (the same nginx, the same wait)

HAPROXY_CFG = """global
  maxconn 4096
  nbthread 1
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  timeout queue 1s
  http-reuse always
frontend f
  bind 127.0.0.1:{port}
  default_backend b
backend b
  server s1 127.0.0.1:{up} maxconn {w}
"""


def proxies(d, levee):
    """[(label, origin port, proxy port, argv)] in the order they run."""
    out = []
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(NGINX_CONF.format(d=d, up=17401, port=17411))
    os.makedirs(os.path.join(d, "nginx"), exist_ok=True)
    out.append(("nginx proxy_pass", 17401, 17411,
                ["nginx", "-c", os.path.join(d, "nginx.conf"), "-p", os.path.join(d, "nginx")]))
    with open(os.path.join(d, "haproxy.cfg"), "w") as f:
        f.write(HAPROXY_CFG.format(port=17412, up=17402, w=overload.W))
    out.append(("HAProxy maxconn %d, queue 1s" % overload.W, 17402, 17412,
                ["haproxy", "-f", os.path.join(d, "haproxy.cfg"), "-db"]))
    for label, tiers, prios, up, port in (("levee bulkhead, no priorities", False, False, 17403, 17413),
                                          ("levee bulkhead + priorities", False, True, 17405, 17417),
                                          ("levee bulkhead + tiers", True, True, 17404, 17415)):
        pol = os.path.join(d, "levee-%d.ini" % port)
        with open(pol, "w") as f:
            f.write(render_policy(overload.policy(tiers, prios)))
        out.append((label, up, port, [levee, "--policy", pol, "--upstream", "127.0.0.1:%d" % up,
                                      "--listen", "127.0.0.1:%d" % port, "--admin", "127.0.0.1:%d" % (port + 1)]))
    return out


def run_one(d, label, up, port, argv, c, seconds):
    fo = FragileOrigin(d, workers=overload.W, port=up)
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        base = load.run(overload.targets(port, 0.5 * c, {"critical": 1.0}), 3.0,
                        timeout=overload.TIMEOUT)["critical"]
        res = load.run(overload.targets(port, 3 * c), seconds, timeout=overload.TIMEOUT)
        lag = max(r.lag_p99 or 0 for r in res.values())
        ok, p99, good = overload.figures(label, res, seconds, c, quiet=True)
        print("%-30s critical %6.2f%% ok, p99 %7.1f ms (unloaded %.1f ms); goodput %5.1f rps = %5.1f%% of C;"
              " generator lag p99 %.1f ms"
              % (label, 100 * ok, (p99 or 0) * 1e3, (base.p99_ok or 0) * 1e3, good * c, 100 * good, lag * 1e3))
        sys.stdout.flush()
    finally:
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
        fo.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--levee", default=os.path.join(ROOT, "build-release", "levee"))
    ap.add_argument("--seconds", type=float, default=20.0)
    a = ap.parse_args()
    for tool in ("nginx", "haproxy"):
        if not shutil.which(tool):
            sys.exit("bench: %s not found (deploy/install-deps.sh --bench)" % tool)
    d = tempfile.mkdtemp(prefix="tiers.")
    try:
        fo = FragileOrigin(d, workers=overload.W)
        try:
            c = overload.closed_loop_rate(fo.port)
        finally:
            fo.stop()
        print("bench: %d cores; origin W=%d x %d ms, C = %.1f rps (closed loop); 3xC = %.0f rps for %g s, "
              "20/30/50; commit %s" % (
                  os.cpu_count(), overload.W, overload.WORK_MS, c, 3 * c, a.seconds,
                  subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                 text=True).stdout.strip()))
        for label, up, port, argv in proxies(d, a.levee):
            run_one(d, label, up, port, argv, c, a.seconds)
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
