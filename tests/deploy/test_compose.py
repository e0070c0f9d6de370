"""deploy/docker-compose.yml, without Docker: it parses; every service,
volume, file and port it names exists and agrees; levee's policy passes
`levee check` with levee's compose environment, and names Redis, Kafka and
the demo service by the addresses compose gives them; the image, user and
build target are deploy/Dockerfile's; the Kafka image is the version
deploy/install-kafka.sh fetches for the tests.

    LEVEE_BIN=build/levee pytest tests/deploy/test_compose.py
"""
import os
import re

import pytest
import yaml

from dockerfile import Dockerfile
from policyfile import REPO, check, hostport, resolve, seconds

COMPOSE = os.path.join(REPO, "deploy", "docker-compose.yml")
HERE = os.path.dirname(COMPOSE)
POLICY_IN_CONTAINER = "/etc/levee/policy.ini"
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


def load(text=None):
    if text is None:
        with open(COMPOSE) as f:
            text = f.read()
    doc = yaml.safe_load(text)
    assert isinstance(doc, dict) and isinstance(doc.get("services"), dict), "no services: mapping"
    return doc


def interpolate(value, env=None):
    """Compose's ${VAR:-default} and ${VAR} in a value, with `env` (empty:
    what a user with nothing exported gets)."""
    env = env or {}
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}",
                  lambda m: env.get(m.group(1)) or (m.group(2) or ""), str(value))


def environment(svc):
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    return {k: interpolate(v) for k, v in env.items()}


def mounts(svc):
    """[(source, target, read_only)] of a service's short-syntax volumes."""
    out = []
    for v in svc.get("volumes") or []:
        parts = v.split(":")
        out.append((parts[0], parts[1], len(parts) > 2 and "ro" in parts[2].split(",")))
    return out


def published(svc):
    """{container port: (host ip, host port)} of a service's ports."""
    out = {}
    for p in svc.get("ports") or []:
        parts = str(p).split(":")
        if len(parts) == 2:
            parts = ["0.0.0.0"] + parts
        ip, host, container = parts
        out[int(container.split("/")[0])] = (ip, int(host))
    return out


def host_policy(doc):
    """The policy file on the host that levee reads at POLICY_IN_CONTAINER."""
    for src, target, _ in mounts(doc["services"]["levee"]):
        if target == POLICY_IN_CONTAINER:
            return os.path.join(HERE, src)
        if POLICY_IN_CONTAINER.startswith(target.rstrip("/") + "/"):
            return os.path.join(HERE, src, POLICY_IN_CONTAINER[len(target.rstrip("/")) + 1:])
    raise AssertionError("nothing is mounted at %s in levee" % POLICY_IN_CONTAINER)


def container_port(doc, service, default):
    """The port a service listens on inside its container, from its command
    (--port N) or Kafka's PLAINTEXT listener, else the image's default."""
    svc = doc["services"][service]
    cmd = svc.get("command") or []
    if "--port" in cmd:
        return int(cmd[cmd.index("--port") + 1])
    listeners = environment(svc).get("KAFKA_LISTENERS", "")
    m = re.search(r"PLAINTEXT://[^:,]*:(\d+)", listeners)
    return int(m.group(1)) if m else default


def problems(doc):
    """Inconsistencies in a parsed compose file, as sentences."""
    out = []
    services = doc["services"]
    declared_volumes = set((doc.get("volumes") or {}).keys())
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        for dep, cond in (deps.items() if isinstance(deps, dict) else ((d, {}) for d in deps)):
            if dep not in services:
                out.append("%s depends on %s, which is not a service" % (name, dep))
                continue
            c = (cond or {}).get("condition", "service_started")
            if c not in CONDITIONS:
                out.append("%s: unknown depends_on condition %s" % (name, c))
            if c == "service_healthy" and "healthcheck" not in services[dep]:
                out.append("%s waits for %s to be healthy, but %s has no healthcheck" % (name, dep, dep))
        if "healthcheck" not in svc:
            out.append("%s has no healthcheck" % name)
        for src, target, _ in mounts(svc):
            if src.startswith((".", "/")):
                if not os.path.exists(os.path.join(HERE, src)):
                    out.append("%s mounts %s, which does not exist" % (name, src))
            elif src not in declared_volumes:
                out.append("%s mounts volume %s, which is not declared" % (name, src))
    used = {src for svc in services.values() for src, _, _ in mounts(svc)}
    for v in sorted(declared_volumes - used):
        out.append("volume %s is declared but no service mounts it" % v)
    hosts = [h for svc in services.values() for _, (_, h) in published(svc).items()]
    if len(hosts) != len(set(hosts)):
        out.append("two services publish the same host port: %s" % hosts)
    return out


def policy_problems(doc):
    """Where levee's policy and the compose file disagree."""
    out = []
    lv = doc["services"]["levee"]
    env = dict(environment(lv), PATH=os.environ.get("PATH", ""))
    path = host_policy(doc)
    check(path, env)
    p = resolve(path, env)
    pub = published(lv)
    for key in ("listen", "admin", "probe"):
        host, port = hostport(p["levee"][key])
        if port not in pub:
            out.append("levee's %s port %d is not published" % (key, port))
        if host not in ("0.0.0.0", "::"):
            out.append("levee's %s listens on %s: unreachable through a published port" % (key, host))
    for key in ("admin", "probe"):
        port = hostport(p["levee"][key])[1]
        if port in pub and pub[port][0] != "127.0.0.1":
            out.append("levee's %s port is published beyond the host's loopback" % key)
    if hostport(p["levee"]["admin"])[0] != "127.0.0.1" and p["levee"]["admin_token_env"] not in env:
        out.append("admin is off loopback but %s is not set" % p["levee"]["admin_token_env"])
    wants = [("levee", "upstream", "demo", None), ("redis", "address", "redis", 6379)]
    wants += [("kafka", "brokers", "kafka", 9092)]
    for section, key, service, default in wants:
        addr = p[section][key]
        host, port = hostport(addr.split(",")[0].strip())
        if host not in doc["services"]:
            out.append("[%s] %s = %s: %s is not a compose service" % (section, key, addr, host))
        elif port != container_port(doc, host, default):
            out.append("[%s] %s = %s: %s listens on %s" % (section, key, addr, host,
                                                          container_port(doc, host, default)))
        elif host not in (lv.get("depends_on") or {}):
            out.append("levee does not wait for %s" % host)
    outbox = p["kafka"]["outbox"]
    if not any(t == outbox for src, t, _ in mounts(lv) if not src.startswith((".", "/"))):
        out.append("the outbox %s is not on a named volume (the root is read-only)" % outbox)
    drain = seconds(p["levee"]["drain_delay"]) + seconds(p["levee"]["drain_timeout"])
    grace = seconds(str(lv.get("stop_grace_period", "10s")))
    if grace < drain + 1:
        out.append("stop_grace_period %gs does not cover drain_delay + drain_timeout = %gs" % (grace, drain))
    return out


@pytest.fixture(scope="module")
def doc():
    return load()


def test_compose_is_consistent(doc):
    assert set(doc["services"]) == {"demo", "levee", "redis", "kafka"}
    assert problems(doc) == []


def test_policy_agrees_with_compose(doc):
    assert policy_problems(doc) == []


def test_levee_is_the_dockerfile_image(doc):
    lv = doc["services"]["levee"]
    build = lv["build"]
    df_path = os.path.normpath(os.path.join(HERE, build["context"], build["dockerfile"]))
    assert df_path == os.path.join(REPO, "deploy", "Dockerfile")
    df = Dockerfile.load(df_path)
    stage = df.stage(build["target"])
    assert stage is df.stages[-1], "compose builds %s, not the default levee image" % build["target"]
    assert lv["user"] == stage.last("USER").args
    assert lv["read_only"] is True
    # The command is the image's, but for the probe, which the policy sets.
    assert lv["command"][:2] == stage.last("CMD").exec_form()[:2]
    assert lv["image"].split(":")[0] == "levee"


def test_kafka_image_is_the_tested_broker_version(doc):
    with open(os.path.join(REPO, "deploy", "install-kafka.sh")) as f:
        version = re.search(r"^KAFKA_VERSION=(\S+)$", f.read(), re.M).group(1)
    assert doc["services"]["kafka"]["image"] == "apache/kafka:%s" % version
    env = environment(doc["services"]["kafka"])
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    # What levee is told is what the broker advertises, or clients reconnect
    # to a name that does not resolve.
    lv_env = dict(environment(doc["services"]["levee"]), PATH=os.environ.get("PATH", ""))
    brokers = resolve(host_policy(doc), lv_env)["kafka"]["brokers"]
    assert "PLAINTEXT://%s" % brokers in env["KAFKA_ADVERTISED_LISTENERS"]


def test_read_only_roots_have_tmpfs_where_they_write(doc):
    s = doc["services"]
    assert s["redis"]["read_only"] is True and "/data" in s["redis"]["tmpfs"]
    assert s["demo"]["read_only"] is True
    kafka_dir = environment(s["kafka"])["KAFKA_LOG_DIRS"]
    assert any(t.split(":")[0] == kafka_dir for t in s["kafka"]["tmpfs"])


def test_demo_service_runs_the_repository_script(doc):
    demo = doc["services"]["demo"]
    src = [m for m in mounts(demo) if m[1] == demo["command"][1]]
    assert src and src[0][2], "the demo script is mounted read-only at the path the command runs"
    assert os.path.samefile(os.path.join(HERE, src[0][0]), os.path.join(REPO, "deploy", "demo_service.py"))
    assert demo["command"][demo["command"].index("--host") + 1] == "0.0.0.0"


def edited(edit):
    """The compose file with one (old, new) replacement made, parsed."""
    old, new = edit
    with open(COMPOSE) as f:
        text = f.read()
    assert old in text, "the compose file no longer has %r: update this test" % old
    return load(text.replace(old, new, 1))


@pytest.mark.parametrize("edit, expect", [
    (("      kafka:\n        condition: service_healthy\n", "      zookeeper:\n        condition: service_healthy\n"),
     "depends on zookeeper, which is not a service"),
    (("      - levee-outbox:/var/lib/levee/outbox\n", "      - outbox:/var/lib/levee/outbox\n"),
     "mounts volume outbox, which is not declared"),
    (("      - ./demo_service.py:/app/demo_service.py:ro\n", "      - ./demo-service.py:/app/demo_service.py:ro\n"),
     "mounts ./demo-service.py, which does not exist"),
])
def test_broken_references_are_caught(edit, expect):
    got = problems(edited(edit))
    assert any(expect in p for p in got), got


@pytest.mark.parametrize("edit, expect", [
    (('      - "127.0.0.1:15002:15002"\n', '      - "127.0.0.1:15002:15003"\n'), "probe port 15002 is not published"),
    (('      - "127.0.0.1:15000:15000"\n', '      - "15000:15000"\n'), "admin port is published beyond"),
    (("      UPSTREAM: demo:8080\n", "      UPSTREAM: demo:8081\n"), "demo listens on 8080"),
    (("      UPSTREAM: demo:8080\n", "      UPSTREAM: app:8080\n"), "app is not a compose service"),
    (("    stop_grace_period: 30s\n", "    stop_grace_period: 10s\n"), "does not cover drain_delay"),
])
def test_policy_disagreements_are_caught(edit, expect):
    got = policy_problems(edited(edit))
    assert any(expect in p for p in got), got
