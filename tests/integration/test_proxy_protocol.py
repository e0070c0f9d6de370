"""[upstream] proxy_protocol = v1: each upstream connection opens with a
PROXY line naming its client, and carries that client connection's
requests only (docs/transparent.md, "What the app sees"). The test origin
logs a PROXY line a connection opens with as a `proxy` event."""
from harness import HttpConn, wait_until


def proxy_events(origin, mark):
    return [e for e in origin.events(mark) if e["event"] == "proxy"]


def requests_on(origin, mark, path):
    return [e for e in origin.requests(mark, path=path)]


def send_get(c, target):
    r = c.request("GET", target)
    assert r is not None and r.status == 200, r
    return r


def test_line_names_the_client_and_keeps_to_its_connection(levee_factory, origin):
    lv = levee_factory({"upstream": {"proxy_protocol": "v1"}})
    mark = origin.mark()
    a = HttpConn(lv.port)
    sport_a = a.sock.getsockname()[1]
    send_get(a, "/echo/pp-a1")
    send_get(a, "/echo/pp-a2")
    lines = proxy_events(origin, mark)
    assert [e["line"] for e in lines] == ["PROXY TCP4 127.0.0.1 127.0.0.1 %d %d" % (sport_a, lv.port)]
    # both requests of the keep-alive client on the one upstream connection
    # that named it
    conns = {e["conn"] for e in requests_on(origin, mark, "/echo/pp-a1") + requests_on(origin, mark, "/echo/pp-a2")}
    assert conns == {lines[0]["conn"]}

    # another client: its own upstream connection and line, although the
    # first one waits idle in the pool
    b = HttpConn(lv.port)
    sport_b = b.sock.getsockname()[1]
    send_get(b, "/echo/pp-b1")
    lines = proxy_events(origin, mark)
    assert [e["line"] for e in lines][1:] == ["PROXY TCP4 127.0.0.1 127.0.0.1 %d %d" % (sport_b, lv.port)]
    (rb,) = requests_on(origin, mark, "/echo/pp-b1")
    assert rb["conn"] == lines[1]["conn"]
    # and the first client still finds its own
    send_get(a, "/echo/pp-a3")
    (ra3,) = requests_on(origin, mark, "/echo/pp-a3")
    assert ra3["conn"] == lines[0]["conn"]
    assert len(proxy_events(origin, mark)) == 2
    a.close()
    b.close()


def test_off_by_default_and_after_reload(levee_factory, origin):
    lv = levee_factory()
    mark = origin.mark()
    assert lv.get("/echo/pp-off").status == 200
    assert proxy_events(origin, mark) == []
    assert len(origin.requests(mark, path="/echo/pp-off")) == 1

    # turned on by a reload: a client connection accepted before it has no
    # line of its own, and says UNKNOWN (the app then uses the connection's
    # addresses); one accepted after names its client
    old = HttpConn(lv.port)
    send_get(old, "/echo/pp-before")
    sections = {k: dict(v) for k, v in lv.sections.items()}
    sections.setdefault("upstream", {})["proxy_protocol"] = "v1"
    lv.write_policy(sections=sections)
    r = lv.admin_request("POST", "/reload")
    assert r.status == 200, r.body
    mark = origin.mark()
    send_get(old, "/echo/pp-old")
    assert [e["line"] for e in proxy_events(origin, mark)] == ["PROXY UNKNOWN"]
    new = HttpConn(lv.port)
    send_get(new, "/echo/pp-new")
    lines = wait_until(lambda: proxy_events(origin, mark)[1:] or None, 5, msg="the new client's PROXY line")
    assert lines[0]["line"] == "PROXY TCP4 127.0.0.1 127.0.0.1 %d %d" % (new.sock.getsockname()[1], lv.port)
    old.close()
    new.close()


def test_departed_clients_do_not_hold_the_pool_against_a_live_one(levee_factory, origin):
    """The pool is full of idle connections of clients that have left (their
    lines will never be asked for again): a keep-alive client that comes
    next must still get its own connection pooled and reused, not a new
    upstream connection for every request until the reaper runs."""
    lv = levee_factory({"levee": {"workers": "1"}, "upstream": {"proxy_protocol": "v1", "keepalive": "2"}})
    for i in range(3):
        c = HttpConn(lv.port)
        send_get(c, "/echo/pp-gone%d" % i)
        c.close()
    mark = origin.mark()
    k = HttpConn(lv.port)
    for i in range(3):
        send_get(k, "/echo/pp-live%d" % i)
    conns = {e["conn"] for i in range(3) for e in requests_on(origin, mark, "/echo/pp-live%d" % i)}
    assert len(conns) == 1, "the keep-alive client's requests went on %d upstream connections" % len(conns)
    assert len(proxy_events(origin, mark)) == 1
    k.close()
