"""k8s/sizing.py, the formula of docs/sizing.md: what each policy key adds,
and the policies it refuses to size."""
import os
import subprocess
import sys

import pytest

from kube import K8S, LEVEE_BIN, sizing  # also puts tests/integration on sys.path

MiB = sizing.MiB
KiB = sizing.KiB


@pytest.fixture(scope="module")
def defaults():
    return sizing.levee_defaults(LEVEE_BIN)


BASE = """[levee]
workers = 2
max_connections = 100
[bulkhead "b"]
max_concurrent = 10
[route "all"]
prefix = /
bulkhead = b
"""


def terms_of(tmp_path, defaults, text, env=None):
    path = tmp_path / "p.ini"
    path.write_text(text)
    terms, res = sizing.size(sizing.read_policy(str(path), env or {}), defaults)
    return dict(terms), res


def test_defaults_come_from_levee(defaults):
    assert defaults["levee"]["max_connections"] == "10000"
    assert defaults["cache"]["memory"] == "64MiB"
    assert defaults["limits"]["header_bytes"] == "32KiB"


def test_terms_of_a_small_policy(tmp_path, defaults):
    t, res = terms_of(tmp_path, defaults, BASE)
    assert t["workers"] == 2 * sizing.PER_WORKER
    assert t["l1"] == 0, "no route caches, so the L1 stays empty"
    assert t["connections"] == 100 * (8 * KiB + 32 * KiB + 64 * KiB)
    assert t["exchanges"] == 10 * (256 * KiB + 256 * KiB)
    assert t["kafka"] == 0 and t["redis"] == 0
    assert res["limits"]["memory"] % (16 * MiB) == 0
    assert res["limits"]["memory"] >= sum(t.values()) * sizing.HEADROOM
    assert res["limits"]["memory"] - sum(t.values()) * sizing.HEADROOM < 16 * MiB
    assert res["requests"]["cpu"] == 500 and res["limits"]["cpu"] == 2500


def test_caching_adds_the_l1_and_a_body_per_exchange(tmp_path, defaults):
    t, _ = terms_of(tmp_path, defaults, BASE + "cache_ttl = 10s\n[cache]\nmemory = 32MiB\nmax_object = 100KiB\n")
    assert t["l1"] == int(32 * MiB * sizing.L1_SLACK)
    assert t["exchanges"] == 10 * (512 * KiB + 100 * KiB)


def test_without_a_catch_all_bulkhead_connections_bound_the_exchanges(tmp_path, defaults):
    # a request that matches no route has no bulkhead
    t, _ = terms_of(tmp_path, defaults, BASE.replace("prefix = /", "prefix = /api/"))
    assert t["exchanges"] == 100 * 512 * KiB
    # nor does one whose route names none
    t, _ = terms_of(tmp_path, defaults, BASE.replace("bulkhead = b", ""))
    assert t["exchanges"] == 100 * 512 * KiB
    # methods narrower than any leave the other methods to no route
    t, _ = terms_of(tmp_path, defaults, BASE + "methods = GET\n")
    assert t["exchanges"] == 100 * 512 * KiB


def test_adaptive_bulkheads_count_their_maximum(tmp_path, defaults):
    t, _ = terms_of(tmp_path, defaults, BASE.replace("max_concurrent = 10", "max_concurrent = auto\nadaptive_max = 30"))
    assert t["exchanges"] == 30 * 512 * KiB


def test_thread_bulkheads_add_stacks(tmp_path, defaults):
    t0, _ = terms_of(tmp_path, defaults, BASE)
    t1, _ = terms_of(tmp_path, defaults, BASE.replace("max_concurrent = 10", "max_concurrent = 10\nisolation = thread\nthreads = 4"))
    assert t1["thread_stacks"] - t0["thread_stacks"] == 4 * sizing.THREAD_STACK


def test_kafka_and_redis_from_the_environment(tmp_path, defaults):
    text = BASE + "[kafka]\nbrokers = ${KAFKA:-}\ndedup_window = 1000\n[redis]\naddress = ${REDIS:-none}\n"
    off, _ = terms_of(tmp_path, defaults, text)
    assert off["kafka"] == 0 and off["redis"] == 0
    on, res = terms_of(tmp_path, defaults, text, {"KAFKA": "k:9092", "REDIS": "r:6379"})
    assert on["kafka"] == sizing.KAFKA_BASE + sizing.KAFKA_QUEUED * sizing.KAFKA_MESSAGE + 8 * 1000 + 8 * 2048
    assert on["redis"] == sizing.REDIS_BASE + 2 * sizing.REDIS_REPLIES * MiB
    assert res["requests"]["memory"] > terms_of(tmp_path, defaults, text)[1]["requests"]["memory"]
    assert on["kafka_control"] == 0
    with_control = text.replace("dedup_window = 1000\n", "dedup_window = 1000\ncontrol_topic = levee.control\n")
    ctl, _ = terms_of(tmp_path, defaults, with_control, {"KAFKA": "k:9092"})
    assert ctl["kafka_control"] == sizing.KAFKA_BASE + sizing.KAFKA_QUEUED * sizing.KAFKA_MESSAGE
    assert ctl["thread_stacks"] - on["thread_stacks"] == sizing.THREAD_STACK
    # without brokers the control topic is off too
    t, _ = terms_of(tmp_path, defaults, with_control)
    assert t["kafka_control"] == 0 and t["kafka"] == 0


@pytest.mark.parametrize("text,env,why", [
    (BASE.replace("workers = 2", "workers = auto"), {}, "workers = auto"),
    (BASE.replace("workers = 2", "workers = 0"), {}, "workers = 0"),
    (BASE + "[kafka]\nbrokers = ${KAFKA}\n", {}, "KAFKA is not set"),
    (BASE.replace("bulkhead = b", "bulkhead = nope"), {}, "names bulkhead nope"),
    (BASE + "[cache]\nmemory = 64 MiB\n", {}, "is not a size"),
    (BASE + "[cache]\nmemory = 64XB\n", {}, "is not a size"),
])
def test_policies_it_cannot_size(tmp_path, defaults, text, env, why):
    with pytest.raises(sizing.SizingError, match=why):
        terms_of(tmp_path, defaults, text, env)


def test_command_line(tmp_path):
    path = tmp_path / "p.ini"
    path.write_text(BASE + "[kafka]\nbrokers = ${KAFKA}\n")
    cmd = [sys.executable, os.path.join(K8S, "sizing.py"), "--levee", LEVEE_BIN]
    r = subprocess.run(cmd + ["--env", "KAFKA=k:9092", str(path)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "limits: cpu 2500m, memory " in r.stdout and "kafka" in r.stdout
    r = subprocess.run(cmd + [str(path)], capture_output=True, text=True, timeout=30,
                       env={k: v for k, v in os.environ.items() if k != "KAFKA"})
    assert r.returncode == 1 and "KAFKA is not set" in r.stderr
    r = subprocess.run(cmd[:2] + ["--levee", "/nonexistent/levee", "--env", "KAFKA=k:9092", str(path)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "cannot run /nonexistent/levee keys" in r.stderr


@pytest.mark.skipif(os.environ.get("LEVEE_SANITIZER"), reason="a sanitizer's shadow memory is not levee's")
def test_connection_terms_bound_a_real_levee(tmp_path):
    """A real levee on the base policy: what idle connections, and
    connections holding most of a request head, add to its RSS stays within
    the formula's per-connection terms."""
    import socket
    from harness import Levee, Origin, free_port, wait_until
    from kube import pod
    p = pod("base")
    policy = p.policy()
    header = sizing.parse_size(policy["limits"]["header_bytes"])
    n = 500
    origin = Origin(str(tmp_path))
    path = tmp_path / "policy.ini"
    path.write_text(p.policy_text())
    lv = Levee(str(tmp_path), origin.addr, policy_path=str(path), env=p.env(), start=False)
    lv.args += ["--listen", "127.0.0.1:%d" % lv.port, "--admin", "127.0.0.1:%d" % lv.admin_port,
                "--probe", "127.0.0.1:%d" % free_port(), "--upstream", origin.addr]
    socks = []
    try:
        lv.start()
        rss0 = lv.rss_kib() * KiB
        socks = [socket.create_connection(("127.0.0.1", lv.port), timeout=5) for _ in range(n)]
        wait_until(lambda: lv.status()["connections"] >= n, 10, msg="levee to accept the connections")
        idle = lv.rss_kib() * KiB - rss0
        assert idle <= n * sizing.CONN_FIXED, "%d idle connections cost %d bytes" % (n, idle)
        head = header - 1024
        for s in socks:
            s.sendall(b"GET /echo HTTP/1.1\r\nHost: k8s\r\nX-Pad: " + b"a" * head)
        # levee has read them once its RSS holds most of the bytes sent
        wait_until(lambda: lv.rss_kib() * KiB - rss0 >= n * head * 0.8, 8, interval=0.05,
                   msg="levee to read the heads")
        held = lv.rss_kib() * KiB - rss0
        bound = n * (sizing.CONN_FIXED + header + sizing.CONN_READ_HIGH)
        assert held <= bound, "%d connections with %d-byte heads cost %d bytes; the formula says %d" % (
            n, head, held, bound)
        assert lv.status()["connections"] >= n, "levee closed connections before the measure"
    finally:
        for s in socks:
            s.close()
        lv.stop()
        origin.stop()
