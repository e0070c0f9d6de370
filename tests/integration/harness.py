"""Helpers for levee's integration tests: a raw HTTP/1.1 client that reports
framing and connection state exactly, process managers for the test origin
and for levee, and small utilities (free ports, deadlines, metrics parsing).

Nothing here sleeps for a fixed time to wait for a state: every wait polls a
condition until a deadline.
"""
import errno
import hashlib
import json
import os
import re
import resource
import select
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import origin as _origin  # noqa: E402  (pattern generator shared with the origin)

def _die_with_parent():
    """preexec_fn: the child gets SIGKILL if the test process dies, so a
    killed pytest leaves no levee or origin behind (Linux prctl)."""
    import ctypes
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


LEVEE_BIN = os.environ.get("LEVEE_BIN", os.path.join(REPO, "build", "levee"))
PYTHON = sys.executable

# The sanitizer LEVEE_BIN was built with: "asan" (ASan + UBSan), "tsan" or
# "" (none). tests/run sets it with LEVEE_BIN; conftest.py skips the tests
# marked no_sanitizer under one.
SANITIZER = os.environ.get("LEVEE_SANITIZER", "")
# Start-up and exit are slower under a sanitizer (TSan most), so waits for
# levee to get ready or to exit are this many times longer. Only waits: what
# the tests assert about levee's own timers is unchanged.
WAIT_SCALE = {"": 1, "asan": 3, "tsan": 6}.get(SANITIZER, 6)
# LEVEE_TEST_WORKERS=N: the worker threads of every levee whose test does
# not choose (the policy's default is one per CPU), so that a run under TSan
# has several on any machine.
TEST_WORKERS = os.environ.get("LEVEE_TEST_WORKERS", "")

CRLF = b"\r\n"
MiB = 1024 * 1024


# --------------------------------------------------------------------------
# small utilities

_HANDED_OUT = set()


def free_port():
    """A loopback port nothing listens on now. The probe socket is closed
    before the port is used, so the kernel may offer the same port to the
    next call: a port is never handed out twice in one test run (two picks
    for one levee's listen and admin once collided in CI)."""
    for _ in range(100):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError("no fresh loopback port after 100 tries")


def wait_until(pred, timeout, interval=0.02, msg="condition"):
    """Poll pred() until it returns a truthy value; return that value.
    Raises AssertionError with `msg` when the deadline passes."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = pred()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s (last=%r)" % (timeout, msg, last))
        time.sleep(interval)


def pattern_bytes(offset, length):
    """Pattern bytes [offset, offset+length) of the origin's /bytes stream."""
    out = bytearray()
    while length > 0:
        k = min(length, _origin.STEP)
        out += _origin.pattern_chunk(offset, k)
        offset += k
        length -= k
    return bytes(out)


def iter_pattern(n, piece=_origin.STEP):
    off = 0
    while off < n:
        k = min(piece, n - off)
        yield pattern_bytes(off, k)
        off += k


_SHA_CACHE = {}


def pattern_sha256(n):
    if n not in _SHA_CACHE:
        h = hashlib.sha256()
        for p in iter_pattern(n):
            h.update(p)
        _SHA_CACHE[n] = h.hexdigest()
    return _SHA_CACHE[n]


def fnv1a64_hex(data):
    h = 0xcbf29ce484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


_CS_NUMBERS = re.compile(r";\s*(?:ttl|fwd-status)=-?[0-9]+")


def cache_status_core(value):
    """A Cache-Status value less its numeric parameters (ttl, fwd-status),
    which change from run to run: tests that compare whole values compare
    this; test_cache_status.py checks the numbers themselves."""
    return None if value is None else _CS_NUMBERS.sub("", value)


def cache_route(**keys):
    """The sections of one route "c" over every path that caches (60 s
    unless `cache_ttl` is given), with `keys` as its other keys."""
    keys.setdefault("prefix", "/")
    keys.setdefault("cache_ttl", "60s")
    return {'route "c"': keys}


def response_cache_status(r):
    """A response's Cache-Status less its numbers (cache_status_core())."""
    return cache_status_core(r.header("Cache-Status"))


def hget(headers, name, default=None):
    name = name.lower()
    for n, v in headers:
        if n.lower() == name:
            return v
    return default


def hget_all(headers, name):
    name = name.lower()
    return [v for n, v in headers if n.lower() == name]


def hjoin(headers, name):
    """All values of a list-valued header, split on commas, stripped."""
    out = []
    for v in hget_all(headers, name):
        out += [p.strip() for p in v.split(",") if p.strip()]
    return out


def tokens(headers, name):
    return [t.lower() for t in hjoin(headers, name)]


HOP_BY_HOP = ["connection", "keep-alive", "proxy-connection", "te", "trailer",
              "transfer-encoding", "upgrade"]


# --------------------------------------------------------------------------
# raw HTTP/1.1 client

class ProtocolError(AssertionError):
    """levee sent something that is not valid HTTP/1.1."""


class Response:
    def __init__(self):
        self.version = self.reason = None
        self.status = None
        self.headers = []
        self.raw_head = b""
        self.body = b""
        self.body_len = 0
        self.sha256 = None
        self.framing = None  # "content-length" | "chunked" | "close" | "none"
        self.complete = None  # False: the connection ended inside the body
        self.trailers = []
        self.interim = []  # 1xx responses seen before this one
        self.closed = None  # set by raw()/wait_closed: server closed after it
        self.reset = False
        self.extra = b""

    def header(self, name, default=None):
        return hget(self.headers, name, default)

    def header_all(self, name):
        return hget_all(self.headers, name)

    def has(self, name):
        return any(n.lower() == name.lower() for n, _ in self.headers)

    @property
    def reason_token(self):
        return self.header("X-Levee-Reason")

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<Response %s %r framing=%s len=%d complete=%s closed=%s headers=%r body=%r>" % (
            self.status, self.reason, self.framing, self.body_len, self.complete, self.closed,
            self.headers, self.body[:200])


class HttpConn:
    """One client connection. Keeps its own buffer, so pipelined responses
    are read one after another."""

    def __init__(self, port, host="127.0.0.1", timeout=5.0, connect=True):
        self.host, self.port, self.timeout = host, port, timeout
        self.buf = bytearray()
        self.eof = False
        self.reset = False
        self.sock = None
        if connect:
            self.sock = socket.create_connection((host, port), timeout=timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # -- low level
    def send(self, data):
        self.sock.sendall(data)

    def _recv(self, deadline, maxsize=262144):
        """Append received bytes to the buffer; False on EOF/reset."""
        if self.eof:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no data from levee before the deadline")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(maxsize)
        except socket.timeout:
            raise TimeoutError("no data from levee before the deadline")
        except ConnectionResetError:
            self.reset = True
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _read_line(self, deadline):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                if not line.endswith(CRLF) or b"\r" in line[:-2]:
                    raise ProtocolError("line not terminated by CRLF: %r" % line[:200])
                return line[:-2]
            if not self._recv(deadline):
                return None

    def _read_head(self, deadline):
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                head = bytes(self.buf[:i])
                del self.buf[:i + 4]
                return head
            if b"\n\n" in self.buf:
                raise ProtocolError("bare LF in response head: %r" % bytes(self.buf[:300]))
            if not self._recv(deadline):
                if self.buf:
                    raise ProtocolError("connection closed inside a response head: %r" % bytes(self.buf[:300]))
                return None

    # -- responses
    def read_response(self, method="GET", timeout=None, **kw):
        """Read one response. Returns None when the server closed the
        connection before sending any byte of it.

        store=False: do not keep the body; hash_body=True: sha256 it;
        return_interim=True: return a 1xx instead of skipping it;
        pace(total_body_bytes_so_far) -> max bytes to read next (may sleep):
        lets a test read slowly."""
        timeout = timeout if timeout is not None else self.timeout
        self._partial = None
        try:
            return self._read_response(method, timeout, **kw)
        except TimeoutError:
            p = self._partial
            if p is None:
                got = "no response bytes at all (buffered: %r)" % bytes(self.buf[:200])
            else:
                got = "status %s, headers %r, %d body bytes" % (p.status, p.headers, p.body_len)
            raise TimeoutError("no complete response from levee within %.1fs; got %s" % (timeout, got)) from None

    def _read_response(self, method, timeout, store=True, hash_body=False, return_interim=False, pace=None):
        deadline = time.monotonic() + timeout
        interim = []
        while True:
            head = self._read_head(deadline)
            if head is None:
                return None
            r = self._parse_head(head)
            if 100 <= r.status < 200 and r.status != 101:
                r.framing = "none"
                r.complete = True
                if return_interim:
                    return r
                interim.append(r)
                continue
            break
        r.interim = interim
        self._partial = r
        h = hashlib.sha256() if hash_body else None
        body = bytearray()

        def take(data):
            r.body_len += len(data)
            if store:
                body.extend(data)
            if h:
                h.update(data)

        te = tokens(r.headers, "transfer-encoding")
        cls = hget_all(r.headers, "content-length")
        if method == "HEAD" or r.status in (204, 304):
            r.framing = "none"
            r.complete = True
        elif te:
            if te[-1] != "chunked":
                r.framing = "close"
                r.complete = self._read_close(deadline, take, pace, r)
            else:
                r.framing = "chunked"
                r.complete = self._read_chunked(deadline, take, r, pace)
        elif cls:
            if len(set(c.strip() for c in cls)) != 1 or not re.fullmatch(r"[0-9]+", cls[0].strip()):
                raise ProtocolError("bad Content-Length in response: %r" % cls)
            r.framing = "content-length"
            n = int(cls[0])
            while r.body_len < n:
                want = n - r.body_len
                if not self.buf:
                    mx = pace(r.body_len) if pace else 262144
                    if not self._recv(deadline, mx):
                        break
                k = min(want, len(self.buf))
                take(bytes(self.buf[:k]))
                del self.buf[:k]
            r.complete = r.body_len == n
        else:
            r.framing = "close"
            r.complete = self._read_close(deadline, take, pace, r)
        r.body = bytes(body)
        r.sha256 = h.hexdigest() if h else None
        r.reset = self.reset
        return r

    def _read_close(self, deadline, take, pace, r):
        while True:
            if self.buf:
                take(bytes(self.buf))
                self.buf.clear()
            mx = pace(r.body_len) if pace else 262144
            if not self._recv(deadline, mx):
                return True

    def _read_chunked(self, deadline, take, r, pace):
        while True:
            line = self._read_line(deadline)
            if line is None:
                return False
            size_s = line.split(b";", 1)[0].strip(b" \t")
            if not re.fullmatch(rb"[0-9A-Fa-f]+", size_s):
                raise ProtocolError("bad chunk size line from levee: %r" % line)
            size = int(size_s, 16)
            if size == 0:
                break
            left = size
            while left:
                if not self.buf:
                    mx = pace(r.body_len) if pace else 262144
                    if not self._recv(deadline, mx):
                        return False
                k = min(left, len(self.buf))
                take(bytes(self.buf[:k]))
                del self.buf[:k]
                left -= k
            crlf = self._read_line(deadline)
            if crlf is None:
                return False
            if crlf != b"":
                raise ProtocolError("chunk data not followed by CRLF")
        while True:
            line = self._read_line(deadline)
            if line is None:
                return False
            if line == b"":
                return True
            n, _, v = line.partition(b":")
            r.trailers.append((n.decode("latin-1"), v.strip().decode("latin-1")))

    @staticmethod
    def _parse_head(head):
        lines = head.split(CRLF)
        for ln in lines:
            if b"\n" in ln or b"\r" in ln:
                raise ProtocolError("bare CR/LF in response head: %r" % head[:300])
        m = re.fullmatch(rb"(HTTP/1\.[01]) ([0-9]{3})(?: (.*))?", lines[0])
        if not m:
            raise ProtocolError("bad status line: %r" % lines[0][:200])
        r = Response()
        r.raw_head = head
        r.version = m.group(1).decode()
        r.status = int(m.group(2))
        r.reason = (m.group(3) or b"").decode("latin-1")
        for ln in lines[1:]:
            if ln[:1] in (b" ", b"\t"):
                raise ProtocolError("obs-fold in response from levee: %r" % ln)
            if b":" not in ln:
                raise ProtocolError("response header without colon: %r" % ln)
            n, v = ln.split(b":", 1)
            if not n or n != n.strip():
                raise ProtocolError("bad response header name: %r" % n)
            r.headers.append((n.decode("latin-1"), v.strip(b" \t").decode("latin-1")))
        return r

    def wait_closed(self, timeout):
        """True if the server closes (EOF or reset) within `timeout` without
        sending more bytes. Extra bytes are kept in self.extra."""
        deadline = time.monotonic() + timeout
        self.extra = bytes(self.buf)
        if self.eof:
            return not self.extra
        while True:
            try:
                if not self._recv(deadline):
                    break
            except TimeoutError:
                return False
            except OSError:
                return True
            self.extra = bytes(self.buf)
        return not self.extra

    def request(self, method, target, headers=(), body=None, version="HTTP/1.1", host="test.local",
                **kw):
        """Send one simple request and read its response."""
        self.send(build_request(method, target, headers, body, version, host))
        return self.read_response(method, **kw)

    def close(self):
        if self.sock:
            try:
                self.sock.close()
            except OSError:
                pass


def together(ports, target, n, timeout=20.0, headers=()):
    """n GETs of `target` released at once by one barrier, the i-th on its
    own connection to ports[i % len(ports)], with `headers` (or headers(i)
    when it is a function): their Responses, in order."""
    barrier = threading.Barrier(n)
    out = [None] * n

    def worker(i):
        c = HttpConn(ports[i % len(ports)], timeout=timeout)
        try:
            barrier.wait()
            out[i] = c.request("GET", target, headers=headers(i) if callable(headers) else headers)
        finally:
            c.close()
    ts = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


def build_request(method, target, headers=(), body=None, version="HTTP/1.1", host="test.local"):
    lines = ["%s %s %s" % (method, target, version)]
    hdrs = list(headers)
    if host is not None and not any(n.lower() == "host" for n, _ in hdrs):
        hdrs.insert(0, ("Host", host))
    if body is not None and not any(n.lower() in ("content-length", "transfer-encoding") for n, _ in hdrs):
        hdrs.append(("Content-Length", str(len(body))))
    for n, v in hdrs:
        lines.append("%s: %s" % (n, v))
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if body is not None:
        data += body
    return data


def chunked(body, size=None, ext=b"", trailers=b""):
    """Encode `body` as chunked (one chunk, or chunks of `size`)."""
    out = bytearray()
    size = size or max(1, len(body))
    for i in range(0, len(body), size):
        piece = body[i:i + size]
        out += b"%x%s\r\n" % (len(piece), ext) + piece + b"\r\n"
    out += b"0\r\n" + trailers + b"\r\n"
    return bytes(out)


def fill_until_committed(lv, fetch, n=1, timeout=5.0):
    """Calls fetch() (which may assert on its answer) until `lv` has
    committed `n` fills to Redis in all. After a write, the fill that reads
    the new answer can begin on another worker's Redis link before the
    write's purge lands there; its commit is then refused, as it must be,
    and only the next fill commits."""
    def committed():
        fetch()
        return metric_sum(lv.metrics(), "levee_cache_l2_operations_total", result="committed") >= n
    wait_until(committed, timeout * WAIT_SCALE, interval=0.1, msg="%d fill(s) committed to Redis" % n)


def once(port, method, target, headers=(), body=None, timeout=10.0, **kw):
    """One request on a connection of its own, closed after the response;
    returns the Response (kw: HttpConn.request's, such as hash_body)."""
    c = HttpConn(port, timeout=timeout)
    try:
        return c.request(method, target, headers=headers, body=body, **kw)
    finally:
        c.close()


def raw(port, req, method=None, timeout=5.0, close_wait=0.3, **kw):
    """Send `req` bytes on a new connection, read one response, then wait up
    to `close_wait` seconds to see whether levee closes the connection.
    Returns the Response (None if levee closed without answering); its
    `.closed` says whether the connection was closed after it."""
    if method is None:
        method = req.split(b" ", 1)[0].decode("latin-1", "replace")
    c = HttpConn(port, timeout=timeout)
    try:
        try:
            c.send(req)
        except (BrokenPipeError, ConnectionResetError):
            pass
        r = c.read_response(method, **kw)
        if r is None:
            return None
        r.closed = c.wait_closed(close_wait)
        r.extra = c.extra
        r.reset = r.reset or c.reset
        return r
    finally:
        c.close()


# --------------------------------------------------------------------------
# test origin

class Origin:
    def __init__(self, workdir, port=0, host="127.0.0.1"):
        """host: the address it listens on (its control requests always go
        to 127.0.0.1, so a host other than loopback must be a wildcard)."""
        self.workdir = workdir
        self.host = host
        self.want_port = port
        self.proc = None
        self.port = None
        self.start()

    def start(self):
        errf = open(os.path.join(self.workdir, "origin-%d.stderr" % time.time_ns()), "wb")
        self.proc = subprocess.Popen([PYTHON, os.path.join(HERE, "origin.py"), "--host", self.host,
                                      "--port", str(self.want_port)],
                                     stdout=subprocess.PIPE, stderr=errf, stdin=subprocess.DEVNULL,
                                     preexec_fn=_die_with_parent)
        errf.close()
        deadline = time.monotonic() + 30  # a bound for a loaded machine; the port line ends it
        line = b""
        while not line.endswith(b"\n"):
            r, _, _ = select.select([self.proc.stdout], [], [], max(0, deadline - time.monotonic()))
            if not r:
                self.stop()
                raise RuntimeError("test origin did not start")
            ch = os.read(self.proc.stdout.fileno(), 64)
            if not ch:
                raise RuntimeError("test origin exited at start")
            line += ch
        self.port = int(line.split()[1])
        self.addr = "127.0.0.1:%d" % self.port

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def ensure(self):
        if not self.alive():
            self.want_port = 0
            self.start()

    def _get(self, path):
        c = HttpConn(self.port, timeout=5)
        try:
            c.send(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: origin\r\n\r\n")
            r = c.read_response()
            return json.loads(r.body)
        finally:
            c.close()

    def mark(self):
        return self._get("/__mark")["next"]

    def events(self, since=0, kind=None):
        evs = self._get("/__log?since=%d" % since)
        if kind:
            evs = [e for e in evs if e["event"] == kind]
        return evs

    def requests(self, since=0, path=None):
        rs = self.events(since, "request")
        if path is not None:
            rs = [r for r in rs if r["target"].split("?")[0] == path]
        return rs

    def wait_event(self, pred, since=0, timeout=5.0, msg="origin event"):
        def find():
            for e in self.events(since):
                if pred(e):
                    return e
            return None
        return wait_until(find, timeout, interval=0.03, msg=msg)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


# --------------------------------------------------------------------------
# levee

# The first line of any sanitizer report in a process's output (UBSan's
# is "file:line:col: runtime error: ...").
_SANITIZER_REPORT = re.compile(r"^.*(ERROR: (Address|Leak)Sanitizer|WARNING: ThreadSanitizer|"
                               r"runtime error: |ERROR: ThreadSanitizer).*$", re.M)


def sanitizer_report(text, tail=6000):
    """The sanitizer report(s) in `text` (a process's stderr), from the
    first report line on and at most `tail` characters; None if none."""
    m = _SANITIZER_REPORT.search(text)
    return text[m.start():m.start() + tail] if m else None


def run_levee(args, timeout=10, **kw):
    """Run `levee ARGS` to completion (check, --version...): returns
    (exit code, stdout + stderr). Fails on a sanitizer report in its output,
    whatever the exit code."""
    p = subprocess.run([LEVEE_BIN] + list(args), capture_output=True, timeout=timeout * WAIT_SCALE, **kw)
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    report = sanitizer_report(out)
    assert report is None, "sanitizer report from levee %s:\n%s" % (" ".join(args), report)
    return p.returncode, out


DEFAULT_SECTIONS = ("levee", "limits", "upstream")


def render_policy(sections):
    out = []
    order = [s for s in DEFAULT_SECTIONS if s in sections] + [s for s in sections if s not in DEFAULT_SECTIONS]
    for sec in order:
        out.append("[%s]" % sec)
        for k, v in sections[sec].items():
            out.append("%s = %s" % (k, v))
        out.append("")
    return "\n".join(out)


def parse_metrics(text):
    """Prometheus text -> list of (name, {labels}, float)."""
    samples = []
    for ln in text.splitlines():
        if not ln or ln.startswith("#"):
            continue
        m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+-?[0-9]+)?', ln)
        if not m:
            raise AssertionError("not a Prometheus sample line: %r" % ln)
        labels = {}
        if m.group(3):
            for lm in re.finditer(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3)):
                labels[lm.group(1)] = lm.group(2)
        v = m.group(4)
        samples.append((m.group(1), labels, float(v.replace("+Inf", "inf"))))
    return samples


def access_lines(lv, target):
    """The access log lines (JSON, from the levee's stdout) for `target`."""
    out = []
    for ln in lv.stdout().splitlines():
        if ln.startswith("{") and '"target"' in ln:
            d = json.loads(ln)
            if d["target"] == target:
                out.append(d)
    return out


def metric_sum(samples, name, **labels):
    """Sum of samples called `name` whose labels include `labels`; None if none."""
    vals = [v for n, l, v in samples if n == name and all(l.get(k) == str(x) for k, x in labels.items())]
    return sum(vals) if vals else None


class Levee:
    """One levee process. `sections` is merged over a default policy that
    points levee at `origin` on free loopback ports."""

    def __init__(self, workdir, upstream, sections=None, policy_text=None, args=None,
                 wait="readyz", env=None, use_policy=True, start=True, policy_path=None, nofile=None):
        """nofile: RLIMIT_NOFILE for the process (soft and hard), to run it
        out of file descriptors."""
        self.workdir = workdir
        self.nofile = nofile
        self.port = free_port()
        self.admin_port = free_port()
        self.upstream = upstream
        self.conns = []
        self.proc = None
        self.expected_exit = False
        self.env = dict(os.environ, **(env or {}))
        base = {
            "levee": {"listen": "127.0.0.1:%d" % self.port,
                      "admin": "127.0.0.1:%d" % self.admin_port,
                      "upstream": upstream,
                      "drain_timeout": "2s",
                      "access_log": "stdout"},
        }
        if TEST_WORKERS:
            base["levee"]["workers"] = TEST_WORKERS
        for sec, kv in (sections or {}).items():
            base.setdefault(sec, {}).update(kv)
        self.sections = base
        self.policy_path = policy_path or os.path.join(workdir, "policy.ini")
        if use_policy and policy_path is None:
            with open(self.policy_path, "w") as f:
                f.write(policy_text if policy_text is not None else render_policy(base))
        if use_policy:
            self.args = [LEVEE_BIN, "--policy", self.policy_path] + list(args or [])
        else:
            self.args = [LEVEE_BIN] + list(args or [])
        self.stdout_path = os.path.join(workdir, "levee.stdout")
        self.stderr_path = os.path.join(workdir, "levee.stderr")
        if start:
            self.start(wait)

    def write_policy(self, text=None, sections=None, atomic=False):
        if text is None:
            text = render_policy(sections)
        data = text.encode()
        if atomic:
            tmp = self.policy_path + ".tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, self.policy_path)
        else:
            with open(self.policy_path, "wb") as f:
                f.write(data)
        return data

    def start(self, wait="readyz"):
        if not os.path.exists(LEVEE_BIN):
            raise AssertionError("levee binary not found at %s (build: cmake -S . -B build -G Ninja && "
                                 "ninja -C build levee, or set LEVEE_BIN)" % LEVEE_BIN)
        out = open(self.stdout_path, "ab")
        err = open(self.stderr_path, "ab")
        self.started_at = time.time()
        nofile = self.nofile

        def preexec():
            _die_with_parent()
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        self.proc = subprocess.Popen(self.args, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                     env=self.env, cwd=self.workdir, preexec_fn=preexec)
        out.close()
        err.close()
        self.pid = self.proc.pid
        if wait:
            self.wait_ready(wait)

    def wait_ready(self, path="readyz", timeout=10.0 * WAIT_SCALE):
        def ok():
            if self.proc.poll() is not None:
                raise AssertionError("levee exited with %s during start-up; stderr:\n%s"
                                     % (self.proc.returncode, self.stderr()[-3000:]))
            try:
                return self.admin_get("/" + path, timeout=0.5)[0] == 200
            except (OSError, TimeoutError, ProtocolError):
                return False
        try:
            wait_until(ok, timeout, interval=0.02, msg="levee /%s == 200" % path)
        except AssertionError as e:
            raise AssertionError("%s\nstderr:\n%s" % (e, self.stderr()[-3000:]))

    # -- client side
    def conn(self, timeout=5.0):
        c = HttpConn(self.port, timeout=timeout)
        self.conns.append(c)
        return c

    def raw(self, req, **kw):
        return raw(self.port, req, **kw)

    def get(self, target, headers=(), **kw):
        return self.raw(build_request("GET", target, headers), **kw)

    def admin_get(self, path, timeout=3.0):
        r = self.admin_request("GET", path, timeout=timeout)
        return r.status, r.headers, r.body

    def admin_request(self, method, path, headers=(), port=None, timeout=3.0):
        """One request to the admin listener (or another levee port, such as
        the probe listener); returns the Response."""
        c = HttpConn(port or self.admin_port, timeout=timeout)
        try:
            c.send(build_request(method, path, list(headers) + [("Connection", "close")], host="admin"))
            r = c.read_response(method)
            if r is None:
                raise ProtocolError("admin closed without a response to %s %s" % (method, path))
            return r
        finally:
            c.close()

    def metrics(self):
        st, hd, body = self.admin_get("/metrics")
        assert st == 200, "/metrics answered %s" % st
        return parse_metrics(body.decode())

    def metric(self, name, **labels):
        return metric_sum(self.metrics(), name, **labels)

    def status(self):
        st, hd, body = self.admin_get("/status")
        assert st == 200, "/status answered %s" % st
        return json.loads(body)

    def wait_redis_ready(self, timeout=5):
        """Wait until every worker's Redis connection is ready. Until its
        own is, a worker answers misses with fwd=bypass and stores nothing,
        so a test that warms the cache through Redis waits for this first."""
        workers = self.status()["workers"]
        wait_until(lambda: (self.metric("levee_redis_connections_ready") or 0) >= workers,
                   timeout * WAIT_SCALE, msg="all %d workers on Redis" % workers)

    def wait_committed(self, n=1, timeout=5):
        """Wait until this levee has committed `n` fills to Redis in all: a
        fill's commit follows its answer, so a test that reads the entry
        through another replica waits for it first."""
        wait_until(lambda: metric_sum(self.metrics(), "levee_cache_l2_operations_total", result="committed") >= n,
                   timeout * WAIT_SCALE, msg="%d fill(s) committed to Redis" % n)

    def cpu_seconds(self):
        """User plus system CPU time the process has used so far."""
        with open("/proc/%d/stat" % self.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def fd_count(self):
        return len(os.listdir("/proc/%d/fd" % self.pid))

    def rss_kib(self):
        with open("/proc/%d/status" % self.pid) as f:
            for ln in f:
                if ln.startswith("VmRSS:"):
                    return int(ln.split()[1])
        raise AssertionError("no VmRSS for levee")

    def signal(self, sig):
        os.kill(self.pid, sig)

    def stdout(self):
        with open(self.stdout_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def log_lines(self, needle):
        """The entries of levee's error log (JSON lines on stderr) whose
        message contains needle, as dicts (ts, level, msg)."""
        out = []
        for line in self.stderr().splitlines():
            try:
                m = json.loads(line)
            except ValueError:
                continue
            if needle in m.get("msg", ""):
                out.append(m)
        return out

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        """Close our client sockets, SIGTERM, SIGKILL only if needed.
        Returns an error message if levee had died on its own, did not exit
        0 on SIGTERM (LeakSanitizer makes a leak at exit a non-zero exit),
        or wrote a sanitizer report."""
        for c in self.conns:
            c.close()
        if self.proc is None:
            return None
        problem = None
        rc = self.proc.poll()
        if rc is not None and not self.expected_exit:
            problem = "levee exited on its own during the test (rc=%s); stderr tail:\n%s" % (
                rc, self.stderr()[-2000:])
        if rc is None:
            self.proc.send_signal(signal.SIGTERM)
            limit = 10 * WAIT_SCALE
            try:
                rc = self.proc.wait(limit)
                if rc != 0:
                    problem = "levee exited with %s on SIGTERM; stderr tail:\n%s" % (rc, self.stderr()[-2000:])
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                problem = "levee did not exit within %ds of SIGTERM (killed)" % limit
        report = sanitizer_report(self.stderr())
        if report:  # says more than the exit code or the stderr tail
            problem = "levee (exit %s) wrote a sanitizer report to %s:\n%s" % (rc, self.stderr_path, report)
        return problem


class RssSampler(threading.Thread):
    """Samples levee's VmRSS (KiB) every `interval` seconds until stopped."""

    def __init__(self, levee, interval=0.05):
        super().__init__(daemon=True)
        self.levee = levee
        self.interval = interval
        self.samples = []
        self._stop_ev = threading.Event()

    def run(self):
        while not self._stop_ev.is_set():
            try:
                self.samples.append(self.levee.rss_kib())
            except (OSError, AssertionError):
                break
            self._stop_ev.wait(self.interval)

    def stop(self):
        self._stop_ev.set()
        self.join(5)
        return max(self.samples) if self.samples else None


def connect_refused(port, timeout=1.0):
    s = socket.socket()
    s.settimeout(timeout)
    try:
        s.connect(("127.0.0.1", port))
        return False
    except ConnectionRefusedError:
        return True
    except OSError as e:
        return e.errno == errno.ECONNREFUSED
    finally:
        s.close()
