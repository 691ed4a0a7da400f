"""`fanzha evaluate` reports blocked recall (test split, probes) at the threshold the served
certificate is fitted by: for a model trained with `certify_legit: sms` the block threshold is
fitted on SMS-like legitimate validation rows, as serving/certify.py certifies the SMS channel,
not on all of them (chat utterances included), which would report a stricter threshold than the
one /classify serves (issue 19)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml

from data.hygiene import legit_for_threshold
from data.synth import generate
from tests.conftest import fraud_like_legit_chat
from data.taxonomy import label_kinds, load_taxonomy
from training.calibration import block_threshold, softmax
from training.metrics import category_scores
from training.evaluate import main as evaluate_main, model_normalizer, predict_logits

pytestmark = pytest.mark.slow
MAX_FPR = 0.01


def _write(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture(scope="module")
def corpus(tiny_serving_better, tmp_path_factory):
    synthetic = generate(900, seed=7)
    chat = fraud_like_legit_chat(tiny_serving_better.parent / "model", synthetic)
    folder = tmp_path_factory.mktemp("corpus")
    _write(folder / "validation.jsonl", synthetic + chat)
    _write(folder / "test.jsonl", generate(300, seed=8))
    return folder, synthetic + chat


@pytest.mark.parametrize("which", ["sms", "all"])
def test_evaluate_fits_the_block_threshold_on_the_certified_legit_rows(tiny_serving_better, corpus, tmp_path, which):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_serving_better.parent / "model", model_dir)
    cfg_path = model_dir / "train_config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8"))
    cfg["certify_legit"] = which
    cfg_path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    folder, validation = corpus
    assert evaluate_main([str(model_dir), str(folder), "--no-baseline", "--max-fpr", str(MAX_FPR),
                          "--calibrate-on", "data", "--out", str(tmp_path / "eval")]) in (0, None)
    calibration = json.loads((model_dir / "calibration.json").read_text(encoding="utf-8"))

    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    taxonomy = load_taxonomy(cfg.get("taxonomy")).with_classes(
        [model.config.id2label[i] for i in range(model.config.num_labels)])
    logits = predict_logits(model, AutoTokenizer.from_pretrained(model_dir), [r["text"] for r in validation],
                            cfg["max_length"], normalizer=model_normalizer(model_dir))
    probs = softmax(logits / calibration["temperature"])
    fraud_score = category_scores(probs, taxonomy)["fraud"]
    legit = label_kinds([r["label"] for r in validation], taxonomy)[1]
    sms_only = legit & ~np.array([r.get("source") == "golfxiao_dialogs" for r in validation])
    sms = block_threshold(fraud_score, sms_only, MAX_FPR)
    everything = block_threshold(fraud_score, legit, MAX_FPR)
    assert sms < everything, "the chat utterances must be what sets the all-rows threshold here"
    expected = sms if which == "sms" else everything
    assert calibration["block_threshold"] == pytest.approx(expected, rel=1e-4)
    assert calibration["legit"] == which
    assert legit_for_threshold(legit, [r.get("source") for r in validation], which).sum() == \
        (sms_only.sum() if which == "sms" else legit.sum())
    report = json.loads((tmp_path / "eval" / "report.json").read_text(encoding="utf-8"))
    assert report["model"]["describes"]["policy"]["fraud_block"] == calibration["block_threshold"]
    if which == "sms":  # chat utterances are served by /chat on the threshold fitted on the legitimate chat rows
        chat_only = legit & np.array([r.get("source") == "golfxiao_dialogs" for r in validation])
        assert calibration["chat_block_threshold"] == pytest.approx(block_threshold(fraud_score, chat_only, MAX_FPR),
                                                                    rel=1e-4)
        assert report["model"]["chat_block_threshold"] == calibration["chat_block_threshold"]
    else:
        assert "chat_block_threshold" not in calibration


def test_evaluate_reports_blocked_figures_at_the_threshold_export_certifies(tiny_serving_better, corpus, tmp_path):
    """By default evaluate fits calibration.json on the model's own validation split, the sample
    export certifies every variant on, not on DATA's validation (here other rows: DATA need not
    hold the model's synthetic notices), so its threshold is the served one (fp32 ONNX: PyTorch
    within 1e-3 of a logit)."""
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_serving_better.parent / "model", model_dir)
    folder, _ = corpus
    assert evaluate_main([str(model_dir), str(folder), "--no-baseline", "--out", str(tmp_path / "eval")]) in (0, None)
    calibration = json.loads((model_dir / "calibration.json").read_text(encoding="utf-8"))
    served = json.loads((tiny_serving_better / "fanzha.json").read_text(encoding="utf-8"))["certified"]["model.onnx"]
    assert calibration["data"].startswith("validation split of"), calibration["data"]
    assert calibration["validation_rows"] == served["validation"]["rows"]
    assert calibration["legit_rows"] == served["validation"]["legit_rows"]
    assert calibration["temperature"] == pytest.approx(served["temperature"], rel=1e-3)
    assert calibration["block_threshold"] == pytest.approx(served["block_threshold"], abs=1e-4)
    # the blocked figures over other certification samples of these weights, in the JSON and the page
    report = json.loads((tmp_path / "eval" / "report.json").read_text(encoding="utf-8"))
    spread = report["model"]["certification_spread"]
    assert spread["draws"] == 200
    for channel in report["model"]["by_channel"]:
        low, _, high = spread[channel]["block_threshold"]
        assert low <= high and len(spread[channel]["false_block_rate"]) == 3
    assert "Blocked figures on other certification samples" in (tmp_path / "eval" / "report.html").read_text()
    # DATA's own validation rows give another threshold: what evaluate reported before
    assert evaluate_main([str(model_dir), str(folder), "--no-baseline", "--calibrate-on", "data",
                          "--out", str(tmp_path / "eval-data")]) in (0, None)
    on_data = json.loads((model_dir / "calibration.json").read_text(encoding="utf-8"))
    assert on_data["data"] == str(folder / "validation.jsonl")
    assert on_data["block_threshold"] != pytest.approx(served["block_threshold"], abs=1e-4)


def test_the_scorecard_judges_each_row_at_its_channels_threshold():
    from training.scorecard import scorecard

    taxonomy = load_taxonomy()
    classes = taxonomy.classes
    normal, fraud = classes.index("normal"), next(i for i, c in enumerate(classes) if c.startswith("fraud"))
    probs = np.zeros((4, len(classes)))
    probs[:, normal], probs[:, fraud] = 0.3, 0.7  # fraud score 0.7 everywhere
    rows = [{"text": "a", "label": "normal", "source": "spam80w"}, {"text": "b", "label": "normal", "source": "golfxiao_dialogs"},
            {"text": "c", "label": classes[fraud], "source": "spam80w"}, {"text": "d", "label": classes[fraud], "source": "golfxiao_dialogs"}]
    card = scorecard(probs, rows, taxonomy, 0.6, chat_block_threshold=0.8)
    assert card["by_channel"]["sms"] == {"rows": 2, "false_block_rate": 1.0, "fraud_block_recall": 1.0}
    assert card["by_channel"]["chat"] == {"rows": 2, "false_block_rate": 0.0, "fraud_block_recall": 0.0}
    assert card["false_block_rate"] == 0.5 and card["fraud_block_recall"] == 0.5
    assert scorecard(probs, rows, taxonomy, 0.6)["false_block_rate"] == 1.0  # one threshold for all: as before
