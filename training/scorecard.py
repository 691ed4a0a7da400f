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
    per_row = np.where(is_chat, block_threshold if chat_block_threshold is None else chat_block_threshold,
                       block_threshold)
    blocked = cats["fraud"] >= per_row
    out["block_threshold"] = block_threshold
    if chat_block_threshold is not None:
        out["chat_block_threshold"] = chat_block_threshold
    out["by_channel"] = {
        channel: {"rows": int(sel.sum()),
                  "false_block_rate": float(blocked[sel & is_legit].mean()) if (sel & is_legit).any() else None,
                  "fraud_block_recall": float(blocked[sel & is_fraud].mean()) if (sel & is_fraud).any() else None}
        for channel, sel in (("sms", ~is_chat), ("chat", is_chat)) if sel.any()}
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
