"""Prior correction: the class weights' shift comes out of the classifier bias, once."""
import json
import math
import shutil

import numpy as np
import pytest
import yaml
from safetensors.numpy import load_file

from data.taxonomy import load_taxonomy
from training.prior import correct_folder, log_weights, main, weights_from_counts


def test_training_records_the_correction_it_applied(tiny_model):
    prior = json.loads((tiny_model / "prior.json").read_text(encoding="utf-8"))
    cfg = yaml.safe_load((tiny_model / "train_config.yaml").read_text(encoding="utf-8"))
    counts = json.loads((tiny_model / "data_manifest.json").read_text(encoding="utf-8"))["labels"]["train"]
    classes = load_taxonomy(cfg["taxonomy"]).classes
    # expectation written out here, not by the code under test: balanced = total / (k * n_c), capped
    # at 10, over the k fine classes present (coarse labels count for none); absent classes weigh 1
    present = {c: n for c, n in counts.items() if c in classes and n}
    total = sum(present.values())
    expected = {c: math.log(min(10.0, total / (len(present) * present[c]))) if c in present else 0.0 for c in classes}
    shift = prior["subtracted_from_classifier_bias"]
    assert cfg["prior_correction"] is True and prior["class_weights"] == cfg["class_weights"] == "balanced"
    assert shift == pytest.approx(expected)
    assert shift["normal"] < 0 < max(shift.values()), "the majority class is boosted, rare ones damped"


def test_balanced_weights_and_shift_hand_computed():
    """60 normal, 30 spam, 10 fraud.loan (+ coarse rows, which count for none): total 100 over 3
    classes -> weights 100/180, 100/90, 100/30; the shift is their log; absent classes 1 (log 0)."""
    tax = load_taxonomy()
    weights = weights_from_counts({"normal": 60, "spam": 30, "fraud.loan": 10, "not_fraud": 500}, tax, "balanced")
    assert weights["normal"] == pytest.approx(0.555555, abs=1e-6)
    assert weights["spam"] == pytest.approx(1.111111, abs=1e-6)
    assert weights["fraud.loan"] == pytest.approx(3.333333, abs=1e-6)
    assert weights["fraud.investment"] == 1.0
    shift = dict(zip(tax.classes, log_weights(weights, tax.classes)))
    assert shift["normal"] == pytest.approx(-0.587787, abs=1e-6)
    assert shift["spam"] == pytest.approx(0.105361, abs=1e-6)
    assert shift["fraud.loan"] == pytest.approx(1.203973, abs=1e-6)
    assert shift["fraud.investment"] == 0.0
    sqrt = weights_from_counts({"normal": 60, "spam": 30, "fraud.loan": 10}, tax, "sqrt")
    assert sqrt["fraud.loan"] == pytest.approx(1.825742, abs=1e-6)
    assert weights_from_counts({"normal": 1, "fraud.loan": 1000}, tax, "balanced")["normal"] == 10.0  # capped


def test_correct_folder_applies_once(tiny_model, tmp_path, capsys):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    assert main([str(folder)]) == 2 and "already applied" in capsys.readouterr().err
    (folder / "prior.json").unlink()
    before = load_file(folder / "model.safetensors")["classifier.bias"].copy()
    shift = correct_folder(folder)
    after = load_file(folder / "model.safetensors")["classifier.bias"]
    labels = json.loads((folder / "config.json").read_text(encoding="utf-8"))["id2label"]
    expected = before - np.array([shift[labels[str(i)]] for i in range(len(before))], dtype=before.dtype)
    np.testing.assert_allclose(after, expected, rtol=0, atol=1e-6)
    assert (folder / "prior.json").is_file()
    with pytest.raises(ValueError, match="already applied"):
        correct_folder(folder)


def test_unweighted_model_has_nothing_to_correct(tiny_model, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    (folder / "prior.json").unlink()
    cfg = yaml.safe_load((folder / "train_config.yaml").read_text(encoding="utf-8"))
    cfg["class_weights"] = "none"
    (folder / "train_config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    with pytest.raises(ValueError, match="without class weights"):
        correct_folder(folder)
