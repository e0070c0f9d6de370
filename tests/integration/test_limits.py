"""Request limits and client-side timeouts (docs/http.md, "Errors levee
produces itself" and "Timeouts")."""
import json
import select
import socket
import time

from harness import MiB, HttpConn, build_request, chunked, tokens, wait_until


def assert_rejected(r, status, token):
    assert r is not None, "levee closed without a response"
    assert (r.status, r.reason_token) == (status, token), r
    assert (r.header("Content-Type") or "").startswith("text/plain")
    assert r.closed, "connection must be closed after a request-side error"


def origin_saw(origin, mark, marker):
    return [e for e in origin.events(mark) if e["event"] in ("request", "partial", "parse_error")
            and marker in json.dumps(e)]


# ---------------------------------------------------------------- sizes

def test_header_bytes_limit(levee_factory, origin):
    lv = levee_factory({"limits": {"header_bytes": "4KiB", "uri_bytes": "1KiB"}})
    r = lv.get("/echo?ok", [("X-Big", "a" * 3000)])
    assert r.status == 200
    mark = origin.mark()
    r = lv.get("/echo?hb-over", [("X-Big", "a" * 5000)], close_wait=2)
    assert_rejected(r, 431, "headers-too-large")
    r = lv.get("/echo?hb-many", [("X-H%d" % i, "v" * 200) for i in range(30)], close_wait=2)
    assert_rejected(r, 431, "headers-too-large")
    assert not origin_saw(origin, mark, "hb-")


def test_header_bytes_limit_huge_head(levee_factory, origin):
    """A 1 MiB head is refused at the limit, not buffered in full."""
    lv = levee_factory({"limits": {"header_bytes": "8KiB"}})
    mark = origin.mark()
    r = lv.get("/echo?hb-huge", [("X-Big", "a" * (1 << 20))], close_wait=2)
    assert_rejected(r, 431, "headers-too-large")
    assert not origin_saw(origin, mark, "hb-huge")


def test_header_count_limit(levee_factory, origin):
    lv = levee_factory({"limits": {"headers": "20"}})
    r = lv.get("/echo?ok", [("X-H%d" % i, "v") for i in range(15)])
    assert r.status == 200
    mark = origin.mark()
    r = lv.get("/echo?hc-over", [("X-H%d" % i, "v") for i in range(30)], close_wait=2)
    assert_rejected(r, 431, "headers-too-large")
    assert not origin_saw(origin, mark, "hc-over")


def test_uri_bytes_limit(levee_factory, origin):
    lv = levee_factory({"limits": {"uri_bytes": "1024"}})
    r = lv.get("/echo?" + "a" * 900)
    assert r.status == 200
    mark = origin.mark()
    r = lv.get("/echo?uri-over" + "b" * 2000, close_wait=2)
    assert_rejected(r, 414, "uri-too-long")
    assert not origin_saw(origin, mark, "uri-over")


def test_body_bytes_by_content_length(levee_factory, origin):
    lv = levee_factory({"limits": {"body_bytes": "10KiB"}})
    r = lv.raw(build_request("POST", "/sink", body=b"x" * 10240))
    assert r.status == 200 and r.json()["len"] == 10240
    mark = origin.mark()
    c = lv.conn()
    t0 = time.monotonic()
    c.send(build_request("POST", "/sink?bb-cl", [("Content-Length", "20000")]))  # no body sent
    r = c.read_response(timeout=3)
    assert r is not None and (r.status, r.reason_token) == (413, "body-too-large"), r
    assert time.monotonic() - t0 < 2, "413 must come before any body is read"
    assert c.wait_closed(2)
    assert not origin_saw(origin, mark, "bb-cl")


def test_body_bytes_by_chunked_stream(levee_factory, origin):
    lv = levee_factory({"limits": {"body_bytes": "10KiB"}})
    r = lv.raw(build_request("POST", "/sink", [("Transfer-Encoding", "chunked")]) + chunked(b"y" * 10240, 1024))
    assert r.status == 200 and r.json()["len"] == 10240
    mark = origin.mark()
    req = build_request("POST", "/sink?bb-chunked", [("Transfer-Encoding", "chunked")]) + chunked(b"y" * 20480, 1024)
    r = lv.raw(req, close_wait=2)
    assert_rejected(r, 413, "body-too-large")
    time.sleep(0.15)  # absence window for anything levee might still forward
    complete = [e for e in origin_saw(origin, mark, "bb-chunked") if e["event"] == "request"]
    assert not complete, "origin received the whole over-limit body: %r" % complete


def test_body_bytes_chunked_single_huge_chunk(levee_factory, origin):
    lv = levee_factory({"limits": {"body_bytes": "10KiB"}})
    mark = origin.mark()
    c = lv.conn()
    # one chunk declared 1 MiB; 20 KB of it sent (over the 10 KiB limit), the rest never comes
    c.send(build_request("POST", "/sink?bb-huge", [("Transfer-Encoding", "chunked")]) + b"100000\r\n" + b"z" * 20000)
    r = c.read_response(timeout=3)
    assert r is not None and (r.status, r.reason_token) == (413, "body-too-large"), r
    assert c.wait_closed(2)
    assert not [e for e in origin_saw(origin, mark, "bb-huge") if e["event"] == "request"]


def send_until_answered(c, pieces):
    """Sends `pieces` one write at a time until levee has something to say
    (or has closed); returns how many bytes went out."""
    sent = 0
    for p in pieces:
        if select.select([c.sock], [], [], 0)[0]:
            break
        try:
            c.send(p)
        except (BrokenPipeError, ConnectionResetError):
            break
        sent += len(p)
    return sent


def test_chunk_extension_bounded_in_requests(levee, origin):
    """A chunk-size line may not grow without end: levee answers 400 once
    its extensions pass 4 KiB, while the line is still arriving in small
    writes."""
    mark = origin.mark()
    c = levee.conn()
    c.send(build_request("POST", "/sink?chunk-ext", [("Transfer-Encoding", "chunked")]) + b"5;x=")
    total = 10 * MiB
    sent = send_until_answered(c, (b"a" * 512 for _ in range(total // 512)))
    if sent == total:  # not answered: end the chunk, the request is complete
        c.send(b"\r\nhello\r\n0\r\n\r\n")
    r = c.read_response(timeout=5)
    assert r is not None and (r.status, r.reason_token) == (400, "bad-request"), r
    assert "close" in tokens(r.headers, "connection")
    assert c.wait_closed(2)
    assert sent < total
    time.sleep(0.15)  # absence window for anything levee might still forward
    assert not [e for e in origin_saw(origin, mark, "chunk-ext") if e["event"] == "request"]


def test_chunk_extension_bounded_in_responses(levee, origin):
    """The same bound on the upstream's chunk-size lines: the response has
    begun, so levee cuts it, and stops reading the upstream at once (the
    origin cannot finish writing its 32 MiB line)."""
    mark = origin.mark()
    c = levee.conn()
    c.send(build_request("GET", "/chunkext?n=%d" % (32 * MiB)))
    r = c.read_response(timeout=10)
    if r is not None:  # the head may or may not have reached the socket
        assert r.status == 200 and not r.complete, r
    assert c.eof
    ev = origin.wait_event(lambda e: e["event"] in ("done", "write_failed") and e["target"].startswith("/chunkext"),
                           since=mark, timeout=10, msg="the origin to finish or fail writing")
    assert ev["event"] == "write_failed", "levee read the whole 32 MiB chunk-size line: %r" % ev


def test_trailer_section_bounded(levee_factory, origin):
    """Trailers count against header_bytes, whitespace included (it reaches
    no parser callback)."""
    lv = levee_factory({"limits": {"header_bytes": "4KiB", "uri_bytes": "1KiB"}})
    head = build_request("POST", "/sink?trailers", [("Transfer-Encoding", "chunked")])
    r = lv.raw(head + b"5\r\nhello\r\n0\r\nX-T:" + b" " * 3000 + b"v\r\n\r\n")
    assert r.status == 200, r
    mark = origin.mark()
    r = lv.raw(head.replace(b"trailers", b"trailers-over") + b"5\r\nhello\r\n0\r\nX-T:" + b" " * 5000 + b"v\r\n\r\n",
               close_wait=2)
    assert_rejected(r, 431, "headers-too-large")
    time.sleep(0.15)  # absence window
    assert not [e for e in origin_saw(origin, mark, "trailers-over") if e["event"] == "request"]


# ---------------------------------------------------------------- connections

def test_max_connections(levee_factory, origin):
    lv = levee_factory({"levee": {"max_connections": "3"}})
    held = []
    for i in range(3):
        c = lv.conn()
        r = c.request("GET", "/echo?held=%d" % i)
        assert r is not None and r.status == 200
        held.append(c)
    r = lv.get("/echo?fourth", close_wait=2)
    assert r is not None, "connection over the limit closed without a 503"
    assert (r.status, r.reason_token) == (503, "max-connections"), r
    assert r.closed
    # the held ones still work
    r = held[0].request("GET", "/echo?still")
    assert r.status == 200
    # freeing one slot admits a new connection
    held[1].close()

    def admitted():
        r = lv.get("/echo?after-free")
        return r is not None and r.status == 200
    wait_until(admitted, 3, interval=0.05, msg="a new connection admitted after one closed")


def test_fd_exhaustion_pauses_accepting(levee_factory, origin):
    """Out of file descriptors, levee stops accepting for a while instead of
    spinning on accept() and logging every failure (it once burnt 1.6 cores
    and wrote 80 MB of log in 3 s); once descriptors are free it serves
    again. Admin connections during the shortage are refused the same way."""
    lv = levee_factory({"levee": {"workers": "2", "log_level": "info"}}, nofile=128)
    log_before = len(lv.stderr())
    held = []
    try:
        for _ in range(200):  # more than levee has descriptors: the rest wait in the backlog
            held.append(socket.create_connection(("127.0.0.1", lv.port), timeout=5))
        for _ in range(5):
            held.append(socket.create_connection(("127.0.0.1", lv.admin_port), timeout=5))
        wait_until(lambda: lv.fd_count() >= 125, 5, msg="levee to run out of descriptors")
        cpu_before = lv.cpu_seconds()
        time.sleep(2.0)  # the window measured: levee must stay close to idle through it
        cpu = lv.cpu_seconds() - cpu_before
        logged = lv.stderr()[log_before:]
        assert cpu < 0.3, "levee used %.2f s of CPU in 2 s, out of descriptors" % cpu
        assert len(logged) < 4096, "levee logged %d bytes in 2 s, out of descriptors:\n%s" % (
            len(logged), logged[:1000])
    finally:
        for s in held:
            s.close()

    def serving():
        try:
            r = lv.get("/echo?after-exhaustion", close_wait=0, timeout=2)
        except (OSError, TimeoutError):
            return False
        return r is not None and r.status == 200
    wait_until(serving, 5, interval=0.05, msg="levee to serve again once descriptors are free")
    assert lv.metric("levee_accept_pauses_total") >= 1
    assert lv.metric("levee_accept_errors_total") >= 1
    # one line when a listener's shortage starts and one when it ends
    wait_until(lambda: "accepting again" in lv.stderr()[log_before:], 5, msg="the end of the shortage logged")
    lines = lv.stderr()[log_before:].splitlines()
    starts = [ln for ln in lines if "not accepting" in ln]
    ends = [ln for ln in lines if "accepting again" in ln]
    assert 1 <= len(starts) <= 3 and len(ends) <= len(starts), lines  # two workers and the admin listener


# ---------------------------------------------------------------- timeouts

def _slowloris(port, prefix, interval, limit):
    """Send `prefix`, then one byte every `interval` s until levee answers
    or closes; returns (seconds since the first byte, HttpConn)."""
    c = HttpConn(port, timeout=limit)
    t0 = time.monotonic()
    c.send(prefix)
    c.sock.setblocking(True)
    while time.monotonic() - t0 < limit:
        c.sock.settimeout(interval)
        try:
            data = c.sock.recv(65536)
        except socket.timeout:
            try:
                c.sock.sendall(b"a")
            except OSError:
                break
            continue
        except ConnectionResetError:
            c.reset = True
            c.eof = True
            break
        if not data:
            c.eof = True
        else:
            c.buf += data
        break
    return time.monotonic() - t0, c


def test_header_timeout_slowloris(levee_factory, origin):
    lv = levee_factory({"limits": {"header_timeout": "1s", "idle_timeout": "10s"}})
    mark = origin.mark()
    elapsed, c = _slowloris(lv.port, b"GET /echo?slowloris HTTP/1.1\r\nHost: x\r\nX-Slow: ", 0.2, 6)
    try:
        assert elapsed < 2.5, "levee let a slowloris client keep the head open for %.1fs" % elapsed
        assert elapsed >= 0.8, "timed out after %.2fs, before header_timeout (1s)" % elapsed
        r = c.read_response(timeout=2)
        assert r is not None, "levee closed without a 408"
        assert (r.status, r.reason_token) == (408, "header-timeout"), r
        assert c.wait_closed(2)
    finally:
        c.close()
    assert not origin_saw(origin, mark, "slowloris")


def test_header_timeout_on_keepalive_connection(levee_factory):
    lv = levee_factory({"limits": {"header_timeout": "1s", "idle_timeout": "10s"}})
    c = lv.conn()
    r = c.request("GET", "/echo")
    assert r.status == 200
    t0 = time.monotonic()
    c.send(b"GET /echo?second HTTP/1.1\r\nHost: x\r\n")
    r = c.read_response(timeout=4)
    elapsed = time.monotonic() - t0
    assert r is not None and (r.status, r.reason_token) == (408, "header-timeout"), r
    assert 0.8 <= elapsed <= 2.5, elapsed
    assert c.wait_closed(2)


def test_idle_timeout_closes_silently(levee_factory):
    lv = levee_factory({"limits": {"idle_timeout": "1s", "header_timeout": "10s"}})
    c = lv.conn()
    r = c.request("GET", "/echo")
    assert r.status == 200
    t0 = time.monotonic()
    assert c.wait_closed(4), "idle keep-alive connection not closed (extra=%r)" % c.extra[:200]
    elapsed = time.monotonic() - t0
    assert 0.8 <= elapsed <= 2.5, "closed after %.2fs with idle_timeout=1s" % elapsed
    assert c.extra == b"", "idle close must be silent"


def test_idle_connection_kept_before_timeout(levee_factory):
    lv = levee_factory({"limits": {"idle_timeout": "2s"}})
    c = lv.conn()
    assert c.request("GET", "/echo").status == 200
    assert not c.wait_closed(1.0)
    r = c.request("GET", "/echo")
    assert r is not None and r.status == 200


def test_body_timeout(levee_factory, origin):
    lv = levee_factory({"limits": {"body_timeout": "1s"}})
    mark = origin.mark()
    c = lv.conn()
    c.send(build_request("POST", "/sink?body-timeout", [("Content-Length", "100")]) + b"0123456789")
    t0 = time.monotonic()
    r = c.read_response(timeout=4)
    elapsed = time.monotonic() - t0
    assert r is not None, "levee closed without a 408"
    assert (r.status, r.reason_token) == (408, "body-timeout"), r
    assert 0.8 <= elapsed <= 2.5, elapsed
    assert c.wait_closed(2)
    assert not [e for e in origin_saw(origin, mark, "body-timeout") if e["event"] == "request"]


def test_body_timeout_is_inactivity_not_total(levee_factory):
    lv = levee_factory({"limits": {"body_timeout": "1s"}})
    c = lv.conn()
    n = 8
    c.send(build_request("POST", "/sink", [("Content-Length", str(n * 5))]))
    for i in range(n):  # 8 x 0.3s = 2.4s in total, never 1s without a byte
        c.send(b"abcde")
        time.sleep(0.3)
    r = c.read_response(timeout=3)
    assert r is not None and r.status == 200 and r.json()["len"] == n * 5, r


def test_send_timeout_client_not_reading(levee_factory, origin):
    lv = levee_factory({"limits": {"send_timeout": "1s"}, "upstream": {"response_timeout": "30s"}})
    mark = origin.mark()
    n = 256 * 1024 * 1024
    c = lv.conn(timeout=20)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    c.send(build_request("GET", "/bytes?n=%d&st=1" % n))
    # levee must give up on this client and cancel the upstream exchange
    seen = origin.wait_event(lambda e: e["event"] == "request" and "st=1" in e["target"], since=mark,
                             timeout=3, msg="the request at the origin")
    origin.wait_event(lambda e: e["event"] in ("write_failed", "conn_close", "aborted") and e["conn"] == seen["conn"],
                      since=mark, timeout=8, msg="levee to give up on a client that does not read")
    r = c.read_response(timeout=20, store=False)
    assert r is not None and r.status == 200
    assert not r.complete, "levee delivered the whole body to a client that stalled past send_timeout"
    assert c.eof


def test_pipelining_client_that_never_reads_cached_route(levee_factory, origin):
    """A client pipelines GETs of a cached 900 KB object and reads nothing:
    levee stops serving the next request while the output waits, keeps its
    memory flat, and closes the client after send_timeout."""
    from harness import RssSampler
    lv = levee_factory({"limits": {"send_timeout": "2s"}, 'route "c"': {"prefix": "/", "cache_ttl": "60s"},
                        "cache": {"memory": "64MiB", "max_object": "1MiB"}})
    u = "/bytes?n=900000"
    assert lv.get(u).status == 200  # now cached
    base = lv.rss_kib()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", lv.port))
    s.setblocking(False)
    req = build_request("GET", u)
    sampler = RssSampler(lv)
    sampler.start()
    sent, t0 = 0, time.monotonic()
    try:
        while time.monotonic() - t0 < 6:  # send while levee reads; it must stop reading
            try:
                sent += s.send(req * 64)
            except BlockingIOError:
                time.sleep(0.05)
            except OSError:
                break  # levee closed us: the send timeout fired
        peak = sampler.stop()
        assert peak - base < 40 * 1024, "RSS grew by %d KiB for one client that does not read" % (peak - base)
        wait_until(lambda: lv.metric("levee_connections_active") == 0, 10,
                   msg="levee to close the client that never reads")
        # what the kernel buffers is not levee's: levee itself read little
        got = lv.metric("levee_client_bytes_received_total")
        assert got < 1024 * 1024, "levee read %d bytes of requests it could not answer" % got
    finally:
        s.close()
    assert lv.get("/echo").status == 200  # and it serves others
