"""A policy at the route limit (LV_MAX_ROUTES, 4096): it passes `levee
check`, loads, and each request gets the first route in file order whose
pattern and methods match, whether that route is first, in the middle or
last in the file, or none. Which route answered is read from
levee_requests_total, which names only the routes of the running policy."""
import signal

from harness import metric_sum, run_levee, wait_until

MAX_ROUTES = 4096


def many_routes():
    """4096 routes fanned out under /echo/, as a large real policy is. The
    first takes GETs only; the one before last repeats its pattern for every
    method, so it gets the rest; the last is a prefix."""
    routes = {'route "r%d"' % i: {"match": "/echo/r%d/*" % i} for i in range(MAX_ROUTES - 2)}
    routes['route "r0"']["methods"] = "GET"
    routes['route "again"'] = {"match": "/echo/r0/*"}
    routes['route "last"'] = {"prefix": "/echo/last/"}
    assert len(routes) == MAX_ROUTES
    return routes


def answered(samples, route):
    return metric_sum(samples, "levee_requests_total", route=route) or 0


def routes_named(samples):
    return {l["route"] for n, l, v in samples if n == "levee_requests_total"}


def test_policy_at_the_route_limit(levee_factory):
    lv = levee_factory(many_routes())
    code, out = run_levee(["check", lv.policy_path])
    assert code == 0 and "(4096 routes, 0 warnings" in out, out

    for target in ("/echo/r0/a", "/echo/r2047/b", "/echo/r4093/c", "/echo/last/x/y", "/echo/none", "/echo/r1"):
        assert lv.get(target).status == 200, target
    assert lv.raw(b"DELETE /echo/r0/a HTTP/1.1\r\nHost: t\r\n\r\n").status == 200

    m = lv.metrics()
    assert answered(m, "r0") == 1  # first in the file
    assert answered(m, "r2047") == 1  # in the middle
    assert answered(m, "r4093") == 1
    assert answered(m, "again") == 1  # the DELETE, which r0 leaves
    assert answered(m, "last") == 1  # last in the file
    assert answered(m, "default") == 2  # /echo/none, and /echo/r1 (r1's '*' needs a segment)
    assert routes_named(m) == {"default", "r0", "r2047", "r4093", "again", "last"}

    # After a reload to a smaller policy, the old routes' series are gone:
    # the metrics stay bounded by the running policy.
    small = dict(lv.sections)
    small = {k: v for k, v in small.items() if not k.startswith("route ")}
    small['route "r2047"'] = {"match": "/echo/r2047/*"}
    small['route "new"'] = {"prefix": "/echo/"}
    lv.write_policy(sections=small, atomic=True)
    lv.signal(signal.SIGHUP)
    wait_until(lambda: lv.metric("levee_policy_reloads_total", result="ok"), 10, interval=0.05,
               msg="the smaller policy to load")
    assert lv.get("/echo/r0/a").status == 200
    m = lv.metrics()
    assert routes_named(m) == {"default", "r2047", "new"}
    assert answered(m, "r2047") == 1  # kept by name across the reload
    assert answered(m, "new") == 1
