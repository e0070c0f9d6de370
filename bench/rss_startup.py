#!/usr/bin/env python3
"""Start-up time and memory of levee, on loopback (bench/rss_startup.sh runs it).

startup: time from exec to the first 200 from /readyz on the admin port,
         median of --runs runs. /readyz answers 200 once the policy is loaded
         and the upstream is reachable, so this is time to useful.
rss:     VmRSS of the levee process with --conns idle keep-alive client
         connections open, each having completed one GET.

The upstream is deploy/demo_service.py. Standard library only.
"""

import argparse
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOST = "127.0.0.1"
LISTEN, ADMIN, UPSTREAM = 17150, 17151, 17152  # outside peers.sh's 17001-17099


def fail(msg):
    sys.exit("rss_startup: " + msg)


def http_status(port, path, timeout=1.0):
    """Status code of one GET, or None when nothing answers yet."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.sendall(b"GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (path.encode(), HOST.encode()))
            line = s.makefile("rb").readline()
    except OSError:
        return None
    parts = line.split()
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None


class Levee:
    """One levee process on the fixed bench ports; its output goes to a log."""

    def __init__(self, binary, policy):
        self.log = tempfile.TemporaryFile()
        args = [binary, "--upstream", "%s:%d" % (HOST, UPSTREAM), "--listen", "%s:%d" % (HOST, LISTEN),
                "--admin", "%s:%d" % (HOST, ADMIN)]
        if policy:
            args += ["--policy", policy]
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout=10.0):
        """Seconds from exec to /readyz 200."""
        deadline = self.t0 + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                self.fail("exited with status %d before /readyz answered 200" % self.proc.returncode)
            if http_status(ADMIN, "/readyz", timeout=0.2) == 200:
                return time.perf_counter() - self.t0
            time.sleep(0.0005)
        self.fail("/readyz did not answer 200 within %.0fs" % timeout)

    def fail(self, msg):
        self.stop()
        self.log.seek(0)
        tail = self.log.read()[-2000:].decode(errors="replace")
        fail("levee %s; its output:\n%s" % (msg, tail))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # drain; exits once no connection is left
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def status_kib(self, field):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        return -1


def read_response(sock):
    """Reads one HTTP/1.1 response (Content-Length or chunked); returns its status."""
    f = sock.makefile("rb")
    status = f.readline().split()
    length, chunked = 0, False
    while True:
        h = f.readline()
        if h in (b"\r\n", b"\n", b""):
            break
        name, _, value = h.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int(f.readline().split(b";")[0], 16)
            f.read(size + 2)
            if size == 0:
                break
    else:
        f.read(length)
    f.close()  # closes the file object only; the socket stays open
    return int(status[1]) if len(status) >= 2 else 0


def is_open(sock):
    sock.setblocking(False)  # a socket with a timeout would wait in poll() first
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def measure_startup(binary, policy, runs):
    times = []
    for _ in range(runs):
        lv = Levee(binary, policy)
        times.append(lv.wait_ready() * 1000)
        lv.stop()
    return times


def measure_rss(binary, policy, conns):
    lv = Levee(binary, policy)
    lv.wait_ready()
    time.sleep(0.5)
    base = lv.status_kib("VmRSS")
    socks, bad = [], 0
    request = b"GET /api/users/1 HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (HOST.encode(), LISTEN)
    try:
        for _ in range(conns):
            s = socket.create_connection((HOST, LISTEN), timeout=10)
            socks.append(s)
            s.sendall(request)
            if read_response(s) != 200:
                bad += 1
        time.sleep(1.0)  # let levee settle: buffers trimmed, upstream pool idle
        rss, hwm = lv.status_kib("VmRSS"), lv.status_kib("VmHWM")
        threads = lv.status_kib("Threads")
        still_open = sum(1 for s in socks if is_open(s))
    except OSError as e:
        lv.fail("connection %d failed: %s" % (len(socks), e))
    finally:
        for s in socks:
            s.close()
        lv.stop()
    return base, rss, hwm, threads, bad, still_open


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--levee", default=os.path.join(ROOT, "build-release", "levee"))
    ap.add_argument("--policy", default="", help="policy file (default: levee's built-in defaults)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--conns", type=int, default=1000)
    args = ap.parse_args()
    if not os.access(args.levee, os.X_OK):
        fail("no levee binary at %s" % args.levee)

    # Enough descriptors for the client sockets here and, inherited, for levee.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.conns + 256
    if soft != resource.RLIM_INFINITY and soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            fail("open-files limit %d is too low for %d connections" % (hard, args.conns))
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    upstream = subprocess.Popen([sys.executable, os.path.join(ROOT, "deploy", "demo_service.py"), "--quiet",
                                 "--host", HOST, "--port", str(UPSTREAM)], stdin=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if http_status(UPSTREAM, "/") == 200:
                break
            if upstream.poll() is not None:
                fail("the demo upstream did not start on %s:%d" % (HOST, UPSTREAM))
            time.sleep(0.05)

        times = measure_startup(args.levee, args.policy, args.runs)
        print("startup: exec -> /readyz 200: median %.1f ms over %d runs (%s ms)"
              % (statistics.median(times), len(times), " ".join("%.1f" % t for t in times)), flush=True)

        base, rss, hwm, threads, bad, still_open = measure_rss(args.levee, args.policy, args.conns)
        note = "" if bad == 0 and still_open == args.conns else \
            "; WARNING: %d non-200 answers, %d of %d still open" % (bad, still_open, args.conns)
        print("rss: VmRSS %.1f MiB with %d idle keep-alive connections (%.1f MiB idle before them, "
              "peak %.1f MiB, %d threads)%s" % (rss / 1024, args.conns, base / 1024, hwm / 1024, threads, note))
        if note:
            sys.exit(1)
    finally:
        upstream.terminate()
        upstream.wait()


if __name__ == "__main__":
    main()
