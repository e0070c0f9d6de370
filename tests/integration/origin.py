#!/usr/bin/env python3
"""Test origin for levee's integration tests.

A raw-socket asyncio HTTP/1.1 server, run as its own process so a test can
kill it. It parses the (well-formed, CRLF) requests levee sends by hand and
is deliberately strict: anything that is not clean HTTP/1.1 with at most one
framing header is logged as a "parse_error" event, so a test sees it.

Every event goes into an in-memory log with a sequence number, read with
    GET /__log?since=SEQ        -> JSON list of events with seq >= SEQ
    GET /__mark                 -> {"next": SEQ} (the seq the next event gets)
These /__ paths are never logged themselves. Tests talk to them directly,
never through levee.

Events:
  proxy        {conn, line}   a PROXY protocol v1 line the connection opened with
  conn_open    {conn, peer}   peer: the client's address
  conn_close   {conn}
  request      {conn, method, target, version, headers[[n,v]..], framing,
                body_len, body_sha256, trailers, chunks}   (after the body)
  partial      {conn, method, target, headers, framing, body_len, error}
               (the head arrived, the body did not complete)
  parse_error  {conn, error, raw}
  aborted      {conn, target, phase}  the peer closed while we were waiting
  done         {conn, target, bytes}  the whole response was written
  write_failed {conn, target, bytes, error}

Behaviours by path (query parameters in brackets):
  /echo                 200 JSON of the request seen
  /bytes[n,mode]        n bytes of the pattern (byte i = i % 251);
                        mode=cl (default) | chunked | close; chunked=1 = mode chunked
  /sink                 reads the body, 200 JSON {len, sha256, framing}
  /slow[head_ms,body_ms,n]  head after head_ms, body (n bytes) after body_ms
  /drop[after,cl,chunked,before,eof,rst]  head (CL cl, or chunked, or eof=1:
                        no framing, the body ends at the close), `after` body
                        bytes, then close; before=1 closes without any
                        response byte; rst=1 resets the connection instead of
                        closing it (SO_LINGER 0), rst_ms after the last byte
  /status/NNN           status NNN (204/304: no body)
  /close                200 with Connection: close, then close
  /hang                 never responds (logs "aborted" when the peer leaves)
  /headers[?k=v...]     200 "ok" with the query pairs as response headers
  /count                200, body = number of requests seen so far
  /interim              103 Early Hints, then 200 "final"
  /interim2/KIND/..[n,ms,gap_ms,size]  after ms, n 103s (the first with
                        hop-by-hop fields; size: an X-Pad of that many bytes),
                        then after gap_ms (if any 103 went) the final:
                        KIND 102 a 102 first;
                        drop: close instead; flip: a plain 200 first, then
                        drop; retry: 503; chunked: chunked
                        200; else 200 "final-N" (N: requests to this path)
  /method/NNN/...[ms]   GET/HEAD 200 "vSEQ" (new each time); other methods
                        status NNN (after ms), Location/Content-Location
                        from X-Loc/X-CLoc
  /garbage[kind]        an unparseable or ambiguous response, then close
  /chunkext[n,piece]    chunked 200 whose first chunk-size line carries an
                        extension of n bytes, written `piece` bytes at a time
  /targeted/<name>[?Field=Value...]  200, body "n<k>" for its k-th request,
                        every query pair a response field (a name may repeat)
On /bytes, /slow, /drop and /status: h.NAME=VALUE adds a response header.
/flaky/<name> modes (set by /__fail): ok, 503, drop, nostore (200 with
Cache-Control: no-store), slow (the ok answer after `ms` ms), hang (no
answer at all); times=N: that mode for the next N requests only, then ok.
/cstat/...[cc,age,vary,etag,status,ms]: Cache-Control, Age, Vary and ETag as given
(304 to an If-None-Match naming the ETag), status `status`, after `ms` ms.
Any path: _close_after_ms=N closes the connection N ms after the response,
without announcing it (a stale pooled connection).
HEAD gets the same head as GET and no body.
"""
import argparse
import asyncio
import email.utils
import hashlib
import json
import os
import re
import socket
import struct
import sys
import urllib.parse

PATTERN_MOD = 251
_BLOCK = bytes(i % PATTERN_MOD for i in range(PATTERN_MOD * 1100))  # ~270 KB
STEP = 256 * 1024


def pattern_chunk(offset, length):
    """`length` (<= STEP) pattern bytes starting at absolute `offset`."""
    s = offset % PATTERN_MOD
    return _BLOCK[s:s + length]


TOKEN_RE = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
HEAD_LIMIT = 1 << 20

EVENTS = []
STATE = {"conn_seq": 0, "requests": 0}
STORE = {}  # /store/<name>: a resource that exists once a PUT created it
INTERIM_HITS = {}  # /interim2/...: requests seen per path
FLAKY = {}  # /flaky/<name>: {"mode": "ok"|"503"|"drop", "version": n}, set by /__fail
TARGETED = {}  # /targeted/<name>: how many requests it has had


def log(ev):
    ev["seq"] = len(EVENTS)
    EVENTS.append(ev)


class ParseError(Exception):
    pass


class Peer:
    """Buffered reader over an asyncio StreamReader that never loses bytes."""

    def __init__(self, reader, writer, conn):
        self.r = reader
        self.w = writer
        self.conn = conn
        self.buf = bytearray()
        self.eof = False

    async def fill(self, timeout=None):
        if self.eof:
            return False
        try:
            if timeout is None:
                data = await self.r.read(262144)
            else:
                data = await asyncio.wait_for(self.r.read(262144), timeout)
        except asyncio.TimeoutError:
            raise  # a TimeoutError is an OSError: it must not read as EOF
        except (ConnectionError, OSError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    async def read_head(self):
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                head = bytes(self.buf[:i])
                del self.buf[:i + 4]
                return head
            if len(self.buf) > HEAD_LIMIT:
                raise ParseError("head too large")
            if not await self.fill():
                if self.buf:
                    raise ParseError("eof inside head")
                return None

    async def read_line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                if b"\n" in line or b"\r" in line:
                    raise ParseError("bare CR/LF in chunk line")
                return line
            if len(self.buf) > 65536:
                raise ParseError("chunk line too long")
            if not await self.fill():
                raise EOFError("eof in chunk line")

    async def read_upto(self, n):
        if not self.buf:
            if not await self.fill():
                raise EOFError("eof in body")
        take = bytes(self.buf[:n])
        del self.buf[:len(take)]
        return take

    async def wait_or_eof(self, seconds):
        """Sleep `seconds` while watching the peer; True if it went away."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                if not await self.fill(remaining):
                    return True
            except asyncio.TimeoutError:
                return False

    async def write(self, data):
        self.w.write(data)
        await self.w.drain()


def parse_head(head):
    lines = head.split(b"\r\n")
    for ln in lines:
        if b"\n" in ln or b"\r" in ln:
            raise ParseError("bare CR or LF in head")
    parts = lines[0].split(b" ")
    if len(parts) != 3:
        raise ParseError("bad request line %r" % lines[0][:200])
    method, target, version = parts
    if not TOKEN_RE.match(method):
        raise ParseError("bad method")
    if version != b"HTTP/1.1":
        raise ParseError("levee must send HTTP/1.1, got %r" % version)
    headers = []
    for ln in lines[1:]:
        if not ln:
            raise ParseError("empty header line")
        if ln[:1] in (b" ", b"\t"):
            raise ParseError("obs-fold")
        if b":" not in ln:
            raise ParseError("header without colon")
        name, value = ln.split(b":", 1)
        if not TOKEN_RE.match(name):
            raise ParseError("bad header name %r" % name[:100])
        if any(c < 0x20 and c != 0x09 or c == 0x7f for c in value):
            raise ParseError("control character in header value")
        headers.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))
    return method.decode(), target.decode("latin-1"), version.decode(), headers


def hget_all(headers, name):
    name = name.lower()
    return [v for n, v in headers if n.lower() == name]


def framing_of(headers):
    te = hget_all(headers, "transfer-encoding")
    cl = hget_all(headers, "content-length")
    if te and cl:
        raise ParseError("both Transfer-Encoding and Content-Length")
    if len(te) > 1:
        raise ParseError("several Transfer-Encoding headers")
    if len(cl) > 1:
        raise ParseError("several Content-Length headers")
    if te:
        if te[0].strip().lower() != "chunked":
            raise ParseError("Transfer-Encoding %r" % te[0])
        return "chunked", None
    if cl:
        if not re.fullmatch(r"[0-9]+", cl[0]):
            raise ParseError("bad Content-Length %r" % cl[0])
        return "content-length", int(cl[0])
    return "none", 0


class Body:
    def __init__(self):
        self.len = 0
        self.sha = hashlib.sha256()
        self.keep = bytearray()
        self.chunks = 0
        self.trailers = []

    def add(self, data):
        self.len += len(data)
        self.sha.update(data)
        if len(self.keep) < 65536:
            self.keep += data[:65536 - len(self.keep)]


async def read_body(peer, framing, clen, body):
    if framing == "content-length":
        left = clen
        while left > 0:
            data = await peer.read_upto(min(left, 262144))
            body.add(data)
            left -= len(data)
    elif framing == "chunked":
        while True:
            line = await peer.read_line()
            size_s = line.split(b";", 1)[0]
            if not re.fullmatch(rb"[0-9A-Fa-f]{1,16}", size_s):
                raise ParseError("bad chunk size %r" % line[:100])
            size = int(size_s, 16)
            if size == 0:
                break
            body.chunks += 1
            left = size
            while left > 0:
                data = await peer.read_upto(min(left, 262144))
                body.add(data)
                left -= len(data)
            if await peer.read_line() != b"":
                raise ParseError("chunk data not followed by CRLF")
        while True:
            line = await peer.read_line()
            if line == b"":
                break
            n, _, v = line.partition(b":")
            body.trailers.append((n.decode("latin-1"), v.strip().decode("latin-1")))


def status_line(code):
    reasons = {100: "Continue", 103: "Early Hints", 200: "OK", 204: "No Content",
               304: "Not Modified", 404: "Not Found"}
    return b"HTTP/1.1 %d %s\r\n" % (code, reasons.get(code, "Status").encode())


def build_head(code, headers):
    out = bytearray(status_line(code))
    for n, v in headers:
        out += n.encode("latin-1") + b": " + v.encode("latin-1") + b"\r\n"
    out += b"\r\n"
    return bytes(out)


class Conn:
    def __init__(self, peer):
        self.peer = peer
        self.close = False
        self.reset = False  # close with an RST instead of a FIN
        self.sent = 0


def extra_headers(qpairs):
    """Response headers asked for with h.NAME=VALUE query parameters."""
    return [(k[2:], v) for k, v in qpairs if k.startswith("h.")]


async def send(c, data, target):
    try:
        await c.peer.write(data)
        c.sent += len(data)
    except (ConnectionError, OSError) as e:
        log({"event": "write_failed", "conn": c.peer.conn, "target": target,
             "bytes": c.sent, "error": type(e).__name__})
        raise


async def respond_simple(c, req, code, body=b"", extra=(), ctype="text/plain"):
    hdrs = [("Content-Type", ctype)] if code not in (204, 304) else []
    hdrs += list(extra)
    if code not in (204, 304):
        hdrs.append(("Content-Length", str(len(body))))
    if c.close:
        hdrs.append(("Connection", "close"))
    data = build_head(code, hdrs)
    if req["method"] != "HEAD" and code not in (204, 304):
        data += body
    await send(c, data, req["target"])


async def handle_request(c, req, body):
    peer = c.peer
    url = urllib.parse.urlsplit(req["target"])
    path = url.path
    q = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
    qpairs = urllib.parse.parse_qsl(url.query, keep_blank_values=True)
    head_only = req["method"] == "HEAD"
    target = req["target"]

    if path == "/echo" or path.startswith("/echo/"):
        seen = dict(req)
        seen["body"] = body.keep.decode("latin-1")
        await respond_simple(c, req, int(q.get("status", "200")), json.dumps(seen).encode(),
                             ctype="application/json")
    elif path == "/sink":
        out = {"len": body.len, "sha256": body.sha.hexdigest(), "framing": req["framing"]}
        await respond_simple(c, req, 200, json.dumps(out).encode(), ctype="application/json")
    elif path == "/bytes":
        n = int(q.get("n", "0"))
        mode = q.get("mode", "chunked" if q.get("chunked") == "1" else "cl")
        hdrs = [("Content-Type", "application/octet-stream")] + extra_headers(qpairs)
        if mode == "cl":
            hdrs.append(("Content-Length", str(n)))
        elif mode == "chunked":
            hdrs.append(("Transfer-Encoding", "chunked"))
        else:
            hdrs.append(("Connection", "close"))
            c.close = True
        if c.close and mode != "close":
            hdrs.append(("Connection", "close"))
        await send(c, build_head(200, hdrs), target)
        if not head_only:
            off = 0
            while off < n:
                k = min(STEP, n - off)
                piece = pattern_chunk(off, k)
                if mode == "chunked":
                    piece = b"%x\r\n" % k + piece + b"\r\n"
                await send(c, piece, target)
                off += k
            if mode == "chunked":
                await send(c, b"0\r\n\r\n", target)
    elif path == "/slow":
        head_ms = int(q.get("head_ms", "0"))
        body_ms = int(q.get("body_ms", "0"))
        n = int(q.get("n", "10"))
        if await peer.wait_or_eof(head_ms / 1000):
            log({"event": "aborted", "conn": peer.conn, "target": target, "phase": "head"})
            c.close = True
            return
        hdrs = [("Content-Type", "text/plain"), ("Content-Length", str(n))] + extra_headers(qpairs)
        if c.close:
            hdrs.append(("Connection", "close"))
        await send(c, build_head(200, hdrs), target)
        if head_only:
            return
        if body_ms and await peer.wait_or_eof(body_ms / 1000):
            log({"event": "aborted", "conn": peer.conn, "target": target, "phase": "body"})
            c.close = True
            return
        await send(c, pattern_chunk(0, n) if n <= STEP else b"x" * n, target)
    elif path == "/drop":
        if q.get("before") == "1":
            c.close = True
            return
        after = int(q.get("after", "0"))
        extra = extra_headers(qpairs)
        if q.get("chunked") == "1":
            hdrs = [("Transfer-Encoding", "chunked")] + extra
            data = build_head(200, hdrs) + (b"%x\r\n" % after + pattern_chunk(0, after) + b"\r\n" if after else b"")
        elif q.get("eof") == "1":
            data = build_head(200, extra) + pattern_chunk(0, after)
        else:
            cl = int(q.get("cl", str(after * 2 + 1)))
            data = build_head(200, [("Content-Length", str(cl))] + extra) + pattern_chunk(0, after)
        await send(c, data, target)
        if q.get("rst") == "1":
            await asyncio.sleep(int(q.get("rst_ms", "100")) / 1000)
            c.reset = True
        c.close = True
    elif path.startswith("/status/"):
        code = int(path.split("/")[2])
        extra = ([("ETag", '"v1"')] if code == 304 else []) + extra_headers(qpairs)
        await respond_simple(c, req, code, b"status %d\n" % code, extra=extra)
    elif path == "/close":
        c.close = True
        await respond_simple(c, req, 200, b"bye\n")
    elif path == "/hang":
        while True:
            if await peer.wait_or_eof(3600):
                log({"event": "aborted", "conn": peer.conn, "target": target, "phase": "head"})
                c.close = True
                return
    elif path == "/headers":
        extra = [(k, v) for k, v in qpairs if not k.startswith("_")]
        await respond_simple(c, req, 200, b"ok", extra=extra)
    elif path.startswith("/flaky/") or path.startswith("/etag/"):
        # /flaky/<name>: "v<version>" with max-age=1 and an ETag, or a 503 or a
        # dropped connection, as /__fail?name=<name>&mode=... says.
        # /etag/<name>: the same resource, answering If-None-Match with 304.
        name = path.split("/", 2)[2]
        st = FLAKY.setdefault(name, {"mode": "ok", "version": 1})
        if st.get("times"):  # the mode for this many more requests, then ok
            st["times"] -= 1
            if st["times"] == 0:
                st["next"] = "ok"
        elif st.get("next"):
            st["mode"] = st.pop("next")
        etag = '"v%d"' % st["version"]
        if st["mode"] == "slow":
            await asyncio.sleep(st.get("ms", 0) / 1000.0)
        if st["mode"] == "hang":
            await asyncio.sleep(3600)
        if st["mode"] == "503":
            await respond_simple(c, req, 503, b"down")
        elif st["mode"] == "nostore":
            await respond_simple(c, req, 200, ("v%d" % st["version"]).encode(),
                                 extra=[("Cache-Control", "no-store")])
        elif st["mode"] == "drop":
            log({"event": "dropped", "conn": peer.conn, "target": target})
            c.close = True
            return
        elif path.startswith("/etag/") and etag in hget_all(req["headers"], "if-none-match"):
            await respond_simple(c, req, 304, b"", extra=[("ETag", etag), ("Cache-Control", "max-age=1")])
        else:
            await respond_simple(c, req, 200, ("v%d" % st["version"]).encode(),
                                 extra=[("ETag", etag), ("Cache-Control", "max-age=1")])
    elif path.startswith("/cstat/"):
        # /cstat/<anything>[cc,age,vary,etag,status,ms]: 200 "cstat <path>" (or
        # `status`) with Cache-Control `cc`, Age `age`, Vary `vary` and ETag `etag` as
        # given; with `etag`, an If-None-Match naming it gets 304; `ms`
        # delays the head. For test_cache_status.py.
        if "ms" in q:
            await asyncio.sleep(int(q["ms"]) / 1000.0)
        extra = [(n, q[k]) for k, n in (("cc", "Cache-Control"), ("age", "Age"), ("vary", "Vary")) if k in q]
        etag = '"%s"' % q["etag"] if "etag" in q else None
        if etag:
            extra.append(("ETag", etag))
        if etag and etag in hget_all(req["headers"], "if-none-match"):
            await respond_simple(c, req, 304, b"", extra=extra)
        else:
            await respond_simple(c, req, int(q.get("status", "200")), ("cstat %s" % path).encode(), extra=extra)
    elif path.startswith("/store/"):
        # GET: 404 until created; PUT: 201 (409 with ?fail=1); DELETE: 204
        m = req["method"]
        if m in ("GET", "HEAD"):
            if path in STORE:
                await respond_simple(c, req, 200, STORE[path])
            else:
                await respond_simple(c, req, 404, b"no such thing")
        elif m == "PUT" and "fail" in q:
            await respond_simple(c, req, 409, b"conflict")
        elif m == "PUT":
            STORE[path] = body.keep
            await respond_simple(c, req, 201, b"created")
        elif m == "DELETE":
            STORE.pop(path, None)
            await respond_simple(c, req, 204, b"")
        else:
            await respond_simple(c, req, 405, b"")
    elif path.startswith("/targeted/"):
        TARGETED[path] = TARGETED.get(path, 0) + 1
        extra = [(k, v) for k, v in qpairs if not k.startswith("_")]
        await respond_simple(c, req, 200, b"n%d" % TARGETED[path], extra=extra)
    elif path.startswith("/rfc304/"):
        # /rfc304/<name>: a 200 "body-<name>" with ETag "<etag>" (default
        # v1; none with etag=) and Last-Modified <lm> when given, plus the
        # h.NAME=VALUE fields; a request whose If-None-Match names the ETag,
        # or (without an ETag) whose If-Modified-Since is <lm>, gets a 304
        # with the r.NAME=VALUE fields and ETag "<r304etag>" (default: the
        # same one; none with r304etag=). imsany=1: any If-Modified-Since
        # gets the 304 (an origin that only compares dates loosely).
        etag = q.get("etag", "v1")
        lm = q.get("lm")
        tag = '"%s"' % etag if etag else None
        hit = (tag and tag in hget_all(req["headers"], "if-none-match")) or \
              (not tag and lm and lm in hget_all(req["headers"], "if-modified-since")) or \
              (q.get("imsany") and hget_all(req["headers"], "if-modified-since"))
        if hit:
            rtag = q.get("r304etag", etag)
            extra = ([("ETag", '"%s"' % rtag)] if rtag else []) + \
                    [(k[2:], v) for k, v in qpairs if k.startswith("r.")]
            await respond_simple(c, req, 304, b"", extra=extra)
        else:
            extra = ([("ETag", tag)] if tag else []) + ([("Last-Modified", lm)] if lm else []) + \
                    extra_headers(qpairs)
            await respond_simple(c, req, 200, ("body-" + path.split("/", 2)[2]).encode(), extra=extra)
    elif path.startswith("/range/"):
        # /range/<name>?n=N: N pattern bytes, fresh for a minute (cc=...),
        # with ETag "r<N>" (etag=..., weak=1 for W/) and a Last-Modified a day and more
        # before its Date, so both are strong validators. A single
        # bytes=a-b, a- or -n Range is answered 206 (416 when it selects
        # nothing), unless ignore=1 makes it answer the whole 200; with inm=1
        # an If-None-Match that names the ETag gets a 304.
        n = int(q.get("n", "100"))
        await asyncio.sleep(int(q.get("delay_ms", "0")) / 1000)  # delay_ms: a slow answer
        body = b"".join(pattern_chunk(o, min(STEP, n - o)) for o in range(0, n, STEP))
        hdrs = [("Content-Type", "application/octet-stream"), ("Cache-Control", q.get("cc", "max-age=60")),
                ("ETag", ('W/"%s"' if q.get("weak") == "1" else '"%s"') % q.get("etag", "r%d" % n)), ("Last-Modified", "Tue, 14 Nov 2023 22:13:20 GMT"),
                ("Date", email.utils.formatdate(usegmt=True))] + extra_headers(qpairs)
        rng = hget_all(req["headers"], "range")
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng[0]) if len(rng) == 1 and q.get("ignore") != "1" else None
        if q.get("inm") == "1" and hget_all(req["headers"], "if-none-match") == [dict(hdrs)["ETag"]]:
            # inm=1: an If-None-Match naming the ETag is a 304, before any Range
            await respond_simple(c, req, 304, b"", extra=hdrs[1:])
        elif m and (m.group(1) or m.group(2)):
            if m.group(1):
                a = int(m.group(1))
                b = min(int(m.group(2)), n - 1) if m.group(2) else n - 1
            else:
                a, b = max(0, n - int(m.group(2))), n - 1
            if a >= n or b < a:
                await respond_simple(c, req, 416, b"", extra=[("Content-Range", "bytes */%d" % n)])
            else:
                await respond_simple(c, req, 206, body[a:b + 1],
                                     extra=hdrs[1:] + [("Content-Range", "bytes %d-%d/%d" % (a, b, n))],
                                     ctype="application/octet-stream")
        else:
            await respond_simple(c, req, 200, body, extra=hdrs[1:], ctype="application/octet-stream")
    elif path.startswith("/vary2/"):
        # /vary2/<name>?vary=F1,F2: a fresh answer that varies on those
        # fields; its body names the values it saw and counts the requests
        # for <name>, so two answers with one body are one origin answer.
        STATE.setdefault("vary2", {})
        k = path.split("/", 2)[2]
        STATE["vary2"][k] = STATE["vary2"].get(k, 0) + 1
        fields = [f.strip() for f in q.get("vary", "Accept-Encoding").split(",")]
        seen = {f: hget_all(req["headers"], f) for f in fields}
        out = json.dumps({"n": STATE["vary2"][k], "seen": seen}).encode()
        await respond_simple(c, req, 200, out, extra=[("Vary", ", ".join(fields)),
                                                      ("Cache-Control", "max-age=60")])
    elif path == "/count":
        await respond_simple(c, req, 200, b"%d" % STATE["requests"])
    elif path.startswith("/warm/"):
        # warm-up tests: each arrival logged with the origin's monotonic
        # clock (to check a warm-up's pacing); ms=N answers after N ms
        log({"event": "warm", "target": target, "t": asyncio.get_running_loop().time()})
        if int(q.get("ms", "0")):
            await asyncio.sleep(int(q["ms"]) / 1000.0)
        await respond_simple(c, req, 200, ("warm " + target).encode())
    elif path == "/interim":
        await send(c, build_head(103, [("Link", "</a.css>; rel=preload")]), target)
        await respond_simple(c, req, 200, b"final")
    elif path == "/chunkext":
        n = int(q.get("n", "0"))
        piece = int(q.get("piece", "65536"))
        await send(c, build_head(200, [("Transfer-Encoding", "chunked")]) + b"5;x=", target)
        filler = b"a" * piece
        left = n
        while left > 0:
            await send(c, filler[:min(piece, left)], target)
            left -= piece
        await send(c, b"\r\nhello\r\n0\r\n\r\n", target)
    elif path == "/garbage":
        kind = q.get("kind", "junk")
        raw = {
            "junk": b"THIS IS NOT HTTP\r\n\r\n",
            "badstatus": b"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok",
            "badcl": b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\nok",
            "dupcl": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!",
            "nul": b"HTTP/1.1 200 OK\r\nX-Bad: a\x00b\r\nContent-Length: 2\r\n\r\nok",
            "cl_te": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"5\r\nhello\r\n0\r\n\r\n",
            # obs-fold in the head: after a value, after an empty one, and
            # on the first header line
            "fold": b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
            "fold_empty": b"HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
            "fold_empty_tab": b"HTTP/1.1 200 OK\r\nContent-Length:\r\n\t2\r\n\r\nok",
            "fold_first": b"HTTP/1.1 200 OK\r\n X-A: a\r\nContent-Length: 2\r\n\r\nok",
            # obs-fold in the trailers, after the body has been streamed
            "trailer_fold": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n"
                            b"X-T: a\r\n b\r\n\r\n",
            "trailer_fold_empty": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n"
                                  b"X-T:\r\n\tb\r\n\r\n",
        }[kind]
        await send(c, raw, target)
        c.close = True
    elif path.startswith("/method/"):
        # /method/NNN/...: GET and HEAD 200 with a body that changes on each
        # request (a refetch shows); any other method NNN, with Location
        # and Content-Location taken from the request's X-Loc and X-CLoc
        if req["method"] in ("GET", "HEAD"):
            await respond_simple(c, req, 200, b"v%d" % STATE["requests"])
        else:
            if "ms" in q:
                await asyncio.sleep(int(q["ms"]) / 1000)
            code = int(path.split("/")[2])
            extra = [(n, hget_all(req["headers"], x)[0]) for n, x in
                     (("Location", "x-loc"), ("Content-Location", "x-cloc")) if hget_all(req["headers"], x)]
            await respond_simple(c, req, code, b"" if code in (204, 304) else b"done", extra)
    elif path.startswith("/interim2/"):
        # interim responses before the final one; the final body names the
        # request count of this path (INTERIM_HITS), so a refetch shows
        kind = path.split("/")[2]
        hits = INTERIM_HITS[path] = INTERIM_HITS.get(path, 0) + 1
        n = int(q.get("n", "1")) if kind != "flip" or hits > 1 else 0
        link = "</%s.css>; rel=preload" % kind
        if "ms" in q:
            await asyncio.sleep(int(q["ms"]) / 1000)
        if kind == "102":
            await send(c, b"HTTP/1.1 102 Processing\r\n\r\n", target)
        for i in range(n):
            # hop-by-hop fields levee must strip, as from a final response
            hop = [("Connection", "x-hop"), ("X-Hop", "1"), ("Keep-Alive", "timeout=5")] if i == 0 else []
            size = int(q.get("size", "0"))
            extra = [("X-Pad", "p" * size)] if size else []
            await send(c, build_head(103, [("Link", link), ("X-Seq", str(i))] + hop + extra), target)
        if "gap_ms" in q and n:
            await asyncio.sleep(int(q["gap_ms"]) / 1000)
        if kind == "drop" or (kind == "flip" and hits > 1):
            c.close = True
        elif kind == "retry":
            await respond_simple(c, req, 503, b"busy %d" % hits)
        elif kind == "chunked":
            await send(c, build_head(200, [("Transfer-Encoding", "chunked")]) + b"6\r\nfinal-\r\n"
                       + b"%x\r\n%d\r\n0\r\n\r\n" % (len(str(hits)), hits), target)
        else:
            await respond_simple(c, req, 200, b"final-%d" % hits)
    else:
        await respond_simple(c, req, 404, b"no such path\n")
    log({"event": "done", "conn": peer.conn, "target": target, "bytes": c.sent})
    ca = q.get("_close_after_ms")
    if ca is not None:
        await asyncio.sleep(int(ca) / 1000)
        c.close = True


async def handle_admin(peer, target):
    url = urllib.parse.urlsplit(target)
    q = dict(urllib.parse.parse_qsl(url.query))
    if url.path == "/__log":
        since = int(q.get("since", "0"))
        body = json.dumps(EVENTS[since:]).encode()
    elif url.path == "/__mark":
        body = json.dumps({"next": len(EVENTS)}).encode()
    elif url.path == "/__fail":
        st = FLAKY.setdefault(q["name"], {"mode": "ok", "version": 1})
        st["mode"] = q.get("mode", "ok")
        st["ms"] = int(q.get("ms", "0"))
        st["times"] = int(q.get("times", "0"))
        st.pop("next", None)
        if "bump" in q:
            st["version"] += 1
        body = json.dumps(st).encode()
    else:
        body = b"{}"
    await peer.write(build_head(200, [("Content-Type", "application/json"),
                                      ("Content-Length", str(len(body)))]) + body)


async def read_proxy_line(peer, conn):
    """A connection may open with a PROXY protocol v1 line (levee's
    [upstream] proxy_protocol = v1): it is logged and consumed. False when
    the line is broken (the connection is then closed)."""
    want = b"PROXY "
    while len(peer.buf) < len(want) and want.startswith(bytes(peer.buf)) and await peer.fill():
        pass
    if not peer.buf.startswith(want):
        return True
    try:
        line = await peer.read_line()
    except (ParseError, EOFError) as e:
        log({"event": "parse_error", "conn": conn, "error": "PROXY line: %s" % e})
        return False
    log({"event": "proxy", "conn": conn, "line": line.decode("latin-1")})
    return True


async def serve(reader, writer):
    STATE["conn_seq"] += 1
    conn = STATE["conn_seq"]
    peer = Peer(reader, writer, conn)
    admin_conn = False
    logged_open = False
    try:
        if not await read_proxy_line(peer, conn):
            return
        while True:
            try:
                head = await peer.read_head()
            except ParseError as e:
                log({"event": "parse_error", "conn": conn, "error": str(e),
                     "raw": bytes(peer.buf[:300]).decode("latin-1")})
                break
            if head is None:
                break
            if head.startswith(b"GET /__"):
                admin_conn = True
                target = head.split(b" ")[1].decode()
                await handle_admin(peer, target)
                continue
            if not logged_open:
                log({"event": "conn_open", "conn": conn,
                     "peer": (writer.get_extra_info("peername") or ("?",))[0]})
                logged_open = True
            try:
                method, target, version, headers = parse_head(head)
                framing, clen = framing_of(headers)
            except ParseError as e:
                log({"event": "parse_error", "conn": conn, "error": str(e),
                     "raw": head[:2000].decode("latin-1")})
                break
            req = {"conn": conn, "method": method, "target": target, "version": version,
                   "headers": headers, "framing": framing}
            body = Body()
            if framing != "none" and any(v.lower() == "100-continue" for v in hget_all(headers, "expect")):
                await peer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            try:
                await read_body(peer, framing, clen, body)
            except (ParseError, EOFError) as e:
                ev = dict(req, event="partial", body_len=body.len, error=str(e))
                log(ev)
                break
            req.update(body_len=body.len, body_sha256=body.sha.hexdigest(),
                       trailers=body.trailers, chunks=body.chunks)
            STATE["requests"] += 1
            log(dict(req, event="request"))
            c = Conn(peer)
            c.close = any("close" in v.lower() for v in hget_all(headers, "connection"))
            try:
                await handle_request(c, req, body)
            except (ConnectionError, OSError):
                break
            if c.reset:
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            if c.close:
                break
    except Exception as e:  # never let one connection kill the origin
        log({"event": "origin_error", "conn": conn, "error": repr(e)})
    finally:
        try:
            writer.close()
        except Exception:
            pass
        if logged_open and not admin_conn:
            log({"event": "conn_close", "conn": conn})


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    server = await asyncio.start_server(serve, args.host, args.port, backlog=1024,
                                        reuse_address=True)
    port = server.sockets[0].getsockname()[1]
    sys.stdout.write("READY %d\n" % port)
    sys.stdout.flush()
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
