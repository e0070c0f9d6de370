"""Stale answers: stale-while-revalidate, stale-if-error (5xx and a dropped
connection), and revalidation with the stored validators (a 304 refreshes the
entry). The origin's /flaky/<name> and /etag/<name> send max-age=1 and an
ETag; /__fail?name=..&mode=503|drop|ok&bump=1 changes them."""
import time

from harness import cache_status_core, metric_sum, once, wait_until


def get(lv, target, headers=()):
    return once(lv.port, "GET", target, headers)


def set_origin(origin, name, mode="ok", bump=False):
    origin._get("/__fail?name=%s&mode=%s%s" % (name, mode, "&bump=1" if bump else ""))


def wait_stale(lv, target):
    """Wait until the stored entry is past its 1 s lifetime, without
    touching it (a GET would already refresh it)."""
    time.sleep(1.1)  # the entry's lifetime is 1 s; nothing to poll for but time itself


def test_stale_while_revalidate(levee_factory, origin):
    name = "swr-%d" % origin.start_mark
    lv = levee_factory({'route "c"': {"prefix": "/", "cache_ttl": "origin", "stale_while_revalidate": "30s"}})
    assert get(lv, "/flaky/" + name).body == b"v1"
    set_origin(origin, name, bump=True)  # the origin now has v2
    wait_stale(lv, "/flaky/" + name)
    r = get(lv, "/flaky/" + name)
    assert r.body == b"v1" and cache_status_core(r.header("Cache-Status")) == "levee; hit; detail=stale"
    # one background request refreshes the entry. It is counted before v2 is
    # read: v2 lives 1 s too, and a slow read of it may find it stale again.
    wait_until(lambda: len(origin.requests(origin.start_mark, path="/flaky/" + name)) >= 2, 5,
               msg="the background refresh reached the origin")
    assert len(origin.requests(origin.start_mark, path="/flaky/" + name)) == 2
    wait_until(lambda: get(lv, "/flaky/" + name).body == b"v2", 5, msg="the refresh stored v2")
    assert metric_sum(lv.metrics(), "levee_cache_stale_total", reason="while_revalidate") >= 1


def test_stale_if_error_on_5xx_and_on_a_dropped_connection(levee_factory, origin):
    name = "sie-%d" % origin.start_mark
    lv = levee_factory({'route "c"': {"prefix": "/", "cache_ttl": "origin", "stale_if_error": "60s"}})
    assert get(lv, "/flaky/" + name).status == 200
    set_origin(origin, name, "503")
    wait_stale(lv, "/flaky/" + name)
    r = get(lv, "/flaky/" + name)
    assert r.status == 200 and r.body == b"v1"
    assert cache_status_core(r.header("Cache-Status")) == "levee; hit; detail=stale-if-error"
    set_origin(origin, name, "drop")
    r = get(lv, "/flaky/" + name)
    assert r.status == 200 and r.body == b"v1"
    assert cache_status_core(r.header("Cache-Status")) == "levee; hit; detail=stale-if-error"
    assert metric_sum(lv.metrics(), "levee_cache_stale_total", reason="if_error") == 2
    set_origin(origin, name, "ok")


def test_no_stale_if_error_without_the_window(levee_factory, origin):
    name = "nosie-%d" % origin.start_mark
    lv = levee_factory({'route "c"': {"prefix": "/", "cache_ttl": "origin"}})
    assert get(lv, "/flaky/" + name).status == 200
    set_origin(origin, name, "503")
    wait_stale(lv, "/flaky/" + name)
    assert get(lv, "/flaky/" + name).status == 503
    set_origin(origin, name, "ok")


def test_revalidation_with_a_304_refreshes_the_entry(levee_factory, origin):
    name = "rv-%d" % origin.start_mark
    lv = levee_factory({'route "c"': {"prefix": "/", "cache_ttl": "origin"}})
    assert get(lv, "/etag/" + name).body == b"v1"
    wait_stale(lv, "/etag/" + name)
    r = get(lv, "/etag/" + name)
    assert r.status == 200 and r.body == b"v1"
    assert cache_status_core(r.header("Cache-Status")) == "levee; fwd=stale; stored"
    reqs = origin.requests(origin.start_mark, path="/etag/" + name)
    assert len(reqs) == 2
    from harness import hget
    assert hget(reqs[1]["headers"], "If-None-Match") == '"v1"'  # levee sent the stored validator
    # refreshed: a hit again, without the origin
    assert cache_status_core(get(lv, "/etag/" + name).header("Cache-Status")) == "levee; hit"
    assert len(origin.requests(origin.start_mark, path="/etag/" + name)) == 2
    assert metric_sum(lv.metrics(), "levee_cache_revalidated_total") == 1


def test_revalidation_that_gets_a_new_body(levee_factory, origin):
    name = "rv2-%d" % origin.start_mark
    lv = levee_factory({'route "c"': {"prefix": "/", "cache_ttl": "origin"}})
    assert get(lv, "/etag/" + name).body == b"v1"
    set_origin(origin, name, bump=True)  # the stored validator no longer matches
    wait_stale(lv, "/etag/" + name)
    r = get(lv, "/etag/" + name)
    assert r.status == 200 and r.body == b"v2"
    assert cache_status_core(r.header("Cache-Status")) == "levee; fwd=stale; stored"
    assert cache_status_core(get(lv, "/etag/" + name).header("Cache-Status")) == "levee; hit"
