"""Why the model decided: one weight per character, by occlusion on the served ONNX model.

    python -m serving.explain artifacts/demo/serving "【ETC服务】您的ETC认证已失效，请点击 etc-renz.cn 重新认证"

`explain(predictor, text)` returns `result`, exactly what `/classify` answers for the text (the
same `Predictor.classify`, so the same policy, lists and campaigns), and `weights`: for each
character of the text, how much it pushed the fraud score. A copy of the text with one unit
removed is scored; the unit's weight is the fraud score of the text minus that of the copy,
shared evenly by the unit's characters (positive: the character made the message look more like
fraud). A unit is one character while the text has at most `max_copies` characters, else a span
of ceil(len / max_copies) characters, so an explanation costs one ONNX Runtime call on at most
`max_copies` (256) copies, each truncated to the model's max_length like any message. Characters
that truncation drops (the middle of a long text) weigh 0: the model never saw them.
"""
from __future__ import annotations

import json
import math
import sys

import numpy as np

from data.encoding import prepare

MAX_COPIES = 256


def explain(predictor, text: str, sender: str | None = None, max_copies: int = MAX_COPIES) -> dict:
    result = predictor.classify([text], senders=[sender])[0]
    n = len(text) if isinstance(text, str) else 0
    if result.get("error") or n == 0:
        return {"result": result, "weights": [0.0] * n, "copies": 0, "span": 0}
    span = max(1, math.ceil(n / max_copies))
    starts = list(range(0, n, span))
    max_length = predictor.meta.max_length
    prepared, scored = [], []
    for k, start in enumerate(starts):
        p = prepare(text[:start] + text[start + span:], max_length, normalizer=predictor.normalize)
        if p:  # removing the only content leaves nothing to score: that unit keeps weight 0 below
            prepared.append(p)
            scored.append(k)
    weights = np.zeros(n, dtype=np.float64)
    if prepared:
        probs = predictor.probabilities_one_call(prepared)
        fraud = predictor.fraud_scores(probs).astype(np.float64)
        base = float(result["fraud_score"])
        for k, f in zip(scored, fraud):
            start = starts[k]
            end = min(n, start + span)
            weights[start:end] = (base - f) / (end - start)
    return {"result": result, "weights": [round(float(w), 6) for w in weights], "copies": len(prepared), "span": span}


def main(argv=None) -> int:
    from serving.predictor import Predictor

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m serving.explain ARTIFACT TEXT", file=sys.stderr)
        return 2
    out = explain(Predictor(args[0]), args[1])
    r = out["result"]
    print(json.dumps({k: r[k] for k in ("label", "action", "reason", "fraud_score")}, ensure_ascii=False))
    for ch, w in zip(args[1], out["weights"]):
        print(f"{ch}\t{w:+.4f}\t{'+' * int(max(0, w) * 200)}{'-' * int(max(0, -w) * 200)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
