"""The alerting rules and the Grafana dashboard of deploy/monitoring/,
checked against promtool and against what a real levee's /metrics exposes.

- promtool check rules and promtool test rules pass;
- every alert has a severity, a summary, a description and a runbook among
  docs/runbooks/, and a promtool test where it fires and one where it does
  not;
- every dashboard query (panels, annotations, variables) is valid PromQL:
  each is wrapped as a recording rule in a temporary file for promtool;
- every metric those files name, in rules, tests and dashboard, is one a
  levee started here exposes, with the labels the expressions match on and
  the label values they compare with;
- a real Prometheus (Debian's) scrapes that levee with the rules loaded:
  every rule evaluates without error, the alerts that go pending are
  exactly those of the levee's unreachable Kafka, and every dashboard query
  runs and, unless it filters, returns series with the labels its legend
  names.

Run: LEVEE_BIN=build/levee python3 -m pytest -q -p no:cacheprovider tests/deploy/test_monitoring.py
"""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
import harness  # noqa: E402
from redis_server import Redis  # noqa: E402

MON = os.path.join(REPO, "deploy", "monitoring")
RULES = os.path.join(MON, "levee-alerts.yml")
RULE_TESTS = os.path.join(MON, "levee-alerts_test.yml")
DASHBOARD = os.path.join(MON, "levee-dashboard.json")
PROMTOOL = shutil.which("promtool")

# The runbook pages the alerts may point to (docs/runbooks/).
RUNBOOKS = {"reading-status.md", "purging.md", "forcing.md", "policy-rotation.md", "failures.md", "sizing.md",
            "upgrading.md"}
SEVERITIES = {"critical", "warning", "info"}
# Series Prometheus makes itself for every target, not levee's.
PROMETHEUS_METRICS = {"up"}
# Labels the scrape adds, and histograms' bucket label.
TARGET_LABELS = {"job", "instance"}
# Labels whose values name things of a policy (or of a deployment), free in
# tests and dashboards; the values of every other label are levee's fixed
# vocabulary and must be ones /metrics shows.
NAME_LABELS = TARGET_LABELS | {"route", "breaker", "bulkhead", "tier", "version"}
# The dashboard's variables, as a regular expression each for promtool.
GRAFANA_VARS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
METRIC = re.compile(r"\b(levee_[a-zA-Z0-9_]+|up)\b")
SELECTOR = re.compile(r"\b(levee_[a-zA-Z0-9_]+|up)\b\s*(\{([^}]*)\})?")
MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")


def promtool(*args):
    assert PROMTOOL, "promtool not found: deploy/install-deps.sh installs Debian's prometheus package"
    p = subprocess.run([PROMTOOL] + list(args), capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout + p.stderr


def load_rules():
    with open(RULES) as f:
        return yaml.safe_load(f)


def alerts():
    return [r for g in load_rules()["groups"] for r in g["rules"] if "alert" in r]


def load_dashboard():
    with open(DASHBOARD) as f:
        return json.load(f)


def all_panels(dash):
    for p in dash["panels"]:
        yield p
        for q in p.get("panels", []):
            yield q


def dashboard_queries(dash):
    """(where, PromQL) for every query of the dashboard: panel targets,
    annotations, and the selectors inside the variables' label_values()."""
    out = []
    for p in all_panels(dash):
        for t in p.get("targets", []):
            out.append(("panel %r %s" % (p["title"], t["refId"]), t["expr"]))
    for a in dash["annotations"]["list"]:
        if "expr" in a:
            out.append(("annotation %r" % a["name"], a["expr"]))
    for v in dash["templating"]["list"]:
        if v["type"] != "query":
            continue
        q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        m = re.fullmatch(r"label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)", q.strip())
        assert m, "variable %s: not a label_values(selector, label) query: %r" % (v["name"], q)
        out.append(("variable %s" % v["name"], m.group(1)))
        out.append(("variable %s label" % v["name"], "count by (%s) (%s)" % (m.group(2), m.group(1))))
    return out


def as_promql(expr, variables):
    """The dashboard expression with Grafana's variables replaced: built-in
    intervals by durations, the dashboard's own variables (matched with =~)
    by a pattern that matches anything."""
    for k, v in GRAFANA_VARS.items():
        expr = expr.replace(k, v)
    for name in sorted(variables, key=len, reverse=True):
        expr = expr.replace("${%s}" % name, ".*").replace("$" + name, ".*")
    assert "$" not in expr, "an unknown variable is left in %r" % expr
    return expr


def rule_expressions():
    return [("alert %s" % r["alert"], r["expr"]) for r in alerts()]


def rule_test_series():
    """(where, series selector) of every input series of the rule tests."""
    with open(RULE_TESTS) as f:
        doc = yaml.safe_load(f)
    return [("rule test %r" % t["name"], s["series"]) for t in doc["tests"] for s in t["input_series"]]


# --------------------------------------------------------------------------
# promtool on the rule files


def test_rules_pass_promtool_check():
    rc, out = promtool("check", "rules", RULES)
    assert rc == 0, out
    assert "SUCCESS: %d rules found" % len(alerts()) in out, out


def test_rule_unit_tests_pass():
    rc, out = promtool("test", "rules", RULE_TESTS)
    assert rc == 0, out
    assert "SUCCESS" in out, out


def test_a_broken_rule_test_fails(tmp_path):
    """The unit tests are not vacuous: with one alert's threshold moved so
    that it can no longer fire, promtool test rules fails."""
    text = open(RULES).read()
    expr = next(a["expr"] for a in alerts() if a["alert"] == "LeveeKafkaConsumerLag")
    assert text.count("expr: %s\n" % expr) == 1 and expr.endswith(" > 30"), expr
    (tmp_path / "levee-alerts.yml").write_text(text.replace("expr: %s\n" % expr, "expr: %s00\n" % expr))
    shutil.copy(RULE_TESTS, tmp_path)
    rc, out = promtool("test", "rules", str(tmp_path / "levee-alerts_test.yml"))
    assert rc != 0 and "LeveeKafkaConsumerLag" in out, out


def test_every_alert_is_labelled_and_annotated():
    names = [a["alert"] for a in alerts()]
    assert len(names) == len(set(names)), "an alert name is used twice"
    runbooks = os.path.join(REPO, "docs", "runbooks")
    for a in alerts():
        where = a["alert"]
        assert re.fullmatch(r"Levee[A-Z][A-Za-z0-9]+", where), where
        assert a.get("labels", {}).get("severity") in SEVERITIES, "%s: severity" % where
        ann = a.get("annotations", {})
        assert set(ann) == {"summary", "description", "runbook_url"}, "%s: annotations %s" % (where, sorted(ann))
        assert ann["summary"].strip() and ann["description"].strip(), where
        m = re.fullmatch(r"docs/runbooks/([a-z-]+\.md)", ann["runbook_url"])
        assert m and m.group(1) in RUNBOOKS, "%s: runbook_url %r" % (where, ann["runbook_url"])
        # the pages are written beside these rules; once they exist, each
        # alert's page must be one of them
        if os.path.isdir(runbooks):
            assert os.path.isfile(os.path.join(runbooks, m.group(1))), "%s: no %s" % (where, ann["runbook_url"])


def test_every_alert_has_a_firing_and_a_quiet_test():
    with open(RULE_TESTS) as f:
        doc = yaml.safe_load(f)
    fires, quiet = set(), set()
    for t in doc["tests"]:
        for at in t.get("alert_rule_test", []):
            (fires if at.get("exp_alerts") else quiet).add(at["alertname"])
    names = {a["alert"] for a in alerts()}
    assert names - fires == set(), "alerts no test sees firing"
    assert names - quiet == set(), "alerts no test sees quiet"
    assert (fires | quiet) - names == set(), "tests of alerts that do not exist"


# --------------------------------------------------------------------------
# the dashboard


def test_dashboard_is_a_grafana_model_on_a_datasource_variable():
    dash = load_dashboard()
    assert dash["uid"] and dash["title"] and dash["schemaVersion"] >= 36
    ds = [v for v in dash["templating"]["list"] if v["type"] == "datasource"]
    assert [v["name"] for v in ds] == ["datasource"] and ds[0]["query"] == "prometheus"
    ids = [p["id"] for p in all_panels(dash)]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    uses = [p.get("datasource") for p in all_panels(dash) if p["type"] != "row"]
    uses += [t.get("datasource") for p in all_panels(dash) for t in p.get("targets", [])]
    uses += [a.get("datasource") for a in dash["annotations"]["list"]]
    uses += [v.get("datasource") for v in dash["templating"]["list"] if v["type"] == "query"]
    bad = [u for u in uses if u != {"type": "prometheus", "uid": "${datasource}"}]
    assert not bad, "queries not on the ${datasource} variable: %r" % bad[:3]
    for p in all_panels(dash):
        if p["type"] != "row":
            assert p["targets"] and p.get("description"), "panel %r: no query or no description" % p["title"]
            g = p["gridPos"]
            assert g["x"] + g["w"] <= 24 and g["w"] > 0 and g["h"] > 0, "panel %r: gridPos %r" % (p["title"], g)


def test_dashboard_has_a_row_per_area():
    rows = [p["title"] for p in load_dashboard()["panels"] if p["type"] == "row"]
    for area in ("Traffic", "Latency", "Cache", "Breakers", "Bulkheads", "Tiers", "Redis", "Kafka"):
        assert area in rows, "no %s row (rows: %s)" % (area, rows)


def test_dashboard_latency_comes_from_histograms():
    """p99 per route and per bulkhead, from histogram buckets (the
    exposition check below makes sure those are histograms levee has)."""
    exprs = [e for _, e in dashboard_queries(load_dashboard())]
    for by in ("route", "bulkhead"):
        assert any(re.search(r"histogram_quantile\(0\.99, sum by \(%s, le\) \(rate\(levee_\w+_bucket\{" % by, e)
                   for e in exprs), "no p99 by %s" % by


def test_dashboard_queries_are_valid_promql(tmp_path):
    dash = load_dashboard()
    variables = [v["name"] for v in dash["templating"]["list"]]
    queries = dashboard_queries(dash)
    rules = [{"record": "dashboard:query_%d" % i, "expr": as_promql(e, variables)} for i, (_, e) in enumerate(queries)]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    rc, out = promtool("check", "rules", str(path))
    assert rc == 0, out
    assert "SUCCESS: %d rules found" % len(rules) in out, out


def test_promql_check_catches_a_bad_query(tmp_path):
    """The wrapping above would notice a broken query."""
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "x", "rules": [
        {"record": "dashboard:bad", "expr": "sum by (route (rate(levee_requests_total[5m]))"}]}]}))
    rc, out = promtool("check", "rules", str(path))
    assert rc != 0, out


# --------------------------------------------------------------------------
# the names against a real levee


@pytest.fixture(scope="module")
def levee(tmp_path_factory):
    """A levee with everything that has metrics configured: routes of each
    priority, semaphore, thread and adaptive bulkheads, breakers, tiers (one
    of them shadow), Redis (a real redis-server), Kafka and its control
    topic (at a port nothing listens on: levee keeps serving and spools)."""
    wd = str(tmp_path_factory.mktemp("monitoring"))
    origin = harness.Origin(wd)
    origin.start()
    redis = Redis()
    lv = None
    try:
        sections = {
            "levee": {"service": "monitoring"},
            "redis": {"address": "127.0.0.1:%d" % redis.port},
            "kafka": {"brokers": "127.0.0.1:%d" % harness.free_port(), "outbox": os.path.join(wd, "outbox"),
                      "control_topic": "levee.control", "delivery_timeout": "500ms"},
            'bulkhead "users"': {"max_concurrent": "4", "isolation": "thread", "threads": "1"},
            'bulkhead "search"': {"max_concurrent": "auto"},
            'breaker "users"': {"min_requests": "5"},
            'breaker "search"': {"min_requests": "5"},
            "tiers": {"tick": "250ms"},
            'tier "elevated"': {"enter": "inflight > 500", "exit": "inflight < 100", "shed": "optional"},
            'tier "high"': {"enter": "inflight > 900", "exit": "inflight < 400", "shed": "optional, normal",
                            "shadow": "true"},
            'route "users"': {"match": "/api/users/**", "methods": "GET, HEAD, POST", "cache_ttl": "60s",
                              "bulkhead": "users", "breaker": "users", "priority": "normal"},
            'route "search"': {"match": "/search/**", "cache_ttl": "10s", "bulkhead": "search",
                               "breaker": "search", "priority": "optional"},
            'route "admin"': {"match": "/admin/**", "priority": "critical"},
        }
        lv = harness.Levee(wd, origin.addr, sections=sections, env={"LEVEE_CONTROL_KEY": "k" * 32})
        for target in ("/api/users/1", "/api/users/1", "/search/x", "/admin/a", "/other"):
            lv.get(target)
        yield lv
    finally:
        problem = lv.stop() if lv else None
        redis.close()
        origin.stop()
        assert problem is None, problem


@pytest.fixture(scope="module")
def exposed(levee):
    """{metric sample name: {label: {values}}} of the levee's /metrics."""
    st, _, body = levee.admin_get("/metrics")
    assert st == 200
    names = {}
    for name, labels, _ in harness.parse_metrics(body.decode()):
        fam = names.setdefault(name, {})
        for k, v in labels.items():
            fam.setdefault(k, set()).add(v)
    return names


def selectors(expr):
    """(metric, [(label, op, value)]) of every selector in `expr`."""
    strings = [m.span() for m in STRING.finditer(expr)]
    out = []
    for m in SELECTOR.finditer(expr):
        if not any(a <= m.start() < b for a, b in strings):
            out.append((m.group(1), MATCHER.findall(m.group(3) or "")))
    return out


def check_names(where, expr, exposed):
    """Problems of `expr` against the exposition, as strings."""
    problems = []
    bare = STRING.sub('""', expr)
    names = set(METRIC.findall(bare))
    assert names, "%s: names no metric: %r" % (where, expr)
    for name in names - PROMETHEUS_METRICS:
        if name not in exposed:
            problems.append("%s: %s is not in /metrics" % (where, name))
    labels_here = set(TARGET_LABELS)
    for name, matchers in selectors(expr):
        fam = exposed.get(name, {}) if name not in PROMETHEUS_METRICS else {}
        labels_here |= set(fam)
        if name.endswith("_bucket"):
            labels_here.add("le")
        for label, op, value in matchers:
            if label in TARGET_LABELS or name in PROMETHEUS_METRICS:
                continue
            if label not in fam:
                problems.append("%s: %s has no label %s" % (where, name, label))
                continue
            if label in NAME_LABELS or "$" in value:
                continue
            wanted = value.split("|") if op in ("=~", "!~") else [value]
            for w in wanted:
                if op in ("=~", "!~") and not re.fullmatch(r"[a-zA-Z0-9_.\-]+", w):
                    problems.append("%s: %s{%s%s%r}: use plain alternatives" % (where, name, label, op, value))
                elif w not in fam[label]:
                    problems.append("%s: %s{%s=%r}: /metrics has only %s" % (where, name, label, w, sorted(fam[label])))
    for _, group in GROUPING.findall(bare):
        for label in (x.strip() for x in group.split(",") if x.strip()):
            if label not in labels_here:
                problems.append("%s: groups by %s, which none of its metrics has" % (where, label))
    return problems


def test_rules_name_only_exposed_metrics(exposed):
    problems = [p for w, e in rule_expressions() for p in check_names(w, e, exposed)]
    assert not problems, "\n".join(problems)


def test_rule_tests_feed_exposed_series(exposed):
    problems = [p for w, e in rule_test_series() for p in check_names(w, e, exposed)]
    assert not problems, "\n".join(problems)


def test_dashboard_names_only_exposed_metrics(exposed):
    problems = [p for w, e in dashboard_queries(load_dashboard()) for p in check_names(w, e, exposed)]
    assert not problems, "\n".join(problems)


def test_name_check_catches_a_wrong_name_label_or_value(exposed):
    """The check above notices a metric levee does not have, a label it
    does not put on it, a value it never gives that label, and a grouping
    by a label that is not there. The cases are made from a counter of the
    exposition, whatever the metrics are called."""
    name, label = next((n, k) for n in sorted(exposed) if n.endswith("_total")
                       for k in sorted(exposed[n]) if k not in NAME_LABELS)
    value = sorted(exposed[name][label])[0]
    cases = {
        "rate(%sx[5m])" % name: "not in /metrics",
        'rate(%s{nosuchlabel="%s"}[5m])' % (name, value): "no label nosuchlabel",
        'rate(%s{%s="%s-not"}[5m])' % (name, label, value): "has only",
        "sum by (nosuchlabel) (rate(%s[5m]))" % name: "groups by nosuchlabel",
    }
    for expr, why in cases.items():
        problems = check_names("case", expr, exposed)
        assert any(why in p for p in problems), (expr, problems)
    assert check_names("case", 'sum by (%s) (rate(%s{%s="%s"}[5m]))' % (label, name, label, value), exposed) == []


# --------------------------------------------------------------------------
# a real Prometheus scraping that levee, with the rules loaded


class Prometheus:
    """Debian's prometheus on a free loopback port, scraping one levee every
    second and evaluating levee-alerts.yml every second. Killed by PID."""

    def __init__(self, workdir, levee):
        self.port = harness.free_port()
        config = os.path.join(workdir, "prometheus.yml")
        with open(config, "w") as f:
            yaml.safe_dump({
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [RULES],
                "scrape_configs": [{"job_name": "levee",
                                    "static_configs": [{"targets": ["127.0.0.1:%d" % levee.admin_port]}]}],
            }, f)
        binary = shutil.which("prometheus")
        assert binary, "prometheus not found: deploy/install-deps.sh installs Debian's prometheus package"
        self.log = open(os.path.join(workdir, "prometheus.log"), "wb")
        self.proc = subprocess.Popen(
            [binary, "--config.file=" + config, "--storage.tsdb.path=" + os.path.join(workdir, "tsdb"),
             "--web.listen-address=127.0.0.1:%d" % self.port, "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir,
            preexec_fn=harness._die_with_parent)

    def api(self, path, **params):
        import urllib.parse
        import urllib.request
        url = "http://127.0.0.1:%d/api/v1/%s" % (self.port, path)
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            if e.code in (400, 422):  # a bad query: the error comes as JSON
                return json.load(e)
            raise  # 503 while starting: an OSError, as a refused connection

    def alive(self):
        assert self.proc.poll() is None, "prometheus exited: %s" % open(self.log.name).read()[-2000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def prometheus(levee, tmp_path_factory):
    prom = Prometheus(str(tmp_path_factory.mktemp("prometheus")), levee)
    try:
        def scraped():
            prom.alive()
            try:
                r = prom.api("query", query='count_over_time(up{job="levee"}[1m]) >= 3 and up{job="levee"} == 1')
            except OSError:
                return False
            return r.get("status") == "success" and r["data"]["result"]
        harness.wait_until(scraped, 30 * harness.WAIT_SCALE, interval=0.2, msg="prometheus scraped levee 3 times")

        def evaluated():
            groups = prom.api("rules")["data"]["groups"]
            rules = [r for g in groups for r in g["rules"]]
            return len(rules) == len(alerts()) and all(r["lastEvaluation"] > "2000" for r in rules) and rules
        harness.wait_until(evaluated, 15 * harness.WAIT_SCALE, interval=0.2, msg="every rule evaluated")
        yield prom
    finally:
        prom.stop()


def test_rules_evaluate_without_error_on_real_data(prometheus):
    groups = prometheus.api("rules")["data"]["groups"]
    rules = {r["name"]: r for g in groups for r in g["rules"]}
    assert set(rules) == {a["alert"] for a in alerts()}
    bad = {n: r.get("lastError") for n, r in rules.items() if r["health"] != "ok"}
    assert not bad, bad



def test_alerts_pending_are_those_of_an_unreachable_kafka(prometheus):
    """This levee's Kafka brokers are a port nothing listens on, and
    everything else is well: the alerts that become active are exactly
    Kafka's (pending: their `for` has not passed), and nothing else."""
    expected = {"LeveeKafkaDown", "LeveeL1Untrusted"}

    def active():
        groups = prometheus.api("rules")["data"]["groups"]
        return {r["name"]: [a["state"] for a in r["alerts"]] for g in groups for r in g["rules"] if r["alerts"]}
    try:
        harness.wait_until(lambda: set(active()) == expected, 20 * harness.WAIT_SCALE, interval=0.5,
                           msg="the active alerts to be %s" % sorted(expected))
    except AssertionError:
        raise AssertionError("active alerts: %r, want %s" % (active(), sorted(expected)))
    assert all(states == ["pending"] for states in active().values()), active()


def test_dashboard_queries_answer_on_real_data(prometheus):
    """Every dashboard query runs on real data; those that do not filter
    (no `> 0`) return series: a query whose two sides share no labels, or
    that names a series the levee lacks, returns none."""
    dash = load_dashboard()
    variables = [v["name"] for v in dash["templating"]["list"]]
    problems = []
    for where, expr in dashboard_queries(dash):
        q = as_promql(expr, variables).replace("[5m]", "[1m]")
        r = prometheus.api("query", query=q)
        if r.get("status") != "success":
            problems.append("%s: %s: %s" % (where, q, r.get("error")))
        elif not re.search(r">\s*0\b", q) and not r["data"]["result"]:
            problems.append("%s: no series for %s" % (where, q))
    assert not problems, "\n".join(problems)


def test_dashboard_legends_name_labels_the_series_have(prometheus):
    """A legend `{{route}}` over a query that summed route away shows an
    empty name: each legend's labels must be on the series its query
    returns."""
    dash = load_dashboard()
    variables = [v["name"] for v in dash["templating"]["list"]]
    problems = []
    for p in all_panels(dash):
        for t in p.get("targets", []):
            wanted = set(re.findall(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}", t.get("legendFormat", "")))
            if not wanted:
                continue
            r = prometheus.api("query", query=as_promql(t["expr"], variables).replace("[5m]", "[1m]"))
            for series in r["data"]["result"]:
                missing = wanted - set(series["metric"])
                if missing:
                    problems.append("panel %r %s: legend %r, series without %s" % (
                        p["title"], t["refId"], t["legendFormat"], sorted(missing)))
                    break
    assert not problems, "\n".join(problems)
