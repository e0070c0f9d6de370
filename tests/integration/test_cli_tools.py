"""The tools ops run beside levee (docs/cli.md): `levee explain`, `levee diff`
and `levee check --print`, each against tables of policies and inputs, and
against a running levee where the tool makes a claim about what levee does
(a tier's shed cohort, a breaker's state across a reload, the keys a reload
defers)."""
import json
import os
import re
import signal

import pytest

import subprocess

from harness import LEVEE_BIN, fnv1a64_hex, render_policy, run_levee as run, wait_until

# ---- policies the tables use -------------------------------------------------

SHOP = """\
[levee]
service = shop

[route "static"]
cache_control_fields = none
prefix = /static/
cache_ttl = 1h

[route "users"]
match = /api/users/*
methods = GET, HEAD, PUT
cache_ttl = 60s
cache_key_headers = Accept-Language
cache_tags = user-{1}
invalidate = /api/users, tag:user-{1}
bulkhead = users
breaker = users
priority = optional

[route "writes"]
prefix = /api/
cache_ttl = 30s
unkeyed_headers = bypass
invalidate = /api/list/**
priority = critical

[bulkhead "users"]
max_concurrent = 8
max_queue = 4

[breaker "users"]
window = 100 calls
failure_rate = 40%

[tiers]
cohort = header:X-User

[tier "elevated"]
enter = inflight > 100
exit = inflight < 50
shed = optional 30%
cache = serve-stale, no-fill-optional

[tier "severe"]
enter = inflight > 200
exit = inflight < 150
shed = optional, normal 50%
cache = stretch-ttl
ttl_factor = 3
"""

PLAIN = """\
[levee]
service = plain

[route "all"]
prefix = /
"""

ONLY = """\
[route "cat"]
prefix = /cat/
cache_ttl = 10s
tier_cache_only = true

[route "opt"]
prefix = /opt/
cache_ttl = 10s
priority = optional

[tier "t"]
enter = inflight > 100
exit = inflight < 50
cache = cache-only, no-fill-optional
"""

POLICIES = {"shop": SHOP, "plain": PLAIN, "only": ONLY}


@pytest.fixture
def pol(tmp_path):
    paths = {}
    for name, text in POLICIES.items():
        p = tmp_path / (name + ".ini")
        p.write_text(text)
        paths[name] = str(p)
    return paths


def explain(path, *args, extra=()):
    rc, out = run(["explain", "--json"] + list(extra) + [path] + list(args))
    assert rc == 0, out
    return json.loads(out)


def dig(d, dotted):
    for part in dotted.split("."):
        d = d[int(part)] if isinstance(d, list) else d[part]
    return d


# policy, request (METHOD URL HEADERS...), expected fields (dotted path -> value)
EXPLAIN_CASES = [
    ("shop", ["GET", "/api/users/42", "Accept-Language: fr", "X-User: bob"], {
        "route.name": "users", "route.match": "/api/users/*", "route.priority": "optional",
        "route.captures.0.value": "42",
        "route.not_matched.0.route": "static",
        "route.not_matched.0.why": "its prefix = /static/ does not take the path",
        "cache.cacheable": True, "cache.ttl": "60s",
        "cache.cache_control_fields": "levee-cache-control,cdn-cache-control",
        "cache.key": "shop\x1f/api/users/42\x1flocalhost\x1faccept-language=fr",
        "cache.tags.0.tag": "user-42",
        "invalidation.write": False,
        "bulkhead.name": "users", "bulkhead.max_concurrent": 8, "bulkhead.max_queue": 4,
        "breaker.name": "users", "breaker.window": "100 calls", "breaker.failure_rate": "40%",
        "tiers.cohort_from": "header X-User",
        "tiers.levels.0.tier": "elevated", "tiers.levels.0.cache_modes": "serve-stale,no-fill-optional",
        "tiers.levels.1.tier": "severe", "tiers.levels.1.shed": True, "tiers.levels.1.shed_pct": 100,
        "tiers.levels.1.cache_modes": "serve-stale,stretch-ttl,no-fill-optional", "tiers.levels.1.ttl_factor": 3,
    }),
    # a key field that is absent is keyed as absent; the query is part of the key
    ("shop", ["GET", "/api/users/7?x=1"], {
        "route.name": "users", "cache.key": "shop\x1f/api/users/7?x=1\x1flocalhost\x1faccept-language!",
    }),
    # the absolute form: its authority is the host of the key
    ("shop", ["GET", "http://Shop.Example:80/api/users/9"], {
        "request.host": "Shop.Example:80", "cache.key": "shop\x1f/api/users/9\x1fshop.example\x1faccept-language!",
    }),
    # a method the route does not take: the next route that does
    ("shop", ["POST", "/api/users/42"], {
        "route.name": "writes", "route.not_matched.1.route": "users",
        "route.not_matched.1.why": "method POST is not in its methods (GET, HEAD, PUT)",
        "cache.cacheable": False, "cache.bypass": "method",
        "invalidation.write": True,
        "invalidation.purges.0.kind": "url", "invalidation.purges.0.what": "/api/users/42",
        "invalidation.purges.1.kind": "prefix", "invalidation.purges.1.what": "/api/list/",
        "bulkhead.name": None, "tiers.levels.1.shed": False,
    }),
    # a write on the route: the target, the route's list with its capture
    ("shop", ["PUT", "/api/users/42"], {
        "route.name": "users", "invalidation.purges.0.what": "/api/users/42",
        "invalidation.purges.1.kind": "url", "invalidation.purges.1.what": "/api/users",
        "invalidation.purges.2.kind": "tag", "invalidation.purges.2.what": "user-42",
    }),
    # a HEAD reads a stored GET but a miss stores nothing; only-if-cached never goes upstream
    ("shop", ["HEAD", "/api/users/1"], {"cache.cacheable": True, "cache.miss_stores": False,
                                        "cache.only_if_cached": False}),
    ("shop", ["GET", "/api/users/1", "Cache-Control: only-if-cached"], {
        "cache.cacheable": True, "cache.miss_stores": True, "cache.only_if_cached": True}),
    ("shop", ["GET", "/api/users/1", "Cookie: a=b"], {"cache.cacheable": False, "cache.bypass": "cookie"}),
    ("shop", ["GET", "/api/users/1", "Cache-Control: no-store"], {"cache.bypass": "no-store"}),
    ("shop", ["GET", "/api/users/1", "X-HTTP-Method-Override: DELETE"], {"cache.bypass": "method-override"}),
    # unkeyed_headers = bypass on "writes"; strip (the default) on "users"
    ("shop", ["GET", "/api/other", "X-Forwarded-Host: evil"], {
        "route.name": "writes", "cache.bypass": "unkeyed-header", "route.priority": "critical",
        "tiers.levels.1.shed": False, "tiers.levels.1.bulkhead_scale": "100%"}),
    ("shop", ["GET", "/api/users/1", "X-Forwarded-Host: evil"], {
        "cache.cacheable": True, "cache.strips_unkeyed_headers": True}),
    ("shop", ["GET", "/api/users/1", "Authorization: Bearer x"], {
        "cache.cacheable": True, "cache.authorization": "stored only if the origin allows it (public, s-maxage, "
                                                        "must-revalidate: RFC 9111 section 3.5)"}),
    ("shop", ["GET", "/static/a.css"], {"route.name": "static", "cache.cache_control_fields": "none"}),
    ("shop", ["GET", "/nothing"], {"route.name": None, "route.priority": "normal", "cache.caches": False,
                                  "bulkhead.name": None, "breaker.name": None}),
    # the tier's cache modes as the cache stage applies them to this route
    ("only", ["GET", "/cat/1"], {"tiers.levels.0.cache_modes": "serve-stale,cache-only"}),
    ("only", ["GET", "/opt/1"], {"tiers.levels.0.cache_modes": "no-fill-optional"}),
    ("only", ["POST", "/cat/1"], {"tiers.levels.0.cache_modes": "none"}),
    ("plain", ["DELETE", "/x"], {"route.name": "all", "cache.caches": False, "invalidation.write": True,
                                 "invalidation.purges.0.what": "/x", "tiers.levels": []}),
]


@pytest.mark.parametrize("policy,request_args,want", EXPLAIN_CASES,
                         ids=["%s-%s-%s" % (c[0], c[1][0], c[1][1]) for c in EXPLAIN_CASES])
def test_explain_table(pol, policy, request_args, want):
    d = explain(pol[policy], *request_args)
    for path, v in want.items():
        assert dig(d, path) == v, (path, dig(d, path), v, json.dumps(d, indent=1))


def test_explain_text_names_each_stage(pol):
    rc, out = run(["explain", pol["shop"], "GET", "/api/users/42", "Accept-Language: fr"])
    assert rc == 0, out
    for line in ("route:", "  name: users", "tiers:", "cache:",
                 "  key: shop\\x1f/api/users/42\\x1flocalhost\\x1faccept-language=fr",
                 "bulkhead:", "breaker:", "upstream:", "invalidation:"):
        assert line in out.splitlines(), (line, out)


def test_explain_cohort_from_address_without_the_header(pol):
    a = explain(pol["shop"], "GET", "/api/users/1", extra=["--from", "10.0.0.7"])
    b = explain(pol["shop"], "GET", "/api/users/1", extra=["--from", "10.0.0.8"])
    assert a["tiers"]["cohort_from"] == "address 10.0.0.7"
    assert a["tiers"]["cohort"] != b["tiers"]["cohort"] or a == b
    same = explain(pol["shop"], "GET", "/api/users/1", "X-User: u1", extra=["--from", "10.0.0.7"])
    other = explain(pol["shop"], "GET", "/api/users/1", "X-User: u1", extra=["--from", "10.9.9.9"])
    assert same["tiers"]["cohort"] == other["tiers"]["cohort"]  # the header decides, not the address


BAD_EXPLAIN = [
    ([], 2, r"needs a policy FILE, a METHOD and a URL"),
    (["{shop}", "GET"], 2, r"needs a policy FILE, a METHOD and a URL"),
    (["{shop}", "GET", "api/users"], 2, r'URL "api/users" has no path'),
    (["{shop}", "GET", "https://h/x"], 2, r"is https"),
    (["{shop}", "GET", "http://"], 2, r"has no host"),
    (["{shop}", "GET", "/a b"], 2, r"blank or a control byte"),
    (["{shop}", "GE T", "/"], 2, r"not a token character"),
    (["{shop}", "GET", "/", "NoColon"], 2, r'header "NoColon": expected "Name: value"'),
    (["{shop}", "GET", "/", ": v"], 2, r"name before ':' is empty"),
    (["{shop}", "GET", "/", "Host: a", "Host: b"], 2, r"levee would refuse this request: 400"),
    (["{shop}", "GET", "/", "Transfer-Encoding: chunked", "Content-Length: 3"], 2, r"would refuse"),
    (["--bogus", "{shop}", "GET", "/"], 2, r"unknown option --bogus"),
    (["{missing}", "GET", "/"], 1, r"missing\.ini"),
    (["{bad}", "GET", "/"], 1, r"bad\.ini:2: \[levee\] workers: "),
]


@pytest.mark.parametrize("args,code,msg", BAD_EXPLAIN, ids=[" ".join(a[0]) or "none" for a in BAD_EXPLAIN])
def test_explain_bad_input(pol, tmp_path, args, code, msg):
    (tmp_path / "bad.ini").write_text("[levee]\nworkers = lots\n")
    names = dict(pol, missing=str(tmp_path / "missing.ini"), bad=str(tmp_path / "bad.ini"))
    rc, out = run(["explain"] + [a.format(**names) for a in args])
    assert rc == code, (rc, out)
    assert re.search(msg, out), out


def test_explain_shed_matches_a_running_levee(levee_factory):
    """What explain says of each client under a forced tier is what levee
    does: the same cohorts are shed."""
    lv = levee_factory({
        'route "echo"': {"prefix": "/echo", "priority": "normal"},
        "tiers": {"cohort": "header:X-User"},
        'tier "half"': {"enter": "inflight > 100000", "exit": "inflight < 1", "shed": "normal 50%"},
    })
    r = lv.admin_request("POST", "/tier?force=half&for=5m&reason=test")
    assert r.status == 200, (r.status, r.body)
    shed_seen = {True: 0, False: 0}
    for i in range(24):
        user = "user-%d" % i
        d = explain(lv.policy_path, "GET", "/echo", "X-User: " + user)
        predicted = d["tiers"]["levels"][0]["shed"]
        status = lv.get("/echo", headers=[("X-User", user)]).status
        assert status == (503 if predicted else 200), (user, status, d["tiers"])
        shed_seen[predicted] += 1
    assert shed_seen[True] and shed_seen[False], shed_seen  # the table holds both cases


# ---- diff --------------------------------------------------------------------

def edit(text, *pairs):
    for old, new in pairs:
        assert old in text, old
        text = text.replace(old, new)
    return text


def diff(tmp_path, old, new, *extra):
    a, b = tmp_path / "old.ini", tmp_path / "new.ini"
    a.write_text(old)
    b.write_text(new)
    rc, out = run(["diff"] + list(extra) + [str(a), str(b)])
    return rc, out


# name, NEW from SHOP, exit code, change kinds (kind, section, name, key), restart keys, carry states
DIFF_CASES = [
    ("identical", SHOP, 0, [], [], {}),
    ("comments only", "; a comment\n" + SHOP.replace("max_queue = 4", "max_queue = 4   ; why"), 0, [], [], {}),
    ("route added", SHOP + '\n[route "new"]\nprefix = /new/\n', 1,
     [("added", "route", "new", None)], [], {}),
    ("route removed", edit(SHOP, ('[route "static"]\ncache_control_fields = none\nprefix = /static/\ncache_ttl = 1h\n', "")), 1,
     [("removed", "route", "static", None)], [], {}),
    ("route changed", edit(SHOP, ("cache_ttl = 60s", "cache_ttl = 2m"), ("methods = GET, HEAD, PUT", "methods = any")), 1,
     [("changed", "route", "users", "methods"), ("changed", "route", "users", "cache_ttl")], [], {}),
    ("route order", edit(SHOP, ('[route "static"]\ncache_control_fields = none\nprefix = /static/\ncache_ttl = 1h\n', ""))
     + '\n[route "static"]\ncache_control_fields = none\nprefix = /static/\ncache_ttl = 1h\n', 1,
     [("order", "route", "users", None)], [], {}),  # where the orders part
    ("restart key", edit(SHOP, ("service = shop", "service = shop2\nworkers = 3")), 1,
     [("changed", "levee", None, "service"), ("changed", "levee", None, "workers")], ["levee.service", "levee.workers"],
     {}),
    ("bulkhead limits", edit(SHOP, ("max_concurrent = 8", "max_concurrent = 20")), 1,
     [("changed", "bulkhead", "users", "max_concurrent")], [], {("bulkheads", "users"): ("carries", None)}),
    ("breaker renamed", edit(SHOP, ('[breaker "users"]', '[breaker "users-v2"]'), ("breaker = users", "breaker = users-v2")), 1,
     [("removed", "breaker", "users", None), ("changed", "route", "users", "breaker"), ("added", "breaker", "users-v2", None)],
     [], {("breakers", "users-v2"): ("fresh", "users"), ("breakers", "users"): ("dropped", None),
          ("bulkheads", "users"): ("carries", None)}),
    ("tier removed", edit(SHOP, ('[tier "elevated"]\nenter = inflight > 100\nexit = inflight < 50\n'
                                 'shed = optional 30%\ncache = serve-stale, no-fill-optional\n', "")), 1,
     [("removed", "tier", "elevated", None)], [], {}),
]


@pytest.mark.parametrize("name,new,code,changes,restart,carry", DIFF_CASES, ids=[c[0] for c in DIFF_CASES])
def test_diff_table(tmp_path, name, new, code, changes, restart, carry):
    rc, out = diff(tmp_path, SHOP, new, "--json")
    assert rc == code, (rc, out)
    d = json.loads(out)
    got = [(c["kind"], c["section"], c["name"], c.get("key")) for c in d["changes"]]
    assert sorted(got, key=str) == sorted(changes, key=str), got
    assert d["restart"] == restart
    for (kind, who), (state, renamed) in carry.items():
        entry = [x for x in d[kind] if x["name"] == who]
        assert entry and entry[0]["state"] == state and entry[0]["renamed_from"] == renamed, (who, d[kind])
    rc2, text = diff(tmp_path, SHOP, new)
    assert rc2 == code, text
    if code == 0:
        assert "no difference" in text, text


def test_diff_says_when_a_kept_breaker_loses_its_window(tmp_path):
    """breaker_apply(): a time window that becomes a count window starts
    empty (the calls' order is gone); a count window that becomes a time
    window keeps its figures."""
    timed = edit(SHOP, ("window = 100 calls", "window = 10s"))
    rc, out = diff(tmp_path, timed, SHOP, "--json")
    assert rc == 1, out
    entry = [x for x in json.loads(out)["breakers"] if x["name"] == "users"][0]
    assert entry["state"] == "carries" and "starts empty" in entry["except"], entry
    rc, text = diff(tmp_path, timed, SHOP)
    assert 'breaker "users": carries over (same name): its state is kept but its window starts empty' in text, text
    rc, out = diff(tmp_path, SHOP, timed, "--json")
    entry = [x for x in json.loads(out)["breakers"] if x["name"] == "users"][0]
    assert entry["state"] == "carries" and entry["except"] is None, entry


def test_diff_tier_levels_by_position(tmp_path):
    new = edit(SHOP, ('[tier "elevated"]\nenter = inflight > 100\nexit = inflight < 50\n'
                      'shed = optional 30%\ncache = serve-stale, no-fill-optional\n', ""))
    rc, out = diff(tmp_path, SHOP, new, "--json")
    d = json.loads(out)
    assert d["tier_levels"] == [{"level": 1, "old": "elevated", "new": "severe"},
                                {"level": 2, "old": "severe", "new": "severe"}], d["tier_levels"]
    assert {f["tier"]: f["carries"] for f in d["forcings"]} == {"elevated": False, "severe": True}
    rc, text = diff(tmp_path, SHOP, new)
    assert 'level 1: "elevated" becomes "severe"' in text, text
    assert 'a forcing of "elevated" ends' in text, text


def test_diff_masks_secrets(tmp_path):
    old = SHOP + "\n[kafka]\nbrokers = k:9092\nsasl_password = first-secret\n"
    rc, out = diff(tmp_path, old, old.replace("first-secret", "second-secret"))
    assert rc == 1, out
    assert "first-secret" not in out and "second-secret" not in out, out
    assert "sasl_password: <masked> -> <masked>  [takes a restart]" in out, out


@pytest.mark.parametrize("args,msg", [
    ([], "needs two policy files"),
    (["{a}"], "needs two policy files"),
    (["{a}", "{a}", "{a}"], "got a third"),
    (["--yaml", "{a}", "{a}"], "unknown option --yaml"),
    (["{a}", "{bad}"], r"bad\.ini:3: \[route \"x\"\] cache_ttl: "),
    (["{missing}", "{a}"], r"missing\.ini"),
])
def test_diff_bad_input(tmp_path, args, msg):
    (tmp_path / "a.ini").write_text(SHOP)
    (tmp_path / "bad.ini").write_text('[route "x"]\nprefix = /\ncache_ttl = soon\n')
    names = {"a": str(tmp_path / "a.ini"), "bad": str(tmp_path / "bad.ini"), "missing": str(tmp_path / "missing.ini")}
    rc, out = run(["diff"] + [a.format(**names) for a in args])
    assert rc == 2, (rc, out)
    assert re.search(msg, out), out


def _breaker_policy(lv, name):
    s = {k: dict(v) for k, v in lv.sections.items()}
    s['route "echo"'] = {"prefix": "/echo", "breaker": name}
    s['breaker "%s"' % name] = {"window": "20s"}  # a change in both cases, so that the reload applies
    return render_policy(s)


@pytest.mark.parametrize("new_name", ["b1", "b2"])
def test_diff_breaker_state_matches_a_reload(levee_factory, tmp_path, new_name):
    """diff says a breaker of the same name carries over and a renamed one
    starts fresh; a forced-open breaker across a real reload agrees."""
    lv = levee_factory({'route "echo"': {"prefix": "/echo", "breaker": "b1"}, 'breaker "b1"': {"window": "10s"}})
    r = lv.admin_request("POST", "/breaker?name=b1&force=open&for=5m")
    assert r.status == 200, (r.status, r.body)
    assert lv.get("/echo").status == 503
    new = tmp_path / "new.ini"
    new.write_text(_breaker_policy(lv, new_name))
    rc, out = run(["diff", "--json", lv.policy_path, str(new)])
    state = {b["name"]: b["state"] for b in json.loads(out)["breakers"]}
    lv.write_policy(text=new.read_text(), atomic=True)
    lv.signal(signal.SIGHUP)
    want = 503 if state[new_name] == "carries" else 200
    want_sum = fnv1a64_hex(new.read_bytes())
    wait_until(lambda: lv.status()["policy"]["checksum"] == want_sum, 10, msg="the reload to apply")
    assert lv.get("/echo").status == want, (state, out)
    assert state[new_name] == ("carries" if new_name == "b1" else "fresh")


def test_diff_restart_keys_match_a_reload(levee_factory, tmp_path):
    lv = levee_factory({'route "echo"': {"prefix": "/echo"}})
    s = {k: dict(v) for k, v in lv.sections.items()}
    s["levee"]["service"] = "renamed"
    s["levee"]["max_connections"] = "500"
    new = tmp_path / "new.ini"
    new.write_text(render_policy(s))
    rc, out = run(["diff", "--json", lv.policy_path, str(new)])
    assert rc == 1, out
    restart = json.loads(out)["restart"]
    assert restart == ["levee.service"], restart  # max_connections reloads
    lv.write_policy(text=new.read_text(), atomic=True)
    lv.signal(signal.SIGHUP)
    wait_until(lambda: lv.status()["policy"]["restart_pending"], 10, msg="the reload to defer a key")
    assert lv.status()["policy"]["restart_keys"] == restart


# ---- check --print -----------------------------------------------------------

def stdout_of(args, env):
    """levee's stdout alone: with --defaults, check warns on stderr of keys
    that have no effect (the threads of a semaphore bulkhead)."""
    p = subprocess.run([LEVEE_BIN] + args, env=env, capture_output=True, text=True, timeout=10)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def body(printed):
    return "\n".join(ln for ln in printed.splitlines() if not ln.startswith(";"))


def test_print_expands_env_and_defaults(tmp_path):
    p = tmp_path / "p.ini"
    p.write_text('[levee]\nservice = ${PRINT_SVC}\nupstream = ${PRINT_UP:-127.0.0.1:9999}\n'
                 '[route "r"]\nprefix = /${PRINT_SVC}/\nfallback_body = price $$5\n')
    rc, out = run(["check", "--print", str(p)], env=dict(os.environ, PRINT_SVC="shop"))
    assert rc == 0, out
    lines = out.splitlines()
    for want in ("service = shop", "upstream = 127.0.0.1:9999", "prefix = /shop/", "fallback_body = price $$5"):
        assert want in lines, (want, out)
    assert "drain_timeout" not in out  # at its default
    rc, out = run(["check", "--print", "--defaults", str(p)], env=dict(os.environ, PRINT_SVC="shop"))
    assert rc == 0 and "drain_timeout = 25s" in out.splitlines() and "; every key, defaults included" in out, out
    rc, out = run(["check", "--print", str(p)], env={k: v for k, v in os.environ.items() if k != "PRINT_SVC"})
    assert rc == 1 and re.search(r"p\.ini:2: \[levee\] service: environment variable PRINT_SVC is not set", out), out


@pytest.mark.parametrize("defaults", [False, True])
@pytest.mark.parametrize("name", ["shop", "complete"])
def test_print_round_trip(tmp_path, name, defaults):
    """print -> check -> the same policy: diff finds nothing, and printing
    the print gives the same file."""
    src = tmp_path / "src.ini"
    if name == "complete":
        here = os.path.dirname(os.path.abspath(__file__))
        src = os.path.join(here, "..", "..", "policy", "examples", "complete.ini")
    else:
        src.write_text(SHOP)
    env = dict(os.environ, KAFKA_PASSWORD="pw-from-env")
    flags = ["--print"] + (["--defaults"] if defaults else [])
    printed = stdout_of(["check"] + flags + [str(src)], env)
    # a masked secret goes back as ${VAR}, as an operator would put it back
    once = tmp_path / "once.ini"
    once.write_text(printed.replace("<masked>", "${KAFKA_PASSWORD}"))
    rc, out = run(["check", str(once)], env=env)
    assert rc == 0, out
    rc, out = run(["diff", str(src), str(once)], env=env)
    assert rc == 0, out
    again = stdout_of(["check"] + flags + [str(once)], env)
    assert body(again) == body(printed), (printed, again)


def test_print_masks_secrets_and_the_mask_does_not_load(tmp_path):
    p = tmp_path / "s.ini"
    p.write_text("[kafka]\nbrokers = k:9092\nsasl_username = svc\nsasl_password = ${PRINT_PW}\n")
    rc, out = run(["check", "--print", str(p)], env=dict(os.environ, PRINT_PW="hunter2"))
    assert rc == 0, out
    assert "hunter2" not in out, out
    assert "sasl_password = <masked>" in out.splitlines() and "sasl_username = svc" in out.splitlines(), out
    assert "; SECRETS MASKED: [kafka] sasl_password." in out, out
    m = tmp_path / "masked.ini"
    m.write_text(out)
    line = out.splitlines().index("sasl_password = <masked>") + 1
    rc, err = run(["check", str(m)])
    assert rc == 1, err
    assert re.search(r"masked\.ini:%d: \[kafka\] sasl_password: <masked> is what `levee check --print` writes"
                     % line, err), err


def test_print_refuses_a_value_the_file_cannot_carry(tmp_path):
    p = tmp_path / "c.ini"
    p.write_text('[route "r"]\nprefix = /\nfallback_body = ${PRINT_BODY}\n')
    rc, out = run(["check", "--print", str(p)], env=dict(os.environ, PRINT_BODY="half ; gone"))
    assert rc == 1, out
    assert 'fallback_body: cannot be written back as a policy line: it holds " ;"' in out, out


@pytest.mark.parametrize("args,code,msg", [
    (["check", "--print"], 2, "--print needs a policy FILE"),
    (["check", "--defaults", "{p}"], 2, "--defaults goes with --print"),
    (["check", "--print", "{p}", "{p}"], 2, "one policy FILE only"),
    (["check", "--print", "--json", "{p}"], 2, "unknown option --json"),
    (["check", "--print", "{missing}"], 1, r"missing\.ini"),
])
def test_print_bad_input(tmp_path, args, code, msg):
    (tmp_path / "p.ini").write_text(PLAIN)
    names = {"p": str(tmp_path / "p.ini"), "missing": str(tmp_path / "missing.ini")}
    rc, out = run([a.format(**names) for a in args])
    assert rc == code, (rc, out)
    assert re.search(msg, out), out


def test_help_lists_the_tools():
    rc, out = run(["--help"])
    assert rc == 0, out
    for cmd in ("levee check --print [--defaults] FILE", "levee diff [--json] OLD NEW",
                "levee explain [--json] [--from ADDR] FILE METHOD URL"):
        assert cmd in out, (cmd, out)


def test_plain_check_is_unchanged(tmp_path):
    """`levee check FILE` keeps its one line, whatever its file is called."""
    p = tmp_path / "-odd.ini"
    p.write_text(PLAIN)
    rc, out = run(["check", "-odd.ini"], cwd=str(tmp_path))
    assert rc == 0 and re.search(r"^-odd\.ini: ok \(1 route, 0 warnings, checksum [0-9a-f]{16}\)", out), out
    rc, out = run(["check", "-"])
    assert rc == 1 and "-: cannot open" in out, out
