"""/metrics against its reference (docs/metrics.md): a levee using every
subsystem (routes, the cache with Redis, Kafka invalidation and the control
topic, an adaptive and a thread bulkhead, breakers, a fallback, tiers) is
exercised and scraped; `promtool check metrics` must find nothing; the
families exposed, their types and their label names must be exactly those
documented, in both directions; every label name must be one of the
scheme's, with values in snake_case from the documented sets, or names the
policy gave. A levee with none of the optional subsystems exposes the
documented families but those the reference lists as left out."""
import os
import re
import shutil
import subprocess
import uuid

import pytest

from harness import once, parse_metrics, wait_until
from redis_server import REDIS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC = os.path.join(ROOT, "docs", "metrics.md")
PROMTOOL = shutil.which("promtool")
CONTROL_KEY = "metrics-test-key-0123456789abcdef"

# Labels whose values are names from the policy, shown as written.
POLICY_LABELS = {"route", "bulkhead", "breaker", "tier", "signal"}
SNAKE = re.compile(r"[a-z0-9_]+\Z")

pytestmark = [
    pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (deploy/install-deps.sh)"),
]


# ---- the reference ----------------------------------------------------------

def _backticked(cell):
    return re.findall(r"`([^`]+)`", cell)


def reference():
    """docs/metrics.md -> (families {name: (type, [labels])}, labels
    {name: [documented values]}, values {(family, label): [values]},
    the families documented as left out without their subsystem)."""
    text = open(DOC, encoding="utf-8").read()
    fams, labels, values = {}, {}, {}
    section = None
    for ln in text.splitlines():
        if ln.startswith("## "):
            section = ln[3:].strip()
        if ln.startswith("**Label names**"):
            section = "labels"
        if ln.startswith("### The values of"):
            section = "values"
        cells = [c.strip() for c in ln.strip().strip("|").split("|")] if ln.startswith("|") else []
        if section == "Families" and len(cells) == 5:
            m = re.fullmatch(r"`(levee_\w+)`", cells[0])
            if m:
                assert m.group(1) not in fams, "%s documented twice" % m.group(1)
                fams[m.group(1)] = (cells[1], [] if cells[2] == "none" else _backticked(cells[2]))
        elif section == "labels" and len(cells) == 4:
            m = re.fullmatch(r"`(\w+)`", cells[0])
            if m:
                labels[m.group(1)] = _backticked(cells[2])
        elif section == "values" and len(cells) == 3:
            m = re.fullmatch(r"`(levee_\w+)`", cells[0])
            n = re.fullmatch(r"`(reason|result)`", cells[1])
            if m and n:
                values[(m.group(1), n.group(1))] = [v for v in _backticked(cells[2]) if SNAKE.match(v)]
    left_out = set()
    m = re.search(r"Families of a subsystem the policy does not use are left out:(.*?)\n\n", text, re.S)
    assert m, "docs/metrics.md: the paragraph on families left out is missing"
    for name in _backticked(m.group(1)):
        if name.startswith("levee_"):
            left_out.add(name)
    assert fams and labels and values, "docs/metrics.md: a table did not parse"
    return fams, labels, values, left_out


def _matches(pattern, family):
    if pattern.endswith("_*"):
        return family.startswith(pattern[:-1])
    return family == pattern


# ---- the scrape -------------------------------------------------------------

def exposition(text):
    """/metrics text -> ({family: type}, {family: help}, {family: {label: {values}}})."""
    types, helps, seen = {}, {}, {}
    for ln in text.splitlines():
        m = re.match(r"# (HELP|TYPE) (\S+) ?(.*)", ln)
        if m:
            (types if m.group(1) == "TYPE" else helps)[m.group(2)] = m.group(3)
    for name, lab, _ in parse_metrics(text):
        fam = name
        if fam not in types:
            fam = re.sub(r"_(bucket|sum|count)\Z", "", name)
        assert fam in types, "sample %s has no # TYPE" % name
        d = seen.setdefault(fam, {})
        for k, v in lab.items():
            if not (k == "le" and types[fam] == "histogram"):
                d.setdefault(k, set()).add(v)
    return types, helps, seen


def scrape(lv):
    st, _, body = lv.admin_get("/metrics")
    assert st == 200, st
    return body.decode()


def promtool_findings(text):
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30)
    return p.returncode, (p.stdout + p.stderr).decode().strip()


def check_labels(seen, labels, values, policy_names):
    """Every label is in the scheme, with its values from the documented
    set (snake_case) or, for names from the policy, from the policy."""
    for fam, d in seen.items():
        for k, vals in d.items():
            assert k in labels, "%s{%s}: not a label of the scheme in docs/metrics.md" % (fam, k)
            if k in POLICY_LABELS:
                if k == "signal":
                    for v in vals:
                        assert re.fullmatch(r"[a-z0-9_.]+", v), (fam, k, v)
                        obj = re.match(r"(route|bulkhead|breaker)\.(.+)\.[a-z0-9_]+\Z", v)
                        if obj:
                            assert obj.group(2) in policy_names[obj.group(1)], (fam, k, v)
                else:
                    extra = {"route": {"default"}, "tier": {"normal"}}.get(k, set())
                    assert vals <= policy_names[k] | extra, (fam, k, vals - policy_names[k] - extra)
                continue
            if k == "version":
                assert len(vals) == 1, vals
                continue
            allowed = values.get((fam, k), labels[k])
            assert allowed, "%s{%s}: no documented values" % (fam, k)
            for v in vals:
                assert SNAKE.match(v), "%s{%s=%r}: not snake_case" % (fam, k, v)
                assert v in allowed, "%s{%s=%r}: not among the documented values %s" % (fam, k, v, allowed)


# ---- the tests --------------------------------------------------------------

def full_policy(kafka_broker, redis, tmp_path, topic):
    return {
        "levee": {"service": "demo"},
        "redis": {"address": "127.0.0.1:%d" % redis.port},
        "kafka": {"brokers": kafka_broker.bootstrap, "topic": topic, "control_topic": topic + ".control",
                  "instance": "m0", "outbox": str(tmp_path / "outbox"), "delivery_timeout": "1s"},
        'bulkhead "adaptive"': {"max_concurrent": "auto", "adaptive_min": "2", "adaptive_max": "16"},
        'bulkhead "pool"': {"isolation": "thread", "threads": "1", "max_concurrent": "2", "max_queue": "2"},
        'breaker "echo"': {"window": "10s", "min_requests": "5"},
        'breaker "down"': {"window": "10s"},
        "tiers": {"tick": "100ms"},
        # never entered by itself: forced below; reads a per-route signal
        'tier "elevated"': {"enter": "route.echo.upstream_p99 > 600000ms", "exit": "queue_wait_p99 < 1ms",
                            "shed": "optional", "cache": "serve-stale"},
        'route "echo"': {"match": "/echo/*", "cache_ttl": "60s", "stale_while_revalidate": "10s",
                         "bulkhead": "adaptive", "breaker": "echo"},
        'route "bytes"': {"prefix": "/bytes", "cache_ttl": "60s", "bulkhead": "pool"},
        'route "down"': {"prefix": "/status/", "breaker": "down", "fallback": "static",
                         "fallback_body": "later", "fallback_content_type": "text/plain", "cache_ttl": "off"},
        'route "extra"': {"prefix": "/headers", "priority": "optional"},
    }


POLICY_NAMES = {
    "route": {"echo", "bytes", "down", "extra"},
    "bulkhead": {"adaptive", "pool"},
    "breaker": {"echo", "down"},
    "tier": {"elevated"},
}


@pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")
def test_every_family_is_documented_and_promtool_finds_nothing(levee_factory, origin, kafka_broker, redis,
                                                                tmp_path):
    topic = "metrics-" + uuid.uuid4().hex[:8]
    kafka_broker.create_topic(topic, partitions=1)
    kafka_broker.create_topic(topic + ".control", partitions=1)
    lv = levee_factory(full_policy(kafka_broker, redis, tmp_path, topic), env={"LEVEE_CONTROL_KEY": CONTROL_KEY})
    lv.wait_redis_ready()
    wait_until(lambda: lv.status()["kafka"]["cache"] == "normal", 30, msg="consuming and caught up")

    for i in range(6):
        assert once(lv.port, "GET", "/echo/%d" % (i % 2)).status == 200  # misses, then L1 hits
    assert once(lv.port, "GET", "/bytes?n=100").status == 200            # through the thread bulkhead
    assert once(lv.port, "PUT", "/echo/1", body=b"new").status == 200    # a purge, published to Kafka
    r = once(lv.port, "POST", "/nowhere", headers=[("Transfer-Encoding", "gzip, chunked")],
             body=b"5\r\nhello\r\n0\r\n\r\n")
    assert r.status == 501, r  # levee's own refusal, a hyphenated X-Levee-Reason token
    assert lv.admin_request("POST", "/breaker?name=down&force=open&for=60s").status == 200
    r = once(lv.port, "GET", "/status/500")
    assert r.body == b"later", r  # the fallback answered: levee_fallbacks_total has a sample
    assert lv.admin_request("POST", "/tier?force=elevated&for=60s").status == 200
    assert once(lv.port, "GET", "/headers").status == 503  # shed: levee_tier_shed_total
    wait_until(lambda: lv.metric("levee_kafka_events_delivered_total") >= 1, 10, msg="the purge delivered")

    text = scrape(lv)
    rc, out = promtool_findings(text)
    assert rc == 0 and out == "", "promtool check metrics:\n" + out

    fams, labels, values, _ = reference()
    types, helps, seen = exposition(text)
    assert set(types) - set(fams) == set(), "exposed, not in docs/metrics.md"
    assert set(fams) - set(types) == set(), "in docs/metrics.md, not exposed"
    for f, t in types.items():
        assert fams[f][0] == t, "%s is a %s, docs/metrics.md says %s" % (f, t, fams[f][0])
        assert helps.get(f), "%s has no HELP text" % f
        assert f not in seen or set(seen[f]) == set(fams[f][1]), \
            "%s has labels %s, docs/metrics.md says %s" % (f, sorted(seen[f]), fams[f][1])
    # every labelled family showed its labels here, so that the check above saw them
    assert {f for f in fams if fams[f][1]} - set(seen) == set()
    check_labels(seen, labels, values, POLICY_NAMES)
    # the values the exercise must have produced, in the scheme's spelling
    assert lv.metric("levee_fallbacks_total", route="down", reason="breaker_open", fallback="static") == 1
    assert lv.metric("levee_rejected_requests_total", reason="unsupported_transfer_coding") == 1
    assert lv.metric("levee_tier_shed_total", tier="elevated", route="extra", priority="optional") == 1
    assert lv.metric("levee_cache_stores_total", layer="l1") >= 2


def test_without_optional_subsystems_only_the_documented_ones_are_left_out(levee_factory):
    lv = levee_factory({'route "r"': {"prefix": "/", "cache_ttl": "10s"}})
    once(lv.port, "GET", "/echo/x")
    text = scrape(lv)
    rc, out = promtool_findings(text)
    assert rc == 0 and out == "", "promtool check metrics:\n" + out
    fams, labels, values, left_out = reference()
    types, _, seen = exposition(text)
    assert set(types) <= set(fams), set(types) - set(fams)
    missing = set(fams) - set(types)
    unexplained = {f for f in missing if not any(_matches(p, f) for p in left_out)}
    assert unexplained == set(), "not exposed, and not documented as left out: %s" % sorted(unexplained)
    # families with a bulkhead or breaker label have no series without one
    for f in ("levee_bulkhead_active", "levee_breaker_state"):
        assert f in types and f not in seen, f
    check_labels(seen, labels, values, {"route": {"r"}, "bulkhead": set(), "breaker": set(), "tier": set()})


def test_promtool_is_strict_enough_to_fail():
    """The check above means something: promtool flags a counter without
    _total and a family without HELP."""
    rc, out = promtool_findings("# TYPE levee_x counter\nlevee_x 1\n")
    assert out != "", (rc, out)
