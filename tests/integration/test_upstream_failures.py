"""Upstream failures and client aborts (docs/http.md, "Errors levee produces
itself", "What levee sends the client", "Client aborts")."""
import socket
import time

import pytest

from harness import HttpConn, build_request, free_port, tokens, wait_until


def assert_levee_error(r, status, token):
    assert r is not None, "levee closed without a response"
    assert (r.status, r.reason_token) == (status, token), r
    assert (r.header("Content-Type") or "").startswith("text/plain"), r.headers
    assert r.body.strip()


def test_upstream_connect_refused(levee_factory):
    lv = levee_factory(upstream="127.0.0.1:%d" % free_port(), wait="healthz")
    r = lv.get("/echo")
    assert_levee_error(r, 502, "upstream-connect")


def test_upstream_connect_timeout(levee_factory):
    """Loopback listener whose accept queue is full: SYNs are dropped, so
    connect() hangs until levee's connect_timeout."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(0)
    port = lst.getsockname()[1]
    fillers = []
    try:
        for _ in range(3):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            fillers.append(s)
        probe = socket.socket()
        probe.settimeout(0.3)
        try:
            probe.connect(("127.0.0.1", port))
            pytest.skip("this kernel completes connects to a full backlog; no loopback connect timeout")
        except socket.timeout:
            pass
        finally:
            probe.close()
        lv = levee_factory({"upstream": {"connect_timeout": "500ms"}}, upstream="127.0.0.1:%d" % port,
                           wait="healthz")
        t0 = time.monotonic()
        r = lv.get("/echo", timeout=5)
        elapsed = time.monotonic() - t0
        assert_levee_error(r, 502, "upstream-connect")
        assert 0.4 <= elapsed <= 2.0, "502 after %.2fs with connect_timeout=500ms" % elapsed
    finally:
        for s in fillers:
            s.close()
        lst.close()


def test_response_timeout(levee_factory, origin):
    lv = levee_factory({"upstream": {"response_timeout": "500ms"}})
    mark = origin.mark()
    t0 = time.monotonic()
    r = lv.get("/hang", timeout=5)
    elapsed = time.monotonic() - t0
    assert_levee_error(r, 504, "upstream-timeout")
    assert 0.4 <= elapsed <= 2.0, elapsed
    # the hung upstream exchange is cancelled
    origin.wait_event(lambda e: e["event"] == "aborted" and e["target"] == "/hang", since=mark, timeout=3,
                      msg="levee to close the timed-out upstream connection")


def test_response_timeout_is_inactivity_on_body(levee_factory):
    lv = levee_factory({"upstream": {"response_timeout": "500ms"}})
    c = lv.conn()
    c.send(build_request("GET", "/slow?head_ms=0&body_ms=3000&n=100"))
    t0 = time.monotonic()
    r = c.read_response(timeout=5)
    elapsed = time.monotonic() - t0
    assert r is not None and r.status == 200
    assert not r.complete, "a body that never came must not look complete: %r" % r
    assert c.eof
    assert elapsed < 2.5, elapsed


def test_slow_but_steady_response_within_timeout(levee_factory):
    lv = levee_factory({"upstream": {"response_timeout": "1s"}})
    r = lv.get("/slow?head_ms=600&body_ms=600&n=50", timeout=5)
    assert r.status == 200 and r.complete and r.body_len == 50


def test_upstream_drops_mid_body_content_length(levee):
    c = levee.conn()
    c.send(build_request("GET", "/drop?after=1000&cl=5000"))
    r = c.read_response(timeout=5)
    assert r is not None and r.status == 200
    assert r.header("Content-Length") == "5000"
    assert r.body_len < 5000 and not r.complete, r
    assert c.eof, "levee must close the client connection after a truncated body"


def test_upstream_drops_mid_body_chunked(levee):
    c = levee.conn()
    c.send(build_request("GET", "/drop?after=1000&chunked=1"))
    r = c.read_response(timeout=5)
    assert r is not None and r.status == 200
    assert r.framing == "chunked"
    assert not r.complete, "levee sent the terminating chunk for a truncated body"
    assert c.eof


def test_upstream_drops_mid_body_http10_client(levee):
    """Close-delimited to the client: the only way to signal truncation is
    the close itself, so at least the bytes must be a prefix."""
    c = levee.conn()
    c.send(build_request("GET", "/drop?after=1000&cl=5000", version="HTTP/1.0"))
    r = c.read_response(timeout=5)
    assert r is not None and r.status == 200
    assert r.body_len < 5000
    assert c.eof


def test_upstream_closes_before_response(levee):
    r = levee.get("/drop?before=1")
    assert_levee_error(r, 502, "upstream-bad-response")


@pytest.mark.parametrize("kind", ["junk", "badstatus", "badcl", "dupcl", "nul",
                                  "fold", "fold_empty", "fold_empty_tab", "fold_first"])
def test_upstream_bad_response(levee, kind):
    r = levee.get("/garbage?kind=%s" % kind)
    assert_levee_error(r, 502, "upstream-bad-response")


@pytest.mark.parametrize("kind", ["trailer_fold", "trailer_fold_empty"])
def test_upstream_trailer_fold_cuts_the_response(levee, kind):
    """A fold in the upstream's trailers is found after the response began:
    the only honest answer left is a response that never ends (or, when
    none of it reached the socket yet, none at all)."""
    base = levee.metric("levee_rejected_requests_total", reason="upstream_bad_response")
    c = levee.conn()
    c.send(build_request("GET", "/garbage?kind=%s" % kind))
    r = c.read_response(timeout=5)
    if r is not None:
        assert r.status == 200 and r.framing == "chunked", r
        assert not r.complete, "levee ended a response whose trailers were folded: %r" % r
    assert c.eof
    wait_until(lambda: levee.metric("levee_rejected_requests_total", reason="upstream_bad_response") > base, 3,
               msg="the cut response counted as upstream-bad-response")


# (id, request version, Connection header, whether the connection must end)
CONNECTION_CASES = [
    ("1.1-close", "HTTP/1.1", "close", True),
    ("1.0", "HTTP/1.0", None, True),
    ("1.0-keep-alive", "HTTP/1.0", "keep-alive", False),
    ("1.1", "HTTP/1.1", None, False),
]


@pytest.mark.parametrize("failure", ["502", "504"])
@pytest.mark.parametrize("version,connection,closes", [c[1:] for c in CONNECTION_CASES],
                         ids=[c[0] for c in CONNECTION_CASES])
def test_own_5xx_keeps_or_closes_as_the_client_asked(levee_factory, failure, version, connection, closes):
    """levee's own 502 and 504 close the connection when the client asked
    for that (RFC 9112 §9.6), say so, and close at once rather than at
    idle_timeout; otherwise the connection stays usable, and an HTTP/1.0
    keep-alive client is told it does."""
    if failure == "502":
        lv = levee_factory(upstream="127.0.0.1:%d" % free_port(), wait="healthz")
        path, want = "/echo", (502, "upstream-connect")
    else:
        lv = levee_factory({"upstream": {"response_timeout": "300ms"}})
        path, want = "/hang", (504, "upstream-timeout")
    c = lv.conn()
    hdrs = [("Connection", connection)] if connection else []
    for attempt in range(1 if closes else 2):
        r = c.request("GET", path + "?attempt=%d" % attempt, hdrs, version=version)
        assert r is not None and (r.status, r.reason_token) == want, r
        conn_tokens = tokens(r.headers, "connection")
        if closes:
            assert conn_tokens == ["close"], r.headers
            assert c.wait_closed(1.0), "the connection stayed open after a %d with Connection: close" % r.status
        else:
            assert "close" not in conn_tokens, r.headers
            assert conn_tokens == (["keep-alive"] if version == "HTTP/1.0" else []), r.headers
            # the second attempt, on the same connection, shows it is still open


def test_upstream_response_with_content_length_and_chunked(levee):
    """An ambiguous upstream response is refused, or passed on with one
    framing only (RFC 9112 §6.3: chunked wins) - never both."""
    c = levee.conn()
    c.send(build_request("GET", "/garbage?kind=cl_te"))
    r = c.read_response(timeout=5)
    assert r is not None
    if r.status == 502:
        assert r.reason_token == "upstream-bad-response"
    else:
        assert r.status == 200
        assert not (r.has("Content-Length") and r.has("Transfer-Encoding")), r.headers
        assert r.body == b"hello" and r.complete


def test_non_idempotent_request_not_retried(levee, origin):
    c = levee.conn()
    assert c.request("GET", "/echo?warm").status == 200  # a pooled upstream connection now exists
    mark = origin.mark()
    r = c.request("POST", "/drop?before=1", body=b"payment")
    assert r is not None and r.status == 502, r
    posts = [e for e in origin.requests(mark) if e["method"] == "POST"]
    assert len(posts) == 1, "a POST was sent %d times" % len(posts)


def test_client_abort_cancels_upstream(levee, origin):
    base = levee.metric("levee_connections_active")
    assert base is not None, "levee_connections_active missing from /metrics"
    mark = origin.mark()
    c = HttpConn(levee.port)
    c.send(build_request("GET", "/slow?head_ms=2000&abort=1"))
    origin.wait_event(lambda e: e["event"] == "request" and "abort=1" in e["target"], since=mark, timeout=3,
                      msg="request at the origin")
    t0 = time.monotonic()
    c.close()
    ev = origin.wait_event(lambda e: e["event"] == "aborted" and "abort=1" in e["target"], since=mark, timeout=3,
                           msg="origin to see its connection closed after the client left")
    assert time.monotonic() - t0 < 1.5, "upstream cancelled only after the slow response"
    assert ev["phase"] == "head"
    wait_until(lambda: levee.metric("levee_connections_active") <= base, 3,
               msg="levee_connections_active back to %s" % base)


def test_client_abort_after_full_unsafe_request_reads_response(levee, origin):
    """POST fully sent, client leaves: levee reads the response to the end."""
    mark = origin.mark()
    c = HttpConn(levee.port)
    c.send(build_request("POST", "/slow?head_ms=800&unsafe=1", body=b"order=1"))
    origin.wait_event(lambda e: e["event"] == "request" and "unsafe=1" in e["target"], since=mark, timeout=3)
    c.close()
    ev = origin.wait_event(lambda e: e["event"] in ("done", "aborted", "write_failed") and "unsafe=1" in e["target"],
                           since=mark, timeout=4, msg="the slow POST to finish at the origin")
    assert ev["event"] == "done", "levee cancelled a POST whose body was sent in full: %r" % ev


def test_levee_survives_many_upstream_failures(levee):
    for i in range(20):
        for path in ("/drop?before=1", "/drop?after=10&cl=100", "/garbage?kind=junk"):
            r = levee.get(path + "&i=%d" % i, close_wait=0)
            assert r is not None
    r = levee.get("/echo")
    assert r.status == 200
