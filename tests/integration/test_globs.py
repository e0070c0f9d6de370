"""One glob, one meaning (policy/README.md, "Invalidation paths"): `*` is one
segment and a final `**` any number of them, in a route's `match`, in its
`invalidate`, and in the admin purge API's url=. A purge removes one URL or
every URL under a prefix, so a glob it cannot express exactly purges the
prefix before its first wildcard's segment: more than it says, never less."""
import json
import urllib.parse

import pytest

from harness import cache_status_core, HttpConn, metric_sum, once, wait_until
from redis_server import REDIS


def get(lv, target, method="GET"):
    return once(lv.port, method, target, body=b"x" if method != "GET" else None)


def hit(lv, target):
    return cache_status_core(get(lv, target).header("Cache-Status")) == "levee; hit"


def purge(lv, q):
    c = HttpConn(lv.admin_port)
    try:
        r = c.request("POST", "/purge?" + q)
        return r.status, r.body.decode()
    finally:
        c.close()


def q(name, value):
    return "%s=%s" % (name, urllib.parse.quote(value, safe=""))


PATHS = ("/echo/p/1", "/echo/p/2", "/echo/p/x/y", "/echo/q/1", "/echo/q/1/z", "/echo/r")


def warm(lv, paths=PATHS):
    for p in paths:
        get(lv, p)
    assert all(hit(lv, p) for p in paths)


def cached(lv, paths=PATHS):
    return {p for p in paths if hit(lv, p)}


def test_purge_api_globs(levee_factory, origin):
    lv = levee_factory({'route "c"': {"prefix": "/", "cache_ttl": "60s"}})
    warm(lv)
    st, body = purge(lv, q("url", "/echo/p/**"))
    assert st == 200, body
    assert json.loads(body) == {"purged": 3, "prefix": "/echo/p/"}
    assert cached(lv) == {"/echo/q/1", "/echo/q/1/z", "/echo/r"}

    # one segment: a purge cannot say it, so it takes the whole prefix
    warm(lv)
    st, body = purge(lv, q("url", "/echo/q/*"))
    assert st == 200 and json.loads(body) == {"purged": 2, "prefix": "/echo/q/"}, body
    assert cached(lv) == {"/echo/p/1", "/echo/p/2", "/echo/p/x/y", "/echo/r"}

    # part of a segment: back to the segment boundary
    warm(lv)
    st, body = purge(lv, q("url", "/echo/p*"))
    assert st == 200 and json.loads(body) == {"purged": 6, "prefix": "/echo/"}, body
    assert cached(lv) == set()

    # a '*' in the query only is a plain URL
    get(lv, "/echo/s?q=*")
    st, body = purge(lv, q("url", "/echo/s?q=*"))
    assert st == 200 and json.loads(body) == {"purged": 1}, body


@pytest.mark.parametrize("query, why", [
    (q("prefix", "/echo/p/*"), "a prefix is literal: for a glob give url=/path/**"),
    (q("tag", "user-*"), "a tag is an exact name: '*' is no wildcard in tags"),
    (q("url", "/echo/**/x"), "'**' is only allowed as the last segment"),
    (q("url", "/echo/a**"), "at most one '*' per segment"),
    (q("url", "/echo/*?a=1"), "a glob matches paths only: drop the query"),
])
def test_purge_api_refuses_what_it_would_misread(levee_factory, origin, query, why):
    lv = levee_factory({'route "c"': {"prefix": "/", "cache_ttl": "60s"}})
    warm(lv)
    st, body = purge(lv, query)
    assert st == 400 and why in body, (st, body)
    assert cached(lv) == set(PATHS)


def test_write_invalidates_by_glob(levee_factory, origin):
    lv = levee_factory({
        'route "w"': {"match": "/echo/w/*", "methods": "POST, PUT", "cache_ttl": "60s",
                      "invalidate": "/echo/p/**, /echo/q/*"},
        'route "c"': {"prefix": "/", "cache_ttl": "60s"},
    })
    warm(lv)
    assert get(lv, "/echo/w/1", method="POST").status == 200
    # /echo/p/** is exactly that prefix; /echo/q/* widens to /echo/q/
    assert cached(lv) == {"/echo/r"}


@pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")
def test_widened_purge_reaches_redis(levee_factory, origin, redis):
    """Redis tracks prefixes at '/' boundaries only: a glob is widened to one,
    so another replica cannot read the purged entries back from Redis."""
    pol = {"redis": {"address": "127.0.0.1:%d" % redis.port}, 'route "c"': {"prefix": "/", "cache_ttl": "60s"}}
    a = levee_factory(pol)
    a.wait_redis_ready()
    warm(a, ("/echo/l2/ab", "/echo/l2/cd"))
    wait_until(lambda: metric_sum(a.metrics(), "levee_cache_l2_operations_total", result="committed") == 2, 3,
               msg="both entries in Redis")
    st, body = purge(a, q("url", "/echo/l2/a*"))
    assert st == 200 and json.loads(body)["prefix"] == "/echo/l2/", body
    b = levee_factory(pol)
    b.wait_redis_ready()
    for p in ("/echo/l2/ab", "/echo/l2/cd"):
        assert cache_status_core(get(b, p).header("Cache-Status")).startswith("levee; fwd=miss"), p
