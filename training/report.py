"""A self-contained HTML evaluation report (plots embedded as PNG data URIs).

Written by `fanzha evaluate`; open it in any browser, no server or network needed.
"""
from __future__ import annotations

import base64
import html
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

HEADLINE = [("macro_f1", "macro-F1 (fine labels)"), ("accuracy", "accuracy (fine labels)"),
            ("category_accuracy", "category accuracy"), ("telecom_fraud_type_macro_f1", "telecom fraud-type macro-F1"),
            ("spam80w_spam_vs_ham_accuracy", "80万 SMS spam-vs-ham accuracy"), ("false_block_rate", "false blocks of legitimate"),
            ("fraud_block_recall", "fraud blocked (recall at block)"), ("ece", "ECE (top label)")]


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return '<img alt="plot" src="data:image/png;base64,' + base64.b64encode(buf.getvalue()).decode() + '">'


def _fmt(v) -> str:
    if v is None:
        return "–"
    return f"{v:.4f}" if isinstance(v, float) else html.escape(str(v))


def confusion_plot(reports: dict[str, dict]) -> str:
    fig, axes = plt.subplots(1, len(reports), figsize=(6.5 * len(reports), 5.5), squeeze=False)
    for ax, (name, rep) in zip(axes[0], reports.items()):
        cm = np.array(rep["confusion_matrix"]["matrix"], dtype=float)
        norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        labels = [l.replace("fraud.", "f.") for l in rep["confusion_matrix"]["labels"]]
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        for i in range(len(labels)):
            for j in range(len(labels)):
                if cm[i, j]:
                    ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.5 else "black")
        ax.set_title(f"{name}: confusion (row-normalised colour)")
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
    return _png(fig)


def pr_plot(curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> str:
    from sklearn.metrics import precision_recall_curve

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, (score, truth) in curves.items():
        if truth.any() and not truth.all():
            p, r, _ = precision_recall_curve(truth, score)
            ax.plot(r, p, label=name)
    ax.set_xlabel("recall (fraud)")
    ax.set_ylabel("precision")
    ax.set_title("fraud vs rest: precision-recall")
    ax.grid(alpha=0.3)
    ax.legend()
    return _png(fig)


def reliability_plot(tables: dict[str, dict]) -> str:
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect")
    for name, t in tables.items():
        ax.plot(t["confidence"], t["accuracy"], "o-", label=name)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title("reliability diagram")
    ax.legend()
    return _png(fig)


def histogram_plot(fraud_score: np.ndarray, truth_category: list[str], threshold: float) -> str:
    fig, ax = plt.subplots(figsize=(7, 4))
    bins = np.linspace(0, 1, 41)
    for cat in ("normal", "spam", "not_fraud", "fraud"):
        sel = np.array([c == cat for c in truth_category])
        if sel.any():
            ax.hist(fraud_score[sel], bins=bins, histtype="step", lw=2, label=f"true {cat} ({sel.sum()})")
    ax.axvline(threshold, color="red", ls="--", label=f"block threshold {threshold:.3f}")
    ax.set_yscale("log")
    ax.set_xlabel("fraud_score")
    ax.set_title("fraud_score by true category")
    ax.legend(fontsize=8)
    return _png(fig)


def robustness_plot(robust: dict) -> str:
    kinds = list(robust["kinds"])
    clean = [robust["kinds"][k]["clean_recall"] for k in kinds]
    obf = [robust["kinds"][k]["obfuscated_recall"] for k in kinds]
    x = np.arange(len(kinds))
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(x - 0.2, clean, 0.4, label="clean")
    ax.bar(x + 0.2, obf, 0.4, label="obfuscated")
    ax.set_xticks(x, kinds, rotation=30)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("fraud recall")
    ax.set_title("robustness to disguises (same messages)")
    ax.legend()
    return _png(fig)


def _cell(value, max_chars: int = 160) -> str:
    """Numbers right-aligned; text left-aligned and cut to max_chars (the JSON keeps it whole)."""
    if isinstance(value, str):
        text = value if len(value) <= max_chars else value[:max_chars] + "…"
        return f'<td class="text">{html.escape(text)}</td>'
    return f"<td>{_fmt(value)}</td>"


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render(title: str, reports: dict[str, dict], plots: list[tuple[str, str]], extra: dict) -> str:
    names = list(reports)
    headline = _table(["metric"] + names, [[label] + [reports[n].get(key) for n in names] for key, label in HEADLINE])
    fvr = _table(["fraud vs rest"] + names, [[k] + [reports[n]["fraud_vs_rest"].get(k) for n in names]
                                              for k in ("roc_auc", "pr_auc", "recall_at_fpr_1pct", "recall_at_fpr_0.1pct")])
    main = reports[names[0]]
    per_class = _table(["class", "precision", "recall", "F1", "support"],
                       [[c, v["precision"], v["recall"], v["f1"], v["support"]] for c, v in main["per_class"].items()])
    sources = sorted({s for r in reports.values() for s in r.get("per_source", {})})
    per_source = _table(["source", "model", "rows", "accuracy", "macro-F1", "category acc.", "false blocks", "fraud blocked"],
                        [[s, n] + [reports[n]["per_source"].get(s, {}).get(k) for k in
                                   ("rows", "accuracy", "macro_f1", "category_accuracy", "false_block_rate", "fraud_block_recall")]
                         for s in sources for n in names])
    extras = "".join(f"<h2>{html.escape(k)}</h2>{v}" for k, v in extra.items())
    figures = "".join(f"<h2>{html.escape(t)}</h2>{img}" for t, img in plots)
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1400px}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}th{{background:#f0f0f0}}td:first-child,td.text{{text-align:left}}
img{{max-width:100%}}</style></head><body><h1>{html.escape(title)}</h1>
<h2>Headline</h2>{headline}<h2>Fraud vs rest</h2>{fvr}{extras}<h2>Per source</h2>{per_source}
<h2>Per class ({html.escape(names[0])})</h2>{per_class}{figures}</body></html>"""
