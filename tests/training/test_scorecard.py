"""Scorecard pieces that read rows: the most confident mistakes per source."""
import numpy as np

from data.taxonomy import load_taxonomy
from training.scorecard import confident_errors

TAX = load_taxonomy()


def _probs(*labels_and_p):
    out = np.full((len(labels_and_p), len(TAX.classes)), 0.0)
    for i, (label, p) in enumerate(labels_and_p):
        out[i] = (1 - p) / (len(TAX.classes) - 1)
        out[i, TAX.label2id[label]] = p
    return out


def test_confident_errors_ranked_per_source_and_coarse_labels_respected():
    rows = [{"source": "a", "label": "normal", "text": "x" * 300},                 # wrong, 0.9
            {"source": "a", "label": "fraud.loan", "text": "贷款"},                 # wrong, 0.99
            {"source": "a", "label": "spam", "text": "广告"},                        # right
            {"source": "b", "label": "not_fraud", "text": "退订"},                  # spam is allowed: right
            {"source": "b", "label": "fraud", "text": "安全账户"},                  # any fraud type is allowed: right
            {"source": "b", "label": "not_fraud", "text": "领导"}]                  # wrong, 0.6
    probs = _probs(("fraud.loan", 0.9), ("fraud.fake_customer_service", 0.99), ("spam", 0.8),
                   ("spam", 0.7), ("fraud.investment", 0.5), ("fraud.impersonate_acquaintance", 0.6))
    out = confident_errors(probs, rows, TAX, max_chars=50)
    assert [e["text"] for e in out["a"]] == ["贷款", "x" * 50 + "…"]  # most confident first, long texts cut
    assert out["a"][0] == {"text": "贷款", "label": "fraud.loan", "predicted": "fraud.fake_customer_service",
                           "probability": 0.99}
    assert [e["text"] for e in out["b"]] == ["领导"]
    assert list(confident_errors(probs, rows, TAX, per_source=1)["a"][0].values())[0] == "贷款"
    assert confident_errors(probs[2:5], rows[2:5], TAX) == {}
