"""Command line (BRIEF, "Contract with the outside world": CLI, policy values)."""
import os
import re

from harness import LEVEE_BIN, fnv1a64_hex, free_port, render_policy, run_levee as run, wait_until


def test_version():
    rc, out = run(["--version"])
    assert rc == 0, out
    assert re.search(r"\d+\.\d+\.\d+", out), out


GOOD = """\
[levee]
listen = 127.0.0.1:15001
upstream = 127.0.0.1:8080
admin = 127.0.0.1:15000

[limits]
header_bytes = 16KiB
header_timeout = 2s

[upstream]
response_timeout = 1s

[route "api"]
prefix = /api/
"""


def test_check_good_file(tmp_path):
    p = tmp_path / "good.ini"
    p.write_text(GOOD)
    rc, out = run(["check", str(p)])
    assert rc == 0, out


def test_check_bad_file_reports_every_error(tmp_path):
    p = tmp_path / "bad.ini"
    text = GOOD.replace("header_bytes = 16KiB", "header_bytes = banana") \
               .replace("response_timeout = 1s", "response_timeout = 5 parsecs")
    p.write_text(text)
    lines = text.splitlines()
    l1 = lines.index("header_bytes = banana") + 1
    l2 = lines.index("response_timeout = 5 parsecs") + 1
    rc, out = run(["check", str(p)])
    assert rc == 1, (rc, out)
    assert re.search(r"bad\.ini:%d: \[limits\] header_bytes: \S" % l1, out), out
    assert re.search(r"bad\.ini:%d: \[upstream\] response_timeout: \S" % l2, out), out


def test_check_warnings_do_not_fail(tmp_path):
    p = tmp_path / "shadow.ini"
    p.write_text(GOOD + '\n[route "users"]\nmatch = /api/users/*\n')
    line = p.read_text().splitlines().index("match = /api/users/*") + 1
    rc, out = run(["check", str(p)])
    assert rc == 0, out
    assert re.search(r'^%s:%d: \[route "users"\] warning: never chosen: route "api" \(line \d+\) comes first'
                     % (re.escape(str(p)), line), out, re.M), out
    assert "ok (2 routes, 1 warning," in out, out


def test_check_missing_file(tmp_path):
    rc, out = run(["check", str(tmp_path / "nope.ini")])
    assert rc != 0 and "nope.ini" in out, (rc, out)


def test_check_unset_env_var_without_default(tmp_path):
    p = tmp_path / "env.ini"
    p.write_text("[levee]\nupstream = ${LEVEE_IT_SURELY_UNSET}\n")
    env = {k: v for k, v in os.environ.items() if k != "LEVEE_IT_SURELY_UNSET"}
    rc, out = run(["check", str(p)], env=env)
    assert rc == 1, out
    assert re.search(r"env\.ini:2: \[levee\] upstream: \S", out), out


def test_env_expansion(levee_factory, origin):
    def layout(lv):
        s = dict(lv.sections)
        s["levee"] = dict(s["levee"], upstream="${LEVEE_IT_UP}")
        s["limits"] = {"header_bytes": "${LEVEE_IT_UNSET_HB:-4KiB}", "uri_bytes": "1KiB"}
        with open(lv.policy_path, "w") as f:
            f.write(render_policy(s))
        lv.env["LEVEE_IT_UP"] = origin.addr
        lv.env.pop("LEVEE_IT_UNSET_HB", None)

    lv = levee_factory(prepare=layout)
    assert lv.get("/echo").status == 200
    r = lv.get("/echo", [("X-Big", "a" * 6000)], close_wait=1)
    assert r.status == 431, "${VAR:-default} not applied: %r" % r


def test_run_without_policy_file(levee_factory, origin):
    def cli(lv):
        lv.args = [LEVEE_BIN, "--upstream", origin.addr, "--listen", "127.0.0.1:%d" % lv.port,
                   "--admin", "127.0.0.1:%d" % lv.admin_port]

    lv = levee_factory(prepare=cli)
    r = lv.get("/echo")
    assert r.status == 200 and r.json()["target"] == "/echo"
    pol = lv.status()["policy"]
    assert pol["path"] in ("", None), pol
    assert int(str(pol["checksum"]), 16) == int(fnv1a64_hex(b""), 16), pol


def test_cli_overrides_policy(levee_factory, origin):
    other = free_port()

    def override(lv):
        # the file says port `other`, the command line says lv.port
        s = dict(lv.sections)
        s["levee"] = dict(s["levee"], listen="127.0.0.1:%d" % other, upstream="127.0.0.1:1")
        with open(lv.policy_path, "w") as f:
            f.write(render_policy(s))
        lv.args += ["--listen", "127.0.0.1:%d" % lv.port, "--upstream", origin.addr]

    lv = levee_factory(prepare=override)
    assert lv.get("/echo").status == 200
    from harness import connect_refused
    assert connect_refused(other), "levee listens on the policy's port although --listen overrides it"
