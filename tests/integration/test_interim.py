"""Interim (1xx) responses from the origin (RFC 9110 §15.2): 102 and 103 go
to an HTTP/1.1 client as they come, in order, before the final response,
with hop-by-hop fields stripped; never to an HTTP/1.0 client; never stored;
never taken for the final response; levee's own 100 Continue stays its own
(test_framing.py). Origin paths: /interim2/... (origin.py)."""
import socket
import time
import uuid

from harness import SANITIZER, HttpConn, cache_status_core, access_lines, metric_sum, wait_until

CACHED = {'route "c"': {"prefix": "/interim2/", "cache_ttl": "60s"}}


def uniq(kind):
    return "/interim2/%s/%s" % (kind, uuid.uuid4().hex[:8])


def links(r):
    return [i.header("Link") for i in r.interim]


def test_103_then_a_cacheable_200_and_the_hit_has_no_103(levee_factory):
    lv = levee_factory(CACHED)
    u = uniq("one")
    c = lv.conn()
    r = c.request("GET", u)
    assert r.status == 200 and r.body == b"final-1", r
    assert [i.status for i in r.interim] == [103], r.interim
    hint = r.interim[0]
    assert hint.version == "HTTP/1.1"
    assert hint.header("Link") == "</one.css>; rel=preload" and hint.header("X-Seq") == "0"
    # hop-by-hop fields go, as from a final response; the 1xx has no framing
    for name in ("Connection", "X-Hop", "Keep-Alive", "Content-Length", "Transfer-Encoding", "Cache-Status"):
        assert not hint.has(name), (name, hint.headers)
    assert "stored" in r.header("Cache-Status"), r.header("Cache-Status")
    # the 103 was not stored with the 200: the hit shows none, on the same
    # connection (the 103 did not upset its framing either)
    h = c.request("GET", u)
    assert h.status == 200 and h.body == b"final-1" and h.interim == [], h
    assert cache_status_core(h.header("Cache-Status")) == "levee; hit"
    m = lv.metrics()
    assert metric_sum(m, "levee_interim_forwarded_total") == 1
    # the access log and the status counters name the final response alone
    log = wait_until(lambda: len(access_lines(lv, u)) == 2 and access_lines(lv, u), 5, msg="two access log lines")
    assert [d["status"] for d in log] == [200, 200], log
    assert metric_sum(m, "levee_requests_total", **{"class": "1xx"}) == 0
    assert metric_sum(m, "levee_requests_total", **{"class": "2xx"}) == 2


def test_several_103s_and_a_102_arrive_in_order(levee_factory):
    lv = levee_factory(CACHED)
    c = lv.conn()
    r = c.request("GET", uniq("many") + "?n=4")
    assert r.status == 200 and r.body == b"final-1"
    assert [i.status for i in r.interim] == [103] * 4
    assert [i.header("X-Seq") for i in r.interim] == ["0", "1", "2", "3"]
    r = c.request("GET", uniq("102") + "?n=2")
    assert r.status == 200
    assert [i.status for i in r.interim] == [102, 103, 103], r.interim


def test_an_http10_client_sees_no_1xx(levee_factory):
    lv = levee_factory(CACHED)
    u = uniq("one") + "?n=3"
    r = lv.conn().request("GET", u, version="HTTP/1.0")
    assert r.status == 200 and r.body == b"final-1" and r.interim == [], r.interim
    assert metric_sum(lv.metrics(), "levee_interim_dropped_total") == 3
    r = lv.conn().request("GET", uniq("102"), version="HTTP/1.0")
    assert r.status == 200 and r.interim == []


def test_a_chunked_final_after_a_103(levee_factory):
    lv = levee_factory(CACHED)
    c = lv.conn()
    u = uniq("chunked")
    r = c.request("GET", u)
    assert [i.status for i in r.interim] == [103]
    assert r.status == 200 and r.framing == "chunked" and r.complete and r.body == b"final-1", r
    h = c.request("GET", u)
    assert cache_status_core(h.header("Cache-Status")) == "levee; hit" and h.body == b"final-1" and h.interim == []


def test_a_103_then_the_origin_drops_gets_a_well_formed_502(levee_factory):
    lv = levee_factory(CACHED)
    c = lv.conn()
    u = uniq("drop")
    r = c.request("GET", u)
    assert [i.status for i in r.interim] == [103], r.interim
    assert r.status == 502 and r.header("X-Levee-Reason") == "upstream-bad-response", r
    assert r.complete and r.framing == "content-length", r
    # the connection goes on: the 502 was a whole final response
    r = c.request("GET", uniq("one"))
    assert r.status == 200 and r.body == b"final-1"
    log = wait_until(lambda: access_lines(lv, u), 5, msg="the access log line")
    assert [d["status"] for d in log] == [502], log


def test_a_stale_fallback_after_a_103_is_the_final_response(levee_factory):
    """The origin sends a 103, then no answer in time: the route's stale
    copy answers, after the 103 the client already has; the copy itself
    never had one."""
    lv = levee_factory({'route "c"': {"prefix": "/interim2/", "cache_ttl": "1s", "fallback": "stale"},
                        "upstream": {"response_timeout": "300ms"}})
    u = uniq("flip") + "?gap_ms=1000"
    c = lv.conn()
    r = c.request("GET", u)
    assert r.status == 200 and r.interim == [] and "stored" in r.header("Cache-Status"), r
    time.sleep(1.2)  # the entry's lifetime: time itself is the wait
    r = c.request("GET", u)
    assert [i.status for i in r.interim] == [103], r.interim
    assert r.status == 200 and r.body == b"final-1" and r.complete, r
    assert cache_status_core(r.header("Cache-Status")) == "levee; hit; detail=fallback", r.headers
    assert r.header("X-Levee-Reason") == "upstream-timeout; fallback=stale"
    r = c.request("GET", uniq("one"))  # and the connection goes on
    assert r.status == 200 and len(r.interim) == 1


def test_a_post_gets_its_103_too(levee_factory):
    lv = levee_factory()
    r = lv.conn().request("POST", uniq("one"), body=b"x" * 1000)
    assert r.status == 200 and [i.status for i in r.interim] == [103]


def test_no_retry_once_a_103_went_out(levee_factory, origin):
    """Retrying after a 103 would show the client an answer of another
    exchange than the hints it may act on: the 503 stands."""
    lv = levee_factory({'route "r"': {"prefix": "/interim2/", "retries": "2", "retry_backoff": "5ms"}})
    u = uniq("retry")
    mark = origin.mark()
    r = lv.conn().request("GET", u)
    assert [i.status for i in r.interim] == [103]
    assert r.status == 503 and r.body == b"busy 1", r
    assert len(origin.requests(mark, path=u)) == 1
    assert metric_sum(lv.metrics(), "levee_retries_status_total") == 0
    # the control: the 103 went to an HTTP/1.0 client as nothing, so the
    # retry may go on and the last attempt's answer stands
    u = uniq("retry")
    r = lv.conn().request("GET", u, version="HTTP/1.0")
    assert r.status == 503 and r.body == b"busy 3" and r.interim == [], r
    assert metric_sum(lv.metrics(), "levee_retries_status_total") == 2


def test_a_1xx_after_the_response_timeout_is_dropped(levee_factory):
    """The 103 comes after levee answered 504: the client's connection sees
    nothing of it (nor of the late 200) and carries its next request."""
    lv = levee_factory({"upstream": {"response_timeout": "300ms"}})
    c = lv.conn()
    r = c.request("GET", uniq("late") + "?ms=600", timeout=5)
    assert r.status == 504 and r.interim == [], r
    time.sleep(0.5)  # the late 103 and 200 arrive now (nothing to wait on: they must not show)
    r = c.request("GET", uniq("one"))
    assert r.status == 200 and r.body == b"final-1" and links(r) == ["</one.css>; rel=preload"], r


def test_a_timeout_after_a_103_is_a_whole_504(levee_factory):
    lv = levee_factory({"upstream": {"response_timeout": "300ms"}})
    c = lv.conn()
    r = c.request("GET", uniq("one") + "?gap_ms=800", timeout=5)
    assert [i.status for i in r.interim] == [103]
    assert r.status == 504 and r.complete, r
    r = c.request("GET", uniq("one"))
    assert r.status == 200 and r.interim and r.body == b"final-1"


def test_thread_bulkhead_route_forwards_and_drops_late_ones(levee_factory):
    lv = levee_factory({
        'bulkhead "t"': {"isolation": "thread", "threads": "1", "max_concurrent": "2", "abandon_after": "5s"},
        'route "b"': {"prefix": "/interim2/", "bulkhead": "t"},
        "upstream": {"response_timeout": "300ms"},
    })
    c = lv.conn()
    r = c.request("GET", uniq("many") + "?n=2")
    assert r.status == 200 and [i.status for i in r.interim] == [103, 103]
    # kept by the bulkhead after the timeout: the late 103 is drained, never shown
    r = c.request("GET", uniq("late") + "?ms=600", timeout=5)
    assert r.status == 504 and r.interim == []
    wait_until(lambda: metric_sum(lv.metrics(), "levee_interim_dropped_total") >= 1, 5,
               msg="the late 103 read and dropped")
    r = c.request("GET", uniq("one"))
    assert r.status == 200 and links(r) == ["</one.css>; rel=preload"], r


def test_a_flood_of_103s_to_a_slow_client_is_held_back_not_lost(levee_factory, origin):
    """4000 103s of 4 KB each (16 MB, more than the kernel buffers on the
    way hold) to a client that reads nothing for a while: levee stops
    reading the origin past its output bound, so the origin cannot finish;
    the client still gets every 103, in order, then the final response."""
    lv = levee_factory()
    c = HttpConn(lv.port, timeout=60)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    u = uniq("many")
    mark = origin.mark()
    rss0 = lv.rss_kib()
    c.send(b"GET %s?n=4000&size=4000 HTTP/1.1\r\nHost: t\r\n\r\n" % u.encode())
    origin.wait_event(lambda e: e.get("event") == "request" and e["target"].startswith(u), mark)
    time.sleep(1.5)  # reading nothing: what must not happen has had its chance
    done = [e for e in origin.events(mark) if e.get("event") == "done" and e["target"].startswith(u)]
    assert not done, "the origin wrote the whole flood: levee buffered it"
    grew = lv.rss_kib() - rss0
    r = c.read_response(timeout=60)
    assert r.status == 200 and r.body == b"final-1"
    assert [i.header("X-Seq") for i in r.interim] == [str(i) for i in range(4000)]
    if not SANITIZER:  # a sanitizer's allocator keeps what is freed for a while
        assert grew < 8 * 1024, "levee grew by %d KiB while the client read nothing" % grew


def test_the_client_leaving_while_103s_arrive(levee_factory, origin):
    """The client goes while levee writes it 103s (a GET: the exchange ends
    with it; a write: its answer is still read to the end); levee goes on
    serving, and what the origin sends after is never taken for the next
    request's answer."""
    lv = levee_factory()
    for method in (b"GET", b"PATCH"):
        u = uniq("many")
        mark = origin.mark()
        s = socket.create_connection(("127.0.0.1", lv.port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"%s %s?n=3000&size=2000&gap_ms=300 HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"
                  % (method, u.encode()))
        s.recv(100)  # the first 103 came
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()  # a reset: levee's next write fails
        if method == b"PATCH":
            origin.wait_event(lambda e: e.get("event") == "done" and e["target"].startswith(u), mark, timeout=10,
                              msg="the write's answer read to its end")
        r = lv.conn().request("GET", uniq("one"))
        assert r.status == 200 and r.body == b"final-1" and links(r) == ["</one.css>; rel=preload"], r
