"""Fixtures for levee's integration tests (see README.md)."""
import os
import socket
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SANITIZER, Levee, Origin  # noqa: E402
from kafka import kafka_broker  # noqa: E402,F401  (a session fixture)
from redis_server import Redis  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "no_sanitizer(why): skipped when LEVEE_SANITIZER is set, because the test measures "
        "what a sanitizer changes (RSS, speed); `why` says which")
    config.addinivalue_line(
        "markers", "serial(why): measured under a load of its own (latency, success rates): tests/run runs "
        "these alone, one at a time, after the tests it runs in parallel")


def pytest_collection_modifyitems(config, items):
    if not SANITIZER:
        return
    for item in items:
        m = item.get_closest_marker("no_sanitizer")
        if m:
            why = m.args[0] if m.args else "measures what a sanitizer changes"
            item.add_marker(pytest.mark.skip(reason="LEVEE_SANITIZER=%s: %s" % (SANITIZER, why)))


@pytest.fixture(scope="session")
def _origin_proc(tmp_path_factory):
    o = Origin(str(tmp_path_factory.mktemp("origin")))
    yield o
    o.stop()


@pytest.fixture
def origin(_origin_proc):
    """The shared test origin, restarted if a previous test killed it.
    `origin.start_mark` is the first log seq of this test."""
    _origin_proc.ensure()
    _origin_proc.start_mark = _origin_proc.mark()
    return _origin_proc


def _redis_listening(sections):
    """Whether the policy names a Redis address that accepts connections
    now (a test of levee without Redis points it at a closed port)."""
    if not isinstance(sections, dict) or not isinstance(sections.get("redis"), dict):
        return False
    addr = sections["redis"].get("address")
    if not addr or ":" not in addr:
        return False
    host, port = addr.rsplit(":", 1)
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=1).close()
        return True
    except (OSError, ValueError):
        return False


@pytest.fixture
def levee_factory(tmp_path, origin):
    """levee_factory(sections=None, **kw) -> a started Levee pointed at the
    origin (see harness.Levee for keywords). All are stopped at teardown;
    a levee that died on its own during the test fails the test."""
    made = []

    def make(sections=None, upstream=None, **kw):
        d = tmp_path / ("levee%d" % len(made))
        d.mkdir()
        wait = kw.pop("wait", "readyz")
        prepare = kw.pop("prepare", None)  # prepare(lv): e.g. lay out policy files before start
        lv = Levee(str(d), upstream or origin.addr, sections=sections, start=False, **kw)
        made.append(lv)  # before start: a levee that fails to get ready is still stopped
        if prepare:
            prepare(lv)
        lv.start(wait)
        if wait == "readyz" and _redis_listening(sections):
            # until its own connection is ready a worker answers misses with
            # fwd=bypass and stores nothing: tests of the shared tier would
            # race the connect on a loaded machine
            lv.wait_redis_ready()
        return lv

    yield make
    problems = [p for p in (lv.stop() for lv in made) if p]
    if problems:
        pytest.fail("\n".join(problems))


@pytest.fixture
def levee(levee_factory):
    return levee_factory()


@pytest.fixture
def redis():
    """A fresh redis-server for one test, killed at its end."""
    r = Redis()
    yield r
    r.close()
