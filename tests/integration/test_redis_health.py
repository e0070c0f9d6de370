"""What levee says about Redis, with a real redis-server killed and
restarted: each change of the process's Redis state is one log line with its
reason (not one per worker connection), at most one line of a kind per 10 s
with the rest summed up, and the levee_redis_* counters count what their
names say."""
import json

import pytest

from harness import metric_sum, wait_until
from redis_server import REDIS

pytestmark = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")

WORKERS = 4
CONNECTIONS = WORKERS + 1  # and the main thread's, for admin purges


def log_lines(lv, needle):
    """The messages of levee's error log (JSON lines) that contain needle."""
    out = []
    for line in lv.stderr().splitlines():
        try:
            m = json.loads(line)
        except ValueError:
            continue
        if needle in m.get("msg", ""):
            out.append(m)
    return out


def wait_line(lv, needle, timeout=10):
    return wait_until(lambda: log_lines(lv, needle), timeout, msg="a log line with %r" % needle)


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
    assert redis_metric(lv, "levee_redis_errors_total", kind="lost") == 0
    assert redis_metric(lv, "levee_redis_reconnects_total") == 0

    redis.kill()
    # every connection notices, and retries fail until the breaker opens
    wait_until(lambda: redis_metric(lv, "levee_redis_errors_total", kind="lost") == CONNECTIONS, 10,
               msg="every connection counted lost")
    wait_until(lambda: redis_metric(lv, "levee_redis_breaker_opens_total") >= CONNECTIONS, 10,
               msg="every breaker opened")
    assert redis_metric(lv, "levee_redis_errors_total", kind="connect") >= CONNECTIONS
    assert redis_metric(lv, "levee_redis_reconnect_attempts_total") >= CONNECTIONS
    assert redis_metric(lv, "levee_redis_reconnects_total") == 0
    assert lv.status()["redis"]["state"] == "down"
    lost = log_lines(lv, "redis: lost the connection to %s" % where)
    assert len(lost) == 1, lost
    assert lost[0]["level"] == "warn"
    assert "Server closed the connection" in lost[0]["msg"] or "Connection reset" in lost[0]["msg"], lost
    opened = log_lines(lv, "redis: breaker open")
    assert len(opened) == 1, opened

    redis.start()
    wait_until(lambda: redis_metric(lv, "levee_redis_reconnects_total") == CONNECTIONS, 15,
               msg="every connection re-established")
    back = wait_line(lv, "redis: reconnected to %s after" % where)
    assert len(back) == 1, back
    assert back[0]["level"] == "info"
    wait_until(lambda: lv.status()["redis"]["state"] == "up", 5, msg="/status redis.state up again")
    wait_until(lambda: log_lines(lv, "redis: breaker closed"), 10, msg="the breaker closes")
    assert len(log_lines(lv, "redis: breaker closed")) == 1
    assert redis_metric(lv, "levee_redis_reconnect_attempts_total") >= \
        redis_metric(lv, "levee_redis_reconnects_total")
    # nothing else about Redis was said: start, loss, breaker, return
    said = [m["msg"] for m in log_lines(lv, "redis: ")]
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
    lost = log_lines(lv, "redis: lost the connection")
    back = log_lines(lv, "redis: reconnected to")
    assert len(lost) < cycles and len(back) < cycles, (lost, back)
    # each loss was CONNECTIONS connections: per-connection lines would be 4x that
    assert redis_metric(lv, "levee_redis_errors_total", kind="lost") == CONNECTIONS * cycles
