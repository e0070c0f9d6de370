"""Byte ranges answered from the cache (RFC 9110 §14): a single range of a
stored 200 is a 206 sliced from the stored body (zero-copy), an
unsatisfiable one a 416, several ranges or another unit the whole 200;
If-Range decides between the two; HEAD is answered whole; a range on a miss
goes upstream with its Range and its 206 is never stored. Bodies around the
4 KiB evbuffer chain size and of about 1 MiB check slices across chain
boundaries. With Redis, a replica whose L1 is cold answers the range from
the L2 entry.

The origin's /range/<name>?n=N serves N pattern bytes (harness.pattern_bytes)
with a strong ETag "r<N>" and Last-Modified, and answers a single Range
itself with a 206."""
import threading

import pytest

from harness import cache_route, response_cache_status, HttpConn, metric_sum, once, pattern_bytes, wait_until
from redis_server import REDIS

LM = "Tue, 14 Nov 2023 22:13:20 GMT"


route = cache_route
cs = response_cache_status


def get(lv, target, headers=(), method="GET"):
    return once(lv.port, method, target, headers)


def origin_requests(origin, path):
    return origin.requests(origin.start_mark, path=path)


def fill(lv, target):
    r = get(lv, target)
    assert r.status == 200 and cs(r) == "levee; fwd=miss; stored", (r.status, cs(r))
    return r


def check_206(r, first, last, total):
    assert r.status == 206, (r.status, r.body[:80])
    assert r.header("Content-Range") == "bytes %d-%d/%d" % (first, last, total)
    assert r.header("Content-Length") == str(last - first + 1)
    assert r.body == pattern_bytes(first, last - first + 1)
    assert r.header("Accept-Ranges") == "bytes"


def test_single_range_forms_are_hits(levee_factory, origin):
    lv = levee_factory(route())
    path = "/range/forms"
    full = fill(lv, path + "?n=100")
    assert full.body == pattern_bytes(0, 100)
    h = get(lv, path + "?n=100")
    assert cs(h) == "levee; hit" and h.header("Accept-Ranges") == "bytes"
    forms = [("bytes=0-9", 0, 9), ("bytes=90-", 90, 99), ("bytes=-10", 90, 99), ("bytes=0-0", 0, 0),
             ("bytes=99-99", 99, 99), ("bytes=50-1000", 50, 99), ("bytes=-1000", 0, 99),
             ("bytes=0-", 0, 99), ("bytes=007-010", 7, 10), ("BYTES=1-2", 1, 2),
             ("bytes=0-99999999999999999999999", 0, 99), ("bytes= 3-4 ,", 3, 4)]
    for value, a, b in forms:
        r = get(lv, path + "?n=100", [("Range", value)])
        check_206(r, a, b, 100)
        assert cs(r) == "levee; hit", value
        assert r.header("ETag") == '"r100"' and r.header("Content-Type") == "application/octet-stream"
    assert len(origin_requests(origin, path)) == 1


def test_unsatisfiable_is_416_and_keeps_the_connection(levee_factory, origin):
    lv = levee_factory(route())
    path = "/range/416?n=100"
    fill(lv, path)
    c = HttpConn(lv.port)
    try:
        for value in ("bytes=100-", "bytes=-0", "bytes=100-200", "bytes=99999999999999999999999-"):
            r = c.request("GET", path, [("Range", value)])
            assert r.status == 416, value
            assert r.header("Content-Range") == "bytes */100"
            assert r.header("Content-Length") == "0" and r.body == b""
            assert r.header("Content-Type") is None  # no representation in it
            assert r.header("ETag") == '"r100"'
            assert cs(r) == "levee; hit"
        r = c.request("GET", path)  # the same connection goes on
        assert r.status == 200 and r.body == pattern_bytes(0, 100)
    finally:
        c.close()
    assert len(origin_requests(origin, "/range/416")) == 1


@pytest.mark.parametrize("value", ["bytes=0-1,5-9", "bytes=0-1, 0-1", "items=0-9", "bytes=9-3", "bytes=x-y",
                                   "bytes=5", "bytes=", "bytes=0 -9"])
def test_several_ranges_other_units_and_garbage_get_the_whole(levee_factory, origin, value):
    lv = levee_factory(route())
    path = "/range/whole?n=100"
    fill(lv, path)
    r = get(lv, path, [("Range", value)])
    assert r.status == 200 and r.body == pattern_bytes(0, 100)
    assert r.header("Content-Range") is None and r.header("Accept-Ranges") == "bytes"
    assert cs(r) == "levee; hit"


def test_two_range_lines_are_several_ranges(levee_factory, origin):
    lv = levee_factory(route())
    path = "/range/lines?n=100"
    fill(lv, path)
    r = get(lv, path, [("Range", "bytes=0-1"), ("Range", "bytes=4-5")])
    assert r.status == 200 and r.body == pattern_bytes(0, 100)


def test_if_range(levee_factory, origin):
    lv = levee_factory(route())
    path = "/range/ifr?n=100"
    fill(lv, path)
    rng = ("Range", "bytes=10-19")
    cases = [('"r100"', 206), ('"other"', 200), ('W/"r100"', 200), (LM, 206),
             ("Tue, 14 Nov 2023 22:13:21 GMT", 200), ("Tue, 14 Nov 2023 22:13:19 GMT", 200), ("garbage", 200)]
    for validator, want in cases:
        r = get(lv, path, [rng, ("If-Range", validator)])
        assert r.status == want, validator
        assert cs(r) == "levee; hit"
        if want == 206:
            check_206(r, 10, 19, 100)
        else:
            assert r.body == pattern_bytes(0, 100) and r.header("Content-Range") is None
    # If-Range without Range is ignored; If-None-Match that matches wins over Range
    assert get(lv, path, [("If-Range", '"r100"')]).status == 200
    r = get(lv, path, [rng, ("If-None-Match", '"r100"')])
    assert r.status == 304 and r.body == b""


def test_weak_etag_never_satisfies_if_range(levee_factory, origin):
    lv = levee_factory(route())
    path = "/range/weak?n=100&weak=1"
    fill(lv, path)
    for validator in ('W/"r100"', '"r100"'):
        r = get(lv, path, [("Range", "bytes=0-4"), ("If-Range", validator)])
        assert r.status == 200 and r.body == pattern_bytes(0, 100), validator
    check_206(get(lv, path, [("Range", "bytes=0-4")]), 0, 4, 100)  # without If-Range it is a range


def test_head_with_range_is_answered_whole(levee_factory, origin):
    lv = levee_factory(route())
    path = "/range/head?n=100"
    fill(lv, path)
    r = get(lv, path, [("Range", "bytes=0-9")], method="HEAD")
    assert r.status == 200 and r.body == b""
    assert r.header("Content-Length") == "100" and r.header("Content-Range") is None
    assert r.header("Accept-Ranges") == "bytes" and cs(r) == "levee; hit"


def test_range_on_a_miss_is_not_stored(levee_factory, origin):
    lv = levee_factory(route())
    path = "/range/miss"
    r = get(lv, path + "?n=100", [("Range", "bytes=5-9")])
    # the origin answered the range itself; its 206 is a part: not stored
    assert r.status == 206 and r.body == pattern_bytes(5, 5)
    assert r.header("Content-Range") == "bytes 5-9/100"
    assert cs(r) == "levee; fwd=miss; detail=partial"
    seen = origin_requests(origin, path)
    assert len(seen) == 1 and ("Range", "bytes=5-9") in [tuple(h) for h in seen[0]["headers"]]
    # a 206 is not a property of the URL: the next GET fills, coalesced as usual
    samples = lv.metrics()
    assert metric_sum(samples, "levee_cache_pass_total") == 0
    full = get(lv, path + "?n=100")
    assert full.status == 200 and cs(full) == "levee; fwd=miss; stored"
    check_206(get(lv, path + "?n=100", [("Range", "bytes=5-9")]), 5, 9, 100)
    assert len(origin_requests(origin, path)) == 2


def test_range_miss_answered_whole_by_the_origin_is_stored(levee_factory, origin):
    lv = levee_factory(route())
    path = "/range/ignored?n=100&ignore=1"
    r = get(lv, path, [("Range", "bytes=5-9")])
    assert r.status == 200 and r.body == pattern_bytes(0, 100)
    assert "stored" in cs(r)
    h = get(lv, path, [("Range", "bytes=5-9")])
    check_206(h, 5, 9, 100)
    assert cs(h) == "levee; hit"
    assert len(origin_requests(origin, "/range/ignored")) == 1


def test_background_refresh_of_a_range_hit_fetches_the_whole(levee_factory, origin):
    lv = levee_factory(route(cache_ttl="origin"))
    path = "/range/swr?n=100&cc=max-age%3D1%2C+stale-while-revalidate%3D60"
    fill(lv, path)
    mark = origin.mark()
    rng = [("Range", "bytes=0-9")]

    def stale_hit():
        r = get(lv, path, rng)
        return r if cs(r) == "levee; hit; detail=stale" else None
    r = wait_until(stale_hit, 5, msg="a stale range hit")
    check_206(r, 0, 9, 100)
    # its refresh asks for the whole response, and the whole is stored
    ev = origin.wait_event(lambda e: e["event"] == "request" and e["target"].startswith("/range/swr"), since=mark,
                           msg="the refresh")
    assert not [n for n, _ in ev["headers"] if n.lower() in ("range", "if-range")], ev["headers"]
    r = wait_until(lambda: (lambda x: x if cs(x) == "levee; hit" else None)(get(lv, path, rng)), 5,
                   msg="a fresh hit after the refresh")
    check_206(r, 0, 9, 100)


def test_a_stale_range_with_if_range_revalidates_the_copy(levee_factory, origin):
    """If-Range is no precondition of the client's own: levee revalidates the
    stale copy with its stored validators, and the 304 lets the refreshed
    copy answer the range and evaluate the If-Range itself."""
    lv = levee_factory(route(cache_ttl="origin"))
    path = "/range/ifrstale?n=100&inm=1&cc=max-age%3D0"
    fill(lv, path)
    mark = origin.mark()
    for validator, want in (('"r100"', 206), ('"other"', 200)):
        r = get(lv, path, [("Range", "bytes=10-19"), ("If-Range", validator)])
        assert r.status == want and cs(r) == "levee; fwd=stale; stored", (validator, r.status, cs(r))
        if want == 206:
            check_206(r, 10, 19, 100)
        else:
            assert r.body == pattern_bytes(0, 100)
    seen = origin.requests(mark, path="/range/ifrstale")
    assert len(seen) == 2, seen
    for ev in seen:
        hs = {n.lower(): v for n, v in ev["headers"]}
        assert hs.get("if-none-match") == '"r100"', ev["headers"]
    assert metric_sum(lv.metrics(), "levee_cache_revalidated_total") == 2


@pytest.mark.parametrize("n", [4095, 4096, 4097, 1000000])
def test_slices_across_chain_boundaries(levee_factory, origin, n):
    lv = levee_factory(route())
    path = "/range/size%d?n=%d" % (n, n)
    fill(lv, path)
    edges = [(0, 0), (0, n - 1), (n - 1, n - 1), (n - 2, n - 1), (4095, 4096), (4094, 4095),
             (1, n - 2), (n // 2, n // 2 + 4097)]
    for a, b in edges:
        b = min(b, n - 1)
        if a > b:
            continue
        r = get(lv, path, [("Range", "bytes=%d-%d" % (a, b))])
        check_206(r, a, b, n)
        assert cs(r) == "levee; hit"
    check_206(get(lv, path, [("Range", "bytes=-4097")]), max(0, n - 4097), n - 1, n)
    whole = get(lv, path)
    assert whole.status == 200 and len(whole.body) == n and whole.body == pattern_bytes(0, n)
    assert len(origin_requests(origin, "/range/size%d" % n)) == 1


@pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")
def test_range_from_an_l2_hit(levee_factory, origin, redis):
    pol = {"redis": {"address": "127.0.0.1:%d" % redis.port}}
    pol.update(route())
    a, b = levee_factory(pol), levee_factory(pol)
    a.wait_redis_ready()
    b.wait_redis_ready()
    path = "/range/l2?n=5000"
    fill(a, path)
    a.wait_committed()
    r = get(b, path, [("Range", "bytes=4090-4100")])
    check_206(r, 4090, 4100, 5000)
    assert cs(r) == "levee; hit; detail=l2"
    r = get(b, path, [("Range", "bytes=-3")])  # now in b's L1
    check_206(r, 4997, 4999, 5000)
    assert cs(r) == "levee; hit"
    r = get(b, path, [("Range", "bytes=5000-")])
    assert r.status == 416 and r.header("Content-Range") == "bytes */5000"
    assert len(origin_requests(origin, "/range/l2")) == 1


@pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")
def test_range_miss_with_redis_takes_no_lease(levee_factory, origin, redis):
    pol = {"redis": {"address": "127.0.0.1:%d" % redis.port, "lease_wait": "3s"}}
    pol.update(route())
    a, b = levee_factory(pol), levee_factory(pol)
    a.wait_redis_ready()
    b.wait_redis_ready()
    path = "/range/l2miss?n=100&delay_ms=400"
    out = []
    t = threading.Thread(target=lambda: out.append(get(a, path, [("Range", "bytes=0-4")])))
    t.start()
    origin.wait_event(lambda e: e["event"] == "request" and e["target"].startswith("/range/l2miss"),
                      since=origin.start_mark, msg="the range miss reached the origin")
    # while it is in flight, the other replica's full GET fills at once: the
    # range miss holds no lease it would wait on for nothing
    full = get(b, path)
    t.join()
    assert out[0].status == 206 and cs(out[0]) == "levee; fwd=miss; detail=partial"
    assert full.status == 200 and cs(full) == "levee; fwd=miss; stored"
    assert metric_sum(b.metrics(), "levee_cache_lease_waits_total") == 0
    check_206(get(a, path, [("Range", "bytes=0-4")]), 0, 4, 100)
    assert cs(get(a, path, [("Range", "bytes=0-4")])) in ("levee; hit", "levee; hit; detail=l2")
