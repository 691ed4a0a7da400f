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


def test_spin_modes_and_a_bad_value():
    assert [tuning.spin_mode(v) for v in ("0", "off", "1", " TRUE ", "run")] == ["0", "0", "1", "1", "run"]
    with pytest.raises(ValueError, match="FANZHA_SPIN='sometimes': use 0, 1 or run"):
        tuning.spin_mode("sometimes")


_IDLE_CPU = """
import sys, time
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from serving.predictor import _session

w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((768, 768)).astype(np.float32), "w")
graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 768])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 768])], [w])
path = sys.argv[1]
onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
session, x = _session(path, 2), np.ones((256, 768), np.float32)
idle = []
for _ in range(3):
    for _ in range(5):
        session.run(None, {"x": x})
    c = time.process_time()
    time.sleep(0.3)
    idle.append(time.process_time() - c)
print(max(idle))
"""


def test_spinning_within_a_call_stops_when_the_call_ends(tmp_path):
    """FANZHA_SPIN=1 leaves ONNX Runtime's threads spinning on the CPU after a call (ONNX Runtime's
    default); `run` (session.force_spinning_stop) and `0` leave the cores idle between calls."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FANZHA_")}
    idle = {}
    for mode in ("1", "run", "0"):
        out = subprocess.run([sys.executable, "-c", _IDLE_CPU, str(tmp_path / f"m{mode}.onnx")], cwd=REPO,
                             env={**env, "FANZHA_SPIN": mode, "FANZHA_THREADS": "2"}, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr[-2000:]
        idle[mode] = float(out.stdout.split()[-1])
    assert idle["run"] < 0.01 and idle["0"] < 0.01, idle
    assert idle["1"] > max(idle["run"], idle["0"]) + 0.005, idle
