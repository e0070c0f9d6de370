"""Revalidation and the freshness rules of RFC 9111 against the real binary:
a 304 updates the stored response (§3.2, §4.3.4) and freshness is computed
again from the merged fields, in the L1, through Redis and in a background
stale-while-revalidate refresh; statuses with explicit freshness (§3,
cache_any_status); If-Modified-Since against the stored Date (§4.3.2);
must-understand (§5.2.2.3).

The origin's /rfc304/<name> answers 200 with ETag "v1" and the h.NAME=VALUE
fields of its query, and a 304 with the r.NAME=VALUE fields to a request
whose If-None-Match names that ETag. Entries start with max-age=0, so the
next request revalidates at once: no test waits for a lifetime to pass."""
import time
import urllib.parse
from email.utils import formatdate

import pytest

from harness import cache_status_core, hget, metric_sum, once, wait_until
from redis_server import REDIS

ORIGIN_ROUTE = {'route "c"': {"prefix": "/", "cache_ttl": "origin"}}


@pytest.fixture(params=["l1", "redis"])
def lv_l1_redis(request, levee_factory):
    """A levee on ORIGIN_ROUTE with the L1 alone, then with Redis behind it;
    `.kind` says which."""
    pol = dict(ORIGIN_ROUTE)
    if request.param == "redis":
        if REDIS is None:
            pytest.skip("redis-server is not installed")
        pol["redis"] = {"address": "127.0.0.1:%d" % request.getfixturevalue("redis").port}
    lv = levee_factory(pol)
    lv.kind = request.param
    return lv


def get(lv, target, headers=()):
    return once(lv.port, "GET", target, headers)


def url(name, **fields):
    """/rfc304/<name>?... ; fields: h_X_Y for the 200's X-Y, r_X_Y for the
    304's, and the endpoint's own parameters (etag, lm, r304etag)."""
    q = []
    for k, v in fields.items():
        if k[:2] in ("h_", "r_"):
            q.append((k[0] + "." + k[2:].replace("_", "-"), v))
        else:
            q.append((k, v))
    return "/rfc304/%s?%s" % (name, urllib.parse.urlencode(q))


def cs(r):
    return cache_status_core(r.header("Cache-Status"))


def origin_hits(origin, target):
    return origin.requests(origin.start_mark, path=target.split("?")[0])


def test_304_max_age_keeps_the_entry_fresh_for_the_new_lifetime(levee_factory, origin):
    lv = levee_factory(ORIGIN_ROUTE)
    t = url("maxage-%d" % origin.start_mark, h_Cache_Control="max-age=0", r_Cache_Control="max-age=3600")
    r = get(lv, t)
    assert r.status == 200 and cs(r) == "levee; fwd=miss; stored"
    r = get(lv, t)
    assert r.status == 200 and r.body.startswith(b"body-") and cs(r) == "levee; fwd=stale; stored"
    assert r.header("Cache-Control") == "max-age=3600"  # the client sees the merged fields too
    reqs = origin_hits(origin, t)
    assert len(reqs) == 2 and hget(reqs[1]["headers"], "If-None-Match") == '"v1"'
    for _ in range(3):
        r = get(lv, t)
        assert r.status == 200 and cs(r) == "levee; hit" and r.body.startswith(b"body-")
        assert r.header("Cache-Control") == "max-age=3600"
    assert len(origin_hits(origin, t)) == 2  # fresh for an hour now: the origin is not asked
    assert metric_sum(lv.metrics(), "levee_cache_revalidated_total") == 1


def test_a_head_revalidates_the_stored_get(levee_factory, origin):
    lv = levee_factory(ORIGIN_ROUTE)
    t = url("head-%d" % origin.start_mark, h_Cache_Control="max-age=0", r_Cache_Control="max-age=600")
    get(lv, t)
    r = once(lv.port, "HEAD", t)
    assert r.status == 200 and r.body == b"" and cs(r) == "levee; fwd=stale; stored"
    r = get(lv, t)
    assert cs(r) == "levee; hit" and r.body.startswith(b"body-")
    assert len(origin_hits(origin, t)) == 2


def test_304_replaces_custom_fields_and_content_type(levee_factory, origin):
    lv = levee_factory(ORIGIN_ROUTE)
    t = url("fields-%d" % origin.start_mark, h_Cache_Control="max-age=0", h_X_Custom="old", h_X_Kept="same",
            r_Cache_Control="max-age=600", r_X_Custom="new", r_Content_Type="text/html", r_X_Added="yes",
            r_Keep_Alive="timeout=5")
    assert get(lv, t).header("Content-Type") == "text/plain"
    assert cs(get(lv, t)) == "levee; fwd=stale; stored"
    r = get(lv, t)
    assert cs(r) == "levee; hit"
    assert r.header_all("X-Custom") == ["new"]
    assert r.header_all("Content-Type") == ["text/html"]
    assert r.header("X-Kept") == "same" and r.header("X-Added") == "yes"
    assert not r.has("Keep-Alive")  # hop-by-hop: never merged (§3.1)
    assert r.header_all("ETag") == ['"v1"']
    assert r.body == ("body-fields-%d" % origin.start_mark).encode()
    assert r.header("Content-Length") == str(len(r.body))


def test_304_with_no_store_is_not_served_as_fresh(levee_factory, origin):
    lv = levee_factory(ORIGIN_ROUTE)
    t = url("nostore-%d" % origin.start_mark, h_Cache_Control="max-age=0", r_Cache_Control="no-store")
    assert cs(get(lv, t)) == "levee; fwd=miss; stored"
    r = get(lv, t)
    # the client gets the merged answer, which says no-store; nothing is kept
    assert r.status == 200 and r.body.startswith(b"body-")
    assert cs(r) == "levee; fwd=stale; detail=no-store"
    assert r.header("Cache-Control") == "no-store"
    r = get(lv, t)
    assert not cs(r).startswith("levee; hit")
    reqs = origin_hits(origin, t)
    assert len(reqs) == 3
    assert hget(reqs[2]["headers"], "If-None-Match") is None  # the old copy was dropped: a full fetch


def test_304_for_another_representation_is_asked_again_without_validators(lv_l1_redis, origin):
    """RFC 9111 §4.3.4: a 304 to levee's own revalidation whose ETag is
    another representation's selects no stored copy, which then can neither
    be updated nor answer unvalidated: levee asks again unconditionally, and
    the full answer replaces the copy and is the client's."""
    lv = lv_l1_redis
    t = url("mismatch-%d-%s" % (origin.start_mark, lv.kind), h_Cache_Control="max-age=0", h_X_Custom="old",
            r304etag="v2", r_Cache_Control="max-age=3600", r_X_Custom="new")
    first = get(lv, t)
    r = get(lv, t)
    assert r.status == 200 and cs(r) == "levee; fwd=stale; stored", cs(r)
    assert r.body == first.body and r.header("X-Custom") == "old"  # the 200's fields, not the 304's
    assert r.header("Cache-Control") == "max-age=0"
    reqs = origin_hits(origin, t)
    assert len(reqs) == 3, reqs
    assert hget(reqs[1]["headers"], "If-None-Match") == '"v1"'
    assert hget(reqs[2]["headers"], "If-None-Match") is None  # asked again, plainly
    assert hget(reqs[2]["headers"], "If-Modified-Since") is None
    m = lv.metrics()
    assert metric_sum(m, "levee_cache_revalidated_total") == 0
    assert metric_sum(m, "levee_cache_revalidation_mismatches_total") == 1
    # a HEAD's revalidation goes the same way, and gets no body (nor stores
    # one: the HEAD itself is what is asked again)
    r = once(lv.port, "HEAD", t)
    assert r.status == 200 and r.body == b"" and cs(r) == "levee; fwd=stale", cs(r)
    assert hget(origin_hits(origin, t)[-1]["headers"], "If-None-Match") is None


def test_a_background_refresh_whose_304_selects_nothing_refetches(levee_factory, origin):
    lv = levee_factory(ORIGIN_ROUTE)
    t = url("swrmm-%d" % origin.start_mark, h_Cache_Control="max-age=1, stale-while-revalidate=60",
            r304etag="v2", r_Cache_Control="max-age=3600")
    get(lv, t)
    wait_until(lambda: cs(get(lv, t)).startswith("levee; hit; detail=stale"), 5, interval=0.2,
               msg="served stale while revalidating")
    wait_until(lambda: len(origin_hits(origin, t)) >= 3, 5, msg="the refresh asked again without validators")
    reqs = origin_hits(origin, t)
    assert hget(reqs[1]["headers"], "If-None-Match") == '"v1"'
    assert hget(reqs[2]["headers"], "If-None-Match") is None
    wait_until(lambda: metric_sum(lv.metrics(), "levee_cache_revalidation_mismatches_total") == 1, 5)


def test_a_background_refresh_carries_the_stored_validators_not_the_clients(levee_factory, origin):
    """The client of a stale-while-revalidate answer has its answer: the
    refresh is levee's own, for the whole entry, so it leaves the client's
    conditionals (and Range) out and sends the stored validators, and the
    origin's 304 refreshes the copy."""
    lv = levee_factory(ORIGIN_ROUTE)
    t = url("swrcond-%d" % origin.start_mark, h_Cache_Control="max-age=1, stale-while-revalidate=60",
            r_Cache_Control="max-age=600", r_X_Custom="new")
    get(lv, t)
    hdrs = [("If-None-Match", '"elsewhere"'), ("If-Modified-Since", "Mon, 01 Jan 2024 00:00:00 GMT")]
    r = wait_until(lambda: (lambda x: x if cs(x) == "levee; hit; detail=stale" else None)(get(lv, t, hdrs)), 5,
                   interval=0.2, msg="a stale answer while revalidating")
    assert r.status == 200  # the client's own If-None-Match names another tag
    wait_until(lambda: len(origin_hits(origin, t)) >= 2, 5, msg="the refresh")
    refresh = origin_hits(origin, t)[1]
    assert hget(refresh["headers"], "If-None-Match") == '"v1"', refresh["headers"]
    assert hget(refresh["headers"], "If-Modified-Since") is None, refresh["headers"]
    wait_until(lambda: cs(get(lv, t)) == "levee; hit", 5, msg="the copy refreshed by the 304")
    assert get(lv, t).header("X-Custom") == "new"
    assert len(origin_hits(origin, t)) == 2


def test_a_304_to_the_clients_conditional_updates_the_stale_copy(levee_factory, origin):
    lv = levee_factory(ORIGIN_ROUTE)
    t = url("clientrv-%d" % origin.start_mark, h_Cache_Control="max-age=0", h_X_Custom="old",
            r_Cache_Control="max-age=600", r_X_Custom="new")
    get(lv, t)
    r = get(lv, t, [("If-None-Match", '"v1"')])  # stale: the client's conditional goes upstream
    assert r.status == 304 and cs(r) == "levee; fwd=stale; stored"
    r = get(lv, t)
    assert cs(r) == "levee; hit" and r.header("X-Custom") == "new" and r.body.startswith(b"body-")
    assert len(origin_hits(origin, t)) == 2
    # one that names another representation leaves the copy alone
    t = url("clientmm-%d" % origin.start_mark, h_Cache_Control="max-age=0", r304etag="v2",
            r_Cache_Control="max-age=600")
    get(lv, t)
    r = get(lv, t, [("If-None-Match", '"v1"')])
    assert r.status == 304 and cs(r) == "levee; fwd=stale; detail=validator-mismatch"
    # levee's own revalidation then gets the same 304, and asks again plainly
    assert cs(get(lv, t)) == "levee; fwd=stale; stored"
    assert hget(origin_hits(origin, t)[-1]["headers"], "If-None-Match") is None


def test_a_validator_less_304_to_a_clients_other_date_leaves_the_copy(levee_factory, origin):
    """RFC 9111 §4.3.4: a 304 with no validator selects a stored response only
    when that one has none either. A client's If-Modified-Since may come from
    another copy (another replica's newer one): its 304 says nothing of this
    one, which must not be made fresh by it."""
    lv = levee_factory(ORIGIN_ROUTE)
    t1, t2 = "Mon, 01 Jan 2024 00:00:00 GMT", "Tue, 02 Jan 2024 00:00:00 GMT"
    t = url("imsother-%d" % origin.start_mark, etag="", lm=t1, imsany="1", r304etag="",
            h_Cache_Control="max-age=0", r_Cache_Control="max-age=600")
    get(lv, t)  # stored with Last-Modified T1, stale at once
    r = get(lv, t, [("If-Modified-Since", t2)])
    assert r.status == 304 and cs(r) == "levee; fwd=stale; detail=validator-mismatch", cs(r)
    before = len(origin_hits(origin, t))
    r = get(lv, t)  # still stale: levee revalidates with its own T1, and that 304 selects it
    assert r.status == 200 and cs(r) == "levee; fwd=stale; stored", cs(r)
    assert len(origin_hits(origin, t)) == before + 1
    assert cs(get(lv, t)) == "levee; hit"


def test_304_by_last_modified_alone(levee_factory, origin):
    lv = levee_factory(ORIGIN_ROUTE)
    lm = "Tue, 01 Nov 1994 08:49:37 GMT"
    t = url("lm-%d" % origin.start_mark, etag="", lm=lm, h_Cache_Control="max-age=0", r_Cache_Control="max-age=600",
            r304etag="")
    get(lv, t)
    r = get(lv, t)
    assert cs(r) == "levee; fwd=stale; stored"
    reqs = origin_hits(origin, t)
    assert hget(reqs[1]["headers"], "If-Modified-Since") == lm
    assert cs(get(lv, t)) == "levee; hit"


def test_swr_background_refresh_merges_the_304(levee_factory, origin):
    lv = levee_factory({'route "c"': {"prefix": "/", "cache_ttl": "origin"}})
    t = url("swr-%d" % origin.start_mark, h_Cache_Control="max-age=0, stale-while-revalidate=30", h_X_Custom="old",
            r_Cache_Control="max-age=3600", r_X_Custom="new")
    assert cs(get(lv, t)) == "levee; fwd=miss; stored"
    r = get(lv, t)
    assert cs(r) == "levee; hit; detail=stale" and r.header("X-Custom") == "old"
    wait_until(lambda: len(origin_hits(origin, t)) >= 2, 5, msg="the background refresh reached the origin")
    assert hget(origin_hits(origin, t)[1]["headers"], "If-None-Match") == '"v1"'
    r = wait_until(lambda: (lambda x: x if x.header("X-Custom") == "new" else None)(get(lv, t)), 5,
                   msg="the background 304 was merged")
    assert cs(r) == "levee; hit" and r.header("Cache-Control") == "max-age=3600"
    assert r.body.startswith(b"body-")
    assert len(origin_hits(origin, t)) == 2


def replicas(levee_factory, redis):
    """Two levees sharing one Redis, on an origin-mode route."""
    pol = {"redis": {"address": "127.0.0.1:%d" % redis.port, "lease_wait": "3s"},
           'route "c"': {"prefix": "/", "cache_ttl": "origin"}}
    return levee_factory(pol), levee_factory(pol)


@pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")
def test_304_refresh_through_redis_reaches_every_replica(levee_factory, origin, redis):
    a, b = replicas(levee_factory, redis)
    t = url("l2-%d" % origin.start_mark, h_Cache_Control="max-age=0", h_X_Custom="old",
            r_Cache_Control="max-age=3600", r_X_Custom="new")
    assert cs(get(a, t)) == "levee; fwd=miss; stored"
    a.wait_committed()
    # b has nothing in its L1: the stale copy comes from Redis and is
    # revalidated; the merged entry goes to b's L1 and back to Redis
    r = get(b, t)
    assert cs(r) == "levee; fwd=stale; stored" and r.header("X-Custom") == "new"
    assert hget(origin_hits(origin, t)[1]["headers"], "If-None-Match") == '"v1"'
    assert cs(get(b, t)) == "levee; hit"
    # a's own L1 copy is stale; Redis has the refreshed one
    r = get(a, t)
    assert cs(r) == "levee; hit; detail=l2"
    assert r.header("X-Custom") == "new" and r.header("Cache-Control") == "max-age=3600"
    assert cs(get(a, t)) == "levee; hit"
    assert len(origin_hits(origin, t)) == 2


@pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")
def test_304_no_store_through_redis(levee_factory, origin, redis):
    a, b = replicas(levee_factory, redis)
    t = url("l2ns-%d" % origin.start_mark, h_Cache_Control="max-age=0", r_Cache_Control="no-store")
    get(a, t)
    a.wait_committed()
    r = get(b, t)
    assert cs(r) == "levee; fwd=stale; detail=no-store"
    assert not cs(get(b, t)).startswith("levee; hit")
    assert not cs(get(a, t)).startswith("levee; hit")


# ---- statuses with explicit freshness (§3) ---------------------------------

@pytest.mark.parametrize("code", [418, 500])
def test_explicit_freshness_status_stored_only_with_the_opt_in(levee_factory, origin, code):
    plain = levee_factory(ORIGIN_ROUTE)
    opted = levee_factory({'route "c"': {"prefix": "/", "cache_ttl": "origin", "cache_any_status": "on"}})
    fixed = levee_factory({'route "c"': {"prefix": "/", "cache_ttl": "60s", "cache_any_status": "on"}})
    t = "/status/%d?h.Cache-Control=max-age%%3D60&n=%d" % (code, origin.start_mark)
    for lv in (plain, fixed):
        assert get(lv, t).status == code
        r = get(lv, t)
        assert r.status == code and not cs(r).startswith("levee; hit")
    r = get(opted, t)
    assert r.status == code and cs(r) == "levee; fwd=miss; stored"
    r = get(opted, t)
    assert r.status == code and cs(r) == "levee; hit" and r.body == b"status %d\n" % code
    # no freshness from the origin: not stored even with the opt-in, and a
    # passing error never makes the URL hit-for-miss
    t2 = "/status/%d?n=%d" % (code, origin.start_mark)
    assert cs(get(opted, t2)) == "levee; fwd=miss; detail=no-freshness"
    get(opted, t2)
    assert metric_sum(opted.metrics(), "levee_cache_pass_total") == (0 if code >= 500 else 1)


def test_a_501_is_cacheable_by_default_on_an_origin_route(levee_factory, origin):
    """RFC 9110 §15.1 makes 501 cacheable by default: an origin-mode route
    stores it with explicit or heuristic freshness; a fixed TTL never."""
    plain = levee_factory(ORIGIN_ROUTE)
    fixed = levee_factory({'route "c"': {"prefix": "/", "cache_ttl": "60s"}})
    lm = formatdate(time.time() - 5 * 86400, usegmt=True)
    for t in ("/status/501?h.Cache-Control=max-age%%3D60&n=%d" % origin.start_mark,
              "/status/501?h.Last-Modified=%s&n=%d" % (urllib.parse.quote(lm), origin.start_mark)):
        r = get(plain, t)
        assert r.status == 501 and cs(r) == "levee; fwd=miss; stored", (t, cs(r))
        assert cs(get(plain, t)) == "levee; hit"
        get(fixed, t)
        r = get(fixed, t)
        assert r.status == 501 and not cs(r).startswith("levee; hit"), (t, cs(r))


def test_a_304_to_the_clients_own_conditional_is_not_hit_for_miss(levee_factory, origin):
    lv = levee_factory(ORIGIN_ROUTE)
    t = url("client-%d" % origin.start_mark, h_Cache_Control="max-age=60", r_Cache_Control="max-age=60")
    r = get(lv, t, [("If-None-Match", '"v1"')])  # a miss: the client's conditional goes upstream
    assert r.status == 304 and cs(r) == "levee; fwd=miss; detail=status"
    get(lv, t, [("If-None-Match", '"v1"')])
    assert metric_sum(lv.metrics(), "levee_cache_pass_total") == 0
    assert cs(get(lv, t)) == "levee; fwd=miss; stored"


# ---- If-Modified-Since against the stored Date (§4.3.2) --------------------

def test_if_modified_since_against_the_stored_date(levee_factory, origin):
    lv = levee_factory(ORIGIN_ROUTE)
    now = int(time.time()) - 5
    date, later, earlier = (formatdate(x, usegmt=True) for x in (now, now + 3600, now - 1))
    t = "/status/200?h.Cache-Control=max-age%%3D600&h.Date=%s&n=%d" % (urllib.parse.quote(date), origin.start_mark)
    assert cs(get(lv, t)) == "levee; fwd=miss; stored"
    for ims, want in [(date, 304), (later, 304), (earlier, 200), ("not a date", 200)]:
        r = get(lv, t, [("If-Modified-Since", ims)])
        assert (r.status, cs(r)) == (want, "levee; hit"), ims
    # no Date from the origin: the time levee received it stands in
    t = "/status/200?h.Cache-Control=max-age%%3D600&n=%d-nodate" % origin.start_mark
    get(lv, t)
    assert get(lv, t, [("If-Modified-Since", "Fri, 01 Jan 2100 00:00:00 GMT")]).status == 304
    assert get(lv, t, [("If-Modified-Since", "Thu, 01 Jan 1998 00:00:00 GMT")]).status == 200
    assert len(origin.requests(origin.start_mark, path="/status/200")) == 2


# ---- must-understand (§5.2.2.3) --------------------------------------------

def test_must_understand(levee_factory, origin):
    lv = levee_factory({'route "c"': {"prefix": "/", "cache_ttl": "origin", "cache_any_status": "on"}})
    cc = urllib.parse.quote("must-understand, no-store, max-age=60")
    t = "/status/200?h.Cache-Control=%s&n=%d" % (cc, origin.start_mark)
    assert cs(get(lv, t)) == "levee; fwd=miss; stored"  # a status levee understands: no-store gives way
    assert cs(get(lv, t)) == "levee; hit"
    t = "/status/299?h.Cache-Control=%s&n=%d" % (urllib.parse.quote("must-understand, max-age=60"), origin.start_mark)
    assert cs(get(lv, t)) == "levee; fwd=miss; detail=status"  # one it does not: never stored
    assert not cs(get(lv, t)).startswith("levee; hit")
    # without must-understand, no-store still wins
    t = "/status/200?h.Cache-Control=%s&n=%d" % (urllib.parse.quote("no-store, max-age=60"), origin.start_mark)
    assert cs(get(lv, t)) == "levee; fwd=miss; detail=no-store"
