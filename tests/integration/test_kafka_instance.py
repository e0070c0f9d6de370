"""Two levees with one [kafka] instance name (two on one host, or a
Deployment without POD_NAME) join one consumer group, which is meant to be
each replica's own: each would get some of the partitions and miss the
other's invalidations. Over a real broker: both say so in the log, /status
and /metrics, and fail /readyz; once one stops, the other is ready again."""
import signal

from harness import metric_sum, wait_until
from test_invalidation import Cluster, kstatus, topic_name


def readyz(lv):
    st, _, body = lv.admin_get("/readyz")
    return st, body.decode()


def test_two_replicas_with_one_instance_name_are_caught(levee_factory, origin, kafka_broker, tmp_path):
    topic = topic_name()
    kafka_broker.create_topic(topic, partitions=3)
    cl = Cluster(levee_factory, tmp_path, kafka_broker, topic)
    a = cl.levee("same")
    assert kstatus(a)["group_shared"] is False
    assert kstatus(a)["topic_partitions"] == 3
    assert metric_sum(a.metrics(), "levee_kafka_group_shared") == 0

    # the same instance name, its own outbox: it starts, and is not ready
    b = levee_factory(cl.sections("same", outbox=str(tmp_path / "outbox-same-2")), wait="healthz")
    for lv in (a, b):
        wait_until(lambda: kstatus(lv)["group_shared"], 30, msg="levee on :%d sees the group shared" % lv.port)
        st, why = readyz(lv)
        assert st == 503 and "another levee consumes this replica's Kafka group" in why, (st, why)
        assert metric_sum(lv.metrics(), "levee_kafka_group_shared") == 1
        said = lv.log_lines("invalidate: group levee.demo.same is shared")
        assert len(said) == 1 and said[0]["level"] == "error", said
        assert "give every replica its own instance" in said[0]["msg"].lower()
    assert kstatus(a)["assigned_partitions"] + kstatus(b)["assigned_partitions"] == 3

    b.signal(signal.SIGTERM)
    assert b.wait_exit(30) == 0
    b.expected_exit = True
    wait_until(lambda: not kstatus(a)["group_shared"], 30, msg="the group is A's alone again")
    a.wait_ready(timeout=10)
    assert kstatus(a)["assigned_partitions"] == 3
    assert metric_sum(a.metrics(), "levee_kafka_group_shared") == 0
    assert len(a.log_lines("invalidate: group levee.demo.same is this replica's alone again")) == 1
