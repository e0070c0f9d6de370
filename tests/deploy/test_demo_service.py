"""deploy/demo_service.py's failure modes (what local-stack.sh's breaker and
tier steps stand on): they switch on, apply to every path but /_demo/, end
by themselves, and bad input gets a 400 that says what to send.

    pytest tests/deploy/test_demo_service.py
"""
import http.client
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from policyfile import REPO

SERVICE = os.path.join(REPO, "deploy", "demo_service.py")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def demo():
    port = free_port()
    p = subprocess.Popen([sys.executable, SERVICE, "--port", str(port), "--quiet"])
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert p.poll() is None and time.monotonic() < deadline, "the demo service did not start"
                time.sleep(0.02)
        yield port
    finally:
        p.terminate()
        p.wait(10)


def call(port, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        t0 = time.monotonic()
        c.request(method, path, body=body)
        r = c.getresponse()
        data = r.read()
        return r.status, json.loads(data) if data.startswith(b"{") else data, time.monotonic() - t0
    finally:
        c.close()


def test_fail_mode_fails_everything_but_control_and_ends(demo):
    status, body, _ = call(demo, "POST", "/_demo/fail?for=1")
    assert status == 200 and body["mode"]["fail_for_s"] == 1.0
    assert call(demo, "GET", "/api/users/1")[0] == 500
    assert call(demo, "PUT", "/api/users/1", body=b'{"name": "x"}')[0] == 500
    assert call(demo, "GET", "/_demo/mode")[0] == 200
    deadline = time.monotonic() + 5
    while call(demo, "GET", "/api/users/1")[0] == 500:
        assert time.monotonic() < deadline, "the fail mode did not end after its second"
        time.sleep(0.05)
    # The PUT answered 500 was not applied.
    assert call(demo, "GET", "/api/users/1")[1]["name"] == "Ada"


def test_slow_mode_delays_and_normal_ends_it(demo):
    assert call(demo, "POST", "/_demo/slow?ms=300&for=60s")[0] == 200
    status, _, took = call(demo, "GET", "/")
    assert status == 200 and took >= 0.3
    assert call(demo, "GET", "/_demo/mode")[2] < 0.3  # control paths are never slowed
    status, body, _ = call(demo, "POST", "/_demo/normal")
    assert body["mode"] == {"fail_for_s": 0.0, "slow_ms": 0, "slow_for_s": 0.0}
    assert call(demo, "GET", "/")[2] < 0.3


@pytest.mark.parametrize("method, path, status, says", [
    ("POST", "/_demo/fail", 400, "give for=N (1 to 3600)"),
    ("POST", "/_demo/fail?for=0", 400, "for must be a whole number from 1 to 3600, not '0'"),
    ("POST", "/_demo/fail?for=3601", 400, "not '3601'"),
    ("POST", "/_demo/slow?for=5", 400, "give ms=N (1 to 30000)"),
    ("POST", "/_demo/slow?ms=-5&for=5", 400, "ms must be a whole number"),
    ("GET", "/_demo/fail?for=5", 404, "POST /_demo/fail?for=S"),
    ("POST", "/_demo/explode", 404, "POST /_demo/fail?for=S"),
])
def test_bad_control_requests(demo, method, path, status, says):
    got, body, _ = call(demo, method, path)
    assert got == status and says in body["error"], body
    # and nothing was switched on
    assert call(demo, "GET", "/_demo/mode")[1]["mode"] == {"fail_for_s": 0.0, "slow_ms": 0, "slow_for_s": 0.0}
