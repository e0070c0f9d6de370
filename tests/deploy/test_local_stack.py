"""deploy/local-stack.sh for real: `up` on free ports starts the demo
service, Redis, a Kafka broker and two levee replicas; every command it
prints under "Try" is run and must print what its "=> " line promises (a
cached hit, a purge through Kafka, an open breaker in /status, a tier in
/tiers); `down` leaves no process running and no port bound. Also how it
ends badly: a port in use, a levee that will not start (whatever started is
stopped again), `up` twice.

    LEVEE_BIN=build/levee pytest tests/deploy/test_local_stack.py
"""
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from policyfile import LEVEE_BIN, REPO, check

SCRIPT = os.path.join(REPO, "deploy", "local-stack.sh")
POLICY = os.path.join(REPO, "deploy", "local-stack.ini")
COMPONENTS = ("demo", "redis", "kafka", "levee-a", "levee-b")
UP_TIMEOUT = 240  # a cold JVM on a busy 2-core machine
POLL = 15.0       # how long a command that reads state may take to agree


def run(stack_dir, *args, env=None, timeout=UP_TIMEOUT):
    e = dict(os.environ, LEVEE_STACK_DIR=str(stack_dir), LEVEE_BIN=os.path.abspath(LEVEE_BIN))
    for k in list(e):
        if k.startswith("LEVEE_STACK_") and k.endswith("_PORT"):
            del e[k]  # free ports only, whatever the caller's shell has
    e.update(env or {})
    return subprocess.run(["bash", SCRIPT, *args], env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout)


def recorded(stack_dir):
    """{component: (pid, start time)} from the PID files now."""
    out = {}
    for c in COMPONENTS:
        try:
            with open(os.path.join(stack_dir, c + ".pid")) as f:
                pid, start = f.read().split()
            out[c] = (int(pid), start)
        except (OSError, ValueError):
            pass
    return out


def alive(pid, start):
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return False
    fields = stat.rsplit(")", 1)[1].split()
    return fields[19] == start and running(pid)


def running(pid):
    """Whether `pid` is a live process (not gone, not a zombie)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def ports(stack_dir):
    out = {}
    with open(os.path.join(stack_dir, "stack.env")) as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            if k.endswith("_PORT"):
                out[k] = int(v)
    return out


def bound(port):
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        return False
    except OSError:
        return True
    finally:
        s.close()


def kill_leftovers(procs):
    """The safety net after a failed `down`: SIGKILL by PID, only processes
    whose start time is the one recorded."""
    for pid, start in procs.values():
        if alive(pid, start):
            os.kill(pid, signal.SIGKILL)


def assert_all_down(stack_dir, procs, port_map):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left = [c for c, p in procs.items() if alive(*p)]
        busy = [k for k, p in port_map.items() if bound(p)]
        if not left and not busy:
            return
        time.sleep(0.1)
    kill_leftovers(procs)
    raise AssertionError("after down: still running %s, ports still bound %s" % (left, busy))


def try_steps(stdout):
    """[(command, expected)] from the lines `up` printed."""
    steps, cmd = [], None
    for line in stdout.splitlines():
        s = line.strip()
        if s.startswith("$ "):
            assert cmd is None, "two commands without an expectation: %r" % cmd
            cmd = s[2:]
        elif s.startswith("=> "):
            assert cmd is not None, "an expectation without a command: %r" % s
            steps.append((cmd, s[3:]))
            cmd = None
    assert cmd is None
    return steps


def reads_state(cmd, expected):
    """A command that only looks (a GET, not a miss that would store): it
    is polled until it agrees, as state (a Kafka purge, a tier tick) lands
    asynchronously."""
    return " -X " not in cmd and not cmd.startswith("for ") and "fwd=miss" not in expected


def shell(cmd):
    r = subprocess.run(["bash", "-c", cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    return r.stdout.decode("utf-8", "replace")


@pytest.fixture
def stack(tmp_path):
    d = tmp_path / "stack"
    procs, port_map = {}, {}
    try:
        r = run(d, "up")
        procs = recorded(d)
        if os.path.exists(d / "stack.env"):
            port_map = ports(d)
        assert r.returncode == 0, "up failed:\n%s\n%s" % (r.stdout.decode(), r.stderr.decode())
        yield d, r.stdout.decode()
    finally:
        procs = procs or recorded(d)
        down = run(d, "down", timeout=120)
        if down.returncode != 0:
            kill_leftovers(procs)
        assert down.returncode == 0, down.stderr.decode()
        if port_map:
            assert_all_down(d, procs, port_map)


def test_policy_passes_levee_check():
    env = {"PATH": os.environ["PATH"], "LEVEE_STACK_DEMO_PORT": "8080", "LEVEE_STACK_REDIS_PORT": "6379",
           "LEVEE_STACK_KAFKA_PORT": "9092", "POD_NAME": "levee-a", "LEVEE_STACK_OUTBOX": "/tmp/x"}
    check(POLICY, env)


def test_up_try_status_down(stack):
    d, out = stack
    procs = recorded(d)
    assert set(procs) == set(COMPONENTS) and all(alive(*p) for p in procs.values())

    st = run(d, "status", timeout=30)
    assert st.returncode == 0, st.stdout
    for c in COMPONENTS:
        assert "%s: running, pid %d" % (c, procs[c][0]) in st.stdout.decode()
    again = run(d, "up", timeout=30)
    assert again.returncode == 1 and b"already up" in again.stderr

    steps = try_steps(out)
    assert len(steps) >= 15, out
    joined = " ".join(c for c, _ in steps)
    for what in ("/api/users/1", "_demo/fail", "/status", "_demo/slow", "/tiers", "kcat -P"):
        assert what in joined, "no try command for %s" % what
    with open(d / "try.txt") as f:
        assert try_steps(f.read()) == steps
    for cmd, expected in steps:
        deadline = time.monotonic() + (POLL if reads_state(cmd, expected) else 0)
        while True:
            got = shell(cmd)
            if expected in got or time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        assert expected in got, "%s\nprinted %r, not %r\n--- levee-a log:\n%s" % (
            cmd, got, expected, (d / "levee-a.log").read_text()[-3000:])

    port_map = ports(d)
    assert all(bound(p) for p in port_map.values())
    r = run(d, "down", timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    for c in COMPONENTS:
        assert ("stopped %s (pid %d)" % (c, procs[c][0])).encode() in r.stdout
    assert_all_down(d, procs, port_map)
    st = run(d, "status", timeout=30)
    assert st.returncode == 3 and all(("%s: stopped" % c).encode() in st.stdout for c in COMPONENTS)
    # A second down has nothing to do, and says nothing went wrong.
    assert run(d, "down", timeout=30).returncode == 0


def test_a_port_in_use_is_refused_before_anything_starts(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        r = run(tmp_path / "stack", "up", env={"LEVEE_STACK_REDIS_PORT": str(port)}, timeout=60)
    finally:
        s.close()
    assert r.returncode == 1
    assert ("LEVEE_STACK_REDIS_PORT=%d: the port is in use" % port).encode() in r.stderr
    assert recorded(tmp_path / "stack") == {}


def test_bad_port_and_bad_command(tmp_path):
    r = run(tmp_path / "stack", "up", env={"LEVEE_STACK_DEMO_PORT": "http"}, timeout=60)
    assert r.returncode == 1 and b"LEVEE_STACK_DEMO_PORT=http: not a port number" in r.stderr
    r = run(tmp_path / "stack", "sideways", timeout=30)
    assert r.returncode == 2 and b"up " in r.stderr


def test_a_levee_that_will_not_start_stops_the_rest(tmp_path):
    """levee-a exits at start (its binary refuses to run, though `levee
    check` passes): `up` fails naming it, with its log, and stops the demo
    service, Redis and Kafka it had started."""
    fake = tmp_path / "levee"
    fake.write_text('#!/bin/sh\n[ "$1" = check ] && exec %s "$@"\necho "levee: refusing to start" >&2\nexit 1\n'
                    % os.path.abspath(LEVEE_BIN))
    fake.chmod(0o755)
    d = tmp_path / "stack"
    try:
        r = run(d, "up", env={"LEVEE_BIN": str(fake)})
    finally:
        kill_leftovers(recorded(d))  # only what a failed `down` left behind
    err = r.stderr.decode()
    # `down` removed the PID files; what it stopped it said, with the PIDs.
    stopped = dict(re.findall(r"stopped (\S+) \(pid (\d+)\)", err))
    assert r.returncode == 1, err
    assert "levee-a exited before readiness" in err and "refusing to start" in err
    assert "up failed; stopping what started" in err
    assert set(stopped) == {"demo", "redis", "kafka"}, err
    for name, pid in stopped.items():
        assert not running(int(pid)), "%s (pid %s) still runs after the failed up" % (name, pid)
    busy = [k for k, p in ports(d).items() if bound(p)]
    assert not busy, "ports still bound after the failed up: %s" % busy
    assert recorded(d) == {}


def _stubborn(tmp_path):
    """A process that ignores SIGTERM, as a hung component would."""
    p = subprocess.Popen(["python3", "-c", "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                          "print('ready', flush=True)\ntime.sleep(600)\n"], stdout=subprocess.PIPE)
    assert p.stdout.readline() == b"ready\n"
    with open("/proc/%d/stat" % p.pid) as f:
        start = f.read().rsplit(")", 1)[1].split()[19]
    return p, start


def test_down_sigkills_what_ignores_sigterm(tmp_path):
    d = tmp_path / "stack"
    d.mkdir()
    p, start = _stubborn(tmp_path)
    try:
        (d / "kafka.pid").write_text("%d %s\n" % (p.pid, start))
        r = run(d, "down", env={"LEVEE_STACK_STOP_TIMEOUT": "1"}, timeout=60)
        assert r.returncode == 0, r.stderr.decode()
        assert ("kafka (pid %d) still runs after 1s: SIGKILL" % p.pid).encode() in r.stdout
        assert p.wait(10) == -signal.SIGKILL
        assert not (d / "kafka.pid").exists()
    finally:
        p.kill()
        p.wait()


def test_down_never_signals_a_reused_pid(tmp_path):
    """A PID file whose PID now belongs to another process (its start time
    differs) is dropped, and that process is left alone."""
    d = tmp_path / "stack"
    d.mkdir()
    p, start = _stubborn(tmp_path)
    try:
        (d / "redis.pid").write_text("%d %d\n" % (p.pid, int(start) - 1))
        r = run(d, "down", env={"LEVEE_STACK_STOP_TIMEOUT": "1"}, timeout=60)
        assert r.returncode == 0 and b"stopped redis" not in r.stdout, r.stdout
        assert p.poll() is None, "down signalled a process that was not the stack's"
        assert not (d / "redis.pid").exists()
    finally:
        p.kill()
        p.wait()


def test_bad_timeouts_are_refused(tmp_path):
    r = run(tmp_path, "down", env={"LEVEE_STACK_STOP_TIMEOUT": "soon"}, timeout=30)
    assert r.returncode == 1 and b"LEVEE_STACK_STOP_TIMEOUT=soon: not a number of seconds" in r.stderr


def test_sigterm_during_up_stops_what_started(tmp_path):
    d = tmp_path / "stack"
    e = dict(os.environ, LEVEE_STACK_DIR=str(d), LEVEE_BIN=os.path.abspath(LEVEE_BIN))
    p = subprocess.Popen(["bash", SCRIPT, "up"], env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    procs = {}
    try:
        deadline = time.monotonic() + 120
        while not {"demo", "redis"} <= set(procs):
            assert p.poll() is None and time.monotonic() < deadline, "up ended before starting redis"
            time.sleep(0.05)
            procs = recorded(d)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        kill_leftovers(procs)
    assert p.returncode == 130, err
    assert b"up failed; stopping what started" in err
    assert b"stopped redis" in err and b"stopped demo" in err
    assert_all_down(d, procs, ports(d))
