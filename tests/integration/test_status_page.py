"""The status page, GET /ui on the admin listener (docs/status-page.md).

The browser tests drive Debian's headless Chromium through playwright-core
(status_page.mjs beside this file): the page renders, its numbers follow the
traffic across its own meta refresh, and it is whole with JavaScript off.
Without chromium or playwright-core they fail when $CI is set, else skip.
The plain HTTP tests check what a browser would not show: headers, HEAD,
bad ?refresh= values and escaping.
"""
import html
import json
import os
import re
import shutil
import subprocess
import uuid

import pytest

from harness import WAIT_SCALE, free_port, once, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
DRIVER = os.path.join(HERE, "status_page.mjs")
TOOLS = os.environ.get("LEVEE_TOOLS") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "levee", "tools")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
TIMEOUT_S = 30 * WAIT_SCALE

EVIL = "<script>alert('x')</script>&\""


def policy(extra=None):
    sections = {
        "levee": {"service": "shop", "workers": "2"},
        'breaker "api"': {"window": "10s", "min_requests": "5", "failure_rate": "50%", "open_for": "30s"},
        'bulkhead "api"': {"max_concurrent": "8", "max_queue": "4"},
        'tier "brownout"': {"enter": "inflight > 500", "exit": "inflight < 100", "shed": "optional 100%"},
        'route "static"': {"prefix": "/echo/static/", "cache_ttl": "60s"},
        'route "api"': {"prefix": "/echo/api/", "breaker": "api", "bulkhead": "api"},
    }
    sections.update(extra or {})
    return sections


def need_browser():
    """Fails under $CI, else skips, when the browser cannot run here."""
    missing = []
    if not shutil.which("node"):
        missing.append("node")
    if not os.path.isdir(os.path.join(TOOLS, "node", "node_modules", "playwright-core")):
        missing.append("playwright-core under %s/node/node_modules (deploy/install-tools.sh)" % TOOLS)
    if not os.access(CHROMIUM, os.X_OK):
        missing.append("chromium at %s (Debian package chromium)" % CHROMIUM)
    if missing:
        msg = "the status page's browser test needs " + ", ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


def drive(*args):
    """Runs the driver to its end; its one JSON line."""
    need_browser()
    p = subprocess.run(["node", DRIVER] + list(args) + ["--timeout-ms", str(int(TIMEOUT_S * 1000))],
                       capture_output=True, timeout=TIMEOUT_S + 30, env=dict(os.environ, LEVEE_TOOLS=TOOLS))
    assert p.returncode == 0, "status_page.mjs %s: exit %d\n%s" % (args[0], p.returncode, p.stderr.decode())
    return json.loads(p.stdout.decode().splitlines()[-1])


def ui(lv, query=""):
    return "http://127.0.0.1:%d/ui%s" % (lv.admin_port, query)


def traffic(lv, target, n):
    for i in range(n):
        r = once(lv.port, "GET", "%s%d" % (target, i))
        assert r.status == 200, r


def test_page_renders(levee_factory):
    lv = levee_factory(policy())
    traffic(lv, "/echo/static/a", 1)
    once(lv.port, "GET", "/echo/static/a0")  # the second one is a hit
    d = drive("render", ui(lv))
    assert d["status"] == 200
    assert d["title"] == "levee status: shop"
    assert set(d["routes"]) == {"static", "api", "default"}
    st = d["routes"]["static"]
    assert st["requests"] == "2" and st["hit_ratio"] == "50.0%", st
    assert d["routes"]["api"]["hit_ratio"] == "not cached"
    assert re.fullmatch(r"≤ [0-9.]+ (ms|s)", st["p99"]), st
    assert "closed" in d["routes"]["api"]["cells"][8] and "0/8" in d["routes"]["api"]["cells"][9]
    assert d["tier_section"] and d["tier"] == "normal"
    assert len(d["tiers"]) == 1 and "inflight > 500" in d["tiers"][0] and "inflight = " in d["tiers"][0]
    assert "not configured" in d["redis"] and "not configured" in d["kafka"]
    assert d["version"] and d["checksum"] == lv.status()["policy"]["checksum"]
    # the style sheet is the one the CSP hash allows: applied, and no violation
    assert d["header_bg"] == "rgb(36, 41, 47)", d["header_bg"]
    assert d["scripts"] == 0
    assert not d["console_errors"], d["console_errors"]


def test_values_change_under_load(levee_factory):
    """The page's own refresh brings the new count: no reload by the test."""
    lv = levee_factory(policy())
    need_browser()
    p = subprocess.Popen(["node", DRIVER, "watch", ui(lv, "?refresh=1"), "api", "--timeout-ms",
                          str(int(TIMEOUT_S * 1000))], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=dict(os.environ, LEVEE_TOOLS=TOOLS))
    try:
        first = json.loads(p.stdout.readline() or b"null")
        assert first is not None, "driver said nothing: %s" % p.stderr.read().decode()
        traffic(lv, "/echo/api/x", 5)
        out, err = p.communicate(timeout=TIMEOUT_S + 30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err.decode()
    last = json.loads(out.decode().splitlines()[-1])
    assert last["requests"] >= first["requests"] + 5, (first, last)
    assert last["reloads"] >= 1


def test_javascript_off(levee_factory):
    lv = levee_factory(policy())
    traffic(lv, "/echo/api/y", 3)
    lv.admin_request("POST", "/breaker?name=api&force=open&for=1m")
    d = drive("render", ui(lv, "?refresh=7"), "--no-js")
    assert d["status"] == 200 and d["scripts"] == 0
    assert d["refresh"] == "7"
    assert d["routes"]["api"]["requests"] == "3"
    assert "open" in d["routes"]["api"]["cells"][8]
    assert any("forced open" in b for b in d["breakers"]), d["breakers"]
    assert "brownout" in d["tiers"][0]
    assert d["header_bg"] == "rgb(36, 41, 47)"


def test_screenshot_is_taken(levee_factory, tmp_path):
    """The driver's screenshot mode, which docs/img/status-page.png came from."""
    lv = levee_factory(policy())
    traffic(lv, "/echo/static/s", 2)
    png = str(tmp_path / "page.png")
    drive("screenshot", ui(lv), png)
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(png) > 10000


# ---- plain HTTP ---------------------------------------------------------------

def test_headers_and_head(levee_factory):
    lv = levee_factory(policy())
    r = lv.admin_request("GET", "/ui")
    assert r.status == 200
    assert r.header("Content-Type") == "text/html; charset=utf-8"
    assert r.header("Cache-Control") == "no-store"
    csp = r.header("Content-Security-Policy")
    assert re.fullmatch(r"default-src 'none'; style-src 'sha256-[A-Za-z0-9+/]{43}='; base-uri 'none'; "
                        r"form-action 'none'; frame-ancestors 'none'", csp), csp
    assert r.header("X-Content-Type-Options") == "nosniff"
    body = r.body.decode()
    assert int(r.header("Content-Length")) == len(r.body)
    assert '<meta http-equiv="refresh" content="5">' in body
    assert "<script" not in body and "http://" not in body and "https://" not in body
    assert body.count("<style>") == 1 and " style=" not in body
    h = lv.admin_request("HEAD", "/ui")
    assert h.status == 200 and h.body == b""
    assert h.header("Content-Security-Policy") == csp
    # HEAD says the length GET would have (the uptime may have grown a digit)
    assert abs(int(h.header("Content-Length")) - len(r.body)) < 16
    assert lv.admin_request("POST", "/ui").status == 405
    assert lv.admin_get("/status")[0] == 200 and lv.status()["version"]


@pytest.mark.parametrize("value", ["0", "3601", "abc", "", "-1", "1.5", "5s", "99999999999999999999", "%zz"])
def test_bad_refresh(levee_factory, value):
    lv = levee_factory(policy())
    r = lv.admin_request("GET", "/ui?refresh=" + value)
    assert r.status == 400, (value, r)
    assert b"refresh is a whole number of seconds from 1 to 3600" in r.body


@pytest.mark.parametrize("query", ["?refresh", "?t=1&refresh", "?refresh&t=1"])
def test_refresh_without_a_value_is_bad(levee_factory, query):
    lv = levee_factory(policy())
    r = lv.admin_request("GET", "/ui" + query)
    assert r.status == 400, (query, r)
    # a parameter that only starts with the name is another parameter
    assert lv.admin_request("GET", "/ui?refreshed=1").status == 200


def test_good_refresh_bounds(levee_factory):
    lv = levee_factory(policy())
    for value in ("1", "3600", "%33%30"):
        r = lv.admin_request("GET", "/ui?refresh=" + value)
        assert r.status == 200, value
        want = "30" if value.startswith("%") else value
        assert ('<meta http-equiv="refresh" content="%s">' % want) in r.body.decode()
    # other parameters (a cache buster) are no error
    assert lv.admin_request("GET", "/ui?t=123").status == 200


def test_escaping(levee_factory):
    """A forcing's reason comes from whoever asked: it must not become markup."""
    lv = levee_factory(policy())
    from urllib.parse import quote
    r = lv.admin_request("POST", "/tier?force=brownout&for=1m&reason=" + quote(EVIL))
    assert r.status == 200, r
    body = lv.admin_request("GET", "/ui").body.decode()
    assert EVIL not in body and "<script" not in body
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;" in body
    # the tier in force, forced
    assert re.search(r'id="tier-name"><span class="b bad">brownout</span>', body)
    # expressions carry < and >
    assert "inflight &gt; 500" in body and "inflight &lt; 100" in body


def test_long_tables_say_how_many_rows_they_leave_out(levee_factory):
    """Past 200 rows a table is cut, and says how many it left out: routes,
    breakers and bulkheads alike (docs/status-page.md)."""
    extra = {}
    for i in range(203):
        extra['route "r%d"' % i] = {"prefix": "/echo/r%d/" % i}
    for i in range(210):
        extra['breaker "b%d"' % i] = {"window": "10s"}
    for i in range(205):
        extra['bulkhead "h%d"' % i] = {"max_concurrent": "2"}
    lv = levee_factory(policy(extra))
    body = lv.admin_request("GET", "/ui").body.decode()
    assert body.count("<tr data-breaker=") == 200 and body.count("<tr data-bulkhead=") == 200
    assert body.count("<tr data-route=") == 201  # and "default"
    assert "5 more routes not shown" in body
    assert "11 more breakers not shown" in body
    assert "6 more bulkheads not shown" in body


def test_probe_listener_does_not_serve_it(levee_factory):
    probe = free_port()
    lv = levee_factory(policy({"levee": {"service": "shop", "workers": "2", "probe": "127.0.0.1:%d" % probe}}))
    assert lv.admin_request("GET", "/ui", port=probe).status == 404
    assert lv.admin_request("GET", "/ui").status == 200


def test_redis_section(levee_factory, redis):
    lv = levee_factory(policy({"redis": {"address": "127.0.0.1:%d" % redis.port}}))

    def up():
        body = lv.admin_request("GET", "/ui").body.decode()
        return re.search(r'id="redis-state"><span class="b ok">up</span>', body)
    wait_until(up, 10 * WAIT_SCALE, msg="the page says Redis is up")
    body = lv.admin_request("GET", "/ui").body.decode()
    assert "connections ready</dt><dd>" in body


def test_kafka_section(levee_factory, kafka_broker, tmp_path):
    """Broker reachable, the consumer's lag and the outbox's depth, as
    /status says them."""
    topic = "status-page-" + uuid.uuid4().hex[:10]
    kafka_broker.create_topic(topic, partitions=1)
    lv = levee_factory(policy({"kafka": {"brokers": kafka_broker.bootstrap, "topic": topic, "instance": "sp",
                                         "outbox": str(tmp_path / "outbox"), "delivery_timeout": "1s"}}))

    def synced():
        return lv.status()["kafka"]["cache"] == "normal"
    wait_until(synced, 30 * WAIT_SCALE, msg="levee consuming and caught up")
    body = lv.admin_request("GET", "/ui").body.decode()
    assert re.search(r'id="kafka-state"><span class="b ok">reachable</span>', body), body[-1500:]
    assert re.search(r"consumer lag</dt><dd>(0 messages|<span class=\"mute\">unknown</span>)", body)
    assert re.search(r'id="outbox">0 invalidations<', body)


def test_refused_reload_shows_escaped(levee_factory):
    """A refused reload: the badge, and its error lines, escaped (they name
    the file's sections, quotes and all)."""
    lv = levee_factory(policy())
    with open(lv.policy_path, "a") as f:
        f.write('\n[route "x"]\nprefix = /x/\ncache_ttl = <b>soon</b>\n')
    r = lv.admin_request("POST", "/reload")
    assert r.status == 422, r
    body = lv.admin_request("GET", "/ui").body.decode()
    assert re.search(r'id="reload"><span class="b bad">refused</span>', body), body[:3000]
    m = re.search(r"refused because</dt><dd><pre>(.*?)</pre>", body, re.S)
    assert m, body[:3000]
    assert '[route &quot;x&quot;] cache_ttl: ' in m.group(1) and '"' not in m.group(1), m.group(1)
    assert lv.status()["policy"]["last_error"] in html.unescape(m.group(1))
