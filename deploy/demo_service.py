#!/usr/bin/env python3
"""A tiny service to put levee in front of: a legacy JSON API that knows
nothing about caching (it sends no Cache-Control, ETag or Last-Modified).

  GET    /                    a short HTML page
  GET    /api/users           all users
  GET    /api/users/<id>      one user (404 if unknown)
  POST   /api/users           create: body {"name": "..."}; 201 + Location
  PUT    /api/users/<id>      create or replace: body {"name": "..."}
  DELETE /api/users/<id>      delete

Failure modes, to watch levee's protection work (deploy/local-stack.sh);
they apply to every path but /_demo/ and end by themselves:

  POST   /_demo/fail?for=S        answer 500 to everything for S seconds
  POST   /_demo/slow?ms=M&for=S   wait M ms before every answer for S seconds
  POST   /_demo/normal            end both now
  GET    /_demo/mode              what is in force, and for how long

Every JSON answer says when it was served and which proxy headers arrived
(X-Request-Id, Via, X-Forwarded-For, traceparent), so you can see what levee
adds. Standard library only.

  python3 deploy/demo_service.py [--host 127.0.0.1] [--port 8080]
"""

import argparse
import json
import urllib.parse
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

USER_PATH = re.compile(r"^/api/users/([A-Za-z0-9_-]{1,64})$")
SHOWN_HEADERS = ("x-request-id", "via", "x-forwarded-for", "x-forwarded-proto", "traceparent")
MAX_BODY = 64 * 1024

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>levee demo service</title></head>
<body>
<h1>levee demo service</h1>
<p>A plain JSON API with no caching headers. Try
<a href="/api/users">/api/users</a> and <a href="/api/users/1">/api/users/1</a>.</p>
</body></html>
"""


class Store:
    """Users in memory; the lock makes the threaded server safe."""

    def __init__(self):
        self.lock = threading.Lock()
        self.users = {"1": {"id": "1", "name": "Ada"}, "2": {"id": "2", "name": "Grace"}}
        self.next_id = 3
        self.version = 0  # bumped by every write


STORE = Store()

MAX_MODE_SECONDS = 3600
MAX_SLOW_MS = 30000


class Modes:
    """The failure modes in force: each ends at a monotonic deadline."""

    def __init__(self):
        self.lock = threading.Lock()
        self.fail_until = 0.0
        self.slow_until = 0.0
        self.slow_ms = 0

    def now(self):
        """(fail: bool, slow_ms: int) for a request arriving now."""
        t = time.monotonic()
        with self.lock:
            return t < self.fail_until, self.slow_ms if t < self.slow_until else 0

    def describe(self):
        t = time.monotonic()
        with self.lock:
            return {
                "fail_for_s": round(max(0.0, self.fail_until - t), 1),
                "slow_ms": self.slow_ms if t < self.slow_until else 0,
                "slow_for_s": round(max(0.0, self.slow_until - t), 1),
            }


MODES = Modes()


def bounded_int(query, name, lo, hi):
    """query[name] as an int in [lo, hi]; raises ValueError with a sentence."""
    raw = query.get(name, [None])[0]
    if raw is None:
        raise ValueError("give %s=N (%d to %d)" % (name, lo, hi))
    raw = raw[:-1] if name == "for" and raw.endswith("s") else raw
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        raise ValueError("%s must be a whole number from %d to %d, not %r" % (name, lo, hi, raw))
    return int(raw)


def served_at():
    """Wall-clock time with milliseconds: shows whether an answer is fresh."""
    now = time.time()
    return time.strftime("%H:%M:%S", time.localtime(now)) + ".%03d" % int(now % 1 * 1000)


def guarded(method):
    """Every method goes through the control paths and the failure modes
    first. Those answer without reading a request body, so the connection
    closes after them when there is one (said in the answer's head)."""
    def run(self):
        special = self.path.startswith("/_demo/") or MODES.now() != (False, 0)
        has_body = self.headers.get("Content-Length", "0") not in ("", "0") or self.headers.get("Transfer-Encoding")
        if special and has_body:
            self.close_connection = True
        if self.control() or self.misbehave():
            return
        method(self)
    run.__doc__ = method.__doc__
    return run


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so levee can pool connections
    # Head and body go out in two writes; with Nagle on, the second waits for
    # the peer's delayed ACK (40 ms) on every reused connection.
    disable_nagle_algorithm = True
    server_version = "demo-service/1"

    def log_message(self, fmt, *args):
        sys.stderr.write("demo-service: %s\n" % (fmt % args))

    # -- helpers -------------------------------------------------------

    def send_body(self, status, body, ctype, extra=None):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        if status != 204:  # a 204 carries no body and no Content-Length (RFC 9110 8.6)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_json(self, status, obj, extra=None):
        with STORE.lock:
            version = STORE.version
        obj = dict(obj)
        obj["_demo"] = {
            "served_at": served_at(),
            "store_version": version,
            "seen_headers": {h: self.headers[h] for h in SHOWN_HEADERS if self.headers[h] is not None},
        }
        self.send_body(status, json.dumps(obj, indent=2) + "\n", "application/json", extra)

    def read_json(self):
        """Returns the request's JSON object, or None after answering 400/413."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.close_connection = True  # the body was not read
            self.send_json(400, {"error": "send the body with Content-Length"})
            return None
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            n = -1
        if n < 0:
            self.close_connection = True
            self.send_json(400, {"error": "bad Content-Length"})
            return None
        if n > MAX_BODY:
            self.close_connection = True
            self.send_json(413, {"error": "body too large"})
            return None
        raw = self.rfile.read(n) if n else b"{}"
        try:
            obj = json.loads(raw)
        except ValueError:
            obj = None
        if not isinstance(obj, dict) or not isinstance(obj.get("name", ""), str):
            self.send_json(400, {"error": 'expected a JSON object like {"name": "..."}'})
            return None
        return obj

    def control(self):
        """/_demo/...: switches a failure mode. True when it answered."""
        path, _, qs = self.path.partition("?")
        if not path.startswith("/_demo/"):
            return False
        query = urllib.parse.parse_qs(qs)
        try:
            if path == "/_demo/mode" and self.command in ("GET", "HEAD"):
                pass
            elif path == "/_demo/fail" and self.command == "POST":
                secs = bounded_int(query, "for", 1, MAX_MODE_SECONDS)
                with MODES.lock:
                    MODES.fail_until = time.monotonic() + secs
            elif path == "/_demo/slow" and self.command == "POST":
                ms = bounded_int(query, "ms", 1, MAX_SLOW_MS)
                secs = bounded_int(query, "for", 1, MAX_MODE_SECONDS)
                with MODES.lock:
                    MODES.slow_ms, MODES.slow_until = ms, time.monotonic() + secs
            elif path == "/_demo/normal" and self.command == "POST":
                with MODES.lock:
                    MODES.fail_until = MODES.slow_until = 0.0
            else:
                self.send_json(404, {"error": "POST /_demo/fail?for=S, /_demo/slow?ms=M&for=S, "
                                              "/_demo/normal; GET /_demo/mode"})
                return True
        except ValueError as e:
            self.send_json(400, {"error": str(e)})
            return True
        self.send_json(200, {"mode": MODES.describe()})
        return True

    def misbehave(self):
        """Applies the failure modes in force. True when it answered."""
        fail, slow_ms = MODES.now()
        if slow_ms:
            time.sleep(slow_ms / 1000.0)
        if fail:
            self.send_json(500, {"error": "failing on purpose: POST /_demo/normal ends it"})
            return True
        return False

    # -- methods -------------------------------------------------------

    @guarded
    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/":
            self.send_body(200, PAGE, "text/html; charset=utf-8")
            return
        if path == "/api/users":
            with STORE.lock:
                users = sorted(STORE.users.values(), key=lambda u: u["id"])
            self.send_json(200, {"users": users})
            return
        m = USER_PATH.match(path)
        if m:
            with STORE.lock:
                user = STORE.users.get(m.group(1))
            if user is None:
                self.send_json(404, {"error": "no such user"})
            else:
                self.send_json(200, user)
            return
        self.send_json(404, {"error": "not found"})

    do_HEAD = do_GET

    @guarded
    def do_POST(self):
        if self.path.split("?", 1)[0] != "/api/users":
            self.send_json(405 if USER_PATH.match(self.path) else 404, {"error": "POST to /api/users"})
            return
        obj = self.read_json()
        if obj is None:
            return
        with STORE.lock:
            uid = str(STORE.next_id)
            STORE.next_id += 1
            user = {"id": uid, "name": obj.get("name", "user %s" % uid)}
            STORE.users[uid] = user
            STORE.version += 1
        self.send_json(201, user, {"Location": "/api/users/" + uid})

    @guarded
    def do_PUT(self):
        m = USER_PATH.match(self.path.split("?", 1)[0])
        if not m:
            self.send_json(404, {"error": "PUT to /api/users/<id>"})
            return
        obj = self.read_json()
        if obj is None:
            return
        uid = m.group(1)
        with STORE.lock:
            created = uid not in STORE.users
            user = {"id": uid, "name": obj.get("name", "user %s" % uid)}
            STORE.users[uid] = user
            STORE.version += 1
        self.send_json(201 if created else 200, user)

    @guarded
    def do_DELETE(self):
        m = USER_PATH.match(self.path.split("?", 1)[0])
        with STORE.lock:
            gone = m is not None and STORE.users.pop(m.group(1), None) is not None
            if gone:
                STORE.version += 1
        if gone:
            self.send_body(204, b"", "")
        else:
            self.send_json(404, {"error": "no such user"})


def main():
    ap = argparse.ArgumentParser(description="levee demo service")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--quiet", action="store_true", help="print nothing but errors")
    args = ap.parse_args()
    if args.quiet:
        Handler.log_message = lambda self, fmt, *a: None
    ThreadingHTTPServer.daemon_threads = True
    try:
        srv = ThreadingHTTPServer((args.host, args.port), Handler)
    except OSError as e:
        sys.exit("demo-service: cannot listen on %s:%d: %s" % (args.host, args.port, e.strerror))
    if not args.quiet:
        print("demo-service: listening on http://%s:%d/" % (args.host, args.port), file=sys.stderr, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()


if __name__ == "__main__":
    main()
