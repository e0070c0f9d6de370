#!/usr/bin/env python3
"""Invalidation latency and write cost over a real Kafka broker (run by
bench/invalidation.sh, which installs and builds first).

1. Latency: levee A and levee B share a topic on one real KRaft broker
   (tests/integration/kafka.py). wrk keeps a steady GET load on B (L1 hits).
   Meanwhile, WRITES times: a URL is made an L1 hit at B, a POST for it goes
   through A, and the clock runs from A's answer until B first answers that
   URL with anything but an L1 hit (polled every POLL_MS on a keep-alive
   connection). p50/p90/p99/max of that, plus B's own histogram
   (levee_kafka_apply_latency_seconds: event timestamp to application).
2. Write cost: wrk POSTs for DUR seconds through nginx proxy_pass, through
   levee without Kafka, and through levee with Kafka (every POST publishes
   one event), one after the other on the same upstream.

Every process started here is stopped at the end, by PID."""
import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from kafka import KafkaBroker  # noqa: E402

LEVEE = os.path.join(ROOT, "build-release", "levee")
WRITES = int(os.environ.get("WRITES", "300"))
DUR = int(os.environ.get("DUR", "8"))
CONN = int(os.environ.get("CONN", "50"))
READ_CONN = int(os.environ.get("READ_CONN", "8"))
POLL_MS = float(os.environ.get("POLL_MS", "0.5"))
PORT = int(os.environ.get("PORT_BASE", "17201"))
UP, PX, A, B, C = PORT, PORT + 1, PORT + 2, PORT + 4, PORT + 6

procs = []


def start(args, **kw):
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=kw.pop("stderr", subprocess.DEVNULL), **kw)
    procs.append(p)
    return p


def wait_http(port, path="/", timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", path)
            if c.getresponse().status < 500:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit("bench: nothing answers on port %d" % port)


def nginx_confs(d):
    body = "x" * 1024
    up = f"""daemon off; worker_processes 1; pid {d}/up.pid; error_log {d}/up.err;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{UP} reuseport backlog=4096;
    location / {{ return 200 "{body}"; }} }} }}
"""
    px = f"""user root; daemon off; worker_processes 1; pid {d}/px.pid; error_log {d}/px.err;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000;
  upstream app {{ server 127.0.0.1:{UP}; keepalive 64; }}
  server {{ listen 127.0.0.1:{PX};
    location / {{ proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }} }} }}
"""
    for name, text in (("up", up), ("px", px)):
        os.makedirs(os.path.join(d, name), exist_ok=True)
        with open(os.path.join(d, name + ".conf"), "w") as f:
            f.write(text)


def levee(d, name, port, kafka=None, topic=None):
    pol = os.path.join(d, name + ".ini")
    with open(pol, "w") as f:
        f.write("[levee]\nworkers = 1\naccess_log = off\nlog_level = warn\n")
        f.write("[route \"all\"]\nprefix = /\ncache_ttl = 60s\n")
        if kafka:
            f.write("[kafka]\nbrokers = %s\ntopic = %s\ninstance = %s\noutbox = %s/outbox-%s\n"
                    % (kafka, topic, name, d, name))
    start([LEVEE, "--policy", pol, "--upstream", "127.0.0.1:%d" % UP, "--listen", "127.0.0.1:%d" % port,
           "--admin", "127.0.0.1:%d" % (port + 1)], stderr=open(os.path.join(d, name + ".err"), "w"))
    wait_http(port + 1, "/readyz")


def kafka_status(port):
    import json
    c = http.client.HTTPConnection("127.0.0.1", port + 1, timeout=5)
    c.request("GET", "/status")
    return json.loads(c.getresponse().read())["kafka"]


def wait_synced(port, timeout=60):
    deadline = time.monotonic() + timeout
    while kafka_status(port)["cache"] != "normal":
        if time.monotonic() > deadline:
            raise SystemExit("bench: levee on %d never caught up with the topic" % port)
        time.sleep(0.1)


def metrics(port):
    c = http.client.HTTPConnection("127.0.0.1", port + 1, timeout=5)
    c.request("GET", "/metrics")
    return c.getresponse().read().decode()


def hist_quantile(text, name, q):
    """Upper bound of the bucket holding quantile q."""
    rows = [(float(le) if le != "+Inf" else float("inf"), float(v))
            for le, v in re.findall(r'^%s_bucket\{le="([^"]+)"\} (\S+)$' % name, text, re.M)]
    total = rows[-1][1] if rows else 0
    for le, cum in rows:
        if total and cum >= q * total:
            return le
    return float("nan")


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def latency(d, broker, topic):
    levee(d, "a", A, broker.bootstrap, topic)
    levee(d, "b", B, broker.bootstrap, topic)
    wait_synced(A)
    wait_synced(B)
    # a steady read load on B, over 100 cached URLs
    lua = os.path.join(d, "reads.lua")
    with open(lua, "w") as f:
        f.write('math.randomseed(os.time())\n'
                'request = function() return wrk.format("GET", "/r/" .. math.random(1, 100)) end\n')
    load = start(["wrk", "-t1", "-c%d" % READ_CONN, "-d%ds" % (WRITES // 20 + 30), "-s", lua,
                  "http://127.0.0.1:%d/" % B])
    cb = http.client.HTTPConnection("127.0.0.1", B, timeout=5)
    ca = http.client.HTTPConnection("127.0.0.1", A, timeout=5)

    def get_b(path):
        cb.request("GET", path)
        r = cb.getresponse()
        r.read()
        return r.getheader("Cache-Status", "")

    samples = []
    for i in range(WRITES):
        u = "/w/%d" % i
        get_b(u)
        assert get_b(u) == "levee; hit"
        ca.request("POST", u, body=b"x")
        ca.getresponse().read()
        t0 = time.perf_counter()
        while get_b(u) == "levee; hit":
            time.sleep(POLL_MS / 1000)
            if time.perf_counter() - t0 > 10:
                raise SystemExit("bench: write %d never reached B" % i)
        samples.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.02)
    load.send_signal(signal.SIGINT)
    load.wait()
    m = metrics(B)
    ms = [round(x, 2) for x in (pct(samples, .5), pct(samples, .9), pct(samples, .99), max(samples))]
    print("invalidation A->B over Kafka, %d writes under a steady read load on B (wrk -c%d):"
          % (WRITES, READ_CONN))
    print("  write answered at A -> B stops serving it: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms"
          % tuple(ms))
    print("  B's histogram (event ts -> applied): p50 <= %g ms, p99 <= %g ms (bucket bounds)"
          % (hist_quantile(m, "levee_kafka_apply_latency_seconds", .5) * 1000,
             hist_quantile(m, "levee_kafka_apply_latency_seconds", .99) * 1000))
    print("  target: p99 < 50 ms -> %s" % ("met" if ms[2] < 50 else "MISSED"))
    for p in procs[:]:
        if p.args and p.args[0] == LEVEE:
            p.send_signal(signal.SIGTERM)
            p.wait(15)
            procs.remove(p)


def wrk_post(d, name, port):
    lua = os.path.join(d, "post.lua")
    with open(lua, "w") as f:
        f.write('math.randomseed(os.time())\n'
                'request = function() return wrk.format("POST", "/p/" .. math.random(1, 10000), nil, "x") end\n')
    out = subprocess.run(["wrk", "-t1", "-c%d" % CONN, "-d%ds" % DUR, "--latency", "-s", lua,
                          "http://127.0.0.1:%d/" % port], capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+(\S+)", out).group(1))
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)
    print("  %-24s rps=%-10.0f p99=%s" % (name, rps, p99))
    return rps


def throughput(d, broker, topic):
    levee(d, "plain", C)
    levee(d, "kafka", A, broker.bootstrap, topic)
    wait_synced(A)
    print("writes (POST, 1 KiB answers), wrk -c%d for %ds each, 1 worker each:" % (CONN, DUR))
    r_px = wrk_post(d, "nginx-proxy_pass", PX)
    r_plain = wrk_post(d, "levee (no Kafka)", C)
    before = metrics(A)
    r_kafka = wrk_post(d, "levee + Kafka", A)
    time.sleep(2)
    after = metrics(A)

    def val(text, name):
        m = re.search(r"^%s (\S+)$" % name, text, re.M)
        return float(m.group(1)) if m else 0.0
    produced = val(after, "levee_kafka_events_produced_total") - val(before, "levee_kafka_events_produced_total")
    spooled = val(after, "levee_kafka_events_spooled_total") - val(before, "levee_kafka_events_spooled_total")
    print("  events published during the run: %d (%d spooled)" % (produced, spooled))
    print("  levee + Kafka / nginx-proxy_pass: rps %.2fx; levee + Kafka / levee alone: %.2fx"
          % (r_kafka / r_px, r_kafka / r_plain))


def main():
    d = tempfile.mkdtemp(prefix="levee-inval-bench-")
    os.chmod(d, 0o755)
    broker = KafkaBroker()
    try:
        broker.start()
        nginx_confs(d)
        start(["nginx", "-c", os.path.join(d, "up.conf"), "-p", os.path.join(d, "up")])
        start(["nginx", "-c", os.path.join(d, "px.conf"), "-p", os.path.join(d, "px")])
        wait_http(UP)
        wait_http(PX)
        t1, t2 = "bench-lat", "bench-put"
        broker.create_topic(t1, partitions=3)
        broker.create_topic(t2, partitions=3)
        print("invalidation bench: %d cores; commit %s" % (os.cpu_count(), subprocess.run(
            ["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()))
        latency(d, broker, t1)
        throughput(d, broker, t2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        broker.close()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
