"""Export variants (fused, int8, fp16), the int8 accuracy guard and the timed serving default."""
import json

import numpy as np
import onnx
import pytest

from data.taxonomy import load_taxonomy
from training import export as export_mod
from training import optimize

pytestmark = pytest.mark.slow


def test_every_variant_is_exported_checked_and_listed(tiny_serving):
    for name in optimize.VARIANTS.values():
        assert (tiny_serving / name).is_file(), name
    parity = json.loads((tiny_serving / "parity.json").read_text())
    assert parity["opt"]["max_abs_logit_diff"] < 1e-3 and parity["opt"]["label_agreement"] == 1.0
    assert {"Attention", "SkipLayerNormalization"} <= set(parity["opt"]["fused_operators"]), "attention must be fused"
    guard = parity["int8"]
    assert guard["passed"] and guard["rows"] > 50 and guard["label_agreement"] >= optimize.MIN_AGREEMENT
    assert guard["macro_f1_loss_points"] <= 0.3 and "validation split" in guard["data"]
    assert "max_abs_logit_diff" in parity["fp16"] or "note" in parity["fp16"]
    timing = parity["timing"]
    assert all(timing[v]["batch1_ms_p50"] > 0 and timing[v]["batch32_msg_per_s"] > 0 for v in optimize.CPU_VARIANTS)
    meta = json.loads((tiny_serving / "fanzha.json").read_text())
    assert meta["default_variant"] == parity["default_variant"] in [optimize.VARIANTS[v] for v in optimize.CPU_VARIANTS]
    manifest = json.loads((tiny_serving / "manifest.json").read_text())
    assert set(optimize.VARIANTS.values()) <= set(manifest["files"])


def test_int8_variant_is_quantized_and_keeps_embeddings_in_fp32(tiny_serving):
    ops = {n.op_type for n in onnx.load(str(tiny_serving / "model.int8.onnx")).graph.node}
    assert "QAttention" in ops and ("MatMulInteger" in ops or "DynamicQuantizeMatMul" in ops)
    assert "EmbedLayerNormalization" in ops and "QEmbedLayerNormalization" not in ops
    fp16 = onnx.load(str(tiny_serving / "model.fp16.onnx"))
    assert fp16.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert fp16.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT, "fp32 in and out"


def test_fallback_recipe_keeps_the_last_layer_in_fp32(tiny_serving, tmp_path):
    optimize.quantize(tiny_serving / "model.opt.onnx", tmp_path / "q.onnx", "last-layer-fp32")
    nodes = onnx.load(str(tmp_path / "q.onnx")).graph.node
    ops = [n.op_type for n in nodes]
    assert ops.count("QAttention") == 1 and ops.count("Attention") == 1, "2 layers: the first quantized, the last not"
    assert any(n.op_type == "MatMul" and "layer.1/" in n.name for n in nodes)
    assert not any(n.op_type == "MatMul" and "layer.0/" in n.name for n in nodes)
    with pytest.raises(ValueError, match="unknown int8 recipe"):
        optimize.quantize(tiny_serving / "model.opt.onnx", tmp_path / "x.onnx", "everything")


def test_guard_report_passes_and_fails_on_the_limits():
    tax = load_taxonomy()
    labels = [tax.classes[i % len(tax.classes)] for i in range(400)]
    reference = np.eye(len(tax.classes), dtype=np.float32)[[i % len(tax.classes) for i in range(400)]] * 5
    same = optimize.guard_report(reference, reference + 0.01, labels, tax)
    assert same["passed"] and same["label_agreement"] == 1.0 and same["macro_f1_loss_points"] == 0
    flipped = reference.copy()
    flipped[:4] = flipped[:4][:, ::-1]  # 4 of 400 labels change: 99.0 % agreement
    report = optimize.guard_report(reference, flipped, labels, tax)
    assert not report["passed"] and report["label_agreement"] == pytest.approx(0.99)
    with pytest.raises(optimize.GuardError, match=r"int8 variant \(every recipe: all-layers, last-layer-fp32\) fails the accuracy guard.*agreement.*0\.9900.*--no-int8"):
        optimize.check_guard("int8", report)
    assert optimize.guard_report(reference, flipped, labels, tax, min_agreement=0.98, max_f1_loss=0.05)["passed"]


def test_export_fails_clearly_when_the_guard_is_impossible(tiny_model, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(optimize, "MIN_AGREEMENT", 1.01)
    with pytest.raises(optimize.GuardError, match=r"int8 variant \(every recipe.*\) fails the accuracy guard"):
        export_mod.export(tiny_model, tmp_path / "serving", sample=["测试一下", "验证码 1234"])
    assert not (tmp_path / "serving").exists(), "a failed export must not leave a serving artifact"
    report = json.loads((tmp_path / "serving.tmp" / "parity.json").read_text())
    assert report["int8"]["passed"] is False, "the report of the failed guard stays for inspection"
    assert [r["recipe"] for r in report["int8"]["recipes_failed"]] == ["all-layers"], "every recipe was tried"
    assert report["int8"]["recipe"] == "last-layer-fp32"
    assert export_mod.main([str(tiny_model), str(tmp_path / "serving")]) == 1
    assert "accuracy guard" in capsys.readouterr().err


def test_int8_optional_ships_fp32_when_the_guard_fails(tiny_model, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(optimize, "MIN_AGREEMENT", 1.01)
    out = tmp_path / "serving"
    assert export_mod.main([str(tiny_model), str(out), "--int8-optional"]) == 0
    assert not (out / "model.int8.onnx").exists() and (out / "model.opt.onnx").exists()
    report = json.loads((out / "parity.json").read_text())
    assert report["int8"]["passed"] is False and report["int8"]["shipped"] is False
    assert json.loads((out / "fanzha.json").read_text())["default_variant"] != "model.int8.onnx"
    assert "int8 fails the accuracy guard" in capsys.readouterr().err


def test_no_int8_export_and_forced_default(tiny_model, tmp_path):
    out = tmp_path / "serving"
    assert export_mod.main([str(tiny_model), str(out), "--no-int8", "--default-variant", "fp32"]) == 0
    assert not (out / "model.int8.onnx").exists() and (out / "model.opt.onnx").is_file()
    assert json.loads((out / "fanzha.json").read_text())["default_variant"] == "model.onnx"
    assert "int8" not in json.loads((out / "parity.json").read_text())


def test_guard_data_is_the_models_own_validation_split_or_given(tiny_model, tmp_path):
    rows, where = optimize.validation_rows(tiny_model, cap=20)
    assert len(rows) == 20 and "validation split" in where
    assert rows == optimize.validation_rows(tiny_model, cap=20)[0], "a seeded, deterministic sample"
    given = tmp_path / "val.jsonl"
    given.write_text('{"text": "验证码 1234", "label": "normal"}\n', encoding="utf-8")
    assert optimize.validation_rows(tiny_model, data=given)[0][0]["label"] == "normal"
    broken = tmp_path / "model"
    broken.mkdir()
    (broken / "train_config.yaml").write_text("data: {synthetic_n: 0, corpus_dirs: [/nonexistent/corpus]}\n")
    with pytest.raises(optimize.GuardError, match="validation data for the accuracy guard not found.*--guard-data"):
        optimize.validation_rows(broken)


def test_timing_command_and_choice(tiny_serving, capsys):
    assert optimize.main([str(tiny_serving), "--n", "64"]) == 0
    out = capsys.readouterr().out
    assert "int8" in out and "fastest here:" in out
    timings = {"fp32": {"batch1_ms_p50": 10, "batch32_msg_per_s": 50}, "opt": {"batch1_ms_p50": 8, "batch32_msg_per_s": 60},
               "int8": {"batch1_ms_p50": 3, "batch32_msg_per_s": 180}}
    assert optimize.fastest(timings) == "int8"
    timings["int8"]["batch32_msg_per_s"] = 15  # fast alone, slow in batches: the sum of relative times decides
    assert optimize.fastest(timings) == "opt"


def test_a_validation_split_that_changed_since_training_is_refused(tiny_model, tmp_path):
    """Export certifies on the model's own validation split, rebuilt from train_config.yaml. When the
    rebuilt rows are not the ones the model was trained beside (a generator changed since), the
    threshold would be certified on other rows: refused, naming the file, unless --guard-data."""
    import json
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    manifest = json.loads((model / "data_manifest.json").read_text(encoding="utf-8"))
    entry = next(f for f in manifest["files"] if f["path"].endswith("validation.jsonl"))
    entry["sha256"] = "0" * 64  # what a model trained on an older generator's rows records
    (model / "data_manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(optimize.GuardError, match=r"validation split rebuilt .* is not the one this model was trained "
                                                  r"beside: synthetic \(sha256 000000000000 at training.*--guard-data"):
        optimize.validation_rows(model, cap=20)
    given = tmp_path / "val.jsonl"
    given.write_text('{"text": "验证码 1234", "label": "normal"}\n', encoding="utf-8")
    assert optimize.validation_rows(model, data=given)[0][0]["label"] == "normal"
