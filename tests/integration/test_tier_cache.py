"""The cache modes of degradation tiers (docs/tier-cache-modes.md): each
mode does what it says while its tier is forced, is off once the tier is
cleared, and never serves a purged copy.

A tier is put in force through the admin endpoint, POST /tier?force=NAME
and POST /tier?clear=1; each test runs one levee whose policy has one tier
with the one mode under test, entered by hand only (its `enter` never holds).
"""
import json
import threading
import time
import urllib.parse

import pytest

from harness import cache_status_core, fill_until_committed, metric_sum, once, wait_until
from redis_server import REDIS

# entered by hand only; once cleared, it steps down on the next tick
NEVER = {"enter": "inflight > 1000000", "exit": "inflight < 1000000", "hold": "0s"}

needs_redis = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")


def policy(mode, routes, redis=None, **tier):
    pol = {"tiers": {"tick": "100ms"}, 'tier "t"': dict(NEVER, cache=mode, **tier)}
    for name, kv in routes.items():
        pol['route "%s"' % name] = kv
    if redis is not None:
        # a loaded test machine must not turn a lookup into a timeout
        pol["redis"] = {"address": "127.0.0.1:%d" % redis.port, "lease_wait": "3s", "timeout": "250ms"}
    return pol


def force(lv):
    r = lv.admin_request("POST", "/tier?force=t&for=60s")
    assert r.status == 200 and json.loads(r.body)["level"] == 1, (r.status, r.body)


def clear(lv):
    r = lv.admin_request("POST", "/tier?clear=1")
    assert r.status == 200, (r.status, r.body)
    wait_until(lambda: lv.status()["tiers"]["level"] == 0, 5, msg="back to normal once cleared")


def get(lv, target, headers=()):
    return once(lv.port, "GET", target, headers)


def put(lv, target, body):
    return once(lv.port, "PUT", target, [("Content-Type", "text/plain")], body=body)


def cs(r):
    return cache_status_core(r.header("Cache-Status"))


def origin_put(origin, target, body):
    """Changes the origin's copy behind levee's back (no purge)."""
    return once(origin.port, "PUT", target, [("Content-Type", "text/plain")], body=body)


def set_flaky(origin, name, mode="ok", bump=False, ms=0, times=0):
    origin._get("/__fail?name=%s&mode=%s&ms=%d&times=%d%s" % (name, mode, ms, times, "&bump=1" if bump else ""))


def n_origin(origin, path):
    """GETs the origin saw for <path> in this test."""
    return len([r for r in origin.requests(origin.start_mark, path=path) if r["method"] == "GET"])


def tier_metric(lv, effect):
    return metric_sum(lv.metrics(), "levee_cache_tier_total", effect=effect)


def past_lifetime():
    time.sleep(1.15)  # the entries' lifetime is 1 s: nothing to poll for but time itself


# ---- serve-stale -------------------------------------------------------

def test_serve_stale_answers_at_once_without_the_origin(levee_factory, origin):
    name = "ss-%d" % origin.start_mark
    u = "/flaky/" + name
    lv = levee_factory(policy("serve-stale", {"c": {"prefix": "/flaky/", "cache_ttl": "origin"}}))
    assert get(lv, u).body == b"v1"
    set_flaky(origin, name, bump=True)  # the origin has v2 now
    past_lifetime()
    force(lv)
    t0 = time.monotonic()
    r = get(lv, u)
    took = time.monotonic() - t0
    assert r.status == 200 and r.body == b"v1" and cs(r) == "levee; hit; detail=tier-stale", (cs(r), r.body)
    assert int(r.header("Age")) >= 1
    time.sleep(0.3)  # a background refresh, if one were started, would reach the origin by now
    assert n_origin(origin, u) == 1, "no revalidation, no background refresh"
    assert took < 0.2, took
    assert tier_metric(lv, "stale") == 1
    # off once the tier is cleared: revalidated, the new body
    clear(lv)
    r = get(lv, u)
    assert r.body == b"v2" and cs(r).startswith("levee; fwd=stale"), cs(r)
    assert n_origin(origin, u) == 2


def stale_under_serve_stale(levee_factory, origin, cache_control):
    """A response with <cache_control> (max-age 1), stored, gone stale, then
    asked for again under serve-stale: that answer."""
    lv = levee_factory(policy("serve-stale", {"c": {"prefix": "/", "cache_ttl": "origin"}}))
    u = "/headers?Cache-Control=%s&n=%d" % (urllib.parse.quote(cache_control), origin.start_mark)
    assert get(lv, u).status == 200
    past_lifetime()
    force(lv)
    r = get(lv, u)
    assert r.status == 200
    return r


def test_serve_stale_keeps_must_revalidate(levee_factory, origin):
    """An origin that forbids stale answers is obeyed: revalidated."""
    r = stale_under_serve_stale(levee_factory, origin, "max-age=1, must-revalidate")
    assert "tier-stale" not in cs(r), cs(r)
    assert n_origin(origin, "/headers") == 2


def test_serve_stale_inside_an_s_maxage_origins_own_window_starts_no_refresh(levee_factory, origin):
    """s-maxage forbids stale answers but for the origin's own
    stale-while-revalidate: served there, without the refresh."""
    r = stale_under_serve_stale(levee_factory, origin, "s-maxage=1, stale-while-revalidate=30")
    assert cs(r) == "levee; hit; detail=tier-stale", cs(r)
    time.sleep(0.3)  # a refresh, if one were started, would reach the origin by now
    assert n_origin(origin, "/headers") == 1


def serve_stale_levee(levee_factory, redis=None):
    # a 1 s TTL, kept 60 s past it (stale-if-error) so that a stale copy exists
    return levee_factory(policy("serve-stale", {"s": {"prefix": "/store/", "cache_ttl": "1s",
                                                      "stale_if_error": "60s",
                                                      "cache_tags": "store"}}, redis=redis))


def stale_copy_served(lv, u, body):
    """Stores <body> at <u>, lets it go stale, and shows serve-stale would
    serve it (the tier is in force when this returns)."""
    assert put(lv, u, body).status == 201
    assert get(lv, u).body == body
    past_lifetime()
    force(lv)
    r = get(lv, u)
    assert r.body == body and cs(r) == "levee; hit; detail=tier-stale", (cs(r), r.body)


@pytest.mark.parametrize("purge", ["write", "url", "tag"])
def test_serve_stale_never_resurrects_a_purged_entry(levee_factory, origin, purge):
    lv = serve_stale_levee(levee_factory)
    u = "/store/ss-purge-%s-%d" % (purge, origin.start_mark)
    stale_copy_served(lv, u, b"v1")
    if purge == "write":
        assert put(lv, u, b"v2").status == 201  # acknowledged: v1 must never come back
    else:
        assert origin_put(origin, u, b"v2").status == 201
        q = "url=" + u if purge == "url" else "tag=store"
        r = lv.admin_request("POST", "/purge?" + q)
        assert r.status == 200, r.body
    for _ in range(3):
        r = get(lv, u)
        assert r.body == b"v2", (cs(r), r.body)
    assert n_origin(origin, u) == 2  # v1, then v2 once (stored again, then hits)


@needs_redis
def test_serve_stale_never_serves_an_entry_a_refused_purge_fences(levee_factory, origin, redis):
    """Redis refuses the purge's DEL (min-replicas-to-write with no replica):
    its L2 entry still exists, fenced until the purge lands; serve-stale does
    not get past the fence, from L1 or from Redis."""
    lv = serve_stale_levee(levee_factory, redis)
    u = "/store/ss-fenced-%d" % origin.start_mark
    assert put(lv, u, b"v1").status == 201
    fill_until_committed(lv, lambda: get(lv, u).body == b"v1" or pytest.fail("not v1"))
    past_lifetime()
    force(lv)
    assert cs(get(lv, u)) == "levee; hit; detail=tier-stale"
    redis.command("CONFIG", "SET", "min-replicas-to-write", "1")
    try:
        assert put(lv, u, b"v2").status == 201
        wait_until(lambda: metric_sum(lv.metrics(), "levee_cache_purges_waiting") >= 1, 3,
                   msg="the refused purge waits")
        for _ in range(3):
            r = get(lv, u)
            assert r.body == b"v2" and "tier-stale" not in cs(r), (cs(r), r.body)
    finally:
        redis.command("CONFIG", "SET", "min-replicas-to-write", "0")


# ---- stretch-ttl -------------------------------------------------------

STRETCH_ROUTES = {
    "fixed": {"prefix": "/store/", "cache_ttl": "1s"},
    "origin": {"prefix": "/flaky/", "cache_ttl": "origin"},
}


def stretch_change(origin, kind, u, name):
    """Changes the origin's copy without a purge; returns the new body."""
    if kind == "fixed":
        assert origin_put(origin, u, b"v2").status == 201
    else:
        set_flaky(origin, name, bump=True)
    return b"v2"


@pytest.mark.parametrize("kind", ["fixed", "origin"])
def test_stretch_ttl_keeps_a_copy_fresh_longer(levee_factory, origin, kind):
    lv = levee_factory(policy("stretch-ttl", {"r": STRETCH_ROUTES[kind]}, ttl_factor=4))
    name = "st-%s-%d" % (kind, origin.start_mark)
    u = ("/store/" if kind == "fixed" else "/flaky/") + name
    if kind == "fixed":
        assert origin_put(origin, u, b"v1").status == 201
    assert get(lv, u).body == b"v1"
    v2 = stretch_change(origin, kind, u, name)
    past_lifetime()
    force(lv)
    r = get(lv, u)  # 1.15 s old, fresh for 4 s under the tier
    assert r.body == b"v1" and cs(r) == "levee; hit; detail=tier-ttl", (cs(r), r.body)
    assert n_origin(origin, u) == 1
    assert tier_metric(lv, "stretched") == 1
    # past 4 lifetimes: stale even stretched
    time.sleep(4.1 - 1.15)
    r = get(lv, u)
    assert r.body == v2 and "tier-ttl" not in cs(r), (cs(r), r.body)
    # stored under the tier, it keeps its real lifetime: stale once cleared
    clear(lv)
    past_lifetime()
    r = get(lv, u)
    assert cs(r).startswith("levee; fwd="), cs(r)


def test_stretch_ttl_off_when_cleared(levee_factory, origin):
    lv = levee_factory(policy("stretch-ttl", {"r": STRETCH_ROUTES["fixed"]}, ttl_factor=4))
    u = "/store/st-off-%d" % origin.start_mark
    assert origin_put(origin, u, b"v1").status == 201
    assert get(lv, u).body == b"v1"
    force(lv)
    clear(lv)
    assert origin_put(origin, u, b"v2").status == 201
    past_lifetime()
    r = get(lv, u)
    assert r.body == b"v2" and cs(r).startswith("levee; fwd="), cs(r)


def test_stretch_ttl_never_outlives_a_purge(levee_factory, origin):
    lv = levee_factory(policy("stretch-ttl", {"r": STRETCH_ROUTES["fixed"]}, ttl_factor=4))
    u = "/store/st-purge-%d" % origin.start_mark
    assert put(lv, u, b"v1").status == 201
    assert get(lv, u).body == b"v1"
    past_lifetime()
    force(lv)
    assert cs(get(lv, u)) == "levee; hit; detail=tier-ttl"
    assert put(lv, u, b"v2").status == 201
    r = get(lv, u)
    assert r.body == b"v2", (cs(r), r.body)


# ---- skip-lease --------------------------------------------------------

def slow_fill(lv, u, out):
    t0 = time.monotonic()
    r = get(lv, u)
    out.append((r, time.monotonic() - t0))


def start_slow_fill(origin, lv, name, u, ms=700):
    """One request starts a fill the origin answers after <ms> ms (only that
    one: the next requests are answered at once); returns its thread."""
    set_flaky(origin, name, mode="slow", ms=ms, times=1)
    mark = origin.mark()
    out = []
    t = threading.Thread(target=slow_fill, args=(lv, u, out))
    t.start()
    origin.wait_event(lambda e: e["event"] == "request" and e["target"] == u, since=mark,
                      msg="the slow fill reached the origin")
    return t, out


def timed_get(lv, u):
    t0 = time.monotonic()
    r = get(lv, u)
    return r, time.monotonic() - t0


def test_skip_lease_does_not_wait_for_a_slow_fill_in_process(levee_factory, origin):
    # 2 s: a fill slowed by 0.7 s arrives still fresh (its Date counts)
    lv = levee_factory(policy("skip-lease", {"c": {"prefix": "/flaky/", "cache_ttl": "2s"}}))
    name = "sl-%d" % origin.start_mark
    u = "/flaky/" + name
    # control: without the tier the second miss waits for the fill
    t, out = start_slow_fill(origin, lv, name, u)
    r, took = timed_get(lv, u)
    t.join()
    assert cs(r) == "levee; fwd=miss; collapsed" and took > 0.5, (cs(r), took)
    # with the tier: no stale copy yet (a new key), so it goes upstream alone
    force(lv)
    name2 = name + "-b"
    u2 = "/flaky/" + name2
    t, out = start_slow_fill(origin, lv, name2, u2)
    r, took = timed_get(lv, u2)
    assert r.status == 200 and cs(r) == "levee; fwd=miss; detail=tier-skip-lease", cs(r)
    assert took < 0.3, took
    t.join()
    assert out[0][0].body == b"v1" and out[0][1] > 0.5
    assert n_origin(origin, u2) == 2
    assert tier_metric(lv, "no_wait") == 1
    # the leader's fill was stored, the one that skipped stored nothing
    assert cs(get(lv, u2)) == "levee; hit"
    # with a stale copy, the one that does not wait gets it at once
    set_flaky(origin, name2, bump=True)
    time.sleep(2.1)  # past the 2 s TTL
    t, out = start_slow_fill(origin, lv, name2, u2)
    r, took = timed_get(lv, u2)
    assert r.body == b"v1" and cs(r) == "levee; hit; detail=tier-stale" and took < 0.3, (cs(r), took)
    t.join()
    assert out[0][0].body == b"v2"


@needs_redis
def test_skip_lease_does_not_wait_for_another_replicas_lease(levee_factory, origin, redis):
    routes = {"c": {"prefix": "/flaky/", "cache_ttl": "60s"}}
    a = levee_factory(policy("skip-lease", routes, redis=redis))
    b = levee_factory(policy("skip-lease", routes, redis=redis))
    force(b)
    name = "sl2-%d" % origin.start_mark
    u = "/flaky/" + name
    t, out = start_slow_fill(origin, a, name, u)  # A holds the lease for 1.5 s
    r, took = timed_get(b, u)
    assert r.status == 200 and cs(r) == "levee; fwd=miss; detail=tier-skip-lease", cs(r)
    assert took < 0.3, took
    t.join()
    assert metric_sum(b.metrics(), "levee_cache_lease_waits_total") == 0
    assert metric_sum(b.metrics(), "levee_cache_stores_total") == 0  # nothing stored by B
    assert n_origin(origin, u) == 2
    # control: cleared, B waits for A's lease (and gets A's entry)
    clear(b)
    name2 = name + "-b"
    u2 = "/flaky/" + name2
    t, out = start_slow_fill(origin, a, name2, u2)
    r, took = timed_get(b, u2)
    t.join()
    assert r.body == b"v1" and cs(r) == "levee; fwd=miss; detail=l2; collapsed" and took > 0.4, (cs(r), took)
    assert metric_sum(b.metrics(), "levee_cache_lease_waits_total") == 1


# ---- no-fill-optional --------------------------------------------------

@needs_redis
def test_no_fill_optional_stores_nothing_anywhere(levee_factory, origin, redis):
    lv = levee_factory(policy("no-fill-optional", {
        "opt": {"prefix": "/echo/opt/", "cache_ttl": "60s", "priority": "optional"},
        "norm": {"prefix": "/echo/", "cache_ttl": "60s"},
    }, redis=redis))
    # stored before the tier: still served under it
    assert cs(get(lv, "/echo/opt/before")).startswith("levee; fwd=miss")
    wait_until(lambda: metric_sum(lv.metrics(), "levee_cache_l2_operations_total", result="committed") >= 1, 3,
               msg="stored in Redis")
    force(lv)
    assert cs(get(lv, "/echo/opt/before")) == "levee; hit"
    l1_before = metric_sum(lv.metrics(), "levee_cache_l1_entries")
    keys_before = sorted(redis.command("KEYS", "levee:*"))
    for _ in range(2):
        r = get(lv, "/echo/opt/during")
        assert r.status == 200 and cs(r) == "levee; fwd=miss; detail=tier-no-fill", cs(r)
    assert n_origin(origin, "/echo/opt/during") == 2
    time.sleep(0.2)  # a commit, if one were sent, would have landed
    assert metric_sum(lv.metrics(), "levee_cache_l1_entries") == l1_before
    assert sorted(redis.command("KEYS", "levee:*")) == keys_before, "no entry, no lease, no generation"
    assert tier_metric(lv, "no_fill") == 2
    # a route that is not optional is stored as usual under the same tier
    assert cs(get(lv, "/echo/norm")).startswith("levee; fwd=miss")
    assert cs(get(lv, "/echo/norm")) == "levee; hit"
    # cleared: stored again
    clear(lv)
    get(lv, "/echo/opt/during")
    assert cs(get(lv, "/echo/opt/during")) == "levee; hit"


def test_no_fill_optional_without_redis(levee_factory, origin):
    lv = levee_factory(policy("no-fill-optional", {
        "opt": {"prefix": "/echo/", "cache_ttl": "60s", "priority": "optional"}}))
    force(lv)
    for _ in range(2):
        assert cs(get(lv, "/echo/nf")) == "levee; fwd=miss; detail=tier-no-fill"
    assert metric_sum(lv.metrics(), "levee_cache_l1_entries") == 0
    assert n_origin(origin, "/echo/nf") == 2


# ---- cache-only --------------------------------------------------------

def cache_only_levee(levee_factory, redis=None):
    return levee_factory(policy("cache-only", {
        "only": {"prefix": "/store/", "cache_ttl": "1s", "stale_if_error": "60s", "tier_cache_only": "true"},
        "other": {"prefix": "/echo/", "cache_ttl": "60s"},
    }, redis=redis))


@pytest.mark.parametrize("with_redis", [False, pytest.param(True, marks=needs_redis)])
def test_cache_only_refuses_a_miss_without_asking_the_origin(levee_factory, origin, with_redis, request):
    redis = request.getfixturevalue("redis") if with_redis else None
    lv = cache_only_levee(levee_factory, redis)
    u = "/store/co-%d" % origin.start_mark
    assert origin_put(origin, u, b"v1").status == 201
    force(lv)
    mark = origin.mark()
    r = get(lv, u)
    assert r.status == 503 and r.header("X-Levee-Reason") == "tier-cache-only", (r.status, r.headers)
    assert r.header("Retry-After") is not None
    # a bypassed read (a Cookie) is refused as well
    r = get(lv, u, headers=[("Cookie", "a=1")])
    assert r.status == 503 and r.header("X-Levee-Reason") == "tier-cache-only"
    assert origin.requests(mark, path=u) == [], "the origin was never asked"
    assert tier_metric(lv, "refused") == 2
    # a route without tier_cache_only still goes upstream
    assert get(lv, "/echo/co").status == 200
    assert len(origin.requests(mark, path="/echo/co")) == 1
    # writes are not affected
    assert put(lv, u, b"v2").status == 201
    assert len(origin.requests(mark, path=u)) == 1
    # cleared: the miss goes upstream
    clear(lv)
    r = get(lv, u)
    assert r.status == 200 and r.body == b"v2"


def test_cache_only_serves_what_it_has_fresh_or_stale(levee_factory, origin):
    lv = cache_only_levee(levee_factory)
    u = "/store/co-have-%d" % origin.start_mark
    assert put(lv, u, b"v1").status == 201
    assert get(lv, u).body == b"v1"
    force(lv)
    mark = origin.mark()
    assert cs(get(lv, u)) == "levee; hit"
    past_lifetime()
    r = get(lv, u)
    assert r.status == 200 and r.body == b"v1" and cs(r) == "levee; hit; detail=tier-stale", cs(r)
    assert origin.requests(mark, path=u) == []
    # a purge: the stale copy is gone, and the miss is refused, not served old
    assert put(lv, u, b"v2").status == 201
    r = get(lv, u)
    assert r.status == 503 and r.body != b"v1"


# ---- every mode at once ------------------------------------------------

def test_every_mode_at_once_follows_the_precedence(levee_factory, origin):
    """The brief's tier: cache-only decides on its routes, no-fill-optional
    on optional ones, stretch-ttl before serve-stale elsewhere."""
    lv = levee_factory(policy("serve-stale, stretch-ttl, skip-lease, no-fill-optional, cache-only", {
        "only": {"prefix": "/store/", "cache_ttl": "1s", "stale_if_error": "60s", "tier_cache_only": "true"},
        "opt": {"prefix": "/echo/opt/", "cache_ttl": "60s", "priority": "optional"},
        "norm": {"prefix": "/flaky/", "cache_ttl": "origin"},
    }, ttl_factor=3))
    name = "all-%d" % origin.start_mark
    fl = "/flaky/" + name
    assert get(lv, fl).body == b"v1"
    set_flaky(origin, name, bump=True)
    past_lifetime()
    force(lv)
    mark = origin.mark()
    # ages are whole seconds: 1.15 s old is at most 2, fresh for 3 under the tier
    assert cs(get(lv, fl)) == "levee; hit; detail=tier-ttl"
    time.sleep(3.1 - 1.15)
    r = get(lv, fl)
    assert r.body == b"v1" and cs(r) == "levee; hit; detail=tier-stale", cs(r)  # stretched, still stale
    r = get(lv, "/store/all-%d" % origin.start_mark)
    assert r.status == 503 and r.header("X-Levee-Reason") == "tier-cache-only"
    for _ in range(2):
        assert cs(get(lv, "/echo/opt/all")) == "levee; fwd=miss; detail=tier-no-fill"
    assert len(origin.requests(mark, path=fl)) == 0
    assert len(origin.requests(mark, path="/store/all-%d" % origin.start_mark)) == 0
    assert len(origin.requests(mark, path="/echo/opt/all")) == 2
