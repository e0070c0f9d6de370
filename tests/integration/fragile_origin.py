#!/usr/bin/env python3
"""A fragile test origin: behaves like a legacy Tomcat with a fixed pool of
worker threads, for the tests of levee's bulkheads (concurrency caps per
route group).

A fixed pool of W worker threads (--workers, default 8) serves blocking
HTTP/1.1 keep-alive connections. Two threading models (--model):

  request (default)  like Tomcat's NIO connector: a poller thread accepts
                     every connection (up to --max-connections, then the
                     rest waits in the kernel accept queue) and holds the
                     idle keep-alive ones; a connection with a request to
                     read is queued for a worker (FIFO, unbounded, like
                     Tomcat's executor queue), and the worker owns it for
                     that one request, then hands it back to the poller. So
                     a worker is occupied per *request*; idle pooled
                     connections (levee keeps some) cost no worker.
  connection         like Tomcat's old BIO connector: each worker blocks in
                     accept() and owns the connection until it is closed or
                     idle for --keepalive-timeout. Excess connections wait
                     in the kernel accept queue (--backlog, default 1024).

In both, once W requests hang, every other request waits, whatever its path.

Routes (GET or any method; a body is read and discarded):
  /fast              200 "fast\\n", at once
  /slow[?dep_ms=N]   calls the "dependency": sleeps dep_ms (default: the
                     dependency's latency, 20 ms unless /__dep set ms=),
                     or, while the dependency hangs, blocks until it is
                     switched back to ok (then answers normally) or the
                     process stops. It never looks at the client while it
                     waits: an abandoned request keeps its worker, as in a
                     real legacy service.
  /work?ms=N         keeps the worker for N ms (default 10), by sleeping;
                     cpu=1 spins on the CPU instead (holds the GIL)
  anything else      404
Every response carries X-Fragile-Worker (the worker's index) and honours
Connection: close / HTTP/1.0.

Control endpoints, on a second port served by its own thread (never by the
worker pool, so they answer while every worker is stuck):
  GET /__dep?mode=hang|ok[&ms=N]  switch the dependency (ms: its latency
                     when ok); answers the new state as JSON
  GET /__stats       JSON: workers, model, busy (workers occupied now),
                     max_busy (most seen since start or /__reset), queued
                     (request model: connections waiting for a worker),
                     hung (requests blocked on the hung dependency now),
                     started / served per route (requests read / answers
                     written or attempted), abandoned (answers whose write
                     failed: the client had gone), connections {accepted,
                     open}, dep {mode, ms}
  GET /__reset       zero the counters and set max_busy to busy now

When ready it prints "READY <port> <control_port>" on stdout.
"""
import argparse
import collections
import json
import os
import queue
import selectors
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROUTES = ("fast", "slow", "work", "other")
HEAD_LIMIT = 65536


class State:
    def __init__(self, workers, model):
        self.lock = threading.Lock()
        self.workers = workers
        self.model = model
        self.busy = 0
        self.max_busy = 0
        self.hung = 0
        self.started = collections.Counter()
        self.served = collections.Counter()
        self.abandoned = 0
        self.accepted = 0
        self.open = 0
        self.dep_mode = "ok"
        self.dep_ms = 20
        self.dep_ok = threading.Event()
        self.dep_ok.set()
        self.ready_q = None  # request model: the queue of connections for the workers

    def enter(self):
        with self.lock:
            self.busy += 1
            if self.busy > self.max_busy:
                self.max_busy = self.busy

    def leave(self):
        with self.lock:
            self.busy -= 1

    def snapshot(self):
        with self.lock:
            return {
                "workers": self.workers,
                "model": self.model,
                "busy": self.busy,
                "max_busy": self.max_busy,
                "queued": self.ready_q.qsize() if self.ready_q is not None else None,
                "hung": self.hung,
                "started": {r: self.started[r] for r in ROUTES},
                "served": {r: self.served[r] for r in ROUTES},
                "abandoned": self.abandoned,
                "connections": {"accepted": self.accepted, "open": self.open},
                "dep": {"mode": self.dep_mode, "ms": self.dep_ms},
            }

    def reset(self):
        with self.lock:
            self.max_busy = self.busy
            self.started.clear()
            self.served.clear()
            self.abandoned = 0
            self.accepted = 0

    def set_dep(self, mode, ms):
        with self.lock:
            if ms is not None:
                self.dep_ms = ms
            self.dep_mode = mode
            if mode == "hang":
                self.dep_ok.clear()
            else:
                self.dep_ok.set()
            return {"mode": self.dep_mode, "ms": self.dep_ms, "hung": self.hung}


ST = None  # the State


class Conn:
    """One client connection with its own read buffer."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.last_used = time.monotonic()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
        with ST.lock:
            ST.open -= 1

    def _fill(self):
        try:
            data = self.sock.recv(65536)
        except (socket.timeout, OSError):
            return False
        if not data:
            return False
        self.buf += data
        return True

    def has_request(self):
        return b"\r\n\r\n" in self.buf

    def read_request(self):
        """(method, target, version, headers{lower: value}) or None at EOF,
        on a timeout or on garbage. Reads and drops the body."""
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                break
            if len(self.buf) > HEAD_LIMIT or not self._fill():
                return None
        head = bytes(self.buf[:i]).decode("latin-1")
        del self.buf[:i + 4]
        lines = head.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            return None
        headers = {}
        for ln in lines[1:]:
            n, sep, v = ln.partition(":")
            if not sep:
                return None
            n = n.strip().lower()
            v = v.strip()
            headers[n] = headers[n] + ", " + v if n in headers else v
        if "chunked" in headers.get("transfer-encoding", "").lower():
            if not self._drop_chunked():
                return None
        else:
            try:
                n = int(headers.get("content-length", "0"))
            except ValueError:
                return None
            while len(self.buf) < n:
                if not self._fill():
                    return None
            del self.buf[:n]
        return parts[0], parts[1], parts[2], headers

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                ln = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return ln
            if len(self.buf) > HEAD_LIMIT or not self._fill():
                return None

    def _drop_chunked(self):
        while True:
            ln = self._line()
            if ln is None:
                return False
            try:
                size = int(ln.split(b";")[0].strip(), 16)
            except ValueError:
                return False
            if size == 0:
                while True:  # trailers up to the empty line
                    t = self._line()
                    if t is None:
                        return False
                    if t == b"":
                        return True
            while len(self.buf) < size + 2:
                if not self._fill():
                    return False
            del self.buf[:size + 2]


def call_dependency(ms):
    """The legacy service's downstream call: blocks its worker; while the
    dependency hangs, until it is switched back (or the process ends). It
    never checks the client."""
    if not ST.dep_ok.is_set():
        with ST.lock:
            ST.hung += 1
        try:
            ST.dep_ok.wait()
        finally:
            with ST.lock:
                ST.hung -= 1
    if ms > 0:
        time.sleep(ms / 1000.0)


def handle(req, worker):
    """-> (status, body, keep_alive)."""
    method, target, version, headers = req
    path, _, qs = target.partition("?")
    q = dict(urllib.parse.parse_qsl(qs))
    keep = version == "HTTP/1.1"
    ctok = [t.strip().lower() for t in headers.get("connection", "").split(",")]
    if "close" in ctok:
        keep = False
    elif "keep-alive" in ctok:
        keep = True
    route = path.strip("/").split("/")[0] if path.startswith("/") else ""
    route = route if route in ("fast", "slow", "work") else "other"
    with ST.lock:
        ST.started[route] += 1
    try:
        if route == "fast":
            status, body = 200, b"fast\n"
        elif route == "slow":
            ms = int(q["dep_ms"]) if "dep_ms" in q else ST.dep_ms
            call_dependency(ms)
            status, body = 200, b"slow\n"
        elif route == "work":
            ms = int(q.get("ms", "10"))
            if q.get("cpu") == "1":
                end = time.monotonic() + ms / 1000.0
                while time.monotonic() < end:
                    pass
            else:
                time.sleep(ms / 1000.0)
            status, body = 200, b"work\n"
        else:
            status, body = 404, b"not found\n"
    except ValueError:
        status, body = 400, b"bad query\n"
    return route, status, body, keep


REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found"}


def respond(conn, route, status, body, keep, worker, method):
    head = ("HTTP/1.1 %d %s\r\nServer: fragile\r\nContent-Type: text/plain\r\n"
            "Content-Length: %d\r\nX-Fragile-Worker: %d\r\n%s\r\n"
            % (status, REASONS.get(status, "Status"), len(body), worker,
               "" if keep else "Connection: close\r\n")).encode()
    ok = True
    try:
        conn.sock.sendall(head + (b"" if method == "HEAD" else body))
    except OSError:
        ok = False
    with ST.lock:
        ST.served[route] += 1
        if not ok:
            ST.abandoned += 1
    return ok


def serve_one(conn, worker):
    """Read and answer one request. -> True to keep the connection."""
    req = conn.read_request()
    if req is None:
        return False
    route, status, body, keep = handle(req, worker)
    ok = respond(conn, route, status, body, keep, worker, req[0])
    conn.last_used = time.monotonic()
    return ok and keep


# --------------------------------------------------------------------------
# connection model: thread per connection (Tomcat BIO)

def conn_worker(lsock, idx, keepalive_timeout):
    while True:
        try:
            s, _ = lsock.accept()
        except OSError:
            continue
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(keepalive_timeout)
        with ST.lock:
            ST.accepted += 1
            ST.open += 1
        ST.enter()
        c = Conn(s)
        try:
            while serve_one(c, idx):
                pass
        except Exception as e:  # never lose a worker
            sys.stderr.write("worker %d: %r\n" % (idx, e))
        finally:
            c.close()
            ST.leave()


# --------------------------------------------------------------------------
# request model: a poller holds idle connections, workers take one request

class Poller(threading.Thread):
    def __init__(self, lsock, max_connections, keepalive_timeout):
        super().__init__(daemon=True, name="poller")
        self.lsock = lsock
        self.max_connections = max_connections
        self.keepalive_timeout = keepalive_timeout
        self.sel = selectors.DefaultSelector()
        self.rfd, self.wfd = os.pipe()
        os.set_blocking(self.rfd, False)
        os.set_blocking(self.wfd, False)
        self.back = collections.deque()  # connections handed back by workers
        self.idle = set()
        self.accepting = False

    def give_back(self, conn):
        self.back.append(conn)
        self.wake()

    def wake(self):
        try:
            os.write(self.wfd, b"x")
        except BlockingIOError:
            pass

    def _set_accepting(self):
        want = ST.open < self.max_connections
        if want and not self.accepting:
            self.sel.register(self.lsock, selectors.EVENT_READ, None)
        elif not want and self.accepting:
            self.sel.unregister(self.lsock)
        self.accepting = want

    def run(self):
        self.lsock.setblocking(False)
        self.sel.register(self.rfd, selectors.EVENT_READ, "wake")
        self._set_accepting()
        next_sweep = time.monotonic() + 1
        while True:
            for key, _ in self.sel.select(timeout=0.5):
                if key.data == "wake":
                    try:
                        while os.read(self.rfd, 4096):
                            pass
                    except BlockingIOError:
                        pass
                elif key.data is None:
                    self._accept()
                else:
                    c = key.data
                    self.sel.unregister(c.sock)
                    self.idle.discard(c)
                    ST.ready_q.put(c)
            while self.back:
                c = self.back.popleft()
                self.idle.add(c)
                self.sel.register(c.sock, selectors.EVENT_READ, c)
            now = time.monotonic()
            if now >= next_sweep:
                next_sweep = now + 1
                for c in [c for c in self.idle if now - c.last_used > self.keepalive_timeout]:
                    self.idle.discard(c)
                    self.sel.unregister(c.sock)
                    c.close()
            self._set_accepting()

    def _accept(self):
        while ST.open < self.max_connections:
            try:
                s, _ = self.lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.setblocking(True)
            with ST.lock:
                ST.accepted += 1
                ST.open += 1
            c = Conn(s)
            self.idle.add(c)
            self.sel.register(s, selectors.EVENT_READ, c)


def req_worker(poller, idx, read_timeout):
    while True:
        c = ST.ready_q.get()
        ST.enter()
        keep = False
        try:
            c.sock.settimeout(read_timeout)
            keep = serve_one(c, idx)
            # a pipelined request already buffered: this worker goes on
            while keep and c.has_request():
                keep = serve_one(c, idx)
        except Exception as e:  # never lose a worker
            sys.stderr.write("worker %d: %r\n" % (idx, e))
            keep = False
        finally:
            ST.leave()
        if keep:
            poller.give_back(c)
        else:
            c.close()
            poller.wake()  # may accept again under max_connections


# --------------------------------------------------------------------------
# control port

class Control(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        path, _, qs = self.path.partition("?")
        q = dict(urllib.parse.parse_qsl(qs))
        status = 200
        if path == "/__stats":
            out = ST.snapshot()
        elif path == "/__reset":
            ST.reset()
            out = ST.snapshot()
        elif path == "/__dep" and q.get("mode") in ("hang", "ok"):
            try:
                ms = int(q["ms"]) if "ms" in q else None
                out = ST.set_dep(q["mode"], ms)
            except ValueError:
                status, out = 400, {"error": "ms must be an integer"}
        else:
            status, out = 404, {"error": "unknown control path or mode"}
        body = json.dumps(out).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class ControlServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    global ST
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--control-port", type=int, default=0)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--model", choices=("request", "connection"), default="request")
    ap.add_argument("--backlog", type=int, default=1024)
    ap.add_argument("--max-connections", type=int, default=10000,
                    help="request model: open connections before the rest waits in the accept queue")
    ap.add_argument("--keepalive-timeout", type=float, default=75.0,
                    help="seconds an idle keep-alive connection is kept (above levee's 60 s default)")
    ap.add_argument("--dep-ms", type=int, default=20)
    args = ap.parse_args()

    ST = State(args.workers, args.model)
    ST.dep_ms = args.dep_ms
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((args.host, args.port))
    lsock.listen(args.backlog)
    if args.model == "connection":
        for i in range(args.workers):
            threading.Thread(target=conn_worker, args=(lsock, i, args.keepalive_timeout),
                             daemon=True, name="worker-%d" % i).start()
    else:
        ST.ready_q = queue.Queue()
        poller = Poller(lsock, args.max_connections, args.keepalive_timeout)
        for i in range(args.workers):
            # a worker waits at most this long for the rest of a request
            threading.Thread(target=req_worker, args=(poller, i, 10.0),
                             daemon=True, name="worker-%d" % i).start()
        poller.start()
    ctl = ControlServer((args.host, args.control_port), Control)
    threading.Thread(target=ctl.serve_forever, daemon=True, name="control").start()
    sys.stdout.write("READY %d %d\n" % (lsock.getsockname()[1], ctl.server_address[1]))
    sys.stdout.flush()
    try:
        threading.Event().wait()  # until a signal ends the process
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
