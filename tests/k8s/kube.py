"""Helpers for the tests of k8s/ (a module of its own name, not conftest, so
that `from kube import ...` cannot pick another directory's conftest when
pytest collects tests/k8s beside other test directories): building the overlays with `kubectl
kustomize`, finding kubeconform and the schemas kept in the repo, and
reading a pod's levee container, its policy and its environment the way
the kubelet and levee would.

The tools are required, not optional: a missing kubectl or kubeconform
fails the tests (deploy/install-tools.sh installs kubeconform).
LEVEE_KUBECTL names another kubectl to build with (the kustomizations keep
to what Debian's kubectl 1.20, with kustomize v2.0, reads too).
"""
import functools
import importlib.util
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
K8S = os.path.join(REPO, "k8s")
SCHEMAS = os.path.join(K8S, "schemas", "v1.31.4")
SCHEMA_LOCATION = os.path.join(SCHEMAS, "{{ .ResourceKind }}{{ .KindSuffix }}.json")
os.environ["LEVEE_BIN"] = os.path.abspath(os.environ.get("LEVEE_BIN", os.path.join(REPO, "build", "levee")))
LEVEE_BIN = os.environ["LEVEE_BIN"]
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

# Every kustomization that is applied as it is: the base and each overlay.
TARGETS = ["base"] + sorted("overlays/" + d for d in os.listdir(os.path.join(K8S, "overlays")))
TRANSPARENT = "overlays/transparent"
# What the pod sees for the downward API and Secret references when the
# tests stand in for the kubelet.
POD_NAME = "shop-api-5d8f7c9b4-x2x7q"
SECRET_VALUE = "0123456789abcdef0123456789abcdef"


def load_module(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


sizing = load_module("levee_sizing", os.path.join(K8S, "sizing.py"))


def tool(name, env_dir=None):
    """The path of a required tool; fails the test when it is missing."""
    if env_dir:
        cand = os.path.join(env_dir, "bin", name)
        if os.access(cand, os.X_OK):
            return cand
    found = shutil.which(name)
    if not found:
        pytest.fail("%s is not installed (deploy/install-tools.sh installs the deployment tools)" % name)
    return found


def tools_dir():
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.environ.get("LEVEE_TOOLS") or os.path.join(cache, "levee", "tools")


def kubeconform():
    return tool("kubeconform", tools_dir())


@functools.lru_cache(maxsize=None)
def built(target):
    """The YAML text `kubectl kustomize` builds for k8s/TARGET."""
    r = subprocess.run([os.environ.get("LEVEE_KUBECTL") or tool("kubectl"), "kustomize", os.path.join(K8S, target)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, "kubectl kustomize k8s/%s failed:\n%s" % (target, r.stderr)
    return r.stdout


def docs(target):
    return [d for d in yaml.safe_load_all(built(target)) if d]


def one(target, kind, name=None):
    found = [d for d in docs(target) if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, "k8s/%s: expected one %s %s, found %d" % (target, kind, name or "", len(found))
    return found[0]


def validate(paths_or_text):
    """Runs kubeconform -strict against the repo's schemas only; returns
    (exit code, output). A str is validated from stdin."""
    args = [kubeconform(), "-strict", "-summary", "-schema-location", SCHEMA_LOCATION]
    if isinstance(paths_or_text, str):
        r = subprocess.run(args + ["-"], input=paths_or_text, capture_output=True, text=True, timeout=60)
    else:
        r = subprocess.run(args + list(paths_or_text), capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


class Pod:
    """The Deployment's pod template of one built target, read as the
    kubelet would."""

    def __init__(self, target):
        self.target = target
        self.deployment = one(target, "Deployment")
        self.template = self.deployment["spec"]["template"]
        self.spec = self.template["spec"]
        self.inits = self.spec.get("initContainers", [])
        self.apps = self.spec.get("containers", [])
        self.levee = self.container("levee")
        self.volumes = {v["name"]: v for v in self.spec.get("volumes", [])}

    def container(self, name):
        for c in self.inits + self.apps:
            if c["name"] == name:
                return c
        raise AssertionError("k8s/%s: no container %s" % (self.target, name))

    def ports(self, c):
        return {p["name"]: p["containerPort"] for p in c.get("ports", [])}

    def resolve_port(self, c, port):
        return self.ports(c)[port] if isinstance(port, str) else port

    def effective(self, c, key):
        """A securityContext field: the container's, else the pod's."""
        sc = c.get("securityContext", {})
        return sc[key] if key in sc else self.spec.get("securityContext", {}).get(key)

    def policy_path(self):
        args = self.levee.get("args", [])
        assert "--policy" in args, "k8s/%s: levee runs without --policy: %s" % (self.target, args)
        return args[args.index("--policy") + 1]

    def mount_for(self, c, path):
        """The volume mount holding `path` (the longest mount path that is a
        directory above it), or None: the root filesystem."""
        best = None
        for m in c.get("volumeMounts", []):
            mp = m["mountPath"].rstrip("/")
            if path == mp or path.startswith(mp + "/"):
                if best is None or len(mp) > len(best["mountPath"].rstrip("/")):
                    best = m
        return best

    def configmap(self):
        """The ConfigMap mounted at the directory of --policy."""
        m = self.mount_for(self.levee, os.path.dirname(self.policy_path()))
        assert m is not None, "k8s/%s: nothing is mounted at %s" % (self.target, os.path.dirname(self.policy_path()))
        vol = self.volumes[m["name"]]
        assert "configMap" in vol, "k8s/%s: volume %s is not a ConfigMap" % (self.target, m["name"])
        return one(self.target, "ConfigMap", vol["configMap"]["name"]), m

    def policy_text(self):
        cm, _ = self.configmap()
        name = os.path.basename(self.policy_path())
        assert name in cm["data"], "k8s/%s: ConfigMap %s has no key %s" % (self.target, cm["metadata"]["name"], name)
        return cm["data"][name]

    def env(self, c=None):
        """The container's environment as the kubelet gives it: literal
        values, the downward API from the pod template, Secrets as a stand-in
        value. Fails on a reference the tests cannot resolve."""
        c = c or self.levee
        out = {}
        for e in c.get("env", []):
            if "value" in e:
                out[e["name"]] = e["value"]
                continue
            src = e.get("valueFrom", {})
            if "fieldRef" in src:
                field = src["fieldRef"]["fieldPath"]
                m = re.fullmatch(r"metadata\.labels\['([^']+)'\]", field)
                if field == "metadata.name":
                    out[e["name"]] = POD_NAME
                elif m:
                    labels = self.template["metadata"].get("labels", {})
                    assert m.group(1) in labels, "k8s/%s: env %s reads label %s, which the pod lacks" % (
                        self.target, e["name"], m.group(1))
                    out[e["name"]] = labels[m.group(1)]
                else:
                    raise AssertionError("k8s/%s: env %s: fieldRef %s is not resolved by the tests" % (
                        self.target, e["name"], field))
            elif "secretKeyRef" in src:
                out[e["name"]] = SECRET_VALUE
            else:
                raise AssertionError("k8s/%s: env %s: unsupported source %s" % (self.target, e["name"], src))
        return out

    def policy(self):
        """{section: {key: value}} of the mounted policy, expanded with the
        container's environment (and only it)."""
        return sizing.parse_policy(self.policy_text(), self.env(), "k8s/%s: policy" % self.target)


@functools.lru_cache(maxsize=None)
def pod(target):
    return Pod(target)


def port_of(addr):
    return int(addr.rsplit(":", 1)[1])


@functools.lru_cache(maxsize=None)
def levee_knows(section, key):
    """Whether this build of levee has the policy key (the transparent
    overlay's `transparent` comes from another change)."""
    defaults = sizing.levee_defaults(LEVEE_BIN)
    return key in defaults.get(section, {})


BASELINE_CAPS = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
                 "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                      "projected", "secret"}


def pod_security_violations(p):
    """What the Pod Security Standards (Kubernetes 1.31) find in the pod:
    [(level, container or "pod", reason)], level "baseline" or "restricted".
    A pod with no baseline entry meets baseline; with none at all, restricted."""
    out = []
    spec = p.spec
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            out.append(("baseline", "pod", "%s: true" % key))
    for name, vol in p.volumes.items():
        kinds = set(vol) - {"name"}
        if "hostPath" in kinds:
            out.append(("baseline", "pod", "volume %s is a hostPath" % name))
        if not kinds <= RESTRICTED_VOLUMES:
            out.append(("restricted", "pod", "volume %s has type %s" % (name, sorted(kinds - RESTRICTED_VOLUMES))))
    pod_sc = spec.get("securityContext", {})
    for c in p.inits + p.apps:
        n = c["name"]
        sc = c.get("securityContext", {})
        caps = sc.get("capabilities", {})
        added = set(caps.get("add", []))
        if sc.get("privileged"):
            out.append(("baseline", n, "privileged"))
        if added - BASELINE_CAPS:
            out.append(("baseline", n, "adds capabilities %s" % sorted(added - BASELINE_CAPS)))
        if any(port.get("hostPort") for port in c.get("ports", [])):
            out.append(("baseline", n, "hostPort"))
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if seccomp == "Unconfined":
            out.append(("baseline", n, "seccompProfile Unconfined"))
        if seccomp not in ("RuntimeDefault", "Localhost"):
            out.append(("restricted", n, "no seccompProfile RuntimeDefault or Localhost"))
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(("restricted", n, "allowPrivilegeEscalation is not false"))
        if "ALL" not in caps.get("drop", []):
            out.append(("restricted", n, "capabilities do not drop ALL"))
        if added - {"NET_BIND_SERVICE"}:
            out.append(("restricted", n, "adds capabilities %s" % sorted(added - {"NET_BIND_SERVICE"})))
        if p.effective(c, "runAsNonRoot") is not True:
            out.append(("restricted", n, "runAsNonRoot is not true"))
        if p.effective(c, "runAsUser") == 0:
            out.append(("restricted", n, "runAsUser 0"))
    return out


def parse_quantity(q):
    """A Kubernetes quantity as a number: cores for cpu ("500m" -> 0.5),
    bytes for memory ("64Mi")."""
    units = {"m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 1024, "Mi": 1024 ** 2, "Gi": 1024 ** 3}
    m = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(q))
    assert m and m.group(2) in units, "not a quantity: %r" % q
    return float(m.group(1)) * units[m.group(2)]
