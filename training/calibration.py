"""Calibration and thresholds chosen on validation data.

Temperature scaling (Guo et al., 2017): one scalar T dividing the logits, fitted by minimising
the allowed-set negative log-likelihood on validation; it changes confidence, not the argmax.
The block threshold on `fraud_score` is chosen on validation so that at most `max_fpr` of
legitimate messages (rows whose label allows no fraud class) would be blocked.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def allowed_nll(logits: np.ndarray, allowed: np.ndarray, temperature: float) -> float:
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    log_allowed = np.log(np.where(allowed, np.exp(z), 0.0).sum(axis=1) + 1e-30)
    return float((log_norm - log_allowed).mean())


def fit_temperature(logits: np.ndarray, allowed: np.ndarray) -> float:
    result = minimize_scalar(lambda log_t: allowed_nll(logits, allowed, float(np.exp(log_t))),
                             bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(result.x))


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> tuple[float, dict]:
    """ECE of top-label confidence, plus the reliability-diagram table."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    ece, table = 0.0, {"confidence": [], "accuracy": [], "count": []}
    for b in range(bins):
        sel = which == b
        if not sel.any():
            continue
        conf, acc = float(confidence[sel].mean()), float(correct[sel].mean())
        ece += sel.mean() * abs(conf - acc)
        table["confidence"].append(conf)
        table["accuracy"].append(acc)
        table["count"].append(int(sel.sum()))
    return float(ece), table


def allowed_false_blocks(n: int, max_fpr: float, confidence: float = 0.95) -> int:
    """The most false blocks among `n` legitimate validation rows that still keep the false-block
    rate at most `max_fpr` with `confidence` (one-sided Clopper-Pearson upper bound); -1 when even
    zero cannot show it (too few rows). confidence 0: the point estimate floor(max_fpr * n)."""
    if n <= 0:
        return -1
    if confidence <= 0:
        return int(np.floor(max_fpr * n))
    from scipy.stats import beta

    k = int(np.floor(max_fpr * n))
    while k >= 0 and beta.ppf(confidence, k + 1, n - k) > max_fpr:
        k -= 1
    return k


def block_threshold(fraud_score: np.ndarray, legit: np.ndarray, max_fpr: float = 0.001, floor: float = 0.5,
                    confidence: float = 0.95) -> float:
    """Smallest threshold (>= floor) whose false-block rate on legitimate messages is at most
    `max_fpr` with `confidence`, judged from these (validation) rows. The point estimate
    (confidence 0) lands above max_fpr on new data about half the time; the bound keeps a margin
    for the sampling noise of the few highest-scoring legitimate rows that decide it."""
    scores = np.sort(fraud_score[legit])[::-1]
    if not len(scores):
        return max(floor, 0.9)
    allowed_blocks = max(0, allowed_false_blocks(len(scores), max_fpr, confidence))  # -1: block none seen
    # Blocking is `score >= t`: t must exceed the (allowed_blocks+1)-th highest legit score.
    t = float(np.nextafter(scores[allowed_blocks], 1.0)) if allowed_blocks < len(scores) else floor
    return float(min(max(t, floor), 0.999999))
