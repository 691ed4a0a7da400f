"""Collected results (docs/results/NAME/, written by docs/results/collect.py) as Markdown.

    .venv/bin/python docs/gen/results_md.py bench       # what benchmarks.md shows
    .venv/bin/python docs/gen/results_md.py evaluate    # what evaluation.md shows

Every run is shown with its date, its machine and the exact command that produced it; with no
run collected, the page says so. Links are relative to a page at the top of docs/.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from data import markdown

RESULTS = Path(__file__).resolve().parents[1] / "results"
HOW = {
    "bench": ("make bench MODEL=artifacts/sms/model SERVING=artifacts/sms/serving",
              "artifacts/bench", "sms-bench"),
    "evaluate": ("fanzha evaluate artifacts/sms/model artifacts/data/all --obfuscate --probes",
                 "artifacts/sms/model/eval", "sms-eval"),
    "bench-train": ("make bench-train", "artifacts/bench-train", "sms-train-step"),
    "gate": ("python -m serving.lifecycle.gate --candidate artifacts/sms/serving --golden artifacts/golden --out artifacts/sms/gate",
             "artifacts/sms/gate", "sms-gate"),
}
HEADLINE = [("macro_f1", "macro-F1 (fine labels)"), ("accuracy", "accuracy (fine labels)"),
            ("category_accuracy", "category accuracy"), ("telecom_fraud_type_macro_f1", "telecom fraud-type macro-F1"),
            ("spam80w_spam_vs_ham_accuracy", "80万 SMS spam-vs-ham accuracy"),
            ("false_block_rate", "false blocks of legitimate messages"),
            ("fraud_block_recall", "fraud blocked (recall at the block threshold)"), ("ece", "ECE (top label)")]
FRAUD_VS_REST = [("roc_auc", "fraud vs rest ROC-AUC"), ("pr_auc", "fraud vs rest PR-AUC"),
                 ("recall_at_fpr_1pct", "fraud recall at 1 % FPR"), ("recall_at_fpr_0.1pct", "fraud recall at 0.1 % FPR")]
PROBE = [("rows", "rows"), ("fraud_recall", "fraud recall (category)"), ("fraud_block_recall", "blocked recall"),
         ("normal_false_blocks", "false blocks of normal"), ("fraud_type_macro_f1", "fraud-type macro-F1")]


def runs(kind: str, results: Path = RESULTS) -> list[tuple[Path, dict]]:
    out = []
    for meta_path in sorted(results.glob("*/meta.json")):
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("kind") == kind:
            out.append((meta_path.parent, meta))
    return sorted(out, key=lambda r: str(r[1].get("measured") or ""), reverse=True)


def fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):  # small rates keep 4 significant digits: 0.00096 is not the 0.0010 it limits
        return f"{value:.4g}" if 0 < abs(value) < 0.01 else f"{value:.4f}"
    return str(value)  # a cell's | is escaped by data/markdown.py


def about(folder: Path, meta: dict) -> list[str]:
    m = meta.get("machine") or {}
    machine = f"{m.get('cpu_model', '?')}; {m.get('cores', '?')} cores ({m.get('cores_usable', '?')} usable)"
    if m.get("cpu_isa"):
        machine += ", " + " ".join(m["cpu_isa"])
    if m.get("memory_gib"):
        machine += f", {m['memory_gib']} GiB"
    rows = [("measured", meta.get("measured")), ("machine", machine), ("command", f"`{meta.get('command')}`")]
    if meta.get("load_avg_before") is not None:
        rows.append(("load average (1/5/15 min)", f"before {meta['load_avg_before']}, after {meta.get('load_avg_after')}"))
    if meta.get("git_commit"):
        rows.append(("code", f"commit `{meta['git_commit'][:12]}`"))
    rows.append(("files", ", ".join(f"[{f}](results/{folder.name}/{f})" for f in meta.get("files", {}))))
    lines = table(["about this run", ""], rows)
    if meta.get("quick"):
        lines += ['!!! warning "A --quick run"', "    It checks that every part runs; its figures measure nothing.", ""]
    if meta.get("note"):
        lines += [f"Note: {meta['note']}", ""]
    return lines


def demote(markdown: str, levels: int = 3) -> str:
    """The run's own Markdown under this page's headings (its `# title` becomes a level-4 heading)."""
    return re.sub(r"^(#{1,6}) ", lambda m: "#" * min(6, len(m.group(1)) + levels) + " ", markdown, flags=re.M)


def bench_run(folder: Path, meta: dict, file: str = "results.md") -> list[str]:
    lines = [f"### {meta['name']}", ""] + about(folder, meta)
    md = folder / file
    lines += [demote(md.read_text(encoding="utf-8")).strip(), ""] if md.is_file() else ["(no results.md in this run)", ""]
    return lines


def table(header: list[str], rows: list[list]) -> list[str]:
    return markdown.table(header, rows, fmt).split("\n") + [""]


def evaluate_run(folder: Path, meta: dict) -> list[str]:
    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    names = [n for n in ("model", "baseline") if n in report]
    model = report.get("model", {})
    lines = [f"### {meta['name']}", ""] + about(folder, meta)
    lines += [f"Test rows: {model.get('rows')}; block threshold {fmt(model.get('describes', {}).get('policy', {}).get('fraud_block'))}."
              " The baseline is the char 1–3-gram TF-IDF + logistic regression trained on the same split.", ""]
    lines += table(["figure"] + names, [[label] + [report[n].get(key) for n in names] for key, label in HEADLINE]
                   + [[label] + [(report[n].get("fraud_vs_rest") or {}).get(key) for n in names] for key, label in FRAUD_VS_REST])
    sources = sorted({s for n in names for s in report[n].get("per_source", {})})
    if sources:
        lines += ["Per source:", ""] + table(
            ["source", "model", "rows", "accuracy", "macro-F1", "false blocks", "fraud blocked"],
            [[s, n] + [report[n]["per_source"].get(s, {}).get(k) for k in
                       ("rows", "accuracy", "macro_f1", "false_block_rate", "fraud_block_recall")]
             for s in sources for n in names if s in report[n].get("per_source", {})])
    for name, card in (model.get("probes") or {}).items():
        lines += [f"Unseen messages, **{name}** set ({card.get('rows')} rows; {card.get('note', '')}):", ""]
        rows = [["all", n] + [(report[n]["probes"][name].get("all") or {}).get(k) for k, _ in PROBE]
                for n in names if name in (report[n].get("probes") or {})]
        for region in sorted(card.get("per_region", {})):
            rows += [[f"region {region}", n] + [report[n]["probes"][name]["per_region"].get(region, {}).get(k) for k, _ in PROBE]
                     for n in names if name in (report[n].get("probes") or {})]
        lines += table(["slice", "model"] + [label for _, label in PROBE], rows)
    rob = model.get("robustness") or {}
    if rob.get("kinds"):
        lines += [f"Disguised fraud ({rob.get('messages')} held-out fraud messages): recall kept per disguise kind", ""]
        lines += table(["kind", "clean recall", "disguised recall", "retained", "blocked (disguised)"],
                       [[k, v.get("clean_recall"), v.get("obfuscated_recall"), v.get("retained"), v.get("obfuscated_block_recall")]
                        for k, v in rob["kinds"].items()])
    for plot in meta.get("plots", []):
        lines += [f"![{plot['title']}](results/{folder.name}/{plot['file']})", ""]
    return lines


def gate_run(folder: Path, meta: dict) -> list[str]:
    report = json.loads((folder / "gate.json").read_text(encoding="utf-8"))
    verdict = "PASSED" if report.get("passed") else "REFUSED: " + ", ".join(report.get("failed") or [])
    who = lambda d: f"`{d.get('folder')}` ({d.get('model_name')} {d.get('version')})" if d else "none (first champion)"  # noqa: E731
    golden = report.get("golden") or {}
    lines = [f"### {folder.name}: {verdict}", ""] + about(folder, meta)
    lines += [f"Candidate {who(report.get('candidate'))}; champion {who(report.get('champion'))}; golden set "
              f"{golden.get('version')}, {golden.get('rows')} rows.", ""]
    lines += table(["gate", "candidate", "champion", "limit", "result", "detail"],
                   [[g["name"], g.get("candidate"), g.get("champion"), g.get("limit"), "pass" if g.get("passed") else "**FAIL**",
                     g.get("detail") or ""] for g in report.get("gates", [])])
    shown = [s for s in report.get("slices", []) if not s.get("skipped") or s.get("skipped") == "no champion"]
    if shown:
        lines += ["Per slice (the golden set's fields and values):", ""]
        lines += table(["field", "value", "part", "metric", "rows", "candidate", "champion", "blocked (candidate)",
                        "blocked (champion)", "result"],
                       [[s["field"], s["value"], s["part"], s["metric"], s["rows"], s.get("candidate"), s.get("champion"),
                         s.get("blocked_candidate"), s.get("blocked_champion"),
                         "–" if s.get("passed") is None else "pass" if s["passed"] else "**FAIL**"] for s in shown])
    return lines


def render(kind: str, results: Path = RESULTS) -> str:
    found = runs(kind, results)
    if not found:
        command, src, name = HOW[kind]
        return "\n".join([
            '!!! note "No results collected yet"',
            f"    No { {'evaluate': 'evaluation', 'gate': 'gate'}.get(kind, 'benchmark') } run has been collected into `docs/results/` yet, "
            "so this page shows no measured figures. To add one:",
            "",
            "    ```bash",
            f"    {command}",
            f"    .venv/bin/python docs/results/collect.py {src} --name {name} --kind {kind} \\",
            f"        --command \"{command}\"",
            "    ```", ""])
    lines = [f"{len(found)} run(s) collected, newest first.", ""]
    for folder, meta in found:
        lines += (bench_run(folder, meta) if kind == "bench" else bench_run(folder, meta, "train_step.md")
                  if kind == "bench-train" else gate_run(folder, meta) if kind == "gate" else evaluate_run(folder, meta))
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(sys.argv[1] if len(sys.argv) > 1 else "bench"))
