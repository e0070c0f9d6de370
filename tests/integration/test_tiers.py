"""Degradation tiers (docs/tiers.md) in front of the test origin: which
priorities each tier sheds and how, cohorts, shadow tiers, forcing on the
admin port, the level following a signal up and back down, bulkhead limits
scaled, reloads, and the container signals read from a fixture cgroup tree.

The overload scenarios (open loop, three times the capacity of a fragile
origin, with a control run) are in test_tiers_overload.py.
"""
import concurrent.futures
import json
import os
import time

from harness import hget, metric_sum, once, run_levee, wait_until

ROUTES = {
    'route "crit"': {"prefix": "/echo/crit", "priority": "critical"},
    'route "norm"': {"prefix": "/echo/norm", "priority": "normal"},
    'route "opt"': {"prefix": "/echo/opt", "priority": "optional", "refusal_status": "429"},
}

NEVER = {"enter": "inflight > 1000000", "exit": "inflight < 1000000", "hold": "0s"}


def policy(tiers, extra=None, tiers_cfg=None):
    s = {"levee": {"workers": "2"}, "tiers": {"tick": "100ms"}}
    s["tiers"].update(tiers_cfg or {})
    s.update(ROUTES)
    for name, kv in tiers:
        t = dict(NEVER)
        t.update(kv)
        s['tier "%s"' % name] = t
    s.update(extra or {})
    return s


def force(lv, tier, for_="60s", reason="test"):
    r = lv.admin_request("POST", "/tier?force=%s&for=%s&reason=%s" % (tier, for_, reason))
    assert r.status == 200, r
    return json.loads(r.body)


def clear(lv):
    return lv.admin_request("POST", "/tier?clear=1")


def tier(lv):
    return lv.status()["tiers"]


def codes(lv, path, n=5, headers=()):
    return [once(lv.port, "GET", path, headers=headers).status for _ in range(n)]


def test_each_tier_sheds_its_priorities_and_never_critical(levee_factory):
    lv = levee_factory(policy([("one", {"shed": "optional", "retry_after": "7s"}),
                               ("two", {"shed": "optional, normal"})]))
    assert tier(lv)["level"] == 0 and tier(lv)["tier"] == "normal"
    for p in ("crit", "norm", "opt"):
        assert codes(lv, "/echo/%s/x" % p) == [200] * 5
    st = force(lv, "one")
    assert st["level"] == 1 and st["forced"]["source"] == "admin" and st["forced"]["reason"] == "test"
    r = once(lv.port, "GET", "/echo/opt/x")
    # the optional route answers 429 (its refusal_status), with the tier named
    assert r.status == 429 and r.header("X-Levee-Reason") == "tier-shed; tier=one", r
    assert r.header("Retry-After") == "7"
    assert codes(lv, "/echo/norm/x") == [200] * 5
    assert codes(lv, "/echo/crit/x") == [200] * 5
    force(lv, "two")
    r = once(lv.port, "GET", "/echo/norm/x")
    assert r.status == 503 and r.header("X-Levee-Reason") == "tier-shed; tier=two", r
    assert r.header("Retry-After") == "5"  # the default
    assert codes(lv, "/echo/crit/x", n=20) == [200] * 20
    m = lv.metrics()
    assert metric_sum(m, "levee_tier_shed_total", tier="one", route="opt", priority="optional") == 1
    assert metric_sum(m, "levee_tier_shed_total", tier="two", route="norm", priority="normal") == 1
    assert not metric_sum(m, "levee_tier_shed_total", route="crit")  # no series: never shed
    assert metric_sum(m, "levee_tier_level") == 2
    assert metric_sum(m, "levee_tier_forced", source="admin") == 1
    # levee's own answers, never the upstream's
    assert metric_sum(m, "levee_rejected_requests_total", reason="tier_shed") == 2
    assert clear(lv).status == 200
    wait_until(lambda: tier(lv)["level"] == 0, 5, msg="back to normal once cleared")
    assert codes(lv, "/echo/opt/x") == [200] * 5
    assert clear(lv).status == 409  # nothing to clear


def test_a_share_of_a_priority_is_shed_by_stable_cohorts(levee_factory):
    lv = levee_factory(policy([("one", {"shed": "normal 30%"})], tiers_cfg={"cohort": "header:X-User"}))
    force(lv, "one")
    users = ["user-%d" % i for i in range(300)]
    first = {u: once(lv.port, "GET", "/echo/norm/a", headers=[("X-User", u)]).status for u in users}
    shed = [u for u, s in first.items() if s == 503]
    assert set(first.values()) <= {200, 503}
    # about 30% of the users, and the same ones again
    assert 60 <= len(shed) <= 120, len(shed)
    again = {u: once(lv.port, "GET", "/echo/norm/b", headers=[("X-User", u)]).status for u in users[:100]}
    assert all(again[u] == first[u] for u in users[:100])
    # optional is not shed by this tier at all, critical never
    assert codes(lv, "/echo/opt/x", headers=[("X-User", shed[0])]) == [200] * 5
    assert codes(lv, "/echo/crit/x", headers=[("X-User", shed[0])]) == [200] * 5


def test_cohort_by_cookie_falls_back_on_the_address(levee_factory):
    lv = levee_factory(policy([("one", {"shed": "normal 50%"})], tiers_cfg={"cohort": "cookie:sid"}))
    force(lv, "one")
    by_sid = {}
    for i in range(200):
        sid = "s%d" % i
        by_sid[sid] = once(lv.port, "GET", "/echo/norm/a", headers=[("Cookie", "a=1; sid=%s; b=2" % sid)]).status
    n = sum(1 for s in by_sid.values() if s == 503)
    assert 70 <= n <= 130, n
    # without the cookie: the address (127.0.0.1) decides, the same way each time
    no_cookie = codes(lv, "/echo/norm/a", n=10)
    assert len(set(no_cookie)) == 1


def test_shadow_tier_sheds_nothing_and_counts_what_it_would(levee_factory):
    lv = levee_factory(policy([("rehearse", {"shed": "optional, normal", "shadow": "true"})]))
    force(lv, "rehearse")
    assert codes(lv, "/echo/opt/x", n=10) == [200] * 10
    assert codes(lv, "/echo/norm/x", n=4) == [200] * 4
    assert codes(lv, "/echo/crit/x", n=4) == [200] * 4
    m = lv.metrics()
    assert metric_sum(m, "levee_tier_shadow_shed_total", tier="rehearse", route="opt", priority="optional") == 10
    assert metric_sum(m, "levee_tier_shadow_shed_total", tier="rehearse", route="norm", priority="normal") == 4
    assert not metric_sum(m, "levee_tier_shed_total")
    # the line says what was counted so far when it was written: one from a
    # tick in the middle of the requests above names fewer; a later one all
    def full_line():
        lines = [ln["msg"] for ln in lv.log_lines("shadow tier rehearse would have shed")]
        return any("opt=10" in ln and "norm=4" in ln for ln in lines) or None
    wait_until(full_line, 5, msg="the shadow log line with every request counted")


def test_level_follows_a_signal_up_and_steps_down_after_hold(levee_factory):
    lv = levee_factory(policy([
        ("one", {"enter": "route.slow.inflight >= 3", "exit": "route.slow.inflight < 1", "hold": "1s",
                 "shed": "optional"}),
        ("two", {"enter": "route.slow.inflight >= 5", "exit": "route.slow.inflight < 3", "hold": "1s",
                 "shed": "optional, normal"}),
    ], extra={'route "slow"': {"prefix": "/slow", "priority": "critical"}}))
    pool = concurrent.futures.ThreadPoolExecutor(8)
    try:
        futs = [pool.submit(once, lv.port, "GET", "/slow?head_ms=2500&n=2", timeout=10) for _ in range(3)]
        wait_until(lambda: tier(lv)["level"] == 1, 3, msg="tier one with 3 slow requests in flight")
        sig = tier(lv)["signals"]
        assert sig["route.slow.inflight"] == 3, sig
        assert codes(lv, "/echo/opt/x", n=1) == [429]
        assert codes(lv, "/echo/norm/x", n=1) == [200]
        futs += [pool.submit(once, lv.port, "GET", "/slow?head_ms=1500&n=2", timeout=10) for _ in range(2)]
        wait_until(lambda: tier(lv)["level"] == 2, 3, msg="tier two with 5 in flight")
        assert codes(lv, "/echo/norm/x", n=1) == [503]
        t_up = time.monotonic()
        # the two short ones end (3 left: two's exit, inflight < 3, does not hold yet)
        for f in futs[3:]:
            assert f.result().status == 200
        # the long ones end: two steps down once its hold is over, then one
        for f in futs[:3]:
            assert f.result().status == 200
        levels = []

        def down():
            levels.append(tier(lv)["level"])
            return levels[-1] == 0
        wait_until(down, 6, interval=0.05, msg="back to normal")
        assert time.monotonic() - t_up >= 1.0  # not before the hold
        # one step at a time: 2, then 1, then 0 (each seen, in order)
        seq = [l for i, l in enumerate(levels) if i == 0 or l != levels[i - 1]]
        assert seq[-2:] == [1, 0] and all(a > b for a, b in zip(seq, seq[1:])), levels
        m = lv.metrics()
        assert metric_sum(m, "levee_tier_transitions_total", direction="up") == 2
        assert metric_sum(m, "levee_tier_transitions_total", direction="down") == 2
        assert lv.log_lines("tier: normal -> one: enter route.slow.inflight >= 3")
        assert lv.log_lines("tier: two -> one: exit route.slow.inflight < 3")
    finally:
        pool.shutdown(wait=True)


def test_under_light_load_nothing_is_shed(levee_factory):
    lv = levee_factory(policy([("one", {"enter": "inflight > 50 or upstream_p99 > 500ms",
                                        "exit": "inflight < 10", "shed": "optional"})]))
    pool = concurrent.futures.ThreadPoolExecutor(4)
    try:
        paths = ["/echo/%s/%d" % (p, i) for i in range(60) for p in ("crit", "norm", "opt")]
        res = list(pool.map(lambda p: once(lv.port, "GET", p).status, paths))
    finally:
        pool.shutdown(wait=True)
    assert res == [200] * len(paths)
    assert tier(lv)["level"] == 0
    assert lv.metric("levee_tier_shed_total") == 0
    assert lv.metric("levee_tier_transitions_total") == 0


def test_tier_scales_bulkhead_limits_while_in_force(levee_factory):
    lv = levee_factory(policy([("one", {"bulkhead_scale": "25%"})],
                              extra={'bulkhead "b"': {"max_concurrent": "8", "max_queue": "20"},
                                     'route "crit"': {"prefix": "/echo/crit", "priority": "critical",
                                                      "bulkhead": "b"}}))

    def bh():
        return {b["name"]: b for b in lv.status()["bulkheads"]}["b"]
    assert bh()["max_concurrent"] == 8 and bh()["max_queue"] == 20
    force(lv, "one")
    wait_until(lambda: bh()["max_concurrent"] == 2, 3, msg="limits scaled to 25%")
    assert bh()["max_queue"] == 20 and bh()["scale_pct"] == 25  # the queue is not scaled
    clear(lv)
    wait_until(lambda: bh()["max_concurrent"] == 8, 3, msg="limits back")


def test_scaled_bulkhead_never_refuses_a_critical_route(levee_factory):
    # one slot, no queue: at 50% a normal request finds no room beside a
    # slow one, a critical one still gets the slot the scale holds back
    lv = levee_factory(policy([("one", {"bulkhead_scale": "50%"})],
                              extra={'bulkhead "b"': {"max_concurrent": "2", "max_queue": "0"},
                                     'route "slow"': {"prefix": "/slow", "priority": "normal", "bulkhead": "b"},
                                     'route "crit"': {"prefix": "/echo/crit", "priority": "critical",
                                                      "bulkhead": "b"},
                                     'route "norm"': {"prefix": "/echo/norm", "priority": "normal",
                                                      "bulkhead": "b"}}))
    force(lv, "one")
    wait_until(lambda: lv.status()["bulkheads"][0]["max_concurrent"] == 1, 3, msg="scaled to one slot")
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        slow = pool.submit(once, lv.port, "GET", "/slow?head_ms=1500&n=2", timeout=10)
        wait_until(lambda: lv.status()["bulkheads"][0]["active"] == 1, 3, msg="the slow one holds a slot")
        r = once(lv.port, "GET", "/echo/norm/x")
        assert r.status == 503 and r.header("X-Levee-Reason") == "bulkhead-full; bulkhead=b", r
        assert once(lv.port, "GET", "/echo/crit/x").status == 200
        assert slow.result().status == 200
    finally:
        pool.shutdown(wait=True)


def test_requests_no_route_matches_count_as_normal(levee_factory):
    lv = levee_factory(policy([("one", {"shed": "optional"}), ("two", {"shed": "optional, normal"})]))
    force(lv, "one")
    assert codes(lv, "/bytes?n=3", n=2) == [200, 200]
    force(lv, "two")
    r = once(lv.port, "GET", "/bytes?n=3")
    assert r.status == 503 and r.header("X-Levee-Reason") == "tier-shed; tier=two"
    assert lv.metric("levee_tier_shed_total", tier="two", route="default", priority="normal") == 1


def test_a_shed_request_gets_the_routes_fallback(levee_factory):
    lv = levee_factory(policy([("one", {"shed": "optional"})], extra={
        'route "opt"': {"prefix": "/echo/opt", "priority": "optional", "fallback": "static",
                        "fallback_status": "200", "fallback_body": "later, please"}}))
    force(lv, "one")
    r = once(lv.port, "GET", "/echo/opt/x")
    assert r.status == 200 and r.body == b"later, please", r
    assert r.header("X-Levee-Reason") == "tier-shed; tier=one; fallback=static"
    assert lv.metric("levee_fallbacks_total", route="opt", reason="tier_shed", fallback="static") == 1


def test_reload_keeps_the_level_and_its_window(levee_factory):
    # the tier holds on a windowed figure: a reload must not see a calm
    # window for one tick and step down (and up again)
    lv = levee_factory(policy([("err", {"enter": "error_rate > 50%", "exit": "error_rate < 10%",
                                        "hold": "0s", "shed": "optional"})],
                              extra={'route "fail"': {"prefix": "/status/", "priority": "critical"}}))
    pool = concurrent.futures.ThreadPoolExecutor(2)
    stop = []

    def hammer():
        while not stop:
            once(lv.port, "GET", "/status/500")
    try:
        futs = [pool.submit(hammer) for _ in range(2)]
        wait_until(lambda: tier(lv)["level"] == 1, 5, msg="tier on the error rate")
        before = tier(lv)["transitions"]
        for _ in range(3):
            assert lv.admin_request("POST", "/reload").status == 200
            time.sleep(0.35)  # let ticks run on the reloaded policy (what is measured: nothing moves)
        st = tier(lv)
        assert st["level"] == 1 and st["transitions"] == before, (before, st["transitions"])
    finally:
        stop.append(1)
        for f in futs:
            f.result()
        pool.shutdown(wait=True)


def test_forcing_errors_and_expiry(levee_factory):
    lv = levee_factory(policy([("one", {"shed": "optional"})]))
    r = lv.admin_request("POST", "/tier?force=nope&for=10s")
    assert r.status == 404 and b"no tier is named 'nope'" in r.body
    assert lv.admin_request("POST", "/tier?force=one&for=25h").status == 400
    assert lv.admin_request("POST", "/tier").status == 400
    assert lv.admin_request("GET", "/tier?force=one").status == 405
    # a reason that is not UTF-8 would make /status and /tiers invalid JSON
    # for as long as the forcing lasts
    r = lv.admin_request("POST", "/tier?force=one&for=10s&reason=caf%E9")
    assert r.status == 400 and b"reason is UTF-8 text" in r.body, r
    assert tier(lv)["forced"] is None
    json.loads(lv.admin_get("/tiers")[2])
    t0 = time.time()
    force(lv, "one", for_="1500ms")
    st = tier(lv)
    assert st["forced"]["until_unix_ms"] / 1000.0 == __import__("pytest").approx(t0 + 1.5, abs=0.3)
    wait_until(lambda: tier(lv)["forced"] is None, 4, interval=0.05, msg="the forcing ends")
    ended = time.time() - t0
    assert 1.4 <= ended <= 2.0, ended
    # exit (inflight < 1000000) holds and the hold is 0: back to normal next
    wait_until(lambda: tier(lv)["level"] == 0, 2, msg="normal after the forcing")
    # GET /tiers shows the same as /status
    st, _, body = lv.admin_get("/tiers")
    assert st == 200 and json.loads(body)["tiers"][0]["name"] == "one"


def test_reload_keeps_the_level_and_a_bad_tier_is_refused(levee_factory):
    lv = levee_factory(policy([("one", {"shed": "optional"}), ("two", {"shed": "normal"})]))
    force(lv, "two")
    text = open(lv.policy_path).read()
    lv.write_policy(text.replace("inflight < 1000000", "inflght < 1000000", 1))
    r = lv.admin_request("POST", "/reload")
    assert r.status == 422, r
    body = r.body.decode()
    assert "unknown signal 'inflght' (did you mean 'inflight'?)" in body, body
    assert ":%d:" % (text.splitlines().index([l for l in text.splitlines() if l.startswith("exit")][0]) + 1) in body
    assert tier(lv)["level"] == 2
    lv.write_policy(text.replace('[tier "one"]', '[tier "uno"]'))
    assert lv.admin_request("POST", "/reload").status == 200
    st = tier(lv)
    assert st["level"] == 2 and st["tiers"][0]["name"] == "uno" and st["forced"]["tier"] == "two"
    assert codes(lv, "/echo/norm/x", n=1) == [503]


def test_check_reports_expression_errors_with_line_and_column(tmp_path):
    p = tmp_path / "p.ini"
    p.write_text('[route "a"]\nprefix = /\n\n[tier "t"]\nenter = route.a.inflight > 10 or cpu > 80\n'
                 'exit  = (cpu < 50%\n[tier "u"]\nenter = cpu > ${LIMIT}\nexit = cpu < 1%\n'
                 '[tier "normal"]\nenter = cpu > 1%\nexit = cpu < 1%\n[tiers]\ntick = 1s\nwindow = 2s\n')
    rc, err = run_levee(["check", str(p)], env=dict(os.environ, LIMIT="90"))
    assert rc != 0
    # a value from ${...}: the column is the expanded value's
    assert 'p.ini:8: [tier "u"] enter: at column 7 of its value (after ${...} expansion): a number needs a unit' \
        in err, err
    assert "p.ini:10: [tier \"normal\"]: 'normal' is the name of level 0" in err, err
    assert "[tiers] window: window (2000ms) must be at least 5 ticks (tick = 1000ms)" in err, err
    assert "p.ini:5:40: [tier \"t\"] enter: a number needs a unit here: 80 what? (cpu is a percentage" in err, err
    assert "p.ini:6:19: [tier \"t\"] exit: missing ')' to close the '(' at column 1" in err, err


def write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def test_container_signals_from_a_cgroup_tree(levee_factory, tmp_path):
    """cgroup v2 signals. This machine's hierarchy is v1 (no cgroup2 mount to
    make a group in), so the test lays out a fixture tree and points
    LEVEE_CGROUP_ROOT at it; the readers are the same either way."""
    root = str(tmp_path / "cg")
    v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    print("cgroup signals: %s" % ("cgroup v2 mounted here, still using a fixture tree for exact values"
                                  if v2 else "cgroup v1 machine: fixture tree via LEVEE_CGROUP_ROOT"))
    write(root, "memory.current", "104857600\n")
    write(root, "memory.max", "209715200\n")
    write(root, "cpu.stat", "usage_usec 1000\nuser_usec 500\nsystem_usec 500\nnr_periods 100\n"
          "nr_throttled 10\nthrottled_usec 5000\n")
    write(root, "cpu.pressure", "some avg10=42.50 avg60=10.00 avg300=1.00 total=100\n"
          "full avg10=3.00 avg60=1.00 avg300=0.50 total=10\n")
    write(root, "memory.pressure", "some avg10=1.00 avg60=0.00 avg300=0.00 total=1\n"
          "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
    lv = levee_factory(policy([("hot", {"enter": "psi.cpu.some10 > 40% and cgroup.memory_used >= 50%",
                                        "exit": "psi.cpu.some10 < 20%", "shed": "optional"})]),
                       env={"LEVEE_CGROUP_ROOT": root})
    wait_until(lambda: tier(lv)["level"] == 1, 3, msg="tier from the fixture's pressure and memory")
    sig = tier(lv)["signals"]
    assert sig["psi.cpu.some10"] == 42.5 and sig["psi.cpu.full10"] == 3.0, sig
    assert sig["cgroup.memory_used"] == 50.0 and sig["memory.used"] == 104857600, sig
    assert tier(lv)["psi_source"]["cpu"] == "cgroup"
    # throttling is a rate between ticks: 20 of 100 more periods throttled
    write(root, "cpu.stat", "usage_usec 2000\nuser_usec 1000\nsystem_usec 1000\nnr_periods 200\n"
          "nr_throttled 30\nthrottled_usec 9000\n")
    wait_until(lambda: tier(lv)["signals"]["cgroup.cpu_throttled"] == 20.0, 3, msg="throttled share")
    write(root, "cpu.pressure", "some avg10=5.00 avg60=10.00 avg300=1.00 total=200\n")
    wait_until(lambda: tier(lv)["level"] == 0, 3, msg="pressure gone: back to normal")
    # no io.pressure in the tree: the host's /proc/pressure stands in, or none
    assert tier(lv)["psi_source"]["io"] in ("host", "none")
