"""Invalidation on every unsafe method (RFC 9111 §4.4, RFC 9110 §9.2.1):
any method but GET, HEAD, OPTIONS and TRACE answered 2xx or 3xx purges its
target and the same-origin Location and Content-Location, in the L1, in
Redis and across replicas through Kafka, WebDAV's and other methods levee
does not name included, and tokens strict llhttp does not know (forwarded
behind a stand-in, docs/http.md); 4xx and 5xx purge nothing. Origin paths:
/method/NNN/... (origin.py)."""
import socket
import time
import uuid

import pytest

from harness import WAIT_SCALE, HttpConn, cache_status_core, metric_sum, once, wait_until
from redis_server import REDIS
from test_invalidation import Cluster

ROUTE = {'route "c"': {"prefix": "/method/", "cache_ttl": "60s"}}
WRITES = ["PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "M-SEARCH", "PURGE",
          "REPORT", "SEARCH", "MKCALENDAR", "LINK", "UNLINK", "NOTIFY", "SUBSCRIBE", "MERGE", "ACL", "BIND"]


def res(status, name=None):
    return "/method/%d/%s" % (status, name or uuid.uuid4().hex[:8])


def cs(r):
    return cache_status_core(r.header("Cache-Status", ""))


def cache(lv, target):
    """GETs target until the second is a hit; returns the cached body."""
    first = once(lv.port, "GET", target)
    assert first.status == 200, first
    r = once(lv.port, "GET", target)
    assert cs(r) == "levee; hit", (target, cs(r))
    return first.body


def hit(lv, target):
    return cs(once(lv.port, "GET", target)) == "levee; hit"


@pytest.fixture
def redis_policy(request):
    """ROUTE with a redis-server of the test's own (conftest's `redis`)."""
    if REDIS is None:
        pytest.skip("redis-server is not installed")
    r = request.getfixturevalue("redis")
    return dict(ROUTE, redis={"address": "127.0.0.1:%d" % r.port})


@pytest.fixture(params=["l1", "redis"])
def lv(request, levee_factory):
    """A levee with the L1 alone, then with Redis behind it."""
    return levee_factory(ROUTE if request.param == "l1" else request.getfixturevalue("redis_policy"))


@pytest.mark.parametrize("method", WRITES)
def test_a_2xx_to_any_unsafe_method_purges_its_target(levee_factory, method):
    lv = levee_factory(ROUTE)
    u = res(207)
    body = cache(lv, u)
    r = once(lv.port, method, u)
    assert r.status == 207, r
    assert cs(r) == "levee; fwd=bypass", cs(r)
    again = once(lv.port, "GET", u)
    assert "fwd=miss" in cs(again) and again.body != body, (method, cs(again))


@pytest.mark.parametrize("status", [200, 201, 204, 207, 301, 303, 308])
def test_2xx_and_3xx_purge_the_target_location_and_content_location(lv, status):
    name = uuid.uuid4().hex[:8]
    u, loc, cloc, other = (res(status, name + s) for s in ("", "-loc", "-cloc", "-other"))
    for t in (u, loc, cloc, other):
        cache(lv, t)
    r = once(lv.port, "MKCOL", u, headers=[("X-Loc", loc), ("X-CLoc", "http://test.local" + cloc)])
    assert r.status == status, r
    assert not hit(lv, u) and not hit(lv, loc) and not hit(lv, cloc)
    assert hit(lv, other)  # nothing else


def test_a_cross_origin_location_is_not_purged(lv):
    u, loc = res(201), res(201)
    cache(lv, u)
    cache(lv, loc)
    r = once(lv.port, "PROPPATCH", u, headers=[("X-Loc", "http://elsewhere.example" + loc)])
    assert r.status == 201
    assert not hit(lv, u) and hit(lv, loc)


@pytest.mark.parametrize("status", [400, 404, 409, 423, 500, 503])
def test_4xx_and_5xx_purge_nothing(lv, status):
    u, loc = res(status), res(status)
    cache(lv, u)
    cache(lv, loc)
    r = once(lv.port, "PROPFIND", u, headers=[("X-Loc", loc)])
    assert r.status == status
    assert hit(lv, u) and hit(lv, loc)


def test_redis_is_purged_for_other_replicas(levee_factory, redis_policy):
    a = levee_factory(redis_policy)
    u = res(200)
    cache(a, u)
    b = levee_factory(redis_policy)
    assert "hit" in cs(once(b.port, "GET", u))  # from Redis
    assert once(a.port, "M-SEARCH", u).status == 200
    c = levee_factory(redis_policy)  # an empty L1: only Redis could answer
    assert "fwd=miss" in cs(once(c.port, "GET", u))


def test_a_body_on_an_unsafe_method_goes_up_and_purges(lv, origin):
    u = res(207)
    cache(lv, u)
    mark = origin.mark()
    xml = b'<?xml version="1.0"?><propfind xmlns="DAV:"><allprop/></propfind>' * 50
    r = once(lv.port, "PROPFIND", u, headers=[("Depth", "1"), ("Content-Type", "application/xml")], body=xml)
    assert r.status == 207
    seen = origin.requests(mark, path=u)
    assert seen[0]["method"] == "PROPFIND" and seen[0]["body_len"] == len(xml)
    assert not hit(lv, u)
    # chunked, on a kept-alive connection, and the next request on it
    cache(lv, u)
    c = lv.conn()
    c.send(b"PROPFIND %s HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\n0\r\n\r\n" % u.encode())
    assert c.read_response().status == 207
    r = c.request("GET", u)
    assert r.status == 200 and "fwd=miss" in cs(r), cs(r)
    c.close()


def test_the_purge_happens_when_the_client_left(lv, origin):
    """The upstream acted on the write: levee reads its answer to the end
    and purges, though the client is gone (request.c)."""
    u = res(200) + "?ms=300"
    cache(lv, u)
    mark = origin.mark()
    s = socket.create_connection(("127.0.0.1", lv.port))
    s.sendall(b"LOCK %s HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc" % u.encode())
    origin.wait_event(lambda e: e.get("event") == "request" and e["target"] == u and e["method"] == "LOCK", mark)
    s.close()
    wait_until(lambda: not hit(lv, u), 5, msg="purged after the client left")
    assert [e for e in origin.events(mark) if e.get("event") == "done" and e["target"] == u]


def test_safe_methods_purge_nothing(lv):
    u = res(200)
    cache(lv, u)
    for m in ("HEAD", "OPTIONS", "TRACE"):
        once(lv.port, m, u)
    assert hit(lv, u)


# ---- methods llhttp does not know -------------------------------------------
# Any token is a method (RFC 9110 §9.1): levee forwards the ones strict
# llhttp does not know, parsed on behind a stand-in (net/http1.c), as unsafe
# methods. Only a token longer than a request head may be is refused.

UNKNOWN = [b"BREW", b"QUERY", b"get", b"GETX", b"PU", b"PROPFINDX", b"FOO_BAR", b"X-Y.Z~1",
           b"!#$%&'*+-.^_`|~", b"DESCRIBE", b"SETUP", b"SET_PARAMETER", b"A" * 200]


def _seen_methods(origin, mark, target):
    return [e["method"] for e in origin.requests(mark, path=target)]


@pytest.mark.parametrize("method", UNKNOWN)
def test_an_unknown_token_is_forwarded_and_purges(lv, origin, method):
    u = res(207)
    body = cache(lv, u)
    mark = origin.mark()
    c = HttpConn(lv.port)
    c.send(method + b" " + u.encode() + b" HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc")
    r = c.read_response()
    assert r.status == 207 and cs(r) == "levee; fwd=bypass", (r, cs(r))
    seen = origin.requests(mark, path=u)
    assert [(e["method"], e["body_len"]) for e in seen] == [(method.decode(), 3)], seen
    # the connection stays usable, and the write purged the cached GET
    again = c.request("GET", u)
    assert again.status == 200 and "fwd=miss" in cs(again) and again.body != body, cs(again)
    c.close()
    m = lv.metrics()
    assert metric_sum(m, "levee_rejected_requests_total", reason="method_not_implemented") == 0
    assert metric_sum(m, "levee_cache_lookups_total", result="bypass") >= 1


def test_a_4xx_to_an_unknown_method_purges_nothing(lv):
    u = res(405)
    cache(lv, u)
    assert once(lv.port, "BREW", u).status == 405
    assert hit(lv, u)


def test_unknown_method_split_across_reads_and_after_empty_lines(levee_factory, origin):
    lv = levee_factory(ROUTE)
    for parts, method in (([b"BR", b"EW /method/200/a HTTP/1.1\r\nHost: t\r\n\r\n"], "BREW"),
                          ([b"GE", b"T", b"X /method/200/a HTTP/1.1\r\nHost: t\r\n\r\n"], "GETX"),
                          ([b"\r\nB", b"REW", b" /method/200/a HTTP/1.1\r\nHost: t\r\n\r\n"], "BREW"),
                          ([b"PROP", b"FINX", b" /meth", b"od/200/a HT", b"TP/1.1\r\nHost: t\r\n\r\n"], "PROPFINX"),
                          ([b"SETUP /method/2", b"00/a H", b"TTP/", b"1.1\r\nHost: t\r\n\r\n"], "SETUP")):
        mark = origin.mark()
        c = HttpConn(lv.port)
        for p in parts:
            c.send(p)
            time.sleep(0.05)  # separate reads on levee's side
        r = c.read_response()
        assert r is not None and r.status == 200, (parts, r)
        assert _seen_methods(origin, mark, "/method/200/a") == [method], parts
        c.close()


@pytest.mark.parametrize("line", [b"G@T /x HTTP/1.1", b"(FOO) /x HTTP/1.1", b"BR\x01EW /x HTTP/1.1",
                                  b"BREW\t/x HTTP/1.1", b"BREW  /x HTTP/1.1", b"BREW /x RTSP/1.0",
                                  b"GET /x RTSP/1.0", b"SETUP /x RTSP/1.0"])
def test_a_method_that_is_not_a_token_or_a_line_that_is_not_http_is_a_400(levee_factory, origin, line):
    lv = levee_factory()
    mark = origin.mark()
    c = HttpConn(lv.port)
    c.send(line + b"\r\nHost: t\r\n\r\n")
    r = c.read_response()
    assert r.status == 400 and r.header("X-Levee-Reason") == "bad-request", r
    assert c.wait_closed(3)
    assert not origin.requests(mark)


def test_an_unknown_method_is_framed_like_any_other(levee_factory, origin):
    """Past the token the request is llhttp's, as strict as a known one's:
    conflicting framing is a 400, and nothing reaches the origin."""
    lv = levee_factory()
    mark = origin.mark()
    c = HttpConn(lv.port)
    c.send(b"BREW /pot HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"0\r\n\r\n")
    r = c.read_response()
    assert r.status == 400, r
    assert c.wait_closed(3)
    assert not origin.requests(mark)


def test_pipelined_requests_around_an_unknown_method_are_answered_in_order(levee_factory, origin):
    lv = levee_factory()
    mark = origin.mark()
    c = HttpConn(lv.port)
    c.send(b"GET /echo?a HTTP/1.1\r\nHost: t\r\n\r\n"
           b"BREW /echo?pot HTTP/1.1\r\nHost: t\r\n\r\n"
           b"GET /echo?b HTTP/1.1\r\nHost: t\r\n\r\n")
    assert [c.read_response().status for _ in range(3)] == [200, 200, 200]
    assert [(e["method"], e["target"]) for e in origin.requests(mark)] == [
        ("GET", "/echo?a"), ("BREW", "/echo?pot"), ("GET", "/echo?b")]


def test_a_body_on_an_unknown_method_goes_up_as_its_body(levee_factory, origin):
    """The body is framed by its Content-Length and forwarded as the body:
    the request it holds never becomes one, and the next request on the
    connection is read where the body ends."""
    lv = levee_factory()
    mark = origin.mark()
    smuggled = b"GET /echo?smuggled HTTP/1.1\r\nHost: t\r\n\r\n"
    body = smuggled * 2000  # ~90 KB, more than one read
    c = HttpConn(lv.port)
    c.send(b"BREW /echo?pot HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body))
    c.send(body)
    c.send(b"GET /echo?after HTTP/1.1\r\nHost: t\r\n\r\n")
    assert c.read_response().status == 200
    assert c.read_response().status == 200
    seen = origin.requests(mark)
    assert [(e["method"], e["target"]) for e in seen] == [("BREW", "/echo?pot"), ("GET", "/echo?after")], seen
    assert seen[0]["body_len"] == len(body)


def test_a_method_longer_than_a_head_is_refused(levee_factory, origin):
    lv = levee_factory()
    mark = origin.mark()
    c = HttpConn(lv.port)
    try:
        c.send(b"A" * 200000 + b" /x HTTP/1.1\r\nHost: t\r\n\r\n")
    except OSError:
        pass  # levee may have answered and closed already
    r = c.read_response()
    assert r is not None and r.status == 501 and r.header("X-Levee-Reason") == "method-not-implemented", r
    assert c.wait_closed(3)
    assert not origin.requests(mark)
    assert metric_sum(lv.metrics(), "levee_rejected_requests_total", reason="method_not_implemented") == 1


@pytest.mark.parametrize("method", [b"head", b"HeAd", b"connect", b"Connect"])
def test_head_and_connect_spelt_another_way_are_refused(levee_factory, origin, method):
    """They decide a response's framing: a lenient origin taking `head` for
    HEAD would answer without the body levee waits for."""
    lv = levee_factory()
    mark = origin.mark()
    c = HttpConn(lv.port)
    c.send(method + b" /x HTTP/1.1\r\nHost: t\r\n\r\n")
    r = c.read_response()
    assert r is not None and r.status == 501 and r.header("X-Levee-Reason") == "method-not-implemented", r
    assert c.wait_closed(3)
    assert not origin.requests(mark)


def test_the_unknown_method_is_in_the_access_log(levee_factory):
    lv = levee_factory()
    c = HttpConn(lv.port)
    c.send(b"BREW /echo?pot HTTP/1.1\r\nHost: t\r\n\r\n")
    assert c.read_response().status == 200

    def line():
        for ln in lv.stdout().splitlines():
            if '"BREW"' in ln:
                return ln
        return None
    ln = wait_until(line, 5, msg="the access log line of the BREW")
    assert '"status":200' in ln.replace(" ", ""), ln


# ---- across replicas, through Kafka -----------------------------------------

@pytest.mark.parametrize("method", ["PROPFIND", "M-SEARCH", "PURGE", "MKCOL", "BREW", "SETUP"])
def test_an_unsafe_method_at_one_replica_purges_the_others(levee_factory, kafka_broker, tmp_path, method):
    cl = Cluster.on_new_topic(levee_factory, tmp_path, kafka_broker,
                              route={"prefix": "/method/", "cache_ttl": "60s"})
    a, b = cl.levee("a"), cl.levee("b")
    name = uuid.uuid4().hex[:8]
    u, loc = res(201, name), res(201, name + "-loc")
    for lv in (a, b):
        cache(lv, u)
        cache(lv, loc)
    assert once(a.port, method, u, headers=[("X-Loc", loc)]).status == 201
    assert not hit(a, u)  # purged at A before its answer
    # on a topic just created, A's first event may miss its 1 s delivery
    # timeout and go through the outbox, which retries within seconds
    wait_until(lambda: not hit(b, u) and not hit(b, loc), 15 * WAIT_SCALE, msg="%s at A purged B" % method)
    assert metric_sum(b.metrics(), "levee_kafka_events_applied_total") >= 1
    # a 4xx at A purges nothing at B (on a URL of its own: the write's event
    # above may be delivered again, Kafka being at-least-once)
    other = res(201, name + "-other")
    cache(b, other)
    assert once(a.port, method, res(409, name), headers=[("X-Loc", other)]).status == 409
    time.sleep(0.3)  # what must not come has had its chance (an applied event takes ms)
    assert hit(b, other)


# ---- a write's answer is read to its end when the client left ---------------

def _leave_unread(lv, origin, req, target):
    """Sends `req`, never reads, then leaves once the origin has begun to
    answer: levee must still read the answer to its end (the origin's
    "done"), though it had stopped reading the origin for the slow client."""
    mark = origin.mark()
    s = socket.create_connection(("127.0.0.1", lv.port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.sendall(req)
    origin.wait_event(lambda e: e.get("event") == "request" and e["target"] == target, mark)
    time.sleep(0.5)  # levee fills its bound and stops reading the origin
    s.close()
    origin.wait_event(lambda e: e.get("event") == "done" and e["target"] == target, mark, timeout=10,
                      msg="the origin's whole answer read after the client left")


def test_a_big_answer_to_a_write_is_read_to_the_end_after_the_client_left(levee_factory, origin):
    lv = levee_factory()
    t = "/bytes?n=20000000&w=%s" % uuid.uuid4().hex[:6]
    _leave_unread(lv, origin, b"PROPFIND %s HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx" % t.encode(), t)


def test_a_flood_of_103s_to_a_write_is_read_to_the_end_after_the_client_left(levee_factory, origin):
    lv = levee_factory()
    t = "/interim2/many/%s?n=4000&size=4000" % uuid.uuid4().hex[:6]
    _leave_unread(lv, origin, b"MKCOL %s HTTP/1.1\r\nHost: t\r\n\r\n" % t.encode(), t)
