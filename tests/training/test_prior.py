"""Prior correction: the class weights' shift comes out of the classifier bias, once."""
import json
import math
import shutil

import numpy as np
import pytest
import yaml
from safetensors.numpy import load_file

from data.taxonomy import load_taxonomy
from training.prior import correct_folder, main, weights_from_counts


def test_training_records_the_correction_it_applied(tiny_model):
    prior = json.loads((tiny_model / "prior.json").read_text(encoding="utf-8"))
    cfg = yaml.safe_load((tiny_model / "train_config.yaml").read_text(encoding="utf-8"))
    counts = json.loads((tiny_model / "data_manifest.json").read_text(encoding="utf-8"))["labels"]["train"]
    weights = weights_from_counts(counts, load_taxonomy(cfg["taxonomy"]), cfg["class_weights"])
    shift = prior["subtracted_from_classifier_bias"]
    assert cfg["prior_correction"] is True and prior["class_weights"] == cfg["class_weights"] == "balanced"
    assert shift == pytest.approx({c: math.log(w) for c, w in weights.items()})
    assert shift["normal"] < 0 < max(shift.values()), "the majority class is boosted, rare ones damped"


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
