"""The cache never serves wrong bytes, and says what it did.

- bodies of every size around buffer and chain boundaries, up to and past
  max_object, in every framing, come back byte for byte from L1 and from
  Redis;
- a close-delimited body that ends in a reset is a truncation: not cached;
- Cache-Status says "stored" only for what was stored, with the reason when
  it was not;
- an entry too large for an L1 shard is kept in Redis alone, and a replica
  waiting on its lease gets it without waiting out lease_wait;
- misses behind an answer that cannot be stored (hit-for-miss) wait for
  nothing, on one replica and across replicas.
"""
import statistics
import threading
import time

import pytest

from harness import cache_status_core, HttpConn, metric_sum, once, pattern_sha256, together, wait_until
from redis_server import REDIS, Redis

CHAIN = 8144  # the payload of one 8 KiB evbuffer chain (the bug stored 64 of them)
MAX_OBJECT = 1 << 20
SIZES = sorted({1, CHAIN - 1, CHAIN, CHAIN + 1, 4096, 16384, 65535, 65536, 65537, 262143, 262144, 262145,
                64 * CHAIN - 1, 64 * CHAIN, 64 * CHAIN + 1, 800000, MAX_OBJECT - 1, MAX_OBJECT})


def cache_policy(**cache):
    c = {"memory": "256MiB", "max_object": str(MAX_OBJECT)}
    c.update(cache)
    return {"cache": c, 'route "c"': {"prefix": "/", "cache_ttl": "60s"}}


def get(lv, target, headers=(), timeout=10):
    return once(lv.port, "GET", target, headers, timeout=timeout, hash_body=True, store=False)


def cs(r):
    return cache_status_core(r.header("Cache-Status"))


def expect_body(r, n):
    assert r.status == 200 and r.complete, (r.status, r.complete)
    assert r.body_len == n, (r.body_len, n)
    assert r.sha256 == pattern_sha256(n)
    if r.framing == "content-length":
        assert int(r.header("Content-Length")) == n


@pytest.mark.parametrize("mode", ["cl", "chunked", "close"])
def test_body_sizes_stored_whole(levee_factory, origin, mode):
    lv = levee_factory(cache_policy())
    for n in SIZES:
        u = "/bytes?n=%d&mode=%s" % (n, mode)
        first = get(lv, u)
        expect_body(first, n)
        hit = get(lv, u)
        assert cs(hit) == "levee; hit", (n, cs(first), cs(hit))
        expect_body(hit, n)
    assert len(origin.requests(origin.start_mark, path="/bytes")) == len(SIZES)


@pytest.mark.parametrize("mode", ["cl", "chunked"])
def test_body_over_max_object_is_not_stored(levee_factory, origin, mode):
    lv = levee_factory(cache_policy())
    u = "/bytes?n=%d&mode=%s" % (MAX_OBJECT + 1, mode)
    first = get(lv, u)
    expect_body(first, MAX_OBJECT + 1)
    if mode == "cl":
        assert cs(first) == "levee; fwd=miss; detail=too-large"
    else:
        assert "stored" not in cs(first)
    again = get(lv, u)
    expect_body(again, MAX_OBJECT + 1)
    assert "hit" not in cs(again)
    assert metric_sum(lv.metrics(), "levee_cache_store_refused_total", reason="too_large") >= 1


@pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")
def test_body_sizes_from_redis(levee_factory, origin, redis):
    pol = cache_policy()
    pol["redis"] = {"address": "127.0.0.1:%d" % redis.port}
    a, b = levee_factory(pol), levee_factory(pol)
    for n in (CHAIN, 64 * CHAIN, 64 * CHAIN + 1, 800000, MAX_OBJECT):
        for mode in ("cl", "chunked"):
            u = "/bytes?n=%d&mode=%s" % (n, mode)
            expect_body(get(a, u), n)
            wait_until(lambda: get_committed(a) >= 1, 3, msg="A committed %s" % u)
            r = get(b, u)
            assert cs(r) == "levee; hit; detail=l2", (u, cs(r))
            expect_body(r, n)
            reset_committed(a)


_committed = {}


def get_committed(lv):
    return metric_sum(lv.metrics(), "levee_cache_l2_operations_total", result="committed") - _committed.get(lv.port, 0)


def reset_committed(lv):
    _committed[lv.port] = metric_sum(lv.metrics(), "levee_cache_l2_operations_total", result="committed")


def test_close_delimited_reset_is_not_complete(levee_factory, origin):
    lv = levee_factory(cache_policy())
    u = "/drop?eof=1&after=7&rst=1"
    c = HttpConn(lv.port, timeout=5)
    try:
        c.send(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % u.encode())
        r = c.read_response()
        assert r is None or not r.complete  # cut short, never a clean end
    finally:
        c.close()
    again = get(lv, u)
    assert "hit" not in (cs(again) or "")
    assert len(origin.requests(origin.start_mark, path="/drop")) == 2
    assert metric_sum(lv.metrics(), "levee_upstream_truncated_total") >= 1


def test_close_delimited_fin_is_complete(levee_factory, origin):
    lv = levee_factory(cache_policy())
    u = "/drop?eof=1&after=7"
    r = get(lv, u)
    expect_body(r, 7)
    hit = get(lv, u)
    assert cs(hit) == "levee; hit"
    expect_body(hit, 7)


@pytest.mark.parametrize("target,reason", [
    ("/headers?Cache-Control=no-store", "no-store"),
    ("/headers?Cache-Control=private", "private"),
    ("/headers?Set-Cookie=a%3Db", "set-cookie"),
    ("/headers?Vary=*", "vary-star"),
    ("/status/500", "status"),
    ("/status/503", "status"),
    ("/status/999", "status"),
    ("/status/206", "partial"),
])
def test_cache_status_never_claims_what_was_not_stored(levee_factory, origin, target, reason):
    lv = levee_factory(cache_policy())
    r = get(lv, target)
    assert cs(r) == "levee; fwd=miss; detail=%s" % reason, cs(r)
    again = get(lv, target)
    assert "hit" not in cs(again) and "stored" not in cs(again)
    assert metric_sum(lv.metrics(), "levee_cache_store_refused_total", reason=reason.replace("-", "_")) == 2
    assert metric_sum(lv.metrics(), "levee_cache_stores_total") == 0


def test_cache_status_stored_is_true(levee_factory, origin):
    lv = levee_factory(cache_policy())
    r = get(lv, "/bytes?n=100")
    assert cs(r) == "levee; fwd=miss; stored"
    assert metric_sum(lv.metrics(), "levee_cache_stores_total") == 1
    assert cs(get(lv, "/bytes?n=100")) == "levee; hit"


def test_truncated_fill_is_counted_not_stored(levee_factory, origin):
    """A small fill is held back until it is complete: cut short, it becomes
    levee's own 502 (nothing of it was sent yet), never a head that said
    "stored"."""
    lv = levee_factory(cache_policy())
    c = HttpConn(lv.port, timeout=5)
    try:
        c.send(b"GET /drop?after=100&cl=1000 HTTP/1.1\r\nHost: t\r\n\r\n")
        r = c.read_response()
        assert r.status == 502 and r.reason_token == "upstream-bad-response", r
        assert "stored" not in (cache_status_core(r.header("Cache-Status")) or "")
    finally:
        c.close()
    wait_until(lambda: metric_sum(lv.metrics(), "levee_cache_store_refused_total", reason="incomplete") == 1, 3,
               msg="the incomplete fill counted")
    assert metric_sum(lv.metrics(), "levee_cache_stores_total") == 0


def test_too_large_for_l1_without_redis(levee_factory, origin):
    lv = levee_factory(cache_policy(memory="1MiB"))  # 64 shards of 16 KiB
    r = get(lv, "/bytes?n=20000")
    expect_body(r, 20000)
    assert cs(r) == "levee; fwd=miss; detail=too-large"
    assert cs(get(lv, "/bytes?n=20000")) == "levee; fwd=miss; detail=too-large"
    st = lv.status()
    assert 0 < st["cache"]["l1"]["max_entry_bytes"] < 16384


@pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")
def test_too_large_for_l1_goes_to_redis(levee_factory, origin, redis):
    pol = cache_policy(memory="1MiB")
    pol["redis"] = {"address": "127.0.0.1:%d" % redis.port, "lease_wait": "1s"}
    a, b = levee_factory(pol), levee_factory(pol)
    r = get(a, "/bytes?n=20000")
    expect_body(r, 20000)
    assert cs(r) == "levee; fwd=miss; stored"
    wait_until(lambda: metric_sum(a.metrics(), "levee_cache_stores_total", layer="l2") == 1, 3, msg="L2 store")
    a.wait_committed()  # the store is counted when it is sent; Redis has it once committed
    for lv in (a, b, b):  # from Redis each time: no L1 shard holds it
        h = get(lv, "/bytes?n=20000")
        assert cs(h) == "levee; hit; detail=l2"
        expect_body(h, 20000)
    assert len(origin.requests(origin.start_mark, path="/bytes")) == 1


@pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")
def test_an_l2_only_entry_read_at_once_by_many_goes_to_the_origin_once(levee_factory, origin, redis):
    """An entry no L1 shard takes, read by many requests at once on another
    replica: the first one's Redis answer lets the others read Redis too
    (they never go upstream as failed waiters), and no refusal for want of a
    lease makes the key hit-for-miss while Redis holds it."""
    pol = cache_policy(memory="1MiB")
    pol["redis"] = {"address": "127.0.0.1:%d" % redis.port, "lease_wait": "1s"}
    pol["levee"] = {"workers": "4"}
    a, b = levee_factory(pol), levee_factory(pol)
    t = "/bytes?n=20000&k=burst"
    assert cs(get(a, t)) == "levee; fwd=miss; stored"
    a.wait_committed()
    for _ in range(5):
        rs = together([b.port], t, 16)
        assert all(r is not None and r.status == 200 and len(r.body) == 20000 for r in rs)
        assert all("detail=l2" in cs(r) for r in rs), sorted({cs(r) for r in rs})
    assert len(origin.requests(origin.start_mark, path="/bytes")) == 1


@pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")
def test_lease_waiter_gets_an_l2_only_entry_fast(levee_factory, origin, redis):
    """B waits on A's lease for an entry only Redis can hold: it must get it
    when A commits, not after lease_wait (1 s)."""
    pol = cache_policy(memory="1MiB")
    pol["redis"] = {"address": "127.0.0.1:%d" % redis.port, "lease_wait": "1s"}
    a, b = levee_factory(pol), levee_factory(pol)
    u = "/slow?head_ms=300&n=20000"
    out = {}

    def fetch(name, lv, delay):
        time.sleep(delay)
        t0 = time.monotonic()
        out[name] = (get(lv, u), time.monotonic() - t0)

    ts = [threading.Thread(target=fetch, args=("a", a, 0)), threading.Thread(target=fetch, args=("b", b, 0.1))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    rb, took = out["b"]
    assert rb.status == 200 and rb.body_len == 20000
    assert cs(rb) == "levee; fwd=miss; detail=l2; collapsed", cs(rb)
    assert took < 0.7, "B waited %.2fs for an entry A committed after 0.3s" % took
    assert len(origin.requests(origin.start_mark, path="/slow")) == 1


def concurrent_gets(levees, target, n):
    results, lat = [None] * n, [0.0] * n
    barrier = threading.Barrier(n)

    def client(i):
        lv = levees[i % len(levees)]
        c = HttpConn(lv.port, timeout=20)
        try:
            barrier.wait()
            t0 = time.monotonic()
            results[i] = c.request("GET", target)
            lat[i] = time.monotonic() - t0
        finally:
            c.close()

    ts = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return results, lat


def test_uncacheable_fill_wakes_its_waiters_at_once(levee_factory, origin):
    lv = levee_factory(cache_policy())
    u = "/slow?head_ms=300&h.Cache-Control=no-store"
    results, lat = concurrent_gets([lv], u, 20)
    assert all(r.status == 200 for r in results)
    # each waiter goes upstream as soon as the first answer said no-store:
    # about 2 x 300 ms at worst, not 20 fills in a row
    assert max(lat) < 1.0, sorted(lat)
    # then the key is hit-for-miss: no coalescing, every request goes upstream
    results, lat = concurrent_gets([lv], u, 20)
    assert max(lat) < 0.7, sorted(lat)
    assert metric_sum(lv.metrics(), "levee_cache_pass_total") >= 20
    assert len(origin.requests(origin.start_mark, path="/slow")) == 40


@pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")
def test_uncacheable_fill_across_replicas(levee_factory, origin, redis):
    pol = cache_policy()
    pol["redis"] = {"address": "127.0.0.1:%d" % redis.port, "lease_wait": "1s"}
    a, b = levee_factory(pol), levee_factory(pol)
    u = "/slow?head_ms=300&h.Cache-Control=no-store"
    results, lat = concurrent_gets([a, b], u, 20)
    assert all(r.status == 200 for r in results)
    assert statistics.median(lat) < 0.7 and max(lat) < 1.0, sorted(lat)
    # the marker in Redis: B's next misses do not wait for A's fills either
    results, lat = concurrent_gets([b], "/slow?head_ms=300&h.Cache-Control=no-store", 10)
    assert max(lat) < 0.7, sorted(lat)


def test_storable_answer_ends_hit_for_miss(levee_factory, origin):
    lv = levee_factory(cache_policy())
    origin._get("/__fail?name=hfm&mode=nostore")
    r = get(lv, "/flaky/hfm")
    assert cs(r) == "levee; fwd=miss; detail=no-store"
    origin._get("/__fail?name=hfm&mode=ok")
    r = get(lv, "/flaky/hfm")  # hit-for-miss: straight upstream; storable now
    assert cs(r) == "levee; fwd=miss; stored"
    assert cs(get(lv, "/flaky/hfm")) == "levee; hit"


# ---- what is not in the key never reaches the origin (cache poisoning) ----

RISKY = ["X-Forwarded-Host", "Forwarded", "X-Host", "X-Original-Host", "X-Forwarded-Server",
         "X-Forwarded-Port", "X-Forwarded-Prefix", "X-Forwarded-Scheme", "X-Original-URL", "X-Rewrite-URL",
         "X-Real-IP", "True-Client-IP"]


def seen_headers(r):
    import json
    return {n.lower(): v for n, v in json.loads(r.body)["headers"]}


def get_body(lv, target, headers=()):
    return once(lv.port, "GET", target, headers)


@pytest.mark.parametrize("name", RISKY)
def test_unkeyed_request_header_is_stripped(levee_factory, origin, name):
    lv = levee_factory(cache_policy())
    r = get_body(lv, "/echo/poison", headers=[(name, "evil.example")])
    assert cs(r) == "levee; fwd=miss; stored"
    assert name.lower() not in seen_headers(r)
    clean = get_body(lv, "/echo/poison")
    assert cs(clean) == "levee; hit" and b"evil.example" not in clean.body


def test_unkeyed_forwarded_for_from_client_is_dropped(levee_factory, origin):
    lv = levee_factory(cache_policy())
    r = get_body(lv, "/echo/xff", headers=[("X-Forwarded-For", "6.6.6.6")])
    assert seen_headers(r)["x-forwarded-for"] == "127.0.0.1"
    # not on a route that does not cache
    r = get_body(levee_factory(), "/echo/xff", headers=[("X-Forwarded-For", "6.6.6.6")])
    assert seen_headers(r)["x-forwarded-for"] == "6.6.6.6, 127.0.0.1"


def test_keyed_header_is_forwarded_and_keyed(levee_factory, origin):
    pol = cache_policy()
    pol['route "c"']["cache_key_headers"] = "X-Forwarded-Host"
    lv = levee_factory(pol)
    a = get_body(lv, "/echo/keyed", headers=[("X-Forwarded-Host", "a.example")])
    assert seen_headers(a)["x-forwarded-host"] == "a.example"
    b = get_body(lv, "/echo/keyed", headers=[("X-Forwarded-Host", "b.example")])
    assert cs(b) == "levee; fwd=miss; stored" and seen_headers(b)["x-forwarded-host"] == "b.example"
    assert cs(get_body(lv, "/echo/keyed", headers=[("X-Forwarded-Host", "a.example")])) == "levee; hit"


def test_unkeyed_headers_bypass_and_forward(levee_factory, origin):
    pol = cache_policy()
    pol['route "c"']["unkeyed_headers"] = "bypass"
    lv = levee_factory(pol)
    r = get_body(lv, "/echo/bp", headers=[("X-Forwarded-Host", "evil.example")])
    assert cs(r) == "levee; fwd=bypass; detail=unkeyed-header"
    assert seen_headers(r)["x-forwarded-host"] == "evil.example"
    assert cs(get_body(lv, "/echo/bp")) == "levee; fwd=miss; stored"  # nothing was stored before
    pol['route "c"']["unkeyed_headers"] = "forward"
    lv = levee_factory(pol)
    r = get_body(lv, "/echo/fw", headers=[("X-Forwarded-Host", "evil.example")])
    assert cs(r) == "levee; fwd=miss; stored" and seen_headers(r)["x-forwarded-host"] == "evil.example"


def test_trusted_forwarded_proto_is_keyed(levee_factory, origin):
    pol = cache_policy()
    pol["levee"] = {"trust_forwarded": "true"}
    lv = levee_factory(pol)
    s = get_body(lv, "/echo/proto", headers=[("X-Forwarded-Proto", "https")])
    assert seen_headers(s)["x-forwarded-proto"] == "https"
    h = get_body(lv, "/echo/proto", headers=[("X-Forwarded-Proto", "http")])
    assert cs(h) == "levee; fwd=miss; stored" and seen_headers(h)["x-forwarded-proto"] == "http"
    assert cs(get_body(lv, "/echo/proto", headers=[("X-Forwarded-Proto", "https")])) == "levee; hit"


@pytest.mark.parametrize("framing", ["cl", "chunked"])
def test_fat_get_body_never_reaches_the_origin(levee_factory, origin, framing):
    lv = levee_factory(cache_policy())
    c = HttpConn(lv.port, timeout=10)
    try:
        if framing == "cl":
            c.send(b"GET /echo/fat HTTP/1.1\r\nHost: test.local\r\nContent-Length: 11\r\n\r\nhello world")
        else:
            c.send(b"GET /echo/fat HTTP/1.1\r\nHost: test.local\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and cs(r) == "levee; fwd=miss; stored"
        import json
        seen = json.loads(r.body)
        assert seen["body_len"] == 0 and seen["framing"] == "none"
        # the connection is still in step: the next request on it works
        r2 = c.request("GET", "/echo/fat")
        assert r2.status == 200 and cs(r2) == "levee; hit"
    finally:
        c.close()


def test_fat_get_bypass(levee_factory, origin):
    pol = cache_policy()
    pol['route "c"']["get_body"] = "bypass"
    lv = levee_factory(pol)
    c = HttpConn(lv.port, timeout=10)
    try:
        c.send(b"GET /echo/fatb HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello")
        r = c.read_response()
        assert cs(r) == "levee; fwd=bypass; detail=request-body"
        import json
        assert json.loads(r.body)["body_len"] == 5
    finally:
        c.close()
