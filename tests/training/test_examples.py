"""Training-mix controls: caps, repeats and class weights."""
from collections import Counter

import pytest

from data.taxonomy import load_taxonomy
from training.examples import DataError, apply_caps, apply_repeat, weights_from_counts


def _rows():
    rows = [{"text": f"n{i}", "label": "normal", "source": "spam80w"} for i in range(90)]
    rows += [{"text": f"l{i}", "label": "fraud.loan", "source": "telecom_fraud_texts"} for i in range(10)]
    rows += [{"text": f"x{i}", "label": "not_fraud", "source": "telecom_fraud_texts"} for i in range(5)]
    return rows


def test_repeat_by_source_label_then_source_then_label():
    rows = _rows()
    out = apply_repeat(rows, {"telecom_fraud_texts:fraud.loan": 3, "telecom_fraud_texts": 2})
    assert out[: len(rows)] == rows  # originals first, in order
    texts = [r["text"] for r in out]
    assert texts.count("l0") == 3 and texts.count("x0") == 2 and texts.count("n0") == 1
    assert len(out) == 90 + 30 + 10
    by_label = apply_repeat(rows, {"normal": 2})
    assert len(by_label) == len(rows) + 90


def test_repeat_key_matching_nothing_is_an_error():
    with pytest.raises(DataError, match="telecom:fraud.loan"):
        apply_repeat(_rows(), {"telecom:fraud.loan": 2})


def test_cap_key_matching_nothing_is_an_error():
    with pytest.raises(DataError, match=r"data.caps: no training rows match \['spam80w:nromal'\]"):
        apply_caps(_rows(), {"spam80w:normal": 40, "spam80w:nromal": 40}, seed=0)


def test_caps_then_weights():
    taxonomy = load_taxonomy("configs/taxonomy.yaml")
    rows = apply_caps(_rows(), {"spam80w:normal": 40}, seed=0)
    assert sum(r["label"] == "normal" for r in rows) == 40
    counts = Counter(r["label"] for r in rows)  # as the data manifest records them
    balanced = weights_from_counts(counts, taxonomy, "balanced")
    sqrt = weights_from_counts(counts, taxonomy, "sqrt")
    # fine labels only: 40 normal, 10 loan -> balanced 50/(2*40)=0.625 and 50/(2*10)=2.5
    assert balanced["normal"] == pytest.approx(0.625) and balanced["fraud.loan"] == pytest.approx(2.5)
    assert sqrt["normal"] == pytest.approx(0.625 ** 0.5) and sqrt["fraud.loan"] == pytest.approx(2.5 ** 0.5)
    # the square root keeps more of the prior: the loan/normal ratio drops from 4 to 2
    assert sqrt["fraud.loan"] / sqrt["normal"] == pytest.approx(2.0)


@pytest.mark.parametrize("override, message", [
    ('data.caps={"spam80w:nromal": 10}', "data.caps: no training rows match ['spam80w:nromal']"),
    ('data.repeat={"telecom": 2}', "data.repeat: no training rows match ['telecom']"),
    ("class_weights=auto", "class_weights must be one of"),
])
def test_train_command_reports_config_and_data_mistakes_without_a_traceback(tmp_path, capsys, override, message):
    from training.train import main

    assert main(["--set", "data.synthetic_n=120", "--set", override, "--set", "max_steps=1",
                 "--output", str(tmp_path / "model")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"fanzha train: error: {message}") and "Traceback" not in err
    assert not (tmp_path / "model" / "model.safetensors").exists()
