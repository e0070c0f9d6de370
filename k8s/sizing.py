#!/usr/bin/env python3
"""The levee container's requests and limits, from its policy (docs/sizing.md).

  k8s/sizing.py [--levee PATH] [--env NAME=VALUE]... POLICY

Prints the terms of the formula and the resources to set. The defaults of
keys the policy leaves out come from the levee binary itself (`levee keys`),
so they are those of the levee that will run. Environment references
(${NAME}, ${NAME:-default}) are expanded from --env, then from this process's
environment, as levee expands them; exit 1 with a reason on a policy the
formula cannot size (workers = auto, an unset variable, a bad value).
"""

import math
import os
import re
import subprocess
import sys

KiB = 1024
MiB = 1024 * KiB

# The constants of the formula; docs/sizing.md says where each comes from.
BASE = 16 * MiB            # binary, libraries, main loop, policy snapshot, metrics
PER_WORKER = 2 * MiB       # a worker's event base, counters, upstream pool, windows
L1_SLACK = 1.125           # the L1 counts entries and keys; malloc rounds up
CONN_FIXED = 8 * KiB       # struct conn, bufferevent, parser, timer
CONN_READ_HIGH = 64 * KiB  # proxy/net/conn.c: input buffered before reading stops
CONN_OUT_HIGH = 256 * KiB  # proxy/net/conn.c: output waiting for a slow client
BP_HIGH = 256 * KiB        # proxy/net/upstream.c: upstream output before it pauses
THREAD_STACK = 256 * KiB   # stack pages a thread touches (of its 8 MiB reserved)
FIXED_THREADS = 3          # main, resolver, invalidation
KAFKA_BASE = 16 * MiB      # librdkafka's threads and broker buffers, producer + consumer
KAFKA_QUEUED = 2 * 100000  # producer queue.buffering.max.messages + consumer prefetch
KAFKA_MESSAGE = 512        # one queued invalidation, with librdkafka's overhead
REDIS_BASE = 4 * MiB       # hiredis contexts and the L2 loop
REDIS_REPLIES = 4          # replies of up to max_object a worker holds at once
HEADROOM = 1.25
ROUND = 16 * MiB
CPU_PER_WORKER_REQUEST = 250   # millicores a worker is expected to use at peak
CPU_PER_WORKER_LIMIT = 1000    # a worker is one thread: at most one CPU
CPU_BACKGROUND_LIMIT = 500     # main, resolver, invalidation, librdkafka threads

SIZE_UNITS = {"B": 1, "KiB": KiB, "MiB": MiB, "GiB": 1024 * MiB, "TiB": 1024 ** 4,
              "KB": 1000, "MB": 1000 ** 2, "GB": 1000 ** 3, "TB": 1000 ** 4}
ENV_REF = re.compile(r"\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\})")


class SizingError(Exception):
    pass


def parse_size(text):
    m = re.fullmatch(r"(\d+)([A-Za-z]*)", text)
    if not m or (m.group(2) and m.group(2) not in SIZE_UNITS):
        raise SizingError("%r is not a size" % text)
    return int(m.group(1)) * SIZE_UNITS.get(m.group(2) or "B")


def expand(value, env, where):
    def one(m):
        if m.group(1) == "$":
            return "$"
        name, default = m.group(2), m.group(4)
        got = env.get(name)
        if got:
            return got
        if m.group(3) is not None:
            return default
        raise SizingError("%s: environment variable %s is not set" % (where, name))
    return ENV_REF.sub(one, value)


def read_policy(path, env):
    with open(path) as f:
        return parse_policy(f.read(), env, path)


def parse_policy(text, env, name):
    """{section header: {key: expanded value}}, with levee's syntax: one
    key per line from the first column, ' ;' starting a comment. `name`
    is the file's name in errors."""
    sections, current = {}, None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line[0] in ";#":
            continue
        if line.startswith("["):
            current = line.strip()[1:-1]
            sections[current] = {}
            continue
        if current is None or "=" not in line:
            raise SizingError("%s:%d: not a key = value line in a section" % (name, n))
        key, value = line.split("=", 1)
        value = re.split(r"[ \t];", value, maxsplit=1)[0].strip()
        sections[current][key.strip()] = expand(value, env, "%s:%d" % (name, n))
    return sections


def levee_defaults(levee):
    """{section: {key: default}} from `levee keys` (the key reference)."""
    try:
        out = subprocess.run([levee, "keys"], capture_output=True, text=True, check=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise SizingError("cannot run %s keys: %s" % (levee, e))
    defaults, section = {}, None
    for line in out.splitlines():
        m = re.match(r"### \[(\w+)", line)
        if m:
            section = defaults.setdefault(m.group(1), {})
            continue
        m = re.match(r"\| `(\w+)` \|[^|]*\| `([^`]*)` \|", line)
        if m and section is not None:
            section[m.group(1)] = m.group(2)
    if "levee" not in defaults or "max_connections" not in defaults["levee"]:
        raise SizingError("%s keys: no key reference in its output" % levee)
    return defaults


class Policy:
    """A policy's values, falling back on levee's defaults."""

    def __init__(self, sections, defaults):
        self.sections, self.defaults = sections, defaults

    def get(self, section, key, kind=None):
        kind = kind or section
        return self.sections.get(section, {}).get(key, self.defaults.get(kind, {}).get(key, ""))

    def named(self, kind):
        """[(name, section header)] of the sections `kind "NAME"`."""
        out = []
        for header in self.sections:
            m = re.fullmatch(r'%s "([^"]+)"' % kind, header)
            if m:
                out.append((m.group(1), header))
        return out


def caches(p, route):
    return p.get(route, "cache_ttl", "route") not in ("", "off")


def catch_all(p, route):
    """Whether the route takes every request that no route before it took."""
    every_path = p.get(route, "prefix", "route") == "/" or p.get(route, "match", "route") == "/**"
    return every_path and p.get(route, "methods", "route") == "any"


def exchanges(p):
    """Upstream exchanges at once: the slots of the bulkheads the routes take,
    if every request reaches a bulkhead; else max_connections bounds them."""
    bulkheads = dict(p.named("bulkhead"))
    slots, used = 0, set()
    routes = p.named("route")
    for _, route in routes:
        name = p.get(route, "bulkhead", "route")
        if not name:
            return None
        if name not in used:
            used.add(name)
            header = bulkheads.get(name)
            if header is None:
                raise SizingError("route %s names bulkhead %s, which the policy lacks" % (route, name))
            limit = p.get(header, "max_concurrent", "bulkhead")
            if limit == "auto":
                limit = p.get(header, "adaptive_max", "bulkhead")
            slots += int(limit)
        if catch_all(p, route):
            return slots
    return None


def dedup_bytes(window):
    slots = 2
    while slots < 2 * window:
        slots <<= 1
    return 8 * window + 8 * slots


def round_up(n, unit):
    return int(math.ceil(n / unit) * unit)


def size(sections, defaults):
    """The formula. Returns (terms, resources): terms is a list of
    (name, bytes) whose sum times HEADROOM is the memory limit."""
    p = Policy(sections, defaults)
    workers = p.get("levee", "workers")
    if workers in ("auto", "0"):
        raise SizingError("[levee] workers = %s: the formula needs a number of workers "
                          "(auto follows the node's CPUs, so no limit can be computed)" % workers)
    workers = int(workers)
    conns = int(p.get("levee", "max_connections"))
    header = parse_size(p.get("limits", "header_bytes"))
    l1 = parse_size(p.get("cache", "memory"))
    max_object = parse_size(p.get("cache", "max_object"))
    routes = p.named("route")
    any_cache = any(caches(p, r) for _, r in routes)
    inflight = exchanges(p)
    if inflight is None:
        inflight = conns
    per_exchange = CONN_OUT_HIGH + BP_HIGH + (max_object if any_cache else 0)
    threads = workers + FIXED_THREADS
    for _, header_name in p.named("bulkhead"):
        if p.get(header_name, "isolation", "bulkhead") == "thread":
            threads += int(p.get(header_name, "threads", "bulkhead"))
    kafka = p.get("kafka", "brokers") != ""
    control = kafka and p.get("kafka", "control_topic") != ""
    if control:
        threads += 1
    redis = p.get("redis", "address") not in ("", "none") or p.get("redis", "sentinels") != ""

    terms = [
        ("base", BASE),
        ("workers", workers * PER_WORKER),
        ("l1", int(l1 * L1_SLACK) if any_cache else 0),
        ("connections", conns * (CONN_FIXED + header + CONN_READ_HIGH)),
        ("exchanges", inflight * per_exchange),
        ("thread_stacks", threads * THREAD_STACK),
        ("kafka", KAFKA_BASE + KAFKA_QUEUED * KAFKA_MESSAGE
         + dedup_bytes(int(p.get("kafka", "dedup_window"))) if kafka else 0),
        # the control topic has a producer and a consumer of its own, with
        # librdkafka's default queue bounds (proxy/control/control.c)
        ("kafka_control", KAFKA_BASE + KAFKA_QUEUED * KAFKA_MESSAGE if control else 0),
        ("redis", REDIS_BASE + workers * REDIS_REPLIES * max_object if redis else 0),
    ]
    steady = (BASE + workers * PER_WORKER + (int(l1 * L1_SLACK) if any_cache else 0) + conns * CONN_FIXED
              + (KAFKA_BASE if kafka else 0) + (KAFKA_BASE if control else 0) + (REDIS_BASE if redis else 0))
    limit = round_up(sum(v for _, v in terms) * HEADROOM, ROUND)
    resources = {
        "requests": {"cpu": workers * CPU_PER_WORKER_REQUEST, "memory": round_up(steady, ROUND)},
        "limits": {"cpu": workers * CPU_PER_WORKER_LIMIT + CPU_BACKGROUND_LIMIT, "memory": limit},
    }
    return terms, resources


def quantity(resource, value):
    """Kubernetes' spelling: millicores, and mebibytes."""
    if resource == "cpu":
        return "%dm" % value if value % 1000 else str(value // 1000)
    return "%dMi" % (value // MiB)


def main(argv):
    levee, env, args = "levee", dict(os.environ), argv[1:]
    try:
        while args and args[0].startswith("--"):
            flag = args.pop(0)
            if not args:
                raise SizingError("%s needs a value" % flag)
            value = args.pop(0)
            if flag == "--levee":
                levee = value
            elif flag == "--env" and "=" in value:
                k, v = value.split("=", 1)
                env[k] = v
            else:
                raise SizingError("unknown or malformed option %s %s" % (flag, value))
        if len(args) != 1:
            sys.stderr.write(__doc__)
            return 2
        terms, res = size(read_policy(args[0], env), levee_defaults(levee))
    except (OSError, ValueError, SizingError) as e:
        sys.stderr.write("sizing.py: %s\n" % e)
        return 1
    for name, value in terms:
        print("%-14s %9.1f MiB" % (name, value / MiB))
    print("%-14s x %.2f" % ("headroom", HEADROOM))
    for kind in ("requests", "limits"):
        print("%s: cpu %s, memory %s" % (kind, quantity("cpu", res[kind]["cpu"]),
                                         quantity("memory", res[kind]["memory"])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
