#!/usr/bin/env python3
"""An upstream outage under load, levee's circuit breaker beside nginx
proxy_pass (no breaker), side by side in one run.

The upstream is the integration tests' origin (tests/integration/origin.py):
its /flaky/NAME answers 200, or 503 while the script has it fail. The load
is open loop, 100 requests per second (tests/integration/load.py), through
each proxy in turn:

    healthy  5 s
    outage  20 s   the upstream answers 503 to everything
    healed  15 s

For each proxy it prints how many requests reached the upstream during the
outage, the clients' p50 and p99 latency during it, and the seconds from
the heal until every later half-second had only successes (full recovery).

    bench/outage.py                       RATE=100 OUTAGE=20 by default
    bench/outage.py --levee build-release/levee

Loopback only: ports 17301-17304. Needs nginx (deploy/install-deps.sh --bench).
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import load  # noqa: E402

LEVEE_POLICY = """[levee]
workers = 1
access_log = off

[upstream]
response_timeout = 2s

[breaker "b"]
window = 10s
min_requests = 20
failure_rate = 50%
open_for = 2s
open_for_max = 8s
half_open_probes = 3
ramp = 3s

[route "flaky"]
prefix = /flaky/
breaker = b
"""

NGINX_CONF = """daemon off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/nginx.err;
events {{ worker_connections 4096; }}
http {{ access_log off;
  upstream app {{ server 127.0.0.1:{up}; keepalive 64; }}
  server {{ listen 127.0.0.1:{port};
    location / {{ proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }} }} }}
"""


def http_get(port, path):
    """One GET; the whole response, read by its Content-Length."""
    import socket
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(("GET %s HTTP/1.1\r\nHost: b\r\n\r\n" % path).encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536)
    head, body = data.split(b"\r\n\r\n", 1)
    n = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            n = int(v)
    while len(body) < n:
        body += s.recv(65536)
    s.close()
    return head + b"\r\n\r\n" + body


def wait_port(port, timeout=10):
    import socket
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on %d" % port)


def upstream_count(origin_port):
    body = http_get(origin_port, "/count").split(b"\r\n\r\n", 1)[1]
    return int(body)


def set_mode(origin_port, name, mode):
    http_get(origin_port, "/__fail?name=%s&mode=%s" % (name, mode))


def phase(port, path, rate, seconds, step=0.5):
    """[(ok share, latencies)] for each `step` seconds of open-loop load."""
    out = []
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end - step / 2:
        r = load.run([load.Target(port, path, rate)], step, timeout=2.0)[path]
        out.append((r.ok / r.sent if r.sent else 0.0, r.latencies_all))
    return out


def pct(xs, p):
    return load.percentile(xs, p)


def run_one(label, port, origin_port, name, rate, outage_s, healed_s):
    path = "/flaky/" + name
    set_mode(origin_port, name, "ok")
    phase(port, path, rate, 5)
    set_mode(origin_port, name, "503")
    before = upstream_count(origin_port)
    during = phase(port, path, rate, outage_s)
    reached = upstream_count(origin_port) - before
    set_mode(origin_port, name, "ok")
    after = phase(port, path, rate, healed_s)
    lat = [x for _, ls in during for x in ls]
    recovered = None
    for i in range(len(after)):
        if all(ok == 1.0 for ok, _ in after[i:]):
            recovered = i * 0.5
            break
    sent = int(rate * outage_s)
    print("%-20s outage: %5d of ~%d requests reached the upstream; p50 %.2f ms, p99 %.2f ms; "
          "full recovery %s after the heal"
          % (label, reached, sent, (pct(lat, 50) or 0) * 1e3, (pct(lat, 99) or 0) * 1e3,
             "%.1f s" % recovered if recovered is not None else "not within %d s" % healed_s))
    return reached, recovered


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--levee", default=os.path.join(ROOT, "build-release", "levee"))
    ap.add_argument("--rate", type=float, default=float(os.environ.get("RATE", 100)))
    ap.add_argument("--outage", type=float, default=float(os.environ.get("OUTAGE", 20)))
    ap.add_argument("--healed", type=float, default=15)
    a = ap.parse_args()
    if not shutil.which("nginx"):
        sys.exit("bench: nginx not found (deploy/install-deps.sh --bench)")
    d = tempfile.mkdtemp(prefix="outage.")
    procs = []
    try:
        origin = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "integration", "origin.py"),
                                   "--port", "17301"], stdout=subprocess.PIPE)
        procs.append(origin)
        assert origin.stdout.readline().startswith(b"READY")
        with open(os.path.join(d, "levee.ini"), "w") as f:
            f.write(LEVEE_POLICY)
        procs.append(subprocess.Popen([a.levee, "--policy", os.path.join(d, "levee.ini"), "--upstream",
                                       "127.0.0.1:17301", "--listen", "127.0.0.1:17302", "--admin",
                                       "127.0.0.1:17303"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        with open(os.path.join(d, "nginx.conf"), "w") as f:
            f.write(NGINX_CONF.format(d=d, up=17301, port=17304))
        os.makedirs(os.path.join(d, "nginx"), exist_ok=True)
        procs.append(subprocess.Popen(["nginx", "-c", os.path.join(d, "nginx.conf"), "-p",
                                       os.path.join(d, "nginx")], stderr=subprocess.DEVNULL))
        for port in (17302, 17304):
            wait_port(port)
        print("bench: %d cores; %g rps, outage %g s; commit %s" % (
            os.cpu_count(), a.rate, a.outage,
            subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                           text=True).stdout.strip()))
        run_one("levee (breaker)", 17302, 17301, "levee", a.rate, a.outage, a.healed)
        run_one("nginx proxy_pass", 17304, 17301, "nginx", a.rate, a.outage, a.healed)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
