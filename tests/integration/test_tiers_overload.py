"""Degradation tiers (docs/tiers.md) under overload, in front of a fragile
origin: what they must keep, and the control run that shows the test can
fail. The scenario (origin W=4 x 40 ms, C about 100 rps; a bulkhead of W
in front of it; critical, normal and optional routes; the tiers' policy)
is in overload.py, shared with bench/tiers.py.

Bounds for the overload (from the issue): at 3xC for 20 s, 20/30/50, at
least 99% of critical requests succeed, the critical p99 (of its 2xx
answers, from the scheduled send) stays within 3x its own unloaded p99,
measured first in the same test, and goodput (2xx per second, all routes)
is at least 85% of C. The control run is the same load through the same
bulkhead without tiers, and must break at least one of them.

Every figure is printed (`pytest -s`) so it can be quoted.
"""
import math
import threading
import time

import pytest

import load
from fragile import FragileOrigin
from harness import metric_sum
from overload import (HOLD1_S, HOLD2_S, MIX, NORMAL_SHARE, TICK_MS, TIER_NAMES, TIMEOUT, W, WORK_MS,
                      closed_loop_rate, cohort, figures, policy, targets, user_ids)

# measured under a load of its own: run alone, after the tests that run in parallel (tests/run)
pytestmark = pytest.mark.serial("measures latency and success rates under a load of its own")

OVERLOAD_S = 20.0


@pytest.fixture(scope="module")
def fragile(tmp_path_factory):
    """One origin for the module (it keeps no state but counters); each
    test waits for it to be idle first."""
    fo = FragileOrigin(str(tmp_path_factory.mktemp("fragile")), workers=W)
    yield fo
    fo.stop()


@pytest.fixture(scope="module")
def measured_c(fragile):
    c = closed_loop_rate(fragile.port)
    print("\ncapacity C (closed loop, %d clients, W=%d, %d ms per request): %.1f rps (nominal %d)"
          % (2 * W, W, WORK_MS, c, W * 1000 // WORK_MS))
    assert 0.7 * W * 1000 / WORK_MS <= c <= 1.05 * W * 1000 / WORK_MS, c
    return c


@pytest.fixture
def origin_idle(fragile):
    fragile.wait_idle(timeout=20)
    fragile.reset()
    return fragile


class LevelSampler(threading.Thread):
    """The tiers' part of /status every `interval` seconds: [(monotonic
    time, level, transitions up + down, name of the tier in force)]."""

    def __init__(self, lv, interval=0.05):
        super().__init__(daemon=True)
        self.lv, self.interval = lv, interval
        self.samples = []
        self._stop_ev = threading.Event()

    def run(self):
        while not self._stop_ev.is_set():
            try:
                t = self.lv.status()["tiers"]
            except (OSError, AssertionError):
                break
            self.samples.append((time.monotonic(), t["level"], t["transitions"]["up"] + t["transitions"]["down"],
                                 t["tier"]))
            self._stop_ev.wait(self.interval)

    def stop(self):
        self._stop_ev.set()
        self.join(5)
        return self.samples

    def levels(self):
        """[(start time, level)] for each run of one level."""
        out = []
        for t, lvl, _, _ in self.samples:
            if not out or out[-1][1] != lvl:
                out.append((t, lvl))
        return out


def phases(plan, **kw):
    """plan: [(seconds, [Target])], run back to back (each phase's Load
    starts when the one before stops scheduling, without waiting for its
    last answers). -> [(start monotonic time, {name: TargetResult})]."""
    started = []
    t = time.monotonic()
    for secs, ts in plan:
        d = t - time.monotonic()
        if d > 0:
            time.sleep(d)
        started.append((time.monotonic(), load.Load(ts, secs, timeout=TIMEOUT, **kw).start()))
        t += secs
    return [(t0, ld.join()) for t0, ld in started]


def reasons(res):
    """Counter-like {(route, X-Levee-Reason): count} of the 503 samples."""
    out = {}
    for name, r in res.items():
        for s in r.samples:
            reason = next((v for n, v in s["headers"] if n.lower() == "x-levee-reason"), None)
            out[(name, s["status"], reason)] = out.get((name, s["status"], reason), 0) + 1
    return out


def shed_by(lv, **labels):
    return metric_sum(lv.metrics(), "levee_tier_shed_total", **labels) or 0


def unloaded_p99(port, c):
    """The critical route alone at 0.5C for 3 s: its own p99, the reference
    of the overload bound."""
    r = load.run(targets(port, 0.5 * c, {"critical": 1.0}), 3.0, timeout=TIMEOUT)["critical"]
    print("  unloaded critical:", r.summary())
    assert r.success_rate == 1.0, r
    return r.p99_ok


def run_overload(lv, c, seconds=OVERLOAD_S):
    res = load.run(targets(lv.port, 3 * c), seconds, timeout=TIMEOUT, samples=50)
    for r in res.values():  # the generator kept its rate: what broke is the service's
        assert abs(r.send_rate - r.rate) <= 0.05 * r.rate, r
        assert r.skipped == 0, r
    return res


# The bounds of the issue.
CRIT_OK = 0.99
CRIT_P99_X = 3.0
GOODPUT = 0.85


def test_overload_tiers_keep_critical(origin_idle, measured_c, levee_factory):
    """3xC for 20 s, 20/30/50: tiers shed optional, then 65% of normal;
    critical >= 99% ok with its p99 within 3x unloaded, goodput >= 85% of C."""
    c = measured_c
    lv = levee_factory(policy(tiers=True), upstream=origin_idle.addr)
    base = unloaded_p99(lv.port, c)
    sampler = LevelSampler(lv)
    sampler.start()
    res = run_overload(lv, c)
    sampler.stop()
    ok, p99, good = figures("tiers on", res, OVERLOAD_S, c)
    print("  tiers on: unloaded critical p99 %.1f ms, bound %.1f ms; levels %s; transitions %s"
          % (base * 1e3, crit_p99_bound(base) * 1e3, [(round(t - sampler.samples[0][0], 2), l)
                                                 for t, l in sampler.levels()], sampler.samples[-1][2]))
    print("  tiers on: shed %s" % {(p, shed_by(lv, route=p)) for p in MIX})
    # critical is never shed: /metrics has no series for it, and none of its
    # refusals (a few bulkhead ones in the first 0.2 s) names a tier
    assert not [smp for smp in res["critical"].samples
                if any(k.lower() == "x-levee-reason" and v.startswith("tier-shed") for k, v in smp["headers"])]
    assert metric_sum(lv.metrics(), "levee_tier_shed_total", route="critical") is None
    assert ok >= CRIT_OK, res["critical"]
    assert p99 <= crit_p99_bound(base), (base, p99)
    assert good >= GOODPUT, good


def crit_p99_bound(base):
    return CRIT_P99_X * base


def test_control_no_tiers_breaks_a_bound(origin_idle, measured_c, levee_factory):
    """CONTROL RUN: the same load, the same bulkhead, no tiers and no
    priorities (every route normal). The bulkhead keeps the origin busy and
    refuses the excess, but it cannot tell a critical request from an
    optional one: about 2 in 3 of each are refused, so critical success
    falls far below 99%. This passing shows the scenario can fail, not that
    levee is right. (Priorities alone, without tiers, already put critical
    requests first in the bulkhead's queue: bench/tiers.py reports that row
    too.)"""
    c = measured_c
    lv = levee_factory(policy(tiers=False, priorities=False), upstream=origin_idle.addr)
    base = unloaded_p99(lv.port, c)
    res = run_overload(lv, c)
    ok, p99, good = figures("control", res, OVERLOAD_S, c)
    broken = [what for what, bad in (("critical success %.1f%% < 99%%" % (100 * ok), ok < CRIT_OK),
                                     ("critical p99 %.1f ms > %.1f ms" % (p99 * 1e3, crit_p99_bound(base) * 1e3),
                                      p99 > crit_p99_bound(base)),
                                     ("goodput %.1f%% < 85%%" % (100 * good), good < GOODPUT)) if bad]
    print("  control breaks:", broken)
    assert broken
    assert ok < 0.6, ok  # measured ~33%: the bulkhead refuses without regard to priority


def test_1x_load_sheds_nothing(origin_idle, measured_c, levee_factory):
    """At the nominal load, 0.8C, nothing is shed and the level stays 0.
    Not 1.0C: in an open loop a service offered exactly its capacity has no
    spare to absorb a burst and its queue wanders (measured without tiers,
    bulkhead queue sampled every 100 ms for 6 s: 0 at 0.8C, 0-1 at 0.9C,
    0-4 at 1.0C with the critical p99 at 2x its unloaded one), and a queue
    is what tier 1 is meant to see (queued > 1). Not 0.9C either: in one
    run of three there (tier 1 at queued > 2 then), a stall on the shared
    machine let the queue reach 3 once, 8.5 s in, and tier 1 came in for
    its hold."""
    c = measured_c
    lv = levee_factory(policy(tiers=True), upstream=origin_idle.addr)
    sampler = LevelSampler(lv)
    sampler.start()
    res = load.run(targets(lv.port, 0.8 * c), 10.0, timeout=TIMEOUT)
    sampler.stop()
    for r in res.values():
        print("  0.8C", r.summary())
    levels = {s[1] for s in sampler.samples}
    print("  0.8C: levels seen %s, shed %d, transitions %s" % (levels, shed_by(lv), sampler.samples[-1][2]))
    assert levels == {0}, sampler.levels()
    assert shed_by(lv) == 0
    assert (lv.metric("levee_tier_transitions_total") or 0) == 0
    for r in res.values():
        assert r.success_rate == 1.0, r


def test_steps_tier1_optional_then_tier2_normal(origin_idle, measured_c, levee_factory):
    """1.3C (optional's share alone is over what tier 1 must remove): tier 1
    and only optional shed, naming tier 1; then 3xC: tier 2, normal shed
    too, naming tier 2; critical never."""
    c = measured_c
    lv = levee_factory(policy(tiers=True), upstream=origin_idle.addr)
    sampler = LevelSampler(lv)
    sampler.start()
    res1 = load.run(targets(lv.port, 1.3 * c), 4.0, timeout=TIMEOUT, samples=10000)
    lvl1 = {s[1] for s in sampler.samples}
    shed1 = {p: shed_by(lv, route=p) for p in MIX}
    by_tier1 = {t: shed_by(lv, tier=t) for t in TIER_NAMES}
    r1 = reasons(res1)
    res2 = load.run(targets(lv.port, 3 * c), 4.0, timeout=TIMEOUT, samples=10000)
    sampler.stop()
    shed2 = {p: shed_by(lv, route=p) - shed1[p] for p in MIX}
    by_tier2 = {t: shed_by(lv, tier=t) - by_tier1[t] for t in TIER_NAMES}
    r2 = reasons(res2)
    print("  steps 1.3C: levels %s, shed by route %s, by tier %s, answers %s" % (lvl1, shed1, by_tier1, r1))
    print("  steps 3xC: levels %s, shed by route %s, by tier %s, answers %s"
          % ([l for _, l in sampler.levels()], shed2, by_tier2, r2))
    # 1.3C: tier 1 only, optional only
    assert max(lvl1) == 1, sampler.levels()
    assert shed1["optional"] > 0 and shed1["normal"] == 0 and shed1["critical"] == 0, shed1
    assert by_tier1["shed-normal"] == 0, by_tier1
    for (route, status, reason), n in r1.items():
        if reason and reason.startswith("tier-shed"):
            assert route == "optional" and reason == "tier-shed; tier=shed-optional", (route, reason)
    # 3xC: tier 2, normal shed too (a share of it), critical never
    assert 2 in {l for _, l in sampler.levels()}, sampler.levels()
    assert shed2["normal"] > 0 and shed2["critical"] == 0, shed2
    tier2_normal = [n for (route, status, reason), n in r2.items()
                    if route == "normal" and reason == "tier-shed; tier=shed-normal"]
    assert tier2_normal, r2
    for (route, status, reason), n in r2.items():
        if reason and reason.startswith("tier-shed"):
            assert route != "critical", (route, reason)
            assert reason in ("tier-shed; tier=shed-optional", "tier-shed; tier=shed-normal"), reason
            assert route == "optional" or reason == "tier-shed; tier=shed-normal", (route, reason)
    # the share of normal shed at tier 2: the cohorts of the ids, give or take
    # the requests that came before tier 2 (exactly NORMAL_SHARE% of the ids)
    n = res2["normal"]
    print("  steps 3xC: normal shed %d of %d (%.0f%%; the ids' cohorts: %d%%)"
          % (shed2["normal"], n.sent, 100 * shed2["normal"] / n.sent, NORMAL_SHARE))
    assert n.status.get(503, 0) >= shed2["normal"]
    # and the clients shed are those of the share: request i of the normal
    # route carried ids[i % len(ids)], and i is its scheduled offset x rate
    ids = user_ids()
    outside = []
    for smp in n.samples:
        reason = next((v for k, v in smp["headers"] if k.lower() == "x-levee-reason"), "")
        uid = ids[int(round(smp["at"] * n.rate)) % len(ids)]
        if reason == "tier-shed; tier=shed-normal" and cohort(uid) >= NORMAL_SHARE * 100:
            outside.append((uid, cohort(uid)))
    assert not outside, outside[:10]


def test_step_down_one_at_a_time_after_hold(origin_idle, measured_c, levee_factory):
    """3xC for 3 s (level 2), then 0.3C: the level falls 2 -> 1 -> 0, one
    step at a time, each after its hold."""
    c = measured_c
    lv = levee_factory(policy(tiers=True), upstream=origin_idle.addr)
    sampler = LevelSampler(lv)
    sampler.start()
    low_s = HOLD1_S + HOLD2_S + 4.0
    out = phases([(3.0, targets(lv.port, 3 * c)), (low_s, targets(lv.port, 0.3 * c))])
    sampler.stop()
    fall_at = out[1][0]
    runs = sampler.levels()
    rel = [(round(t - out[0][0], 2), l) for t, l in runs]
    print("  step down: load falls at %.2f s; levels %s" % (fall_at - out[0][0], rel))
    assert runs[-1][1] == 0, rel
    # the sequence, from the last time level 2 began: 2, 1, 0, nothing skipped
    i2 = max(i for i, (_, l) in enumerate(runs) if l == 2)
    assert [l for _, l in runs[i2:]] == [2, 1, 0], rel
    t2, t1, t0 = runs[i2][0], runs[i2 + 1][0], runs[i2 + 2][0]
    names = [n for t, _, _, n in sampler.samples if t >= t2]
    assert names[0] == "shed-normal" and names[-1] == "normal" and "shed-optional" in names, names
    # /metrics says what /status says
    m = lv.metrics()
    st = lv.status()["tiers"]
    assert metric_sum(m, "levee_tier_level") == st["level"] == 0
    assert metric_sum(m, "levee_tier_transitions_total", direction="up") == st["transitions"]["up"]
    assert metric_sum(m, "levee_tier_transitions_total", direction="down") == st["transitions"]["down"]
    assert st["transitions"]["up"] == st["transitions"]["down"] >= 2, st["transitions"]
    tick, slack = TICK_MS / 1000.0, 0.1  # sampling every 50 ms
    print("  step down: level 2 for %.2f s (hold %.0f s), level 1 for %.2f s (hold %.0f s)"
          % (t1 - t2, HOLD2_S, t0 - t1, HOLD1_S))
    assert t1 - t2 >= HOLD2_S - slack, rel
    assert t0 - t1 >= HOLD1_S - slack, rel
    # and not much later than the hold once the load has fallen: the window
    # (1 s) has to forget the overload, then a tick or two
    assert t0 - t1 <= HOLD1_S + 1.0 + 3 * tick + 0.5, rel
    assert t1 <= max(t2 + HOLD2_S, fall_at + 1.0) + 3 * tick + 0.5, rel


def test_oscillation_bounded_by_hold(origin_idle, measured_c, levee_factory):
    """Load that swings around the tier-1 threshold (1.3C and 0.5C, 0.5 s
    each) for 20 s: 40 crossings, but the transitions stay within what the
    hold allows.

    The bound: a tier comes into force at once, but leaves only after it
    has been in force for `hold`; so each round trip up and down takes at
    least `hold`, and in T seconds there are at most ceil(T / hold) round
    trips of tier 1, plus one more move if it is up at the end:
    transitions <= 2 * ceil(T / hold) + 1 (tier 2 would add its own,
    bounded the same way by its hold; it is counted apart below).

    The load is built to come back at once after every step down, so a
    right controller comes close: its ups are at least hold plus a tick
    apart (the down comes a hold after the up at the earliest, the next up
    a tick after the down), so 7 in the 20 s and the last answers' 0.2 s,
    and 14 moves at most against the bound's 15;
    measured 11-13. A controller that ignored the hold would make about 40,
    one per swing."""
    c = measured_c
    lv = levee_factory(policy(tiers=True), upstream=origin_idle.addr)
    sampler = LevelSampler(lv)
    sampler.start()
    T, half = 20.0, 0.5
    plan = []
    for i in range(int(T / half)):
        plan.append((half, targets(lv.port, (1.3 if i % 2 == 0 else 0.5) * c)))
    out = phases(plan)
    sampler.stop()
    transitions = lv.metric("levee_tier_transitions_total") or 0
    runs = sampler.levels()
    ups2 = sum(1 for i in range(1, len(runs)) if runs[i][1] == 2 and runs[i - 1][1] == 1)
    bound = 2 * math.ceil(T / HOLD1_S) + 1 + (2 * math.ceil(T / HOLD2_S) + 1 if ups2 else 0)
    sent = sum(r.sent for _, res in out for r in res.values())
    print("  oscillation: %d crossings of the threshold in %.0f s, %d requests; transitions %d "
          "(bound %d with hold %.0f s); tier 2 entered %d times; levels %s"
          % (int(T / half), T, sent, transitions, bound, HOLD1_S, ups2,
             [(round(t - out[0][0], 2), l) for t, l in runs]))
    assert transitions >= 2, runs  # it did cross the threshold
    assert transitions <= bound, (transitions, bound)
