"""The Redis tier (L2) with real redis-server: replicas share entries, a
cold key is fetched once across replicas (leases), purges reach Redis, a fill
that raced a purge on another replica is refused, and Redis going away never
turns into an error for a client."""
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.parse

import pytest

from harness import cache_status_core, HttpConn, WAIT_SCALE, fill_until_committed, free_port, metric_sum, once, wait_until
from redis_server import REDIS, Redis

pytestmark = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")


def replicas(levee_factory, redis, n=2, redis_timeout=None, **route):
    route.setdefault("prefix", "/")
    route.setdefault("cache_ttl", "60s")
    pol = {"redis": {"address": "127.0.0.1:%d" % redis.port, "lease_wait": "3s"}, 'route "c"': route}
    if redis_timeout:
        pol["redis"]["timeout"] = redis_timeout
    return [levee_factory(pol) for _ in range(n)]


def get(lv, target, headers=()):
    return once(lv.port, "GET", target, headers)


def purge(lv, q):
    c = HttpConn(lv.admin_port)
    try:
        r = c.request("POST", "/purge?" + q)
        return r.status, r.body
    finally:
        c.close()


def cs(r):
    return cache_status_core(r.header("Cache-Status"))


class Load:
    """GET load on levees from one thread each, over `keys` URLs per levee,
    until stop(); `errors` collects 5xx statuses and connection errors."""

    def __init__(self, levees, prefix, keys):
        self.errors, self.served, self._stop = [], 0, threading.Event()
        self._ts = [threading.Thread(target=self._run, args=(lv, "%s/%d" % (prefix, k), keys))
                    for k, lv in enumerate(levees)]
        for t in self._ts:
            t.start()

    def _run(self, lv, path, keys):
        i = 0
        while not self._stop.is_set():
            i += 1
            try:
                r = get(lv, "%s/%d" % (path, i % keys))
                if r.status >= 500:
                    self.errors.append(r.status)
                self.served += 1
            except OSError as e:
                self.errors.append(repr(e))

    def stop(self):
        self._stop.set()
        for t in self._ts:
            t.join()


def test_replicas_share_entries(levee_factory, origin, redis):
    a, b = replicas(levee_factory, redis)
    r = get(a, "/echo/l2/1")
    assert cs(r) == "levee; fwd=miss; stored"
    wait_until(lambda: metric_sum(a.metrics(), "levee_cache_l2_operations_total", result="committed") == 1, 3,
               msg="A committed the entry to Redis")
    s = get(b, "/echo/l2/1")
    assert cs(s) == "levee; hit; detail=l2" and s.body == r.body
    assert cs(get(b, "/echo/l2/1")) == "levee; hit"  # now in B's own L1
    assert len(origin.requests(origin.start_mark, path="/echo/l2/1")) == 1
    m = b.metrics()
    assert metric_sum(m, "levee_cache_l2_operations_total", result="hit") == 1
    wait_until(lambda: metric_sum(b.metrics(), "levee_redis_connections_ready") >= 1, 3,
               msg="levee_redis_connections_ready")
    # each loop's Redis figures reach /metrics at its next tick (100 ms; more
    # under TSan), and the loop that ran the commands may not be the one
    # that made "ready" true
    wait_until(lambda: metric_sum(b.metrics(), "levee_redis_command_duration_seconds_count") > 0, 3 * WAIT_SCALE,
               msg="levee_redis_command_duration_seconds_count")
    st = b.status()
    assert st["redis"]["master"] == "127.0.0.1:%d" % redis.port


def test_cold_key_fetched_once_across_replicas(levee_factory, origin, redis):
    # 200 clients at once on two cores: a Redis command may take longer than
    # the default 25 ms, and a fill whose Redis step timed out stores
    # nothing (by design), which would send every waiter upstream
    a, b = replicas(levee_factory, redis, redis_timeout="500ms")
    n = 100
    results = [None] * (2 * n)
    barrier = threading.Barrier(2 * n)
    u = "/slow?head_ms=600&n=50"

    def client(i):
        lv = a if i % 2 else b
        c = HttpConn(lv.port, timeout=20)
        try:
            barrier.wait()
            results[i] = c.request("GET", u)
        finally:
            c.close()

    ts = [threading.Thread(target=client, args=(i,)) for i in range(2 * n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert all(r is not None and r.status == 200 for r in results)
    assert len({r.body for r in results}) == 1
    assert len(origin.requests(origin.start_mark, path="/slow")) == 1
    assert metric_sum(a.metrics(), "levee_cache_lease_waits_total") + \
        metric_sum(b.metrics(), "levee_cache_lease_waits_total") >= 1


def test_purges_reach_redis(levee_factory, origin, redis):
    a, b, c = replicas(levee_factory, redis, n=3)
    for p in ("/echo/pp/1", "/echo/pp/2", "/echo/qq/1"):
        get(a, p)
    wait_until(lambda: metric_sum(a.metrics(), "levee_cache_l2_operations_total", result="committed") == 3, 3,
               msg="three entries in Redis")
    # purged through another replica: its 200 waits for Redis to take it
    assert purge(b, "url=/echo/pp/1") == (200, b'{"purged":0,"redis":"applied"}\n')
    assert cs(get(c, "/echo/pp/1")).startswith("levee; fwd=miss")  # c has no L1 copy: L2 says gone
    assert cs(get(c, "/echo/pp/2")) == "levee; hit; detail=l2"
    assert purge(b, "prefix=/echo/")[0] == 200
    assert cs(get(c, "/echo/qq/1")).startswith("levee; fwd=miss")
    assert purge(b, "prefix=/echo/p")[0] == 400  # not at a '/' boundary: cannot reach Redis


def test_a_purge_redis_does_not_take_is_accepted_and_retried(levee_factory, origin, redis):
    """While Redis pauses writes past levee's timeout, a purge answers 202
    "retrying" once the timeout passes, not 200; a client that hangs up
    while its purge waits costs nothing; once Redis is back the purge lands."""
    [a] = replicas(levee_factory, redis, n=1, redis_timeout="300ms")
    assert get(a, "/echo/paused/1").status == 200
    redis.command("CLIENT", "PAUSE", "3000", "WRITE")
    try:
        gone = HttpConn(a.admin_port)
        gone.sock.sendall(b"POST /purge?url=/echo/paused/2 HTTP/1.1\r\nHost: x\r\n\r\n")
        gone.close()  # before Redis could answer
        t0 = time.monotonic()
        st, body = purge(a, "url=/echo/paused/1")
        waited = time.monotonic() - t0
        assert (st, json.loads(body)) == (202, {"purged": 1, "redis": "retrying"}), body
        assert 0.25 <= waited < 2.5, waited
    finally:
        redis.command("CLIENT", "UNPAUSE")
    wait_until(lambda: metric_sum(a.metrics(), "levee_cache_purges_waiting") == 0, 10,
               msg="both purges land once Redis takes writes")
    assert purge(a, "tag=none-such") == (200, b'{"purged":0,"redis":"applied"}\n')


def test_a_purge_while_redis_is_down_is_accepted(levee_factory, origin, redis):
    [a] = replicas(levee_factory, redis, n=1)
    assert get(a, "/echo/down/1").status == 200
    redis.kill()
    wait_until(lambda: metric_sum(a.metrics(), "levee_redis_connections_ready") == 0, 5, msg="levee sees Redis down")
    st, body = purge(a, "prefix=/echo/")
    assert (st, json.loads(body)) == (202, {"purged": 1, "redis": "retrying"}), body


def test_fill_racing_a_purge_on_another_replica_is_refused(levee_factory, origin, redis):
    a, b = replicas(levee_factory, redis)
    u = "/slow?head_ms=800&n=7"
    done = []
    t = threading.Thread(target=lambda: done.append(get(a, u)))
    t.start()
    origin.wait_event(lambda e: e.get("event") == "request" and e["target"] == u, origin.start_mark)
    assert purge(b, "url=" + urllib.parse.quote(u, safe=""))[0] == 200  # a write elsewhere
    t.join()
    assert done[0].status == 200
    wait_until(lambda: metric_sum(a.metrics(), "levee_cache_l2_operations_total", result="commit_refused") == 1, 3,
               msg="A's commit refused: a purge landed during its fill")
    # neither Redis nor A's own L1 keeps the racing body
    assert cs(get(a, u)).startswith("levee; fwd=miss")


def test_redis_killed_under_load_never_fails_a_request(levee_factory, origin, redis):
    a, b = replicas(levee_factory, redis)
    load = Load((a, b), "/echo/load", 20)
    try:
        wait_until(lambda: load.served > 50, 5, msg="load running")
        redis.kill()
        before = load.served
        wait_until(lambda: load.served > before + 200, 10, msg="requests keep being served with Redis down")
        # a miss while Redis is down is passed through, and says so
        n = [0]

        def bypassed():
            n[0] += 1
            r = get(a, "/echo/down/%d" % n[0])
            return r.status == 200 and (cs(r) or "").startswith("levee; fwd=bypass; detail=redis-")
        wait_until(bypassed, 5, interval=0.05, msg="Cache-Status: fwd=bypass while Redis is down")
        wait_until(lambda: metric_sum(a.metrics(), "levee_redis_breaker_open") >= 1, 5,
                   msg="the Redis breaker opens")
        # requests that found Redis unusable (not sent at all once the
        # connection is down, so the redis-level error counters stay put)
        assert metric_sum(a.metrics(), "levee_cache_l2_operations_total", result="error") > 0
        redis.start()
        # L2 comes back: an entry stored by A is found by B again
        k = [0]

        def l2_back():
            k[0] += 1
            u = "/echo/back/%d" % k[0]
            get(a, u)
            time.sleep(0.05)  # let A's commit land; the loop itself is bounded by wait_until
            return cs(get(b, u)) == "levee; hit; detail=l2"
        wait_until(l2_back, 15, interval=0.2, msg="L2 hits resume after Redis restarts")
    finally:
        load.stop()
    assert load.errors == [], load.errors[:5]


SENTINEL = shutil.which("redis-sentinel")


def resp_command(port, *args, timeout=2.0):
    """One RESP command on a fresh connection; the raw reply bytes."""
    payload = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a.encode()) for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        return s.recv(4096)


def sentinel_says(port, master_port):
    """Whether the sentinel on <port> names <master_port> as the master (False
    while it is not listening yet)."""
    try:
        return b"%d" % master_port in resp_command(port, "SENTINEL", "get-master-addr-by-name", "mymaster")
    except OSError:
        return False


@pytest.mark.skipif(SENTINEL is None, reason="redis-sentinel is not installed")
def test_sentinel_failover_under_load(levee_factory, origin, tmp_path):
    master, replica = Redis(), Redis()
    sentinel = None
    try:
        assert resp_command(replica.port, "REPLICAOF", "127.0.0.1", str(master.port)).startswith(b"+OK")
        wait_until(lambda: b"master_link_status:up" in resp_command(replica.port, "INFO", "replication"), 10,
                   msg="the replica syncs")
        sport = free_port()
        conf = tmp_path / "sentinel.conf"
        conf.write_text("port %d\nbind 127.0.0.1\ndir %s\n"
                        "sentinel monitor mymaster 127.0.0.1 %d 1\n"
                        "sentinel down-after-milliseconds mymaster 500\n"
                        "sentinel failover-timeout mymaster 3000\n" % (sport, tmp_path, master.port))
        sentinel = subprocess.Popen([SENTINEL, str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: sentinel_says(sport, master.port), 10, msg="the sentinel knows the master")
        pol = {"redis": {"sentinels": "127.0.0.1:%d" % sport, "master": "mymaster", "lease_wait": "2s"},
               'route "c"': {"prefix": "/", "cache_ttl": "60s"}}
        a, b = levee_factory(pol), levee_factory(pol)
        wait_until(lambda: metric_sum(a.metrics(), "levee_redis_connections_ready") >= 1, 5, msg="A on Redis")

        load = Load((a, b), "/echo/sl", 30)
        try:
            assert resp_command(sport, "SENTINEL", "FAILOVER", "mymaster").startswith(b"+OK")
            wait_until(lambda: sentinel_says(sport, replica.port), 15, msg="the sentinel promotes the replica")
            k = [0]

            def hits_on_new_master():
                k[0] += 1
                u = "/echo/after/%d" % k[0]
                get(a, u)
                time.sleep(0.05)  # let A's commit land; bounded by wait_until
                return cs(get(b, u)) == "levee; hit; detail=l2"
            wait_until(hits_on_new_master, 20, interval=0.2, msg="L2 hits on the new master")
        finally:
            load.stop()
        assert load.errors == [], load.errors[:5]
        # every worker connection follows (status reads snapshots a tick old)
        wait_until(lambda: b.status()["redis"]["master"] == "127.0.0.1:%d" % replica.port and
                   metric_sum(b.metrics(), "levee_redis_connections_ready") >= 1, 5,
                   msg="/status names the new master")
        assert metric_sum(b.metrics(), "levee_redis_failovers_total") >= 1
    finally:
        if sentinel and sentinel.poll() is None:
            sentinel.kill()
            sentinel.wait()
        master.close()
        replica.close()


def test_route_tag_purge_reaches_redis(levee_factory, origin, redis):
    pol = {"redis": {"address": "127.0.0.1:%d" % redis.port},
           'route "u"': {"match": "/echo/u/*", "cache_ttl": "60s", "cache_tags": "user-{1}"}}
    a, b, c = (levee_factory(pol) for _ in range(3))
    get(a, "/echo/u/7")
    get(a, "/echo/u/8")
    wait_until(lambda: metric_sum(a.metrics(), "levee_cache_l2_operations_total", result="committed") == 2, 3,
               msg="two entries in Redis")
    assert purge(b, "tag=user-7")[0] == 200
    assert cs(get(c, "/echo/u/7")).startswith("levee; fwd=miss")
    assert cs(get(c, "/echo/u/8")) == "levee; hit; detail=l2"


def test_surrogate_key_purge_reaches_redis(levee_factory, origin, redis):
    a, b, c = replicas(levee_factory, redis, n=3)
    u = "/headers?" + urllib.parse.urlencode({"Surrogate-Key": "team-9 misc"})
    get(a, u)
    wait_until(lambda: metric_sum(a.metrics(), "levee_cache_l2_operations_total", result="committed") == 1, 3,
               msg="the entry in Redis")
    assert cs(get(c, u)) == "levee; hit; detail=l2"
    assert purge(b, "tag=team-9")[0] == 200
    d = levee_factory({"redis": {"address": "127.0.0.1:%d" % redis.port},
                       'route "c"': {"prefix": "/", "cache_ttl": "60s"}})
    assert cs(get(d, u)).startswith("levee; fwd=miss")  # L2 no longer answers with it


def test_read_your_writes_across_workers(levee_factory, origin, redis):
    """A write answered by one worker, then a read that another worker takes
    (a new connection each time): the write's generation bump may still be
    on its way to Redis on the first worker's connection, so the second
    must not serve the entry it removes (the pending-purge fence)."""
    [lv] = replicas(levee_factory, redis, n=1)
    u = "/store/ryw"
    for i in range(300):
        assert get(lv, u).status in (200, 404)  # fills L1 and Redis with the current body
        c = HttpConn(lv.port, timeout=10)
        assert c.request("PUT", u, body=b"v%d" % i).status == 201
        c.close()
        r = get(lv, u)
        assert r.body == b"v%d" % i, "read %r right after writing v%d" % (r.body, i)


def put(lv, target, body):
    c = HttpConn(lv.port, timeout=10)
    try:
        return c.request("PUT", target, body=body)
    finally:
        c.close()


def test_write_while_redis_refuses_writes_for_memory(levee_factory, origin, redis):
    """maxmemory reached with noeviction: Redis refuses every write that adds
    data, but takes the purge (a DEL), so no replica serves the old entry
    after the write is acknowledged."""
    a, b = replicas(levee_factory, redis)
    u = "/store/oom"
    assert put(a, u, b"v1").status == 201
    fill_until_committed(a, lambda: get(a, u).body == b"v1" or pytest.fail("not v1"))
    used = int(dict(line.split(":", 1) for line in redis.command("INFO", "memory").decode().split("\r\n")
                    if ":" in line)["used_memory"])
    redis.command("CONFIG", "SET", "maxmemory-policy", "noeviction")
    redis.command("CONFIG", "SET", "maxmemory", str(max(used // 2, 1)))
    with pytest.raises(Exception, match="OOM"):
        redis.command("SET", "probe", "x")  # Redis really refuses writes now
    assert put(a, u, b"v2").status == 201
    for lv in (a, b):  # A's own next read, and B's first
        r = get(lv, u)
        assert r.body == b"v2", (cs(r), r.body)
        assert cs(r) != "levee; hit; detail=l2"
    # a purge by hand is applied too
    assert purge(b, "url=" + u)[0] == 200
    assert metric_sum(a.metrics(), "levee_cache_purges_waiting") == 0


def test_purge_redis_refuses_is_fenced_and_retried(levee_factory, origin, redis):
    """A Redis that refuses every write (here: min-replicas-to-write with no
    replica), even the purge's DEL: the write's keys are never served from
    Redis by the replica that wrote, the purge waits, visible in /status and
    the metrics, and lands once Redis takes writes again."""
    [a] = replicas(levee_factory, redis, n=1)
    u = "/store/noreplicas"
    assert put(a, u, b"v1").status == 201
    fill_until_committed(a, lambda: get(a, u).body == b"v1" or pytest.fail("not v1"))
    redis.command("CONFIG", "SET", "min-replicas-to-write", "1")
    with pytest.raises(Exception, match="NOREPLICAS"):
        redis.command("DEL", "probe")
    assert put(a, u, b"v2").status == 201
    wait_until(lambda: metric_sum(a.metrics(), "levee_cache_purges_waiting") >= 1, 3,
               msg="the refused purge waits")
    st = a.status()
    assert st["cache"]["purges"]["waiting"] >= 1 and st["cache"]["purges"]["l2_fenced"] is True
    for _ in range(3):
        r = get(a, u)
        assert r.body == b"v2" and cs(r) != "levee; hit; detail=l2", (cs(r), r.body)
    wait_until(lambda: metric_sum(a.metrics(), "levee_cache_purge_retries_total") >= 2, 5,
               msg="the purge is retried")
    redis.command("CONFIG", "SET", "min-replicas-to-write", "0")
    wait_until(lambda: metric_sum(a.metrics(), "levee_cache_purges_waiting") == 0, 10,
               msg="the purge lands once Redis takes writes")
    assert a.status()["cache"]["purges"]["l2_fenced"] is False
    assert metric_sum(a.metrics(), "levee_cache_purges_applied_late_total") >= 1
    # Redis has the purge: a fresh replica does not get v1 from it
    [b] = replicas(levee_factory, redis, n=1)
    assert get(b, u).body == b"v2"
