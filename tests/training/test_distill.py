"""`fanzha distill`: a 2-layer student cut from a tiny 4-layer teacher, trained on the teacher's
tempered distribution plus the labelled loss; the artifact goes through export and promote like
any model; teacher logits are cached; a killed run resumes.

    pytest tests/training/test_distill.py
"""
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tests.conftest import REPO, build_tiny_base, kill_after_first_checkpoint
from tests.serving.test_lifecycle import gate_config, golden, home  # noqa: F401 — fixtures: gate on a tiny golden set
from training import resume
from training.fingerprint import weights_sha256

pytestmark = pytest.mark.slow

TINY = {"batch_size": 16, "max_length": 48, "data.synthetic_n": 600, "learning_rate": 0.002, "threads": 1,
        "tracking": "none", "taxonomy": str(REPO / "configs/taxonomy.yaml"), "policy": str(REPO / "configs/policy.yaml")}
STEPS = 150
# The student starts as a cut of its teacher, already close to it: at the teacher's 2e-3 it overshot
# and ended further from the teacher than the cut (KL 0.043 against 0.017 on the seeded base)
DISTILL_LR = 5e-4


def _sets(values: dict) -> list[str]:
    return [f"--set={k}={v}" for k, v in values.items()]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    """A 4-layer, 32-wide BERT trained 200 steps (the shape of m3e-small's depth, not its width)."""
    from training.config import load_config
    from training.train import train

    root = tmp_path_factory.mktemp("teacher")
    base = build_tiny_base(root / "base", layers=4)
    return train(load_config(None, {**TINY, "base_model": str(base), "output_dir": str(root / "model"), "max_steps": 200}))


@pytest.fixture(scope="module")
def distilled(teacher, tmp_path_factory) -> tuple[Path, Path, str]:
    """(student artifact, logit cache folder, the run's stdout)."""
    from training.distill import main

    root = tmp_path_factory.mktemp("student")
    sets = {**TINY, "output_dir": root / "model", "max_steps": STEPS, "save_steps": 0, "distill.alpha": 0.9, "learning_rate": DISTILL_LR,
            "distill.student_layers": "[0, 3]", "distill.logits_cache": root / "cache"}
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["--teacher", str(teacher), "--config", "", *_sets(sets)]) == 0
    return root / "model", root / "cache", out.getvalue()


def _kl_to(teacher_logits: np.ndarray, logits: np.ndarray) -> float:
    log_p = torch.log_softmax(torch.from_numpy(teacher_logits), -1)
    log_q = torch.log_softmax(torch.from_numpy(logits), -1)
    return float((log_p.exp() * (log_p - log_q)).sum(-1).mean())


def _logits(model_dir: Path, texts: list[str], model=None) -> np.ndarray:
    """The logits of the model in `model_dir` (or `model`, with that folder's tokenizer and table)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from training.evaluate import model_normalizer, predict_logits

    model = (model or AutoModelForSequenceClassification.from_pretrained(model_dir)).eval()
    return predict_logits(model, AutoTokenizer.from_pretrained(model_dir), texts, 48,
                          normalizer=model_normalizer(model_dir))


def test_student_is_cut_from_the_teachers_layers(teacher):
    from transformers import AutoModelForSequenceClassification

    from training.config import ConfigError
    from training.teacher import student_from_teacher

    model = AutoModelForSequenceClassification.from_pretrained(teacher)
    student = student_from_teacher(model, [1, 3], attention_probs_dropout_prob=0.0)
    assert student.config.num_hidden_layers == 2 and student.config.attention_probs_dropout_prob == 0.0
    ours, theirs = student.state_dict(), model.state_dict()
    for key, value in ours.items():  # renumbered layers, everything else (embeddings, pooler, classifier) as is
        source = re.sub(r"encoder\.layer\.(\d+)\.", lambda m: f"encoder.layer.{[1, 3][int(m.group(1))]}.", key)
        assert torch.equal(value, theirs[source]), key
    assert len(ours) < len(theirs) and any("encoder.layer.3." in k for k in theirs)
    for bad in ([], [3, 1], [0, 4], [2, 2]):
        with pytest.raises(ConfigError, match="student_layers"):
            student_from_teacher(model, bad)


def test_student_artifact_has_the_kept_layers_and_the_teacher_record(distilled, teacher, tmp_path):
    import shutil

    from training.config import load_config
    from training.evaluate import main as evaluate

    student, _, out = distilled
    config = json.loads((student / "config.json").read_text())
    assert config["num_hidden_layers"] == 2 and config["id2label"] == json.loads((teacher / "config.json").read_text())["id2label"]
    for name in ("model.safetensors", "tokenizer.json", "train_config.yaml", "metrics.json", "data_manifest.json",
                 "data_card.json", "taxonomy.yaml", "variants.yaml", "distill.json"):
        assert (student / name).is_file(), name
    assert not (student / "_work").exists() and not resume.checkpoint_dir(student).exists()
    cfg = load_config(student / "train_config.yaml")  # what export and evaluate read: a plain training config
    assert cfg.base_model == str(teacher.resolve())
    record = json.loads((student / "distill.json").read_text())
    assert record["teacher"]["path"] == str(teacher.resolve())
    assert record["teacher"]["weights_sha256"] == weights_sha256(teacher) and record["teacher"]["num_hidden_layers"] == 4
    assert record["student_layers"] == [0, 3] and record["settings"]["alpha"] == 0.9 and record["champion"] is None
    transfer = record["transfer"]
    assert transfer["labelled_rows"] == json.loads((student / "data_manifest.json").read_text())["rows"]["train"]
    assert transfer["unlabelled_by_source"].get("synthetic:disguised", 0) > 50, transfer
    assert transfer["logits"]["teacher"]["hit"] is False and "teacher scoring" in out

    data = tmp_path / "few.jsonl"  # `fanzha evaluate` takes it as it takes any model
    data.write_text("".join(json.dumps({"text": t, "label": l}, ensure_ascii=False) + "\n" for t, l in
                            [("您的验证码是 123456", "normal"), ("加微信领取返利", "fraud.brushing")]), encoding="utf-8")
    copy = shutil.copytree(student, tmp_path / "model")
    assert evaluate([str(copy), str(data), "--out", str(tmp_path / "eval.json")]) == 0
    assert json.loads((tmp_path / "eval.json").read_text())["model"]["rows"] == 2


def test_student_learns_the_teacher(distilled, teacher, tiny_base, tmp_path):
    """Closer to the teacher than a fresh 2-layer model trained as long on the labels alone, and
    than the untrained cut it started from. (Measured: KL to the teacher on
    unseen texts 0.013 distilled, 0.025 the cut, 0.081 the fresh model; with the prior shift
    left out of the student's start, 0.116: the correction then removed a shift never learnt.)"""
    from transformers import AutoModelForSequenceClassification

    from data.synth import generate
    from training.teacher import student_from_teacher
    from training.config import load_config
    from training.train import train

    student, _, _ = distilled
    metrics = json.loads((student / "metrics.json").read_text())
    kl = metrics["kl_curve"]
    # the logged KL is one batch's, from a student cut from the teacher it starts near: noise around
    # a few thousandths (CI: 0.0036 first, 0.0033 over the last three); the held-out figures below
    # are the claim
    assert len(kl) >= 5 and all(np.isfinite(v) and v >= 0 for v in kl), kl
    assert len(metrics["labelled_loss_curve"]) == len(kl) and metrics["train_steps"] == STEPS

    fresh = train(load_config(None, {**TINY, "base_model": str(tiny_base), "output_dir": str(tmp_path / "fresh"),
                                     "max_steps": STEPS}))
    texts = [r["text"] for r in generate(120, seed=77)]
    target = _logits(teacher, texts)
    distilled = _kl_to(target, _logits(student, texts))
    assert distilled < 0.5 * _kl_to(target, _logits(fresh, texts))
    cut = student_from_teacher(AutoModelForSequenceClassification.from_pretrained(teacher), [0, 3])
    assert distilled < _kl_to(target, _logits(teacher, texts, cut))


def test_teacher_logits_are_read_from_the_cache_on_rerun(distilled, teacher, tmp_path, monkeypatch, capsys):
    from training import teacher as teachers
    from training.distill import main

    _, cache, _ = distilled
    before = {p.name: p.stat().st_mtime_ns for p in cache.glob("*.npy")}
    assert len(before) == 1

    def no_scoring(*args, **kwargs):
        raise AssertionError("the teacher scored again")

    monkeypatch.setattr(teachers, "score", no_scoring)
    sets = {**TINY, "output_dir": tmp_path / "again", "max_steps": 4, "save_steps": 0, "distill.alpha": 0.9,
            "distill.logits_cache": cache}
    assert main(["--teacher", str(teacher), "--config", "", *_sets(sets)]) == 0
    assert "read from the cache" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in cache.glob("*.npy")} == before
    assert json.loads((tmp_path / "again" / "distill.json").read_text())["transfer"]["logits"]["teacher"]["hit"] is True


def test_transfer_pool_takes_unseen_corpus_rows_and_caps(tmp_path):
    from data.taxonomy import load_taxonomy
    from training.distill import DistillConfig, transfer_pool
    from training.config import load_config
    from training.examples import DataError

    corpus = tmp_path / "all"
    corpus.mkdir()
    rows = [{"text": f"短信{i}", "label": str(i % 2), "source": "spam80w"} for i in range(40)]
    rows += [{"text": "测试集里的短信", "label": "0", "source": "spam80w"}, {"text": "别的来源", "label": "0", "source": "x"}]
    (corpus / "train.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    cfg = load_config(None, {"data.synthetic_n": 0, "data.corpus_dirs": [str(corpus)], "taxonomy": str(REPO / "configs/taxonomy.yaml")})
    splits = {"train": [{"text": "短信0", "label": "normal", "source": "spam80w"}], "validation": [],
              "test": [{"text": "测试集里的短信", "label": "normal"}]}
    pool = transfer_pool(cfg, DistillConfig(), splits, load_taxonomy(cfg.taxonomy))
    assert [r["text"] for r in pool] == [f"短信{i}" for i in range(1, 40)]  # not the training row, not the test one
    assert all(r["label"] is None and r["target"] == r["text"] for r in pool)
    assert len(transfer_pool(cfg, DistillConfig(transfer_max_rows=10), splits, load_taxonomy(cfg.taxonomy))) == 10
    with pytest.raises(DataError, match="transfer_sources"):
        transfer_pool(cfg, DistillConfig(transfer_sources=["nothing"]), splits, load_taxonomy(cfg.taxonomy))


def test_student_config_extends_the_sms_config():
    from training.config import load_config
    from training.distill import load_distill_config

    cfg, settings = load_distill_config(REPO / "configs/sms-student.yaml", {"distill.alpha": 0.5})
    sms = load_config(REPO / "configs/sms.yaml")
    assert cfg.data == sms.data and cfg.max_length == sms.max_length and cfg.output_dir != sms.output_dir
    assert settings.alpha == 0.5 and settings.temperature == 2.0 and settings.student_layers == [0, 1, 3]


@pytest.fixture(scope="module")
def serving_pair(distilled, teacher, tmp_path_factory) -> tuple[Path, Path]:
    from fanzha.exporting import export

    root = tmp_path_factory.mktemp("distill-serving")
    export(teacher, root / "teacher" / "serving", default_variant="opt", int8="optional")
    export(distilled[0], root / "student" / "serving", default_variant="opt", int8="optional")
    return root / "teacher" / "serving", root / "student" / "serving"


def test_export_certifies_the_student(serving_pair):
    student = serving_pair[1]
    meta = json.loads((student / "fanzha.json").read_text())
    assert meta["certified"] and all(0 < e["block_threshold"] <= 1 for e in meta["certified"].values()), meta
    assert yaml.safe_load((student / "policy.yaml").read_text())["thresholds"]["fraud"]["block"] == "certified"
    parity = json.loads((student / "parity.json").read_text())
    assert parity["fp32"]["max_abs_logit_diff"] < 1e-3


def test_student_goes_through_the_gate_against_its_teacher(serving_pair, home, golden, gate_config, capsys):  # noqa: F811
    from fanzha.cli import main as cli
    from serving.lifecycle.aliases import AliasStore
    from serving.lifecycle.registry import register

    teacher_tag, student_tag = register(serving_pair[0], "fanzha-distill"), register(serving_pair[1], "fanzha-distill")
    assert cli(["promote", teacher_tag, "--force", "--reason", "test: the teacher is the champion",
                "--golden", str(golden), "--gate-config", str(gate_config)]) == 0
    assert AliasStore().get("fanzha-distill", "champion") == teacher_tag
    capsys.readouterr()
    code = cli(["promote", student_tag, "--golden", str(golden), "--gate-config", str(gate_config)])
    assert code in (0, 1)  # the tiny student may well be refused: what matters is that it is judged and reported
    err = capsys.readouterr()
    table = err.out + err.err
    for row in ("false_block_ceiling", "false_block_vs_champion", "blocked_recall_floor", "blocked_recall_vs_champion",
                "negative_flips", "PASSED" if code == 0 else "REFUSED"):
        assert row in table, (row, table)
    verdict = AliasStore().read("fanzha-distill")["verdicts"][student_tag][-1]
    assert verdict["champion"] == teacher_tag and verdict["passed"] is (code == 0)
    report = json.loads((Path(verdict["report"]).parent / "gate.json").read_text())
    fraud_slices = [s for s in report["slices"] if s["part"] == "fraud"]
    assert {s["field"] for s in fraud_slices} >= {"fraud_type", "disguise"}
    assert all(s["metric"] == "flagged_recall" and s["champion"] is not None for s in fraud_slices)
    assert all(0 <= s["blocked_candidate"] <= 1 and s["blocked_champion"] is not None for s in fraud_slices), \
        "blocked fraud recall per slice, beside the gated flagged recall"


def _command(teacher, out, cache, *extra):
    sets = {**TINY, "output_dir": out, "max_steps": 300, "save_steps": 20, "batch_size": 8, "tracking": "mlflow",
            "distill.logits_cache": cache}
    return [sys.executable, "-m", "fanzha", "distill", "--teacher", str(teacher), "--config", "", *_sets(sets), *extra]


def test_sigkilled_distillation_resumes(teacher, tmp_path, capsys, monkeypatch):
    from mlflow import MlflowClient

    from training.distill import main

    out, cache = tmp_path / "model", tmp_path / "cache"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    first = kill_after_first_checkpoint(_command(teacher, out, cache), out)
    assert resume.latest(out) is not None and first.returncode == -signal.SIGKILL, "killed after its first checkpoint"
    assert not (out / "metrics.json").exists()

    argv = _command(teacher, out, cache, "--resume")[4:]
    assert main([*argv, "--set=distill.alpha=0.5", "--set=max_length=32"]) == 2
    err = capsys.readouterr().err
    assert "distill.alpha: 0.7 -> 0.5" in err and "max_length: 48 -> 32" in err, err
    assert main([*argv[:-1]]) == 2 and "add --resume to continue it" in capsys.readouterr().err

    killed_at = resume.step_of(resume.latest(out))
    done = subprocess.run(_command(teacher, out, cache, "--resume"), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"resuming from step {killed_at}" in done.stdout and "read from the cache" in done.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train_steps"] == 300 and metrics["run"]["resumed_from_step"] == killed_at
    assert len(metrics["kl_curve"]) == 300 // 30, "the KL curve keeps the steps before the kill (logged every 30)"
    assert (out / "distill.json").is_file() and not resume.checkpoint_dir(out).exists()
    run = MlflowClient(uri).get_run(metrics["run"]["mlflow"]["run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["fanzha.command"] == "distill"
    assert run.data.params["config.distill.alpha"] == "0.7" and "kl" in run.data.metrics


def test_a_champion_is_averaged_into_the_target(teacher, tiny_model, tmp_path):
    from training.distill import main
    from training.teacher import soft_targets

    z_t, z_c = np.array([[2.0, 0.0, 0.0]]), np.array([[0.0, 0.0, 2.0]])
    mixed = soft_targets([z_t, z_c], [0.75, 0.25], 2.0, [0.0, 0.0, 0.0])
    one = lambda z: np.exp(z / 2) / np.exp(z / 2).sum()  # noqa: E731
    assert np.allclose(mixed[0], 0.75 * one(z_t[0]) + 0.25 * one(z_c[0]), atol=1e-6)
    shifted = soft_targets([z_t], [1.0], 1.0, [np.log(2.0), 0.0, 0.0])  # class weight 2 on class 0: twice the odds
    assert shifted[0, 0] / shifted[0, 1] == pytest.approx(2 * np.exp(2.0), rel=1e-5)

    sets = {**TINY, "output_dir": tmp_path / "model", "max_steps": 4, "save_steps": 0, "distill.champion_weight": 0.25,
            "distill.logits_cache": tmp_path / "cache"}
    assert main(["--teacher", str(teacher), "--champion", str(tiny_model), "--config", "", *_sets(sets)]) == 0
    record = json.loads((tmp_path / "model" / "distill.json").read_text())
    assert record["champion"]["weights_sha256"] == weights_sha256(tiny_model) and record["settings"]["champion_weight"] == 0.25
    assert set(record["transfer"]["logits"]) == {"teacher", "champion"} and len(list((tmp_path / "cache").glob("*.npy"))) == 2
