"""What levee says about Redis, with a real redis-server killed and
restarted: each change of the process's Redis state is one log line with its
reason (not one per worker connection), at most one line of a kind per 10 s
with the rest summed up, and the levee_redis_* counters count what their
names say. And host names in [redis]: accepted by `levee check` as by
start-up, resolved off the event loops, not fatal when they do not resolve,
and looked up again at each reconnect, so a moved name is followed."""
import shutil
import subprocess

import pytest

from harness import cache_status_core, LEVEE_BIN, metric_sum, once, render_policy, wait_until
from redis_server import REDIS, Redis

pytestmark = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")

WORKERS = 4
CONNECTIONS = WORKERS + 1  # and the main thread's, for admin purges


def wait_line(lv, needle, timeout=10):
    return wait_until(lambda: lv.log_lines(needle), timeout, msg="a log line with %r" % needle)


def redis_metric(lv, name, **labels):
    return metric_sum(lv.metrics(), name, **labels) or 0


def levee_on(levee_factory, address):
    return levee_factory({"levee": {"workers": str(WORKERS)},
                          "redis": {"address": address},
                          'route "c"': {"prefix": "/", "cache_ttl": "60s"}})


def test_kill_and_restart_are_one_line_each_and_counted(levee_factory, redis):
    lv = levee_on(levee_factory, "127.0.0.1:%d" % redis.port)
    where = "127.0.0.1:%d" % redis.port
    wait_line(lv, "redis: connected to %s (%d connections)" % (where, CONNECTIONS))
    wait_until(lambda: lv.status()["redis"]["state"] == "up", 5, msg="/status redis.state up")
    assert redis_metric(lv, "levee_redis_errors_total", operation="connection") == 0
    assert redis_metric(lv, "levee_redis_reconnects_total") == 0

    redis.kill()
    # every connection notices, and retries fail until the breaker opens
    wait_until(lambda: redis_metric(lv, "levee_redis_errors_total", operation="connection") == CONNECTIONS, 10,
               msg="every connection counted lost")
    wait_until(lambda: redis_metric(lv, "levee_redis_breaker_opens_total") >= CONNECTIONS, 10,
               msg="every breaker opened")
    assert redis_metric(lv, "levee_redis_errors_total", operation="connect") >= CONNECTIONS
    assert redis_metric(lv, "levee_redis_reconnect_attempts_total") >= CONNECTIONS
    assert redis_metric(lv, "levee_redis_reconnects_total") == 0
    assert lv.status()["redis"]["state"] == "down"
    lost = lv.log_lines("redis: lost the connection to %s" % where)
    assert len(lost) == 1, lost
    assert lost[0]["level"] == "warn"
    assert "Server closed the connection" in lost[0]["msg"] or "Connection reset" in lost[0]["msg"], lost
    opened = lv.log_lines("redis: breaker open")
    assert len(opened) == 1, opened

    redis.start()
    wait_until(lambda: redis_metric(lv, "levee_redis_reconnects_total") == CONNECTIONS, 15,
               msg="every connection re-established")
    back = wait_line(lv, "redis: reconnected to %s after" % where)
    assert len(back) == 1, back
    assert back[0]["level"] == "info"
    wait_until(lambda: lv.status()["redis"]["state"] == "up", 5, msg="/status redis.state up again")
    wait_until(lambda: lv.log_lines("redis: breaker closed"), 10, msg="the breaker closes")
    assert len(lv.log_lines("redis: breaker closed")) == 1
    assert redis_metric(lv, "levee_redis_reconnect_attempts_total") >= \
        redis_metric(lv, "levee_redis_reconnects_total")
    # nothing else about Redis was said: start, loss, breaker, return
    said = [m["msg"] for m in lv.log_lines("redis: ")]
    assert len(said) == 5, said


def test_flapping_is_summed_up_not_flooded(levee_factory, redis):
    """Redis killed and restarted again and again: at most one line of a
    kind per 10 s, and a summary that gives the state at the end."""
    lv = levee_on(levee_factory, "127.0.0.1:%d" % redis.port)
    wait_line(lv, "redis: connected to")
    cycles = 4
    for i in range(cycles):
        redis.kill()
        wait_until(lambda: lv.status()["redis"]["state"] == "down", 10, msg="down (cycle %d)" % i)
        redis.start()
        wait_until(lambda: redis_metric(lv, "levee_redis_reconnects_total") == CONNECTIONS * (i + 1), 15,
                   msg="every connection back (cycle %d)" % i)
    summary = wait_line(lv, "not logged (one line of a kind per 10 s at most); now connected to", timeout=15)
    assert len(summary) == 1, summary
    assert redis_metric(lv, "levee_redis_log_lines_held_total") > 0
    lost = lv.log_lines("redis: lost the connection")
    back = lv.log_lines("redis: reconnected to")
    assert len(lost) < cycles and len(back) < cycles, (lost, back)
    # each loss was CONNECTIONS connections: per-connection lines would be 4x that
    assert redis_metric(lv, "levee_redis_errors_total", operation="connection") == CONNECTIONS * cycles


# ---- host names in [redis] ---------------------------------------------------


def check(tmp_path, redis_section):
    """`levee check` on a policy with this [redis] section: (exit code, output)."""
    p = tmp_path / "check.ini"
    p.write_text(render_policy({"redis": redis_section}))
    r = subprocess.run([LEVEE_BIN, "check", str(p)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=10)
    return r.returncode, r.stdout.decode()


def get(lv, target):
    return once(lv.port, "GET", target)


def test_check_accepts_the_names_start_up_accepts(tmp_path):
    for sec in ({"address": "redis.default.svc:6379"},
                {"address": "redis.default.svc.cluster.local.:6379"},
                {"sentinels": "sentinel-0.sentinel:26379, 10.0.0.2:26379", "master": "mymaster"}):
        rc, out = check(tmp_path, sec)
        assert rc == 0, (sec, out)
    label = "a" * 64
    rc, out = check(tmp_path, {"address": "%s.svc:6379" % label})
    assert rc == 1 and "[redis] address: host name label longer than 63 characters" in out, out
    rc, out = check(tmp_path, {"sentinels": "s0:26379, bad!name:26379"})
    assert rc == 1 and "[redis] sentinels: bad!name:26379: bad character in host name" in out, out


def test_a_host_name_is_resolved_off_the_loop(levee_factory, origin, redis):
    lv = levee_on(levee_factory, "localhost:%d" % redis.port)
    wait_line(lv, "redis: connected to localhost:%d (127.0.0.1) (%d connections)" % (redis.port, CONNECTIONS))
    get(lv, "/echo/named")
    wait_until(lambda: redis_metric(lv, "levee_cache_l2_operations_total", result="committed") >= 1, 5,
               msg="the entry reached Redis")
    # /status reads the workers' snapshots, taken on their ticks
    wait_until(lambda: lv.status()["redis"]["master"] == "localhost:%d" % redis.port, 5,
               msg="/status names the master as configured")


def test_a_name_that_does_not_resolve_does_not_stop_start_up(levee_factory, origin):
    """levee starts, serves without Redis (passing through), says why once,
    and keeps trying."""
    lv = levee_on(levee_factory, "redis.levee-test.invalid:6379")  # readyz 200, or this fails
    wait_line(lv, "redis: cannot connect to redis.levee-test.invalid:6379 (cannot resolve "
                  "redis.levee-test.invalid: ")
    r = get(lv, "/echo/unresolved")
    assert r.status == 200
    assert cache_status_core(r.header("Cache-Status")) == "levee; fwd=bypass; detail=redis-down", r
    first = redis_metric(lv, "levee_redis_errors_total", operation="resolve")
    assert first >= 1
    wait_until(lambda: redis_metric(lv, "levee_redis_errors_total", operation="resolve") > first + CONNECTIONS, 10,
               msg="lookups retried")
    assert len(lv.log_lines("redis: cannot connect to")) == 1
    assert lv.status()["redis"]["state"] == "down"


def _can_remount_hosts():
    if not UNSHARE:
        return False
    r = subprocess.run([UNSHARE, "-rm", "sh", "-c", "mount --bind /etc/hosts /etc/hosts"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return r.returncode == 0


UNSHARE = shutil.which("unshare")


@pytest.mark.skipif(not _can_remount_hosts(),
                    reason="needs unshare -rm (user and mount namespaces) to give levee its own /etc/hosts")
def test_a_moved_name_is_followed_at_the_next_reconnect(levee_factory, origin, tmp_path):
    """levee runs with an /etc/hosts of the test's own (a bind mount in a
    mount namespace of its own), so the test can move a name: from Redis A
    on 127.0.0.1 to Redis B on 127.0.0.2, same port, as a recreated Service
    moves. After A goes away, levee resolves the name again and uses B."""
    a = Redis()
    b = Redis(host="127.0.0.2", port=a.port)
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n127.0.0.1 redis-moving\n")

    def in_own_mount_namespace(lv):
        # unshare and sh exec: the PID is levee's, for stop() and signals
        lv.args = [UNSHARE, "-rm", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"',
                   str(hosts)] + lv.args
    try:
        lv = levee_factory({"levee": {"workers": str(WORKERS)},
                            "redis": {"address": "redis-moving:%d" % a.port},
                            'route "c"': {"prefix": "/", "cache_ttl": "60s"}},
                           prepare=in_own_mount_namespace)
        wait_line(lv, "redis: connected to redis-moving:%d (127.0.0.1)" % a.port)
        get(lv, "/echo/moved-1")
        wait_until(lambda: a.command("DBSIZE") > 0, 5, msg="an entry in A")
        assert b.command("DBSIZE") == 0

        with open(hosts, "r+") as f:  # in place: the bind mount follows the inode
            f.truncate(0)
            f.write("127.0.0.1 localhost\n127.0.0.2 redis-moving\n")
        a.kill()
        wait_line(lv, "redis: reconnected to redis-moving:%d (127.0.0.2)" % a.port, timeout=15)
        wait_until(lambda: lv.status()["redis"]["state"] == "up", 10, msg="every connection on B")

        def stored_in_b():
            get(lv, "/echo/moved-2")
            return b.command("DBSIZE") > 0
        wait_until(stored_in_b, 10, interval=0.2, msg="entries now go to B")
    finally:
        a.close()
        b.close()
