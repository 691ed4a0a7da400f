"""Train a tiny real BERT a few steps, export it, and check the artifacts and parity."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from data.taxonomy import load_taxonomy
from training import export as export_mod
from training.train import allowed_set_loss
from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_allowed_set_loss_for_coarse_labels():
    logits = torch.tensor([[2.0, 2.0, -5.0], [2.0, 2.0, -5.0]])
    fine = allowed_set_loss(logits[:1], torch.tensor([[1, 0, 0]]), torch.ones(1))
    coarse = allowed_set_loss(logits[1:], torch.tensor([[1, 1, 0]]), torch.ones(1))
    # p(c0) ~ 0.5 -> -log 0.5; p(c0)+p(c1) ~ 1 -> ~0: a coarse label is satisfied by either class.
    assert fine.item() == pytest.approx(np.log(2), abs=1e-2)
    assert coarse.item() < 0.01


def test_model_artifact_layout(tiny_model):
    tax = load_taxonomy()
    config = json.loads((tiny_model / "config.json").read_text())
    assert [config["id2label"][str(i)] for i in range(len(tax.classes))] == list(tax.classes)
    assert (tiny_model / "model.safetensors").is_file()
    assert not list(tiny_model.glob("*.bin")), "weights must be safetensors only"
    assert (tiny_model / "tokenizer.json").is_file()
    resolved = yaml.safe_load((tiny_model / "train_config.yaml").read_text())
    assert resolved["max_steps"] == 80 and resolved["data"]["synthetic_n"] == 600
    metrics = json.loads((tiny_model / "metrics.json").read_text())
    for split in ("validation", "test"):
        # the recorded figure is the macro-F1 of its own confusion matrix (not just "some number in [0, 1]")
        m = np.array(metrics[split]["confusion_matrix"]["matrix"])
        tp, support, predicted = np.diag(m), m.sum(1), m.sum(0)
        f1 = [2 * tp[i] / (support[i] + predicted[i]) for i in range(len(m)) if support[i]]
        assert metrics[split]["macro_f1"] == pytest.approx(float(np.mean(f1)), abs=1e-9)
        assert set(metrics[split]["per_class"]) == set(tax.classes)
        assert len(metrics[split]["confusion_matrix"]["matrix"]) == len(tax.classes)
    manifest = json.loads((tiny_model / "data_manifest.json").read_text())
    assert manifest["rows"]["train"] > 0 and all(len(f["sha256"]) == 64 for f in manifest["files"])
    assert not (tiny_model / "_work").exists()
    card = json.loads((tiny_model / "data_card.json").read_text())
    assert "synthetic" in json.dumps(card) and "p50" in json.dumps(card), "the data card shows counts and lengths"
    assert (tiny_model / "data_card.md").read_text().strip()


def test_tiny_model_learned_something(tiny_model):
    metrics = json.loads((tiny_model / "metrics.json").read_text())
    losses = metrics["loss_curve"]
    assert len(losses) >= 5
    # 80 steps of a 2-layer model: far from good, but the loss must go down.
    assert sum(losses[-3:]) / 3 < losses[0]


def test_serving_artifact_and_parity(tiny_serving):
    for name in ("model.onnx", "tokenizer.json", "config.json", "policy.yaml", "fanzha.json", "parity.json", "manifest.json"):
        assert (tiny_serving / name).is_file(), name
    parity = json.loads((tiny_serving / "parity.json").read_text())["fp32"]
    assert parity["max_abs_logit_diff"] < 1e-3 and parity["label_agreement"] == 1.0 and parity["samples"] > 100
    import onnx

    model = onnx.load(str(tiny_serving / "model.onnx"))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    dims = [d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "sequence"], "batch and sequence axes must be dynamic"
    manifest = json.loads((tiny_serving / "manifest.json").read_text())
    assert export_mod.sha256(tiny_serving / "model.onnx") == manifest["files"]["model.onnx"]


def test_export_fails_clearly_when_parity_breaks(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setattr(export_mod, "FP32_TOLERANCE", -1.0)
    with pytest.raises(export_mod.ParityError, match="parity broken"):
        export_mod.export(tiny_model, tmp_path / "serving", sample=["测试一下", "验证码 1234"])
    assert not (tmp_path / "serving").exists(), "a failed export must not leave a serving artifact"


def test_evaluate_command_writes_metrics(tiny_model, tmp_path):
    from training.evaluate import main

    data = tmp_path / "eval.jsonl"
    rows = [{"text": "您的验证码是 123456", "label": "normal"}, {"text": "加微信领取返利", "label": "fraud.brushing"},
            {"text": "全场三折回复TD退订", "label": "not_fraud"}]
    data.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    assert main([str(tiny_model), str(data), "--out", str(tmp_path / "m.json")]) == 0
    metrics = json.loads((tmp_path / "m.json").read_text())["model"]
    assert metrics["rows"] == 3 and metrics["fine_rows"] == 2
    assert {"accuracy", "macro_f1", "per_class", "confusion_matrix"} <= set(metrics)
    assert (tmp_path / "m.html").read_text().startswith("<!doctype html>")


def test_evaluate_explicit_probe_files(tiny_model, tmp_path):
    """`--probes FILE [FILE ...]` scores exactly those files, each its own set (a known file keeps its name)."""
    import shutil

    from training.evaluate import main

    tiny_model = Path(shutil.copytree(tiny_model, tmp_path / "model"))
    data = tmp_path / "few.jsonl"
    data.write_text("".join(json.dumps({"text": t, "label": l}, ensure_ascii=False) + "\n" for t, l in
                            [("今晚一起吃饭吗", "normal"), ("您的贷款已审批，请先交保证金", "fraud.loan")]), encoding="utf-8")
    mine = tmp_path / "mine.jsonl"
    mine.write_text(json.dumps({"text": "【银行】验证码 123456，请勿告诉他人", "label": "normal", "region": "cn"},
                               ensure_ascii=False) + "\n", encoding="utf-8")
    independent = REPO / "data/probes/independent/probes.jsonl"
    assert main([str(tiny_model), str(data), "--out", str(tmp_path / "r.json"), "--probes", str(mine), str(independent)]) == 0
    probes = json.loads((tmp_path / "r.json").read_text())["model"]["probes"]
    assert set(probes) == {"mine", "independent"}
    assert probes["mine"]["rows"] == 1 and probes["mine"]["per_region"]["cn"]["normal_rows"] == 1
    assert "fraud_recall" not in probes["mine"]["all"]  # no fraud rows: no recall
    assert set(probes["independent"]["per_region"]) == {"cn", "tw", "hk", "mo"}


def test_evaluate_corpus_folder_calibrates_and_compares_to_baseline(tiny_model, tmp_path):
    import shutil

    from data.synth import write_corpus
    from training.evaluate import main

    tiny_model = Path(shutil.copytree(tiny_model, tmp_path / "model"))  # calibration.json is written into it
    corpus = tmp_path / "corpus"
    write_corpus(corpus, n=500, seed=3)
    assert main([str(tiny_model), str(corpus), "--out", str(tmp_path / "eval"), "--obfuscate", "--ablate-normalization", "--probes"]) == 0
    reports = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert set(reports) == {"model", "baseline"}
    model = reports["model"]
    cal = json.loads((tiny_model / "calibration.json").read_text())
    assert 0.05 <= cal["temperature"] <= 20 and 0.5 <= cal["block_threshold"] < 1
    assert model["block_threshold"] == cal["block_threshold"]
    assert {"roc_auc", "pr_auc", "recall_at_fpr_1pct"} <= set(model["fraud_vs_rest"])
    assert "ece" in model and "synthetic" in model["per_source"]
    for e in model["confident_errors"].get("synthetic", []):  # mistakes only: the label does not allow the prediction
        assert e["predicted"] not in load_taxonomy().allowed(e["label"])
    assert set(model["robustness"]["kinds"]) >= {"symbols", "traditional", "mixture"}
    assert set(model["robustness_basic_normalization"]["kinds"]) == set(model["robustness"]["kinds"])
    old_rows = [json.loads(line) for line in open(REPO / "data/probes/ood_sms.jsonl", encoding="utf-8")]
    new_rows = [json.loads(line) for line in open(REPO / "data/probes/independent/probes.jsonl", encoding="utf-8")]
    # bare --probes: both sets, each on its own
    assert set(model["robustness_probes"]) == {"template-adjacent", "independent"}
    assert model["robustness_probes"]["template-adjacent"]["messages"] == sum(r["label"].startswith("fraud") for r in old_rows)
    assert model["robustness_probes"]["independent"]["messages"] == sum(r["label"].startswith("fraud") for r in new_rows)
    for name in ("model", "baseline"):  # the hand-written unseen messages, per set, for both
        assert set(reports[name]["probes"]) == {"template-adjacent", "independent"}
        old = reports[name]["probes"]["template-adjacent"]
        assert old["file"].endswith("ood_sms.jsonl") and old["all"]["rows"] == len(old_rows)
        assert {"probe_short", "probe_traditional", "probe_legit"} <= set(old["per_group"])
        assert 0 <= old["per_group"]["probe_traditional"]["fraud_recall"] <= 1
        assert "false_block_rate" in old["per_group"]["probe_legit"]
        new = reports[name]["probes"]["independent"]
        assert new["all"]["rows"] == len(new_rows) and set(new["per_region"]) == {"cn", "tw", "hk", "mo"}
        assert sum(e["rows"] for e in new["per_region"].values()) == len(new_rows)
        for region, e in new["per_region"].items():
            rows = [r for r in new_rows if r["region"] == region]
            assert e["rows"] == len(rows) and e["fraud_rows"] == sum(r["label"].startswith("fraud") for r in rows)
            assert e["normal_rows"] == sum(r["label"] == "normal" for r in rows)
            assert 0 <= e["normal_false_blocks"] <= e["normal_rows"]
            for k in ("fraud_recall", "fraud_block_recall", "normal_false_block_rate", "fraud_type_macro_f1"):
                assert 0 <= e[k] <= 1, (region, k)
            assert e["fraud_block_recall"] <= 1 and e["normal_false_block_rate"] == e["normal_false_blocks"] / e["normal_rows"]
        assert set(new["per_label"]) == {r["label"] for r in new_rows}
        assert "fraud_type_f1" in new["per_label"]["fraud.investment"] and "normal_rows" in new["per_label"]["normal"]
    # blocked recall is the served block rule: fraud score >= the calibrated threshold
    assert reports["model"]["probes"]["independent"]["block_threshold"] == cal["block_threshold"]
    html = (tmp_path / "eval" / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 5 and "baseline" in html and "Unseen messages" in html
    assert "Unseen messages, template-adjacent set (ood_sms.jsonl" in html
    assert "Unseen messages, independent set (probes.jsonl" in html and ">hk</td>" in html

    # export carries the calibration into the serving artifact
    export_mod.export(tiny_model, tmp_path / "serving", sample=["测试一下"])
    meta = json.loads((tmp_path / "serving" / "fanzha.json").read_text())
    policy = yaml.safe_load((tmp_path / "serving" / "policy.yaml").read_text())
    assert meta["temperature"] == pytest.approx(cal["temperature"])
    assert policy["thresholds"]["fraud"]["block"] == pytest.approx(cal["block_threshold"], abs=1e-6)
