"""Coordinated degradation over the Kafka control topic (proxy/control/,
docs/control-message.md), over a real broker: a tier forced with
`levee tier force` reaches every replica and ends on time; unsigned,
wrongly signed and expired commands change nothing and are counted; a
replica started while a command is in force comes up forced; each replica
publishes its own tier changes, signed.

The tiers' own conditions never hold (inflight > 1000000), so every level
seen here comes from a command."""
import hashlib
import hmac
import json
import os
import signal
import subprocess
import time
import uuid

from harness import LEVEE_BIN, free_port, metric_sum, wait_until
from kafka import new_broker

KEY = "control-test-key-0123456789abcdef"
SERVICE = "demo"


def ctl_topic():
    return "ctl-" + uuid.uuid4().hex[:10]


def sign(value, key=KEY):
    return "hmac-sha256=" + hmac.new(key.encode(), value, hashlib.sha256).hexdigest()


def tiers(lv):
    return lv.status()["tiers"]


def control(lv):
    return lv.status()["control"]


class Replicas:
    """levees of one service sharing a control topic (and an invalidation
    topic, which [kafka] needs)."""

    def __init__(self, levee_factory, tmp_path, broker):
        self.factory, self.tmp, self.broker = levee_factory, tmp_path, broker
        self.topic = ctl_topic()
        self.inval = "inv-" + uuid.uuid4().hex[:10]
        broker.create_topic(self.topic, partitions=3)
        broker.create_topic(self.inval, partitions=1)
        self.n = 0

    def levee(self, key=KEY):
        name = "r%d" % self.n
        self.n += 1
        sections = {
            "levee": {"service": SERVICE},
            "kafka": {"brokers": self.broker.bootstrap, "topic": self.inval, "instance": name,
                      "outbox": str(self.tmp / ("outbox-" + name)), "delivery_timeout": "2s",
                      "control_topic": self.topic},
            "tiers": {"tick": "100ms"},
            'tier "elevated"': {"enter": "inflight > 1000000", "exit": "inflight < 1", "hold": "0s"},
            'tier "shed"': {"enter": "inflight > 1000000", "exit": "inflight < 1", "hold": "0s",
                            "shed": "optional"},
        }
        env = {"LEVEE_CONTROL_KEY": key} if key is not None else {}
        lv = self.factory(sections, env=env)
        lv.name = name
        wait_until(lambda: control(lv)["caught_up"], 30, msg="%s has read the control topic" % name)
        return lv

    def cli(self, *args, key=KEY):
        env = dict(os.environ, LEVEE_CONTROL_KEY=key)
        r = subprocess.run([LEVEE_BIN, "tier"] + list(args) + ["--brokers", self.broker.bootstrap,
                                                               "--topic", self.topic, "--service", SERVICE],
                           env=env, capture_output=True, timeout=30)
        assert r.returncode == 0, (r.returncode, r.stderr.decode())
        return json.loads(r.stdout)

    def produce(self, cmd, headers=None):
        value = json.dumps(cmd, separators=(",", ":")).encode()
        self.broker.produce(self.topic, value, key=SERVICE, headers=headers(value) if headers else None)
        return value


def forced_tier(lv):
    f = tiers(lv)["forced"]
    return f["tier"] if f else None


def test_forced_tier_reaches_every_replica_and_expires(levee_factory, kafka_broker, tmp_path):
    rs = Replicas(levee_factory, tmp_path, kafka_broker)
    lvs = [rs.levee() for _ in range(3)]
    for lv in lvs:
        t = tiers(lv)
        assert t["level"] == 0 and t["tier"] == "normal" and t["forced"] is None, t

    cmd = rs.cli("force", "--tier", "shed", "--for", "3s", "--reason", "load test", "--id", "ops-1")
    sent = time.time()
    assert cmd["type"] == "force-tier" and cmd["tier"] == "shed" and cmd["id"] == "ops-1", cmd
    until = cmd["until"] / 1000.0

    arrived = {}

    def all_forced():
        for lv in lvs:
            if lv.name not in arrived and forced_tier(lv) == "shed":
                arrived[lv.name] = time.time()
        return len(arrived) == len(lvs)

    wait_until(all_forced, 5, interval=0.01, msg="every replica forced into shed")
    lat = sorted(arrived[lv.name] - sent for lv in lvs)
    print("\npropagation after the CLI returned: %s s; spread %.3f s; from issued_at: %.3f s" % (
        ", ".join("%.3f" % x for x in lat), lat[-1] - lat[0], max(arrived.values()) - cmd["issued_at"] / 1000.0))
    assert lat[-1] < 1.0, lat
    for lv in lvs:
        t = tiers(lv)
        assert t["tier"] == "shed", t
        f = t["forced"]
        assert f["source"] == "control" and f["id"] == "ops-1" and f["reason"] == "load test", f
        assert f["until_unix_ms"] == cmd["until"], (f, cmd)
        last = control(lv)["last_applied"]
        assert last["id"] == "ops-1" and last["tier"] == "shed" and last["until_unix_ms"] == cmd["until"], last
        assert metric_sum(lv.metrics(), "levee_control_commands_applied_total") == 1

    ended = {}

    def all_ended():
        for lv in lvs:
            if lv.name not in ended and tiers(lv)["forced"] is None:
                ended[lv.name] = time.time()
        return len(ended) == len(lvs)

    wait_until(all_ended, until - time.time() + 5, interval=0.01, msg="every forcing ended")
    late = sorted(ended[lv.name] - until for lv in lvs)
    print("forcing ended after until by: %s s (tick 0.1 s)" % ", ".join("%.3f" % x for x in late))
    assert all(-0.05 <= x <= 0.35 for x in late), late
    for lv in lvs:
        wait_until(lambda: tiers(lv)["level"] == 0, 5, msg="%s back to normal" % lv.name)

    # each replica published its changes, signed: into shed, and out of it
    def events():
        msgs = kafka_broker.consume(rs.topic, 1 + 2 * len(lvs), timeout=10)
        out = []
        for m in msgs:
            v = json.loads(m["value"])
            if v.get("type") == "tier-change":
                out.append((m, v))
        return out

    evs = wait_until(lambda: (lambda e: e if len({v["instance"] for _, v in e if v["to"] == "normal"}) == 3
                              else None)(events()), 15, interval=0.2, msg="tier-change events of all three")
    for lv in lvs:
        mine = [(m, v) for m, v in evs if v["instance"] == lv.name]
        up = [v for _, v in mine if v["to"] == "shed"]
        assert len(up) == 1, mine
        v = up[0]
        assert v["v"] == 1 and v["service"] == SERVICE and v["from"] == "normal" and v["level"] == 2, v
        assert v["forced"]["id"] == "ops-1" and v["forced"]["source"] == "control", v
        assert v["forced"]["until_unix_ms"] == cmd["until"], v
        assert isinstance(v["signals"], dict) and isinstance(v["time"], int), v
        for m, v in mine:
            hdr = dict((n, val) for n, val in m["headers"])
            assert hdr["levee-signature"].decode() == sign(m["value"]), (hdr, m["value"])
            assert m["key"] == SERVICE.encode(), m
        assert metric_sum(lv.metrics(), "levee_control_events_published_total") >= 2
        assert metric_sum(lv.metrics(), "levee_control_events_failed_total") == 0


def test_unsigned_wrongly_signed_and_expired_commands_change_nothing(levee_factory, kafka_broker, tmp_path):
    rs = Replicas(levee_factory, tmp_path, kafka_broker)
    lv = rs.levee()
    now = int(time.time() * 1000)

    def cmd(i, until):
        return {"v": 1, "type": "force-tier", "id": "bad-%d" % i, "service": SERVICE, "tier": "shed",
                "until": until, "reason": "should not apply"}

    rs.produce(cmd(1, now + 60000))                                   # no header
    rs.produce(cmd(2, now + 60000), lambda v: {"levee-signature": sign(v, "another key, long enough")})
    rs.produce(cmd(3, now + 60000), lambda v: {"levee-signature": sign(v + b" ")})
    rs.produce(cmd(4, now - 1000), lambda v: {"levee-signature": sign(v)})  # expired at arrival
    other = dict(cmd(5, now + 60000), service="another")
    rs.produce(other, lambda v: {"levee-signature": sign(v)})

    def counted():
        c = control(lv)
        return (c["refused"]["unsigned"] == 1 and c["refused"]["bad-signature"] == 2
                and c["ignored"]["expired"] == 1 and c["ignored"]["other-service"] == 1)

    wait_until(counted, 10, msg="the five records counted")
    c = control(lv)
    assert c["applied"] == 0 and c["last_applied"] is None, c
    assert c["key"] is True and c["topic"] == rs.topic, c
    assert KEY not in json.dumps(lv.status()) and KEY.encode() not in lv.admin_get("/metrics")[2]
    t = tiers(lv)
    assert t["level"] == 0 and t["forced"] is None, t
    m = lv.metrics()
    assert metric_sum(m, "levee_control_commands_refused_total", reason="unsigned") == 1
    assert metric_sum(m, "levee_control_commands_refused_total", reason="bad_signature") == 2
    assert metric_sum(m, "levee_control_commands_ignored_total", reason="expired") == 1
    assert metric_sum(m, "levee_control_commands_ignored_total", reason="other_service") == 1
    said = lv.log_lines("control: refused a command")
    assert said and said[0]["level"] == "warn", said

    # a good one still applies after them, once however often it comes
    good = rs.produce(dict(cmd(6, now + 60000), reason="fine"), lambda v: {"levee-signature": sign(v)})
    kafka_broker.produce(rs.topic, good, key=SERVICE, headers={"levee-signature": sign(good)})
    wait_until(lambda: forced_tier(lv) == "shed", 5, msg="the signed command applied")
    wait_until(lambda: control(lv)["ignored"]["duplicate"] == 1, 5, msg="the repeat ignored")
    assert control(lv)["applied"] == 1
    rs.cli("clear", "--id", "bad-6")
    wait_until(lambda: tiers(lv)["forced"] is None, 5, msg="cleared")


def test_the_documented_kcat_and_openssl_recipe_is_accepted(levee_factory, kafka_broker, tmp_path):
    """docs/control-message.md, "Sending a command by hand", as written."""
    rs = Replicas(levee_factory, tmp_path, kafka_broker)
    lv = rs.levee()
    script = r"""
until=$(( ($(date +%s) + 600) * 1000 ))
msg='{"v":1,"type":"force-tier","id":"ops-kcat-1","service":"demo","tier":"shed","until":'$until',"reason":"by hand"}'
sig=$(printf '%s' "$msg" | openssl dgst -sha256 -hmac "$KEY" | sed 's/^.*= //')
printf '%s' "$msg" | kcat -P -b "$BROKERS" -t "$TOPIC" -k demo -H "levee-signature=hmac-sha256=$sig"
"""
    r = subprocess.run(["bash", "-c", script], capture_output=True, timeout=30,
                       env=dict(os.environ, KEY=KEY, BROKERS=kafka_broker.bootstrap, TOPIC=rs.topic))
    assert r.returncode == 0, r.stderr.decode()
    wait_until(lambda: forced_tier(lv) == "shed", 5, msg="the kcat command applied")
    assert tiers(lv)["forced"]["id"] == "ops-kcat-1"

    # the CLI from inside the pod: brokers, topic, service and key variable from its policy
    r = subprocess.run([LEVEE_BIN, "tier", "clear", "--policy", lv.policy_path, "--id", "ops-kcat-1"],
                       env=dict(os.environ, LEVEE_CONTROL_KEY=KEY), capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr.decode()
    sent = json.loads(r.stdout)
    assert sent["type"] == "clear-tier" and sent["clear"] == "ops-kcat-1" and sent["service"] == SERVICE, sent
    wait_until(lambda: tiers(lv)["forced"] is None, 5, msg="cleared with --policy")
    r = subprocess.run([LEVEE_BIN, "tier", "force", "--policy", lv.policy_path, "--tier", "shed"],
                       env=dict(os.environ, LEVEE_CONTROL_KEY=KEY), capture_output=True, timeout=30)
    assert r.returncode == 2 and b"--for" in r.stderr, (r.returncode, r.stderr)


def test_a_levee_started_later_comes_up_forced(levee_factory, kafka_broker, tmp_path):
    rs = Replicas(levee_factory, tmp_path, kafka_broker)
    # an older forcing, cleared, then the one in force: only the last counts
    rs.cli("force", "--tier", "elevated", "--for", "1h", "--id", "old-1")
    rs.cli("clear", "--id", "old-1")
    cmd = rs.cli("force", "--tier", "shed", "--for", "2m", "--id", "now-1", "--reason", "incident")
    lv = rs.levee()
    wait_until(lambda: forced_tier(lv) == "shed", 5, msg="the command in force applied at start")
    f = tiers(lv)["forced"]
    assert f["id"] == "now-1" and f["until_unix_ms"] == cmd["until"] and f["reason"] == "incident", f
    c = control(lv)
    assert c["applied"] == 1 and c["last_applied"]["id"] == "now-1", c

    # the same replica restarted: it finds the command again
    lv.signal(signal.SIGTERM)
    assert lv.wait_exit(15) == 0
    lv.start()
    wait_until(lambda: control(lv)["caught_up"], 30, msg="caught up again after the restart")
    wait_until(lambda: forced_tier(lv) == "shed", 5, msg="forced again after the restart")
    assert tiers(lv)["forced"]["id"] == "now-1"

    # without a key, the same command is refused (and nothing is forced)
    nokey = rs.levee(key=None)
    assert control(nokey)["key"] is False
    assert tiers(nokey)["forced"] is None
    # the three commands, and the first replica's signed tier-change event
    wait_until(lambda: control(nokey)["refused"]["no-key"] >= 3, 5, msg="refused for want of a key")
    assert control(nokey)["applied"] == 0


def test_kafka_away_blocks_nothing(levee_factory, tmp_path):
    """No broker at all: levee starts, is ready, serves, keeps trying to
    read the control topic, and stops promptly."""
    dead = "127.0.0.1:%d" % free_port()
    lv = levee_factory({
        "levee": {"service": SERVICE, "drain_delay": "0s"},
        "kafka": {"brokers": dead, "topic": "inv-x", "instance": "lonely",
                  "outbox": str(tmp_path / "outbox"), "control_topic": "ctl-x"},
        'tier "shed"': {"enter": "inflight > 1000000", "exit": "inflight < 1", "shed": "optional"},
    }, env={"LEVEE_CONTROL_KEY": KEY})
    for _ in range(3):
        r = lv.get("/echo")
        assert r.status == 200, r.status
    c = control(lv)
    assert c["enabled"] is True and c["assigned_partitions"] == 0 and c["caught_up"] is False, c
    assert tiers(lv)["level"] == 0
    t0 = time.monotonic()
    lv.signal(signal.SIGTERM)
    assert lv.wait_exit(15) == 0
    lv.expected_exit = True
    took = time.monotonic() - t0
    print("\nstopped in %.2f s with Kafka away" % took)
    assert took < 8, took


def test_commands_and_events_across_a_broker_restart(levee_factory, tmp_path):
    """The broker killed: an operator's forcing still works and its event is
    counted failed, not waited for; the broker back on the same data: the
    replica reads commands again without a restart."""
    with new_broker() as broker:
        _across_a_restart(levee_factory, tmp_path, broker)


def _across_a_restart(levee_factory, tmp_path, broker):
    rs = Replicas(levee_factory, tmp_path, broker)
    lv = rs.levee()
    broker.kill()
    r = lv.admin_request("POST", "/tier?force=elevated&for=30s&reason=by%20hand")
    assert r.status == 200, (r.status, r.body)
    assert tiers(lv)["forced"]["source"] == "admin"
    assert lv.get("/echo").status == 200
    wait_until(lambda: control(lv)["events"]["failed"] >= 1, 15,
               msg="the event of the admin forcing counted failed ([kafka] delivery_timeout 2s)")
    broker.start()
    cmd = rs.cli("force", "--tier", "shed", "--for", "1m", "--id", "after-restart")
    wait_until(lambda: forced_tier(lv) == "shed", 30, msg="a command after the broker came back")
    assert tiers(lv)["forced"]["id"] == "after-restart" and tiers(lv)["forced"]["until_unix_ms"] == cmd["until"]
    wait_until(lambda: control(lv)["events"]["published"] >= 1, 15, msg="an event delivered again")
