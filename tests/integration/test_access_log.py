"""The access log (docs/access-log.md): what a line says for a hit, a miss,
a stale answer, a bypass, a request shed by a tier or a bulkhead, or
refused by an open breaker; the fields and format the policy chooses, and
a reload changing them; hostile client values that must not split or forge
a line; reopening on SIGUSR1 for log rotation, under load, and a path that
cannot be reopened.

Every levee here writes its access log to a file of its own, read line by
line; a line is flushed by the worker's tick, so tests wait for it.
"""
import datetime
import json
import os
import re
import signal
import subprocess
import threading
import time

import pytest

from harness import cache_status_core, LEVEE_BIN, HttpConn, WAIT_SCALE, build_request, hjoin, once, raw, wait_until

WAIT = 5 * WAIT_SCALE


def log_path(tmp_path, name="access.log"):
    d = tmp_path / "logs"
    d.mkdir(parents=True, exist_ok=True)
    return str(d / name)


def read_lines(path, whole=True):
    """The lines of the file, each with its '\n' cut. whole: a line that
    does not end with one fails the test (a line was split); else, for
    polling while levee writes, a write still in progress is left out."""
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        data = f.read()
    if whole:
        assert not data or data.endswith(b"\n"), "a partial line at the end: %r" % data[-200:]
    return data.decode("ascii").split("\n")[:-1]


def count_lines(path):
    return len(read_lines(path, whole=False))


def records(path, whole=True):
    return [json.loads(ln) for ln in read_lines(path, whole)]


def logged(path, target, n=1):
    """The JSON records for `target`, once there are `n`."""
    def find():
        rs = [r for r in records(path, whole=False) if r.get("target") == target]
        return rs if len(rs) >= n else None
    return wait_until(find, WAIT, msg="%d access log line(s) for %s" % (n, target))


def make(levee_factory, tmp_path, sections=None, **levee_keys):
    path = log_path(tmp_path)
    s = {"levee": dict({"access_log": path, "workers": "2"}, **levee_keys)}
    for k, v in (sections or {}).items():
        s.setdefault(k, {}).update(v)
    return levee_factory(s), path


CACHED = {'route "c"': {"prefix": "/echo/c/", "cache_ttl": "60s"}}


def test_miss_then_hit_and_the_request_fields(levee_factory, tmp_path, origin):
    lv, path = make(levee_factory, tmp_path, CACHED)
    hdrs = [("User-Agent", "curl/8.5"), ("X-Forwarded-For", "203.0.113.7, 10.0.0.1"),
            ("X-Request-Id", "req-abc-1"), ("Referer", "http://example.test/from")]
    before = datetime.datetime.now(datetime.timezone.utc)
    a = once(lv.port, "GET", "/echo/c/1?x=1", headers=hdrs)
    assert a.status == 200 and cache_status_core(a.header("Cache-Status")) == "levee; fwd=miss; stored", a.headers
    miss = logged(path, "/echo/c/1?x=1")[0]
    assert miss["cache"] == "miss" and "cache_layer" not in miss, miss
    assert miss["outcome"] == "upstream" and miss["route"] == "c", miss
    assert miss["status"] == 200 and miss["method"] == "GET" and miss["protocol"] == "HTTP/1.1", miss
    assert miss["host"] == "test.local" and miss["user_agent"] == "curl/8.5", miss
    assert miss["forwarded_for"] == "203.0.113.7, 10.0.0.1" and miss["request_id"] == "req-abc-1", miss
    assert miss["client"] == "127.0.0.1", miss
    assert miss["upstream_addr"] == origin.addr, (miss, origin.addr)
    assert miss["bytes_sent"] >= len(a.body) > 0, miss
    assert miss["request_ms"] >= miss["upstream_ms"] >= 0, miss
    assert "shed" not in miss and "reason" not in miss and "tier" not in miss, miss
    # RFC 3339, UTC, milliseconds, near now
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", miss["time"]), miss
    t = datetime.datetime.strptime(miss["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    assert before - datetime.timedelta(seconds=1) <= t <= datetime.datetime.now(datetime.timezone.utc), miss

    b = once(lv.port, "GET", "/echo/c/1?x=1", version="HTTP/1.0")
    assert cache_status_core(b.header("Cache-Status")) == "levee; hit", b.headers
    hit = logged(path, "/echo/c/1?x=1", 2)[1]
    assert (hit["cache"], hit["cache_layer"], hit["outcome"]) == ("hit", "l1", "cache"), hit
    assert hit["protocol"] == "HTTP/1.0" and "user_agent" not in hit and "forwarded_for" not in hit, hit
    assert "upstream_ms" not in hit and "upstream_addr" not in hit, hit
    assert hit["request_id"] != "req-abc-1" and len(hit["request_id"]) > 0, hit


def test_bypass_and_uncached_route(levee_factory, tmp_path, origin):
    lv, path = make(levee_factory, tmp_path, CACHED)
    r = once(lv.port, "GET", "/echo/c/b", headers=[("Cookie", "session=1")])
    assert cache_status_core(r.header("Cache-Status")) == "levee; fwd=bypass", r.headers
    line = logged(path, "/echo/c/b")[0]
    assert line["cache"] == "bypass" and line["outcome"] == "upstream", line
    r = once(lv.port, "GET", "/echo/plain")
    assert r.status == 200 and cache_status_core(r.header("Cache-Status")) is None
    line = logged(path, "/echo/plain")[0]
    # no route matched, and no cache on the way: nothing to say
    assert "cache" not in line and "route" not in line, line


def test_stale_answer(levee_factory, tmp_path, origin):
    name = "alog-stale-%d" % origin.start_mark
    lv, path = make(levee_factory, tmp_path, {
        "upstream": {"response_timeout": "300ms"},
        'route "flaky"': {"prefix": "/flaky/", "cache_ttl": "origin", "fallback": "stale"},
    })
    origin._get("/__fail?name=%s&mode=ok&ms=0" % name)
    assert once(lv.port, "GET", "/flaky/" + name).status == 200
    time.sleep(1.2)  # the entry's own lifetime (max-age=1) runs out
    origin._get("/__fail?name=%s&mode=hang&ms=0" % name)
    try:
        r = once(lv.port, "GET", "/flaky/" + name)
    finally:
        origin._get("/__fail?name=%s&mode=ok&ms=0" % name)
    assert r.status == 200 and "detail=fallback" in cache_status_core(r.header("Cache-Status")), r.headers
    line = logged(path, "/flaky/" + name, 2)[1]
    assert (line["cache"], line["cache_layer"], line["fallback"]) == ("stale", "l1", "stale"), line
    assert line["outcome"] == "upstream-timeout" and line["reason"] == "upstream-timeout", line


def test_shed_by_a_tier(levee_factory, tmp_path):
    lv, path = make(levee_factory, tmp_path, {
        "tiers": {"tick": "100ms"},
        'tier "brownout"': {"enter": "inflight > 1000000", "exit": "inflight < 1000000", "hold": "0s",
                            "shed": "optional"},
        'route "opt"': {"prefix": "/echo/opt", "priority": "optional"},
    })
    r = lv.admin_request("POST", "/tier?force=brownout&for=60s&reason=test")
    assert r.status == 200, r
    assert once(lv.port, "GET", "/echo/opt/1").status == 503
    assert once(lv.port, "GET", "/echo/other").status == 200
    line = logged(path, "/echo/opt/1")[0]
    assert (line["shed"], line["tier"], line["reason"], line["status"]) == ("tier", "brownout", "tier-shed", 503), line
    assert line["outcome"] == "refused" and line["route"] == "opt", line
    other = logged(path, "/echo/other")[0]
    assert other["tier"] == "brownout" and "shed" not in other, other


def test_shed_by_a_bulkhead(levee_factory, tmp_path):
    lv, path = make(levee_factory, tmp_path, {
        'bulkhead "one"': {"max_concurrent": "1", "max_queue": "0", "queue_timeout": "50ms"},
        'route "slow"': {"prefix": "/slow", "bulkhead": "one"},
    })
    hold = HttpConn(lv.port)
    hold.send(b"GET /slow?head_ms=3000&n=1 HTTP/1.1\r\nHost: t\r\n\r\n")
    wait_until(lambda: {b["name"]: b for b in lv.status()["bulkheads"]}["one"]["active"] >= 1, WAIT,
               msg="the one slot taken")
    r = once(lv.port, "GET", "/slow?n=2")
    assert r.status == 503 and r.header("X-Levee-Reason").startswith("bulkhead-full"), r.headers
    hold.close()
    line = logged(path, "/slow?n=2")[0]
    assert (line["shed"], line["bulkhead"], line["reason"]) == ("bulkhead", "one", "bulkhead-full"), line
    assert "upstream_addr" not in line, line


def test_refused_by_an_open_breaker(levee_factory, tmp_path):
    lv, path = make(levee_factory, tmp_path, {
        'breaker "b"': {"min_requests": "5", "open_for": "30s"},
        'route "e"': {"prefix": "/echo/", "breaker": "b"},
    })
    assert once(lv.port, "GET", "/echo/before").status == 200
    r = lv.admin_request("POST", "/breaker?name=b&force=open&for=60s")
    assert r.status == 200, r
    r = once(lv.port, "GET", "/echo/refused")
    assert r.status == 503, r
    before = logged(path, "/echo/before")[0]
    assert (before["breaker"], before["breaker_state"]) == ("b", "closed") and "shed" not in before, before
    line = logged(path, "/echo/refused")[0]
    assert (line["shed"], line["breaker"], line["breaker_state"], line["reason"]) == \
        ("breaker", "b", "open", "breaker-open"), line


def test_text_format_and_field_choice_follow_a_reload(levee_factory, tmp_path):
    lv, path = make(levee_factory, tmp_path, access_log_format="text",
                    access_log_fields="status method target route cache user_agent")
    assert once(lv.port, "GET", "/echo/t1", headers=[("User-Agent", 'say "hi"')]).status == 200
    wait_until(lambda: any("/echo/t1" in ln for ln in read_lines(path, whole=False)), WAIT, msg="text line")
    assert read_lines(path) == ['200 GET "/echo/t1" - - "say \\"hi\\""']

    sections = {k: dict(v) for k, v in lv.sections.items()}
    sections["levee"].update({"access_log_format": "json", "access_log_fields": "target, status"})
    lv.write_policy(sections=sections, atomic=True)
    lv.signal(signal.SIGHUP)

    def json_now():
        once(lv.port, "GET", "/echo/t2")
        lines = read_lines(path, whole=False)
        return lines[-1].startswith("{") and lines
    lines = wait_until(json_now, WAIT, msg="json lines after the reload")
    assert json.loads(lines[-1]) == {"target": "/echo/t2", "status": 200}, lines[-1]
    # nothing lost in between: every line is one format or the other
    for ln in lines[1:]:
        assert ln.startswith('200 GET "/echo/t2"') or json.loads(ln)["target"] == "/echo/t2", ln


def test_a_bad_field_is_refused_by_check(tmp_path):
    p = tmp_path / "p.ini"
    p.write_text("[levee]\naccess_log_fields = time, size, status\naccess_log_format = xml\n")
    r = subprocess.run([LEVEE_BIN, "check", str(p)], capture_output=True, text=True, timeout=10)
    assert r.returncode != 0
    assert "p.ini:2: [levee] access_log_fields: 'size' is not a field" in r.stderr + r.stdout, r
    assert "p.ini:3: [levee] access_log_format: must be one of json, text" in r.stderr + r.stdout, r


HOSTILE_UA = 'evil" \\ "injected":"x\t\x80\xff' + "A" * 3000


def hostile_request(target):
    """What the parser lets through: quotes, backslashes, a tab and bytes
    above 0x7f in the user agent, one far past its bound; quotes and
    brackets in X-Forwarded-For and the target."""
    return (b"GET " + target.encode() + b" HTTP/1.1\r\n"
            b"Host: h\r\n"
            b"User-Agent: " + HOSTILE_UA.encode("latin-1") + b"\r\n"
            b'X-Forwarded-For: 1.2.3.4", "status":200, "x":"}{\r\n'
            b"Connection: close\r\n\r\n")


def test_hostile_values_never_split_or_forge_a_line(levee_factory, tmp_path):
    lv, path = make(levee_factory, tmp_path, access_log_fields="all")
    r = raw(lv.port, hostile_request('/echo/h?q="x"\\'))
    assert r is not None and r.status == 200
    line = logged(path, '/echo/h?q="x"\\')[0]
    assert line["forwarded_for"] == '1.2.3.4", "status":200, "x":"}{', line
    ua = line["user_agent"]
    # bytes above 0x7e are written as \u00XX escapes of their byte value
    assert ua.startswith('evil" \\ "injected":"x\t\x80\xff'), ua
    assert len(ua) < len(HOSTILE_UA) and line["truncated"] == ["user_agent"], line
    assert line["status"] == 200
    for ln in read_lines(path):
        assert all(0x20 <= ord(ch) < 0x7f for ch in ln), ln

    # the same in text: one line, as many values as fields, quotes balanced
    lv2, path2 = make(levee_factory, tmp_path / "t", access_log_format="text",
                      access_log_fields="status host user_agent forwarded_for target method")
    raw(lv2.port, hostile_request("/echo/h2"))
    wait_until(lambda: read_lines(path2, whole=False), WAIT, msg="a text line")
    lines = read_lines(path2)
    assert len(lines) == 1, lines
    tokens = re.findall(r'"(?:[^"\\]|\\.)*"(?:\.\.\.)?|[^ ]+', lines[0])
    assert len(tokens) == 6, tokens
    assert tokens[0] == "200" and tokens[1] == '"h"', tokens
    assert tokens[3] == '"1.2.3.4\\", \\"status\\":200, \\"x\\":\\"}{"', tokens
    assert tokens[2].endswith('"...') and "\\x80\\xff" in tokens[2] and "\\x09" in tokens[2], tokens[2][:80]
    assert tokens[4:] == ['"/echo/h2"', "GET"], tokens


def test_a_long_target_is_cut_at_its_bound_and_marked(levee_factory, tmp_path):
    lv, path = make(levee_factory, tmp_path, access_log_fields="target status")
    target = "/echo/long?" + "q" * 6000
    assert once(lv.port, "GET", target).status == 200
    rec = wait_until(lambda: records(path, whole=False), WAIT, msg="the line")[0]
    assert rec["target"] == target[:2048] and rec["truncated"] == ["target"], len(rec["target"])
    assert rec["status"] == 200


@pytest.mark.parametrize("head,reason,status", [
    # a complete head that fails levee's own checks: what it said is logged
    (b'GET /echo/bad HTTP/1.1\r\nHost: h"ost\\x\r\nUser-Agent: ua"q\r\n\r\n', "bad-request", 400),
    # a control byte the parser refuses: only the client is known
    (b"GET /echo/bad HTTP/1.1\r\nHost: h\r\nUser-Agent: a\x01\r\nb: \x7f\r\n\r\n", "bad-request", 400),
])
def test_refused_heads_are_logged_escaped(levee_factory, tmp_path, head, reason, status):
    lv, path = make(levee_factory, tmp_path, access_log_fields="all")
    r = raw(lv.port, head)
    assert r.status == status, r
    wait_until(lambda: records(path, whole=False), WAIT, msg="the refusal logged")
    recs = records(path)
    assert len(recs) == 1, recs
    rec = recs[0]
    assert (rec["status"], rec["reason"], rec["outcome"], rec["client"]) == (status, reason, "client-bad", "127.0.0.1")
    if b'h"ost' in head:
        assert (rec["host"], rec["user_agent"], rec["target"]) == ('h"ost\\x', 'ua"q', "/echo/bad"), rec
    else:
        assert "target" not in rec and "user_agent" not in rec, rec
    assert once(lv.port, "GET", "/echo/fine").status == 200


def test_a_loop_refused_with_508_is_logged(levee_factory, tmp_path, origin):
    """A request back with this levee's own Via (docs/transparent.md) is a
    head refused before it became a request: it gets its line like the
    others, so a loop shows in the access log, not only in a counter."""
    lv, path = make(levee_factory, tmp_path, access_log_fields="all")
    mark = origin.mark()
    assert once(lv.port, "GET", "/echo/first").status == 200
    own = hjoin(origin.requests(mark)[0]["headers"], "Via")[-1].split(" ", 1)[1]
    r = raw(lv.port, build_request("GET", "/echo/looped", [("Via", "1.1 " + own)]))
    assert r.status == 508, r
    rec = logged(path, "/echo/looped")[0]
    assert (rec["status"], rec["reason"], rec["outcome"]) == (508, "loop-detected", "refused"), rec
    assert rec["method"] == "GET" and rec["client"] == "127.0.0.1", rec


def test_a_request_cut_by_the_drain_timeout_is_logged(levee_factory, tmp_path, origin):
    """A request still in flight when the drain timeout ends levee is ended
    at teardown: its line must reach the file before levee exits, not be
    left in the worker's buffer."""
    lv, path = make(levee_factory, tmp_path, drain_timeout="300ms", workers="1")
    mark = origin.mark()
    c = HttpConn(lv.port, timeout=10)
    c.send(build_request("GET", "/hang?cut=1"))
    origin.wait_event(lambda e: e["event"] == "request" and "cut=1" in e["target"], since=mark, timeout=3)
    lv.expected_exit = True
    lv.signal(signal.SIGTERM)
    assert lv.wait_exit(5 * WAIT_SCALE) == 0
    c.close()
    recs = [r for r in records(path) if "cut=1" in r.get("target", "")]
    assert len(recs) == 1, records(path)


def load(port, stop, done, prefix):
    """Requests on one keep-alive connection until `stop`; each answered
    target is added to `done`."""
    i = 0
    c = HttpConn(port)
    try:
        while not stop.is_set():
            t = "/echo/%s/%d" % (prefix, i)
            r = c.request("GET", t)
            assert r.status == 200
            done.append(t)
            i += 1
    finally:
        c.close()


def test_sigusr1_reopens_without_losing_or_splitting_a_line(levee_factory, tmp_path):
    lv, path = make(levee_factory, tmp_path)
    stop = threading.Event()
    done = []
    threads = [threading.Thread(target=load, args=(lv.port, stop, done, "p%d" % k)) for k in range(4)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: count_lines(path) >= 200, WAIT, msg="lines before the rotation")
        rotated = path + ".1"
        os.rename(path, rotated)  # logrotate: move, then signal
        lv.signal(signal.SIGUSR1)
        wait_until(lambda: lv.log_lines("reopened"), WAIT, msg="reopened")
        wait_until(lambda: count_lines(path) >= 200, WAIT, msg="lines in the new file")
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    n = len(done)
    wait_until(lambda: count_lines(rotated) + count_lines(path) >= n, WAIT, msg="every line written")
    old, new = records(rotated), records(path)
    targets = [r["target"] for r in old + new]
    assert sorted(targets) == sorted(done), (len(targets), n)
    # the old file was let go: it no longer grows
    size = os.path.getsize(rotated)
    once(lv.port, "GET", "/echo/after")
    logged(path, "/echo/after")
    assert os.path.getsize(rotated) == size


def test_a_path_that_cannot_be_reopened_is_reported_and_serving_goes_on(levee_factory, tmp_path):
    lv, path = make(levee_factory, tmp_path)
    assert once(lv.port, "GET", "/echo/r1").status == 200
    logged(path, "/echo/r1")
    moved = str(tmp_path / "logs.moved")
    os.rename(os.path.dirname(path), moved)  # the directory is gone: open() fails
    lv.signal(signal.SIGUSR1)
    msgs = wait_until(lambda: lv.log_lines("cannot reopen"), WAIT, msg="the failed reopen logged")
    assert msgs[0]["level"] == "error" and path in msgs[0]["msg"], msgs
    assert once(lv.port, "GET", "/echo/r2").status == 200
    # its lines go on in the file it had open
    logged(os.path.join(moved, "access.log"), "/echo/r2")
    assert lv.status() is not None
