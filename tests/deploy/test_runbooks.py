"""The commands the runbooks (docs/runbooks/) give an operator work as
written: a `levee tier force|clear` names everything the binary requires,
and a kubectl label selector selects the pods k8s/base makes. A runbook
is read during an incident; a command that fails there costs the most."""
import os
import re
import shlex
import subprocess

import pytest
import yaml

from policyfile import LEVEE_BIN

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RUNBOOKS = os.path.join(ROOT, "docs", "runbooks")
DEPLOYMENT = os.path.join(ROOT, "k8s", "base", "deployment.yaml")


def runbook_texts():
    for f in sorted(os.listdir(RUNBOOKS)):
        if f.endswith(".md"):
            with open(os.path.join(RUNBOOKS, f), encoding="utf-8") as fh:
                yield f, fh.read()


def shell_commands(text):
    """The commands of the ```sh blocks, continuation lines joined."""
    for block in re.findall(r"^```sh\n(.*?)^```", text, re.S | re.M):
        for cmd in re.sub(r"\\\n\s*", " ", block).splitlines():
            cmd = cmd.split(" #", 1)[0].strip()
            if cmd:
                yield cmd


def tier_commands():
    for name, text in runbook_texts():
        for cmd in shell_commands(text):
            words = shlex.split(cmd)
            while words and re.match(r"[A-Z_]+=", words[0]):
                words.pop(0)  # VAR=value before the command
            if words[:2] == ["levee", "tier"]:
                yield name, words


def required_tier_options():
    """What `levee tier` says it requires, from its own usage error."""
    r = subprocess.run([LEVEE_BIN, "tier", "force"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2, r
    m = re.search(r"levee tier: (.*?) are required", r.stderr)
    assert m, r.stderr
    return re.findall(r"--[a-z-]+", m.group(1))


def test_the_runbooks_show_tier_commands():
    assert list(tier_commands()), "no `levee tier` command in docs/runbooks: update this test"


@pytest.mark.parametrize("name, words", list(tier_commands()), ids=lambda x: x if isinstance(x, str) else "")
def test_tier_commands_name_what_levee_tier_requires(name, words):
    if "--policy" in words:
        return  # takes brokers, topic and service from the file
    missing = [o for o in required_tier_options() if o not in words]
    assert not missing, "%s: `%s` lacks %s: levee tier exits 2" % (name, " ".join(words), missing)


def selectors():
    for name, text in runbook_texts():
        for sel in re.findall(r"kubectl\s+get\s+pods\s+-l\s+(\S+)", re.sub(r"`?\s*\n\s*`?", " ", text)):
            yield name, sel.strip("`")


def test_label_selectors_select_the_base_pods():
    with open(DEPLOYMENT, encoding="utf-8") as f:
        labels = yaml.safe_load(f)["spec"]["template"]["metadata"]["labels"]
    found = list(selectors())
    assert found, "no `kubectl get pods -l` in docs/runbooks: update this test"
    for name, sel in found:
        for term in sel.split(","):
            k, _, v = term.partition("=")
            assert labels.get(k) == v, "%s: -l %s selects no pod of k8s/base (its labels: %s)" % (name, sel, labels)
