"""The control run for levee's bulkheads: the failure they must prevent,
shown through the real levee *without* any bulkhead.

A legacy origin with 8 worker threads (fragile_origin.py) sits behind levee,
which routes /slow and /fast to it. When the dependency behind /slow hangs,
the /slow requests take all 8 workers and keep them; /fast, which needs no
dependency at all, then waits behind them and times out too. A bulkhead (a
cap on the requests in flight per route group) must keep /fast alive in the
same run; the bulkhead test repeats this scenario with one and asserts the
opposite.
"""
import load
from fragile import FAST_RATE, TIMEOUT, W, fragile_factory, hang_scenario  # noqa: F401  (fixture)
import pytest

# measured under a load of its own: run alone, after the tests that run in parallel (tests/run)
pytestmark = pytest.mark.serial("measures latency and success rates under a load of its own")

# What the control run measured on a 2-core machine (see README.md,
# "Bulkhead tools"): /fast 100% ok with p99 a few ms alone, then ~1-5% ok
# while /slow hangs; the bound leaves a wide margin on both sides.
COLLAPSED_BELOW = 0.5


def policy():
    return {
        # generous: levee itself must not be what cuts the hung requests short
        "upstream": {"connect_timeout": "5s", "response_timeout": "60s"},
        'route "slow"': {"prefix": "/slow"},
        'route "fast"': {"prefix": "/fast"},
    }


def test_control_no_bulkhead_fast_collapses(fragile_factory, levee_factory):
    """CONTROL RUN, no bulkhead: with the dependency of /slow hanging, open
    loop load on /slow and /fast through levee exhausts the origin's 8
    workers and /fast's success rate collapses (below 50%), although /fast
    alone is served 100% with a low p99. This is the failure bulkheads
    must prevent; it passing shows the scenario is real, not that levee
    is right."""
    fo = fragile_factory(workers=W)
    lv = levee_factory(policy(), upstream=fo.addr)

    base, fast, slow, st = hang_scenario(fo, lv.port)
    assert base.p99_ok < 0.5, base
    assert st["max_busy"] == W and st["hung"] == W, st
    assert fast.success_rate < COLLAPSED_BELOW, fast
    assert fast.timeouts > 0.5 * fast.sent, fast

    fo.release()
    st = fo.wait_idle(timeout=20)
    after = load.run([load.Target(lv.port, "/fast", FAST_RATE)], 0.5, timeout=TIMEOUT)["/fast"]
    assert after.success_rate == 1.0, after  # the collapse was the hung dependency's doing
