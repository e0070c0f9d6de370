"""Admin listener: /healthz, /readyz, /metrics, /status (BRIEF, "Contract
with the outside world"), and the access log."""
import json
import math
import os
import time

from harness import Origin, fnv1a64_hex, free_port, parse_metrics, run_levee, wait_until


def test_healthz_and_readyz(levee):
    assert levee.admin_get("/healthz")[0] == 200
    assert levee.admin_get("/readyz")[0] == 200


def test_unknown_admin_path_404(levee):
    assert levee.admin_get("/no-such-admin-endpoint")[0] == 404


def test_admin_endpoints_not_on_data_port(levee, origin):
    """Admin paths on the data listener are ordinary requests to the upstream."""
    mark = origin.mark()
    r = levee.get("/metrics")
    assert r.status == 404 and r.body == b"no such path\n"
    assert [e["target"] for e in origin.requests(mark)] == ["/metrics"]


def test_readyz_follows_upstream_reachability(levee_factory, tmp_path):
    port = free_port()
    lv = levee_factory({"upstream": {"probe_interval": "200ms"}}, upstream="127.0.0.1:%d" % port, wait="healthz")
    assert lv.admin_get("/healthz")[0] == 200
    wait_until(lambda: lv.admin_get("/readyz")[0] == 503, 3, msg="/readyz 503 with the upstream down")
    assert lv.admin_get("/healthz")[0] == 200, "liveness must not depend on the upstream"
    o = Origin(str(tmp_path), port=port)
    try:
        wait_until(lambda: lv.admin_get("/readyz")[0] == 200, 5, interval=0.05,
                   msg="/readyz 200 once the upstream is listening")
        assert lv.get("/echo").status == 200
    finally:
        o.stop()
    wait_until(lambda: lv.admin_get("/readyz")[0] == 503, 5, interval=0.05,
               msg="/readyz 503 again after the upstream went away")


def test_upstream_reachability_is_logged(levee_factory, tmp_path):
    """An upstream down at start-up is logged at once, with the reason;
    then each change once, at most one line per 5 s (a change within the
    gap is logged when it ends)."""
    port = free_port()
    addr = "127.0.0.1:%d" % port
    lv = levee_factory({"upstream": {"probe_interval": "100ms"}}, upstream=addr, wait="healthz")

    def logged(text):
        return lv.stderr().count(text)

    down = "upstream %s is not reachable" % addr
    wait_until(lambda: logged(down + " (at start-up): Connection refused"), 3, msg="the start-up line")
    o = Origin(str(tmp_path), port=port)
    try:
        wait_until(lambda: logged("upstream %s is reachable" % addr), 5, interval=0.05, msg="the change to reachable")
    finally:
        o.stop()
    wait_until(lambda: logged(down + ": Connection refused"), 10, interval=0.1,
               msg="the change back, once the 5 s gap has passed")
    # every probe (10 a second) saw the state, but each change is one line
    assert logged(down) == 2 and logged("upstream %s is reachable" % addr) == 1, lv.stderr()[-3000:]


def _families(text):
    types = {}
    for ln in text.splitlines():
        if ln.startswith("# TYPE "):
            _, _, name, kind = ln.split(None, 3)
            types[name] = kind.strip()
    return types


def test_metrics_format_and_names(levee_factory):
    lv = levee_factory({'route "echo"': {"prefix": "/echo"}})
    for _ in range(3):
        assert lv.get("/echo").status == 200
    assert lv.get("/status/404").status == 404
    st, headers, body = lv.admin_get("/metrics")
    assert st == 200
    ctype = dict((n.lower(), v) for n, v in headers).get("content-type", "")
    assert ctype.startswith("text/plain"), ctype
    text = body.decode()
    samples = parse_metrics(text)  # raises on any malformed line
    for name, _, _ in samples:
        assert name.startswith("levee_"), "metric without the levee_ prefix: %s" % name
    types = _families(text)
    for fam in ("levee_requests_total", "levee_request_duration_seconds", "levee_connections_active",
                "levee_policy_reloads_total"):
        assert fam in types, "no # TYPE line for %s" % fam
    assert types["levee_requests_total"] == "counter"
    assert types["levee_request_duration_seconds"] == "histogram"
    assert types["levee_connections_active"] == "gauge"

    def count(cls, **kw):
        return lv.metric("levee_requests_total", **dict(kw, **{"class": cls})) or 0
    wait_until(lambda: count("2xx", route="echo") >= 3, 3, msg='levee_requests_total{route="echo",class="2xx"} >= 3')
    assert count("2xx", route="echo") == 3
    wait_until(lambda: count("4xx") >= 1, 3, msg='a levee_requests_total{class="4xx"} sample')
    samples = lv.metrics()
    assert any(n == "levee_connections_active" for n, _, _ in samples)
    assert any(n == "levee_policy_reloads_total" and l.get("result") == "ok" for n, l, _ in samples)

    # histogram: cumulative buckets ending in +Inf == _count, per label set
    buckets = {}
    for n, l, v in samples:
        if n == "levee_request_duration_seconds_bucket":
            key = tuple(sorted((k, x) for k, x in l.items() if k != "le"))
            buckets.setdefault(key, []).append((float(l["le"].replace("+Inf", "inf")), v))
    assert buckets, "no levee_request_duration_seconds_bucket samples"
    for key, bs in buckets.items():
        bs.sort()
        assert bs[-1][0] == math.inf, "no +Inf bucket for %r" % (key,)
        vals = [v for _, v in bs]
        assert vals == sorted(vals), "buckets not cumulative for %r: %r" % (key, bs)
        cnt = [v for n, l, v in samples if n == "levee_request_duration_seconds_count"
               and tuple(sorted(l.items())) == key]
        assert cnt == [vals[-1]], "_count %r != +Inf bucket %r for %r" % (cnt, vals[-1], key)
    assert sum(bs[-1][1] for bs in buckets.values()) >= 4


def test_connections_active_gauge(levee):
    base = levee.metric("levee_connections_active")
    cs = [levee.conn() for _ in range(3)]
    for c in cs:
        assert c.request("GET", "/echo").status == 200
    wait_until(lambda: levee.metric("levee_connections_active") == base + 3, 3,
               msg="levee_connections_active == baseline + 3")
    for c in cs:
        c.close()
    wait_until(lambda: levee.metric("levee_connections_active") == base, 3,
               msg="levee_connections_active back to baseline")


def test_status_json(levee):
    t_before = levee.started_at
    st, headers, body = levee.admin_get("/status")
    assert st == 200
    doc = json.loads(body)
    for k in ("version", "policy", "workers"):
        assert k in doc, "/status lacks %r: %r" % (k, doc)
    assert str(doc["version"]) in run_levee(["--version"])[1]
    pol = doc["policy"]
    for k in ("checksum", "loaded_at", "path"):
        assert k in pol, "/status policy lacks %r: %r" % (k, pol)
    with open(levee.policy_path, "rb") as f:
        assert int(str(pol["checksum"]), 16) == int(fnv1a64_hex(f.read()), 16)
    assert os.path.realpath(pol["path"]) == os.path.realpath(levee.policy_path)
    la = pol["loaded_at"]
    if isinstance(la, (int, float)):
        assert t_before - 5 <= la <= time.time() + 5, la
    else:
        from datetime import datetime
        ts = datetime.fromisoformat(str(la).replace("Z", "+00:00")).timestamp()
        assert t_before - 5 <= ts <= time.time() + 5, la
    w = doc["workers"]
    assert (isinstance(w, int) and w >= 1) or (isinstance(w, list) and w), w


def test_status_workers_follow_policy(levee_factory):
    lv = levee_factory({"levee": {"workers": "3"}})
    w = lv.status()["workers"]
    assert w == 3 or (isinstance(w, list) and len(w) == 3), w


def test_access_log_json_lines(levee):
    n = 4
    for i in range(n):
        assert levee.get("/echo?log=%d" % i).status == 200

    def lines():
        return [ln for ln in levee.stdout().splitlines() if ln.strip()]
    wait_until(lambda: len(lines()) >= n, 3, msg="%d access log lines on stdout" % n)
    for ln in lines():
        rec = json.loads(ln)
        assert isinstance(rec, dict)
    assert sum("log=" in ln for ln in lines()) == n
