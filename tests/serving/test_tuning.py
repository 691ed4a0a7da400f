"""ONNX thread counts follow the container's CPU quota (cgroup v2 cpu.max, v1 cfs quota/period), not the host."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from serving import tuning

REPO = Path(__file__).resolve().parents[2]


def _v2(root: Path, cpu_max: str, nested: str | None = None) -> Path:
    (root / "sys/fs/cgroup").mkdir(parents=True)
    (root / "sys/fs/cgroup/cpu.max").write_text(cpu_max + "\n")
    (root / "proc/self").mkdir(parents=True)
    (root / "proc/self/cgroup").write_text("0::/\n" if nested is None else f"0::{nested}\n")
    return root


def _v1(root: Path, quota: str, period: str = "100000") -> Path:
    folder = root / "sys/fs/cgroup/cpu,cpuacct"
    folder.mkdir(parents=True)
    (folder / "cpu.cfs_quota_us").write_text(quota + "\n")
    (folder / "cpu.cfs_period_us").write_text(period + "\n")
    (root / "sys/fs/cgroup/cpu").symlink_to(folder)
    (root / "proc/self").mkdir(parents=True)
    (root / "proc/self/cgroup").write_text("12:cpu,cpuacct:/\n")
    return root


def test_cgroup_v2_quota(tmp_path):
    assert tuning.cgroup_cpu_limit(_v2(tmp_path, "200000 100000")) == 2


def test_cgroup_v2_fractional_quota_rounds_up(tmp_path):
    assert tuning.cgroup_cpu_limit(_v2(tmp_path, "150000 100000")) == 2
    assert tuning.cgroup_cpu_limit(_v2(tmp_path / "small", "20000 100000")) == 1


def test_cgroup_v2_no_limit(tmp_path):
    assert tuning.cgroup_cpu_limit(_v2(tmp_path, "max 100000")) is None


def test_cgroup_v2_nested_group(tmp_path):
    root = _v2(tmp_path, "max 100000", nested="/kubepods/pod1")
    nested = root / "sys/fs/cgroup/kubepods/pod1"
    nested.mkdir(parents=True)
    (nested / "cpu.max").write_text("300000 100000\n")
    assert tuning.cgroup_cpu_limit(root) == 3


def test_cgroup_v1_quota(tmp_path):
    assert tuning.cgroup_cpu_limit(_v1(tmp_path, "200000")) == 2
    assert tuning.cgroup_cpu_limit(_v1(tmp_path / "open", "-1")) is None


def test_no_cgroup_files(tmp_path):
    assert tuning.cgroup_cpu_limit(tmp_path) is None


def test_a_2_cpu_pod_on_a_64_core_host_gets_2(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert tuning.cpu_cores(_v2(tmp_path, "200000 100000")) == 2
    assert tuning.cpu_cores(tmp_path / "nothing") == 64
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert tuning.cpu_cores(_v2(tmp_path / "x", "400000 100000")) == 1, "affinity below the quota wins"


def test_threads_follow_the_quota(tmp_path):
    root = _v2(tmp_path, "100000 100000")  # one CPU: below this machine's cores
    env = {k: v for k, v in os.environ.items() if not k.startswith("FANZHA_")}
    out = subprocess.run([sys.executable, "-c", "from serving import tuning; print(tuning.CORES, tuning.THREADS)"],
                         cwd=REPO, env={**env, "FANZHA_CGROUP_ROOT": str(root)}, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["1", "1"]
