"""What a levee policy file resolves to, for the deployment tests: the file
is checked by the real binary (`levee check`), and its values are read here
with the defaults taken from the binary's own key table (`levee keys`), so
a test compares a Dockerfile, a compose file or a systemd unit with what
levee would actually run, not with numbers copied into the test.

    from policyfile import LEVEE_BIN, check, resolve, seconds
    check("deploy/compose/policy.ini", env)          # raises on a bad file
    p = resolve("deploy/compose/policy.ini", env)    # {section: {key: value}}
    p["levee"]["drain_timeout"]                      # "25s", set or default
"""
import os
import re
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LEVEE_BIN = os.environ.get("LEVEE_BIN", os.path.join(REPO, "build", "levee"))
if not os.path.isabs(LEVEE_BIN):
    LEVEE_BIN = os.path.join(REPO, LEVEE_BIN)

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SECTION = re.compile(r'^\[([a-z]+)(?:\s+"([^"]+)")?\]\s*$')
_KEY_ROW = re.compile(r"^\| `([a-z_0-9]+)` \| [^|]* \| `?([^|`]*)`? \|")


class PolicyError(Exception):
    pass


def check(path, env=None):
    """Runs `levee check PATH` with `env` (os.environ when None); returns its
    output, or raises PolicyError with it when the file is refused."""
    r = subprocess.run([LEVEE_BIN, "check", path], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    out = r.stdout.decode("utf-8", "replace")
    if r.returncode != 0:
        raise PolicyError("levee check %s exited %d:\n%s" % (path, r.returncode, out))
    return out


def defaults():
    """{section kind: {key: default}} from `levee keys` (the key table)."""
    out = subprocess.run([LEVEE_BIN, "keys"], stdout=subprocess.PIPE, check=True, timeout=30).stdout.decode()
    table, kind = {}, None
    for line in out.splitlines():
        m = re.match(r'^### \[([a-z]+)', line)
        if m:
            kind = m.group(1)
            table.setdefault(kind, {})
            continue
        m = _KEY_ROW.match(line)
        if m and kind:
            table[kind][m.group(1)] = m.group(2).strip()
    if not table.get("levee"):
        raise PolicyError("`levee keys` listed no [levee] keys:\n" + out[:400])
    return table


def expand(value, env):
    """${VAR} and ${VAR:-default}, as levee expands them (unset and empty
    take the default)."""
    def sub(m):
        v = env.get(m.group(1))
        return v if v else (m.group(2) or "")
    return _VAR.sub(sub, value)


def parse(path, env=None):
    """{"levee": {...}, 'route "users"': {...}}: the keys the file sets,
    environment-expanded, inline comments removed."""
    env = os.environ if env is None else env
    sections, cur = {}, None
    with open(path) as f:
        for n, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            if not line.strip() or line.lstrip()[:1] in (";", "#"):
                continue
            m = _SECTION.match(line.strip())
            if m:
                cur = m.group(1) if m.group(2) is None else '%s "%s"' % (m.group(1), m.group(2))
                sections.setdefault(cur, {})
                continue
            if "=" not in line or cur is None:
                raise PolicyError("%s:%d: not a key = value line in a section: %r" % (path, n, line))
            key, value = line.split("=", 1)
            value = re.split(r"\s;", value, maxsplit=1)[0].strip()
            sections[cur][key.strip()] = expand(value, env)
    return sections


def resolve(path, env=None):
    """parse(), with every key of the singleton sections ([levee], [kafka],
    ...) filled in from the key table's defaults."""
    got = parse(path, env)
    table = defaults()
    out = {k: dict(v) for k, v in got.items()}
    for kind in ("levee", "limits", "upstream", "redis", "kafka", "cache", "tiers"):
        merged = dict(table.get(kind, {}))
        merged.update(got.get(kind, {}))
        out[kind] = merged
    return out


def seconds(duration):
    """A policy duration ("25s", "1m", "500ms", "0") in seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", duration)
    if not m:
        raise ValueError("not a duration: %r" % duration)
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]


def hostport(addr):
    """"host:port" -> (host, port as int)."""
    host, _, port = addr.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError("not host:port: %r" % addr)
    return host, int(port)
