"""Cache-Status (RFC 9211) and the cache's counters tell the same story.

Every outcome levee can put in Cache-Status (hit, or fwd=miss, stale,
request, bypass) is driven here, and each answer moves
levee_cache_lookups_total{route, result} by exactly one, on its own route,
and nothing else among those series. Each value is checked whole, with its
RFC 9211 parameters (fwd-status, ttl, stored, collapsed, detail), parsed as
an RFC 8941 list, and found again, as sent, in the access log's default
fields. L1 alone, then with Redis (an L2 hit, another replica's lease
waited on, Redis down); a reload that renames a route moves its series.
"""
import copy
import json
import os
import re
import signal
import urllib.parse

import pytest

from harness import WAIT_SCALE, HttpConn, free_port, hget_all, once, run_levee, together, wait_until
from redis_server import REDIS

WAIT = 5 * WAIT_SCALE

# ---- RFC 8941: the list levee writes --------------------------------------

_KEY = r"[a-z*][a-z0-9_\-.*]*"
_TOKEN = r"[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*"
_BARE = r"(?:-?[0-9]{1,15}|\?[01]|" + _TOKEN + r'|"(?:[^"\\]|\\["\\])*")'
_PARAM = r";\s*(" + _KEY + r")(?:=(" + _BARE + r"))?"
_MEMBER = re.compile(r"(" + _TOKEN + r")((?:" + _PARAM + r")*)")


def sf_member(value):
    """One list member: (item, {param: value}); fails unless `value` is a
    valid sf-list of one token item with parameters (RFC 8941 §3.1, §4.2)."""
    m = _MEMBER.fullmatch(value)
    assert m, "not an RFC 8941 list member: %r" % value
    params = {}
    for k, v in re.findall(_PARAM, m.group(2)):
        assert k not in params, "parameter %s twice in %r" % (k, value)
        params[k] = True if v in ("", "?1") else False if v == "?0" else int(v) if re.fullmatch(r"-?\d+", v) else v
    return m.group(1), params


# ---- the counters -------------------------------------------------------------

def lookups(lv):
    return {(l["route"], l["result"]): v for n, l, v in lv.metrics() if n == "levee_cache_lookups_total"}


def delta(before, after):
    keys = set(before) | set(after)
    return {k: after.get(k, 0) - before.get(k, 0) for k in keys if after.get(k, 0) != before.get(k, 0)}


def expect_counted(lv, before, want):
    """levee_cache_lookups_total moved by `want` ({(route, result): n}) and
    by nothing else; a request is counted as it ends, just after its answer."""
    got = {}

    def moved():
        got.clear()
        got.update(delta(before, lookups(lv)))
        return got == want
    try:
        wait_until(moved, WAIT, msg="counters to move by %r" % want)
    except AssertionError:
        raise AssertionError("counters moved by %r, wanted %r" % (got, want))


def cs(r):
    v = r.header("Cache-Status")
    assert v is not None, r.headers
    assert len(hget_all(r.headers, "Cache-Status")) == 1, r.headers
    item, params = sf_member(v)
    assert item == "levee", v
    return v, params


def q(**kw):
    return "?" + urllib.parse.urlencode(kw)


# ---- one levee, L1 alone --------------------------------------------------------

ROUTES = {
    'route "a"': {"prefix": "/cstat/a/", "cache_ttl": "origin"},
    'route "b"': {"prefix": "/cstat/b/", "cache_ttl": "60s"},
}


@pytest.fixture
def lv(levee_factory, tmp_path):
    d = tmp_path / "logs"
    d.mkdir()
    sections = copy.deepcopy(ROUTES)
    sections["levee"] = {"access_log": str(d / "access.log"), "workers": "2"}
    lv = levee_factory(sections)
    lv.log_path = str(d / "access.log")
    return lv


def log_line(lv, target, n):
    """The n-th (from 1) JSON access log line for `target`."""
    def find():
        if not os.path.exists(lv.log_path):
            return None
        with open(lv.log_path) as f:
            rs = [json.loads(ln) for ln in f.read().split("\n")[:-1] if ln]
        rs = [r for r in rs if r.get("target") == target]
        return rs[n - 1] if len(rs) >= n else None
    return wait_until(find, WAIT, msg="access log line %d for %s" % (n, target))


class Probe:
    """Sends one request at a time and checks its answer and its count."""

    def __init__(self, lv):
        self.lv = lv
        self.seen = {}

    def __call__(self, method, target, result, route, pattern, headers=(), body=None):
        before = lookups(self.lv)
        r = once(self.lv.port, method, target, headers=headers, body=body)
        v, params = cs(r)
        assert re.fullmatch(pattern, v), (v, pattern)
        expect_counted(self.lv, before, {(route, result): 1} if result else {})
        # the access log's default fields carry the value as sent
        self.seen[target] = self.seen.get(target, 0) + 1
        line = log_line(self.lv, target, self.seen[target])
        assert line["cache_status"] == v[len("levee; "):], (line, v)
        assert line["route"] == route, line
        return r, params


def test_every_outcome_counted_once_on_its_route(lv):
    p = Probe(lv)
    fresh = "/cstat/a/fresh" + q(cc="max-age=60")
    # a miss, stored: the upstream's status, and the stored copy's freshness
    _, pm = p("GET", fresh, "miss", "a", r"levee; fwd=miss; fwd-status=200; stored; ttl=(59|60)")
    assert pm == {"fwd": "miss", "fwd-status": 200, "stored": True, "ttl": pm["ttl"]}
    # a hit: what is left of its freshness
    p("GET", fresh, "hit", "a", r"levee; hit; ttl=(5[89]|60)")
    # a HEAD and a conditional GET are hits too (a 304 from the cache)
    p("HEAD", fresh, "hit", "a", r"levee; hit; ttl=(5[89]|60)")
    # the request's own directives refuse a copy that is fresh: fwd=request
    p("GET", fresh, "request", "a", r"levee; fwd=request; fwd-status=200; stored; ttl=(59|60)",
      headers=[("Cache-Control", "no-cache")])
    # not stored: the reason, and no ttl (nothing stored to be fresh)
    p("GET", "/cstat/a/nostore" + q(cc="no-store"), "miss", "a",
      r"levee; fwd=miss; fwd-status=200; detail=no-store")
    p("GET", "/cstat/a/err" + q(status="500", cc="max-age=60"), "miss", "a",
      r"levee; fwd=miss; fwd-status=500; detail=status")
    # a copy already stale when stored (Age past max-age): a negative ttl,
    # then stale-while-revalidate answers it at once, still negative
    swr = "/cstat/a/swr" + q(cc="max-age=1, stale-while-revalidate=60", age="5")
    p("GET", swr, "miss", "a", r"levee; fwd=miss; fwd-status=200; stored; ttl=-4")
    p("GET", swr, "hit", "a", r"levee; hit; detail=stale; ttl=-[45]")
    # a stale copy with a validator: revalidated by a 304, fwd=stale
    rv = "/cstat/a/rv" + q(cc="max-age=1", age="5", etag="e1")
    p("GET", rv, "miss", "a", r"levee; fwd=miss; fwd-status=200; stored; ttl=-4")
    p("GET", rv, "stale", "a", r"levee; fwd=stale; fwd-status=304; stored; ttl=-4")
    assert log_line(lv, rv, 2)["cache"] == "revalidated"
    # bypasses: a cookie, a write (which purges the target too)
    p("GET", fresh, "bypass", "a", r"levee; fwd=bypass; fwd-status=200", headers=[("Cookie", "s=1")])
    p("PUT", fresh, "bypass", "a", r"levee; fwd=bypass; fwd-status=200", body=b"x")
    p("DELETE", "/cstat/a/gone" + q(status="404"), "bypass", "a", r"levee; fwd=bypass; fwd-status=404")
    p("GET", fresh, "miss", "a", r"levee; fwd=miss; fwd-status=200; stored; ttl=(59|60)")
    # another route counts on its own series
    p("GET", "/cstat/b/x", "miss", "b", r"levee; fwd=miss; fwd-status=200; stored; ttl=60")
    p("GET", "/cstat/b/x", "hit", "b", r"levee; hit; ttl=(59|60)")
    # a request matching no route has no Cache-Status and no series
    before = lookups(lv)
    r = once(lv.port, "GET", "/echo/none")
    assert r.status == 200 and r.header("Cache-Status") is None
    assert log_line(lv, "/echo/none", 1).get("cache_status") is None
    expect_counted(lv, before, {})
    assert not any(route == "default" for route, _ in lookups(lv))
    # every route that counted shows every result, zeros included
    m = lookups(lv)
    for route in ("a", "b"):
        assert {res for rt, res in m if rt == route} == {"hit", "miss", "stale", "request", "bypass"}, m
    # /status says the same as the series
    st = lv.status()["cache"]
    assert st["hits"] == sum(v for (_, res), v in m.items() if res == "hit"), (st, m)
    assert st["bypasses"] == sum(v for (_, res), v in m.items() if res == "bypass"), (st, m)
    assert st["misses"] == sum(v for (_, res), v in m.items() if res in ("miss", "stale", "request")), (st, m)


def test_levees_own_refusals_say_so_and_count(levee_factory, tmp_path):
    """An answer levee makes itself for a request the cache looked up
    (only-if-cached, an upstream that failed) carries Cache-Status too:
    what the cache would have done, and the refusal's reason token as its
    detail; and it is counted like any other answer."""
    d = tmp_path / "logs"
    d.mkdir()
    sections = copy.deepcopy(ROUTES)
    sections["levee"] = {"access_log": str(d / "access.log"), "workers": "2"}
    sections["upstream"] = {"response_timeout": "300ms"}
    lv = levee_factory(sections)
    lv.log_path = str(d / "access.log")
    p = Probe(lv)
    r, pm = p("GET", "/cstat/a/oic", "miss", "a", r"levee; fwd=miss; detail=only-if-cached",
              headers=[("Cache-Control", "only-if-cached")])
    assert r.status == 504 and r.header("X-Levee-Reason") == "only-if-cached"
    r, _ = p("GET", "/cstat/b/slow" + q(ms="2000"), "miss", "b", r"levee; fwd=miss; detail=upstream-timeout")
    assert r.status == 504 and r.header("X-Levee-Reason") == "upstream-timeout"
    # a HEAD's refusal says the same in its head
    r = once(lv.port, "HEAD", "/cstat/b/slow2" + q(ms="2000"))
    assert r.status == 504 and cs(r)[0] == "levee; fwd=miss; detail=upstream-timeout"


def statuses(ports, target, n, headers=()):
    """The Cache-Status values of n GETs of `target` sent at once."""
    return [cs(r)[0] for r in together(ports, target, n, headers=headers)]


def test_collapsed_waiters_say_so_and_count_once(lv):
    n = 4
    target = "/cstat/b/slow" + q(ms="600")
    before = lookups(lv)
    values = statuses([lv.port], target, n)
    filled = [v for v in values if re.search(r"; stored; ttl=(59|60)$", v)]
    assert len(filled) == 1, values
    collapsed = [v for v in values if v.endswith("; collapsed")]
    assert collapsed, values
    for v in values:
        # the fill's delay is in its age: ttl 59 or 60
        assert re.fullmatch(r"levee; (fwd=miss; fwd-status=200; stored; ttl=(59|60)"
                            r"|fwd=miss; fwd-status=200; ttl=(59|60); collapsed|hit; ttl=(59|60))", v), values
    misses = sum(1 for v in values if v.startswith("levee; fwd=miss"))
    want = {("b", "miss"): misses}
    if n - misses:
        want[("b", "hit")] = n - misses
    expect_counted(lv, before, want)


def test_waiters_of_a_fill_that_stored_nothing_say_collapsed_false(lv):
    n = 3
    before = lookups(lv)
    values = statuses([lv.port], "/cstat/b/ns" + q(ms="600", cc="no-store"), n)
    went = [v for v in values if v.endswith("; collapsed=?0")]
    assert went, values
    for v in values:
        assert re.fullmatch(r"levee; fwd=miss; fwd-status=200; detail=no-store(; collapsed=\?0)?", v), values
    expect_counted(lv, before, {("b", "miss"): n})


def test_a_reload_that_renames_a_route_moves_its_series(lv):
    assert cs(once(lv.port, "GET", "/cstat/b/r"))[0].startswith("levee; fwd=miss")
    wait_until(lambda: lookups(lv).get(("b", "miss")) == 1, WAIT, msg="route b's miss")
    s = copy.deepcopy(lv.sections)
    s['route "b2"'] = s.pop('route "b"')
    ok0 = lv.metric("levee_policy_reloads_total", result="ok") or 0
    lv.write_policy(sections=s, atomic=True)
    lv.signal(signal.SIGHUP)
    wait_until(lambda: (lv.metric("levee_policy_reloads_total", result="ok") or 0) > ok0, WAIT, msg="the reload")
    # gone from /metrics with the route; the new name counts from its first answer
    assert not any(rt == "b" for rt, _ in lookups(lv)), lookups(lv)
    assert cs(once(lv.port, "GET", "/cstat/b/r"))[0].startswith("levee; hit")
    wait_until(lambda: lookups(lv).get(("b2", "hit")) == 1, WAIT, msg="route b2's hit")
    # back to the old name: its counts were kept by name, not lost
    lv.write_policy(sections=lv.sections, atomic=True)
    lv.signal(signal.SIGHUP)
    wait_until(lambda: ("b", "miss") in lookups(lv), WAIT, msg="route b back")
    assert lookups(lv)[("b", "miss")] == 1 and ("b2", "hit") not in lookups(lv)


# ---- with Redis -------------------------------------------------------------------

needs_redis = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")


def replicas(levee_factory, address, n=2, **redis):
    pol = {"redis": dict({"address": address, "lease_wait": "3s"}, **redis),
           'route "c"': {"prefix": "/cstat/", "cache_ttl": "60s"}}
    return [levee_factory(copy.deepcopy(pol)) for _ in range(n)]


@needs_redis
def test_l2_hit_and_lease_wait(levee_factory, redis):
    a, b = replicas(levee_factory, "127.0.0.1:%d" % redis.port)
    for lv in (a, b):
        lv.wait_redis_ready()
    before_a, before_b = lookups(a), lookups(b)
    r = once(a.port, "GET", "/cstat/l2")
    assert re.fullmatch(r"levee; fwd=miss; fwd-status=200; stored; ttl=60", cs(r)[0]), cs(r)
    expect_counted(a, before_a, {("c", "miss"): 1})
    a.wait_committed()
    r = once(b.port, "GET", "/cstat/l2")
    assert re.fullmatch(r"levee; hit; detail=l2; ttl=(59|60)", cs(r)[0]), cs(r)
    expect_counted(b, before_b, {("c", "hit"): 1})

    # the two replicas at once on a slow key: one fills under the lease,
    # the other waits for it and says it was collapsed
    target = "/cstat/lease" + q(ms="700")
    before_a, before_b = lookups(a), lookups(b)
    values = sorted(statuses([a.port, b.port], target, 2), key=lambda v: "collapsed" in v)
    assert re.fullmatch(r"levee; fwd=miss; fwd-status=200; stored; ttl=(59|60)", values[0]), values
    assert re.fullmatch(r"levee; fwd=miss; fwd-status=200; detail=l2; ttl=(59|60); collapsed", values[1]), values
    expect_counted(a, before_a, {("c", "miss"): 1})
    expect_counted(b, before_b, {("c", "miss"): 1})


@needs_redis
def test_redis_down_is_a_counted_bypass(levee_factory):
    (lv,) = replicas(levee_factory, "127.0.0.1:%d" % free_port(), n=1, timeout="50ms")
    seen = {}

    def bypassed():
        before = lookups(lv)
        r = once(lv.port, "GET", "/cstat/down")
        v = cs(r)[0]
        seen["v"] = v
        return (v, before) if v.startswith("levee; fwd=bypass") else None
    v, before = wait_until(bypassed, WAIT, interval=0.05, msg="a bypass while Redis is down")
    assert re.fullmatch(r"levee; fwd=bypass; fwd-status=200; detail=redis-(down|error)", v), v
    expect_counted(lv, before, {("c", "bypass"): 1})


# ---- host aliases: one entry and one lease for every name of the service ------------

ALIASES = ("svc", "svc.ns.svc.cluster.local", "10.0.0.5:8080")


def host_get(lv, target, host, port=None):
    return once(port or lv.port, "GET", target, headers=[("Host", host)])


def requests_seen(origin, target):
    return sum(1 for e in origin.requests(origin.start_mark) if e["target"] == target and e["method"] == "GET")


def test_key_host_shares_one_entry_across_names_and_purges_ignore_it(levee_factory, origin):
    lv = levee_factory({
        "cache": {"key_host": "none"},
        'route "none"': {"prefix": "/cstat/n/", "cache_ttl": "60s"},
        'route "canon"': {"prefix": "/cstat/h/", "cache_ttl": "60s", "cache_key_host": "svc"},
        'route "own"': {"prefix": "/cstat/r/", "cache_ttl": "60s", "cache_key_host": "request"},
    })
    for prefix in ("/cstat/n/", "/cstat/h/"):
        t = prefix + "1"
        got = [cs(host_get(lv, t, h))[0] for h in ALIASES]
        assert got[0].startswith("levee; fwd=miss") and all(v.startswith("levee; hit") for v in got[1:]), got
        assert requests_seen(origin, t) == 1
        # a write through another name purges the one entry, and so does an
        # admin purge of the URL: neither looks at the host
        st = once(lv.port, "PUT", t, headers=[("Host", ALIASES[2])], body=b"x").status
        assert st == 200
        assert cs(host_get(lv, t, ALIASES[1]))[0].startswith("levee; fwd=miss")
        assert cs(host_get(lv, t, ALIASES[0]))[0].startswith("levee; hit")
        c = HttpConn(lv.admin_port)
        try:
            assert c.request("POST", "/purge?url=" + t).status == 200
        finally:
            c.close()
        assert cs(host_get(lv, t, ALIASES[2]))[0].startswith("levee; fwd=miss")
    # `request` keeps one entry per name, as without the key
    t = "/cstat/r/1"
    got = [cs(host_get(lv, t, h))[0] for h in ALIASES]
    assert all(v.startswith("levee; fwd=miss") for v in got), got
    assert cs(host_get(lv, t, "SVC:80"))[0].startswith("levee; hit")  # svc, as RFC 9110 compares it


@needs_redis
def test_key_host_shares_one_lease_across_replicas_and_names(levee_factory, origin, redis):
    pol = {"redis": {"address": "127.0.0.1:%d" % redis.port, "lease_wait": "3s"}, "cache": {"key_host": "svc"},
           'route "c"': {"prefix": "/cstat/", "cache_ttl": "60s"}}
    a, b = levee_factory(copy.deepcopy(pol)), levee_factory(copy.deepcopy(pol))
    for lv in (a, b):
        lv.wait_redis_ready()
    t = "/cstat/lease-host" + q(ms="600")
    values = sorted(statuses([a.port, b.port], t, 2, headers=lambda i: [("Host", ALIASES[1 + i])]),
                    key=lambda v: "collapsed" in v)
    assert values[0].startswith("levee; fwd=miss") and "stored" in values[0], values
    assert values[1].endswith("; collapsed"), values
    assert requests_seen(origin, t) == 1
    # a third name on a replica that has it in neither tier of its own: Redis has it
    assert cs(host_get(b, t, ALIASES[0]))[0].startswith("levee; hit")


def test_explain_says_where_the_keys_host_comes_from(tmp_path):
    f = tmp_path / "p.ini"
    f.write_text('[cache]\nkey_host = none\n[route "v"]\nprefix = /v/\ncache_ttl = 60s\ncache_key_host = Svc\n'
                 '[route "u"]\nprefix = /\ncache_ttl = 60s\n')
    for target, host, key, kh in (("/v/x", "svc.ns.svc.cluster.local", "demo\x1f/v/x\x1fsvc", "Svc"),
                                  ("/a", "10.0.0.5:8080", "demo\x1f/a\x1f", "none")):
        rc, out = run_levee(["explain", "--json", str(f), "GET", target, "Host: " + host])
        assert rc == 0, out
        c = json.loads(out[:out.rindex("}") + 1])["cache"]
        assert (c["key"], c["key_host"]) == (key, kh), c


# ---- GET /cache/entry: the key, the variant and the stored entry of one URL ----------

def entry(lv, **params):
    st, _, body = lv.admin_get("/cache/entry?" + urllib.parse.urlencode(params))
    return st, (json.loads(body) if st == 200 else body.decode())


def test_admin_cache_entry_shows_key_variant_and_metadata(levee_factory):
    lv = levee_factory({'route "o"': {"prefix": "/cstat/o/", "cache_ttl": "origin", "cache_key_host": "svc"},
                        'route "plain"': {"prefix": "/echo/"}})
    t = "/cstat/o/e" + q(cc="max-age=60, stale-while-revalidate=5", etag="v1")
    st, e = entry(lv, url=t)
    assert st == 200 and e["route"] == "o" and e["caches"] is True and e["stored"] is False, e
    assert e["key"] == "demo\x1f" + t + "\x1fsvc" and e["key_host"] == "svc", e
    assert "vary" not in e and "stored_under" not in e, e
    v0 = cs(host_get(lv, t, "svc.ns.svc.cluster.local"))[0]
    assert v0.startswith("levee; fwd=miss") and "stored" in v0, v0
    st, e = entry(lv, url=t, host="10.0.0.5:8080")
    assert st == 200 and e["stored"] is True, e
    m = e["entry"]
    assert (m["status"], m["lifetime"], m["stale_while_revalidate"], m["etag"]) == (200, 60, 5, '"v1"'), m
    assert 59 <= m["ttl"] <= 60 and m["age"] in (0, 1) and m["body_bytes"] == len("cstat /cstat/o/e"), m
    assert m["negative"] is False and m["must_revalidate"] is False, m
    assert isinstance(m["tags"], list), m
    # a Vary'd response: the URL's latest variant is under its own key, the
    # others in its variant slots; each request finds its own
    vt = "/cstat/o/v" + q(cc="max-age=60", vary="Accept-Language")
    for lang in ("fr", "de"):
        assert once(lv.port, "GET", vt, headers=[("Accept-Language", lang)]).status == 200
    st, e = entry(lv, url=vt, header="Accept-Language: de")
    assert st == 200 and e["vary"] == "accept-language" and e["stored"] is True, e
    assert e["stored_under"] == e["key"], e  # the latest
    st, e = entry(lv, url=vt, header="Accept-Language: fr")
    assert st == 200 and e["stored"] is True, e
    assert re.fullmatch(re.escape(e["key"]) + "\x1e[0-9a-f]{2}", e["stored_under"]), e  # a slot
    st, e = entry(lv, url=vt, header="Accept-Language: it")
    assert st == 200 and e["vary"] == "accept-language" and e["stored"] is False and "stored_under" not in e, e
    # no caching route; a URL levee would refuse; no url at all
    st, e = entry(lv, url="/echo/x")
    assert st == 200 and e == {"route": "plain", "caches": False}, e
    st, e = entry(lv, url="/elsewhere")
    assert st == 200 and e == {"route": None, "caches": False}, e
    st, body = entry(lv, url="/cstat/o/x", header="Bad Header")
    assert st == 400 and body, body
    st, body = entry(lv, host="svc")
    assert st == 400 and "url=" in body, body
