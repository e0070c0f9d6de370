"""Policy reload: SIGHUP, file change without a signal, Kubernetes ConfigMap
symlink swaps; a bad file keeps the old policy (BRIEF, "Who uses it")."""
import copy
import os
import re
import shutil
import signal

from harness import fnv1a64_hex, render_policy, wait_until

RELOAD_DEADLINE = 6.0  # seconds for levee to notice a file change


def big_header_status(lv, size=6000):
    r = lv.get("/echo", [("X-Big", "a" * size)], close_wait=0)
    assert r is not None
    return r.status


def with_limits(lv, **limits):
    s = copy.deepcopy(lv.sections)
    s.setdefault("limits", {}).update(limits)
    return s


def checksum_is(lv, data):
    cs = lv.status()["policy"]["checksum"]
    return int(str(cs), 16) == int(fnv1a64_hex(data), 16)


def reloads(lv, result):
    return lv.metric("levee_policy_reloads_total", result=result) or 0


def test_initial_checksum_matches_file(levee):
    with open(levee.policy_path, "rb") as f:
        data = f.read()
    assert checksum_is(levee, data), (levee.status()["policy"], fnv1a64_hex(data))


def test_sighup_good_file(levee_factory):
    lv = levee_factory({"limits": {"header_bytes": "8KiB", "uri_bytes": "1KiB"}})
    assert big_header_status(lv) == 200
    ok0 = reloads(lv, "ok")
    data = lv.write_policy(sections=with_limits(lv, header_bytes="4KiB"), atomic=True)
    lv.signal(signal.SIGHUP)
    wait_until(lambda: big_header_status(lv) == 431, RELOAD_DEADLINE, interval=0.05,
               msg="the new header_bytes limit to apply after SIGHUP")
    wait_until(lambda: reloads(lv, "ok") > ok0, 3, msg="levee_policy_reloads_total{result=\"ok\"} to increase")
    assert checksum_is(lv, data)
    assert lv.get("/echo").status == 200


def test_sighup_bad_file_keeps_old_policy(levee_factory):
    lv = levee_factory({"limits": {"header_bytes": "8KiB", "uri_bytes": "1KiB"}})
    with open(lv.policy_path, "rb") as f:
        old = f.read()
    err0 = reloads(lv, "error")
    text = render_policy(with_limits(lv, header_bytes="banana"))
    line = text.splitlines().index("header_bytes = banana") + 1
    lv.write_policy(text, atomic=True)
    lv.signal(signal.SIGHUP)
    wait_until(lambda: reloads(lv, "error") > err0, RELOAD_DEADLINE,
               msg="levee_policy_reloads_total{result=\"error\"} to increase")
    assert lv.proc.poll() is None, "levee exited on a bad reload"
    msg = re.search(r"policy\.ini:(\d+): \[limits\] header_bytes: \S", lv.stderr())
    assert msg, "stderr lacks a 'file:line: [section] key: reason' message:\n%s" % lv.stderr()[-2000:]
    assert int(msg.group(1)) == line, "error names line %s, the bad key is on line %d" % (msg.group(1), line)
    # old policy still in force
    assert checksum_is(lv, old)
    assert big_header_status(lv) == 200
    assert lv.admin_get("/readyz")[0] == 200
    # a fixed file is taken again
    ok0 = reloads(lv, "ok")
    data = lv.write_policy(sections=with_limits(lv, header_bytes="4KiB"), atomic=True)
    lv.signal(signal.SIGHUP)
    wait_until(lambda: checksum_is(lv, data), RELOAD_DEADLINE, msg="the fixed policy to load")
    assert reloads(lv, "ok") > ok0
    assert big_header_status(lv) == 431


def test_file_change_detected_without_signal(levee_factory):
    lv = levee_factory({"limits": {"header_bytes": "8KiB", "uri_bytes": "1KiB"}})
    # 1. rewrite in place
    data = lv.write_policy(sections=with_limits(lv, header_bytes="4KiB"))
    wait_until(lambda: checksum_is(lv, data), RELOAD_DEADLINE, interval=0.05,
               msg="an in-place rewrite to be noticed without a signal")
    assert big_header_status(lv) == 431
    # 2. replace by rename (editors, config management): a new inode
    data = lv.write_policy(sections=with_limits(lv, header_bytes="16KiB"), atomic=True)
    wait_until(lambda: checksum_is(lv, data), RELOAD_DEADLINE, interval=0.05,
               msg="a rename-replaced file to be noticed without a signal")
    assert big_header_status(lv) == 200
    # 3. and the watch survived the rename
    data = lv.write_policy(sections=with_limits(lv, header_bytes="2KiB"))
    wait_until(lambda: checksum_is(lv, data), RELOAD_DEADLINE, interval=0.05,
               msg="a change after a rename to be noticed")
    assert big_header_status(lv, 3000) == 431


def test_bad_file_change_without_signal_keeps_old_policy(levee_factory):
    lv = levee_factory({"limits": {"header_bytes": "8KiB", "uri_bytes": "1KiB"}})
    with open(lv.policy_path, "rb") as f:
        old = f.read()
    err0 = reloads(lv, "error")
    lv.write_policy(render_policy(with_limits(lv, header_bytes="-3")), atomic=True)
    wait_until(lambda: reloads(lv, "error") > err0, RELOAD_DEADLINE, msg="the bad file to be noticed")
    assert checksum_is(lv, old)
    assert big_header_status(lv) == 200


def test_configmap_symlink_swap(levee_factory):
    state = {}

    def layout(lv):
        d = os.path.join(lv.workdir, "cm")
        os.mkdir(d)
        state["dir"] = d
        v1 = os.path.join(d, "..2026_v1")
        os.mkdir(v1)
        with open(os.path.join(v1, "policy.ini"), "w") as f:
            f.write(render_policy(with_limits(lv, header_bytes="8KiB")))
        os.symlink("..2026_v1", os.path.join(d, "..data"))
        os.symlink("..data/policy.ini", os.path.join(d, "policy.ini"))
        lv.policy_path = os.path.join(d, "policy.ini")
        lv.args = [lv.args[0], "--policy", lv.policy_path]

    lv = levee_factory({"limits": {"header_bytes": "8KiB", "uri_bytes": "1KiB"}}, prepare=layout)
    d = state["dir"]
    assert big_header_status(lv) == 200

    def swap(version, header_bytes, previous):
        vdir = os.path.join(d, "..2026_%s" % version)
        os.mkdir(vdir)
        text = render_policy(with_limits(lv, header_bytes=header_bytes)).encode()
        with open(os.path.join(vdir, "policy.ini"), "wb") as f:
            f.write(text)
        os.symlink("..2026_%s" % version, os.path.join(d, "..data_tmp"))
        os.rename(os.path.join(d, "..data_tmp"), os.path.join(d, "..data"))
        shutil.rmtree(os.path.join(d, previous))  # the kubelet removes the old version
        return text

    data = swap("v2", "4KiB", "..2026_v1")
    wait_until(lambda: checksum_is(lv, data), RELOAD_DEADLINE, interval=0.05,
               msg="a ConfigMap ..data symlink swap to be noticed")
    assert big_header_status(lv) == 431
    st = lv.status()["policy"]
    assert st["path"].endswith("policy.ini")
    data = swap("v3", "16KiB", "..2026_v2")
    wait_until(lambda: checksum_is(lv, data), RELOAD_DEADLINE, interval=0.05,
               msg="a second ConfigMap swap to be noticed")
    assert big_header_status(lv) == 200
