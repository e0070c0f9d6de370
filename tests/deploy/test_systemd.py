"""deploy/levee.service against levee itself: the policy it starts, checks
before start and before reload is one file, which `levee check` accepts; the
outbox that policy writes is inside the unit's StateDirectory (the only
writable place under ProtectSystem=strict); TimeoutStopSec covers the
policy's drain_delay + drain_timeout; and `systemd-analyze verify` accepts
the unit when it is installed here.

    LEVEE_BIN=build/levee pytest tests/deploy/test_systemd.py
"""
import os
import re
import shlex
import shutil
import subprocess

import pytest

from policyfile import LEVEE_BIN, REPO, check, resolve, seconds

UNIT = os.path.join(REPO, "deploy", "levee.service")
BIN = "/usr/local/bin/levee"


def parse_unit(text):
    """{section: {key: [values, in order]}}: systemd's syntax as far as the
    unit uses it (comments, continuation lines, repeated keys; an empty
    assignment resets the list, as it does for ExecStartPre and friends)."""
    sections, cur, pending = {}, None, ""
    for n, raw in enumerate(text.splitlines(), 1):
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1].rstrip() + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise ValueError("line %d: bad section header %r" % (n, line))
            cur = sections.setdefault(line[1:-1], {})
            continue
        if cur is None or "=" not in line:
            raise ValueError("line %d: not key=value in a section: %r" % (n, line))
        k, v = (x.strip() for x in line.split("=", 1))
        if v == "":
            cur[k] = []  # systemd: an empty assignment resets a list
        else:
            cur.setdefault(k, []).append(v)
    return sections


def timespan(v):
    """systemd time span ("30", "30s", "1min 30s", "500ms") in seconds."""
    units = {"": 1, "s": 1, "sec": 1, "ms": 0.001, "msec": 0.001, "m": 60, "min": 60, "h": 3600}
    total = 0.0
    for num, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", v):
        if unit not in units:
            raise ValueError("unknown time unit in %r" % v)
        total += float(num) * units[unit]
    return total


def unit_env(service):
    env = {"PATH": os.environ.get("PATH", "")}
    for assignment in service.get("Environment", []):
        for word in shlex.split(assignment):
            k, _, v = word.partition("=")
            env[k] = v
    return env


def installed_policy_source(text, dest):
    """The repository file the unit's header installs as `dest`."""
    for line in text.splitlines():
        words = line.lstrip("#").split()
        if words[:1] == ["install"] and len(words) >= 3 and words[-1] == dest:
            return os.path.join(REPO, words[-2])
    raise AssertionError("the unit's header says nothing about installing %s" % dest)


def policy_path(service):
    """The one policy file ExecStart runs; ExecStartPre and ExecReload check it."""
    start = shlex.split(service["ExecStart"][0])
    assert start[0] == BIN and start[1] == "--policy", start
    return start[2]


def problems(text, policy_src):
    """What is inconsistent between the unit text and levee, as sentences."""
    unit = parse_unit(text)
    s = unit.get("Service", {})
    out = []
    path = policy_path(s)
    checks = ["%s check %s" % (BIN, path)]
    if s.get("ExecStartPre", [])[:1] != checks:
        out.append("ExecStartPre must be `%s`, got %s" % (checks[0], s.get("ExecStartPre")))
    reload = s.get("ExecReload", [])
    if reload != checks + ["/bin/kill -HUP $MAINPID"]:
        out.append("ExecReload must check %s, then send SIGHUP: got %s" % (path, reload))
    if s.get("Type") != ["simple"]:
        out.append("Type must be simple (levee does not fork or notify): %s" % s.get("Type"))
    if s.get("KillSignal") != ["SIGTERM"]:
        out.append("KillSignal must be SIGTERM, which drains")

    env = unit_env(s)
    check(policy_src, env)  # raises with levee's own message when refused
    p = resolve(policy_src, env)
    drain = seconds(p["levee"]["drain_delay"]) + seconds(p["levee"]["drain_timeout"])
    stop = timespan(s.get("TimeoutStopSec", ["90s"])[-1])
    if stop < drain + 1:
        out.append("TimeoutStopSec=%gs does not cover drain_delay + drain_timeout = %gs (+1s to exit)" % (
            stop, drain))

    state = s.get("StateDirectory", [])
    state_paths = ["/var/lib/" + d for v in state for d in v.split()]
    outbox = p["kafka"]["outbox"]
    if s.get("ProtectSystem") == ["strict"] and not any(
            outbox == d or outbox.startswith(d + "/") for d in state_paths):
        out.append("ProtectSystem=strict leaves %s read-only: StateDirectory= must hold it (have %s)" % (
            outbox, state_paths))
    # levee exits at start when it cannot open a file access_log
    logs_paths = ["/var/log/" + d for v in s.get("LogsDirectory", []) for d in v.split()]
    alog = p["levee"]["access_log"]
    if s.get("ProtectSystem") == ["strict"] and alog not in ("stdout", "off") and not any(
            alog.startswith(d + "/") for d in state_paths + logs_paths):
        out.append("ProtectSystem=strict leaves %s read-only, and levee exits when it cannot open its access "
                   "log: LogsDirectory= (or StateDirectory=) must hold it (have %s)" % (alog, state_paths + logs_paths))
    if s.get("NoNewPrivileges") != ["yes"]:
        out.append("NoNewPrivileges=yes is missing")
    if s.get("CapabilityBoundingSet") != []:
        out.append("CapabilityBoundingSet= must be empty: levee needs no capability")
    for key in ("ProtectHome", "PrivateTmp", "PrivateDevices", "DynamicUser"):
        if s.get(key) != ["yes"]:
            out.append("%s=yes is missing" % key)
    return out


@pytest.fixture(scope="module")
def text():
    with open(UNIT) as f:
        return f.read()


@pytest.fixture(scope="module")
def source(text):
    return installed_policy_source(text, policy_path(parse_unit(text)["Service"]))


def test_unit_is_consistent_with_levee(text, source):
    assert problems(text, source) == []


@pytest.mark.parametrize("edit, expect", [
    (("StateDirectory=levee\n", ""), "StateDirectory= must hold it"),
    (("TimeoutStopSec=30\n", "TimeoutStopSec=20s\n"), "does not cover drain_delay + drain_timeout = 25s"),
    (("ExecStartPre=/usr/local/bin/levee check /etc/levee/policy.ini\n",
      "ExecStartPre=/usr/local/bin/levee check /etc/levee/other.ini\n"), "ExecStartPre must be"),
    (("ExecReload=/bin/kill -HUP $MAINPID\n", ""), "ExecReload must check"),
    (("CapabilityBoundingSet=\n", "CapabilityBoundingSet=CAP_NET_ADMIN\n"), "CapabilityBoundingSet= must be empty"),
])
def test_each_inconsistency_is_caught(text, source, edit, expect):
    old, new = edit
    assert old in text, "the unit no longer has %r: update this test" % old
    got = problems(text.replace(old, new, 1), source)
    assert any(expect in p for p in got), got


def test_a_longer_drain_in_the_policy_needs_a_longer_stop_timeout(text, source, tmp_path):
    """The timeout is checked against the policy's own values, not a constant."""
    with open(source) as f:
        policy = f.read()
    longer = tmp_path / "policy.ini"
    longer.write_text(policy.replace("[levee]\n", "[levee]\ndrain_delay = 5s\ndrain_timeout = 30s\n", 1))
    got = problems(text, str(longer))
    assert got == ["TimeoutStopSec=30s does not cover drain_delay + drain_timeout = 35s (+1s to exit)"]


def test_the_documented_access_log_file_is_writable(text, source, tmp_path):
    """docs/access-log.md's example file, in the policy the unit installs:
    the sandbox must let levee open it, or levee exits at start (and the
    check before it passes, so the unit restarts in a loop)."""
    with open(os.path.join(REPO, "docs", "access-log.md"), encoding="utf-8") as f:
        m = re.search(r"^access_log\s*=\s*(/\S+)", f.read(), re.M)
    assert m, "docs/access-log.md no longer shows an access_log file: update this test"
    with open(source) as f:
        policy = f.read()
    logged = tmp_path / "policy.ini"
    logged.write_text(policy.replace("[levee]\n", "[levee]\naccess_log = %s\n" % m.group(1), 1))
    assert problems(text, str(logged)) == []
    got = problems(text.replace("LogsDirectory=levee\n", ""), str(logged))
    assert any("LogsDirectory= (or StateDirectory=) must hold it" in p for p in got), got


def test_a_bad_policy_fails_the_check(text, tmp_path):
    bad = tmp_path / "policy.ini"
    bad.write_text("[levee]\ndrain_timeout = soon\n")
    with pytest.raises(Exception, match="drain_timeout"):
        problems(text, str(bad))


def test_parse_unit_handles_continuations_and_resets():
    u = parse_unit("[Service]\nExecStartPre=a\nExecStartPre=\nExecStartPre=b \\\n  c\n# x\n")
    assert u["Service"]["ExecStartPre"] == ["b c"]
    with pytest.raises(ValueError, match="not key=value"):
        parse_unit("Type=simple\n")


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_systemd_analyze_verify(text, tmp_path):
    """systemd's own reading of the unit, with levee where ExecStart looks
    for it (verify checks that the binaries exist and are executable)."""
    unit = tmp_path / "levee.service"
    unit.write_text(text.replace(BIN, os.path.abspath(LEVEE_BIN)))
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    out = r.stdout.decode("utf-8", "replace")
    # Lines about other units on this machine are not this unit's business.
    ours = [ln for ln in out.splitlines() if "levee.service" in ln]
    assert r.returncode == 0 and not ours, out
