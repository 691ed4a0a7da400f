"""Certify what is served: each shipped CPU variant's own temperature and fraud block threshold.

`fanzha export` (fanzha/exporting.py) calls `certify_variants` on the half-built serving
artifact, after the variants are built and before fanzha.json and the manifest are final. Each
variant (model.onnx, model.opt.onnx, model.int8.onnx) is scored THROUGH `serving.predictor.
Predictor(folder, variant=...)` — its `logits()` on `data.encoding.prepare`d texts, i.e. exactly
what the service computes — and on THAT variant's logits:

- the temperature is fitted on the validation rows (allowed-set NLL, data/calibration.py);
- the fraud block threshold is the smallest one whose false-block rate on the legitimate
  validation rows is <= max_fpr (0.1 %, PRODUCT.md) with 95 % confidence (one-sided
  Clopper-Pearson), in float32 as the policy compares. With `certify_legit: sms` (a training
  config key; configs/sms.yaml) it is fitted on the SMS-like legitimate rows, without chat
  utterances, and `chat_block_threshold` (fitted on the legitimate chat utterances alone,
  `data.hygiene.channel_thresholds`, so that the budget holds on the chat channel) is what /chat decides with
  (serving/predictor.py `channel`);
- the false-block rate of legitimate messages and the blocked fraud recall at that threshold are
  reported on validation and, when given, on test.

"Legitimate" and "fraud" follow the taxonomy (data/taxonomy.py `label_kinds`): a label is fraud
when it allows only fraud classes, legitimate when it allows none.

The int8 guard (`int8_guard`) adds the two figures users depend on: int8's false-block rate at
its own certified threshold stays within the budget, and its blocked fraud recall drops by at
most one point against the fp32 fused reference (model.opt.onnx).

The result is fanzha.json's `certified` (one entry per shipped CPU variant):
    {"model.int8.onnx": {"temperature", "block_threshold", "max_fpr", "confidence",
                         "validation": {"rows", "legit_rows", "fraud_rows", "false_block_rate",
                                        "blocked_fraud_recall", "highest_legit": [...]}, "test": {...}}, ...}
`highest_legit`: the ten legitimate validation rows with the highest fraud scores, which set the
threshold (source, label, synthetic template id, score; no text).
No torch here: serving may import data/ only.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from data.calibration import (CONFIDENCE, MAX_FPR, allowed_false_blocks, block_figures,
                              fit_temperature)
from data.encoding import prepare
from data.hygiene import LEGIT_SETS, channel_thresholds, chat_rows, legit_for_threshold
from serving.predictor import calibrated
from data.taxonomy import Taxonomy, label_kinds, load_taxonomy

REFERENCE = "model.opt.onnx"  # the fp32 fused variant: equals PyTorch within 1e-3 (export checks it)
INT8 = "model.int8.onnx"
MAX_RECALL_DROP = 0.01  # one point of blocked fraud recall




class _Split:
    """Labelled rows prepared once (the texts the service would score), with their kinds."""

    def __init__(self, rows: list[dict], taxonomy: Taxonomy, prep):
        prepared = [(prep(r["text"]), r["label"], r.get("source"), r.get("group")) for r in rows]
        kept = [row for row in prepared if row[0]]  # an empty text is an error in serving, not a score
        self.texts = [p for p, _, _, _ in kept]
        self.labels = [label for _, label, _, _ in kept]
        self.groups = [group for _, _, _, group in kept]  # the synthetic template id, where there is one
        self.allowed = np.array([taxonomy.allowed_mask(label) for label in self.labels], dtype=bool)
        self.is_fraud, self.is_legit = label_kinds(self.labels, taxonomy)
        # chat utterances (data/hygiene.py CHAT_SOURCES): what `certify_legit: sms` leaves out
        self.sources = [source for _, _, source, _ in kept]
        self.is_chat = chat_rows(self.sources)

    def legit(self, which: str) -> np.ndarray:
        return legit_for_threshold(self.is_legit, self.sources, which)


def served_prepare(predictor):
    """text -> the prepared text the predictor scores (its artifact's normalizer when it has one)."""
    max_length, normalizer = predictor.meta.max_length, getattr(predictor, "normalize", None)
    if normalizer is None:
        return lambda text: prepare(text, max_length)
    return lambda text: prepare(text, max_length, normalizer=normalizer)


def certify_variant(predictor, validation: _Split, test: _Split | None = None, max_fpr: float = MAX_FPR,
                    confidence: float = CONFIDENCE, legit: str = "all") -> dict:
    """One variant's certificate, from its own logits (through `predictor.logits`).

    `legit="sms"`: `block_threshold` (what /classify and `fanzha score` resolve `certified` to) is
    fitted on the SMS-like legitimate rows only, so that chat utterances (victims' turns, the
    noisiest legitimate rows) do not set the SMS filter's threshold; `chat_block_threshold`, fitted
    on the legitimate chat utterances alone (every legitimate row when there is none:
    `chat_legit` says which), is what /chat resolves it to. Both under the same budget and
    confidence, each on its own channel's rows; the figures of each on the other's rows are
    reported too."""
    if legit not in LEGIT_SETS:
        raise ValueError(f"certify_legit must be one of {LEGIT_SETS}, got {legit!r}")
    val_logits = predictor.logits(validation.texts)
    temperature = fit_temperature(val_logits.astype(np.float64), validation.allowed)
    val_fraud = predictor.fraud_scores(calibrated(val_logits, temperature))
    # float32 scores: the threshold is the next float32 above the deciding legit score, so the
    # policy's float32 comparison blocks exactly what was counted here
    fit = channel_thresholds(val_fraud, validation.is_legit, validation.sources, legit, max_fpr, confidence)
    fitted_on, threshold = fit["fitted"], fit["threshold"]
    entry = {"temperature": float(temperature), "block_threshold": float(np.float32(threshold)),
             "max_fpr": max_fpr, "confidence": confidence, "legit": legit,
             "validation": block_figures(val_fraud, validation.is_fraud, fitted_on, threshold)}
    entry["validation"]["clopper_pearson_bound_holds"] = bool(
        allowed_false_blocks(int(fitted_on.sum()), max_fpr, confidence) >= 0)
    entry["validation"]["highest_legit"] = highest_legit(val_fraud, fitted_on, validation)
    test_fraud = None
    if test is not None and test.texts:
        test_fraud = predictor.fraud_scores(calibrated(predictor.logits(test.texts), temperature))
        entry["test"] = block_figures(test_fraud, test.is_fraud, test.legit(legit), threshold)
    if legit == "sms":
        chat, entry["chat_legit"] = fit["chat_threshold"], fit["chat_legit"]
        entry["chat_block_threshold"] = float(np.float32(chat))
        entry["validation_chat_rows_at_chat_threshold"] = block_figures(
            val_fraud[validation.is_chat], validation.is_fraud[validation.is_chat],
            validation.is_legit[validation.is_chat], chat)
        entry["validation_chat_rows"] = block_figures(val_fraud[validation.is_chat], validation.is_fraud[validation.is_chat],
                                                      validation.is_legit[validation.is_chat], threshold)
        entry["validation_all_legit_at_chat_threshold"] = block_figures(val_fraud, validation.is_fraud,
                                                                        validation.is_legit, chat)
        if test_fraud is not None:
            entry["test_chat_rows"] = block_figures(test_fraud[test.is_chat], test.is_fraud[test.is_chat],
                                                    test.is_legit[test.is_chat], threshold)
            entry["test_chat_rows_at_chat_threshold"] = block_figures(
                test_fraud[test.is_chat], test.is_fraud[test.is_chat], test.is_legit[test.is_chat], chat)
    return entry


HIGHEST_LEGIT = 10


def highest_legit(fraud: np.ndarray, legit: np.ndarray, split: _Split, n: int = HIGHEST_LEGIT) -> list[dict]:
    """The legitimate rows that set the threshold: the `n` highest fraud scores among the rows it
    was fitted on, with their source, label and template (no text: real messages stay out of the
    artifact). One unseen template family near 1.0 can hold a threshold up on its own."""
    idx = np.flatnonzero(legit)
    top = idx[np.argsort(-fraud[idx], kind="stable")[:n]]
    return [{"fraud_score": round(float(fraud[i]), 6), "source": split.sources[i], "label": split.labels[i],
             "group": split.groups[i]} for i in top]


def int8_guard(certified: dict, reference: str = REFERENCE, candidate: str = INT8,
               max_recall_drop: float = MAX_RECALL_DROP) -> dict:
    """The false-block budget and the blocked-fraud-recall drop of `candidate` against `reference`,
    each at its own certified threshold, on validation (test point rates reported beside)."""
    ref, got = certified[reference], certified[candidate]
    fbr, budget = got["validation"]["false_block_rate"], got["max_fpr"]
    drop = ref["validation"]["blocked_fraud_recall"] - got["validation"]["blocked_fraud_recall"]
    out = {"reference": reference, "false_block_rate": fbr, "max_fpr": budget,
           "certified_threshold_within_budget": bool(fbr <= budget),
           "blocked_fraud_recall": got["validation"]["blocked_fraud_recall"],
           "blocked_fraud_recall_reference": ref["validation"]["blocked_fraud_recall"],
           "blocked_fraud_recall_drop_points": round(100 * drop, 3), "max_drop_points": round(100 * max_recall_drop, 3),
           "passed": bool(fbr <= budget and drop <= max_recall_drop + 1e-12)}
    if "test" in got:
        out["test_false_block_rate"] = got["test"]["false_block_rate"]
        out["test_blocked_fraud_recall"] = got["test"]["blocked_fraud_recall"]
    if not out["passed"]:
        why = []
        if fbr > budget:
            why.append(f"false blocks {100 * fbr:.3f} % of legitimate validation messages at its certified "
                       f"threshold {got['block_threshold']:.6f} (budget {100 * budget:.3f} %)")
        if drop > max_recall_drop:
            why.append(f"blocked fraud recall {got['validation']['blocked_fraud_recall']:.4f} vs "
                       f"{ref['validation']['blocked_fraud_recall']:.4f} for {reference} "
                       f"({100 * drop:.2f} points lost, allowed <= {100 * max_recall_drop:.2f})")
        out["reason"] = "; ".join(why)
    return out


def certify_variants(folder: Path, variants: Sequence[str], validation: list[dict], test: list[dict] | None = None,
                     taxonomy: Taxonomy | str | Path | None = None, max_fpr: float = MAX_FPR,
                     confidence: float = CONFIDENCE, legit: str = "all", known: dict | None = None) -> dict:
    """Certify each variant file in `variants` (e.g. model.onnx, model.opt.onnx, model.int8.onnx)
    of the serving artifact `folder` (its fanzha.json need only hold labels and max_length).
    `known`: entries certified before on the same rows (an int8 recipe retried against its
    unchanged reference), reused as they are and not returned in "certified".
    Returns {"certified": {variant: entry}, "guards": {"model.int8.onnx": int8_guard(...)}}."""
    from serving.policy import Policy
    from serving.predictor import Predictor

    folder = Path(folder)
    if not isinstance(taxonomy, Taxonomy):
        taxonomy = load_taxonomy(taxonomy)
    if not validation:
        raise ValueError("certification needs labelled validation rows")
    certified, splits = {}, None
    for variant in variants:
        # no thresholds: only the logits are used, and the artifact's policy may say `certified`
        predictor = Predictor(folder, variant=variant, policy=Policy.from_dict({}))
        if splits is None:
            tax = taxonomy.with_classes(predictor.labels)  # the model's own label order
            prep = served_prepare(predictor)
            splits = (_Split(validation, tax, prep), _Split(test, tax, prep) if test else None)
        print(f"[fanzha] certifying {variant} on {len(splits[0].texts)} validation rows"
              + (f" and {len(splits[1].texts)} test rows" if splits[1] else ""), flush=True)
        certified[predictor.variant] = entry = certify_variant(predictor, *splits, max_fpr=max_fpr, confidence=confidence,
                                                               legit=legit)
        v = entry["validation"]
        print(f"[fanzha]   T={entry['temperature']:.3f} block>={entry['block_threshold']:.6f}: false blocks "
              f"{100 * v['false_block_rate']:.3f} % of {v['legit_rows']} legit, blocked fraud recall "
              f"{v['blocked_fraud_recall']:.4f} of {v['fraud_rows']}", flush=True)
    guards, every = {}, {**(known or {}), **certified}
    if INT8 in certified and REFERENCE in every:
        guards[INT8] = int8_guard(every)
    return {"certified": certified, "guards": guards}
