"""Message framing, keep-alive and pipelining (docs/http.md, "Connections"
and "What levee sends the client")."""
import hashlib
import json

from harness import build_request, chunked, hget, hget_all, pattern_bytes, tokens


# ---------------------------------------------------------------- keep-alive

def test_several_requests_on_one_client_connection(levee, origin):
    c = levee.conn()
    for i in range(5):
        r = c.request("GET", "/echo?i=%d" % i)
        assert r is not None, "levee closed the connection after %d responses" % i
        assert r.status == 200 and r.json()["target"] == "/echo?i=%d" % i
        assert "close" not in tokens(r.headers, "Connection")
    assert not c.wait_closed(0.3), "keep-alive connection closed by levee"


def test_upstream_connections_are_reused(levee, origin):
    mark = origin.mark()
    c = levee.conn()
    n = 10
    for i in range(n):
        r = c.request("GET", "/echo?reuse=%d" % i)
        assert r.status == 200
    seen = origin.requests(mark, path="/echo")
    assert len(seen) == n
    conns = {s["conn"] for s in seen}
    assert len(conns) <= 2, "levee opened %d upstream connections for %d sequential requests" % (len(conns), n)


def test_upstream_connections_are_reused_across_client_connections(levee, origin):
    mark = origin.mark()
    n = 8
    for i in range(n):
        r = levee.get("/echo?x=%d" % i, close_wait=0)
        assert r.status == 200
    conns = {s["conn"] for s in origin.requests(mark, path="/echo")}
    assert len(conns) < n / 2, "%d upstream connections for %d requests" % (len(conns), n)


def test_client_connection_close_honoured(levee):
    r = levee.raw(build_request("GET", "/echo", [("Connection", "close")]))
    assert r.status == 200
    assert "close" in tokens(r.headers, "Connection")
    assert r.closed


def test_http10_keep_alive(levee):
    c = levee.conn()
    for i in range(2):
        r = c.request("GET", "/echo?i=%d" % i, [("Connection", "keep-alive")], version="HTTP/1.0")
        assert r is not None and r.status == 200
        assert "keep-alive" in tokens(r.headers, "Connection"), \
            "an HTTP/1.0 client only keeps the connection when told so: %r" % r.headers
    assert not c.wait_closed(0.3)


def test_http10_without_keep_alive_is_closed(levee):
    r = levee.raw(build_request("GET", "/echo", version="HTTP/1.0"))
    assert r.status == 200 and r.closed


def test_origin_connection_close_does_not_close_client(levee, origin):
    c = levee.conn()
    r = c.request("GET", "/close")
    assert r.status == 200 and r.body == b"bye\n"
    r = c.request("GET", "/echo")
    assert r is not None and r.status == 200


def test_stale_pooled_connection_is_retried(levee, origin):
    """The origin closes its keep-alive connection silently 50ms after the
    response; the next idempotent request must still succeed."""
    c = levee.conn()
    for i in range(3):
        r = c.request("GET", "/echo?_close_after_ms=50&i=%d" % i)
        assert r is not None and r.status == 200, r
        origin.wait_event(lambda e: e["event"] == "conn_close" and e["conn"] == r.json()["conn"],
                          since=origin.start_mark, timeout=3, msg="origin closed its connection")


# ---------------------------------------------------------------- pipelining

def test_pipelined_requests_answered_in_order(levee, origin):
    sink_body = b"s" * 5000
    burst = (build_request("GET", "/echo?i=0")
             + build_request("POST", "/echo?i=1", body=b"hello")
             + build_request("GET", "/bytes?n=1000")
             + build_request("POST", "/sink", [("Transfer-Encoding", "chunked")]) + chunked(sink_body, 777)
             + build_request("HEAD", "/bytes?n=50")
             + build_request("GET", "/echo?i=5"))
    c = levee.conn()
    c.send(burst)
    r = c.read_response()
    assert r.status == 200 and r.json()["target"] == "/echo?i=0"
    r = c.read_response()
    assert r.json()["target"] == "/echo?i=1" and r.json()["body"] == "hello"
    r = c.read_response()
    assert r.body == pattern_bytes(0, 1000)
    r = c.read_response()
    assert r.json() == {"len": 5000, "sha256": hashlib.sha256(sink_body).hexdigest(), "framing": "chunked"}
    r = c.read_response("HEAD")
    assert r.status == 200 and r.header("Content-Length") == "50" and r.body == b""
    r = c.read_response()
    assert r.status == 200 and r.json()["target"] == "/echo?i=5"
    assert not c.wait_closed(0.3)


# ---------------------------------------------------------------- chunked

def test_chunked_request_rechunked_upstream(levee, origin):
    body = bytes((i * 7) % 256 for i in range(70000))
    mark = origin.mark()
    req = build_request("POST", "/sink", [("Transfer-Encoding", "chunked")]) + chunked(body, 4099, ext=b";a=b")
    r = levee.raw(req)
    assert r.status == 200
    assert r.json() == {"len": len(body), "sha256": hashlib.sha256(body).hexdigest(), "framing": "chunked"}
    seen = origin.requests(mark, path="/sink")[0]
    assert hget_all(seen["headers"], "Transfer-Encoding") == ["chunked"]
    assert hget(seen["headers"], "Content-Length") is None


def test_chunked_response_to_http11_client_is_chunked(levee):
    r = levee.get("/bytes?n=100000&mode=chunked")
    assert r.status == 200
    assert r.framing == "chunked" and r.complete
    assert hget(r.headers, "Content-Length") is None
    assert r.body == pattern_bytes(0, 100000)
    assert not r.closed


def test_chunked_response_to_http10_client_is_close_delimited(levee):
    r = levee.raw(build_request("GET", "/bytes?n=100000&mode=chunked", version="HTTP/1.0"), close_wait=2)
    assert r.status == 200
    assert r.framing == "close", r
    assert not r.has("Transfer-Encoding") and not r.has("Content-Length")
    assert r.body == pattern_bytes(0, 100000)
    assert r.closed


def test_chunked_response_to_http10_keepalive_client_is_close_delimited(levee):
    req = build_request("GET", "/bytes?n=5000&mode=chunked", [("Connection", "keep-alive")], version="HTTP/1.0")
    r = levee.raw(req, close_wait=2)
    assert r.status == 200 and r.framing == "close"
    assert r.body == pattern_bytes(0, 5000)
    assert r.closed


def test_close_delimited_upstream_response_becomes_chunked(levee):
    c = levee.conn()
    r = c.request("GET", "/bytes?n=30000&mode=close")
    assert r.status == 200
    assert r.framing == "chunked" and r.complete, r
    assert r.body == pattern_bytes(0, 30000)
    r = c.request("GET", "/echo")
    assert r is not None and r.status == 200, "client connection must stay usable"


def test_content_length_response_keeps_content_length(levee):
    c = levee.conn()
    r = c.request("GET", "/bytes?n=12345")
    assert r.header_all("Content-Length") == ["12345"]
    assert not r.has("Transfer-Encoding")
    assert r.body == pattern_bytes(0, 12345)
    r = c.request("GET", "/bytes?n=0")
    assert r.header_all("Content-Length") == ["0"] and r.body == b""


def test_http10_client_gets_content_length_response(levee):
    r = levee.raw(build_request("GET", "/bytes?n=777", version="HTTP/1.0"))
    assert r.header_all("Content-Length") == ["777"] and r.body == pattern_bytes(0, 777)


# ---------------------------------------------------------------- bodiless

def test_head_has_no_body_and_keeps_headers(levee):
    c = levee.conn()
    r = c.request("HEAD", "/bytes?n=5000")
    assert r.status == 200
    assert r.header("Content-Length") == "5000"
    # if levee had sent a body, the next response would start with it
    r = c.request("GET", "/echo?after-head")
    assert r.status == 200 and r.json()["target"] == "/echo?after-head", r


def test_head_of_chunked_resource(levee):
    c = levee.conn()
    r = c.request("HEAD", "/bytes?n=5000&mode=chunked", timeout=3)
    assert r.status == 200 and r.body == b""
    r = c.request("GET", "/echo?after-head", timeout=3)
    assert r.status == 200 and r.json()["target"] == "/echo?after-head", r


def test_204_and_304_have_no_body(levee):
    c = levee.conn()
    for code in (204, 304, 204):
        r = c.request("GET", "/status/%d" % code, timeout=3)
        assert r.status == code
        assert not r.has("Transfer-Encoding")
        r = c.request("GET", "/echo?after=%d" % code, timeout=3)
        assert r.status == 200 and r.json()["target"] == "/echo?after=%d" % code, r
    r = c.request("GET", "/status/304")
    assert r.header("ETag") == '"v1"'


def test_upstream_interim_response_forwarded(levee):
    """A 103 goes to an HTTP/1.1 client before the final response (RFC 9110
    §15.2; test_interim.py has the rest)."""
    c = levee.conn()
    c.send(build_request("GET", "/interim"))
    r = c.read_response(return_interim=True)
    assert r.status == 103 and r.header("Link") == "</a.css>; rel=preload", r
    r = c.read_response()
    assert r.status == 200 and r.body == b"final"


# ---------------------------------------------------------------- 100-continue

def test_expect_100_continue(levee, origin):
    mark = origin.mark()
    c = levee.conn()
    body = b"0123456789" * 100
    c.send(build_request("POST", "/sink", [("Expect", "100-continue"), ("Content-Length", str(len(body)))]))
    r = c.read_response(return_interim=True, timeout=3)
    assert r is not None and r.status == 100, "expected 100 Continue before sending the body, got %r" % r
    c.send(body)
    r = c.read_response(timeout=5)
    assert r.status == 200
    assert r.json()["len"] == len(body)
    seen = origin.requests(mark, path="/sink")
    assert len(seen) == 1
    assert hget(seen[0]["headers"], "Expect") is None, "Expect forwarded upstream"
    # the connection stays usable
    r = c.request("GET", "/echo")
    assert r.status == 200


def test_expect_100_continue_chunked(levee, origin):
    c = levee.conn()
    c.send(build_request("POST", "/sink", [("Expect", "100-continue"), ("Transfer-Encoding", "chunked")]))
    r = c.read_response(return_interim=True, timeout=3)
    assert r is not None and r.status == 100, r
    c.send(chunked(b"z" * 3000, 1000))
    r = c.read_response(timeout=5)
    assert r.status == 200 and r.json()["len"] == 3000


def test_expect_100_continue_body_too_large_gets_413_without_100(levee_factory, origin):
    lv = levee_factory({"limits": {"body_bytes": "1KiB"}})
    mark = origin.mark()
    c = lv.conn()
    c.send(build_request("POST", "/sink?big", [("Expect", "100-continue"), ("Content-Length", "5000")]))
    r = c.read_response(return_interim=True, timeout=3)
    assert r is not None, "levee closed without a response"
    assert r.status == 413, "expected 413 without a 100 Continue, got %d" % r.status
    assert r.reason_token == "body-too-large"
    assert c.wait_closed(2), "connection must be closed after a request-side error"
    assert origin.requests(mark, path="/sink") == []
    assert not any("big" in json.dumps(e) for e in origin.events(mark))
