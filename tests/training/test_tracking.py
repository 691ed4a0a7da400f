"""MLflow tracking: a training run and an evaluation run in a real SQLite store, read back with
MlflowClient; the model artifact records the run id.

    pytest tests/training/test_tracking.py
"""
import json

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_training_and_evaluation_are_tracked(tiny_base, tmp_path, monkeypatch):
    from mlflow import MlflowClient

    from training import tracking
    from training.config import load_config
    from training.train import train

    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)  # nothing may land in the working folder (./mlruns)
    out = train(load_config(None, {"base_model": str(tiny_base), "output_dir": str(tmp_path / "sms" / "model"),
                                   "max_steps": 12, "batch_size": 8, "max_length": 32, "data.synthetic_n": 200,
                                   "threads": 1, "learning_rate": 0.002, "tracking": "mlflow",
                                   "taxonomy": str(REPO / "configs/taxonomy.yaml"),
                                   "policy": str(REPO / "configs/policy.yaml")}))
    metrics = json.loads((out / "metrics.json").read_text())
    recorded = metrics["run"]["mlflow"]
    assert recorded["tracking_uri"] == uri

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(recorded["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == "sms/model"
    params = run.data.params
    assert params["config.max_steps"] == "12" and params["config.data.synthetic_n"] == "200"
    assert params["learning_rate"] == "0.002", "the Trainer's MLflowCallback logged the TrainingArguments"
    manifest = json.loads((out / "data_manifest.json").read_text())
    assert {params[f"data.synthetic/{f['path'].rsplit('/', 1)[1]}.sha256"] for f in manifest["files"]} == \
        {f["sha256"] for f in manifest["files"]}
    assert run.data.metrics["validation.accuracy"] == pytest.approx(metrics["validation"]["accuracy"])
    assert run.data.metrics["test.macro_f1"] == pytest.approx(metrics["test"]["macro_f1"])
    assert run.data.metrics["effective_batch_size"] == 8
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")], "the loss curve, per step"
    assert run.data.tags["fanzha.world_size"] == "1"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"metrics.json", "train_config.yaml", "data_manifest.json", "data_card.md"} <= artifacts
    assert (tmp_path / "store" / "mlruns").is_dir() and not (tmp_path / "mlruns").exists()

    # `fanzha evaluate` of that model: its own run, linked to the training run
    from data.synth import write_corpus
    from training.evaluate import main as evaluate

    write_corpus(tmp_path / "corpus", n=150, seed=1)
    data = tmp_path / "corpus" / "test.jsonl"
    assert evaluate([str(out), str(data), "--no-baseline", "--out", str(tmp_path / "eval")]) == 0
    runs = client.search_runs([run.info.experiment_id], "tags.`fanzha.command` = 'evaluate'")
    assert len(runs) == 1
    evaluated = runs[0]
    assert evaluated.data.tags["fanzha.train_run_id"] == run.info.run_id
    report = json.loads((tmp_path / "eval" / "report.json").read_text())["model"]
    assert evaluated.data.metrics["macro_f1"] == pytest.approx(report["macro_f1"])
    assert evaluated.data.params["data"] == str(data)
    assert {"report.json", "report.html"} <= {a.path for a in client.list_artifacts(evaluated.info.run_id)}


def test_tracking_none_opens_no_store(tmp_path, monkeypatch):
    from training import tracking

    monkeypatch.chdir(tmp_path)
    with tracking.training_run(False, tmp_path / "m", {}) as run:
        assert run is None
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "train_config.yaml").write_text("tracking: none\n")
    assert tracking.log_evaluation(tmp_path / "m", tmp_path, tmp_path / "r.json", tmp_path / "r.html", {}) is None
    assert not list(tmp_path.glob("**/mlflow.db")) and not (tmp_path / "artifacts").exists()
