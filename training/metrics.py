"""Classification metrics over the taxonomy, with coarse labels handled honestly.

Fine-labelled rows give accuracy, macro-F1, per-class P/R/F1 and the confusion matrix; every
row (coarse ones too) counts for `allowed_accuracy` (the prediction is in the label's set)
and for category accuracy (normal / spam / fraud).
"""
from __future__ import annotations

import numpy as np

from data.taxonomy import Taxonomy, category_of


def classification_metrics(probs: np.ndarray, labels: list[str], taxonomy: Taxonomy) -> dict:
    classes = list(taxonomy.classes)
    pred = probs.argmax(axis=1)
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
