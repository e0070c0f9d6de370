"""Warm-up ([warmup], docs/caching.md "Warm-up"): a replica that starts
loads the service's hot set from Redis into its L1 (so its first requests
for hot keys are L1 hits), checked like L2 hits (a purged entry is not
loaded); a warm-up list is fetched through the normal fill path at no more
than its rate, once across replicas starting together (leases); /readyz
waits for the warm-up up to ready_wait and never longer; a Redis that is
down at start costs the warm-up, never the serving."""
import os
import subprocess

import pytest

from harness import cache_status_core, LEVEE_BIN, WAIT_SCALE, free_port, metric_sum, once, wait_until
from redis_server import REDIS

HOT = "levee:hot:{demo}"
HOST = "test.local"  # the clients' Host, part of every cache key


def get(lv, target):
    return once(lv.port, "GET", target)


def warm_events(origin, prefix):
    return [e for e in origin.events(origin.start_mark, "warm") if e["target"].startswith(prefix)]


def policy(redis=None, route=None, **warm):
    pol = {'route "w"': dict({"prefix": "/warm/", "cache_ttl": "60s"}, **(route or {})),
           "warmup": dict({"host": HOST}, **warm)}
    if redis is not None:
        pol["redis"] = {"address": "127.0.0.1:%d" % redis.port, "lease_wait": "5s"}
    return pol


def warmup_status(lv):
    return lv.status()["warmup"]


def wait_done(lv, timeout=15):
    return wait_until(lambda: warmup_status(lv)["state"] == "done" and warmup_status(lv),
                      timeout * WAIT_SCALE, msg="warm-up done")


needs_redis = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")


def hot_members(redis):
    flat = redis.command("ZREVRANGE", HOT, "0", "-1", "WITHSCORES")
    return [(flat[i].split(b"\x1f")[1].decode(), float(flat[i + 1])) for i in range(0, len(flat), 2)]


def serve_hot(lv, hits):
    """GETs each /warm/hot/N once (a miss) and then `hits[N]` times (hits)."""
    for n, k in hits.items():
        for _ in range(k + 1):
            assert get(lv, "/warm/hot/%d" % n).status == 200


@needs_redis
def test_new_replica_starts_with_the_hot_keys_in_l1(levee_factory, origin, redis):
    a = levee_factory(policy(redis, hot_sample="1"))
    a.wait_redis_ready()
    serve_hot(a, {1: 6, 2: 4, 3: 1})
    # the workers send their batch once a second: wait for every hit
    wait_until(lambda: sum(s for _, s in hot_members(redis)) >= 11, 5 * WAIT_SCALE, msg="hot set written")
    members = hot_members(redis)
    assert [t for t, _ in members] == ["/warm/hot/1", "/warm/hot/2", "/warm/hot/3"], members
    assert [s for _, s in members] == [6, 4, 1]
    assert a.metric("levee_cache_hotset_keys_written_total") >= 3

    # B loads the two hottest: L1 hits at once, no L2 round trip, no origin
    b = levee_factory(policy(redis, hot_keys="2", ready_wait="10s"))
    st = wait_done(b)
    assert st["hot_set"] == {"keys": 2, "done": 2, "loaded": 2}, st
    assert st["errors"] == 0
    assert b.metric("levee_cache_warmup_loaded_total") == 2
    before = len(warm_events(origin, "/warm/hot/"))
    for n in (1, 2):
        r = get(b, "/warm/hot/%d" % n)
        assert cache_status_core(r.header("Cache-Status")) == "levee; hit", r
    # the third was not loaded: an L2 hit, found on demand
    assert cache_status_core(get(b, "/warm/hot/3").header("Cache-Status")) == "levee; hit; detail=l2"
    assert len(warm_events(origin, "/warm/hot/")) == before == 3


@needs_redis
def test_a_purged_hot_key_is_not_loaded(levee_factory, origin, redis):
    a = levee_factory(policy(redis, hot_sample="1"))
    a.wait_redis_ready()
    serve_hot(a, {1: 2, 2: 2})
    wait_until(lambda: len(hot_members(redis)) == 2, 5 * WAIT_SCALE, msg="hot set written")
    assert a.admin_request("POST", "/purge?url=/warm/hot/2").status == 200
    b = levee_factory(policy(redis, ready_wait="10s"))
    s = wait_done(b)
    assert s["hot_set"]["keys"] == 2 and s["hot_set"]["loaded"] == 1, s
    assert cache_status_core(get(b, "/warm/hot/1").header("Cache-Status")) == "levee; hit"
    assert cache_status_core(get(b, "/warm/hot/2").header("Cache-Status")).startswith("levee; fwd=miss")


@needs_redis
def test_hot_set_is_bounded_and_sampled(levee_factory, origin, redis):
    a = levee_factory(policy(redis, hot_sample="4", hot_size="3"))
    a.wait_redis_ready()
    serve_hot(a, {n: 8 for n in range(1, 7)})
    # a hit is sampled before it is answered; the batch goes out within a second
    samples = a.metric("levee_cache_hotset_samples_total")
    wait_until(lambda: a.metric("levee_cache_hotset_keys_written_total") >= 1 and len(hot_members(redis)) == 3,
               5 * WAIT_SCALE, msg="hot set written and trimmed")
    # 48 hits, one in 4 sampled per worker, each with weight 4
    assert 12 - a.status()["workers"] <= samples <= 12, samples
    assert all(s % 4 == 0 for _, s in hot_members(redis))


def write_list(lv, n, prefix, query=""):
    path = os.path.join(lv.workdir, "warm.txt")
    with open(path, "w") as f:
        f.write("# warm-up list\n\n")
        for i in range(n):
            f.write("%s%d%s\n" % (prefix, i, query))
    return path


def test_warmup_list_is_fetched_at_its_rate(levee_factory, origin, tmp_path):
    path = str(tmp_path / "warm.txt")
    with open(path, "w") as f:
        f.write("# six URLs\n\n" + "".join("/warm/list/%d\n" % i for i in range(6)))
    lv = levee_factory(policy(urls_file=path, rate="5", concurrency="4", ready_wait="20s"))
    st = wait_done(lv)
    assert st["urls"] == {"total": 6, "done": 6, "ok": 6}, st
    evs = warm_events(origin, "/warm/list/")
    assert sorted(e["target"] for e in evs) == ["/warm/list/%d" % i for i in range(6)]
    ts = sorted(e["t"] for e in evs)
    gaps = [b - a for a, b in zip(ts, ts[1:])]
    # 5 a second, evenly spaced: 200 ms apart (scheduling may delay one, never hasten it)
    assert min(gaps) >= 0.18, gaps
    assert ts[-1] - ts[0] >= 0.95, ts
    # stored through the normal path: the first client request is an L1 hit
    r = get(lv, "/warm/list/3")
    assert cache_status_core(r.header("Cache-Status")) == "levee; hit", r
    assert len(warm_events(origin, "/warm/list/")) == 6
    assert lv.metric("levee_cache_warmup_fetched_total") == 6
    # the warm-up's fetches are counted like any request: six misses, then the hit
    wait_until(lambda: metric_sum(lv.metrics(), "levee_cache_lookups_total") == 7, 5, msg="counted")
    assert metric_sum(lv.metrics(), "levee_cache_lookups_total", result="miss") == 6


def test_inline_urls_and_absolute_url_host(levee_factory, origin):
    lv = levee_factory(policy(urls="/warm/in/a http://other.local/warm/in/b", rate="50"))
    wait_done(lv)
    assert cache_status_core(get(lv, "/warm/in/a").header("Cache-Status")) == "levee; hit"
    # fetched with its own Host: a client asking with test.local misses
    assert cache_status_core(get(lv, "/warm/in/b").header("Cache-Status")).startswith("levee; fwd=miss")
    r = once(lv.port, "GET", "/warm/in/b", host="other.local")
    assert cache_status_core(r.header("Cache-Status")) == "levee; hit"


@needs_redis
def test_two_replicas_starting_together_fetch_each_url_once(levee_factory, origin, redis):
    urls = " ".join("/warm/pair/%d?ms=300" % i for i in range(6))
    pol = policy(redis, urls=urls, rate="100", concurrency="6", ready_wait="20s")
    # started back to back, neither waited for: their warm-ups overlap, and
    # each waits for its workers' Redis before its first fetch
    lvs = [levee_factory(pol, wait=None) for _ in range(2)]
    for lv in lvs:
        lv.wait_ready("healthz")
        wait_done(lv)
    evs = warm_events(origin, "/warm/pair/")
    targets = sorted(e["target"] for e in evs)
    assert targets == sorted("/warm/pair/%d?ms=300" % i for i in range(6)), targets
    for lv in lvs:
        assert warmup_status(lv)["urls"]["ok"] == 6


def test_readyz_waits_for_the_warmup(levee_factory, origin):
    lv = levee_factory(policy(urls=" ".join("/warm/ready/%d" % i for i in range(5)), rate="2",
                              ready_wait="30s"), wait="healthz")
    st, _, body = lv.admin_get("/readyz")
    assert st == 503 and b"warming up" in body, (st, body)
    # serving does not wait
    assert get(lv, "/echo/warm-serving").status == 200
    wait_until(lambda: lv.admin_get("/readyz")[0] == 200, 10 * WAIT_SCALE, msg="ready")
    s = warmup_status(lv)
    assert s["state"] == "done" and s["elapsed_seconds"] >= 1.9, s


def test_readyz_waits_no_longer_than_ready_wait(levee_factory, origin):
    lv = levee_factory(policy(urls=" ".join("/warm/bound/%d" % i for i in range(8)), rate="1",
                              ready_wait="1s"), wait="healthz")
    assert lv.admin_get("/readyz")[0] == 503
    wait_until(lambda: lv.admin_get("/readyz")[0] == 200, 5 * WAIT_SCALE, msg="ready at the bound")
    s = warmup_status(lv)
    assert s["state"] == "urls" and s["urls"]["done"] < 8, s
    assert lv.metric("levee_cache_warmup_running") == 1


def test_ready_wait_zero_does_not_wait(levee_factory, origin):
    lv = levee_factory(policy(urls="/warm/zero/1?ms=2000", rate="1"), wait="healthz")
    wait_until(lambda: lv.admin_get("/readyz")[0] == 200, 3 * WAIT_SCALE, msg="ready")
    assert warmup_status(lv)["state"] == "urls"


def test_redis_down_at_start(levee_factory, origin):
    class Dead:
        port = free_port()  # nothing listens there
    pol = policy(Dead, urls="/warm/down/1", ready_wait="20s")
    lv = levee_factory(pol, wait="healthz")
    s = wait_done(lv, timeout=20)
    assert s["errors"] >= 1 and s["hot_set"]["keys"] == 0, s
    assert s["urls"]["done"] == 1
    assert lv.admin_get("/readyz")[0] == 200
    r = get(lv, "/warm/down/2")
    assert r.status == 200 and "redis-down" in cache_status_core(r.header("Cache-Status")), r
    assert "Redis is not available" in lv.stderr()


def test_bad_warmup_list_fails_check(tmp_path):
    bad = tmp_path / "bad.ini"
    bad.write_text("[warmup]\nurls = /ok nope\n")
    p = subprocess.run([LEVEE_BIN, "check", str(bad)], capture_output=True, text=True)
    assert p.returncode == 1
    assert "[warmup] urls: URL 2: expected a target starting with /" in p.stderr, p.stderr
    lst = tmp_path / "list.txt"
    lst.write_text("/a\n\n/b c\n")
    bad.write_text("[warmup]\nurls_file = %s\n" % lst)
    p = subprocess.run([LEVEE_BIN, "check", str(bad)], capture_output=True, text=True)
    assert p.returncode == 1 and "list.txt:3: URL holds a blank" in p.stderr, p.stderr


def test_a_failing_url_is_counted_and_the_rest_fetched(levee_factory, origin):
    # /status/503 is on no caching route: passed through, and an error
    lv = levee_factory(policy(urls="/warm/err/1 /status/503 /warm/err/2", rate="50"))
    s = wait_done(lv)
    assert s["urls"] == {"total": 3, "done": 3, "ok": 2} and s["errors"] == 1, s
    assert lv.metric("levee_cache_warmup_errors_total") == 1
    assert cache_status_core(get(lv, "/warm/err/2").header("Cache-Status")) == "levee; hit"


def test_reload_does_not_restart_the_warmup(levee_factory, origin):
    lv = levee_factory(policy(urls="/warm/reload/1", rate="50"))
    wait_done(lv)
    s = dict(lv.sections)
    s["warmup"] = dict(s["warmup"], urls="/warm/reload/2")
    assert lv.write_policy(sections=s)
    r = lv.admin_request("POST", "/reload")
    assert r.status == 200 and r.json()["restart_keys"] == ["warmup.urls"], r.body
    st = warmup_status(lv)
    assert st["state"] == "done" and st["urls"]["total"] == 1, st
    assert lv.admin_get("/readyz")[0] == 200
    # nothing new reaches the origin: the new list waits for a restart
    assert [e["target"] for e in warm_events(origin, "/warm/reload/")] == ["/warm/reload/1"]
