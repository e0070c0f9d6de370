"""Targeted cache-control fields (RFC 9213): CDN-Cache-Control and
Levee-Cache-Control replace Cache-Control (and Expires) for levee's own
storing and freshness, in both directions; the first valid field of the
route's `cache_control_fields` wins, an invalid one is ignored, and the
client gets every field as the origin sent it, from a miss, an L1 hit and
an L2 hit alike.

The origin's /targeted/<name> answers "n<k>" for its k-th request with the
query pairs as response fields, so the body tells whether an answer came
from the cache and the test chooses every field.
"""
import urllib.parse
import uuid

import pytest

from harness import cache_status_core, metric_sum, once, wait_until
from redis_server import REDIS

STORED = "levee; fwd=miss; stored"
HIT = "levee; hit"


def route(**keys):
    keys.setdefault("prefix", "/")
    keys.setdefault("cache_ttl", "origin")
    return {'route "t"': keys}


def url(*fields):
    """A fresh /targeted/ path answering with <fields>, (name, value) pairs."""
    return "/targeted/%s?%s" % (uuid.uuid4().hex[:12], urllib.parse.urlencode(fields))


def get(lv, target):
    return once(lv.port, "GET", target)


def twice(lv, target):
    return get(lv, target), get(lv, target)


def assert_stored(lv, target):
    a, b = twice(lv, target)
    assert (cache_status_core(a.header("Cache-Status")), cache_status_core(b.header("Cache-Status"))) == (STORED, HIT)
    assert a.body == b.body == b"n1"
    return a, b


def assert_not_stored(lv, target, why):
    a, b = twice(lv, target)
    want = "levee; fwd=miss; detail=%s" % why
    assert (cache_status_core(a.header("Cache-Status")), cache_status_core(b.header("Cache-Status"))) == (want, want)
    assert (a.body, b.body) == (b"n1", b"n2")
    return a, b


def test_cdn_cache_control_stores_what_cache_control_forbids(levee_factory, origin):
    lv = levee_factory(route())
    u = url(("Cache-Control", "no-store"), ("CDN-Cache-Control", "max-age=60"))
    a, b = assert_stored(lv, u)
    # the client sees both fields untouched, from the miss and from the hit
    for r in (a, b):
        assert r.header_all("Cache-Control") == ["no-store"]
        assert r.header_all("CDN-Cache-Control") == ["max-age=60"]


def test_cdn_cache_control_forbids_what_cache_control_allows(levee_factory, origin):
    lv = levee_factory(route())
    u = url(("Cache-Control", "public, max-age=60"), ("CDN-Cache-Control", "no-store"))
    a, _ = assert_not_stored(lv, u, "no-store")
    assert a.header("Cache-Control") == "public, max-age=60"
    assert_not_stored(lv, url(("Cache-Control", "max-age=60"), ("CDN-Cache-Control", "private")), "private")


def test_levee_cache_control_beats_cdn_cache_control(levee_factory, origin):
    lv = levee_factory(route())
    assert_stored(lv, url(("Cache-Control", "no-store"), ("CDN-Cache-Control", "no-store"),
                          ("Levee-Cache-Control", "max-age=60")))
    a, _ = assert_not_stored(lv, url(("Cache-Control", "max-age=60"), ("CDN-Cache-Control", "max-age=60"),
                                     ("Levee-Cache-Control", "no-store")), "no-store")
    assert a.header("Levee-Cache-Control") == "no-store"  # forwarded, like every targeted field


@pytest.mark.parametrize("bad", [
    "max-age=60,",       # trailing comma
    "Max-Age=60",        # keys are lowercase
    "max-age=60;",       # a parameter without a key
    "private=a b",       # not one item
    "no-cache=\"a",      # unterminated String
    "",                  # empty: ignored like an invalid one
])
def test_an_invalid_targeted_field_is_ignored(levee_factory, origin, bad):
    lv = levee_factory(route())
    # Cache-Control rules: with max-age it is stored, with no-store it is not
    assert_stored(lv, url(("Cache-Control", "max-age=60"), ("CDN-Cache-Control", bad)))
    assert_not_stored(lv, url(("Cache-Control", "no-store"), ("CDN-Cache-Control", bad)), "no-store")
    # an invalid Levee-Cache-Control hands over to a valid CDN-Cache-Control
    assert_stored(lv, url(("Cache-Control", "no-store"), ("Levee-Cache-Control", bad),
                          ("CDN-Cache-Control", "max-age=60")))


def test_a_valid_field_replaces_cache_control_even_when_it_grants_nothing(levee_factory, origin):
    lv = levee_factory(route())
    # "60" is a String, not delta-seconds: the directive is ignored, and the
    # valid field still stands for Cache-Control, so nothing allows reuse
    assert_not_stored(lv, url(("Cache-Control", "max-age=60"), ("CDN-Cache-Control", 'max-age="60"')),
                      "no-freshness")
    # Expires is replaced too (RFC 9213 §2.1)
    far = "Sun, 06 Nov 2094 08:49:37 GMT"
    assert_not_stored(lv, url(("Expires", far), ("CDN-Cache-Control", "must-revalidate")), "no-freshness")
    assert_stored(lv, url(("Expires", far), ("CDN-Cache-Control", "max-age=60, must-revalidate;x=1")))


def test_the_targeted_lifetime_is_the_one_kept(levee_factory, origin):
    lv = levee_factory(route())
    u = url(("Cache-Control", "max-age=3600"), ("CDN-Cache-Control", "max-age=1"))
    assert_stored(lv, u)
    wait_until(lambda: cache_status_core(get(lv, u).header("Cache-Status")) != HIT, 5, msg="the 1 s lifetime ends")
    # and the other way: a short Cache-Control does not cut a long targeted one
    v = url(("Cache-Control", "max-age=1"), ("CDN-Cache-Control", "max-age=3600"))
    a, b = assert_stored(lv, v)
    assert int(b.header("Age", "0")) <= 1
    wait_until(lambda: int(get(lv, v).header("Age", "0")) >= 2, 5, msg="the entry ages past 1 s")
    assert cache_status_core(get(lv, v).header("Cache-Status")) == HIT


def test_the_route_key_names_the_fields(levee_factory, origin):
    lv = levee_factory({'route "acme"': {"prefix": "/targeted/acme", "cache_ttl": "origin",
                                         "cache_control_fields": "Acme-Cache-Control"},
                        'route "off"': {"prefix": "/targeted/off", "cache_ttl": "origin",
                                        "cache_control_fields": "none"},
                        'route "t"': {"prefix": "/", "cache_ttl": "origin"}})

    def at(prefix, *fields):
        return "/targeted/%s-%s" % (prefix, url(*fields)[len("/targeted/"):])

    # a field off the list changes nothing: CDN-Cache-Control is not on acme's
    assert_not_stored(lv, at("acme", ("Cache-Control", "no-store"), ("CDN-Cache-Control", "max-age=60")),
                      "no-store")
    assert_stored(lv, at("acme", ("Cache-Control", "no-store"), ("Acme-Cache-Control", "max-age=60")))
    # none: Cache-Control alone, whatever targeted fields say
    assert_not_stored(lv, at("off", ("Cache-Control", "no-store"), ("Levee-Cache-Control", "max-age=60")),
                      "no-store")
    assert_stored(lv, at("off", ("Cache-Control", "max-age=60"), ("CDN-Cache-Control", "no-store")))
    # the default list on the other route
    assert_stored(lv, at("dflt", ("Cache-Control", "no-store"), ("CDN-Cache-Control", "max-age=60")))


def test_a_fixed_ttl_route_obeys_the_targeted_safety_rules(levee_factory, origin):
    lv = levee_factory(route(cache_ttl="60s"))
    assert_stored(lv, url(("Cache-Control", "no-store"), ("CDN-Cache-Control", "max-age=5")))
    assert_not_stored(lv, url(("CDN-Cache-Control", "no-store")), "no-store")


@pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")
def test_targeted_fields_through_redis(levee_factory, origin, redis):
    pol = {"redis": {"address": "127.0.0.1:%d" % redis.port, "lease_wait": "3s"}}
    pol.update(route())
    a, b = levee_factory(pol), levee_factory(pol)
    u = url(("Cache-Control", "no-store"), ("CDN-Cache-Control", "max-age=60"))
    first = get(a, u)
    assert cache_status_core(first.header("Cache-Status")) == STORED
    wait_until(lambda: metric_sum(a.metrics(), "levee_cache_l2_operations_total", result="committed") == 1, 3,
               msg="A committed the entry to Redis")
    # the other replica finds it in Redis, with the fields as the origin sent them
    for want in ("levee; hit; detail=l2", HIT):
        r = get(b, u)
        assert cache_status_core(r.header("Cache-Status")) == want and r.body == b"n1"
        assert r.header_all("Cache-Control") == ["no-store"]
        assert r.header_all("CDN-Cache-Control") == ["max-age=60"]
    # and what the targeted field forbids reaches Redis from neither replica
    v = url(("Cache-Control", "max-age=60"), ("CDN-Cache-Control", "no-store"))
    assert cache_status_core(get(a, v).header("Cache-Status")) == "levee; fwd=miss; detail=no-store"
    assert cache_status_core(get(b, v).header("Cache-Status")) == "levee; fwd=miss; detail=no-store"
    assert get(b, v).body == b"n3"
