"""The in-process cache (L1): hits and misses, Cache-Status, safety rules,
conditional requests, negative caching, Vary, purges, invalidation on writes,
and coalescing of concurrent misses.

The origin's /echo answers with the request it saw, including levee's
X-Request-Id, so two answers with the same body came from one origin request.
/headers?Name=Value sets response fields, so a test chooses what the origin
says about caching.
"""
import json
import threading
import urllib.parse

import pytest

from harness import cache_status_core, together, HttpConn, metric_sum, once, wait_until


def route(**keys):
    keys.setdefault("prefix", "/")
    return {'route "c"': keys}


def get(lv, target, headers=(), method="GET"):
    return once(lv.port, method, target, headers)


def headers_url(**fields):
    return "/headers?" + urllib.parse.urlencode(fields)


def cache_status(r):
    return cache_status_core(r.header("Cache-Status"))


def origin_count(origin, path):
    return len(origin.requests(origin.start_mark, path=path))


def test_fixed_ttl_miss_then_hit(levee_factory, origin):
    lv = levee_factory(route(cache_ttl="60s"))
    a = get(lv, "/echo/users/1")
    assert a.status == 200
    assert cache_status(a) == "levee; fwd=miss; stored"
    b = get(lv, "/echo/users/1")
    assert b.status == 200
    assert cache_status(b) == "levee; hit"
    assert b.body == a.body  # the very same origin answer
    assert b.header("Age") is not None
    assert b.header("X-Request-Id") != a.header("X-Request-Id")  # the hit has its own id
    assert origin_count(origin, "/echo/users/1") == 1
    # the query is part of the key, exactly as sent
    c = get(lv, "/echo/users/1?a=1&b=2")
    d = get(lv, "/echo/users/1?b=2&a=1")
    assert cache_status(c) == cache_status(d) == "levee; fwd=miss; stored"


def test_uncached_route_has_no_cache_status(levee_factory, origin):
    lv = levee_factory({'route "c"': {"prefix": "/cached", "cache_ttl": "60s"}})
    r = get(lv, "/echo/x")
    assert r.status == 200 and cache_status_core(r.header("Cache-Status")) is None


def test_head_is_answered_from_a_stored_get(levee_factory, origin):
    lv = levee_factory(route(cache_ttl="60s"))
    a = get(lv, "/echo/h")
    h = get(lv, "/echo/h", method="HEAD")
    assert cache_status(h) == "levee; hit"
    assert h.body == b"" and h.header("Content-Length") == str(len(a.body))
    assert origin_count(origin, "/echo/h") == 1


def test_expiry(levee_factory, origin):
    lv = levee_factory(route(cache_ttl="1s"))
    get(lv, "/echo/exp")
    assert cache_status(get(lv, "/echo/exp")) == "levee; hit"
    wait_until(lambda: cache_status(get(lv, "/echo/exp")) != "levee; hit", 4, msg="entry expires")
    assert origin_count(origin, "/echo/exp") == 2


@pytest.mark.parametrize("fields,why", [
    ({"Set-Cookie": "s=1"}, "set-cookie"),
    ({"Cache-Control": "private"}, "private"),
    ({"Cache-Control": "no-store"}, "no-store"),
])
def test_responses_never_stored(levee_factory, origin, fields, why):
    lv = levee_factory(route(cache_ttl="60s"))
    u = headers_url(**fields)
    get(lv, u)
    r = get(lv, u)
    assert cache_status(r).startswith("levee; fwd=miss"), why
    assert origin_count(origin, "/headers") == 2, why


@pytest.mark.parametrize("req_headers", [
    [("Cookie", "session=1")],
    [("X-HTTP-Method-Override", "DELETE")],
    [("Cache-Control", "no-store")],
])
def test_requests_that_bypass(levee_factory, origin, req_headers):
    lv = levee_factory(route(cache_ttl="60s"))
    get(lv, "/echo/b")  # stored by a plain request
    r = get(lv, "/echo/b", headers=req_headers)
    assert cache_status(r) == "levee; fwd=bypass"
    assert origin_count(origin, "/echo/b") == 2


def test_cookie_route_opt_in(levee_factory, origin):
    lv = levee_factory(route(cache_ttl="60s", cache_cookies="true"))
    get(lv, "/echo/ck")
    r = get(lv, "/echo/ck", headers=[("Cookie", "a=1")])
    assert cache_status(r) == "levee; hit"


def test_authorization_not_stored_unless_public(levee_factory, origin):
    lv = levee_factory(route(cache_ttl="origin"))
    u = headers_url(**{"Cache-Control": "max-age=60"})
    get(lv, u, headers=[("Authorization", "Bearer a")])
    assert cache_status(get(lv, u)).startswith("levee; fwd=miss")  # RFC 9111 §3.5
    p = headers_url(**{"Cache-Control": "public, max-age=60"})
    get(lv, p, headers=[("Authorization", "Bearer a")])
    assert cache_status(get(lv, p)) == "levee; hit"


def test_5xx_and_206_never_stored(levee_factory, origin):
    lv = levee_factory(route(cache_ttl="60s"))
    for _ in range(2):
        r = get(lv, "/status/503")
        assert r.status == 503
    assert origin_count(origin, "/status/503") == 2


def test_origin_mode_obeys_cache_control(levee_factory, origin):
    lv = levee_factory(route(cache_ttl="origin"))
    none = headers_url(x="1")  # no freshness information at all
    get(lv, none)
    assert cache_status(get(lv, none)).startswith("levee; fwd=miss")
    fresh = headers_url(**{"Cache-Control": "max-age=60"})
    get(lv, fresh)
    assert cache_status(get(lv, fresh)) == "levee; hit"
    smax = headers_url(**{"Cache-Control": "max-age=0, s-maxage=60"})  # s-maxage wins in a shared cache
    get(lv, smax)
    assert cache_status(get(lv, smax)) == "levee; hit"
    zero = headers_url(**{"Cache-Control": "max-age=0"})
    get(lv, zero)
    assert cache_status(get(lv, zero)).startswith("levee; fwd=miss")


def test_request_no_cache_goes_upstream(levee_factory, origin):
    lv = levee_factory(route(cache_ttl="60s"))
    get(lv, "/echo/ma")
    # RFC 9211 fwd=request: a usable entry exists, but the request's
    # directives did not allow it
    r = get(lv, "/echo/ma", headers=[("Cache-Control", "no-cache")])
    assert cache_status(r) == "levee; fwd=request; stored"
    r = get(lv, "/echo/ma", headers=[("Pragma", "no-cache")])
    assert cache_status(r) == "levee; fwd=request; stored"
    # max-age=0 accepts an entry whose age is 0 (RFC 9111 §5.2.1.1)
    r = get(lv, "/echo/ma", headers=[("Cache-Control", "max-age=100")])
    assert cache_status(r) == "levee; hit"


def test_conditional_requests_get_304_from_a_fresh_entry(levee_factory, origin):
    lv = levee_factory(route(cache_ttl="60s"))
    u = headers_url(ETag='"v1"', **{"Last-Modified": "Tue, 01 Sep 2026 10:00:00 GMT"})
    a = get(lv, u)
    assert a.status == 200
    r = get(lv, u, headers=[("If-None-Match", '"v1"')])
    assert r.status == 304 and r.body == b""
    assert r.header("ETag") == '"v1"' and cache_status(r) == "levee; hit"
    r = get(lv, u, headers=[("If-None-Match", 'W/"v1"')])  # weak comparison
    assert r.status == 304
    r = get(lv, u, headers=[("If-None-Match", '"v2"')])
    assert r.status == 200 and r.body == a.body
    r = get(lv, u, headers=[("If-Modified-Since", "Wed, 02 Sep 2026 10:00:00 GMT")])
    assert r.status == 304
    r = get(lv, u, headers=[("If-Modified-Since", "Mon, 31 Aug 2026 10:00:00 GMT")])
    assert r.status == 200
    assert origin_count(origin, "/headers") == 1


def test_negative_caching_and_write_clears_it(levee_factory, origin):
    lv = levee_factory(route(cache_ttl="60s", negative_ttl="30s"))
    name = "/store/neg-%d" % origin.start_mark
    assert get(lv, name).status == 404
    r = get(lv, name)
    assert r.status == 404 and cache_status(r) == "levee; hit"
    assert origin_count(origin, name) == 1
    # a failed write purges nothing
    c = HttpConn(lv.port)
    assert c.request("PUT", name + "?fail=1", body=b"v1").status == 409
    assert cache_status(get(lv, name)) == "levee; hit"
    # a successful write to the URL clears the negative entry
    assert c.request("PUT", name, body=b"v1").status == 201
    c.close()
    r = get(lv, name)
    assert r.status == 200 and r.body == b"v1"


def test_negative_ttl_zero_does_not_cache(levee_factory, origin):
    lv = levee_factory(route(cache_ttl="60s", negative_ttl="0"))
    get(lv, "/status/404")
    assert cache_status(get(lv, "/status/404")).startswith("levee; fwd=miss")


def test_write_purges_target_and_location(levee_factory, origin):
    lv = levee_factory(route(cache_ttl="60s"))
    get(lv, "/echo/users/7")
    get(lv, "/echo/users/8")
    get(lv, "/echo/users/77")
    assert cache_status(get(lv, "/echo/users/7")) == "levee; hit"
    # PUT /echo/users/7 answers 200; the origin also says where the result lives
    c = HttpConn(lv.port)
    r = c.request("PUT", "/headers?Location=/echo/users/8", body=b"x")
    c.close()
    assert r.status == 200
    assert cache_status(get(lv, "/echo/users/8")).startswith("levee; fwd=miss")  # Location purged
    c = HttpConn(lv.port)
    assert c.request("PUT", "/echo/users/7", body=b"x").status == 200
    c.close()
    assert cache_status(get(lv, "/echo/users/7")).startswith("levee; fwd=miss")
    assert cache_status(get(lv, "/echo/users/77")) == "levee; hit"  # a longer path is another URL


def test_write_purge_happens_even_if_the_client_leaves(levee_factory, origin):
    lv = levee_factory(route(cache_ttl="60s"))
    u = "/slow?head_ms=300"
    get(lv, u)
    assert cache_status(get(lv, u)) == "levee; hit"
    c = HttpConn(lv.port)
    c.send(b"POST " + u.encode() + b" HTTP/1.1\r\nHost: test.local\r\nContent-Length: 1\r\n\r\nx")
    origin.wait_event(lambda e: e.get("event") == "request" and e.get("method") == "POST", origin.start_mark)
    c.close()  # gone before the origin answers
    wait_until(lambda: cache_status(get(lv, u)).startswith("levee; fwd=miss"), 5,
               msg="the write's purge applies although its client left")


def test_vary(levee_factory, origin):
    lv = levee_factory(route(cache_ttl="60s"))
    v = headers_url(Vary="Accept-Language")
    en = get(lv, v, headers=[("Accept-Language", "en")])
    de = get(lv, v, headers=[("Accept-Language", "de")])
    assert cache_status(en).startswith("levee; fwd=miss")
    assert cache_status(de).startswith("levee; fwd=miss")
    assert cache_status(get(lv, v, headers=[("Accept-Language", "en")])) == "levee; hit"
    assert cache_status(get(lv, v, headers=[("Accept-Language", "de")])) == "levee; hit"
    assert cache_status(get(lv, v)).startswith("levee; fwd=miss")  # absent is its own variant
    star = headers_url(Vary="*")
    get(lv, star)
    assert cache_status(get(lv, star)).startswith("levee; fwd=miss")


def test_cache_key_headers(levee_factory, origin):
    lv = levee_factory(route(cache_ttl="60s", cache_key_headers="X-Tenant"))
    a = get(lv, "/echo/t", headers=[("X-Tenant", "a")])
    b = get(lv, "/echo/t", headers=[("X-Tenant", "b")])
    assert a.body != b.body
    assert cache_status(get(lv, "/echo/t", headers=[("X-Tenant", "a")])) == "levee; hit"
    assert origin_count(origin, "/echo/t") == 2


def test_admin_purge(levee_factory, origin):
    lv = levee_factory(route(cache_ttl="60s"))
    for p in ("/echo/p/1", "/echo/p/2", "/echo/q/1"):
        get(lv, p)
    tagged = headers_url(**{"Surrogate-Key": "user-1 team-2"})
    get(lv, tagged)

    def purge(q):
        c = HttpConn(lv.admin_port)
        r = c.request("POST", "/purge?" + q)
        c.close()
        return r

    assert json.loads(purge("url=/echo/p/1").body)["purged"] == 1
    assert cache_status(get(lv, "/echo/p/1")).startswith("levee; fwd=miss")
    assert cache_status(get(lv, "/echo/p/2")) == "levee; hit"
    assert json.loads(purge("prefix=/echo/p/").body)["purged"] == 2
    assert cache_status(get(lv, "/echo/q/1")) == "levee; hit"
    assert json.loads(purge("tag=team-2").body)["purged"] == 1
    assert cache_status(get(lv, tagged)).startswith("levee; fwd=miss")
    assert purge("nothing=1").status == 400
    c = HttpConn(lv.admin_port)
    assert c.request("GET", "/purge?all=1").status == 405
    c.close()


def test_concurrent_misses_coalesce_into_one_upstream_request(levee_factory, origin):
    lv = levee_factory(route(cache_ttl="60s"))
    n = 200
    results = together([lv.port], "/slow?head_ms=500&n=100", n)
    assert all(r is not None and r.status == 200 for r in results)
    assert len({r.body for r in results}) == 1
    assert origin_count(origin, "/slow") == 1
    statuses = {cache_status(r) for r in results}
    assert statuses <= {"levee; fwd=miss; stored", "levee; fwd=miss; collapsed", "levee; hit"}
    m = lv.metrics()
    assert metric_sum(m, "levee_cache_coalesced_total") >= 1


def test_metrics_and_status(levee_factory, origin):
    lv = levee_factory(route(cache_ttl="60s"))
    get(lv, "/echo/m")
    get(lv, "/echo/m")
    # a request is counted as it ends, just after its answer
    wait_until(lambda: metric_sum(lv.metrics(), "levee_cache_lookups_total") == 2, 5, msg="both counted")
    m = lv.metrics()
    assert metric_sum(m, "levee_cache_lookups_total", result="hit") == 1
    assert metric_sum(m, "levee_cache_lookups_total", result="miss") == 1
    assert metric_sum(m, "levee_cache_stores_total") == 1
    assert metric_sum(m, "levee_cache_l1_bytes") > 0
    st = lv.status()
    assert st["cache"]["hits"] == 1 and st["cache"]["l1"]["entries"] >= 1


def test_fill_racing_a_purge_is_not_stored(levee_factory, origin):
    """The stale-fill race: a fill starts, a write purges the key while the
    fill's response is on its way, then the fill completes. Its body may
    predate the write, so it must not be stored."""
    lv = levee_factory(route(cache_ttl="60s"))
    u = "/slow?head_ms=800&n=5"
    done = []
    t = threading.Thread(target=lambda: done.append(get(lv, u)))
    t.start()
    origin.wait_event(lambda e: e.get("event") == "request" and e["target"] == u, origin.start_mark)
    c = HttpConn(lv.admin_port)
    assert json.loads(c.request("POST", "/purge?url=" + urllib.parse.quote(u, safe="")).body)["purged"] == 0
    c.close()
    t.join()
    assert done[0].status == 200  # the client still gets its answer
    r = get(lv, u)
    assert cache_status(r).startswith("levee; fwd=miss"), "the racing fill was stored"
    assert origin_count(origin, "/slow") == 2
    assert metric_sum(lv.metrics(), "levee_cache_fill_refused_total") == 1


def test_route_tags_with_captures(levee_factory, origin):
    lv = levee_factory({'route "u"': {"match": "/echo/users/*", "cache_ttl": "60s",
                                      "cache_tags": "users, user-{1}"}})
    get(lv, "/echo/users/7")
    get(lv, "/echo/users/8")

    def purge(q):
        c = HttpConn(lv.admin_port)
        r = c.request("POST", "/purge?" + q)
        c.close()
        return json.loads(r.body)["purged"]

    assert purge("tag=user-7") == 1
    assert cache_status(get(lv, "/echo/users/7")).startswith("levee; fwd=miss")
    assert cache_status(get(lv, "/echo/users/8")) == "levee; hit"
    assert purge("tag=users") == 2
