"""Pass-through basics: what levee adds, keeps and removes (docs/http.md,
"What levee sends upstream" and "What levee sends the client")."""
import re
import urllib.parse

from harness import build_request, chunked, hget, hget_all, hjoin, tokens

HEX32 = re.compile(r"[0-9a-f]{32}")
REQ_HOP = ["keep-alive", "proxy-connection", "te", "trailer", "upgrade", "transfer-encoding"]


def echo(levee, origin, req):
    """Send `req` through levee to /echo; return (client response, origin's view)."""
    mark = origin.mark()
    r = levee.raw(req)
    assert r is not None, "levee closed without a response"
    assert r.status == 200, r
    seen = origin.requests(mark)
    assert len(seen) == 1, "origin saw %d requests: %r" % (len(seen), seen)
    assert r.json()["target"] == seen[0]["target"]
    return r, seen[0]


def test_status_headers_body_intact(levee, origin):
    q = urllib.parse.urlencode([("X-Custom", "hello world"), ("Content-Language", "de"),
                                ("Cache-Control", "max-age=5")])
    r = levee.get("/headers?" + q)
    assert r.status == 200
    assert r.header("X-Custom") == "hello world"
    assert r.header("Content-Language") == "de"
    assert r.header("Cache-Control") == "max-age=5"
    assert r.header("Content-Type") == "text/plain"
    assert r.body == b"ok"

    r = levee.get("/status/418")
    assert r.status == 418 and r.body == b"status 418\n"
    r = levee.get("/status/404")
    assert r.status == 404
    r = levee.get("/nonexistent/path")
    assert r.status == 404 and r.body == b"no such path\n"


def test_request_body_and_method_pass_through(levee, origin):
    body = bytes(range(256)) * 40
    r, seen = echo(levee, origin, build_request("PUT", "/echo/x?a=1&b=%20", [("Content-Type", "x/y")], body))
    assert seen["method"] == "PUT"
    assert seen["target"] == "/echo/x?a=1&b=%20"
    assert seen["version"] == "HTTP/1.1"
    assert seen["body_len"] == len(body)
    import hashlib
    assert seen["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert hget(seen["headers"], "Content-Type") == "x/y"


def test_set_cookie_not_merged(levee):
    q = urllib.parse.urlencode([("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2, c=3")])
    r = levee.get("/headers?" + q)
    assert r.header_all("Set-Cookie") == ["a=1; Path=/", "b=2, c=3"]


def test_duplicate_request_headers_keep_values_in_order(levee, origin):
    r, seen = echo(levee, origin, build_request("GET", "/echo", [("X-Dup", "one"), ("X-Other", "z"),
                                                                  ("X-Dup", "two")]))
    assert hjoin(seen["headers"], "X-Dup") == ["one", "two"]


# Upstream, levee names itself with this process's pseudonym (the loop
# check reads it back: docs/transparent.md); to clients, just "levee".
OWN_VIA = re.compile(r"1\.1 levee-[0-9a-f]{16}")


def test_via_added_request_and_response(levee, origin):
    r, seen = echo(levee, origin, build_request("GET", "/echo"))
    via = hjoin(seen["headers"], "Via")
    assert len(via) == 1 and OWN_VIA.fullmatch(via[0]), via
    assert hjoin(r.headers, "Via")[-1:] == ["1.1 levee"]
    # one pseudonym per process: the next request carries the same
    r2, seen2 = echo(levee, origin, build_request("GET", "/echo"))
    assert hjoin(seen2["headers"], "Via") == via


def test_via_appended_to_existing(levee, origin):
    r, seen = echo(levee, origin, build_request("GET", "/echo", [("Via", "1.0 fred")]))
    via = hjoin(seen["headers"], "Via")
    assert via[0] == "1.0 fred" and len(via) == 2 and OWN_VIA.fullmatch(via[1]), via


def test_own_via_refused_as_a_loop(levee, origin):
    """A request carrying this levee's own pseudonym has been through it:
    508, counted, never sent upstream. Another levee's passes."""
    r, seen = echo(levee, origin, build_request("GET", "/echo"))
    own = hjoin(seen["headers"], "Via")[0].split(" ", 1)[1]
    loops = levee.metric("levee_loops_refused_total")
    mark = origin.mark()
    r = levee.raw(build_request("GET", "/echo", [("Via", "1.0 fred, 1.1 " + own)]))
    assert r is not None and r.status == 508, r
    assert r.header("X-Levee-Reason") == "loop-detected"
    assert origin.requests(mark) == []
    assert levee.metric("levee_loops_refused_total") == loops + 1
    # the same name in a comment, or another levee's, is no loop
    for via in ("1.0 fred (%s)" % own, "1.1 levee-0000000000000001"):
        r, seen = echo(levee, origin, build_request("GET", "/echo", [("Via", via)]))
    assert levee.metric("levee_loops_refused_total") == loops + 1


def test_x_forwarded_for_added(levee, origin):
    r, seen = echo(levee, origin, build_request("GET", "/echo"))
    assert hjoin(seen["headers"], "X-Forwarded-For") == ["127.0.0.1"]


def test_x_forwarded_for_appended(levee, origin):
    r, seen = echo(levee, origin, build_request("GET", "/echo", [("X-Forwarded-For", "203.0.113.7, 198.51.100.1")]))
    assert hjoin(seen["headers"], "X-Forwarded-For") == ["203.0.113.7", "198.51.100.1", "127.0.0.1"]


def test_x_forwarded_proto_set_and_overwritten(levee, origin):
    r, seen = echo(levee, origin, build_request("GET", "/echo"))
    assert hget_all(seen["headers"], "X-Forwarded-Proto") == ["http"]
    r, seen = echo(levee, origin, build_request("GET", "/echo", [("X-Forwarded-Proto", "https")]))
    assert hget_all(seen["headers"], "X-Forwarded-Proto") == ["http"]


def test_x_forwarded_proto_kept_when_trusted(levee_factory, origin):
    lv = levee_factory({"levee": {"trust_forwarded": "true"}})
    r, seen = echo(lv, origin, build_request("GET", "/echo", [("X-Forwarded-Proto", "https")]))
    assert hget_all(seen["headers"], "X-Forwarded-Proto") == ["https"]
    r, seen = echo(lv, origin, build_request("GET", "/echo"))
    assert hget_all(seen["headers"], "X-Forwarded-Proto") == ["http"]


def test_request_id_generated_and_echoed(levee, origin):
    ids = set()
    for _ in range(3):
        r, seen = echo(levee, origin, build_request("GET", "/echo"))
        up = hget_all(seen["headers"], "X-Request-Id")
        assert len(up) == 1 and HEX32.fullmatch(up[0]), up
        assert r.header_all("X-Request-Id") == up
        ids.add(up[0])
    assert len(ids) == 3, "generated request ids repeat: %r" % ids


def test_request_id_valid_preserved(levee, origin):
    rid = "abc-123_DEF.456:~!" + "x" * 100  # 118 visible ASCII characters
    r, seen = echo(levee, origin, build_request("GET", "/echo", [("X-Request-Id", rid)]))
    assert hget_all(seen["headers"], "X-Request-Id") == [rid]
    assert r.header_all("X-Request-Id") == [rid]
    rid = "y" * 128
    r, seen = echo(levee, origin, build_request("GET", "/echo", [("X-Request-Id", rid)]))
    assert hget_all(seen["headers"], "X-Request-Id") == [rid]


def test_request_id_invalid_replaced(levee, origin):
    for bad in ["z" * 129, "has space", "tab\there", "caf\xe9"]:
        r, seen = echo(levee, origin, build_request("GET", "/echo", [("X-Request-Id", bad)]))
        up = hget_all(seen["headers"], "X-Request-Id")
        assert len(up) == 1 and HEX32.fullmatch(up[0]), (bad, up)
        assert r.header_all("X-Request-Id") == up


def test_trace_context_passes_unchanged(levee, origin):
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    ts = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    r, seen = echo(levee, origin, build_request("GET", "/echo", [("traceparent", tp), ("tracestate", ts)]))
    assert hget_all(seen["headers"], "traceparent") == [tp]
    assert hget_all(seen["headers"], "tracestate") == [ts]


def test_hop_by_hop_request_headers_removed(levee, origin):
    req = build_request("GET", "/echo", [
        ("Connection", "keep-alive, X-Foo, X-Bar"),
        ("X-Foo", "foo"), ("X-Bar", "bar"),
        ("Keep-Alive", "timeout=5"),
        ("TE", "trailers"),
        ("Trailer", "X-T"),
        ("Upgrade", "h2c"),
        ("Proxy-Connection", "keep-alive"),
        ("X-Keep", "yes"),
    ])
    r, seen = echo(levee, origin, req)
    names = {n.lower() for n, _ in seen["headers"]}
    for h in REQ_HOP + ["x-foo", "x-bar"]:
        assert h not in names, "%s forwarded upstream: %r" % (h, seen["headers"])
    assert not {"x-foo", "x-bar", "upgrade", "te"} & set(tokens(seen["headers"], "Connection"))
    assert hget(seen["headers"], "X-Keep") == "yes"


def test_connection_upgrade_request_is_not_forwarded_as_upgrade(levee, origin):
    req = build_request("GET", "/echo", [("Connection", "Upgrade"), ("Upgrade", "websocket"),
                                          ("Sec-WebSocket-Version", "13")])
    r, seen = echo(levee, origin, req)
    names = {n.lower() for n, _ in seen["headers"]}
    assert "upgrade" not in names
    assert "upgrade" not in tokens(seen["headers"], "Connection")


def test_hop_by_hop_response_headers_removed(levee):
    q = urllib.parse.urlencode([("Connection", "X-Foo, X-Bar"), ("X-Foo", "foo"), ("X-Bar", "bar"),
                                ("Keep-Alive", "timeout=5, max=100"), ("Proxy-Connection", "keep-alive"),
                                ("Upgrade", "h2c"), ("TE", "trailers"), ("Trailer", "X-T"),
                                ("X-Keep", "yes")])
    c = levee.conn()
    r = c.request("GET", "/headers?" + q)
    assert r.status == 200 and r.body == b"ok"
    names = {n.lower() for n, _ in r.headers}
    for h in ["x-foo", "x-bar", "keep-alive", "proxy-connection", "upgrade", "te", "trailer"]:
        assert h not in names, "%s forwarded to the client: %r" % (h, r.headers)
    assert not {"x-foo", "x-bar"} & set(tokens(r.headers, "Connection"))
    assert r.header("X-Keep") == "yes"
    # the origin's hop-by-hop "Connection" must not close the client connection
    r2 = c.request("GET", "/echo")
    assert r2 is not None and r2.status == 200


def test_host_preserved(levee, origin):
    r, seen = echo(levee, origin, build_request("GET", "/echo", host="Example.TEST:8080"))
    assert hget_all(seen["headers"], "Host") == ["Example.TEST:8080"]


def test_absolute_form_rewritten_to_origin_form(levee, origin):
    req = build_request("GET", "http://abs.example:81/echo?x=1", host="abs.example:81")
    r, seen = echo(levee, origin, req)
    assert seen["target"] == "/echo?x=1"
    assert hget_all(seen["headers"], "Host") == ["abs.example:81"]


def test_absolute_form_authority_becomes_host(levee, origin):
    req = build_request("GET", "http://abs.example/echo", host="other.example")
    r, seen = echo(levee, origin, req)
    assert seen["target"] == "/echo"
    assert hget_all(seen["headers"], "Host") == ["abs.example"]


def _framing_headers(seen):
    return [(n.lower(), v) for n, v in seen["headers"] if n.lower() in ("content-length", "transfer-encoding")]


def test_exactly_one_framing_header_upstream(levee, origin):
    # no body: neither header
    r, seen = echo(levee, origin, build_request("GET", "/echo"))
    assert _framing_headers(seen) == []
    # fixed-length body: Content-Length only
    r, seen = echo(levee, origin, build_request("POST", "/echo", body=b"x" * 1234))
    assert _framing_headers(seen) == [("content-length", "1234")]
    assert seen["framing"] == "content-length" and seen["body_len"] == 1234
    # chunked body: Transfer-Encoding: chunked only
    req = build_request("POST", "/echo", [("Transfer-Encoding", "chunked")]) + chunked(b"y" * 1000, 300)
    r, seen = echo(levee, origin, req)
    assert _framing_headers(seen) == [("transfer-encoding", "chunked")]
    assert seen["framing"] == "chunked" and seen["body_len"] == 1000
    # empty fixed-length body: never both, never chunked
    r, seen = echo(levee, origin, build_request("POST", "/echo", body=b""))
    fh = _framing_headers(seen)
    assert fh in ([], [("content-length", "0")]), fh


def test_http10_request_sent_upstream_as_http11(levee, origin):
    r, seen = echo(levee, origin, build_request("GET", "/echo", version="HTTP/1.0"))
    assert seen["version"] == "HTTP/1.1"
    assert r.closed, "HTTP/1.0 request without keep-alive: levee must close"


def test_request_trailers_dropped(levee, origin):
    req = (build_request("POST", "/echo", [("Transfer-Encoding", "chunked"), ("Trailer", "X-Tr")])
           + chunked(b"abc" * 100, 64, ext=b";foo=bar", trailers=b"X-Tr: secret\r\n"))
    r, seen = echo(levee, origin, req)
    assert seen["body_len"] == 300
    assert seen["trailers"] == []
    assert hget(seen["headers"], "X-Tr") is None
