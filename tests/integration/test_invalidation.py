"""Invalidation across replicas over a real Kafka broker (KRaft, one node,
tests/integration/kafka.py): a write at one levee purges every levee's L1
and Redis; other producers (kcat) purge by key, prefix and tag; malformed
messages are skipped; nothing is lost when Kafka or levee restarts (the
outbox); duplicates are harmless; per-key order holds; a consumer beyond
its lag budget stops trusting its L1; a full outbox stops caching."""
import json
import os
import threading
import time
import urllib.parse
import uuid

import pytest

from harness import cache_status_core, HttpConn, metric_sum, once, wait_until
from kafka import new_broker

SERVICE = "demo"


def topic_name():
    return "inv-" + uuid.uuid4().hex[:10]


def cs(r):
    return cache_status_core(r.header("cache-status", ""))


def request(lv, method, target, body=None, headers=()):
    return once(lv.port, method, target, headers, body)


def get(lv, target):
    return request(lv, "GET", target)


def put(lv, target, body):
    r = request(lv, "PUT", target, body=body)
    assert r.status == 201, (r.status, r.body)
    return r


def origin_put(origin, target, body):
    """Sets a resource behind levee's back (no invalidation published)."""
    c = HttpConn(int(origin.addr.rsplit(":", 1)[1]), timeout=10)
    try:
        assert c.request("PUT", target, body=body).status == 201
    finally:
        c.close()


def kstatus(lv):
    return lv.status()["kafka"]


def wait_synced(*levees, timeout=30):
    for lv in levees:
        wait_until(lambda: kstatus(lv)["cache"] == "normal", timeout,
                   msg="levee on :%d consuming and caught up" % lv.port)


class Cluster:
    """Levee replicas sharing one topic (and Redis, when given)."""

    def __init__(self, levee_factory, tmp_path, broker, topic=None, redis=None, route=None, kafka=None):
        self.factory = levee_factory
        self.tmp = tmp_path
        self.broker = broker
        self.topic = topic or topic_name()
        self.redis = redis
        self.route = route or {"prefix": "/", "cache_ttl": "60s"}
        self.kafka = kafka or {}
        self.n = 0

    @classmethod
    def on_new_topic(cls, levee_factory, tmp_path, broker, **kw):
        t = topic_name()
        broker.create_topic(t, partitions=3)
        return cls(levee_factory, tmp_path, broker, t, **kw)

    def sections(self, name, **kafka):
        k = {"brokers": self.broker.bootstrap, "topic": self.topic, "instance": name,
             "outbox": str(self.tmp / ("outbox-" + name)), "delivery_timeout": "1s", "lag_budget": "2s"}
        k.update(self.kafka)
        k.update(kafka)
        sec = {"kafka": k, 'route "c"': self.route}
        if self.redis:
            sec["redis"] = {"address": "127.0.0.1:%d" % self.redis.port}
        return sec

    def levee(self, name=None, wait_sync=True, **kafka):
        name = name or "lv%d" % self.n
        self.n += 1
        lv = self.factory(self.sections(name, **kafka))
        lv.name = name
        if wait_sync:
            wait_synced(lv)
        return lv


@pytest.fixture
def topic(kafka_broker):
    t = topic_name()
    kafka_broker.create_topic(t, partitions=3)
    return t


def event(id=None, service=SERVICE, **kw):
    m = {"v": 1, "id": id or uuid.uuid4().hex, "service": service}
    m.update(kw)
    return json.dumps(m).encode()


def publish(broker, topic, value, key="test", service=SERVICE):
    broker.produce(topic, value, key=key, headers={"levee-service": service} if service else None)


def cached(lv, target):
    """GETs target twice; the second must be an L1 hit."""
    get(lv, target)
    r = get(lv, target)
    assert cs(r) == "levee; hit", (target, cs(r))
    return r


def is_hit(lv, target):
    return cs(get(lv, target)) == "levee; hit"


def wait_fresh(lv, target, body, timeout):
    t0 = time.monotonic()
    wait_until(lambda: get(lv, target).body == body, timeout,
               msg="%s at %s serves %r" % (target, getattr(lv, "name", lv.port), body))
    return time.monotonic() - t0


# ---- a write at A reaches B and C ------------------------------------------


def test_write_at_one_replica_purges_the_others(levee_factory, origin, kafka_broker, topic, redis, tmp_path):
    cl = Cluster(levee_factory, tmp_path, kafka_broker, topic, redis=redis)
    a, b, c = cl.levee("a"), cl.levee("b"), cl.levee("c")
    u = "/store/inv-%s" % uuid.uuid4().hex[:6]
    origin_put(origin, u, b"v1")
    for lv in (a, b, c):
        assert cached(lv, u).body == b"v1"
    t0 = time.monotonic()
    put(a, u, b"v2")
    # A purged itself and Redis before answering; B and C hold v1 in their
    # L1 for 60 s unless the event reaches them
    assert get(a, u).body == b"v2"
    took = [wait_fresh(lv, u, b"v2", timeout=5) for lv in (b, c)]
    assert max(took) < 1.0, "invalidation took %.3f s" % max(took)
    for lv in (b, c):
        assert metric_sum(lv.metrics(), "levee_kafka_events_applied_total") >= 1
        assert cached(lv, u).body == b"v2"
    m = a.metrics()
    assert metric_sum(m, "levee_kafka_events_delivered_total") >= 1
    assert metric_sum(m, "levee_kafka_events_spooled_total") == 0
    print("write at A fresh at B and C after %.1f / %.1f ms (time %.3f s in all)"
          % (took[0] * 1000, took[1] * 1000, time.monotonic() - t0))


def test_route_invalidations_and_surrogate_keys_are_broadcast(levee_factory, origin, kafka_broker, topic,
                                                              tmp_path):
    cl = Cluster(levee_factory, tmp_path, kafka_broker, topic,
                 route={"match": "/store/*", "cache_ttl": "60s", "cache_tags": "item-{1}",
                        "invalidate": "/store/list, tag:item-{1}"})
    a, b = cl.levee("a"), cl.levee("b")
    for u in ("/store/list", "/store/sub", "/store/other", "/store/k9"):
        origin_put(origin, u, b"x")
        cached(b, u)
    # a write to /store/other purges its own URL, /store/list (declared), and
    # the tag item-other; /store/k9 (tag item-k9) stays
    put(a, "/store/other", b"y")
    wait_until(lambda: not is_hit(b, "/store/list"), 5, msg="declared invalidation applied at B")
    wait_fresh(b, "/store/other", b"y", timeout=5)  # its own message, maybe on another partition
    assert is_hit(b, "/store/k9")


# ---- other producers --------------------------------------------------------


def test_kcat_events_purge_by_key_prefix_and_tag(levee_factory, origin, kafka_broker, topic, tmp_path):
    cl = Cluster(levee_factory, tmp_path, kafka_broker, topic)
    b = cl.levee("b")
    tagged = "/headers?" + urllib.parse.urlencode({"Surrogate-Key": "team-7 misc"})
    for u in ("/bytes?n=1", "/echo/a/1", "/echo/a/2", "/echo/b/1", tagged):
        cached(b, u)
    publish(kafka_broker, topic, event(keys=["/bytes?n=1"]), key="demo|key|/bytes?n=1")
    wait_until(lambda: not is_hit(b, "/bytes?n=1"), 5, msg="key purge applied")
    assert is_hit(b, "/echo/a/1") and is_hit(b, tagged)
    publish(kafka_broker, topic, event(prefixes=["/echo/a/"]), key="demo|prefix|/echo/a/")
    wait_until(lambda: not is_hit(b, "/echo/a/1"), 5, msg="prefix purge applied")
    assert not is_hit(b, "/echo/a/2")
    assert is_hit(b, "/echo/b/1")
    publish(kafka_broker, topic, event(tags=["team-7"]), key="demo|tag|team-7")
    wait_until(lambda: not is_hit(b, tagged), 5, msg="tag purge applied")
    assert is_hit(b, "/echo/b/1")
    # a message for another service is ignored, with or without the header
    cached(b, "/echo/b/2")
    publish(kafka_broker, topic, event(service="other", keys=["/echo/b/2"]), service="other")
    publish(kafka_broker, topic, event(service="other", keys=["/echo/b/2"]), service=None)
    wait_until(lambda: metric_sum(b.metrics(), "levee_kafka_events_ignored_total") == 2, 5,
               msg="two events of another service ignored")
    assert is_hit(b, "/echo/b/2")


def test_malformed_messages_are_skipped_and_later_ones_apply(levee_factory, origin, kafka_broker, topic,
                                                             tmp_path):
    cl = Cluster(levee_factory, tmp_path, kafka_broker, topic)
    b = cl.levee("b")
    cached(b, "/echo/m")
    bad = [
        (b"not json at all", "syntax"),
        (b'{"v":1,"id":"x","service":"demo","keys":["/echo/m"]', "syntax"),
        (event(keys=["/echo/m"]).replace(b'"v": 1', b'"v": 2'), "version"),
        (json.dumps({"v": 1, "service": SERVICE, "keys": ["/echo/m"]}).encode(), "field"),
        (event(keys=["echo/m"]), "field"),
        (event(), "empty"),
        (event(tags=["t%d" % i for i in range(300)]), "limit"),
        (event(keys=["/echo/m"], pad="x" * 70000), "too_big"),
    ]
    for value, _ in bad:
        publish(kafka_broker, topic, value)
    publish(kafka_broker, topic, event(keys=["/echo/m"]))
    wait_until(lambda: not is_hit(b, "/echo/m"), 10, msg="the valid event after the bad ones applied")
    m = b.metrics()
    for kind in ("syntax", "version", "field", "empty", "limit", "too_big"):
        want = sum(1 for _, k in bad if k == kind)
        assert metric_sum(m, "levee_kafka_malformed_total", reason=kind) == want, kind
    assert metric_sum(m, "levee_kafka_events_applied_total") == 1
    # logged once per kind, not once per message
    assert b.stderr().count("skipped a malformed message (syntax") == 1
    assert b.proc.poll() is None


def test_duplicate_delivery_is_harmless(levee_factory, origin, kafka_broker, topic, tmp_path):
    cl = Cluster(levee_factory, tmp_path, kafka_broker, topic)
    b = cl.levee("b")
    cached(b, "/echo/d")
    ev = event(id="dup-1", keys=["/echo/d"])
    publish(kafka_broker, topic, ev)
    wait_until(lambda: not is_hit(b, "/echo/d"), 5, msg="first copy applied")
    cached(b, "/echo/d")
    publish(kafka_broker, topic, ev)
    wait_until(lambda: metric_sum(b.metrics(), "levee_kafka_duplicates_total") == 1, 5, msg="duplicate seen")
    assert is_hit(b, "/echo/d"), "the duplicate must not purge what was stored after the first copy"
    assert metric_sum(b.metrics(), "levee_kafka_events_applied_total") == 1


def test_per_key_order_holds(levee_factory, origin, kafka_broker, topic, tmp_path):
    cl = Cluster(levee_factory, tmp_path, kafka_broker, topic)
    a = cl.levee("a")
    c = HttpConn(a.port, timeout=10)
    for i in range(60):
        for k in ("p", "q", "r"):
            assert c.request("PUT", "/store/%s" % k, body=b"%d" % i).status == 201
    c.close()
    msgs = kafka_broker.consume(topic, 180, timeout=30)
    by_key = {}
    for m in msgs:
        v = json.loads(m["value"])
        seq = int(v["id"].rsplit(".", 1)[1])
        by_key.setdefault(m["key"].decode(), []).append((m["partition"], m["offset"], seq))
    assert sorted(by_key) == ["demo|key|/store/%s" % k for k in ("p", "q", "r")]
    for key, rows in by_key.items():
        assert len({p for p, _, _ in rows}) == 1, "one key, one partition: %s" % key
        rows.sort(key=lambda r: r[1])
        seqs = [s for _, _, s in rows]
        assert seqs == sorted(seqs), "events of %s out of order" % key


def test_remote_write_racing_a_fill_is_not_outlived(levee_factory, origin, kafka_broker, topic, tmp_path):
    """B starts a slow fill; A's invalidation reaches B while it is in flight:
    the fill's body must not be stored (B's purge log refuses it)."""
    cl = Cluster(levee_factory, tmp_path, kafka_broker, topic)
    a, b = cl.levee("a"), cl.levee("b")
    u = "/slow?head_ms=1500&n=5"
    done = []
    t = threading.Thread(target=lambda: done.append(get(b, u)))
    t.start()
    origin.wait_event(lambda e: e.get("event") == "request" and e["target"] == u, origin.start_mark)
    hc = HttpConn(a.admin_port)
    assert hc.request("POST", "/purge?url=" + urllib.parse.quote(u, safe="")).status == 200
    hc.close()
    wait_until(lambda: metric_sum(b.metrics(), "levee_kafka_events_applied_total") == 1, 5,
               msg="A's purge applied at B during B's fill")
    t.join()
    assert done[0].status == 200
    assert metric_sum(b.metrics(), "levee_cache_fill_refused_total") == 1
    assert cs(get(b, u)).startswith("levee; fwd=miss")


# ---- nothing is lost --------------------------------------------------------


def bulk_put(lv, targets, body):
    """PUTs through levee `lv`, or straight to the origin when lv is the
    origin (no invalidation published)."""
    port = lv.port if hasattr(lv, "port") else int(lv.addr.rsplit(":", 1)[1])
    c = HttpConn(port, timeout=30)
    for t in targets:
        r = c.request("PUT", t, body=body)
        assert r.status == 201, (t, r.status)
    c.close()


def writer_and_reader(levee_factory, tmp_path, origin, broker, urls):
    """A writes; B holds every url's "old" body in its L1 and never stops
    trusting it (lag budget 1 h), so only the events themselves can make
    it fresh. Returns (cluster, a, b)."""
    cl = Cluster.on_new_topic(levee_factory, tmp_path, broker)
    a = cl.levee("a")
    b = cl.levee("b", lag_budget="1h")
    bulk_put(origin, urls, b"old")
    c = HttpConn(b.port, timeout=30)
    for u in urls:
        c.request("GET", u)
    assert cache_status_core(c.request("GET", urls[-1]).header("cache-status")) == "levee; hit"
    c.close()
    return cl, a, b


def wait_fresh_everywhere(lv, urls, body, timeout):
    """Polls until every url serves `body` at lv (urls already fresh are not
    asked again, so their answers stay what was checked)."""
    left = list(urls)

    def check():
        c = HttpConn(lv.port, timeout=30)
        left[:] = [u for u in left if c.request("GET", u).body != body]
        c.close()
        return not left
    wait_until(check, timeout, interval=0.2, msg="every url fresh (still stale: %d)" % len(left))


def test_kafka_down_during_1000_writes_loses_nothing(levee_factory, origin, tmp_path):
    with new_broker() as broker:
        urls = ["/store/lost-%d" % i for i in range(1000)]
        cl, a, b = writer_and_reader(levee_factory, tmp_path, origin, broker, urls)
        applied0 = metric_sum(b.metrics(), "levee_kafka_events_applied_total")
        broker.kill()
        bulk_put(a, urls, b"new")
        wait_until(lambda: kstatus(a)["outbox"]["events"] == 1000, 30, msg="A spooled all 1000 events")
        assert kstatus(a)["publishing"] == "outbox"
        broker.start()
        wait_until(lambda: kstatus(a)["outbox"]["events"] == 0, 60, msg="A's outbox replayed")
        wait_until(lambda: metric_sum(b.metrics(), "levee_kafka_events_applied_total") - applied0 >= 1000, 60,
                   msg="B applied all 1000")
        # B has applied 1000 events: everything must be fresh now, at once
        wait_fresh_everywhere(b, urls, b"new", timeout=0.1)
        m = a.metrics()
        assert metric_sum(m, "levee_kafka_events_lost_total") == 0
        assert metric_sum(m, "levee_kafka_outbox_replayed_total") >= 1000


def test_levee_restarted_while_kafka_is_down_replays_its_outbox(levee_factory, origin, tmp_path):
    with new_broker() as broker:
        urls = ["/store/rs-%d" % i for i in range(200)]
        cl, a, b = writer_and_reader(levee_factory, tmp_path, origin, broker, urls)
        broker.kill()
        bulk_put(a, urls, b"new")
        # SIGTERM: what Kafka has not taken goes to the outbox on the way out
        a.signal(15)
        assert a.wait_exit(30) == 0
        a.expected_exit = True
        a2 = cl.factory(cl.sections("a"))  # the same outbox directory
        wait_until(lambda: kstatus(a2)["outbox"]["events"] == 200, 10, msg="the outbox survived the restart")
        broker.start()
        wait_until(lambda: kstatus(a2)["outbox"]["events"] == 0, 60, msg="replayed after restart")
        wait_fresh_everywhere(b, urls, b"new", timeout=30)


def test_consumer_beyond_its_lag_budget_skips_its_l1(levee_factory, origin, tmp_path):
    with new_broker() as broker:
        cl = Cluster.on_new_topic(levee_factory, tmp_path, broker)
        b = cl.levee("b", lag_budget="1s")
        cached(b, "/echo/lag")
        resets = metric_sum(b.metrics(), "levee_cache_l1_resets_total")
        broker.kill()
        wait_until(lambda: kstatus(b)["cache"] == "skip-l1", 15, msg="B stops trusting its L1")
        st = kstatus(b)
        assert st["over_budget"] and not st["broker_up"]
        assert not is_hit(b, "/echo/lag")
        assert metric_sum(b.metrics(), "levee_cache_l1_trusted") == 0
        broker.start()
        wait_until(lambda: kstatus(b)["cache"] == "normal", 60, msg="B trusts its L1 again")
        assert metric_sum(b.metrics(), "levee_cache_l1_resets_total") == resets + 1


def test_full_outbox_stops_caching_and_purges_everything_on_replay(levee_factory, origin, tmp_path):
    with new_broker() as broker:
        cl = Cluster.on_new_topic(levee_factory, tmp_path, broker)
        b = cl.levee("b", lag_budget="1h")
        cached(b, "/echo/full")
        a = cl.levee("a", outbox_max="1MiB")
        broker.kill()
        c = HttpConn(a.port, timeout=30)
        n = 0
        while not kstatus(a)["outbox"]["overflowed"]:
            for _ in range(500):
                assert c.request("PUT", "/store/f%d" % n, body=b"x").status == 201
                n += 1
            assert n < 40000, "the outbox never filled"
        c.close()
        assert kstatus(a)["cache"] == "off"
        r = get(a, "/echo/full")
        assert r.status == 200 and cs(r) == "levee; fwd=bypass; detail=outbox-full"
        m = a.metrics()
        assert metric_sum(m, "levee_kafka_outbox_overflows_total") == 1
        assert metric_sum(m, "levee_kafka_events_lost_total") == 0
        broker.start()
        wait_until(lambda: kstatus(a)["cache"] == "normal", 120, msg="A's outbox drained")
        # the purge-everything event reached B
        wait_until(lambda: not is_hit(b, "/echo/full"), 30, msg="B purged everything")


def test_restarted_replica_resumes_its_group(levee_factory, origin, kafka_broker, topic, tmp_path):
    cl = Cluster(levee_factory, tmp_path, kafka_broker, topic)
    a, b = cl.levee("a"), cl.levee("b")
    b.signal(15)
    assert b.wait_exit(30) == 0
    b.expected_exit = True
    bulk_put(a, ["/store/res-%d" % i for i in range(20)], b"x")
    b2 = cl.levee("b")
    # the same group resumes at its committed offsets: it reads the 20
    # events published while it was down, not only those after its start
    wait_until(lambda: metric_sum(b2.metrics(), "levee_kafka_events_consumed_total") >= 20, 20,
               msg="B consumed what was published while it was down")


def test_sasl_authenticates_and_a_wrong_password_loses_nothing(levee_factory, origin, tmp_path):
    """Brokers that require SASL (PLAIN here): the right credentials work end
    to end; a wrong password is refused, and what the writer publishes then
    waits in its outbox instead of being lost."""
    with new_broker(sasl_users={"levee": "s3cret"}) as broker:
        t = topic_name()
        broker.create_topic(t, partitions=3)
        sasl = {"brokers": broker.sasl_bootstrap, "security_protocol": "sasl_plaintext",
                "sasl_mechanism": "PLAIN", "sasl_username": "levee", "sasl_password": "${KAFKA_PASSWORD}"}
        cl = Cluster(levee_factory, tmp_path, broker, t, kafka=sasl)
        cl.factory = lambda sec: levee_factory(sec, env={"KAFKA_PASSWORD": "s3cret"})
        a, b = cl.levee("a"), cl.levee("b")
        origin_put(origin, "/store/sasl", b"v1")
        assert cached(b, "/store/sasl").body == b"v1"
        put(a, "/store/sasl", b"v2")
        wait_fresh(b, "/store/sasl", b"v2", timeout=5)

        cl.factory = lambda sec: levee_factory(sec, env={"KAFKA_PASSWORD": "wrong"}, wait="healthz")
        bad = cl.levee("bad", wait_sync=False)
        put(bad, "/store/sasl", b"v3")
        wait_until(lambda: kstatus(bad)["outbox"]["events"] >= 1, 15, msg="the refused writer spooled its event")
        st = kstatus(bad)
        assert not st["broker_up"] and st["cache"] == "skip-l1"
        assert metric_sum(bad.metrics(), "levee_kafka_events_lost_total") == 0
