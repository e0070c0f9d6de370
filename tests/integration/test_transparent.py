"""Transparent mode for real (docs/transparent.md): network namespaces, a
veth pair, the rules of deploy/transparent/levee-transparent.sh, and levee
running as its container UID beside the app.

    client ns  CLIENT_IP ──veth── POD_IP  pod ns
                                          app (the test origin) on 0.0.0.0:APP_PORT
                                          levee on 0.0.0.0:LEVEE_PORT, uid LEVEE_UID,
                                            upstream 127.0.0.1:APP_PORT, transparent = on

The client always dials POD_IP:APP_PORT, as a legacy client would; only the
rules decide whether levee answers. Needs root, ip, iptables and setpriv:
skipped without them, failed when CI is set.
"""
import contextlib
import ctypes
import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from harness import cache_status_core, WAIT_SCALE, HttpConn, Levee, Origin, build_request, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
RULES = os.path.join(HERE, "..", "..", "deploy", "transparent", "levee-transparent.sh")
APP_PORT = 8080
LEVEE_PORT = 15006
ADMIN_PORT = 15000
LEVEE_UID = 10101  # the image's user (deploy/Dockerfile, k8s/)
CLIENT_IP, POD_IP = "10.213.0.1", "10.213.0.2"
TOOLS = ("ip", "iptables", "iptables-save", "setpriv")
CLONE_NEWNET = 0x40000000


def _missing():
    if os.geteuid() != 0:
        return "needs root (network namespaces and iptables)"
    gone = [t for t in TOOLS if shutil.which(t) is None]
    if gone:
        return "needs %s (Debian: iptables, iproute2, util-linux)" % ", ".join(gone)
    return None


def _skip_or_fail(why):
    if os.environ.get("CI"):
        pytest.fail("transparent-mode test cannot run in CI: %s" % why)
    pytest.skip(why)


def run(*cmd, check=True):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if check and p.returncode != 0:
        raise AssertionError("%s: rc=%d\n%s%s" % (" ".join(cmd), p.returncode, p.stdout, p.stderr))
    return p


_libc = ctypes.CDLL(None, use_errno=True)


@contextlib.contextmanager
def netns(name):
    """Runs the block with this thread in network namespace `name`: the
    sockets it opens and the processes it starts live there."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    there = os.open("/run/netns/%s" % name, os.O_RDONLY)
    try:
        if _libc.setns(there, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, "setns(%s): %s" % (name, os.strerror(e)))
        yield
    finally:
        if _libc.setns(home, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns back to the test's namespace")
        os.close(home)
        os.close(there)


class Pod:
    """The two namespaces, the app and levee; everything removed at the end."""

    def __init__(self):
        tag = "%d" % os.getpid()
        self.pod, self.client = "lvtp%s" % tag, "lvtc%s" % tag
        self.veth = ("lvtp%s" % tag)[:15], ("lvtc%s" % tag)[:15]
        self.workdir = None
        self.origin = self.levee = None

    def up(self):
        # namespaces a killed run of this test left behind (its pid is gone)
        for ln in run("ip", "netns", "list").stdout.splitlines():
            name = ln.split()[0] if ln.split() else ""
            if name[:4] in ("lvtp", "lvtc") and name[4:].isdigit() and not os.path.exists("/proc/" + name[4:]):
                run("ip", "netns", "delete", name, check=False)
        for ns in (self.pod, self.client):
            run("ip", "netns", "add", ns)
        run("ip", "link", "add", self.veth[0], "netns", self.pod, "type", "veth",
            "peer", "name", self.veth[1], "netns", self.client)
        for ns, dev, ip in ((self.pod, self.veth[0], POD_IP), (self.client, self.veth[1], CLIENT_IP)):
            self.sh(ns, "ip", "link", "set", "lo", "up")
            self.sh(ns, "ip", "addr", "add", ip + "/30", "dev", dev)
            self.sh(ns, "ip", "link", "set", dev, "up")
        # the nat table must work here, or nothing below can
        self.rules("install")
        self.rules("remove")

    def start(self):
        # levee runs as LEVEE_UID: what it reads must be readable by it
        self.workdir = tempfile.mkdtemp(prefix="levee-transparent-")
        os.chmod(self.workdir, 0o755)
        logdir = os.path.join(self.workdir, "log")
        os.mkdir(logdir)
        os.chown(logdir, LEVEE_UID, LEVEE_UID)
        self.access_log = os.path.join(logdir, "access.log")
        with netns(self.pod):
            self.origin = Origin(self.workdir, port=APP_PORT, host="0.0.0.0")
            lv = Levee(self.workdir, "127.0.0.1:%d" % APP_PORT, start=False, sections={
                "levee": {"listen": "0.0.0.0:%d" % LEVEE_PORT, "admin": "127.0.0.1:%d" % ADMIN_PORT,
                          "transparent": "on", "access_log": self.access_log},
                'route "echo"': {"prefix": "/echo/", "cache_ttl": "60s"},
                # a new upstream connection per request: nat decides on a
                # connection's first packet, so a pooled one would keep the
                # path it had before a test changed the rules
                "upstream": {"keepalive": "0"},
            })
            os.chmod(lv.policy_path, 0o644)
            lv.port, lv.admin_port = LEVEE_PORT, ADMIN_PORT
            lv.args = ["setpriv", "--reuid=%d" % LEVEE_UID, "--regid=%d" % LEVEE_UID,
                       "--clear-groups"] + lv.args
            self.levee = lv
            lv.start()

    def down(self):
        """Stops and removes everything; safe to call again."""
        problems = []
        if self.levee is not None:
            with netns(self.pod):
                problem = self.levee.stop()
            if problem:
                problems.append(problem)
            self.levee = None
        if self.origin is not None:
            self.origin.stop()
            self.origin = None
        for ns in (self.pod, self.client):
            # deleting a namespace takes its veth end, and the peer with it
            if os.path.exists("/run/netns/%s" % ns):
                run("ip", "netns", "delete", ns, check=False)
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        return problems

    def sh(self, ns, *cmd, check=True):
        return run("ip", "netns", "exec", ns, *cmd, check=check)

    def rules(self, action, *extra, check=True):
        args = ["sh", RULES, action]
        if action != "remove":
            args += ["--app-ports", str(APP_PORT), "--levee-port", str(LEVEE_PORT), "--uid", str(LEVEE_UID)]
        return self.sh(self.pod, *(args + list(extra)), check=check)

    def nat(self):
        """The pod's nat table, without iptables-save's dated comments and
        counters, so two saves of the same rules compare equal."""
        out = self.sh(self.pod, "iptables-save", "-t", "nat").stdout
        return [ln.split(" [")[0] if ln.startswith(":") else ln
                for ln in out.splitlines() if not ln.startswith("#")]

    # -- talking to things in their namespace
    def get(self, ns, host, port, target, headers=()):
        with netns(ns):
            c = HttpConn(port, host=host, timeout=5 * WAIT_SCALE)
        try:
            c.send(build_request("GET", target, list(headers) + [("Connection", "close")], host="app"))
            r = c.read_response("GET")
            assert r is not None, "closed without a response"
            r.client_port = c.sock.getsockname()[1]
            return r
        finally:
            c.close()

    def client_get(self, target):
        """What a legacy client gets: POD_IP:APP_PORT from the client namespace."""
        return self.get(self.client, POD_IP, APP_PORT, target)

    def metric(self, name):
        with netns(self.pod):
            return self.levee.metric(name)

    def origin_requests(self, mark, path):
        """The app's requests for `path` since `mark`, each with the address
        its connection came from."""
        with netns(self.pod):
            evs = self.origin.events(mark)
        peers = {e["conn"]: e["peer"] for e in evs if e["event"] == "conn_open"}
        return [dict(e, peer=peers.get(e["conn"])) for e in evs
                if e["event"] == "request" and e["target"].split("?")[0] == path]

    def mark(self):
        with netns(self.pod):
            return self.origin.mark()

    def access_lines(self, path):
        def lines():
            try:
                with open(self.access_log) as f:
                    return [json.loads(ln) for ln in f if ln.strip()]
            except FileNotFoundError:
                return []
        return [e for e in lines() if e["target"].split("?")[0] == path]


@pytest.fixture(scope="module")
def pod():
    why = _missing()
    if why:
        _skip_or_fail(why)
    p = Pod()
    try:
        try:
            p.up()
        except (AssertionError, OSError) as e:
            p.down()
            _skip_or_fail("cannot set up namespaces with nat rules here: %s" % e)
        p.start()  # from here on, a failure is the test's
        yield p
    finally:
        problems = p.down()
    assert not problems, problems


@pytest.fixture
def rules(pod):
    """Each test starts with no rules at all, and leaves none."""
    pod.rules("remove")
    pod.sh(pod.pod, "iptables", "-t", "nat", "-F", "OUTPUT")
    yield pod
    pod.rules("remove")
    pod.sh(pod.pod, "iptables", "-t", "nat", "-F", "OUTPUT")


def hdr(r, name):
    return r.header(name)


def test_inbound_goes_through_levee(rules):
    pod = rules
    pod.rules("install")
    mark = pod.mark()
    loops = pod.metric("levee_loops_refused_total")
    redirected = pod.metric("levee_connections_redirected_total")
    a = pod.client_get("/echo/t1")
    assert a.status == 200
    assert cache_status_core(hdr(a, "Cache-Status")) == "levee; fwd=miss; stored"
    b = pod.client_get("/echo/t1")
    assert cache_status_core(hdr(b, "Cache-Status")) == "levee; hit"
    assert b.body == a.body
    seen = pod.origin_requests(mark, "/echo/t1")
    # exactly one request per miss: levee's own upstream connection was not
    # redirected back to it
    assert len(seen) == 1, seen
    assert pod.metric("levee_loops_refused_total") == loops
    assert pod.metric("levee_connections_redirected_total") == redirected + 2
    # what the app sees: a connection from levee on loopback, the client in
    # X-Forwarded-For
    assert seen[0]["peer"] == "127.0.0.1"
    xff = [v for n, v in seen[0]["headers"] if n.lower() == "x-forwarded-for"]
    assert xff == [CLIENT_IP]
    # the access log names the client and where it was going
    logged = wait_until(lambda: pod.access_lines("/echo/t1")[:2] or None, 5 * WAIT_SCALE, msg="access log")
    assert logged[0]["client"] == CLIENT_IP
    assert logged[0]["orig_dst"] == "%s:%d" % (POD_IP, APP_PORT)


def test_install_is_idempotent_and_status_tells(rules):
    pod = rules
    assert pod.rules("status", check=False).returncode == 1
    pod.rules("install")
    once = pod.nat()
    assert any("LEVEE_INBOUND" in ln and "--dport %d" % APP_PORT in ln and "REDIRECT" in ln for ln in once), once
    pod.rules("install")
    assert pod.nat() == once
    st = pod.rules("status")
    assert "REDIRECT --to-ports %d" % LEVEE_PORT in st.stdout
    # installed, but not for these ports
    other = pod.sh(pod.pod, "sh", RULES, "status", "--app-ports", "9090", "--levee-port", str(LEVEE_PORT),
                   "--uid", str(LEVEE_UID), check=False)
    assert other.returncode == 1 and "not as these arguments say" in other.stderr


def test_remove_restores_direct_traffic(rules):
    pod = rules
    before = pod.nat()
    pod.rules("install")
    assert hdr(pod.client_get("/echo/t3"), "Cache-Status") is not None
    pod.rules("remove")
    assert pod.nat() == before
    assert pod.rules("status", check=False).returncode == 1
    mark = pod.mark()
    r = pod.client_get("/echo/t3")
    assert r.status == 200
    assert cache_status_core(hdr(r, "Cache-Status")) is None and hdr(r, "Via") is None
    seen = pod.origin_requests(mark, "/echo/t3")
    assert len(seen) == 1 and seen[0]["peer"] == CLIENT_IP
    # removing twice is no error
    pod.rules("remove")


def test_connection_straight_to_levee_is_served(rules):
    """Not redirected: the original destination is levee's own listener,
    and the request is served as usual, without orig_dst."""
    pod = rules
    redirected = pod.metric("levee_connections_redirected_total")
    r = pod.get(pod.client, POD_IP, LEVEE_PORT, "/echo/t4")
    assert r.status == 200 and cache_status_core(hdr(r, "Cache-Status")) == "levee; fwd=miss; stored"
    assert pod.metric("levee_connections_redirected_total") == redirected
    logged = wait_until(lambda: pod.access_lines("/echo/t4") or None, 5 * WAIT_SCALE, msg="access log")
    assert logged[0]["client"] == CLIENT_IP and "orig_dst" not in logged[0]


def test_outbound_local_excludes_levee_by_uid(rules):
    """--outbound-local: the pod's other processes reach the app through
    levee too, while levee's own upstream connections (its UID) do not
    come back to it. (The test's own calls to the app's control paths
    would be redirected too: they come before and after the rules.)"""
    pod = rules
    mark = pod.mark()
    pod.rules("install", "--outbound-local")
    out = pod.nat()
    loops = pod.metric("levee_loops_refused_total")
    a = pod.get(pod.pod, "127.0.0.1", APP_PORT, "/echo/t5")  # the test runs as root, not LEVEE_UID
    assert a.status == 200 and cache_status_core(hdr(a, "Cache-Status")) == "levee; fwd=miss; stored"
    b = pod.get(pod.pod, "127.0.0.1", APP_PORT, "/echo/t5")
    assert cache_status_core(hdr(b, "Cache-Status")) == "levee; hit"
    assert pod.metric("levee_loops_refused_total") == loops
    pod.rules("remove")
    seen = pod.origin_requests(mark, "/echo/t5")
    assert len(seen) == 1 and seen[0]["peer"] == "127.0.0.1", seen
    # only local destinations: a service elsewhere on the app's port is
    # not the app, and is not redirected
    assert any("--dst-type LOCAL" in ln and "--dport %d" % APP_PORT in ln for ln in out), out
    assert any("--uid-owner %d" % LEVEE_UID in ln and "RETURN" in ln for ln in out), out


def test_rules_without_uid_exclusion_loop_once_then_508(rules):
    """A hand-made rule that redirects levee's own upstream connection back
    to it: the request comes back with levee's own Via, is refused with 508
    at once, and that 508 is the client's answer; nothing storms."""
    pod = rules
    pod.rules("install")
    mark = pod.mark()
    pod.sh(pod.pod, "iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", "127.0.0.1",
           "--dport", str(APP_PORT), "-j", "REDIRECT", "--to-ports", str(LEVEE_PORT))
    loops = pod.metric("levee_loops_refused_total")
    for i in range(3):
        t0 = time.monotonic()
        r = pod.client_get("/echo/t6-%d" % i)
        assert r.status == 508, r
        assert hdr(r, "X-Levee-Reason") == "loop-detected"
        assert time.monotonic() - t0 < 2 * WAIT_SCALE
    # one refusal per request: the loop went round once, not on and on
    assert pod.metric("levee_loops_refused_total") == loops + 3
    pod.sh(pod.pod, "iptables", "-t", "nat", "-F", "OUTPUT")
    with netns(pod.pod):
        evs = pod.origin.events(mark)
    assert not [e for e in evs if e["event"] == "request"], "the app was reached"



def test_proxy_protocol_gives_the_app_the_client_and_where_it_dialled(rules):
    """[upstream] proxy_protocol = v1 in transparent mode: the PROXY line
    carries the client's own address and the original destination, so an
    app that speaks it sees what it saw before levee was put in front."""
    pod = rules
    pod.rules("install")
    lv = pod.levee
    sections = {k: dict(v) for k, v in lv.sections.items()}
    sections.setdefault("upstream", {})["proxy_protocol"] = "v1"

    def reload(secs):
        lv.write_policy(sections=secs)
        with netns(pod.pod):
            r = lv.admin_request("POST", "/reload")
        assert r.status == 200, r.body
    reload(sections)
    try:
        mark = pod.mark()
        r = pod.client_get("/echo/t7")
        assert r.status == 200 and cache_status_core(hdr(r, "Cache-Status")) == "levee; fwd=miss; stored"
        with netns(pod.pod):
            lines = [e for e in pod.origin.events(mark) if e["event"] == "proxy"]
        assert [e["line"] for e in lines] == [
            "PROXY TCP4 %s %s %d %d" % (CLIENT_IP, POD_IP, r.client_port, APP_PORT)]
    finally:
        sections["upstream"].pop("proxy_protocol")
        reload(sections)

# The script's refusals need neither root nor namespaces: they come before
# it touches iptables.
BAD_ARGS = [
    ([], 2, "no action"),
    (["frob"], 2, "unknown action 'frob'"),
    (["install", "--levee-port", "15006", "--uid", "10101"], 2, "--app-ports is required"),
    (["install", "--app-ports", "8080", "--uid", "10101"], 2, "--levee-port is required"),
    (["install", "--app-ports", "8080", "--levee-port", "15006"], 2, "--uid is required"),
    (["install", "--app-ports", "8080", "--levee-port", "15006", "--uid", "abc"], 2, "not a numeric UID"),
    (["install", "--app-ports", "8080", "--levee-port", "15006", "--uid", "0"], 2, "--uid 0"),
    (["install", "--app-ports", "0", "--levee-port", "15006", "--uid", "1"], 2, "'0' is not a port"),
    (["install", "--app-ports", "080", "--levee-port", "15006", "--uid", "1"], 2, "'080' is not a port"),
    (["install", "--app-ports", "65536", "--levee-port", "15006", "--uid", "1"], 2, "'65536' is not a port"),
    (["install", "--app-ports", "8080,,8081", "--levee-port", "15006", "--uid", "1"], 2, "empty entry"),
    (["install", "--app-ports", "8080,", "--levee-port", "15006", "--uid", "1"], 2, "empty entry"),
    (["install", "--app-ports", "8080,8080", "--levee-port", "15006", "--uid", "1"], 2, "listed twice"),
    (["install", "--app-ports", "8080,15006", "--levee-port", "15006", "--uid", "1"], 2, "levee's own port"),
    (["install", "--app-ports", "8080", "--levee-port", "x", "--uid", "1"], 2, "'x' is not a port"),
    (["install", "--app-ports", "8080", "--levee-port", "15006", "--uid", "1", "--frob"], 2,
     "unknown argument '--frob'"),
    (["install", "--app-ports"], 2, "--app-ports needs a value"),
]


@pytest.mark.parametrize("args,rc,msg", BAD_ARGS, ids=[" ".join(a) or "(none)" for a, _, _ in BAD_ARGS])
def test_script_refuses_bad_arguments(args, rc, msg):
    p = run("sh", RULES, *args, check=False)
    assert p.returncode == rc, (p.returncode, p.stderr)
    assert msg in p.stderr, p.stderr
    assert "usage: levee-transparent" in p.stderr


def test_script_needs_root_and_iptables():
    good = ["install", "--app-ports", "8080", "--levee-port", "15006", "--uid", "10101"]
    env = dict(os.environ, IPTABLES="/nonexistent/iptables")
    if os.geteuid() == 0:
        p = subprocess.run(["sh", RULES] + good, env=env, capture_output=True, text=True, timeout=30)
        assert p.returncode == 1 and "/nonexistent/iptables not found" in p.stderr, p.stderr
        if shutil.which("setpriv"):
            p = run("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", RULES, *good,
                    check=False)
            assert p.returncode == 1 and "must run as root" in p.stderr, p.stderr
    else:
        p = run("sh", RULES, *good, check=False)
        assert p.returncode == 1 and "must run as root" in p.stderr, p.stderr


def test_remove_takes_hand_written_jumps_with_a_quoted_comment():
    """remove also deletes jumps to its chains that someone wrote by hand,
    without the script's comment. One whose comment holds a blank
    (iptables -S prints it quoted) must go too, and rules of others stay:
    else remove fails half-way and the redirect stays in force."""
    why = _missing()
    if why:
        _skip_or_fail(why)
    ns = "lv-rm-%d" % os.getpid()
    run("ip", "netns", "add", ns)
    try:
        def sh(*cmd, check=True):
            return run("ip", "netns", "exec", ns, *cmd, check=check)
        sh("sh", RULES, "install", "--app-ports", str(APP_PORT), "--levee-port", str(LEVEE_PORT),
           "--uid", str(LEVEE_UID), "--outbound-local")
        sh("iptables", "-t", "nat", "-I", "PREROUTING", "-p", "tcp", "-m", "comment", "--comment", "by hand",
           "-j", "LEVEE_INBOUND")
        sh("iptables", "-t", "nat", "-A", "OUTPUT", "-m", "comment", "--comment", "a b", "-j", "LEVEE_OUTPUT")
        sh("iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "--dport", "1", "-j", "ACCEPT")
        p = sh("sh", RULES, "remove", check=False)
        assert p.returncode == 0, p.stderr
        left = sh("iptables", "-t", "nat", "-S").stdout.splitlines()
        assert [ln for ln in left if not ln.startswith("-P ")] == ["-A OUTPUT -p tcp -m tcp --dport 1 -j ACCEPT"], left
    finally:
        run("ip", "netns", "delete", ns, check=False)
