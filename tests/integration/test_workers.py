"""workers = auto sizes itself to the CPUs the process may use
(docs/operations.md, "Worker count"): the affinity mask (taskset, cpuset)
and the cgroup v2 CPU quota, whichever is fewer, and says which decided in
the start-up log and in /status."""
import os
import shutil

import pytest

from harness import metric_sum

TASKSET = shutil.which("taskset")
CPUS = len(os.sched_getaffinity(0))


@pytest.mark.skipif(TASKSET is None, reason="taskset is not installed")
def test_taskset_one_cpu_gives_one_worker(levee_factory, origin):
    def pin(lv):
        lv.args = [TASKSET, "-c", str(min(os.sched_getaffinity(0)))] + lv.args
    lv = levee_factory(prepare=pin)
    st = lv.status()
    assert st["workers"] == 1, st
    assert st["workers_sizing"]["decided_by"] == "affinity", st
    assert st["workers_sizing"]["affinity_cpus"] == 1, st
    assert metric_sum(lv.metrics(), "levee_workers") == 1
    assert "workers 1, from the affinity mask" in lv.stderr()


@pytest.mark.skipif(CPUS < 2, reason="the quota must be below the affinity mask to decide")
def test_cgroup_quota_decides(levee_factory, origin, tmp_path):
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cpu.max").write_text("50000 100000\n")  # half a CPU
    lv = levee_factory(env={"LEVEE_CGROUP_ROOT": str(root)})
    st = lv.status()
    assert st["workers"] == 1, st
    sizing = st["workers_sizing"]
    assert sizing["decided_by"] == "cgroup", sizing
    assert sizing["cgroup_cpus"] == 1 and sizing["affinity_cpus"] == CPUS, sizing
    assert sizing["cgroup_file"] == str(root / "cpu.max"), sizing
    assert ("workers 1, from the cgroup CPU quota (50000/100000 us in %s/cpu.max; %d CPUs in the affinity mask)"
            % (root, CPUS)) in lv.stderr()


def test_unparsable_quota_is_ignored_and_said(levee_factory, origin, tmp_path):
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cpu.max").write_text("half 100000\n")
    lv = levee_factory(env={"LEVEE_CGROUP_ROOT": str(root)})
    st = lv.status()
    assert st["workers"] == CPUS and st["workers_sizing"]["decided_by"] == "affinity", st
    assert "cannot parse %s/cpu.max" % root in st["workers_sizing"]["cgroup_note"], st


def test_policy_workers_are_not_measured(levee_factory, origin, tmp_path):
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cpu.max").write_text("50000 100000\n")
    lv = levee_factory({"levee": {"workers": "3"}}, env={"LEVEE_CGROUP_ROOT": str(root)})
    st = lv.status()
    assert st["workers"] == 3 and st["workers_sizing"]["decided_by"] == "policy", st
    assert "workers 3, from the policy" in lv.stderr()
