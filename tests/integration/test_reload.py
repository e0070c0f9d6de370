"""Policy reload: SIGHUP, file change without a signal, Kubernetes ConfigMap
symlink swaps; a bad file keeps the old policy (BRIEF, "Who uses it")."""
import copy
import json
import os
import re
import shutil
import signal

import pytest

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


def test_a_refusal_quoting_bytes_that_are_not_utf8_keeps_the_json_valid(levee_factory):
    """A policy file written in Latin-1 whose bad value is quoted in the
    reload's error: /reload and /status are JSON, so UTF-8, all the same
    (the byte as its \\u00XX), until the next good reload and after."""
    lv = levee_factory()
    with open(lv.policy_path, "rb") as f:
        good = f.read()
    with open(lv.policy_path, "wb") as f:
        f.write(good.replace(b"[levee]\n", b"[levee]\naccess_log_fields = caf\xe9\n", 1))
    r = lv.admin_request("POST", "/reload")
    assert r.status == 422, r
    errors = json.loads(r.body)["errors"]
    assert any("'caf\u00e9' is not a field" in e for e in errors), errors
    st = json.loads(lv.admin_get("/status")[2])
    assert "caf\u00e9" in json.dumps(st, ensure_ascii=False), st


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


def policy_status(lv):
    return lv.status()["policy"]


def test_restoring_the_good_file_clears_the_failure(levee_factory):
    """A bad edit, then the last good file put back: the file equals the
    running policy, so nothing is swapped, but the attempt succeeds and the
    failure (an alert on levee_policy_last_reload_success) clears."""
    lv = levee_factory({"limits": {"header_bytes": "8KiB", "uri_bytes": "1KiB"}})
    with open(lv.policy_path, "rb") as f:
        good = f.read()
    for how in ("file change", "SIGHUP"):
        err0, same0 = reloads(lv, "error"), reloads(lv, "unchanged")
        lv.write_policy(render_policy(with_limits(lv, header_bytes="banana")), atomic=True)
        if how == "SIGHUP":
            lv.signal(signal.SIGHUP)
        wait_until(lambda: reloads(lv, "error") > err0, RELOAD_DEADLINE, msg="the bad file to be refused (%s)" % how)
        st = policy_status(lv)
        assert st["last_reload_ok"] is False and st["last_reload"] == "refused", st
        assert "header_bytes" in st["last_error"], st
        assert lv.metric("levee_policy_last_reload_success") == 0
        lv.write_policy(good.decode(), atomic=True)
        if how == "SIGHUP":
            lv.signal(signal.SIGHUP)
        wait_until(lambda: policy_status(lv)["last_reload_ok"], RELOAD_DEADLINE,
                   msg="the restored file to clear the failure (%s)" % how)
        st = policy_status(lv)
        assert st["last_reload"] == "unchanged" and st["last_error"] == "", st
        assert checksum_is(lv, good)
        assert lv.metric("levee_policy_last_reload_success") == 1
        assert reloads(lv, "unchanged") > same0


def test_sighup_logs_its_outcome(levee_factory):
    lv = levee_factory({"limits": {"header_bytes": "8KiB", "uri_bytes": "1KiB"}})

    def sighup_then_log(pattern):
        lv.signal(signal.SIGHUP)
        return wait_until(lambda: re.search(pattern, lv.stderr()), RELOAD_DEADLINE, msg="a log line %r" % pattern)

    sighup_then_log(r"policy reload \(SIGHUP\): \S*policy\.ini unchanged \(checksum [0-9a-f]{16}\)")
    data = lv.write_policy(sections=with_limits(lv, header_bytes="4KiB"), atomic=True)
    # the file watch may apply it first; then SIGHUP finds it unchanged
    sighup_then_log(r"policy reload \((SIGHUP|file change)\): applied \S*policy\.ini \(checksum %s\)"
                    % fnv1a64_hex(data))
    lv.write_policy(render_policy(with_limits(lv, header_bytes="banana")), atomic=True)
    sighup_then_log(r"policy reload \((SIGHUP|file change)\): refused \S*policy\.ini with 1 error\(s\); "
                    r"still running checksum %s" % fnv1a64_hex(data))


def symlinked_policy(lv):
    """prepare= for levee_factory: the policy path is a symlink into another
    directory, which levee does not watch, so that only SIGHUP or POST
    /reload can apply a change to it. Returns where the real file is."""
    real = os.path.join(lv.workdir, "elsewhere", "real.ini")
    os.mkdir(os.path.dirname(real))
    os.replace(lv.policy_path, real)
    os.symlink(real, lv.policy_path)
    lv.real_policy = real


def test_post_reload_answers_each_outcome(levee_factory):
    lv = levee_factory({"limits": {"header_bytes": "8KiB", "uri_bytes": "1KiB"}}, prepare=symlinked_policy)

    def post_reload():
        r = lv.admin_request("POST", "/reload")
        assert r.header("Content-Type") == "application/json", r
        return r.status, json.loads(r.body)

    with open(lv.real_policy, "rb") as f:
        first = f.read()
    assert post_reload() == (200, {"result": "unchanged", "checksum": fnv1a64_hex(first), "restart_keys": []})

    text = render_policy(with_limits(lv, header_bytes="4KiB"))
    with open(lv.real_policy, "w") as f:
        f.write(text)
    assert big_header_status(lv) == 200, "the unwatched file was applied before POST /reload"
    assert post_reload() == (200, {"result": "applied", "checksum": fnv1a64_hex(text.encode()), "restart_keys": []})
    assert big_header_status(lv) == 431

    bad = render_policy(with_limits(lv, header_bytes="banana"))
    with open(lv.real_policy, "w") as f:
        f.write(bad)
    status, doc = post_reload()
    line = bad.splitlines().index("header_bytes = banana") + 1
    assert status == 422 and doc["result"] == "refused", (status, doc)
    assert len(doc["errors"]) == 1 and re.match(r"\S*policy\.ini:%d: \[limits\] header_bytes: \S" % line,
                                                doc["errors"][0]), doc
    assert big_header_status(lv) == 431, "a refused file changed the running policy"
    assert policy_status(lv)["last_reload_ok"] is False


def test_an_empty_file_is_refused(levee_factory):
    """A file rewritten in place is empty for a moment: a reload that reads it
    then must not swap built-in defaults in for the policy."""
    lv = levee_factory({"limits": {"header_bytes": "8KiB", "uri_bytes": "1KiB"}})
    good = lv.write_policy(sections=with_limits(lv, header_bytes="4KiB"), atomic=True)
    wait_until(lambda: checksum_is(lv, good), RELOAD_DEADLINE, msg="the 4 KiB limit to apply")
    refused = reloads(lv, "error")
    open(lv.policy_path, "wb").close()  # the watch sees this close
    r = lv.admin_request("POST", "/reload")
    doc = json.loads(r.body)
    assert r.status == 422 and doc["errors"] == ["%s:1: the file is empty (still being written?)" % lv.policy_path], doc
    refused = reloads(lv, "error")
    wait_until(lambda: reloads(lv, "error") > refused, RELOAD_DEADLINE, msg="the watch refusing it too")
    assert checksum_is(lv, good) and big_header_status(lv) == 431, "an empty file replaced the running policy"
    # the writer finishes: the watch applies the whole file
    with open(lv.policy_path, "wb") as f:
        f.write(good)
    wait_until(lambda: policy_status(lv)["last_reload_ok"] is True, RELOAD_DEADLINE, msg="the rewritten file")
    assert checksum_is(lv, good) and big_header_status(lv) == 431


def test_restart_only_key_shows_a_pending_restart(levee_factory):
    lv = levee_factory({"levee": {"workers": "1"}})
    started = fnv1a64_hex(open(lv.policy_path, "rb").read())
    s = copy.deepcopy(lv.sections)
    s["levee"]["workers"] = "2"
    s.setdefault("limits", {})["headers"] = "50"
    data = lv.write_policy(sections=s, atomic=True)
    wait_until(lambda: checksum_is(lv, data), RELOAD_DEADLINE, msg="the file with workers = 2 to apply")
    doc = lv.status()
    st = doc["policy"]
    assert doc["workers"] == 1, "workers changed without a restart"
    assert st["restart_pending"] is True and st["restart_keys"] == ["levee.workers"], st
    assert st["started_checksum"] == started and st["checksum"] == fnv1a64_hex(data), st
    assert st["last_reload"] == "applied" and st["last_reload_ok"] is True, st
    assert lv.metric("levee_policy_restart_pending") == 1
    assert re.search(r"\[levee\] workers changed but takes a restart", lv.stderr())

    s["levee"]["workers"] = "1"  # back to the running value
    data = lv.write_policy(sections=s, atomic=True)
    wait_until(lambda: checksum_is(lv, data), RELOAD_DEADLINE, msg="the file with workers = 1 to apply")
    st = policy_status(lv)
    assert st["restart_pending"] is False and st["restart_keys"] == [], st
    assert lv.metric("levee_policy_restart_pending") == 0


@pytest.mark.parametrize("away", ["removed", "moved"])
def test_watch_comes_back_with_the_directory(levee_factory, away):
    """The policy's directory removed (or moved away) and created again (a
    volume remount, config management): levee notices, watches the new
    directory, and reloads from it without a signal."""
    def in_conf_dir(lv):
        conf = os.path.join(lv.workdir, "conf")
        os.mkdir(conf)
        path = os.path.join(conf, "policy.ini")
        os.replace(lv.policy_path, path)
        lv.policy_path = path
        lv.args = [lv.args[0], "--policy", path]

    lv = levee_factory({"limits": {"header_bytes": "8KiB", "uri_bytes": "1KiB"}}, prepare=in_conf_dir)
    conf = os.path.dirname(lv.policy_path)
    if away == "removed":
        shutil.rmtree(conf)
    else:
        os.rename(conf, conf + ".old")
    # the reload the removal sets off finds no file; once it is done, only a
    # new watch can see the directory come back
    wait_until(lambda: policy_status(lv)["last_reload"] == "refused", RELOAD_DEADLINE,
               msg="a reload to find the file gone")
    wait_until(lambda: re.search(r"policy directory \S*conf is gone", lv.stderr()), RELOAD_DEADLINE,
               msg="levee to notice that the directory went away")
    assert lv.admin_get("/readyz")[0] == 200, "the running policy must stay"
    os.mkdir(conf)
    data = lv.write_policy(sections=with_limits(lv, header_bytes="4KiB"))
    wait_until(lambda: checksum_is(lv, data), RELOAD_DEADLINE, interval=0.05,
               msg="the policy in the recreated directory to apply")
    assert re.search(r"policy directory \S*conf is back; watching it again", lv.stderr())
    assert big_header_status(lv) == 431
    assert policy_status(lv)["last_reload_ok"] is True
    # and the new watch sees later edits
    data = lv.write_policy(sections=with_limits(lv, header_bytes="16KiB"), atomic=True)
    wait_until(lambda: checksum_is(lv, data), RELOAD_DEADLINE, interval=0.05,
               msg="an edit in the recreated directory to apply")
    assert big_header_status(lv) == 200
