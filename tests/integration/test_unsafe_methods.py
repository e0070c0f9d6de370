"""Invalidation on every unsafe method (RFC 9111 §4.4, RFC 9110 §9.2.1):
any method but GET, HEAD, OPTIONS and TRACE answered 2xx or 3xx purges its
target and the same-origin Location and Content-Location, in the L1, in
Redis and across replicas through Kafka, WebDAV's and other methods levee
does not name included; 4xx and 5xx purge nothing. A method llhttp does not
know gets 501 and the connection closes (docs/http.md). Origin paths:
/method/NNN/... (origin.py)."""
import socket
import time
import uuid

import pytest

from harness import HttpConn, cache_status_core, metric_sum, once, wait_until
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

def expect_501(r, c=None):
    assert r is not None and r.status == 501, r
    assert r.header("X-Levee-Reason") == "method-not-implemented"
    assert r.header("Connection") == "close"
    if c is not None:
        assert c.wait_closed(3), "levee kept the connection open after a 501: %r" % c.extra


@pytest.mark.parametrize("method", [b"BREW", b"QUERY", b"get", b"GETX", b"PU", b"FOO_BAR", b"X-Y.Z~1",
                                    b"DESCRIBE", b"SETUP", b"A" * 200])
def test_an_unknown_token_gets_501_and_the_connection_closes(levee_factory, origin, method):
    lv = levee_factory(ROUTE)
    mark = origin.mark()
    c = HttpConn(lv.port)
    c.send(method + b" /method/200/x HTTP/1.1\r\nHost: t\r\n\r\n")
    expect_501(c.read_response(), c)
    assert not origin.requests(mark), "an unknown method reached the origin"
    m = lv.metrics()
    assert metric_sum(m, "levee_rejected_requests_total", reason="method_not_implemented") == 1


def test_unknown_method_split_across_reads_and_after_empty_lines(levee_factory):
    lv = levee_factory()
    for parts in ([b"BR", b"EW /x HTTP/1.1\r\nHost: t\r\n\r\n"], [b"GE", b"T", b"X /x HTTP/1.1\r\n\r\n"],
                  [b"\r\nB", b"REW", b" /x HTTP/1.1\r\n\r\n"], [b"PROP", b"FINX /x HTTP/1.1\r\n\r\n"]):
        c = HttpConn(lv.port)
        for p in parts:
            c.send(p)
            time.sleep(0.05)  # separate reads on levee's side
        expect_501(c.read_response(), c)
        c.close()


@pytest.mark.parametrize("line", [b"G@T /x HTTP/1.1", b"(FOO) /x HTTP/1.1", b"BR\x01EW /x HTTP/1.1",
                                  b"BREW\t/x HTTP/1.1"])
def test_a_method_that_is_not_a_token_is_a_400(levee_factory, line):
    lv = levee_factory()
    c = HttpConn(lv.port)
    c.send(line + b"\r\nHost: t\r\n\r\n")
    r = c.read_response()
    assert r.status == 400 and r.header("X-Levee-Reason") == "bad-request", r
    assert c.wait_closed(3)


def test_pipelined_requests_after_an_unknown_method_are_not_answered(levee_factory, origin):
    lv = levee_factory()
    mark = origin.mark()
    c = HttpConn(lv.port)
    c.send(b"GET /echo?a HTTP/1.1\r\nHost: t\r\n\r\n"
           b"BREW /pot HTTP/1.1\r\nHost: t\r\n\r\n"
           b"GET /echo?b HTTP/1.1\r\nHost: t\r\n\r\n")
    assert c.read_response().status == 200
    expect_501(c.read_response(), c)
    assert [e["target"] for e in origin.requests(mark)] == ["/echo?a"]


def test_a_body_on_an_unknown_method_does_not_become_a_request(levee_factory, origin):
    """The body is never parsed (the head was not): it cannot be taken for a
    request, and the 501 reaches the client before the close, whole."""
    lv = levee_factory()
    mark = origin.mark()
    smuggled = b"GET /echo?smuggled HTTP/1.1\r\nHost: t\r\n\r\n"
    body = smuggled * 2000  # ~90 KB, more than one read
    c = HttpConn(lv.port)
    c.send(b"BREW /pot HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body))
    try:
        c.send(body)
    except OSError:
        pass  # levee may have closed its reading side already
    expect_501(c.read_response(), c)
    assert not origin.requests(mark)


def test_the_refused_method_is_in_the_access_log(levee_factory):
    lv = levee_factory()
    c = HttpConn(lv.port)
    c.send(b"BREW /pot HTTP/1.1\r\nHost: t\r\n\r\n")
    expect_501(c.read_response())

    def line():
        for ln in lv.stdout().splitlines():
            if '"BREW"' in ln:
                return ln
        return None
    ln = wait_until(line, 5, msg="the access log line of the 501")
    assert '"status":501' in ln.replace(" ", "") and "method-not-implemented" in ln, ln


# ---- across replicas, through Kafka -----------------------------------------

@pytest.mark.parametrize("method", ["PROPFIND", "M-SEARCH", "PURGE", "MKCOL"])
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
    wait_until(lambda: not hit(b, u) and not hit(b, loc), 5, msg="%s at A purged B" % method)
    assert metric_sum(b.metrics(), "levee_kafka_events_applied_total") >= 1
    # a 4xx at A purges nothing at B
    cache(b, u)
    assert once(a.port, method, res(409, name), headers=[("X-Loc", u)]).status == 409
    time.sleep(0.3)  # what must not come has had its chance (an applied event takes ms)
    assert hit(b, u)


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
