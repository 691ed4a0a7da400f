"""Conversation-level evaluation of a chat model: P/R/F1, false alarms, how early scams are caught.

    python -m serving.chat.evaluate --model artifacts/chat/serving --data artifacts/data/chat --out artifacts/chat/report.html
    python -m serving.chat.evaluate ... --calibrate [--max-false-alarm 0.005]   # block threshold from validation

DATA is the folder written by `python -m data.conversations` (conversations_{validation,test}.jsonl,
and conversations_unlabelled.jsonl as a diagnostic). Every conversation is scored as the HTTP
service scores it (serving/chat/conversation.py: each prefix's window, one batch per chunk); a conversation
counts as flagged as fraud when some prefix's fraud score reaches the block threshold, and the
first such turn is its detection turn (block-list hits are not simulated; thresholds only).
Early detection: the detection turn (0-based), the fraction of the conversation seen at that
point ((turn + 1) / turns) and the lag after the fraudster's first turn; medians count a missed
scam as never detected (infinite). `--calibrate` picks the lowest block threshold whose false-alarm
rate on VALIDATION conversations is within --max-false-alarm, writes it into the artifact's
policy.yaml (configuration, hot-reloaded by a running service; the flag threshold is kept at or
below it) and reports TEST at it. Writes OUT (self-contained HTML, plots inline) and OUT.json.
"""
from __future__ import annotations

import argparse
import base64
import html
import io
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import yaml

from serving.chat.conversation import ConversationScorer
from serving.policy import Policy
from serving.predictor import Predictor

GRID = np.round(np.concatenate([np.arange(0.5, 0.95, 0.05), np.arange(0.95, 1.0, 0.005)]), 4)


def read_conversations(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def prefix_scores(scorer: ConversationScorer, convs: list[dict], chunk: int = 32) -> tuple[list[np.ndarray], list]:
    """Fraud score after each turn of each conversation (float32 as the policy compares them; -inf
    for a turn without text), and the label of each conversation's riskiest prefix."""
    scores, labels = [], []
    for start in range(0, len(convs), chunk):
        for r in scorer.score_many([c["turns"] for c in convs[start:start + chunk]]):
            scores.append(np.array([-np.inf if t["fraud_score"] is None else t["fraud_score"] for t in r["turns"]],
                                   dtype=np.float32))
            labels.append(r["label"])
    return scores, labels


def is_fraud(conv: dict) -> bool:
    return conv["label"].split(".", 1)[0] == "fraud"


def detection(scores: np.ndarray, threshold: float) -> int | None:
    hit = np.flatnonzero(scores >= np.float32(threshold))
    return int(hit[0]) if len(hit) else None


def _median(values) -> float | None:
    return float(np.median(values)) if len(values) else None


def metrics(convs: list[dict], scores: list[np.ndarray], threshold: float) -> dict:
    truth = np.array([is_fraud(c) for c in convs])
    turns = [detection(s, threshold) for s in scores]
    flagged = np.array([t is not None for t in turns])
    tp, fp = int((truth & flagged).sum()), int((~truth & flagged).sum())
    fn, n_normal = int((truth & ~flagged).sum()), int((~truth).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    fraud = [(c, t) for c, t, f in zip(convs, turns, truth) if f]
    inf = float("inf")
    turn = [inf if t is None else t for _, t in fraud]
    frac = [inf if t is None else (t + 1) / len(c["turns"]) for c, t in fraud]
    lag = [inf if t is None else t - c["fraud_turns"][0] for c, t in fraud if c["fraud_turns"]]
    return {"threshold": float(threshold), "conversations": len(convs), "fraud": int(truth.sum()), "normal": n_normal,
            "precision": precision, "recall": recall,
            "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
            "false_alarms": fp, "false_alarm_rate": fp / n_normal if n_normal else None,
            "median_detection_turn": _median(turn), "median_detection_fraction": _median(frac),
            "median_lag_after_first_fraud_turn": _median(lag),
            "detected_before_fraudster_spoke": sum(1 for x in lag if x < 0),
            "detection_turn_histogram": dict(sorted(Counter(min(t, 10) for t in turn if t != inf).items())),
            "_turns": turn, "_fractions": frac}


def per_source(convs, scores, threshold) -> dict:
    out = {}
    for source in sorted({c["source"] for c in convs}):
        idx = [i for i, c in enumerate(convs) if c["source"] == source]
        m = metrics([convs[i] for i in idx], [scores[i] for i in idx], threshold)
        out[source] = {k: v for k, v in m.items() if not k.startswith("_") and k != "detection_turn_histogram"}
    return out


def type_accuracy(convs, scores, labels, threshold) -> dict:
    """Among detected scams with a fine label, how often the riskiest prefix names that type."""
    fine = [(c, l) for c, s, l in zip(convs, scores, labels)
            if is_fraud(c) and "." in c["label"] and detection(s, threshold) is not None]
    hits = sum(1 for c, l in fine if l == c["label"])
    return {"conversations": len(fine), "accuracy": hits / len(fine) if fine else None}


def sweep(convs, scores) -> list[dict]:
    return [{k: v for k, v in metrics(convs, scores, t).items() if not k.startswith("_")} for t in GRID]


def choose_threshold(rows: list[dict], budget: float) -> float:
    ok = [r["threshold"] for r in rows if r["false_alarm_rate"] is not None and r["false_alarm_rate"] <= budget]
    return min(ok) if ok else float(GRID[-1])


def write_policy(folder: Path, threshold: float) -> float:
    """Set fraud.block (and keep fraud.flag <= it) in the artifact's policy.yaml; returns the old value."""
    path = folder / "policy.yaml"
    policy = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    fraud = policy.setdefault("thresholds", {}).setdefault("fraud", {})
    old = fraud.get("block")
    fraud["block"] = float(threshold)
    if "flag" in fraud:
        fraud["flag"] = min(fraud["flag"], fraud["block"])
    Policy.from_dict(policy, str(path))  # never write a policy the service would refuse
    path.write_text(yaml.safe_dump(policy, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return old


def finite(obj):
    """The report with infinities (a scam never detected) as null, for JSON."""
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    return obj.item() if isinstance(obj, np.generic) else obj


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return '<img alt="plot" src="data:image/png;base64,' + base64.b64encode(buf.getvalue()).decode() + '">'


def plots(test: dict, test_sweep: list[dict], val_sweep: list[dict]) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    fracs = [min(f, 1.05) for f in test["_fractions"]]  # never detected: the bar right of 1.0
    axes[0].hist(fracs, bins=np.arange(0, 1.1, 0.05), color="#4477aa")
    axes[0].axvline(0.4, color="red", ls="--", label="target: median within 40 %")
    axes[0].set(xlabel="fraction of the conversation seen when first blocked (>1: never)", ylabel="fraud conversations")
    axes[0].legend()
    hist = test["detection_turn_histogram"]
    axes[1].bar([str(k) if k < 10 else "10+" for k in hist], list(hist.values()), color="#4477aa")
    axes[1].set(xlabel="turn (0-based) at which first blocked", ylabel="fraud conversations")
    out = [("When scams are caught (test)", _png(fig))]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for rows, name, style in ((val_sweep, "validation", "--"), (test_sweep, "test", "-")):
        t = [r["threshold"] for r in rows]
        axes[0].plot(t, [r["recall"] for r in rows], style, color="#228833", label=f"recall ({name})")
        axes[0].plot(t, [100 * (r["false_alarm_rate"] or 0) for r in rows], style, color="#ee6677",
                     label=f"false alarms % ({name})")
        axes[1].plot(t, [min(r["median_detection_fraction"] or 0, 1.1) for r in rows], style, color="#4477aa",
                     label=f"median detection fraction ({name})")
    axes[0].axhline(1.0, color="grey", lw=0.5)
    axes[0].axvline(test["threshold"], color="black", lw=0.8)
    axes[1].axvline(test["threshold"], color="black", lw=0.8)
    axes[0].set(xlabel="block threshold", ylim=(0, 5))
    axes[1].set(xlabel="block threshold")
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=8)
    out.append(("Threshold sweep (vertical line: the threshold reported)", _png(fig)))
    return out


def render(title: str, report: dict, figures: list[tuple[str, str]]) -> str:
    def table(rows: dict) -> str:
        cells = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>" for k, v in rows.items())
        return f"<table>{cells}</table>"

    head = {k: v for k, v in report["test"].items() if not isinstance(v, (dict, list))}
    sources = "".join(f"<h3>{html.escape(s)}</h3>{table(m)}" for s, m in report["per_source"].items())
    extra = table({"fraud-type accuracy (detected, fine label)": report["type_accuracy"]["accuracy"],
                   "unlabelled conversations flagged": report.get("unlabelled", {}).get("flagged_rate")})
    body = "".join(f"<h2>{html.escape(name)}</h2>{img}" for name, img in figures)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>"
            "body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:.5em 0}"
            "th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}img{max-width:100%}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><h2>Test conversations</h2>{table(head)}{extra}"
            f"<h2>Per source</h2>{sources}{body}<h2>Settings</h2>{table(report['settings'])}</body></html>")


def _fmt(v) -> str:
    if v is None:
        return "–"
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.chat.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, type=Path, help="serving artifact folder (the chat model)")
    parser.add_argument("--data", required=True, type=Path, help="folder from python -m data.conversations")
    parser.add_argument("--out", required=True, type=Path, help="HTML report path (JSON beside it)")
    parser.add_argument("--calibrate", action="store_true", help="choose the block threshold on validation "
                                                                 "and write it into the artifact's policy.yaml")
    parser.add_argument("--max-false-alarm", type=float, default=0.005, help="validation false-alarm budget")
    parser.add_argument("--limit", type=int, default=0, help="score at most N conversations per file (smoke runs)")
    args = parser.parse_args(argv)
    scorer = ConversationScorer(Predictor(args.model))

    def load(name):
        path = args.data / f"conversations_{name}.jsonl"
        convs = read_conversations(path) if path.is_file() else []
        return convs[: args.limit] if args.limit else convs

    test, val, unlabelled = load("test"), load("validation"), load("unlabelled")
    if not test:
        print(f"error: no conversations in {args.data / 'conversations_test.jsonl'}", file=sys.stderr)
        return 2
    print(f"[chat_eval] scoring {len(val)} validation and {len(test)} test conversations", flush=True)
    (val_scores, _), (test_scores, test_labels) = prefix_scores(scorer, val), prefix_scores(scorer, test)
    val_sweep = sweep(val, val_scores) if val else []
    threshold = float(scorer.predictor.policy.to_dict()["thresholds"]["fraud"]["block"])
    settings = {"model": str(args.model), "data": str(args.data), "window": scorer.window, "anchor": scorer.anchor,
                "max_length": scorer.predictor.meta.max_length, "policy_block_threshold": threshold}
    if args.calibrate and val:
        threshold = choose_threshold(val_sweep, args.max_false_alarm)
        settings["previous_block_threshold"] = write_policy(args.model, threshold)
        settings["calibrated_on"] = f"validation, false alarms <= {args.max_false_alarm}"
        print(f"[chat_eval] block threshold {settings['previous_block_threshold']} -> {threshold} "
              f"(written to {args.model / 'policy.yaml'})", flush=True)
    settings["block_threshold"] = threshold
    test_m = metrics(test, test_scores, threshold)
    report = {"test": test_m, "validation": metrics(val, val_scores, threshold) if val else None,
              "per_source": per_source(test, test_scores, threshold),
              "type_accuracy": type_accuracy(test, test_scores, test_labels, threshold),
              "settings": settings, "sweep": {"validation": val_sweep, "test": sweep(test, test_scores)}}
    if unlabelled:
        flagged = sum(detection(s, threshold) is not None for s in prefix_scores(scorer, unlabelled)[0])
        report["unlabelled"] = {"conversations": len(unlabelled), "flagged": flagged,
                                "flagged_rate": flagged / len(unlabelled)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figures = plots(test_m, report["sweep"]["test"], val_sweep)
    clean = finite(report)
    args.out.with_suffix(".json").write_text(json.dumps(clean, indent=2, ensure_ascii=False), encoding="utf-8")
    args.out.write_text(render(f"fanzha chat evaluation: {args.model}", clean, figures), encoding="utf-8")
    print(json.dumps({k: clean["test"][k] for k in ("precision", "recall", "f1", "false_alarm_rate",
                                                     "median_detection_turn", "median_detection_fraction")}))
    print(f"[chat_eval] report written to {args.out} and {args.out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
