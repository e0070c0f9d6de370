"""Takes docs/img/status-page.png: a levee with Redis and Kafka, four routes under
load, a breaker tripped by a failing origin, a bulkhead kept busy and a
tier forced by hand, photographed by status_page.mjs.

    LEVEE_BIN=build/levee python3 tests/integration/status_page_shot.py docs/img/status-page.png

Not a test (pytest does not collect it); it fails loudly if a step does.
"""
import os
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Levee, Origin, once, wait_until  # noqa: E402
from kafka import KafkaBroker  # noqa: E402
from redis_server import Redis  # noqa: E402
from test_status_page import DRIVER, TOOLS, need_browser  # noqa: E402


def main(out):
    try:
        need_browser()
    except BaseException as e:  # pytest's skip or fail, outside pytest
        print("cannot take the screenshot: %s" % e, file=sys.stderr)
        return 2
    work = tempfile.mkdtemp(prefix="levee-shot-")
    os.makedirs(os.path.join(work, "origin"))
    origin = Origin(os.path.join(work, "origin"))
    origin.start()
    redis = Redis()
    broker = KafkaBroker(os.path.join(work, "kafka"))
    broker.start()
    broker.create_topic("shop-invalidations", partitions=1)
    lv = None
    stop = threading.Event()
    try:
        os.makedirs(os.path.join(work, "levee"))
        lv = Levee(os.path.join(work, "levee"), origin.addr, sections={
            "levee": {"service": "shop", "workers": "2", "access_log": "off"},
            "redis": {"address": "127.0.0.1:%d" % redis.port},
            "kafka": {"brokers": broker.bootstrap, "topic": "shop-invalidations", "instance": "shop-0",
                      "outbox": os.path.join(work, "outbox")},
            'breaker "payments"': {"window": "10s", "min_requests": "5", "failure_rate": "50%",
                                   "open_for": "60s"},
            'bulkhead "search"': {"max_concurrent": "6", "max_queue": "10", "queue_timeout": "2s"},
            'tier "brownout"': {"enter": "inflight > 400 or upstream_p99 > 800ms",
                                "exit": "inflight < 100 and upstream_p99 < 200ms", "shed": "optional"},
            'route "catalog"': {"prefix": "/echo/catalog/", "cache_ttl": "30s"},
            'route "search"': {"prefix": "/slow", "bulkhead": "search"},
            'route "recommendations"': {"prefix": "/echo/recs/", "priority": "optional"},
            'route "payments"': {"prefix": "/flaky/", "breaker": "payments", "priority": "critical"},
        })
        origin._get("/__fail?name=pay&mode=503&ms=0")

        def load(target_of):
            i = 0
            while not stop.is_set():
                try:
                    once(lv.port, "GET", target_of(i), timeout=5)
                except Exception:
                    pass
                i += 1
        threads = [threading.Thread(target=load, args=(f,), daemon=True) for f in (
            lambda i: "/echo/catalog/item%d" % (i % 40),
            lambda i: "/echo/catalog/item%d" % (i % 40),
            lambda i: "/slow?head_ms=300&n=%d" % (10 + i % 7),
            lambda i: "/slow?head_ms=300&n=%d" % (20 + i % 7),
            lambda i: "/slow?head_ms=300&n=%d" % (30 + i % 7),
            lambda i: "/slow?head_ms=300&n=%d" % (40 + i % 7),
            lambda i: "/slow?head_ms=300&n=%d" % (50 + i % 7),
            lambda i: "/echo/recs/%d" % i,
            lambda i: "/flaky/pay",
        )]
        for t in threads:
            t.start()
        wait_until(lambda: {b["name"]: b for b in lv.status()["breakers"]}["payments"]["state"] == "open", 20,
                   msg="the payments breaker open")
        r = lv.admin_request("POST", "/tier?force=brownout&for=30m&reason=incident%2042%3A%20search%20is%20slow")
        assert r.status == 200, r
        wait_until(lambda: lv.status()["redis"] and lv.status()["redis"]["state"] == "up", 10, msg="redis up")
        wait_until(lambda: lv.status()["kafka"]["cache"] == "normal", 30, msg="kafka consumer caught up")
        # two page views a few seconds apart, so that rates have a sample behind them
        once(lv.admin_port, "GET", "/ui")
        stop.wait(3)
        p = subprocess.run(["node", DRIVER, "screenshot", "http://127.0.0.1:%d/ui" % lv.admin_port, out],
                           env=dict(os.environ, LEVEE_TOOLS=TOOLS), capture_output=True, timeout=120)
        sys.stderr.write(p.stderr.decode())
        return p.returncode
    finally:
        stop.set()
        if lv:
            lv.stop()
        redis.close()
        broker.close()
        origin.stop()


if __name__ == "__main__":
    sys.exit(main(os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "docs/img/status-page.png")))
