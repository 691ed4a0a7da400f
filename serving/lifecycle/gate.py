"""The promotion gate: a candidate serving artifact against the champion on the frozen golden set.

    python -m serving.lifecycle.gate --candidate artifacts/sms/serving --golden artifacts/golden \\
        [--champion OLD_SERVING] [--config configs/gate.yaml] [--out artifacts/sms/gate]

Exit 0: every gate passed; 1: a gate failed (named); 2: bad input (no golden set, a changed golden
file, not a serving artifact). `fanzha promote` calls `run_gate` and `write_report`.

Both models are scored with the one predictor (`Predictor(folder).classify`), so the gate judges
the served action (allow | flag | block) with each artifact's own policy, never a re-implemented
rule; a golden row from a chat source is judged on the channel it is served on (`channel="chat"`:
the chat certificate, as /chat decides), every other row as an SMS. Gates (thresholds and why:
configs/gate.yaml): integrity and parity of the candidate; the
false-block ceiling on the Clopper-Pearson upper bound; absolute recall floors; batch-1 p99
latency; and, with a champion, no worse than it (false blocks, blocked and flagged-or-blocked
fraud recall, every slice, negative flips). The first champion is judged on the absolute gates only.
A candidate whose files differ from its manifest is never loaded: only integrity is reported.
"""
from __future__ import annotations

import argparse
import copy
import html
import json
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from data.calibration import allowed_false_blocks, ceiling_pass_probability, false_block_upper_bound
from data.hygiene import chat_rows
from data.golden import SLICE_FIELDS, GoldenError, load_golden, text_sha256
from serving.integrity import IntegrityError, verify_artifact
from serving.lifecycle.registry import files_digest
from serving.predictor import ArtifactError, ArtifactMeta, Predictor

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO / "configs" / "gate.yaml"
DEFAULTS = {
    "false_block": {"max_rate": 0.001, "confidence": 0.95, "max_increase": 0.0005},
    "recall": {"max_drop_blocked": 0.01, "max_drop_flagged": 0.01, "min_blocked": None, "min_flagged": None},
    "slices": {"fields": list(SLICE_FIELDS), "min_rows": 30, "max_recall_drop": 0.05, "max_false_block_increase": 0.01},
    "negative_flips": {"max": 5},
    "latency": {"max_p99_ms": 25.0, "calls": 100, "rounds": 5, "warmup": 20},
    "scoring": {"batch_size": 64},
}
CPU_PARITY = {"model.onnx": "fp32", "model.opt.onnx": "opt", "model.int8.onnx": "int8"}  # fp16: GPUs only


class GateInputError(ValueError):
    """The gate cannot run: the golden set, an artifact or the config is missing or invalid."""


def load_config(config: str | Path | dict | None) -> dict:
    raw = config if isinstance(config, dict) else None
    if raw is None:
        path = Path(config or DEFAULT_CONFIG)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as e:
            raise GateInputError(f"cannot read gate config {path}: {e}") from e
    out = copy.deepcopy(DEFAULTS)
    for section, values in raw.items():
        if section not in out or not isinstance(values, dict) or set(values) - set(out[section]):
            raise GateInputError(f"gate config: unknown section or key in {section!r}: {values!r}; known: "
                                 f"{ {k: sorted(v) for k, v in DEFAULTS.items()} }")
        out[section].update(values)
    return out


def describe(folder: Path) -> dict:
    meta = ArtifactMeta.load(folder)
    manifest = verify_artifact(folder)
    return {"folder": str(folder), "model_name": meta.model_name, "version": meta.version,
            "default_variant": meta.default_variant, "files_digest": files_digest(manifest)}


def channel_of(row: dict) -> str:
    """The channel a golden row is served on (data.hygiene.chat_rows: chat utterances reach the
    service through /chat, which decides on the chat certificate; every other row is an SMS)."""
    return "chat" if chat_rows([row.get("source")])[0] else "sms"


def score(predictor: Predictor, texts: list[str], batch_size: int, name: str,
          channels: list[str] | None = None) -> list[str]:
    """The served action per text, each on its channel's certificate (`channels`, default all
    "sms"), in batches of similar lengths and one channel (a batch is padded to its longest text:
    sorted, the golden set scores ~2x faster), progress on stderr; in input order."""
    channels = channels or ["sms"] * len(texts)
    order = sorted(range(len(texts)), key=lambda i: (channels[i], len(texts[i])))
    actions: list[str] = [""] * len(texts)
    start = time.perf_counter()
    for b, i in enumerate(range(0, len(order), batch_size)):
        chunk = order[i:i + batch_size]
        for channel in sorted({channels[k] for k in chunk}):
            part = [k for k in chunk if channels[k] == channel]
            for k, r in zip(part, predictor.classify([texts[k] for k in part], with_scores=False, channel=channel)):
                actions[k] = r["action"] or "error"
        if b % 10 == 9 or i + batch_size >= len(order):
            done = min(i + batch_size, len(order))
            print(f"[gate] {name}: {done}/{len(texts)} scored ({done / (time.perf_counter() - start):.0f} msg/s)",
                  file=sys.stderr, flush=True)
    return actions


def latency(predictors: list[Predictor], texts: list[str], calls: int, warmup: int, rounds: int = 1) -> list[dict]:
    """Batch-1 latency of each predictor: `rounds` rounds of `calls` single-message calls, the
    predictors taking turns round by round so that both see the same moments of a shared
    machine. The figure is the best round's p50/p99: other work on the cores only ever adds
    time, so the least disturbed round is the closest to what the model costs."""
    for predictor in predictors:
        for text in texts[:warmup]:
            predictor.classify([text], with_scores=False)
    per_round: list[list[tuple[float, float]]] = [[] for _ in predictors]
    for _ in range(max(1, rounds)):
        for k, predictor in enumerate(predictors):
            ms = []
            for i in range(calls):
                t0 = time.perf_counter()
                predictor.classify([texts[i % len(texts)]], with_scores=False)
                ms.append(1000 * (time.perf_counter() - t0))
            per_round[k].append((float(np.percentile(ms, 50)), float(np.percentile(ms, 99))))
    return [{"p50_ms": round(min(p50 for p50, _ in r), 3), "p99_ms": round(min(p99 for _, p99 in r), 3),
             "p99_ms_by_round": [round(p99, 2) for _, p99 in r], "calls": calls, "rounds": len(r)} for r in per_round]


def figures(actions: list[str], rows: list[dict], confidence: float) -> dict:
    act = np.array(actions)
    fraud = np.array([r["category"] == "fraud" for r in rows], dtype=bool)
    blocked, flagged = act == "block", np.isin(act, ("flag", "block"))
    k, n = int(blocked[~fraud].sum()), int((~fraud).sum())
    return {"legit_rows": n, "fraud_rows": int(fraud.sum()), "false_blocks": k,
            "false_block_rate": k / n if n else 0.0, "false_block_upper": false_block_upper_bound(k, n, confidence),
            "blocked_recall": float(blocked[fraud].mean()) if fraud.any() else 0.0,
            "flagged_recall": float(flagged[fraud].mean()) if fraud.any() else 0.0,
            "errors": int((act == "error").sum())}


def ceiling_power(predictor: Predictor, legit_rows: int, fb: dict) -> dict | None:
    """How likely a model at its own export certificate's rate is to pass the false-block ceiling on
    this many golden rows (data.calibration.ceiling_pass_probability). Below one half, the golden
    set is too small for the ceiling to agree with the certificate: a refusal then says little about
    the model, and the detail says so (rebuild the golden set with more legitimate rows)."""
    rate = ((predictor.certified or {}).get("validation") or {}).get("false_block_rate")
    if rate is None:
        return None
    p = ceiling_pass_probability(legit_rows, rate, fb["max_rate"], fb["confidence"])
    detail = (f"a model at its certificate's validation rate ({rate:.5f}) passes this ceiling on {legit_rows} rows"
              f" with probability {p:.2f}")
    if p < 0.5:
        detail += (" — the golden set is too small to agree with the certificate; rebuild it with more legitimate"
                   " rows (`fanzha golden --legit N`)")
    return {"certified_rate": rate, "legit_rows": legit_rows, "pass_probability": round(p, 4), "detail": detail}


def blocked_legit(rows: list[dict], cand: list[str], champ: list[str] | None) -> list[dict]:
    """Every legitimate golden row that either model blocks, with both actions: the rows behind the
    false-block figures, so that a refusal can be read (a real false block, or a mislabelled row)."""
    out = []
    for i, r in enumerate(rows):
        if r["category"] != "fraud" and ("block" in (cand[i], champ[i] if champ else None)):
            out.append({"id": r.get("id"), "text_sha256": text_sha256(r["text"]), "source": r.get("source"),
                        "category": r["category"], "text": r["text"], "candidate": cand[i],
                        "champion": champ[i] if champ else None})
    return out


def _gate(name, candidate, champion, limit, passed, detail="") -> dict:
    return {"name": name, "candidate": candidate, "champion": champion, "limit": limit, "passed": bool(passed),
            "detail": detail}


def parity_gate(folder: Path) -> dict:
    """parity.json (written by export, covered by the manifest) says every shipped CPU variant agrees."""
    path = folder / "parity.json"
    if not path.is_file():
        return _gate("parity", None, None, "every shipped CPU variant agrees", False, "no parity.json")
    report, problems, checked = json.loads(path.read_text(encoding="utf-8")), [], []
    for file, key in CPU_PARITY.items():
        if not (folder / file).is_file():
            continue
        entry = report.get(key) or {}
        checked.append(key)
        if key == "int8":
            ok = bool(entry.get("passed"))
        else:
            ok = "max_abs_logit_diff" in entry and entry["max_abs_logit_diff"] <= entry.get("tolerance", 1e-3)
        if not ok:
            problems.append(f"{key} ({file}): {json.dumps({k: entry.get(k) for k in ('max_abs_logit_diff', 'tolerance', 'label_agreement', 'passed')})}")
    return _gate("parity", ", ".join(checked), None, "max |logit diff| <= tolerance (int8: its guard passed)",
                 checked and not problems, "; ".join(problems) or "fp16 is for GPUs and not judged here")


def slice_table(rows: list[dict], cand: list[str], champ: list[str] | None, cfg: dict) -> list[dict]:
    out = []
    act_c = np.array(cand)
    act_o = np.array(champ) if champ is not None else None
    fraud = np.array([r["category"] == "fraud" for r in rows], dtype=bool)
    for fld in cfg["fields"]:
        values = np.array([str(r.get(fld)) for r in rows])
        for value in sorted(set(values.tolist())):
            for part, sel, metric in (("fraud", fraud, "flagged_recall"), ("legit", ~fraud, "false_block_rate")):
                idx = (values == value) & sel
                n = int(idx.sum())
                if not n:
                    continue
                rate = (lambda a: float(np.isin(a[idx], ("flag", "block")).mean())) if part == "fraud" else \
                    (lambda a: float((a[idx] == "block").mean()))
                entry = {"field": fld, "value": value, "part": part, "metric": metric, "rows": n,
                         "candidate": rate(act_c), "champion": rate(act_o) if act_o is not None else None}
                if part == "fraud":  # reported beside the gated flagged recall: what is stopped, not just marked
                    entry["blocked_candidate"] = float((act_c[idx] == "block").mean())
                    entry["blocked_champion"] = float((act_o[idx] == "block").mean()) if act_o is not None else None
                if act_o is None:
                    entry.update(limit=None, passed=None, skipped="no champion")
                elif n < cfg["min_rows"]:
                    entry.update(limit=None, passed=None, skipped=f"fewer than {cfg['min_rows']} rows")
                elif part == "fraud":
                    entry.update(limit=entry["champion"] - cfg["max_recall_drop"], skipped=None)
                    entry["passed"] = entry["candidate"] >= entry["limit"] - 1e-12
                else:
                    entry.update(limit=entry["champion"] + cfg["max_false_block_increase"], skipped=None)
                    entry["passed"] = entry["candidate"] <= entry["limit"] + 1e-12
                out.append(entry)
    return out


def run_gate(candidate: Path, champion: Path | None, golden: Path, config: Path | dict | None = None) -> dict:
    """The gate report (see the module docstring); raises GateInputError on bad input."""
    cfg = load_config(config)
    try:
        gold = load_golden(golden)
    except GoldenError as e:
        raise GateInputError(str(e)) from e
    rows, texts = gold.rows, [r["text"] for r in gold.rows]
    candidate = Path(candidate)
    for folder, role in ((candidate, "candidate"), (champion, "champion")):
        if folder is not None and not (Path(folder) / "fanzha.json").is_file():
            raise GateInputError(f"{role} {folder} is not a serving artifact (no fanzha.json); run `fanzha export`")
    report = {"passed": False, "failed": [], "gates": [], "slices": [], "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "golden": {"folder": str(golden), "version": gold.version, "fingerprint": gold.fingerprint, "rows": len(rows),
                         "relabelled_rows": sum(1 for r in rows if r.get("relabelled"))},
              "config": cfg, "candidate": None, "champion": None}
    gates = report["gates"]
    try:
        report["candidate"] = describe(candidate)
        gates.append(_gate("integrity", "ok", None, "every file matches manifest.json", True))
    except IntegrityError as e:
        meta = ArtifactMeta.load(candidate)
        report["candidate"] = {"folder": str(candidate), "model_name": meta.model_name, "version": meta.version}
        gates.append(_gate("integrity", "changed", None, "every file matches manifest.json", False,
                           str(e).replace("\n", " ") + " — not loaded, nothing else judged"))
        return _finish(report)
    except ArtifactError as e:
        raise GateInputError(f"candidate: {e}") from e
    gates.append(parity_gate(candidate))
    try:
        pred = Predictor(candidate)
    except ArtifactError as e:
        raise GateInputError(f"candidate: {e}".replace("\n", " ")) from e
    champ_info = champ_pred = None
    if champion is not None:
        try:  # a champion must be intact to be compared with (IntegrityError is an ArtifactError)
            champ_info, champ_pred = describe(Path(champion)), Predictor(champion)
        except ArtifactError as e:
            raise GateInputError(f"champion: {e}".replace("\n", " ")) from e
    report["champion"] = champ_info
    fb = cfg["false_block"]
    channels = [channel_of(r) for r in rows]  # chat utterances are judged as /chat decides them
    cand_actions = score(pred, texts, cfg["scoring"]["batch_size"], "candidate", channels)
    c = figures(cand_actions, rows, fb["confidence"])
    champ_actions = score(champ_pred, texts, cfg["scoring"]["batch_size"], "champion", channels) if champ_pred else None
    o = figures(champ_actions, rows, fb["confidence"]) if champ_actions else {}
    report["figures"] = {"candidate": c, "champion": o or None}
    report["false_blocks"] = blocked_legit(rows, cand_actions, champ_actions)
    allowed = allowed_false_blocks(c["legit_rows"], fb["max_rate"], fb["confidence"])
    power = ceiling_power(pred, c["legit_rows"], fb)
    report["ceiling_power"] = power
    gates.append(_gate("false_block_ceiling", c["false_block_upper"], o.get("false_block_upper"), fb["max_rate"],
                       c["false_block_upper"] <= fb["max_rate"],
                       f"{c['false_blocks']} of {c['legit_rows']} legitimate rows blocked (rate {c['false_block_rate']:.5f});"
                       f" {fb['confidence']:.0%} upper bound; at most {max(allowed, 0)} blocks can pass"
                       + (f"; {power['detail']}" if power else "")))
    rec = cfg["recall"]
    for key, floor in (("blocked_recall", rec["min_blocked"]), ("flagged_recall", rec["min_flagged"])):
        if floor is not None:
            gates.append(_gate(f"{key}_floor", c[key], o.get(key), floor, c[key] >= floor, f"of {c['fraud_rows']} fraud rows"))
    lc = cfg["latency"]
    lats = latency([pred] + ([champ_pred] if champ_pred else []), sorted(texts, key=len)[: len(texts) // 2][::7] or texts,
                   lc["calls"], lc["warmup"], lc["rounds"])
    lat = lats[0]
    report["latency"] = {"candidate": lat, "champion": lats[1] if len(lats) > 1 else None}
    gates.append(_gate("latency_p99_ms", lat["p99_ms"], lats[1]["p99_ms"] if len(lats) > 1 else None, lc["max_p99_ms"],
                       lat["p99_ms"] <= lc["max_p99_ms"],
                       f"batch 1, best of {lat['rounds']} rounds of {lat['calls']} calls (p99 by round "
                       f"{lat['p99_ms_by_round']}), p50 {lat['p50_ms']} ms"))
    if c["errors"]:
        gates.append(_gate("no_errors", c["errors"], o.get("errors"), 0, False, "golden rows the candidate could not score"))
    if champ_actions is None:
        report["comparisons"] = "skipped: no champion (first champion, judged on the absolute gates only)"
    else:
        gates.append(_gate("false_block_vs_champion", c["false_block_rate"], o["false_block_rate"],
                           o["false_block_rate"] + fb["max_increase"],
                           c["false_block_rate"] <= o["false_block_rate"] + fb["max_increase"] + 1e-12, "point rates"))
        for key, eps in (("blocked_recall", rec["max_drop_blocked"]), ("flagged_recall", rec["max_drop_flagged"])):
            gates.append(_gate(f"{key}_vs_champion", c[key], o[key], o[key] - eps, c[key] >= o[key] - eps - 1e-12,
                               f"at most {eps:g} lost"))
        flips = [r for r, a, b in zip(rows, champ_actions, cand_actions) if r["category"] != "fraud" and a == "allow" and b == "block"]
        gates.append(_gate("negative_flips", len(flips), 0, cfg["negative_flips"]["max"],
                           len(flips) <= cfg["negative_flips"]["max"],
                           "; ".join(f"{r['id']}: {r['text'][:40]}" for r in flips[:10])))
    report["slices"] = slice_table(rows, cand_actions, champ_actions, cfg["slices"])
    bad = [s for s in report["slices"] if s["passed"] is False]
    skipped = [s for s in report["slices"] if s["skipped"] and s["skipped"] != "no champion"]
    if champ_actions is not None:
        gates.append(_gate("slices", len(bad), None, 0, not bad,
                           "; ".join(f"{s['field']}={s['value']} {s['metric']} {s['candidate']:.3f} vs {s['champion']:.3f}"
                                     for s in bad[:10])
                           + (f" ({len(skipped)} slice parts below {cfg['slices']['min_rows']} rows skipped: "
                              + ", ".join(f"{s['field']}={s['value']}/{s['part']}" for s in skipped) + ")" if skipped else "")))
    return _finish(report)


def _finish(report: dict) -> dict:
    report["failed"] = [g["name"] for g in report["gates"] if not g["passed"]]
    report["passed"] = not report["failed"]
    return report


def _fmt(v) -> str:
    return f"{v:.5g}" if isinstance(v, float) else "" if v is None else str(v)


def table(report: dict) -> str:
    lines = [f"{'gate':<28} {'candidate':>12} {'champion':>12} {'limit':>10}  result", "-" * 72]
    for g in report["gates"]:
        lines.append(f"{g['name']:<28} {_fmt(g['candidate']):>12} {_fmt(g['champion']):>12} {_fmt(g['limit']):>10}  "
                     f"{'pass' if g['passed'] else 'FAIL'}" + (f"  {g['detail']}" if g["detail"] and not g["passed"] else ""))
    lines.append(f"{'PASSED' if report['passed'] else 'REFUSED: ' + ', '.join(report['failed'])}"
                 f" (golden {report['golden']['version']}, {report['golden']['rows']} rows)")
    return "\n".join(lines)


def _html_table(head: list[str], body: list[list], classes: list[str] | None = None) -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    trs = "".join(f"<tr class='{(classes or [''] * len(body))[i]}'>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in r) + "</tr>"
                  for i, r in enumerate(body))
    return f"<table><tr>{cells}</tr>{trs}</table>"


def write_report(report: dict, folder: Path) -> tuple[Path, Path]:
    """gate.json and gate.html (plain HTML, no scripts) in `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gate.json").write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    verdict = "PASSED" if report["passed"] else "REFUSED: " + ", ".join(report["failed"])
    who = lambda d: html.escape(f"{d['model_name']} {d['version']} ({d['folder']})") if d else "none (first champion)"  # noqa: E731
    gates = _html_table(["gate", "candidate", "champion", "limit", "result", "detail"],
                        [[g["name"], g["candidate"], g["champion"], g["limit"], "pass" if g["passed"] else "FAIL", g["detail"]]
                         for g in report["gates"]], ["pass" if g["passed"] else "fail" for g in report["gates"]])
    slices = _html_table(["field", "value", "part", "metric", "rows", "candidate", "champion", "limit", "result",
                          "blocked (candidate)", "blocked (champion)"],
                         [[s["field"], s["value"], s["part"], s["metric"], s["rows"], s["candidate"], s["champion"], s["limit"],
                           s["skipped"] and f"skipped: {s['skipped']}" or ("pass" if s["passed"] else "FAIL"),
                           s.get("blocked_candidate"), s.get("blocked_champion")] for s in report["slices"]],
                         ["" if s["passed"] is None else "pass" if s["passed"] else "fail" for s in report["slices"]])
    rows = report.get("false_blocks") or []
    blocked = (_html_table(["id", "source", "category", "candidate", "champion", "text", "text_sha256 (for --relabel)"],
                           [[r["id"], r["source"], r["category"], r["candidate"], r["champion"], r["text"],
                             r.get("text_sha256")] for r in rows],
                           ["fail" if r["candidate"] == "block" else "" for r in rows])
               if rows else "<p>none: neither model blocks a legitimate golden row</p>")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>fanzha gate: {html.escape(verdict)}</title><style>"
            "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
            "padding:3px 8px;text-align:left}tr.fail{background:#fdd}tr.pass{background:#efe}</style></head><body>"
            f"<h1>{html.escape(verdict)}</h1><p>candidate: {who(report['candidate'])}<br>champion: {who(report['champion'])}"
            f"<br>golden set {html.escape(report['golden']['version'])}, {report['golden']['rows']} rows"
            f" ({report['golden'].get('relabelled_rows', 0)} relabelled by review), fingerprint "
            f"{html.escape(report['golden']['fingerprint'])}<br>created {html.escape(report['created'])}</p>"
            f"<h2>Gates</h2>{gates}<h2>Legitimate rows blocked</h2>{blocked}<h2>Slices</h2>{slices}</body></html>")
    (folder / "gate.html").write_text(page, encoding="utf-8")
    return folder / "gate.json", folder / "gate.html"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m serving.lifecycle.gate", description=__doc__.split("\n\n")[0])
    p.add_argument("--candidate", type=Path, required=True, help="serving artifact to judge (fanzha export output)")
    p.add_argument("--champion", type=Path, help="the current champion's serving artifact (none: first champion)")
    p.add_argument("--golden", type=Path, required=True, help="golden set folder (fanzha golden --out ...)")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    p.add_argument("--out", type=Path, help="write gate.json and gate.html here")
    args = p.parse_args(argv)
    start = time.perf_counter()
    try:
        if not args.golden.is_dir():
            raise GateInputError(f"golden set folder not found: {args.golden} (build it with `fanzha golden --out {args.golden}`)")
        report = run_gate(args.candidate, args.champion, args.golden, args.config)
    except GateInputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report["wall_seconds"] = round(time.perf_counter() - start, 1)
    print(table(report))
    if args.out:
        paths = write_report(report, args.out)
        print(f"[gate] report written to {paths[0]} and {paths[1]} ({report['wall_seconds']} s)")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
