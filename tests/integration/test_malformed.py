"""Hostile and ambiguous requests (docs/http.md, "Errors levee produces
itself"; BRIEF "Reject what is ambiguous").

Every case must get the documented status and X-Levee-Reason, a text/plain
body, `Connection: close`, the connection closed, and the origin must not
receive the request. For errors in the request head the origin must see
nothing at all; for errors found inside a chunked body (after levee may
legitimately have started streaming) the origin must never see a complete
request: levee has to abort the upstream exchange.
"""
import json
import time

import pytest

BAD = (400, "bad-request")


def req(case, head_lines, body=b"", method="POST", target=None, version="HTTP/1.1", host=True, eol=b"\r\n"):
    target = target if target is not None else "/echo?c=%s" % case
    lines = [("%s %s %s" % (method, target, version)).encode("latin-1")]
    if host:
        lines.append(b"Host: test.local")
    lines += [l if isinstance(l, bytes) else l.encode("latin-1") for l in head_lines]
    lines.append(b"X-Case: " + case.encode())
    return eol.join(lines) + eol + eol + body


# (id, request bytes, (status, reason), body-level error?)
CASES = [
    ("cl-and-te", req("cl-and-te", ["Content-Length: 5", "Transfer-Encoding: chunked"], b"0\r\n\r\n"), BAD, False),
    ("te-and-cl", req("te-and-cl", ["Transfer-Encoding: chunked", "Content-Length: 3"], b"0\r\n\r\n"), BAD, False),
    ("dup-cl-same", req("dup-cl-same", ["Content-Length: 5", "Content-Length: 5"], b"hello"), BAD, False),
    ("dup-cl-diff", req("dup-cl-diff", ["Content-Length: 5", "Content-Length: 6"], b"hello!"), BAD, False),
    ("cl-list", req("cl-list", ["Content-Length: 5, 5"], b"hello"), BAD, False),
    ("cl-nondigit", req("cl-nondigit", ["Content-Length: 5a"], b"hello"), BAD, False),
    ("cl-hex", req("cl-hex", ["Content-Length: 0x5"], b"hello"), BAD, False),
    ("cl-negative", req("cl-negative", ["Content-Length: -5"], b"hello"), BAD, False),
    ("cl-plus", req("cl-plus", ["Content-Length: +5"], b"hello"), BAD, False),
    ("cl-empty", req("cl-empty", ["Content-Length: "], b"hello"), BAD, False),
    ("cl-overflow", req("cl-overflow", ["Content-Length: 99999999999999999999999"], b"hello"), BAD, False),
    ("obs-fold", req("obs-fold", ["X-A: a", " folded", "Content-Length: 0"], method="GET"), BAD, False),
    ("obs-fold-tab", req("obs-fold-tab", ["X-A: a", "\tfolded"], method="GET"), BAD, False),
    ("obs-fold-after-empty", req("obs-fold-after-empty", ["Transfer-Encoding:", " chunked"], b"0\r\n\r\n"), BAD, False),
    ("obs-fold-tab-after-empty", req("obs-fold-tab-after-empty", ["Transfer-Encoding:", "\tchunked"], b"0\r\n\r\n"), BAD, False),
    ("obs-fold-cl-after-empty", req("obs-fold-cl-after-empty", ["Content-Length:", " 5"], b"hello"), BAD, False),
    ("obs-fold-host-after-empty", req("obs-fold-host-after-empty", ["Host:", " test.local"], method="GET", host=False), BAD, False),
    ("obs-fold-first-line", req("obs-fold-first-line", [], method="GET").replace(b"\r\nHost:", b"\r\n X-A: a\r\nHost:", 1), BAD, False),
    ("obs-fold-first-line-tab", req("obs-fold-first-line-tab", [], method="GET").replace(b"\r\nHost:", b"\r\n\tX-A: a\r\nHost:", 1), BAD, False),
    ("bare-lf", req("bare-lf", ["X-A: a"], method="GET", eol=b"\n"), BAD, False),
    ("bare-lf-one-line", req("bare-lf-one-line", [b"X-A: a\nX-B: b"], method="GET"), BAD, False),
    ("bare-cr-line-end", req("bare-cr-line-end", [b"X-A: a\rX-B: b"], method="GET"), BAD, False),
    ("space-before-colon", req("space-before-colon", ["X-A : b"], method="GET"), BAD, False),
    ("space-in-name", req("space-in-name", ["X A: b"], method="GET"), BAD, False),
    ("bad-name-char", req("bad-name-char", ["X(A): b"], method="GET"), BAD, False),
    ("empty-name", req("empty-name", [": b"], method="GET"), BAD, False),
    ("no-colon", req("no-colon", ["X-NoColon"], method="GET"), BAD, False),
    ("missing-host", req("missing-host", [], method="GET", host=False), BAD, False),
    ("dup-host", req("dup-host", ["Host: other.local"], method="GET"), BAD, False),
    ("host-space", req("host-space", ["X-Pad: 1"], method="GET", host=False).replace(b"X-Pad: 1", b"Host: a b"), BAD, False),
    ("host-slash", req("host-slash", ["Host: a/b"], method="GET", host=False), BAD, False),
    ("host-at", req("host-at", ["Host: user@a"], method="GET", host=False), BAD, False),
    ("host-port-over-65535", req("host-port-over-65535", ["Host: t:99999"], method="GET", host=False), BAD, False),
    ("host-port-65536", req("host-port-65536", ["Host: t:65536"], method="GET", host=False), BAD, False),
    ("host-port-zero", req("host-port-zero", ["Host: t:0"], method="GET", host=False), BAD, False),
    ("host-port-leading-zero", req("host-port-leading-zero", ["Host: t:080"], method="GET", host=False), BAD, False),
    ("host-port-empty", req("host-port-empty", ["Host: t:"], method="GET", host=False), BAD, False),
    ("host-port-sign", req("host-port-sign", ["Host: t:+80"], method="GET", host=False), BAD, False),
    ("absolute-port-over-65535", req("absolute-port-over-65535", [], method="GET", target="http://t:99999/echo?c=absolute-port-over-65535"), BAD, False),
    ("absolute-port-empty", req("absolute-port-empty", [], method="GET", target="http://t:/echo?c=absolute-port-empty"), BAD, False),
    ("fragment", req("fragment", [], method="GET", target="/echo?c=fragment#frag"), BAD, False),
    ("nul-in-value", req("nul-in-value", [b"X-A: a\x00b"], method="GET"), BAD, False),
    ("cr-in-value", req("cr-in-value", [b"X-A: a\rb"], method="GET"), BAD, False),
    ("ctl-in-value", req("ctl-in-value", [b"X-A: a\x01b"], method="GET"), BAD, False),
    ("bad-method-char", req("bad-method-char", [], method="G(T"), BAD, False),
    ("request-line-extra-token", req("request-line-extra-token", [], method="GET /x"), BAD, False),
    ("double-space", req("double-space", [], method="GET ", target="/echo?c=double-space"), BAD, False),
    ("target-no-slash", req("target-no-slash", [], method="GET", target="echo?c=target-no-slash"), BAD, False),
    ("target-space", req("target-space", [], method="GET", target="/echo?c=target-space x"), BAD, False),
    ("header-without-colon-then-body", req("header-without-colon-then-body", ["Content-Length 5"], b"hello"), BAD, False),
    ("te-http10", req("te-http10", ["Transfer-Encoding: chunked"], b"5\r\nhello\r\n0\r\n\r\n", version="HTTP/1.0"), BAD, False),
    ("te-dup", req("te-dup", ["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"], b"5\r\nhello\r\n0\r\n\r\n"), BAD, False),
    ("te-chunked-twice", req("te-chunked-twice", ["Transfer-Encoding: chunked, chunked"], b"5\r\nhello\r\n0\r\n\r\n"), BAD, False),
    ("te-gzip", req("te-gzip", ["Transfer-Encoding: gzip"], b"hello"), BAD, False),
    ("te-chunked-gzip", req("te-chunked-gzip", ["Transfer-Encoding: chunked, gzip"], b"hello"), BAD, False),
    ("te-gzip-chunked", req("te-gzip-chunked", ["Transfer-Encoding: gzip, chunked"], b"5\r\nhello\r\n0\r\n\r\n"), (501, "unsupported-transfer-coding"), False),
    ("te-identity", req("te-identity", ["Transfer-Encoding: identity"], b"hello"), BAD, False),
    ("http-2.0", req("http-2.0", [], method="GET", version="HTTP/2.0"), (505, "http-version"), False),
    ("http-1.2", req("http-1.2", [], method="GET", version="HTTP/1.2"), (505, "http-version"), False),
    ("http-3.0", req("http-3.0", [], method="GET", version="HTTP/3.0"), (505, "http-version"), False),
    ("connect", req("connect", [], method="CONNECT", target="c-connect.example:443"), (405, "method-not-allowed"), False),
    # errors inside the chunked body
    ("chunk-size-invalid", req("chunk-size-invalid", ["Transfer-Encoding: chunked"], b"zz\r\nhello\r\n0\r\n\r\n"), BAD, True),
    ("chunk-size-overflow", req("chunk-size-overflow", ["Transfer-Encoding: chunked"], b"ffffffffffffffffff\r\nhello\r\n0\r\n\r\n"), BAD, True),
    ("chunk-size-negative", req("chunk-size-negative", ["Transfer-Encoding: chunked"], b"-5\r\nhello\r\n0\r\n\r\n"), BAD, True),
    ("chunk-size-space", req("chunk-size-space", ["Transfer-Encoding: chunked"], b"5 5\r\nhello\r\n0\r\n\r\n"), BAD, True),
    ("chunk-missing-crlf", req("chunk-missing-crlf", ["Transfer-Encoding: chunked"], b"5\r\nhelloXX0\r\n\r\n"), BAD, True),
    ("chunk-bare-lf", req("chunk-bare-lf", ["Transfer-Encoding: chunked"], b"5\nhello\n0\n\n"), BAD, True),
    ("chunk-data-too-long", req("chunk-data-too-long", ["Transfer-Encoding: chunked"], b"3\r\nhello\r\n0\r\n\r\n"), BAD, True),
    ("chunk-second-bad", req("chunk-second-bad", ["Transfer-Encoding: chunked"], b"5\r\nhello\r\nq\r\nworld\r\n0\r\n\r\n"), BAD, True),
    ("trailer-fold", req("trailer-fold", ["Transfer-Encoding: chunked"], b"5\r\nhello\r\n0\r\nX-T: a\r\n b\r\n\r\n"), BAD, True),
    ("trailer-fold-after-empty", req("trailer-fold-after-empty", ["Transfer-Encoding: chunked"], b"5\r\nhello\r\n0\r\nX-T:\r\n\tb\r\n\r\n"), BAD, True),
    ("trailer-first-line-space", req("trailer-first-line-space", ["Transfer-Encoding: chunked"], b"5\r\nhello\r\n0\r\n X-T: a\r\n\r\n"), BAD, True),
]


@pytest.mark.parametrize("case,data,expected,body_level", CASES, ids=[c[0] for c in CASES])
def test_malformed_request_rejected(levee, origin, case, data, expected, body_level):
    mark = origin.mark()
    r = levee.raw(data, close_wait=2.0, timeout=5)
    assert r is not None, "levee closed the connection without a response"
    assert (r.status, r.reason_token) == expected, r
    assert (r.header("Content-Type") or "").startswith("text/plain"), r.headers
    assert r.body.strip(), "error responses carry a short body"
    assert "close" in [t.strip().lower() for t in (r.header("Connection") or "").split(",")], r.headers
    assert r.closed, "connection not closed after a %d (extra=%r)" % (r.status, r.extra[:100])

    # What did the origin get? Absence can only be checked over a window:
    # give anything levee might have forwarded 150ms to arrive.
    time.sleep(0.15)
    token = "c-%s" % case if case == "connect" else case
    tok = "c=%s" % case
    def related(e):
        s = json.dumps(e)
        return tok in s or token in s or ("X-Case" in s and case in s)
    events = [e for e in origin.events(mark) if e["event"] in ("request", "partial", "parse_error")]
    complete = [e for e in events if e["event"] == "request" and related(e)]
    assert not complete, "origin received the rejected request: %r" % complete
    if not body_level:
        seen = [e for e in events if related(e)]
        assert not seen, "origin saw part of a request rejected in its head: %r" % seen
    # a parse error at the origin means levee forwarded something unparseable
    assert not [e for e in events if e["event"] == "parse_error"], events


def test_case_table_is_big_enough():
    assert len(CASES) >= 15


@pytest.mark.parametrize("data", [
    b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /echo HTTP/1.0\r\n\r\n",
    b"GET /echo?a=b%20c HTTP/1.1\r\nHost: x:1\r\nX-Empty:\r\nX-Tab:\tv\t\r\n\r\n",
    b"GET http://x:65535/echo HTTP/1.1\r\nHost: y\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 000005\r\n\r\nhello",
    b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\n\r\n",
], ids=["plain", "http10-no-host", "odd-but-valid", "absolute-top-port", "cl-leading-zeros", "te-case"])
def test_valid_edge_cases_accepted(levee, origin, data):
    """The strictness above must not reject valid requests."""
    r = levee.raw(data)
    assert r is not None, "levee closed without a response"
    assert r.status == 200, r


def test_requests_pipelined_behind_a_bad_one_are_not_processed(levee, origin):
    mark = origin.mark()
    c = levee.conn()
    c.send(b"GET /echo?pipe=1 HTTP/1.1\r\nHost: x\r\n\r\n"
           b"GET /echo?pipe=2 HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"
           b"GET /echo?pipe=3 HTTP/1.1\r\nHost: x\r\n\r\n")
    r = c.read_response()
    assert r.status == 200 and r.json()["target"] == "/echo?pipe=1"
    r = c.read_response()
    assert r is not None and (r.status, r.reason_token) == (400, "bad-request"), r
    assert c.wait_closed(2), "connection not closed after the 400 (extra=%r)" % c.extra[:200]
    time.sleep(0.15)  # absence window
    assert [e["target"] for e in origin.requests(mark)] == ["/echo?pipe=1"]


def test_requests_pipelined_behind_connection_close_are_not_processed(levee, origin):
    mark = origin.mark()
    c = levee.conn()
    c.send(b"GET /echo?cc=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
           b"GET /echo?cc=2 HTTP/1.1\r\nHost: x\r\n\r\n")
    r = c.read_response()
    assert r.status == 200 and r.json()["target"] == "/echo?cc=1"
    assert c.wait_closed(2), "extra bytes after a Connection: close response: %r" % c.extra[:200]
    time.sleep(0.15)  # absence window
    assert [e["target"] for e in origin.requests(mark)] == ["/echo?cc=1"]
