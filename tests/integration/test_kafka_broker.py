"""Smoke tests of the Kafka test harness itself (kafka.py): a real broker
starts, creates topics with leaders, carries keys, headers and arbitrary
bytes both ways, and keeps messages and committed group offsets across an
unclean restart on the same data directory. Needs deploy/install-kafka.sh
(or deploy/install-deps.sh) to have run."""
import pytest

# kafka_broker (session fixture) comes from conftest.py, which imports it from
# kafka.py: importing it here as well would start a second session broker.
from kafka import new_broker


def test_produce_and_consume_keys_headers_and_bytes(kafka_broker):
    kafka_broker.create_topic("smoke", partitions=3)
    sent = [
        (b"k1", b'{"purge":"url","url":"/a"}'),
        (b"k2", b"line one\nline two"),
        (b"k3", bytes(range(256))),  # NULs, control bytes, invalid UTF-8
    ]
    for key, value in sent:
        kafka_broker.produce("smoke", value, key=key, headers={"levee-service": "api"})

    got = kafka_broker.consume("smoke", 3, timeout=30)

    assert len(got) == 3, got
    assert sorted((m["key"], m["value"]) for m in got) == sorted(sent)
    for m in got:
        assert m["headers"] == [("levee-service", b"api")], m
        assert m["topic"] == "smoke"


def test_empty_and_null_values(kafka_broker):
    kafka_broker.create_topic("smoke-empty", partitions=1)
    kafka_broker.produce("smoke-empty", b"", key="empty")
    kafka_broker.produce("smoke-empty", None, key="tombstone")

    got = kafka_broker.consume("smoke-empty", 2, timeout=30)

    assert [(m["key"], m["value"]) for m in got] == [(b"empty", b""), (b"tombstone", None)]


def test_create_topic_waits_for_every_leader(kafka_broker):
    kafka_broker.create_topic("smoke-five", partitions=5)
    parts = kafka_broker.partitions("smoke-five")
    assert sorted(parts) == [0, 1, 2, 3, 4]
    assert set(parts.values()) == {1}
    kafka_broker.create_topic("smoke-five", partitions=5)  # already there: fine
    with pytest.raises(RuntimeError, match="5 partitions"):
        kafka_broker.create_topic("smoke-five", partitions=2)


def test_messages_and_group_offsets_survive_a_kill():
    with new_broker() as b:
        b.create_topic("durable", partitions=3)
        b.create_topic("grouped", partitions=1)  # one partition: a known order
        for i in range(3):
            b.produce("durable", b"d%d" % i, key=b"k%d" % i, headers={"n": str(i)})
            b.produce("grouped", b"g%d" % i)
        # The group reads two and commits them.
        first = b.consume("grouped", 2, timeout=30, group="smoke-group")
        assert [m["value"] for m in first] == [b"g0", b"g1"]

        b.kill()  # SIGKILL: no clean shutdown, no final flush
        b.start()  # same data dir and ports

        after = b.consume("durable", 3, timeout=30)
        assert sorted((m["key"], m["value"], m["headers"]) for m in after) == [
            (b"k%d" % i, b"d%d" % i, [("n", b"%d" % i)]) for i in range(3)]
        # The group goes on after its committed offset.
        rest = b.consume("grouped", 1, timeout=30, group="smoke-group")
        assert [m["value"] for m in rest] == [b"g2"]
