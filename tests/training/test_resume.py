"""Checkpoints and `fanzha train --resume`: a run SIGKILLed after its first checkpoint resumes
and writes the full artifact; another config, or a fresh run over its checkpoints, is refused.

    pytest tests/training/test_resume.py
"""
import json
import signal
import subprocess
import sys

import pytest

from tests.conftest import REPO, kill_after_first_checkpoint
from training import resume

pytestmark = pytest.mark.slow

STEPS = 300


def _command(tiny_base, out, *extra):
    sets = {"base_model": tiny_base, "output_dir": out, "max_steps": STEPS, "save_steps": 20, "batch_size": 8,
            "learning_rate": 0.002, "max_length": 48, "data.synthetic_n": 300, "threads": 1, "tracking": "mlflow",
            "taxonomy": REPO / "configs/taxonomy.yaml", "policy": REPO / "configs/policy.yaml"}
    return [sys.executable, "-m", "fanzha", "train", *[f"--set={k}={v}" for k, v in sets.items()], *extra]


def test_sigkilled_run_resumes(tiny_base, tmp_path, capsys, monkeypatch):
    from mlflow import MlflowClient

    from training.train import main

    out = tmp_path / "model"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # the subprocesses inherit it
    first = kill_after_first_checkpoint(_command(tiny_base, out), out)
    checkpoint = resume.latest(out)
    assert checkpoint is not None and first.returncode == -signal.SIGKILL, "killed after its first checkpoint"
    assert not (out / "metrics.json").exists(), "killed before it finished"

    # another config: refused, naming what differs
    argv = _command(tiny_base, out, "--resume")[4:]
    assert main([*argv, "--set=learning_rate=0.001", "--set=max_length=32"]) == 2
    err = capsys.readouterr().err
    assert "learning_rate: 0.002 -> 0.001" in err and "max_length: 48 -> 32" in err, err
    # a fresh run over the checkpoints of an unfinished one: refused (it would throw them away)
    assert main(argv[:-1]) == 2
    assert "add --resume to continue it" in capsys.readouterr().err

    killed_at = resume.step_of(resume.latest(out))
    done = subprocess.run(_command(tiny_base, out, "--resume"), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"resuming from step {killed_at}" in done.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train_steps"] == STEPS and metrics["run"]["resumed_from_step"] == killed_at
    assert len(metrics["loss_curve"]) == STEPS // 30, "the loss curve keeps the steps before the kill (logged every 30)"
    for name in ("model.safetensors", "config.json", "tokenizer.json", "train_config.yaml", "data_card.json",
                 "data_manifest.json", "taxonomy.yaml", "variants.yaml"):
        assert (out / name).is_file(), name
    assert not resume.checkpoint_dir(out).exists(), "a finished run deletes its checkpoints"
    assert not (out / "_work").exists()

    # both runs are in MLflow: the killed one marked KILLED (with its config), the resumed one linked
    runs = {r.info.run_id: r for r in MlflowClient(uri).search_runs([metrics["run"]["mlflow"]["experiment_id"]])}
    resumed = runs.pop(metrics["run"]["mlflow"]["run_id"])
    (killed,) = runs.values()
    assert killed.info.status == "KILLED" and killed.data.params["config.max_steps"] == str(STEPS)
    assert resumed.info.status == "FINISHED" and resumed.data.tags["fanzha.resumed_from_step"] == str(killed_at)
    assert "test.accuracy" in resumed.data.metrics and "loss" in resumed.data.metrics


def test_resume_without_checkpoint_is_refused(tmp_path, capsys):
    from training.train import main

    assert main(["--set", f"output_dir={tmp_path / 'none'}", "--resume"]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_differences_ignore_what_does_not_change_the_weights():
    before = {"learning_rate": 0.1, "threads": 1, "data": {"caps": {"a": 1}}, "tracking": "mlflow"}
    now = {"learning_rate": 0.1, "threads": 2, "data": {"caps": {"a": 2}}, "tracking": "none"}
    assert resume.differences(before, now) == ["data.caps.a: 1 -> 2"]
