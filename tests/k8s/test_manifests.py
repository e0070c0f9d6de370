"""k8s/: every kustomization builds, validates against the schemas kept in
the repo, and matches what levee actually uses: its ports, probe paths,
policy mount, environment, drain timing, outbox, security context, the
transparent rules' arguments and the sizing formula. The probes are asked
of a real levee started with each target's own policy."""
import os
import re
import signal
import subprocess
import time

import pytest

from kube import (LEVEE_BIN, SCHEMAS, TARGETS, TRANSPARENT, built, docs, levee_knows, one, parse_quantity,
                      pod, pod_security_violations, port_of, sizing, validate)


def needs_transparent(target):
    if target == TRANSPARENT and not levee_knows("levee", "transparent"):
        pytest.skip("this levee has no [levee] transparent key yet (it comes with transparent mode)")


def duration_s(text):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)?", text)
    assert m and (m.group(2) or m.group(1) == "0"), "not a duration: %r" % text
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 0}[m.group(2)]


# -- building and validating


def test_every_target_builds(target):
    kinds = sorted(d["kind"] for d in docs(target))
    assert kinds == ["ConfigMap", "Deployment", "PodDisruptionBudget", "Service"], kinds


def test_schemas_are_kept_in_the_repo():
    names = sorted(os.listdir(SCHEMAS))
    assert {"deployment-apps-v1.json", "service-v1.json", "configmap-v1.json",
            "poddisruptionbudget-policy-v1.json"} <= set(names), names


def test_kubeconform_accepts_every_target(target):
    code, out = validate(built(target))
    assert code == 0, out
    assert "Invalid: 0, Errors: 0, Skipped: 0" in out, out


@pytest.mark.parametrize("what,change,expect", [
    ("a misspelt field", ("readinessProbe:", "readinesProbe:"), "additional properties 'readinesProbe'"),
    ("a port as text", ("containerPort: 15002", "containerPort: probe"), "containerPort"),
    ("a kind without a schema", ("kind: PodDisruptionBudget", "kind: PodDisruptionBudgt"), "could not find schema"),
    ("a count as text", ("replicas: 2", "replicas: two"), "/spec/replicas"),
])
def test_kubeconform_rejects_a_broken_manifest(what, change, expect):
    text = built("base")
    assert change[0] in text, "the base no longer has %r to break" % change[0]
    code, out = validate(text.replace(change[0], change[1], 1))
    assert code != 0, "kubeconform accepted %s:\n%s" % (what, out)
    assert expect in out, out


# -- the pod's shape


def test_levee_is_a_native_sidecar(target):
    p = pod(target)
    assert p.levee in p.inits, "levee must be an init container (a native sidecar)"
    assert p.levee.get("restartPolicy") == "Always"
    assert p.levee.get("startupProbe"), "without a startupProbe the app starts before levee is up"
    assert [c["name"] for c in p.apps] == ["app"]
    # every init container before levee runs to completion first
    for c in p.inits[:p.inits.index(p.levee)]:
        assert "restartPolicy" not in c, c["name"]
    if target == TRANSPARENT:
        assert [c["name"] for c in p.inits] == ["levee-init", "levee"]


def test_ports_match_the_policy(target):
    p = pod(target)
    policy = p.policy()["levee"]
    ports = p.ports(p.levee)
    assert ports == {"traffic": port_of(policy["listen"]), "probe": port_of(policy["probe"]),
                     "admin": port_of(policy["admin"])}, (ports, policy)
    assert policy["admin"].startswith("127.0.0.1:"), "the admin listener must stay on loopback"
    assert policy["probe"].startswith("0.0.0.0:"), "the kubelet probes through the pod IP"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        got = p.resolve_port(p.levee, p.levee[probe]["httpGet"]["port"])
        assert got == port_of(policy["probe"]), "%s is on port %s" % (probe, got)
    ann = p.template["metadata"]["annotations"]
    assert ann["prometheus.io/scrape"] == "true"
    assert int(ann["prometheus.io/port"]) == port_of(policy["probe"])
    assert ann["prometheus.io/path"] == "/metrics"


def test_service_targets_levee_or_the_redirected_app_port(target):
    p = pod(target)
    svc = one(target, "Service")
    policy = p.policy()["levee"]
    labels = p.template["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in svc["spec"]["selector"].items())
    [sp] = svc["spec"]["ports"]
    if target == TRANSPARENT:
        app = p.container("app")
        assert sp["targetPort"] == p.ports(app)["app"] == port_of(policy["upstream"])
    else:
        assert sp["targetPort"] == port_of(policy["listen"])
    exposed = {sp["targetPort"]}
    assert port_of(policy["probe"]) not in exposed and port_of(policy["admin"]) not in exposed


def test_pdb_covers_the_pods(target):
    p = pod(target)
    pdb = one(target, "PodDisruptionBudget")
    labels = p.template["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in pdb["spec"]["selector"]["matchLabels"].items())
    assert pdb["spec"].get("maxUnavailable") == 1


def test_rollout_never_lowers_capacity(target):
    """docs/runbooks/upgrading.md: a new pod is ready before an old one goes."""
    strategy = pod(target).deployment["spec"].get("strategy", {})
    assert strategy.get("type") == "RollingUpdate", strategy
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0, strategy
    assert strategy["rollingUpdate"]["maxSurge"] >= 1, strategy


def test_policy_is_mounted_as_a_directory(target):
    p = pod(target)
    cm, mount = p.configmap()
    assert mount["mountPath"].rstrip("/") == os.path.dirname(p.policy_path())
    assert "subPath" not in mount, "the kubelet never updates a subPath mount"
    assert mount.get("readOnly") is True
    assert list(cm["data"]) == [os.path.basename(p.policy_path())]


def test_environment_provides_every_variable(target):
    p = pod(target)
    env = p.levee.get("env", [])
    by_name = {e["name"]: e for e in env}
    for ref in re.finditer(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}", p.policy_text()):
        if ref.group(2) is None:
            assert ref.group(1) in by_name, "the policy needs ${%s}, which the container lacks" % ref.group(1)
    assert by_name["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert by_name["SERVICE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"].startswith("metadata.labels[")
    token = by_name["LEVEE_ADMIN_TOKEN"]
    assert "value" not in token and "secretKeyRef" in token["valueFrom"], "the admin token comes from a Secret"
    # every expansion resolves with the pod's environment
    p.policy()


def test_each_overlay_does_what_it_says():
    sidecar = pod("overlays/sidecar").policy()
    for addr in (sidecar["redis"]["address"], sidecar["kafka"]["brokers"]):
        host = addr.rsplit(":", 1)[0]
        assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", host), "%s is not a Service name" % addr
    for target in ("overlays/demo", "base"):
        policy = pod(target).policy()
        assert policy["redis"]["address"] == "none" and policy["kafka"]["brokers"] == "", target
    demo = pod("overlays/demo")
    assert demo.deployment["spec"]["replicas"] == 1
    assert not demo.container("app")["image"].startswith("registry.example/"), "the demo must run as it is"
    token = {e["name"]: e for e in demo.levee["env"]}["LEVEE_ADMIN_TOKEN"]
    assert token["valueFrom"]["secretKeyRef"]["optional"] is True, "the demo must run without the Secret"
    for target in TARGETS:
        caching = [h for h, kv in pod(target).policy().items() if h.startswith("route ") and kv.get("cache_ttl")]
        assert caching, "k8s/%s: no route caches" % target
    writes = [kv for h, kv in sidecar.items() if h.startswith("route ") and kv.get("invalidate")
              and set(kv.get("methods", "").replace(" ", "").split(",")) & {"POST", "PUT", "PATCH", "DELETE"}]
    assert writes, "the sidecar's writes purge nothing across replicas"


def test_drain_fits_the_grace_period(target):
    p = pod(target)
    policy = p.policy()["levee"]
    grace = p.spec["terminationGracePeriodSeconds"]
    # the app is stopped first (its preStop, then SIGTERM); levee, a sidecar,
    # gets its preStop and SIGTERM once the app has exited
    app_stop = max(c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0) for c in p.apps)
    assert app_stop > 0, "without a preStop the app stops while the endpoints still send traffic"
    levee_stop = p.levee.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    total = app_stop + levee_stop + duration_s(policy["drain_delay"]) + duration_s(policy["drain_timeout"])
    assert total < grace, "preStop %ss + drain %ss does not fit in %ss" % (app_stop + levee_stop, total, grace)


def test_idle_keepalive_ends_within_the_apps_prestop(target):
    """levee, a native sidecar, hears of the pod's end only once the app has
    exited, so it cannot tell its keep-alive clients to go while the app
    still serves. Its idle timeout shorter than the app's preStop makes
    every idle client connection close while the app is up: a client that
    then reconnects reaches a pod the endpoints still list."""
    p = pod(target)
    app_stop = max(c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0) for c in p.apps)
    idle = duration_s(p.policy().get("limits", {}).get("idle_timeout", "60s"))
    assert idle < app_stop, "[limits] idle_timeout %ss is not below the app's preStop %ss" % (idle, app_stop)


def test_levee_check_passes(target, tmp_path):
    needs_transparent(target)
    p = pod(target)
    path = str(tmp_path / os.path.basename(p.policy_path()))
    with open(path, "w") as f:
        f.write(p.policy_text())
    env = {"PATH": os.environ.get("PATH", "")}
    env.update(p.env())
    r = subprocess.run([LEVEE_BIN, "check", path], capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert ": ok (" in r.stdout and "0 warnings" in r.stdout, r.stdout + r.stderr


def test_outbox_is_on_a_writable_volume(target):
    p = pod(target)
    policy = p.policy()
    defaults = sizing.levee_defaults(LEVEE_BIN)
    outbox = policy.get("kafka", {}).get("outbox", defaults["kafka"]["outbox"])
    assert outbox.startswith("/var/lib/levee/outbox")
    assert p.levee["securityContext"]["readOnlyRootFilesystem"] is True
    m = p.mount_for(p.levee, outbox)
    assert m is not None, "the outbox %s would be on the read-only root" % outbox
    assert not m.get("readOnly"), "the outbox's volume is mounted read-only"
    vol = p.volumes[m["name"]]
    assert "emptyDir" in vol or "persistentVolumeClaim" in vol, vol
    if "emptyDir" in vol:
        limit = parse_quantity(vol["emptyDir"]["sizeLimit"])
        outbox_max = sizing.parse_size(policy.get("kafka", {}).get("outbox_max", defaults["kafka"]["outbox_max"]))
        assert limit >= outbox_max, "the volume (%d) is smaller than outbox_max (%d)" % (limit, outbox_max)


def test_security_context(target):
    p = pod(target)
    sc = p.spec["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 10101 and sc["runAsGroup"] == 10101
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    lsc = p.levee["securityContext"]
    assert lsc["runAsUser"] == 10101 and lsc["runAsGroup"] == 10101 and lsc["runAsNonRoot"] is True
    assert lsc["readOnlyRootFilesystem"] is True and lsc["allowPrivilegeEscalation"] is False
    assert lsc["capabilities"] == {"drop": ["ALL"]}
    assert lsc["seccompProfile"] == {"type": "RuntimeDefault"}


def test_pod_security_level(target):
    found = pod_security_violations(pod(target))
    if target != TRANSPARENT:
        assert found == [], "k8s/%s does not meet the restricted Pod Security Standard: %s" % (target, found)
        return
    # transparent: only the rules' init container, and it needs exactly this
    assert {c for _, c, _ in found} == {"levee-init"}, found
    assert sorted(found) == [("baseline", "levee-init", "adds capabilities ['NET_ADMIN', 'NET_RAW']"),
                             ("restricted", "levee-init", "adds capabilities ['NET_ADMIN', 'NET_RAW']"),
                             ("restricted", "levee-init", "runAsNonRoot is not true"),
                             ("restricted", "levee-init", "runAsUser 0")], found


def test_pod_security_check_can_fail():
    """The checker above finds what the restricted level forbids."""
    p = pod("base")
    saved = dict(p.levee["securityContext"])
    try:
        p.levee["securityContext"]["allowPrivilegeEscalation"] = True
        del p.levee["securityContext"]["seccompProfile"]
        p.spec["securityContext"]["seccompProfile"] = {"type": "Unconfined"}
        found = pod_security_violations(p)
    finally:
        p.levee["securityContext"].clear()
        p.levee["securityContext"].update(saved)
        p.spec["securityContext"]["seccompProfile"] = {"type": "RuntimeDefault"}
    assert ("restricted", "levee", "allowPrivilegeEscalation is not false") in found
    assert ("baseline", "levee", "seccompProfile Unconfined") in found
    assert pod_security_violations(pod("base")) == []


def test_transparent_rules_match_levee():
    p = pod(TRANSPARENT)
    init = p.container("levee-init")
    assert init["image"].split(":")[0].endswith("levee-init")
    assert init["command"] == ["/usr/local/bin/levee-transparent"]
    args = init["args"]
    assert args[0] == "install"
    opts = dict(zip(args[1::2], args[2::2]))
    assert set(opts) == {"--app-ports", "--levee-port", "--uid"}, args
    policy = p.policy()["levee"]
    svc = one(TRANSPARENT, "Service")
    assert int(opts["--uid"]) == p.effective(p.levee, "runAsUser") == 10101
    assert int(opts["--uid"]) != p.effective(p.container("app"), "runAsUser"), "the app's traffic would be exempt"
    app_ports = [int(x) for x in opts["--app-ports"].split(",")]
    assert svc["spec"]["ports"][0]["targetPort"] in app_ports
    assert port_of(policy["upstream"]) in app_ports and policy["upstream"].startswith("127.0.0.1:")
    assert int(opts["--levee-port"]) == port_of(policy["listen"]) == p.ports(p.levee)["traffic"] == 15006
    assert policy.get("transparent") == "on"
    assert set(init["securityContext"]["capabilities"]["add"]) == {"NET_ADMIN", "NET_RAW"}


# -- sizing


def test_resources_follow_the_sizing_formula(target):
    p = pod(target)
    _, want = sizing.size(p.policy(), sizing.levee_defaults(LEVEE_BIN))
    res = p.levee["resources"]
    for kind in ("requests", "limits"):
        got_cpu = round(parse_quantity(res[kind]["cpu"]) * 1000)
        got_mem = parse_quantity(res[kind]["memory"])
        assert (got_cpu, got_mem) == (want[kind]["cpu"], want[kind]["memory"]), (
            "k8s/%s: levee %s are cpu %s, memory %s; docs/sizing.md gives cpu %s, memory %s" % (
                target, kind, res[kind]["cpu"], res[kind]["memory"], sizing.quantity("cpu", want[kind]["cpu"]),
                sizing.quantity("memory", want[kind]["memory"])))


# -- a real levee on each target's policy


def _policy_dir(p, workdir):
    """The ConfigMap laid out as the kubelet mounts it (each key a symlink
    through ..data to a timestamped directory), with the outbox moved under
    `workdir` (the pod's /var/lib/levee is not here). Returns the path of
    --policy and publish(version, {key: text}), the kubelet's update."""
    cm, _ = p.configmap()
    d = os.path.join(workdir, "etc-levee")
    os.makedirs(d)
    outbox = os.path.join(workdir, "outbox")

    def publish(version, data):
        ts = os.path.join(d, "..2026_12_02_%02d" % version)
        os.makedirs(ts)
        for key, text in data.items():
            text, n = re.subn(r"(?m)^outbox = \S+", "outbox = " + outbox, text)
            assert n <= 1
            with open(os.path.join(ts, key), "w") as f:
                f.write(text)
        os.symlink(os.path.basename(ts), os.path.join(d, "..data_tmp"))
        os.rename(os.path.join(d, "..data_tmp"), os.path.join(d, "..data"))
        for key in data:
            if not os.path.islink(os.path.join(d, key)):
                os.symlink(os.path.join("..data", key), os.path.join(d, key))
        return {k: open(os.path.join(ts, k), "rb").read() for k in data}

    publish(1, cm["data"])
    return os.path.join(d, os.path.basename(p.policy_path())), publish


@pytest.fixture(scope="module")
def origin(tmp_path_factory):
    from harness import Origin
    o = Origin(str(tmp_path_factory.mktemp("origin")))
    yield o
    o.stop()


def test_probes_answer_on_a_real_levee(target, origin, tmp_path):
    needs_transparent(target)
    from harness import Levee, fnv1a64_hex, free_port, wait_until
    p = pod(target)
    path, publish = _policy_dir(p, str(tmp_path))
    policy = p.policy()["levee"]
    lv = Levee(str(tmp_path), origin.addr, policy_path=path, env=p.env(), start=False)
    probe_port = free_port()
    lv.args += ["--listen", "127.0.0.1:%d" % lv.port, "--admin", "127.0.0.1:%d" % lv.admin_port,
                "--probe", "127.0.0.1:%d" % probe_port, "--upstream", origin.addr]
    try:
        lv.start()
        for name in ("startupProbe", "readinessProbe", "livenessProbe"):
            route = p.levee[name]["httpGet"]["path"]
            r = lv.admin_request("GET", route, port=probe_port)
            assert r.status == 200, "%s %s answered %s: %r" % (name, route, r.status, r.body)
        r = lv.admin_request("GET", p.template["metadata"]["annotations"]["prometheus.io/path"], port=probe_port)
        assert r.status == 200 and b"levee_" in r.body
        # the probe listener is not the admin one
        assert lv.admin_request("GET", "/status", port=probe_port).status == 404
        status = lv.status()
        assert status["service"] == p.template["metadata"]["labels"]["app.kubernetes.io/name"]
        assert status["workers"] == int(policy["workers"])
        # the kubelet's update of the mounted ConfigMap reaches levee
        key = os.path.basename(path)
        cm, _ = p.configmap()
        data = publish(2, {key: cm["data"][key] + "; a new version\n"})[key]
        wait_until(lambda: int(str(lv.status()["policy"]["checksum"]), 16) == int(fnv1a64_hex(data), 16),
                   10, interval=0.05, msg="levee to reload the swapped ConfigMap")
        # SIGTERM: not ready at once, serving through drain_delay, gone by
        # drain_delay + drain_timeout
        delay, timeout = duration_s(policy["drain_delay"]), duration_s(policy["drain_timeout"])
        t0 = time.monotonic()
        lv.signal(signal.SIGTERM)
        ready = p.levee["readinessProbe"]["httpGet"]["path"]
        wait_until(lambda: lv.admin_request("GET", ready, port=probe_port).status == 503, 1, interval=0.01,
                   msg="%s to fail once levee has SIGTERM" % ready)
        assert b"draining" in lv.admin_request("GET", ready, port=probe_port).body
        # (in transparent mode a connection that was not redirected to levee
        # is a loop: the namespace test of transparent mode covers traffic)
        # (unless a slow machine already let most of drain_delay pass)
        if policy.get("transparent") != "on" and time.monotonic() - t0 < delay - 0.5:
            assert lv.get("/echo").status == 200, "levee stopped serving before drain_delay"
        lv.expected_exit = True
        code = lv.wait_exit(delay + timeout + 5)
        assert code == 0, lv.stderr()[-2000:]
        assert time.monotonic() - t0 < delay + timeout + 5
        assert lv.stop() is None
    finally:
        lv.stop()


# -- the docs say what the manifests do


def _doc_rows(path, pattern):
    with open(path) as f:
        return re.findall(pattern, f.read(), re.M)


def test_readme_states_each_pod_security_level():
    from kube import K8S
    rows = dict(_doc_rows(os.path.join(K8S, "README.md"), r"^\| `k8s/([a-z/]+)` \|.*\| (\w+)(?: only)?(?: \(see below\))? \|$"))
    assert sorted(rows) == sorted(TARGETS), rows
    for target, stated in rows.items():
        found = {level for level, _, _ in pod_security_violations(pod(target))}
        level = "privileged" if "baseline" in found else "baseline" if found else "restricted"
        assert stated == level, "k8s/README.md says k8s/%s is %s; it is %s" % (target, stated, level)


def test_the_deployment_states_the_version_its_fields_need():
    """deployment.yaml's header and k8s/README.md name one minimum
    Kubernetes version, at least what the pod's fields need: native
    sidecars 1.29, a lifecycle hook's sleep action 1.30 (alpha and off in
    1.29: the API server drops the field, then rejects the empty handler)."""
    import yaml
    from kube import K8S
    with open(os.path.join(K8S, "base", "deployment.yaml")) as f:
        text = f.read()
    header = re.search(r"^# Needs Kubernetes (\d+)\.(\d+) or later", text, re.M)
    readme = _doc_rows(os.path.join(K8S, "README.md"), r"needs Kubernetes \*\*(\d+)\.(\d+)\*\* or later")
    assert header and readme, "the version is stated in deployment.yaml's header and k8s/README.md"
    stated = tuple(int(x) for x in header.groups())
    assert stated == tuple(int(x) for x in readme[0]), (stated, readme)
    spec = yaml.safe_load(text)["spec"]["template"]["spec"]
    containers = spec.get("initContainers", []) + spec.get("containers", [])
    need = (1, 0)
    if any(c.get("restartPolicy") == "Always" for c in spec.get("initContainers", [])):
        need = max(need, (1, 29))
    if any("sleep" in (c.get("lifecycle", {}).get(h) or {}) for c in containers for h in ("preStop", "postStart")):
        need = max(need, (1, 30))
    assert stated >= need, "deployment.yaml says %d.%d; its fields need %d.%d" % (stated + need)


def test_sizing_doc_table_matches_the_manifests():
    from kube import REPO
    rows = _doc_rows(os.path.join(REPO, "docs", "sizing.md"),
                     r"^\| (`[^|]+`) \|[^|]*\| cpu (\S+), memory (\S+) \| cpu (\S+), memory (\S+) \|$")
    seen = set()
    for names, rcpu, rmem, lcpu, lmem in rows:
        for name in re.findall(r"`([^`]+)`", names):
            target = name.replace("k8s/", "")
            seen.add(target)
            res = pod(target).levee["resources"]
            assert (res["requests"]["cpu"], res["requests"]["memory"], res["limits"]["cpu"],
                    res["limits"]["memory"]) == (rcpu, rmem, lcpu, lmem), "docs/sizing.md, %s" % target
    assert seen == set(TARGETS), seen


def test_the_top_level_kustomization_is_the_sidecar_overlay():
    assert sorted(map(repr, docs("."))) == sorted(map(repr, docs("overlays/sidecar")))
