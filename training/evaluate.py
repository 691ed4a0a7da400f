"""Evaluate a trained model artifact: metrics JSON and a self-contained HTML report.

    fanzha evaluate artifacts/sms/model artifacts/data/all [--out DIR] [--obfuscate] [--probes [FILE ...]] [--no-baseline]
    fanzha evaluate artifacts/demo/model some_labelled_file.jsonl

DATA is a corpus folder (train/validation/test.jsonl) or one labelled file (JSONL / CSV / TSV /
Parquet with `text` and `label`: a taxonomy class or coarse label). The temperature (calibration)
and the fraud block threshold (≤ --max-fpr false blocks of legitimate messages) are fitted on the
model's own validation split, the very sample `fanzha export` certifies each variant on
(`--calibrate-on data`: DATA's validation.jsonl instead), and saved to MODEL/calibration.json, which
`fanzha export` checks (it records the weights' sha256 and the label list it was fitted on,
training/fingerprint.py) before certifying each exported variant on its own scores; the test split is reported, next to a char
1–3-gram TF-IDF + logistic-regression baseline trained on the same train split. `--obfuscate`
adds recall on disguised copies of the held-out fraud messages, per disguise kind. `--probes`
adds the generalization check: hand-written messages no training source contains, scored by the
model and the baseline. With no FILE it scores two sets, reported separately: `template-adjacent`
(data/probes/ood_sms.jsonl, written by the authors of the synthetic templates, so it overstates
generalization) and `independent` (data/probes/independent/probes.jsonl, written blind to the
templates: cn/tw/hk/mo, see its README); `--probes FILE [FILE ...]` scores those files instead
(named after their stems). Each set is reported for all its rows, per region, per label and per
`source` group: category recall, blocked recall, false blocks of `normal` rows, fraud-type macro-F1.

Every figure uses the served label rule (the best class inside the most probable category, as
serving/predictor.py answers) over the model's own label list (config.json id2label); the
headline figures under plain argmax are kept beside them (`argmax_rule`). The report says what it
describes (`describes`: variant, weights sha256, labels, policy path and sha256).
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from data.encoding import configure_tokenizer, encode_ids, pad, prepare
from data.hygiene import channel_thresholds
from data.normalize import Normalizer
from data.tables import read_table
from data.taxonomy import load_taxonomy
from training.calibration import expected_calibration_error, fit_temperature, softmax
from training.fingerprint import CalibrationError, check_calibration, file_sha256, fingerprint
from training.metrics import category_scores, classification_metrics, label_kinds, predict


def model_normalizer(model_dir: Path):
    """The normalization the model was trained with and will be served with: its own copy of the
    variant table (model_dir/variants.yaml, written by training), not today's source table,
    which may have changed since. None (the source table) for a model folder without one."""
    table = Path(model_dir) / "variants.yaml"
    return Normalizer(table) if table.is_file() else None


@torch.inference_mode()
def predict_logits(model, tokenizer, texts: list[str], max_length: int, batch_size: int = 128,
                   progress: bool = False, normalizer=None, desc: str = "evaluate") -> np.ndarray:
    """Logits for raw texts, through the same normalization and encoding as serving, in batches
    of similar length, on the model's device. `normalizer`: the model's own table
    (`model_normalizer`; default: the source tree's) or, for an ablation, data.normalize.basic."""
    prepared = [prepare(t, max_length, normalizer=normalizer) for t in texts]
    ids = encode_ids(configure_tokenizer(tokenizer), prepared, max_length)
    order = np.argsort([len(r) for r in ids], kind="stable")
    out = np.zeros((len(texts), model.config.num_labels), dtype=np.float32)
    device = next(model.parameters()).device
    for start in tqdm(range(0, len(order), batch_size), desc=desc, disable=not progress):
        idx = order[start:start + batch_size]
        input_ids, mask = pad([ids[i] for i in idx])
        logits = model(input_ids=torch.from_numpy(input_ids).to(device),
                       attention_mask=torch.from_numpy(mask).to(device)).logits
        out[idx] = logits.float().cpu().numpy()
    return out


def evaluate_rows(model, tokenizer, rows: list[dict], taxonomy, max_length: int, batch_size: int = 128) -> dict:
    logits = predict_logits(model, tokenizer, [r["text"] for r in rows], max_length, batch_size)
    return classification_metrics(softmax(logits), [r["label"] for r in rows], taxonomy)


CALIBRATE_ON = ("model", "data")


def calibration_rows(model_dir: Path, data: Path, calibrate_on: str = "model", max_rows: int = 0) -> tuple[list[dict], str]:
    """The validation rows calibration.json is fitted on, and where they come from.

    "model": the model's own validation split, rebuilt from its train_config.yaml and sampled as
    `fanzha export` samples the rows it certifies every variant on (training.optimize.CERTIFY_ROWS,
    seed 0), so that evaluate's threshold is the one export certifies, not one fitted on other rows
    (DATA may hold only part of the model's data, e.g. no synthetic notices: issue 19). When those
    rows cannot be rebuilt (a corpus moved, the generator changed since training), DATA's
    validation split, with a warning. "data": DATA's validation.jsonl (none for a single file)."""
    from training import optimize

    own_data = data / "validation.jsonl" if data.is_dir() and (data / "validation.jsonl").is_file() else None
    if calibrate_on == "model":
        try:
            return optimize.validation_rows(model_dir, max_rows or optimize.CERTIFY_ROWS)
        except optimize.GuardError as e:
            print(f"[fanzha] warning: calibrating on {own_data or 'nothing'} instead of the model's own validation "
                  f"split, which export certifies on: {e}", file=sys.stderr, flush=True)
    if own_data is None:
        return [], "none"
    return load_rows(own_data, max_rows), str(own_data)


def fit_block_thresholds(fraud_val: np.ndarray, val: list[dict], taxonomy, legit_set: str, max_fpr: float,
                         confidence: float) -> tuple[float, float | None, int]:
    """As serving/certify.py certifies: the block threshold on the legitimate validation rows
    `certify_legit` names, and with "sms" also /chat's on the legitimate chat utterances
    (data.hygiene.channel_thresholds, as certify fits both; else None); plus
    how many rows fitted the first."""
    legit = label_kinds([r["label"] for r in val], taxonomy)[1]
    fit = channel_thresholds(fraud_val, legit, [r.get("source") for r in val], legit_set, max_fpr, confidence)
    return fit["threshold"], fit["chat_threshold"], int(fit["fitted"].sum())


def load_rows(path: Path, max_rows: int = 0, seed: int = 0, extra: tuple[str, ...] = ()) -> list[dict]:
    frame = read_table(path, required=("text", "label"))
    keep = [c for c in ("text", "label", "source", *extra) if c in frame.columns]
    rows = frame[keep].to_dict("records")
    if max_rows and len(rows) > max_rows:
        rng = np.random.default_rng(seed)
        rows = [rows[i] for i in sorted(rng.choice(len(rows), max_rows, replace=False))]
    return rows


def robustness(logit_fn, rows: list[dict], taxonomy, threshold: float, max_rows: int = 600, seed: int = 0) -> dict:
    """Fraud recall on clean vs disguised copies of the same held-out fraud messages, per kind."""
    from data.obfuscate import KINDS, Obfuscator

    is_fraud, _ = label_kinds([r["label"] for r in rows], taxonomy)
    fraud = [r["text"] for r, f in zip(rows, is_fraud) if f]
    if not fraud:
        return {}
    if len(fraud) > max_rows:  # a seeded sample across the whole split (it is ordered by source)
        fraud = [fraud[i] for i in sorted(random.Random(seed).sample(range(len(fraud)), max_rows))]
    obfuscator = Obfuscator()

    def recalls(texts):
        cats = category_scores(softmax(logit_fn(texts)), taxonomy)
        top = np.stack([cats[c] for c in ("normal", "spam", "fraud")], axis=1).argmax(axis=1) == 2
        return float(top.mean()), float((cats["fraud"] >= threshold).mean())

    clean, clean_block = recalls(fraud)
    out = {"messages": len(fraud), "clean_recall": clean, "clean_block_recall": clean_block, "kinds": {}}
    for k, kind in enumerate(KINDS):
        rng = random.Random(seed * 1000 + k)
        disguised = [obfuscator.obfuscate(t, kind, rng) for t in fraud]
        rec, block = recalls(disguised)
        out["kinds"][kind] = {"clean_recall": clean, "obfuscated_recall": rec, "retained": rec / clean if clean else None,
                              "obfuscated_block_recall": block, "example": disguised[0]}
    return out


PROBES = Path(__file__).resolve().parent.parent / "data" / "probes" / "ood_sms.jsonl"
INDEPENDENT_PROBES = PROBES.parent / "independent" / "probes.jsonl"
# what `--probes` with no FILE scores, each set reported on its own
PROBE_SETS = {"template-adjacent": PROBES, "independent": INDEPENDENT_PROBES}
PROBE_NOTES = {
    "template-adjacent": "written by the authors of the synthetic training templates: overstates generalization",
    "independent": "written blind to the synthetic templates, cn/tw/hk/mo (data/probes/independent/README.md)",
}
PROBE_FIELDS = ("region", "kind", "channel", "length")  # kept from probe files when present


def probe_sets(paths: list[Path] | None) -> dict[str, Path]:
    """The probe sets `--probes` asks for, by name: None (no --probes): none; [] (bare --probes): both
    default sets; explicit files: named like the default set they are, else after their stem."""
    if paths is None:
        return {}
    if not paths:
        return dict(PROBE_SETS)
    named: dict[str, Path] = {}
    for path in paths:
        name = next((n for n, p in PROBE_SETS.items() if p.resolve() == path.resolve()), path.stem)
        base, k = name, 2
        while name in named:
            name, k = f"{base}-{k}", k + 1
        named[name] = path
    return named


def probe_card(probs: np.ndarray, rows: list[dict], taxonomy, threshold: float) -> dict:
    """Generalization figures on one probe set of unseen messages: for all rows (`all`), per region
    (`per_region`, the rows' `region`), per label (`per_label`) and per `source` group (`per_group`,
    when the rows have one). Each entry: rows, category accuracy, fraud (category) recall: fraud rows
    whose most probable category is fraud; blocked recall: fraud rows whose fraud score reaches the
    block threshold (the served block decision, the rule scorecard uses); false blocks of `normal` rows
    (and `false_block_rate` over all non-fraud rows); fraud-type macro-F1 over the fraud rows under
    the served label rule (per label: that type's F1 within the set's fraud rows, and its recall)."""
    from sklearn.metrics import f1_score

    cats = category_scores(probs, taxonomy)
    predicted = [taxonomy.id2label[i] for i in predict(probs, taxonomy)]  # the served rule
    category = np.array([max(("normal", "spam", "fraud"), key=lambda c: cats[c][i]) for i in range(len(rows))])
    blocked = cats["fraud"] >= threshold
    truth = [r["label"] for r in rows]
    all_fraud = [i for i, t in enumerate(truth) if t.startswith("fraud")]

    def entry(idx: list[int], per_type: str | None = None) -> dict:
        fraud = [i for i in idx if truth[i].startswith("fraud")]
        legit = [i for i in idx if not truth[i].startswith("fraud")]
        normal = [i for i in idx if truth[i] == "normal"]
        out = {"rows": len(idx), "category_accuracy": float(np.mean([category[i] == truth[i].split(".")[0] for i in idx]))}
        if fraud:
            out["fraud_rows"] = len(fraud)
            if per_type:
                out["fraud_type_f1"] = float(f1_score([truth[i] for i in all_fraud], [predicted[i] for i in all_fraud],
                                                      labels=[per_type], average="macro", zero_division=0))
                out["fraud_type_recall"] = float(np.mean([predicted[i] == per_type for i in fraud]))
            else:
                types = sorted({truth[i] for i in fraud})
                out["fraud_type_macro_f1"] = float(f1_score([truth[i] for i in fraud], [predicted[i] for i in fraud],
                                                            labels=types, average="macro", zero_division=0))
            out["fraud_recall"] = float(np.mean(category[fraud] == "fraud"))
            out["fraud_block_recall"] = float(np.mean(blocked[fraud]))
        if legit:
            out["false_block_rate"] = float(np.mean(blocked[legit]))
        if normal:
            out["normal_rows"] = len(normal)
            out["normal_false_blocks"] = int(blocked[normal].sum())
            out["normal_false_block_rate"] = float(np.mean(blocked[normal]))
        return out

    def by(key) -> dict[str, list[int]]:
        groups: dict[str, list[int]] = {}
        for i, r in enumerate(rows):
            groups.setdefault(str(r.get(key) or "unspecified"), []).append(i)
        return dict(sorted(groups.items()))

    card = {"rows": len(rows), "block_threshold": float(threshold), "all": entry(list(range(len(rows)))),
            "per_region": {g: entry(idx) for g, idx in by("region").items()},
            "per_label": {g: entry(idx, per_type=g if g.startswith("fraud") else None) for g, idx in by("label").items()}}
    if any(r.get("source") for r in rows):
        card["per_group"] = {g: entry(idx) for g, idx in by("source").items()}
    return card


PROBE_COLUMNS = [("rows", "rows"), ("fraud_recall", "category recall (fraud as fraud)"),
                 ("fraud_block_recall", "blocked recall"), ("normal_rows", "normal rows"),
                 ("normal_false_blocks", "false blocks of normal"), ("normal_false_block_rate", "normal false-block rate"),
                 ("fraud_type_macro_f1", "fraud-type macro-F1 (per-type rows: that type's F1)"),
                 ("category_accuracy", "category accuracy")]


def probe_table_rows(reports: dict, name: str) -> list[list]:
    """The HTML rows of one probe set: all, per region, per label, per group; each for every model."""
    models = [m for m in reports if name in reports[m].get("probes", {})]
    out = []
    for section, title in (("all", "all"), ("per_region", "region"), ("per_label", "label"), ("per_group", "group")):
        keys = sorted({k for m in models for k in (reports[m]["probes"][name].get(section, {}) if section != "all" else {"all": 0})})
        for key in keys:
            for m in models:
                card = reports[m]["probes"][name]
                e = card["all"] if section == "all" else card.get(section, {}).get(key, {})
                row = [title, key, m]
                for k, _ in PROBE_COLUMNS:
                    row.append(e.get("fraud_type_f1") if k == "fraud_type_macro_f1" and "fraud_type_f1" in e else e.get(k))
                out.append(row)
    return out


def main(argv=None) -> int:
    import yaml
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from training import report as html_report
    from training.scorecard import certification_spread, confident_errors, scorecard

    parser = argparse.ArgumentParser(prog="fanzha evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="model artifact folder (output of fanzha train)")
    parser.add_argument("data", type=Path, help="corpus folder (train/validation/test.jsonl) or one labelled file")
    parser.add_argument("--out", type=Path, help="report folder, or a .json path (default: MODEL/eval)")
    parser.add_argument("--max-rows", type=int, default=0, help="sample at most this many test/validation rows")
    parser.add_argument("--max-fpr", type=float, default=0.001, help="false-block budget for the block threshold")
    parser.add_argument("--fpr-confidence", type=float, default=0.95,
                        help="the block threshold keeps false blocks <= --max-fpr with this confidence "
                             "(Clopper-Pearson bound on validation; 0: point estimate)")
    parser.add_argument("--calibrate-on", choices=CALIBRATE_ON, default="model",
                        help="rows the temperature and block threshold (calibration.json) are fitted on: 'model' "
                             "(default), the model's own validation split, the sample `fanzha export` certifies on, so "
                             "that every blocked figure here is at the threshold export will certify; 'data', DATA's "
                             "validation.jsonl")
    parser.add_argument("--no-baseline", action="store_true", help="skip the TF-IDF + LR baseline")
    parser.add_argument("--obfuscate", action="store_true", help="also measure recall on disguised fraud")
    parser.add_argument("--ablate-normalization", action="store_true",
                        help="with --obfuscate: also measure recall with the generic clean-up only (data.normalize.basic)")
    parser.add_argument("--probes", type=Path, nargs="*", default=None, metavar="FILE",
                        help="also score hand-written unseen messages; with no FILE the two sets "
                             + " and ".join(f"{n} ({p.relative_to(PROBES.parents[2])})" for n, p in PROBE_SETS.items())
                             + ", reported separately")
    args = parser.parse_args(argv)

    cfg = yaml.safe_load((args.model / "train_config.yaml").read_text(encoding="utf-8"))
    model = AutoModelForSequenceClassification.from_pretrained(args.model).eval()
    weights = fingerprint(args.model)  # what every figure below describes
    # the model's own label list (config.json id2label), not today's taxonomy file's order
    taxonomy = load_taxonomy(cfg.get("taxonomy")).with_classes(weights["labels"])
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    own_table = model_normalizer(args.model)  # as training saw it and serving will: the model's copy of the table
    logit_fn = lambda texts, progress=False: predict_logits(model, tokenizer, texts, cfg["max_length"], progress=progress,  # noqa: E731
                                                            normalizer=own_table)
    legit_set = cfg.get("certify_legit", "all")  # which legitimate rows fit the block threshold
    folder = args.data.is_dir()
    test = load_rows(args.data / "test.jsonl" if folder else args.data, args.max_rows)
    val, val_where = calibration_rows(args.model, args.data, args.calibrate_on, args.max_rows)
    calibration_path = args.model / "calibration.json"
    calibration = json.loads(calibration_path.read_text()) if calibration_path.is_file() else {}
    if calibration:
        try:
            check_calibration(args.model, calibration, calibration_path)
        except CalibrationError as e:  # refitted below when DATA has a validation split
            if not val:
                print(f"[fanzha] warning: ignoring {e}", file=sys.stderr, flush=True)
            calibration = {}

    sets = {name: load_rows(path, extra=PROBE_FIELDS) for name, path in probe_sets(args.probes).items()}
    set_files = probe_sets(args.probes)
    probes = [r for rows in sets.values() for r in rows]  # all sets, in order; split back per set below
    b_probes = None
    test_logits = logit_fn([r["text"] for r in test], progress=True)
    if val:
        val_logits = logit_fn([r["text"] for r in val], progress=True)
        allowed = np.array([taxonomy.allowed_mask(r["label"]) for r in val], dtype=bool)
        temperature = fit_temperature(val_logits, allowed)
        fraud_val = category_scores(softmax(val_logits / temperature), taxonomy)["fraud"]
        threshold, chat, legit_rows = fit_block_thresholds(fraud_val, val, taxonomy, legit_set, args.max_fpr,
                                                           args.fpr_confidence)
        calibration = {"temperature": temperature, "block_threshold": threshold, "max_fpr": args.max_fpr,
                       "fpr_confidence": args.fpr_confidence, "validation_rows": len(val), "data": val_where,
                       "legit": legit_set, "legit_rows": legit_rows, "variant": "pytorch fp32", **weights}
        if chat is not None:
            calibration["chat_block_threshold"] = chat
        calibration_path.write_text(json.dumps(calibration, indent=2), encoding="utf-8")
    temperature = calibration.get("temperature", 1.0)
    threshold = calibration.get("block_threshold", 0.9)
    probs = softmax(test_logits / temperature)
    chat_threshold = calibration.get("chat_block_threshold")
    reports = {"model": scorecard(probs, test, taxonomy, threshold, chat_block_threshold=chat_threshold)}
    if val:  # the same weights certified on other validation samples: how much the blocked figures move
        reports["model"]["certification_spread"] = certification_spread(
            fraud_val, val, category_scores(probs, taxonomy)["fraud"], test, taxonomy, legit_set, args.max_fpr,
            args.fpr_confidence)
    policy_path = Path(cfg["policy"]) if cfg.get("policy") else None
    reports["model"]["describes"] = {
        "variant": "pytorch fp32", "model": str(args.model), "label_rule": "served (best class in the most probable "
        "category; argmax_rule: plain argmax)", **weights,
        "policy": {"path": str(policy_path) if policy_path else None,
                   "sha256": file_sha256(policy_path) if policy_path and policy_path.is_file() else None,
                   "fraud_block": threshold, "fraud_block_from": (
                       f"calibration.json (validation, legitimate rows: {calibration.get('legit', 'all')}, as "
                       f"certify_legit)" if "block_threshold" in calibration
                       else "default 0.9 (no calibration for these weights)")}}
    reports["model"]["calibration"] = calibration
    reports["model"]["confident_errors"] = confident_errors(probs, test, taxonomy)
    labels = [r["label"] for r in test]
    fine = np.array([l in taxonomy.label2id for l in labels])
    raw_table = {}
    if fine.any():
        y = np.array([taxonomy.label2id[l] for l, f in zip(labels, fine) if f])
        raw = softmax(test_logits)[fine]
        raw_pred = predict(raw, taxonomy)
        reports["model"]["ece_uncalibrated"], raw_table = expected_calibration_error(raw[np.arange(len(y)), raw_pred],
                                                                                    raw_pred == y)

    curves = {"model": (category_scores(probs, taxonomy)["fraud"], label_kinds(labels, taxonomy)[0])}
    if folder and not args.no_baseline and (args.data / "train.jsonl").is_file():
        from training.baseline import fit_predict, per_dataset

        print("[fanzha] fitting the TF-IDF + LR baseline", flush=True)
        train_rows = load_rows(args.data / "train.jsonl")
        b_probs = fit_predict(train_rows, [r["text"] for r in val + test + probes], taxonomy)
        b_val, b_test = b_probs[: len(val)], b_probs[len(val):len(val) + len(test)]
        b_probes = b_probs[len(val) + len(test):]
        b_threshold, b_chat = threshold, None
        if val:
            b_threshold, b_chat, _ = fit_block_thresholds(category_scores(b_val, taxonomy)["fraud"], val, taxonomy,
                                                          legit_set, args.max_fpr, args.fpr_confidence)
        reports["baseline"] = scorecard(b_test, test, taxonomy, b_threshold, chat_block_threshold=b_chat)
        curves["baseline"] = (category_scores(b_test, taxonomy)["fraud"], curves["model"][1])
        reports["baseline"]["per_dataset"] = per_dataset(train_rows, test, taxonomy)
    if args.obfuscate:
        reports["model"]["robustness"] = robustness(logit_fn, test, taxonomy, threshold)
        if args.ablate_normalization:
            from data.normalize import basic

            basic_fn = lambda texts: predict_logits(model, tokenizer, texts, cfg["max_length"], normalizer=basic)  # noqa: E731
            reports["model"]["robustness_basic_normalization"] = robustness(basic_fn, test, taxonomy, threshold)
    if probes:
        m_probes = softmax(logit_fn([r["text"] for r in probes]) / temperature)
        reports["model"]["probes"], start = {}, 0
        if b_probes is not None:
            reports["baseline"]["probes"] = {}
        for name, rows in sets.items():
            span = slice(start, start + len(rows))
            start += len(rows)
            about = {"file": str(set_files[name]), "note": PROBE_NOTES.get(name, "explicit --probes file")}
            reports["model"]["probes"][name] = {**about, **probe_card(m_probes[span], rows, taxonomy, threshold)}
            if b_probes is not None:
                reports["baseline"]["probes"][name] = {**about, **probe_card(b_probes[span], rows, taxonomy,
                                                                             reports["baseline"]["block_threshold"])}
        if args.obfuscate:  # short unseen fraud SMS are where a disguise can flip a decision
            reports["model"]["robustness_probes"] = {name: robustness(logit_fn, rows, taxonomy, threshold)
                                                     for name, rows in sets.items()}

    out = args.out or args.model / "eval"
    json_path = out if out.suffix == ".json" else out / "report.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(reports, indent=2, ensure_ascii=False), encoding="utf-8")
    truth_cat = ["fraud" if f else ("not_fraud" if l == "not_fraud" else l.split(".")[0]) for l, f in zip(labels, curves["model"][1])]
    plots = [("Confusion matrices", html_report.confusion_plot({k: v for k, v in reports.items()})),
             ("Precision-recall, fraud vs rest", html_report.pr_plot(curves)),
             ("Reliability", html_report.reliability_plot({"uncalibrated": raw_table, f"T={temperature:.2f}": reports["model"].get("reliability", {})} if raw_table else {})),
             ("Score histograms per category", html_report.histogram_plot(curves["model"][0], truth_cat, threshold))]
    d = reports["model"]["describes"]
    extra = {"What this report describes": html_report._table(
        ["variant", "weights sha256", "labels", "label rule", "policy", "policy sha256", "fraud block threshold"],
        [[d["variant"], d["weights_sha256"], ", ".join(d["labels"]), d["label_rule"], d["policy"]["path"],
          d["policy"]["sha256"], f"{threshold} ({d['policy']['fraud_block_from']})"]]),
        "Headline figures: served label rule vs plain argmax": html_report._table(
            ["figure", "served rule (what the service answers)", "plain argmax"],
            [[k, reports["model"].get(k), v] for k, v in reports["model"].get("argmax_rule", {}).items()])}
    spread = reports["model"].get("certification_spread")
    if spread:
        measured = reports["model"]["by_channel"]
        extra[f"Blocked figures on other certification samples ({spread['draws']} resamples of the validation rows, "
              "the same weights): 5th / 50th / 95th percentile"] = html_report._table(
            ["channel", "figure", "this report", "5th", "median", "95th"],
            [[channel, key, measured.get(channel, {}).get(key) if key != "block_threshold" else (
                reports["model"].get("chat_block_threshold", threshold) if channel == "chat" else threshold), *values]
             for channel in ("sms", "chat") if channel in spread for key, values in spread[channel].items()])
    if reports.get("baseline", {}).get("per_dataset"):
        specialists = reports["baseline"]["per_dataset"]
        extra["In-distribution targets: the model vs a baseline trained on that dataset alone (PRODUCT.md's bar)"] = \
            html_report._table(["target", "model", "baseline, all data", "baseline, that dataset alone", "its training rows"],
                               [[key, reports["model"].get(key), reports["baseline"].get(key), s.get(key), s["train_rows"]]
                                for s in specialists.values() for key in s if key.endswith(("_macro_f1", "_accuracy"))])
    if reports["model"].get("robustness"):
        rob = reports["model"]["robustness"]
        plots.append(("Robustness", html_report.robustness_plot(rob)))
        ablation = reports["model"].get("robustness_basic_normalization", {}).get("kinds", {})
        extra["Robustness (fraud recall, clean vs disguised)"] = html_report._table(
            ["kind", "clean", "disguised", "retained", "blocked (disguised)"]
            + (["retained, generic clean-up only"] if ablation else []) + ["example"],
            [[k, v["clean_recall"], v["obfuscated_recall"], v["retained"], v["obfuscated_block_recall"]]
             + ([ablation[k]["retained"]] if ablation else []) + [v["example"]]
             for k, v in rob["kinds"].items()])
    if probes:
        names = [n for n in reports if reports[n].get("probes")]
        header = [label for _, label in PROBE_COLUMNS]
        extra["Unseen messages: the probe sets side by side (hand-written, not from any training source)"] = html_report._table(
            ["probe set", "file", "model"] + header,
            [[s, reports[n]["probes"][s]["file"], n] + [reports[n]["probes"][s]["all"].get(k) for k, _ in PROBE_COLUMNS]
             for s in sets for n in names if s in reports[n]["probes"]])
        for s in sets:
            card = reports["model"]["probes"][s]
            extra[f"Unseen messages, {s} set ({Path(card['file']).name}, {card['rows']} rows): {card['note']}"] = \
                html_report._table(["slice", "value", "model"] + header, probe_table_rows(reports, s))
    for s, rob in (reports["model"].get("robustness_probes") or {}).items():
        if rob:
            extra[f"Robustness on the unseen fraud messages, {s} set ({rob['messages']} probes)"] = html_report._table(
                ["kind", "clean", "disguised", "retained", "blocked (disguised)", "example"],
                [[k, v["clean_recall"], v["obfuscated_recall"], v["retained"], v["obfuscated_block_recall"], v["example"]]
                 for k, v in rob["kinds"].items()])
    if reports["model"]["confident_errors"]:
        extra["Most confident mistakes per source (read them: many are ambiguous labels)"] = html_report._table(
            ["source", "label", "predicted", "probability", "text"],
            [[source, e["label"], e["predicted"], e["probability"], e["text"]]
             for source, errors in sorted(reports["model"]["confident_errors"].items()) for e in errors])
    html_path = json_path.with_suffix(".html")
    html_path.write_text(html_report.render(f"fanzha evaluation: {args.model} on {args.data}", reports, plots, extra),
                         encoding="utf-8")
    m = reports["model"]
    from training.tracking import log_evaluation  # an MLflow run, unless the model was trained with tracking: none

    log_evaluation(args.model, args.data, json_path, html_path, m)
    print(json.dumps({k: m.get(k) for k in ("rows", "accuracy", "macro_f1", "category_accuracy", "false_block_rate",
                                            "telecom_fraud_type_macro_f1", "spam80w_spam_vs_ham_accuracy")}))
    print(f"[fanzha] report written to {json_path} and {html_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
