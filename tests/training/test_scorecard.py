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


def _scored_rows(n: int, seed: int) -> tuple[np.ndarray, list[dict]]:
    """n rows, SMS and chat, legitimate and fraud, with fraud scores that overlap near the top."""
    rng = np.random.default_rng(seed)
    rows, scores = [], []
    for i in range(n):
        fraud, chat = rng.random() < 0.3, rng.random() < 0.5
        rows.append({"text": str(i), "label": "fraud.loan" if fraud else "normal",
                     "source": "golfxiao_dialogs" if chat else "spam80w"})
        scores.append(rng.beta(8, 2) if fraud else rng.beta(2, 8 if not chat else 4))
    return np.array(scores), rows


def _fraud_probs(scores: np.ndarray, taxonomy) -> np.ndarray:
    probs = np.zeros((len(scores), len(taxonomy.classes)))
    probs[:, taxonomy.classes.index("fraud.loan")], probs[:, taxonomy.classes.index("normal")] = scores, 1 - scores
    return probs


def test_the_certification_spread_is_the_scorecard_on_resampled_certificates():
    """One engine: on the validation rows themselves (the identity resample), every percentile is
    the scorecard's own figure at the thresholds the certificate fits; on random resamples the
    figures move (the highest legitimate rows decide the thresholds)."""
    from data.hygiene import channel_thresholds
    from training.scorecard import certification_spread, scorecard

    taxonomy = load_taxonomy()
    fraud_val, val = _scored_rows(6000, seed=1)
    fraud_test, test = _scored_rows(3000, seed=2)
    legit = np.array([r["label"] == "normal" for r in val])
    fit = channel_thresholds(fraud_val, legit, [r["source"] for r in val], "sms", 0.001, 0.95)
    card = scorecard(_fraud_probs(fraud_test, taxonomy), test, taxonomy, fit["threshold"],
                     chat_block_threshold=fit["chat_threshold"])
    same = certification_spread(fraud_val, val, fraud_test, test, taxonomy, "sms", 0.001, 0.95,
                                samples=[np.arange(len(val))])
    for channel in ("sms", "chat"):
        for key in ("fraud_block_recall", "false_block_rate"):
            assert same[channel][key] == [card["by_channel"][channel][key]] * 3
    assert same["sms"]["block_threshold"] == [fit["threshold"]] * 3
    assert same["chat"]["block_threshold"] == [fit["chat_threshold"]] * 3
    spread = certification_spread(fraud_val, val, fraud_test, test, taxonomy, "sms", 0.001, 0.95, draws=50)
    assert spread["draws"] == 50 and spread["quantiles"] == [0.05, 0.5, 0.95]
    for channel in ("sms", "chat"):
        low, median, high = spread[channel]["fraud_block_recall"]
        assert low <= median <= high and low < high
