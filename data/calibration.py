"""Calibration and thresholds chosen on validation data: the pure numpy math, shared by training
(`fanzha evaluate`, on PyTorch logits) and serving (serving/certify.py, on each exported variant's
logits through the one Predictor). scipy is imported inside the functions that need it.

Temperature scaling (Guo et al., 2017): one scalar T dividing the logits, fitted by minimising
the allowed-set negative log-likelihood on validation; it changes confidence, not the argmax.
The block threshold on `fraud_score` is chosen on validation so that at most `max_fpr` of
legitimate messages (rows whose label allows no fraud class) would be blocked, with
`confidence` (one-sided Clopper-Pearson bound).
"""
from __future__ import annotations

import numpy as np

MAX_FPR = 0.001  # PRODUCT.md: at the default block threshold, false blocks of legitimate messages <= 0.1 %
CONFIDENCE = 0.95


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
    from scipy.optimize import minimize_scalar

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


def allowed_false_blocks(n: int, max_fpr: float, confidence: float = CONFIDENCE) -> int:
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


def false_block_upper_bound(blocked: int, n: int, confidence: float = CONFIDENCE) -> float:
    """One-sided Clopper-Pearson upper bound on the false-block rate after `blocked` of `n`
    legitimate rows were blocked (the bound `allowed_false_blocks` keeps under its budget)."""
    if n <= 0:
        return 1.0
    if blocked >= n:
        return 1.0
    from scipy.stats import beta

    return float(beta.ppf(confidence, blocked + 1, n - blocked))


def ceiling_pass_probability(n: int, rate: float, max_fpr: float = MAX_FPR, confidence: float = CONFIDENCE) -> float:
    """The chance that a model whose true false-block rate is `rate` shows, on `n` fresh
    legitimate rows, few enough blocks for the ceiling (`allowed_false_blocks(n, ...)`) to pass.

    This is where a certificate and a check on a second sample can quietly disagree: export
    certifies a threshold on its validation rows, and a model at that certificate's own rate
    (0.044 % for the SMS model) passes the same 95 % ceiling on 4,940 rows only 36 % of the time,
    and on 17,957 rows 83 % of the time."""
    allowed = allowed_false_blocks(n, max_fpr, confidence)
    if allowed < 0:
        return 0.0
    from scipy.stats import binom

    return float(binom.cdf(allowed, n, min(max(rate, 0.0), 1.0)))


def block_threshold(fraud_score: np.ndarray, legit: np.ndarray, max_fpr: float = MAX_FPR, floor: float = 0.5,
                    confidence: float = CONFIDENCE) -> float:
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


def certified_threshold_exists(n_legit: int, max_fpr: float = MAX_FPR, confidence: float = CONFIDENCE) -> bool:
    """Whether `n_legit` legitimate validation rows can show the budget at all (>= 0 false blocks allowed)."""
    return allowed_false_blocks(n_legit, max_fpr, confidence) >= 0


def block_figures(fraud_score: np.ndarray, is_fraud: np.ndarray, is_legit: np.ndarray, threshold: float) -> dict:
    """Rows, false-block rate of legitimate rows and blocked fraud recall at `threshold` (blocking is
    `score >= threshold`, in float32 as the policy compares)."""
    blocked = np.asarray(fraud_score, dtype=np.float32) >= np.float32(threshold)
    return {"rows": int(len(blocked)), "legit_rows": int(is_legit.sum()), "fraud_rows": int(is_fraud.sum()),
            "false_block_rate": float(blocked[is_legit].mean()) if is_legit.any() else 0.0,
            "blocked_fraud_recall": float(blocked[is_fraud].mean()) if is_fraud.any() else 0.0}
