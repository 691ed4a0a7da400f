"""Classification metrics over the taxonomy, with coarse labels handled honestly.

Fine-labelled rows give accuracy, macro-F1, per-class P/R/F1 and the confusion matrix; every
row (coarse ones too) counts for `allowed_accuracy` (the prediction is in the label's set)
and for category accuracy (normal / spam / fraud).

The predicted label follows the served rule by default (`rule="served"`, data.taxonomy
`served_labels`: the best class inside the most probable category, as serving/predictor.py
answers); `rule="argmax"` is the plain argmax, kept for comparison. The taxonomy's class order
must be the model's own (`Taxonomy.with_classes(id2label)`).
"""
from __future__ import annotations

import numpy as np

from data.taxonomy import Taxonomy, category_of, served_labels
from data.taxonomy import label_kinds  # noqa: F401  (re-exported)

RULES = ("served", "argmax")


def predict(probs: np.ndarray, taxonomy: Taxonomy, rule: str = "served") -> np.ndarray:
    """Predicted class indices under `rule` (served: best class of the most probable category)."""
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    return served_labels(probs, taxonomy.classes) if rule == "served" else probs.argmax(axis=1)


def classification_metrics(probs: np.ndarray, labels: list[str], taxonomy: Taxonomy, rule: str = "served") -> dict:
    classes = list(taxonomy.classes)
    pred = predict(probs, taxonomy, rule)
    allowed = np.array([taxonomy.allowed_mask(label) for label in labels], dtype=bool)
    fine = np.array([label in taxonomy.label2id for label in labels])
    out: dict = {
        "rows": len(labels),
        "fine_rows": int(fine.sum()),
        "allowed_accuracy": float(allowed[np.arange(len(pred)), pred].mean()) if len(pred) else 0.0,
    }
    # Category accuracy: a coarse label is right when the predicted category is the only one it allows.
    pred_cat = [category_of(classes[p]) for p in pred]
    cat_ok = [pc in {category_of(c) for c in taxonomy.allowed(label)} for pc, label in zip(pred_cat, labels)]
    out["category_accuracy"] = float(np.mean(cat_ok)) if cat_ok else 0.0

    y = np.array([taxonomy.label2id[label] for label, f in zip(labels, fine) if f], dtype=np.int64)
    p = pred[fine]
    k = len(classes)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y, p), 1)
    per_class = {}
    f1s = []
    for i, name in enumerate(classes):
        tp = confusion[i, i]
        support = confusion[i].sum()
        predicted = confusion[:, i].sum()
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": float(precision), "recall": float(recall), "f1": float(f1), "support": int(support)}
        if support:
            f1s.append(f1)
    out["accuracy"] = float((y == p).mean()) if len(y) else 0.0
    out["macro_f1"] = float(np.mean(f1s)) if f1s else 0.0
    out["per_class"] = per_class
    out["confusion_matrix"] = {"labels": classes, "matrix": confusion.tolist()}
    return out


def fraud_vs_rest(fraud_score: np.ndarray, is_fraud: np.ndarray) -> dict:
    """ROC-AUC, PR-AUC and recall at 1% / 0.1% false-positive rate for fraud vs everything else."""
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

    if is_fraud.all() or not is_fraud.any():
        return {"rows": int(len(is_fraud)), "note": "needs both fraud and non-fraud rows"}
    fpr, tpr, _ = roc_curve(is_fraud, fraud_score)
    out = {"rows": int(len(is_fraud)), "positives": int(is_fraud.sum()),
           "roc_auc": float(roc_auc_score(is_fraud, fraud_score)),
           "pr_auc": float(average_precision_score(is_fraud, fraud_score))}
    for name, limit in (("recall_at_fpr_1pct", 0.01), ("recall_at_fpr_0.1pct", 0.001)):
        out[name] = float(tpr[fpr <= limit].max()) if (fpr <= limit).any() else 0.0
    return out


def category_scores(probs: np.ndarray, taxonomy: Taxonomy) -> dict[str, np.ndarray]:
    cats = np.array([category_of(c) for c in taxonomy.classes])
    return {c: probs[:, cats == c].sum(axis=1) for c in ("normal", "spam", "fraud")}
