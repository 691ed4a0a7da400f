"""The headline figures of an evaluation, from class probabilities and labelled rows.

Everything PRODUCT.md and the issues measure: per-class P/R/F1 and confusion (training.metrics),
fraud-vs-rest ROC/PR-AUC and recall at low FPR, calibration (ECE), false blocks of legitimate
messages at the policy's block threshold, a per-source breakdown, and the two dataset-specific
targets: fraud-type macro-F1 on the telecom fraud texts (4 types + 正常 as "not fraud") and
spam-vs-ham accuracy on the 80万 SMS (ham = predicted category normal).

Labels are predicted with the served rule (training.metrics `predict`: the best class inside the
most probable category, as serving answers); `scorecard` also keeps the headline figures under
the plain argmax under `argmax_rule`, so that the two can be compared. The taxonomy's class
order must be the model's own (`Taxonomy.with_classes`).
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from data.hygiene import chat_rows
from data.taxonomy import Taxonomy, category_of
from training.calibration import expected_calibration_error
from training.metrics import category_scores, classification_metrics, fraud_vs_rest, label_kinds, predict


def _macro_f1(truth: list[str], pred: list[str]) -> float:
    f1s = []
    for c in sorted(set(truth)):
        tp = sum(t == c and p == c for t, p in zip(truth, pred))
        fp = sum(t != c and p == c for t, p in zip(truth, pred))
        fn = sum(t == c and p != c for t, p in zip(truth, pred))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return float(np.mean(f1s)) if f1s else 0.0


TARGET_SOURCES = ("telecom_fraud_texts", "spam80w")  # the datasets with a target of their own


HEADLINE = ("accuracy", "macro_f1", "category_accuracy", "false_block_rate", "fraud_block_recall",
            "telecom_fraud_type_macro_f1", "spam80w_spam_vs_ham_accuracy")


def dataset_targets(probs: np.ndarray, rows: list[dict], taxonomy: Taxonomy, rule: str = "served") -> dict:
    classes = taxonomy.classes
    pred = [classes[i] for i in predict(probs, taxonomy, rule)]
    out = {}
    tel = [(r["label"], p) for r, p in zip(rows, pred) if r.get("source") == "telecom_fraud_texts"]
    if tel:
        fold = lambda c: "not_fraud" if category_of(c) != "fraud" else c
        out["telecom_fraud_type_macro_f1"] = _macro_f1([fold(t) for t, _ in tel], [fold(p) for _, p in tel])
        out["telecom_rows"] = len(tel)
    sms = [(r["label"], p) for r, p in zip(rows, pred) if r.get("source") == "spam80w" and r["label"] in ("normal", "spam")]
    if sms:
        out["spam80w_spam_vs_ham_accuracy"] = float(np.mean([(t == "normal") == (category_of(p) == "normal") for t, p in sms]))
        out["spam80w_rows"] = len(sms)
    return out


def blocked_by_channel(fraud_score: np.ndarray, is_chat: np.ndarray, block_threshold: float,
                       chat_block_threshold: float | None = None) -> np.ndarray:
    """Which rows are blocked as served: chat utterances at /chat's threshold (when there is one),
    every other row at the SMS block threshold."""
    chat = block_threshold if chat_block_threshold is None else chat_block_threshold
    return fraud_score >= np.where(is_chat, chat, block_threshold)


def channel_figures(blocked: np.ndarray, is_fraud: np.ndarray, is_legit: np.ndarray, is_chat: np.ndarray) -> dict:
    """`by_channel`: rows, false-block rate and blocked fraud recall of the SMS and the chat rows."""
    return {channel: {"rows": int(sel.sum()),
                      "false_block_rate": float(blocked[sel & is_legit].mean()) if (sel & is_legit).any() else None,
                      "fraud_block_recall": float(blocked[sel & is_fraud].mean()) if (sel & is_fraud).any() else None}
            for channel, sel in (("sms", ~is_chat), ("chat", is_chat)) if sel.any()}


SPREAD_DRAWS = 200
SPREAD_QUANTILES = (0.05, 0.5, 0.95)


def certification_spread(fraud_val: np.ndarray, val: list[dict], fraud_test: np.ndarray, test: list[dict],
                         taxonomy: Taxonomy, legit_set: str, max_fpr: float, confidence: float,
                         draws: int = SPREAD_DRAWS, seed: int = 0, samples=None) -> dict:
    """How far the blocked figures on the test rows move with the certification sample alone.

    The block thresholds are fitted on the few highest-scoring legitimate validation rows (at
    0.1 % with 95 % confidence, ~6,000 legitimate chat utterances allow 2 false blocks), so
    another validation sample of the same size gives another threshold, and another blocked
    recall, for the same weights. Each draw resamples the validation rows with replacement, fits
    both channels' thresholds as export certifies them (data.hygiene.channel_thresholds) and
    judges the test rows as `scorecard` does (`blocked_by_channel`); the result is the 5th, 50th
    and 95th percentile of each channel's blocked recall, false-block rate and threshold. It says
    nothing of training noise (another seed is another model). `samples`: the index arrays to use
    instead of random draws."""
    from data.hygiene import channel_thresholds

    v_fraud, v_legit = label_kinds([r["label"] for r in val], taxonomy)
    v_sources = np.array([r.get("source") or "" for r in val], dtype=object)
    t_fraud, t_legit = label_kinds([r["label"] for r in test], taxonomy)
    t_chat = chat_rows([r.get("source") for r in test])
    if samples is None:
        rng = np.random.default_rng(seed)
        samples = [rng.integers(0, len(val), len(val)) for _ in range(draws)]
    figures: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for idx in samples:
        fit = channel_thresholds(fraud_val[idx], v_legit[idx], list(v_sources[idx]), legit_set, max_fpr, confidence)
        blocked = blocked_by_channel(fraud_test, t_chat, fit["threshold"], fit["chat_threshold"])
        for channel, entry in channel_figures(blocked, t_fraud, t_legit, t_chat).items():
            entry["block_threshold"] = fit["chat_threshold"] if channel == "chat" and fit["chat_threshold"] is not None \
                else fit["threshold"]
            for key in ("fraud_block_recall", "false_block_rate", "block_threshold"):
                if entry[key] is not None:
                    figures[channel][key].append(entry[key])
    return {"draws": len(samples), "seed": seed, "quantiles": list(SPREAD_QUANTILES),
            **{channel: {key: [float(q) for q in np.quantile(values, SPREAD_QUANTILES)] for key, values in keys.items()}
               for channel, keys in figures.items()}}


def scorecard(probs: np.ndarray, rows: list[dict], taxonomy: Taxonomy, block_threshold: float,
              rule: str = "served", chat_block_threshold: float | None = None) -> dict:
    """`chat_block_threshold`: a model certified with `certify_legit: sms` serves SMS on
    `block_threshold` and chat utterances (data/hygiene.py CHAT_SOURCES, which reach it through
    /chat) on this one; each row is then judged at its channel's threshold, as served."""
    labels = [r["label"] for r in rows]
    out = classification_metrics(probs, labels, taxonomy, rule)
    out["label_rule"] = rule
    cats = category_scores(probs, taxonomy)
    is_fraud, is_legit = label_kinds(labels, taxonomy)
    known = is_fraud | is_legit
    out["fraud_vs_rest"] = fraud_vs_rest(cats["fraud"][known], is_fraud[known])
    is_chat = chat_rows([r.get("source") for r in rows])
    blocked = blocked_by_channel(cats["fraud"], is_chat, block_threshold, chat_block_threshold)
    out["block_threshold"] = block_threshold
    if chat_block_threshold is not None:
        out["chat_block_threshold"] = chat_block_threshold
    out["by_channel"] = channel_figures(blocked, is_fraud, is_legit, is_chat)
    out["false_block_rate"] = float(blocked[is_legit].mean()) if is_legit.any() else None
    out["fraud_block_recall"] = float(blocked[is_fraud].mean()) if is_fraud.any() else None
    fine = np.array([label in taxonomy.label2id for label in labels])
    if fine.any():
        y = np.array([taxonomy.label2id[label] for label, f in zip(labels, fine) if f])
        pred = predict(probs[fine], taxonomy, rule)
        conf = probs[fine][np.arange(len(pred)), pred]
        out["ece"], out["reliability"] = expected_calibration_error(conf, pred == y)
    out.update(dataset_targets(probs, rows, taxonomy, rule))
    by_source = defaultdict(list)
    for i, r in enumerate(rows):
        by_source[r.get("source", "?")].append(i)
    out["per_source"] = {}
    for source, idx in sorted(by_source.items()):
        m = classification_metrics(probs[idx], [labels[i] for i in idx], taxonomy, rule)
        entry = {k: m[k] for k in ("rows", "fine_rows", "accuracy", "macro_f1", "category_accuracy", "allowed_accuracy")}
        legit = is_legit[idx]
        entry["false_block_rate"] = float(blocked[idx][legit].mean()) if legit.any() else None
        fraud = is_fraud[idx]
        entry["fraud_block_recall"] = float(blocked[idx][fraud].mean()) if fraud.any() else None
        out["per_source"][source] = entry
    if rule == "served":  # the same figures under plain argmax, for comparison (thresholds do not depend on it)
        plain = classification_metrics(probs, labels, taxonomy, "argmax")
        plain.update(dataset_targets(probs, rows, taxonomy, "argmax"))
        out["argmax_rule"] = {k: (plain[k] if k in plain else out.get(k)) for k in HEADLINE if k in plain or k in out}
    return out


def confident_errors(probs: np.ndarray, rows: list[dict], taxonomy: Taxonomy, per_source: int = 8,
                     max_chars: int = 160, rule: str = "served") -> dict[str, list[dict]]:
    """The most confident mistakes of each source (top class not allowed by the label), for reading:
    in these datasets many turn out to be label ambiguity rather than model error."""
    allowed = np.array([taxonomy.allowed_mask(r["label"]) for r in rows], dtype=bool)
    top = predict(probs, taxonomy, rule)
    wrong = ~allowed[np.arange(len(rows)), top]
    out: dict[str, list[dict]] = {}
    for i in sorted(np.flatnonzero(wrong), key=lambda i: -probs[i, top[i]]):
        errors = out.setdefault(rows[i].get("source", "?"), [])
        if len(errors) < per_source:
            text = rows[i]["text"]
            errors.append({"text": text if len(text) <= max_chars else text[:max_chars] + "…", "label": rows[i]["label"],
                           "predicted": taxonomy.classes[top[i]], "probability": float(probs[i, top[i]])})
    return out
