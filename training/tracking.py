"""Experiment tracking in MLflow: every `fanzha train` and `fanzha evaluate` is one run.

    mlflow ui --backend-store-uri sqlite:///artifacts/mlflow.db     # compare runs in a browser

The store is MLFLOW_TRACKING_URI if set, else the SQLite file artifacts/mlflow.db with the run
artifacts under artifacts/mlruns (a SQLite store keeps them in mlruns/ beside its file). The
experiment is MLFLOW_EXPERIMENT_NAME, else "fanzha". The Trainer's MLflowCallback logs the
TrainingArguments, the model config and the loss as it goes; this module opens the run around it
(so the run id is known before training and lands in the model artifact: metrics.json
run.mlflow) and adds the resolved config (params `config.*`), the data fingerprints (`data.*`),
the metrics and the report files. Only rank 0 logs; `tracking: none` turns it off. Nothing here
contacts a server unless MLFLOW_TRACKING_URI names one (MLflow's usage telemetry is switched off).
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

from data import settings

DEFAULT_DB = Path("artifacts/mlflow.db")
# Before anything imports mlflow (the Trainer's callback does): MLflow 3 reports usage over the network.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")


def _mlflow():
    import mlflow

    return mlflow


def store_uri(recorded: str | None = None) -> str:
    """MLFLOW_TRACKING_URI, else `recorded` (the store a model's training run went to), else the default."""
    return settings.get("MLFLOW_TRACKING_URI") or recorded or "sqlite:///" + str(DEFAULT_DB.resolve())


def _experiment_id(mlflow, uri: str) -> str:
    mlflow.set_tracking_uri(uri)
    name = settings.get("MLFLOW_EXPERIMENT_NAME")
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if uri.startswith("sqlite:///"):  # else MLflow would put artifacts in ./mlruns of whatever folder we run in
        db = Path(uri.removeprefix("sqlite:///"))
        db.parent.mkdir(parents=True, exist_ok=True)
        location = (db.parent / "mlruns").resolve().as_uri()
    return mlflow.create_experiment(name, artifact_location=location)


def flatten(value, prefix: str = "") -> dict:
    if isinstance(value, dict) and value:
        return {k: v for key, sub in value.items() for k, v in flatten(sub, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): value}


def _log_params(mlflow, params: dict) -> None:
    items = [(k, json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v) for k, v in params.items()]
    for i in range(0, len(items), 100):  # MLflow takes at most 100 per call
        mlflow.log_params(dict(items[i:i + 100]))


def _numbers(figures: dict, prefix: str = "") -> dict:
    return {f"{prefix}{k}": float(v) for k, v in figures.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


class Run:
    """An open MLflow run: `info` goes into the model artifact."""

    def __init__(self, mlflow, run, uri: str):
        self.mlflow, self.id, self.uri = mlflow, run.info.run_id, uri
        self.info = {"run_id": self.id, "experiment_id": run.info.experiment_id, "tracking_uri": uri}

    def log_inputs(self, config: dict, manifest: dict) -> None:
        """Before training, so that a run killed half-way still says what it was."""
        _log_params(self.mlflow, flatten(config, "config."))
        fingerprints = {f"data.{Path(f['path']).parent.name}/{Path(f['path']).name}.sha256": f["sha256"]
                        for f in manifest.get("files", [])}
        _log_params(self.mlflow, {**fingerprints, **{f"data.rows.{k}": v for k, v in manifest.get("rows", {}).items()}})

    def log_results(self, metrics: dict, out: Path, extra: tuple[str, ...] = ()) -> None:
        figures = _numbers(metrics)
        for split in ("validation", "test"):
            figures.update(_numbers(metrics.get(split, {}), f"{split}."))
        figures.update(_numbers(metrics.get("run", {})))
        self.mlflow.log_metrics(figures)
        for name in ("metrics.json", "train_config.yaml", "data_manifest.json", "data_card.json", "data_card.md", *extra):
            if (out / name).is_file():
                self.mlflow.log_artifact(str(out / name))


@contextmanager
def training_run(enabled: bool, out: Path, tags: dict, earlier: str | None = None, command: str = "train"):
    """An MLflow run around one training (None when tracking is off or this is not rank 0); a run
    that raises is marked FAILED. `earlier`: the run of the killed training this one resumes,
    marked KILLED (it was left RUNNING). `command`: the tag fanzha.command (train, distill)."""
    if not enabled:
        yield None
        return
    mlflow = _mlflow()
    uri = store_uri()
    experiment = _experiment_id(mlflow, uri)
    if earlier:
        client = mlflow.MlflowClient()
        try:
            if client.get_run(earlier).info.status == "RUNNING":
                client.set_terminated(earlier, "KILLED")
        except mlflow.exceptions.MlflowException:
            pass  # another store, or deleted: nothing to close
    name = f"{out.parent.name}/{out.name}" if out.parent.name else out.name
    run = mlflow.start_run(experiment_id=experiment, run_name=name,
                           tags={"fanzha.command": command, **{f"fanzha.{k}": str(v) for k, v in tags.items()}})
    print(f"[fanzha] MLflow run {run.info.run_id} in {uri}", flush=True)
    try:
        yield Run(mlflow, run, uri)
    except BaseException:
        mlflow.end_run("FAILED")
        raise
    mlflow.end_run()


def log_evaluation(model_dir: Path, data: Path, report_json: Path, report_html: Path, figures: dict) -> str | None:
    """One MLflow run for a `fanzha evaluate`, linked to the model's training run (tag
    fanzha.train_run_id), in the store that run went to. Skipped for a model trained with
    `tracking: none`. Returns the run id."""
    import yaml

    model_dir = Path(model_dir)
    config = yaml.safe_load((model_dir / "train_config.yaml").read_text(encoding="utf-8")) or {}
    if config.get("tracking", "mlflow") == "none":
        return None
    metrics_path = model_dir / "metrics.json"
    trained = (json.loads(metrics_path.read_text(encoding="utf-8")).get("run", {}).get("mlflow", {})
               if metrics_path.is_file() else {})
    mlflow = _mlflow()
    uri = store_uri(trained.get("tracking_uri"))
    experiment = _experiment_id(mlflow, uri)
    tags = {"fanzha.command": "evaluate", "fanzha.model_dir": str(model_dir)}
    if trained.get("run_id"):
        tags["fanzha.train_run_id"] = trained["run_id"]
    with mlflow.start_run(experiment_id=experiment, run_name=f"evaluate {model_dir.parent.name}/{model_dir.name}",
                          tags=tags) as run:
        describes = figures.get("describes", {})
        _log_params(mlflow, {"model_dir": str(model_dir), "data": str(data),
                             "weights_sha256": describes.get("weights_sha256", "")})
        mlflow.log_metrics(_numbers(figures))
        for path in (report_json, report_html):
            if Path(path).is_file():
                mlflow.log_artifact(str(path))
    print(f"[fanzha] MLflow run {run.info.run_id} in {uri}", flush=True)
    return run.info.run_id
