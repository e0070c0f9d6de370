"""The overload scenario of degradation tiers, shared by
test_tiers_overload.py and bench/tiers.py: the fragile origin's size, the
three routes and their mix, levee's policy (bulkhead and tiers), the load,
and its measures.

- **The origin:** fragile_origin.py with W=4 worker threads and a FIFO
  queue; each request keeps a worker WORK_MS=40 ms (`/work?ms=40`, by
  sleeping, so the origin's Python costs little CPU). Its capacity C is
  about W / 40 ms = 100 requests per second; closed_loop_rate() measures
  it, and every rate and the goodput bound are fractions of that figure.
- **levee:** one bulkhead `origin` in front of it, max_concurrent = W (the
  queue forms in levee, where its wait is measured, not in the origin),
  with a short queue; three routes on distinct paths, `critical`,
  `normal` and `optional`, all through it.
- **The load:** open loop (load.py), a constant arrival rate per route;
  the overload is 3xC, 20% critical / 30% normal / 50% optional.
- **The tiers** (TIERS): tier 1 sheds optional; tier 2 sheds 65% of
  normal too. Why not all of normal: critical alone is 0.2 x 3C = 0.6C,
  so shedding every normal request would leave the origin 40% idle and
  goodput at 60% of C, against a bound of 85%. With 65% of normal shed,
  what reaches the origin is 0.6C + 0.35 x 0.9C = 0.915C. Measured with
  that load offered directly (no tiers, 15 s): critical p99 50 ms,
  goodput 91% of C; at 0.96C (60% shed) p99 66 ms, goodput 96%; at
  0.87C (70% shed) p99 47 ms, goodput 87%, too close to the bound. The
  share is by cohort of the X-User-Id header; the normal route's load
  cycles over user ids chosen so that exactly 65% of them fall in the
  share (user_ids(), with tier.c's cohort hash).
"""
import threading
import time

import load
from harness import HttpConn

W = 4
WORK_MS = 40
MIX = {"critical": 0.2, "normal": 0.3, "optional": 0.5}
TIMEOUT = 2.0       # the clients' per-request timeout
TICK_MS = 100
HOLD1_S, HOLD2_S = 3.0, 3.0
NORMAL_SHARE = 65   # percent of the normal route shed by tier 2

BULKHEAD = {"max_concurrent": str(W), "max_queue": "8", "queue_timeout": "200ms", "retry_after": "1s"}

# Tier 1 enters on a queue that has begun to form (queued is a count at the
# tick, not a window figure, so it reacts within one tick), tier 2 on one
# still growing with tier 1 in force. Measured at the tick after tier 1
# came in (/status every 10 ms, 5 onsets each): at 1.3C, where shedding
# optional is enough, the queue was 0-1 with tier 1 at queued > 1 (2-5
# with tier 1 at queued > 2, too near a tier 2 threshold); at 3xC, where
# it is not, 5-8, since the origin's 4 workers finish together and the
# queue drops by 4 at a time. Hence > 1 and > 4. Both tiers leave only once
# the window's p99 queue wait is back under 5 ms (hysteresis: the 1 s
# window must have forgotten the overload) and the queue is empty, and
# only after their hold.
TIERS = {
    "tiers": {"tick": "%dms" % TICK_MS, "window": "1s", "cohort": "header:X-User-Id"},
    'tier "shed-optional"': {"enter": "queued > 1", "exit": "queue_wait_p99 < 5ms and queued == 0",
                             "hold": "%ds" % HOLD1_S, "shed": "optional", "retry_after": "1s"},
    'tier "shed-normal"': {"enter": "queued > 4", "exit": "queue_wait_p99 < 5ms and queued == 0",
                           "hold": "%ds" % HOLD2_S, "shed": "optional, normal %d%%" % NORMAL_SHARE,
                           "retry_after": "1s"},
}
TIER_NAMES = ["shed-optional", "shed-normal"]


def policy(tiers, priorities=True):
    """levee's policy: the bulkhead, the three routes with their priorities
    (without them every route is normal, as before priorities: what the
    control run measures), and the tiers."""
    s = {
        "levee": {"workers": "1", "access_log": "off"},
        "upstream": {"connect_timeout": "2s", "response_timeout": "10s"},
        'bulkhead "origin"': dict(BULKHEAD),
    }
    for prio in MIX:
        s['route "%s"' % prio] = {"prefix": "/work/%s" % prio, "bulkhead": "origin"}
        if priorities:
            s['route "%s"' % prio]["priority"] = prio
    if tiers:
        s.update({k: dict(v) for k, v in TIERS.items()})
    return s


def cohort(key):
    """tier_cohort() of proxy/resilience/tier.c: FNV-1a 64, splitmix64's
    finaliser, modulo 10000."""
    m = (1 << 64) - 1
    h = 0xcbf29ce484222325
    for b in key.encode():
        h = ((h ^ b) * 0x100000001b3) & m
    h ^= h >> 30
    h = (h * 0xbf58476d1ce4e5b9) & m
    h ^= h >> 27
    h = (h * 0x94d049bb133111eb) & m
    h ^= h >> 31
    return h % 10000


def user_ids(n=100, share=NORMAL_SHARE):
    """n user ids of which exactly share% have a cohort in a share% share,
    interleaved evenly, so that any stretch of requests sees about that
    share."""
    ids = ["u%d" % i for i in range(5000)]
    k = n * share // 100
    inside = iter([u for u in ids if cohort(u) < share * 100][:k])
    outside = iter([u for u in ids if cohort(u) >= share * 100][:n - k])
    slots = {int(j * n / (n - k)) for j in range(n - k)}
    return [next(outside) if i in slots else next(inside) for i in range(n)]


def targets(port, total_rate, mix=MIX):
    """One load.Target per route, `total_rate` split by `mix`; the normal
    route cycles over user_ids()."""
    ids = [[("X-User-Id", u)] for u in user_ids()]
    return [load.Target(port, "/work/%s?ms=%d" % (prio, WORK_MS), total_rate * share, name=prio,
                        vary=ids if prio == "normal" else None)
            for prio, share in mix.items() if share > 0]


def closed_loop_rate(port, clients=2 * W, seconds=2.0):
    """Requests per second that `clients` back-to-back clients get: the
    capacity, as a closed loop measures it."""
    done = [0]
    lock = threading.Lock()
    end = time.monotonic() + seconds
    errors = []

    def client():
        c = HttpConn(port, timeout=5)
        try:
            while time.monotonic() < end:
                r = c.request("GET", "/work?ms=%d" % WORK_MS)
                if r.status != 200:
                    errors.append(r.status)
                    return
                with lock:
                    done[0] += 1
        finally:
            c.close()

    t0 = time.monotonic()
    ts = [threading.Thread(target=client) for _ in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
    return done[0] / (time.monotonic() - t0)


def figures(label, res, seconds, c, quiet=False):
    """The overload's measures of `res` (load.run's result over `seconds`)
    against capacity `c`: (critical success share, critical p99 of its 2xx
    answers, goodput as a share of c). Goodput counts the 2xx answers that
    ended within the `seconds` of the load, per second: a proxy that queues
    for long would otherwise be credited with the answers it delivers after
    the load has stopped. Printed unless quiet."""
    crit = res["critical"]
    good = sum(1 for r in res.values() for off, what, lat in r.records
               if isinstance(what, int) and 200 <= what < 300 and off + lat <= seconds) / seconds
    if not quiet:
        for r in res.values():
            print("  %s %s" % (label, r.summary()))
        print("  %s: critical %.2f%% ok, critical p99 %.1f ms, goodput %.1f rps = %.1f%% of C"
              % (label, 100 * crit.success_rate, (crit.p99_ok or 0) * 1e3, good, 100 * good / c))
    return crit.success_rate, crit.p99_ok, good / c
