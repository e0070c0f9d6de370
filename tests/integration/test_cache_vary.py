"""Vary (RFC 9111 §4.1): requests whose selecting header values differ only
in what the field's syntax says means nothing (whitespace, the case of
case-insensitive tokens, the order of Accept-Encoding's codings) share one
stored variant; values that differ otherwise do not; an unknown field is
only trimmed around its members. A URL holds at most CACHE_VARIANTS (16)
variants besides the copy of the latest: the 17th replaces one of them,
and the L1's entry count stays bounded however many its clients send.

The origin's /vary2/<name>?vary=F answers with Vary: F, a body naming the
values it saw and a count of its requests for <name>."""
import json
import threading
import urllib.parse

import pytest

from harness import cache_route, response_cache_status, HttpConn, metric_sum, once, wait_until
from redis_server import REDIS

VARIANTS = 16


route = cache_route
cs = response_cache_status


def get(lv, target, headers=(), method="GET"):
    return once(lv.port, method, target, headers)


def origin_count(origin, path):
    return len(origin.requests(origin.start_mark, path=path))


def l1_entries(lv):
    return metric_sum(lv.metrics(), "levee_cache_l1_entries")


@pytest.mark.parametrize("field,first,same,other", [
    ("Accept-Encoding", "gzip, br", ["br,gzip", "BR , GZip", "br,,gzip", "gzip,\tbr"], ["gzip", "br, gzip, zstd"]),
    ("Accept-Encoding", "gzip;q=1.0, identity; q=0", ["identity;q=0,gzip;q=1.0"], ["identity;q=0,gzip;q=0.9"]),
    ("Accept-Language", "en-US, fr;q=0.5", ["EN-us,FR;Q=0.5", "en-us , fr ; q=0.5"], ["fr;q=0.5, en-US"]),
    ("Accept", "Text/HTML, application/json;q=0.9", ["text/html,APPLICATION/JSON;q=0.9"],
     ["application/json;q=0.9, text/html", "text/html;level=1, application/json;q=0.9"]),
    ("X-Thing", "a, b", ["a,b", " a ,  b "], ["b, a", "A, b", "a,  b,"]),
])
def test_normalised_values_share_a_variant(levee_factory, origin, field, first, same, other):
    lv = levee_factory(route())
    path = "/vary2/" + field.lower()
    target = path + "?vary=" + field
    a = get(lv, target, [(field, first)])
    assert cs(a) == "levee; fwd=miss; stored"
    for v in same:
        r = get(lv, target, [(field, v)])
        assert cs(r) == "levee; hit", v
        assert r.body == a.body, v  # the very same origin answer
    assert origin_count(origin, path) == 1
    for i, v in enumerate(other):
        r = get(lv, target, [(field, v)])
        assert cs(r) == "levee; fwd=miss; stored", v
        assert json.loads(r.body)["seen"][field] == [v]
        assert origin_count(origin, path) == 2 + i
    # each variant still answers its own requests
    assert get(lv, target, [(field, same[0])]).body == a.body


def test_absent_and_empty_are_different_variants(levee_factory, origin):
    lv = levee_factory(route())
    target = "/vary2/absent?vary=Accept-Encoding"
    a = get(lv, target)
    b = get(lv, target, [("Accept-Encoding", "")])
    assert cs(a) == cs(b) == "levee; fwd=miss; stored"
    assert cs(get(lv, target)) == "levee; hit"
    assert cs(get(lv, target, [("Accept-Encoding", " ")])) == "levee; hit"
    assert origin_count(origin, "/vary2/absent") == 2


def test_variants_per_url_are_bounded(levee_factory, origin):
    lv = levee_factory(route())
    target = "/vary2/bound?vary=X-V"
    values = ["v%02d" % i for i in range(VARIANTS)]
    for v in values:
        assert cs(get(lv, target, [("X-V", v)])) == "levee; fwd=miss; stored"
    # every slot taken, plus the latest under the URL's own key
    assert l1_entries(lv) == VARIANTS + 1
    # HEAD looks up without storing anything
    for v in values:
        assert cs(get(lv, target, [("X-V", v)], method="HEAD")) == "levee; hit", v
    # one more: it replaces the variant in its home slot, nothing more
    assert cs(get(lv, target, [("X-V", "extra")])) == "levee; fwd=miss; stored"
    assert l1_entries(lv) == VARIANTS + 1
    hits = [cs(get(lv, target, [("X-V", v)], method="HEAD")) == "levee; hit" for v in values]
    assert hits.count(False) == 1, hits
    assert cs(get(lv, target, [("X-V", "extra")], method="HEAD")) == "levee; hit"
    # a client sending a new value each time never grows the URL past the bound
    for i in range(3 * VARIANTS):
        assert cs(get(lv, target, [("X-V", "flood%d" % i)])) == "levee; fwd=miss; stored"
    assert l1_entries(lv) == VARIANTS + 1
    # and a purge of the URL takes every variant with it
    assert get(lv, "/vary2/bound?vary=X-V", method="PUT").status < 500
    assert l1_entries(lv) == 0


@pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")
def test_normalised_variant_from_redis(levee_factory, origin, redis):
    pol = {"redis": {"address": "127.0.0.1:%d" % redis.port}}
    pol.update(route())
    a, b = levee_factory(pol), levee_factory(pol)
    a.wait_redis_ready()
    b.wait_redis_ready()
    target = "/vary2/l2?vary=Accept-Encoding"
    first = get(a, target, [("Accept-Encoding", "gzip, br")])
    assert cs(first) == "levee; fwd=miss; stored"
    a.wait_committed()
    r = get(b, target, [("Accept-Encoding", "BR,gzip")])
    assert cs(r) == "levee; hit; detail=l2" and r.body == first.body
    r = get(b, target, [("Accept-Encoding", "gzip")])  # another variant: a miss, never a wrong answer
    assert cs(r) != "levee; hit; detail=l2" and json.loads(r.body)["seen"]["Accept-Encoding"] == ["gzip"]
    assert origin_count(origin, "/vary2/l2") == 2


@pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")
def test_a_variant_that_raced_a_purge_is_forgotten(levee_factory, origin, redis):
    pol = {"redis": {"address": "127.0.0.1:%d" % redis.port, "lease_wait": "3s"}}
    pol.update(route())
    a, b = levee_factory(pol), levee_factory(pol)
    a.wait_redis_ready()
    b.wait_redis_ready()
    u = "/slow?head_ms=800&n=7&h.Vary=X-V"
    done = []
    t = threading.Thread(target=lambda: done.append(get(a, u, [("X-V", "one")])))
    t.start()
    origin.wait_event(lambda e: e.get("event") == "request" and e["target"] == u, origin.start_mark)
    c = HttpConn(b.admin_port)
    try:
        assert c.request("POST", "/purge?url=" + urllib.parse.quote(u, safe="")).status == 200
    finally:
        c.close()
    t.join()
    assert done[0].status == 200
    wait_until(lambda: metric_sum(a.metrics(), "levee_cache_l2_operations_total", result="commit_refused") == 1, 3,
               msg="A's commit refused: a purge landed during its fill")
    # another variant puts the URL back; the one that raced the purge must
    # not come back with it from its variant slot
    assert cs(get(a, u, [("X-V", "two")])) == "levee; fwd=miss; stored"
    assert cs(get(a, u, [("X-V", "one")])).startswith("levee; fwd=miss")
