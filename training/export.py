"""Export a trained model artifact to the serving artifact (ONNX + tokenizer + policy + reports).

    fanzha export artifacts/demo/model artifacts/demo/serving [--policy configs/policy.yaml] [--no-int8]

Writes `model.onnx` (opset 17, dynamic batch and sequence axes; inputs `input_ids`,
`attention_mask`; output `logits`) and its variants `model.opt.onnx` (fused), `model.int8.onnx`
(quantized) and `model.fp16.onnx` (GPUs) — see training/optimize.py —, tokenizer files,
`config.json`, `policy.yaml`, `fanzha.json` (labels, max_length, temperature, default variant:
the fastest CPU variant, timed here, that passed its checks), `parity.json` (per variant: max
|logit difference| and label agreement against PyTorch on a sample; for int8 the accuracy guard
on validation data; the timings) and `manifest.json` (sha256 of every file, training metrics,
data fingerprints). Fails with a clear message when fp32 or fused parity breaks (max difference
above 1e-3) or int8 fails the accuracy guard (>= 99.5 % label agreement, <= 0.3 points of
macro-F1 lost); nothing is left behind then.

Certification (`certify`, injected by fanzha/exporting.py — training never imports serving):
each shipped CPU variant gets its own temperature and fraud block threshold, fitted on that
variant's scores through serving's Predictor (serving/certify.py); fanzha.json `certified`
holds them, the policy says `thresholds.fraud.block: certified`, and int8 must also keep false
blocks within the budget and lose <= 1 point of blocked fraud recall. MODEL/calibration.json
(from `fanzha evaluate`) must belong to the model's weights and labels (training/fingerprint.py):
a stale or unfingerprinted one is refused (exit 2).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from data.normalize import Normalizer
from training import model_card, optimize
from training.evaluate import predict_logits
from training.fingerprint import CalibrationError, check_calibration
from data.digest import sha256_file

OPSET = 17
FP32_TOLERANCE = 1e-3
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
EDGE_TEXTS = ["短", "a", "验证码 123456", "【ETC服务】您的ETC认证已失效，请点击链接重新认证" * 40, "x" * 2000]


class ParityError(RuntimeError):
    """ONNX Runtime disagrees with PyTorch beyond tolerance."""


sha256 = sha256_file  # data/digest.py


def export_onnx(model, path: Path) -> None:
    """TorchScript-based exporter: a stable graph for BERT with dynamic batch and sequence axes."""
    model.eval()
    dummy_ids = torch.ones((2, 16), dtype=torch.long)
    dummy_mask = torch.ones((2, 16), dtype=torch.long)
    with torch.inference_mode():
        torch.onnx.export(
            model, (dummy_ids, dummy_mask), str(path),
            input_names=["input_ids", "attention_mask"], output_names=["logits"],
            dynamic_axes={"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
                          "logits": {0: "batch"}},
            opset_version=OPSET, dynamo=False, do_constant_folding=True,
        )


def onnx_logits(path: Path, tokenizer_json: Path, texts: list[str], max_length: int, batch_size: int = 64) -> np.ndarray:
    batches = optimize.encoded_batches(tokenizer_json, texts, max_length, batch_size)
    return optimize.session_logits(path, batches, len(texts))


def parity_report(torch_logits: np.ndarray, onnx_out: np.ndarray, tolerance: float) -> dict:
    diff = np.abs(torch_logits - onnx_out)
    return {
        "samples": int(len(diff)),
        "max_abs_logit_diff": float(diff.max()),
        "mean_abs_logit_diff": float(diff.mean()),
        "label_agreement": float((torch_logits.argmax(1) == onnx_out.argmax(1)).mean()),
        "tolerance": tolerance,
    }


def sample_texts(n: int = 256, seed: int = 1234) -> list[str]:
    from data.synth import generate

    return [r["text"] for r in generate(n, seed=seed)] + EDGE_TEXTS


def load_calibration(model_dir: Path) -> dict:
    """MODEL/calibration.json, checked against the model's weights and labels ({} when absent);
    CalibrationError (one line: what to run) when it belongs to other weights or has no fingerprint."""
    path = model_dir / "calibration.json"
    if not path.is_file():
        return {}
    try:
        calibration = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise CalibrationError(f"{path} is not valid JSON ({e}); run `fanzha evaluate {model_dir} DATA` to refit "
                               f"it, or delete it") from e
    check_calibration(model_dir, calibration, path)
    return calibration


def apply_calibration(model_dir: Path, policy_path: Path, explicit_policy: bool, write_policy: bool = True) -> dict:
    """Carry `fanzha evaluate`'s calibration (MODEL/calibration.json, refused unless it belongs to
    these weights) into the serving artifact: the temperature goes to fanzha.json, and — unless a
    policy was passed explicitly, or `write_policy` is off (certification decides) — the block
    threshold chosen on validation becomes the policy's fraud.block (flag kept at or below it)."""
    calibration = load_calibration(model_dir)
    if write_policy and not explicit_policy and "block_threshold" in calibration:
        policy = yaml.safe_load(policy_path.read_text(encoding="utf-8")) or {}
        fraud = policy.setdefault("thresholds", {}).setdefault("fraud", {})
        fraud["block"] = round(float(calibration["block_threshold"]), 6)
        if "flag" in fraud:
            fraud["flag"] = min(fraud["flag"], fraud["block"])
        policy_path.write_text(yaml.safe_dump(policy, sort_keys=False), encoding="utf-8")
    return calibration


INPUT_TABLES = {"variants": "variants.yaml", "taxonomy": "taxonomy.yaml"}  # file names in both artifacts


def copy_input_tables(model_dir: Path, cfg: dict, dest: Path) -> None:
    """The normalization table and the taxonomy the model was trained with (the training artifact's
    copies, written by `fanzha train`; for an older model folder, the source tree's) into `dest`."""
    from data.normalize import default_table_path

    sources = {"variants": default_table_path(), "taxonomy": Path(cfg["taxonomy"])}
    for key, name in INPUT_TABLES.items():
        src = model_dir / name if (model_dir / name).is_file() else sources[key]
        if not src.is_file():
            raise FileNotFoundError(f"{src}: the {key} table to ship with the model is missing")
        if src != model_dir / name:
            print(f"[fanzha] note: {model_dir} has no {name} (trained before models kept it); shipping {src}",
                  file=sys.stderr, flush=True)
        shutil.copy(src, dest / name)


def chat_settings(cfg: dict) -> dict:
    """{"window", "anchor"} of a chat model: what data.conversations built its corpus with (the
    corpus folder's card.json `conversations`), else data.conversations' defaults."""
    from data.conversations import ANCHOR, WINDOW

    for folder in (cfg.get("data") or {}).get("corpus_dirs") or ():
        card = Path(folder) / "card.json"
        if card.is_file():
            conv = json.loads(card.read_text(encoding="utf-8")).get("conversations") or {}
            if "window" in conv:
                return {"window": int(conv["window"]), "anchor": int(conv.get("anchor", ANCHOR))}
    return {"window": WINDOW, "anchor": ANCHOR}


def input_section(folder: Path, cfg: dict) -> dict:
    """fanzha.json `input`: everything that shapes the model's input, naming files of `folder`
    (which the manifest hashes). Serving reads these, never the source tree."""
    from data.encoding import TRUNCATION
    from data.normalize import NORMALIZATION_VERSION

    return {"max_length": int(cfg["max_length"]), "truncation": TRUNCATION,
            "normalization": {"version": NORMALIZATION_VERSION, "table": INPUT_TABLES["variants"],
                              "table_sha256": sha256(folder / INPUT_TABLES["variants"])},
            "taxonomy": INPUT_TABLES["taxonomy"], "chat": chat_settings(cfg)}


def check_parity(name: str, report: dict, path: Path) -> None:
    if report["max_abs_logit_diff"] > FP32_TOLERANCE:
        raise ParityError(f"ONNX export parity broken ({name}): max |logit diff| {report['max_abs_logit_diff']:.2e} "
                          f"> {FP32_TOLERANCE:g} (report in {path})")


class Int8Trials:
    """The int8 recipes (optimize.INT8_RECIPES), tried in order: `next()` quantizes the fused model
    with the next recipe and runs the accuracy guard on it; `report["int8"]` holds the last try,
    with the recipes that failed before it. The certified guard (`_certify`) asks for the next
    recipe too when the one that passed the accuracy guard fails certification."""

    def __init__(self, tmp: Path, model_dir: Path, rows: list[dict], where: str, texts: list[str],
                 reference: np.ndarray, max_length: int, report: dict):
        from data.taxonomy import load_taxonomy

        self.tmp, self.rows, self.where, self.texts, self.reference = tmp, rows, where, texts, reference
        self.max_length, self.report, self.tried, self.left = max_length, report, [], list(optimize.INT8_RECIPES)
        self.batches = optimize.encoded_batches(tmp / "tokenizer.json", [r["text"] for r in rows], max_length, 64)
        # the fused fp32 model is the reference: it equals PyTorch within 1e-3 (checked before) and runs 2x faster
        self.ref = optimize.session_logits(tmp / optimize.VARIANTS["opt"], self.batches, len(rows))
        self.taxonomy = load_taxonomy(yaml.safe_load((model_dir / "train_config.yaml").read_text(encoding="utf-8"))["taxonomy"])

    def failed(self, why: str) -> None:
        """The current recipe failed (`why`): recorded with the recipes tried before the next one."""
        entry = {k: self.report["int8"][k] for k in ("recipe", "label_agreement", "macro_f1_loss_points")}
        self.tried = self.tried + [{**entry, "failed": why}]

    def next(self) -> bool:
        """Quantize with the next recipe that passes the accuracy guard; False when none is left."""
        tmp = self.tmp
        while self.left:
            recipe = self.left.pop(0)
            print(f"[fanzha] int8 quantization ({recipe}); accuracy guard on {len(self.rows)} validation rows", flush=True)
            optimize.quantize(tmp / optimize.VARIANTS["opt"], tmp / optimize.VARIANTS["int8"], recipe)
            got = optimize.session_logits(tmp / optimize.VARIANTS["int8"], self.batches, len(self.rows))
            self.report["int8"] = {
                **optimize.guard_report(self.ref, got, [r["label"] for r in self.rows], self.taxonomy),
                "data": self.where, "reference": optimize.VARIANTS["opt"], "recipe": recipe, "recipes_failed": self.tried,
                "sample": parity_report(self.reference, onnx_logits(tmp / optimize.VARIANTS["int8"], tmp / "tokenizer.json",
                                                                    self.texts, self.max_length), FP32_TOLERANCE)}
            if self.report["int8"]["passed"]:
                return True
            self.failed("accuracy guard")
            print(f"[fanzha]   {recipe}: label agreement {self.report['int8']['label_agreement']:.4f}, macro-F1 loss "
                  f"{self.report['int8']['macro_f1_loss_points']:.2f} points: fails the guard", flush=True)
        return False


def build_variants(tmp: Path, config, texts: list[str], reference: np.ndarray, max_length: int, model_dir: Path,
                   int8: bool, guard_rows: int, guard_data: Path | None, report: dict,
                   rows: tuple[list[dict], str] | None = None) -> tuple[list[str], Int8Trials | None]:
    """Fused, int8 and fp16 variants beside tmp/model.onnx; their checks go into `report`.
    Returns the CPU variants that passed (candidates for the serving default) and the int8 trials
    (None without int8), which certification may ask for the next recipe."""
    passed, trials, tokenizer_json = ["fp32"], None, tmp / "tokenizer.json"
    print("[fanzha] fusing attention / LayerNorm / GELU (onnxruntime.transformers)", flush=True)
    fused = optimize.optimize(tmp / "model.onnx", tmp / optimize.VARIANTS["opt"], config.num_attention_heads, config.hidden_size)
    report["opt"] = {**parity_report(reference, onnx_logits(tmp / optimize.VARIANTS["opt"], tokenizer_json, texts,
                                                            max_length), FP32_TOLERANCE), "fused_operators": fused}
    check_parity("fused model.opt.onnx", report["opt"], tmp / "parity.json")
    passed.append("opt")
    if int8:
        rows, where = rows or optimize.validation_rows(model_dir, guard_rows, data=guard_data)
        trials = Int8Trials(tmp, model_dir, rows, where, texts, reference, max_length, report)
        ok = trials.next()  # the first recipe that passes the guard is shipped
        (tmp / "parity.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
        if ok:
            passed.append("int8")
        elif int8 == "optional":  # ship the fp32 variants; the failed guard stays in parity.json
            (tmp / optimize.VARIANTS["int8"]).unlink()
            report["int8"]["shipped"] = False
            print(f"[fanzha] warning: int8 fails the accuracy guard (label agreement "
                  f"{report['int8']['label_agreement']:.4f}); shipping the fp32 variants only", file=sys.stderr, flush=True)
        else:
            optimize.check_guard("int8", report["int8"])
    try:  # for GPUs only; a conversion problem must not block the CPU variants
        optimize.to_fp16(tmp / optimize.VARIANTS["opt"], tmp / optimize.VARIANTS["fp16"])
        try:
            report["fp16"] = parity_report(reference, onnx_logits(tmp / optimize.VARIANTS["fp16"], tokenizer_json, texts,
                                                                  max_length), FP32_TOLERANCE)
            report["fp16"]["note"] = "for GPUs; measured here on CPU, never the CPU default"
        except Exception as e:  # noqa: BLE001 — the CPU provider lacks some fp16 kernels
            report["fp16"] = {"note": f"for GPUs; not checked on CPU ({type(e).__name__})"}
    except Exception as e:  # noqa: BLE001
        (tmp / optimize.VARIANTS["fp16"]).unlink(missing_ok=True)
        report["fp16"] = {"error": f"fp16 conversion failed: {type(e).__name__}: {e}"[:500]}
        print(f"[fanzha] warning: {report['fp16']['error']}", file=sys.stderr, flush=True)
    return passed, trials


def export(model_dir: Path, out: Path, policy: Path | None = None, sample: list[str] | None = None,
           int8: bool | str = True, guard_rows: int = optimize.GUARD_ROWS, guard_data: Path | None = None,
           default_variant: str | None = None, certify=None, certify_rows: int = optimize.CERTIFY_ROWS,
           eval_report: Path | None = None) -> dict:
    """`eval_report`: the `fanzha evaluate` report the model card (README.md) shows (default MODEL/eval/report.json).
    `certify(folder, variants, validation_rows, test_rows, taxonomy_path, legit=certify_legit) -> {"certified": {variant
    file: entry}, "guards": {variant file: {"passed", "reason", ...}}}` (serving/certify.py
    `certify_variants`, passed in by fanzha/exporting.py): run on the half-built folder."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    started = time.time()
    load_calibration(model_dir)  # a stale calibration.json is refused before any work
    cfg = yaml.safe_load((model_dir / "train_config.yaml").read_text(encoding="utf-8"))
    # Eager attention exports the matmul/softmax pattern that ONNX Runtime's Attention fusion
    # recognises (the SDPA graph is left unfused); the numbers are the same.
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, attn_implementation="eager").eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    # on failure the half-built folder stays as OUT.tmp (its parity.json explains), OUT is untouched
    report = _export_into(tmp, model, tokenizer, cfg, model_dir, out, policy, sample, int8, guard_rows, guard_data,
                          default_variant, certify, certify_rows, eval_report)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    report["export_seconds"] = round(time.time() - started, 1)
    print(f"[fanzha] serving artifact written to {out} in {report['export_seconds']} s: parity max |diff| "
          f"{report['fp32']['max_abs_logit_diff']:.2e}, default variant {report['default_variant']}", flush=True)
    return report


def _export_into(tmp: Path, model, tokenizer, cfg: dict, model_dir: Path, out: Path, policy, sample, int8: bool,
                 guard_rows: int, guard_data, default_variant: str | None, certify=None,
                 certify_rows: int = optimize.CERTIFY_ROWS, eval_report: Path | None = None) -> dict:
    print(f"[fanzha] exporting {model_dir} to ONNX (opset {OPSET})", flush=True)
    export_onnx(model, tmp / "model.onnx")
    for name in TOKENIZER_FILES + ("config.json",):
        if (model_dir / name).is_file():
            shutil.copy(model_dir / name, tmp / name)
    copy_input_tables(model_dir, cfg, tmp)  # variants.yaml, taxonomy.yaml: read from here on, never the source tree
    shutil.copy(policy or cfg["policy"], tmp / "policy.yaml")
    calibration = apply_calibration(model_dir, tmp / "policy.yaml", explicit_policy=policy is not None,
                                    write_policy=certify is None)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]

    print("[fanzha] parity check: PyTorch vs ONNX Runtime", flush=True)
    texts = sample or sample_texts()
    reference = predict_logits(model, tokenizer, texts, cfg["max_length"],
                               normalizer=Normalizer(tmp / INPUT_TABLES["variants"]))  # as served (ONNX: the same file)
    report = {"fp32": parity_report(reference, onnx_logits(tmp / "model.onnx", tmp / "tokenizer.json", texts,
                                                            cfg["max_length"]), FP32_TOLERANCE)}
    (tmp / "parity.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    check_parity("fp32 model.onnx", report["fp32"], tmp / "parity.json")
    rows = None
    if certify is not None:  # the same validation rows certify every variant (the int8 guard: a capped sample)
        cert_rows, where = optimize.validation_rows(model_dir, max(certify_rows, guard_rows), data=guard_data)
        rows = (cert_rows[:guard_rows] if len(cert_rows) > guard_rows else cert_rows, where)
    passed, trials = build_variants(tmp, model.config, texts, reference, cfg["max_length"], model_dir, int8,
                                    guard_rows, guard_data, report, rows)
    certified = {}
    if certify is not None:
        certified = _certify(certify, tmp, cfg, model_dir, labels, passed, cert_rows, where, certify_rows, guard_data,
                             int8, report, trials)

    # The serving default: the fastest variant that passed, timed here on a fixed sample.
    report["timing"] = {"cores": optimize.cpu_cores(), "texts": "data.synth.generate(64, seed=1234)",
                        **optimize.time_variants(tmp, sample_texts(64), cfg["max_length"], passed)}
    timings = {k: v for k, v in report["timing"].items() if k in passed}
    if default_variant and default_variant not in passed:
        raise ParityError(f"--default-variant {default_variant}: not among the variants that passed: {passed}")
    report["default_variant"] = optimize.VARIANTS[default_variant or optimize.fastest(timings)]
    for name in passed:
        t = timings[name]
        print(f"[fanzha]   {name:5s} batch-1 p50 {t['batch1_ms_p50']:7.2f} ms  batch-32 {t['batch32_msg_per_s']:8.1f} msg/s", flush=True)
    temperature = certified[report["default_variant"]]["temperature"] if certified else calibration.get("temperature", 1.0)
    meta = {"labels": labels, "max_length": cfg["max_length"], "temperature": temperature,
            "default_variant": report["default_variant"],
            "model_name": out.parent.name if out.name == "serving" else out.name,
            "version": time.strftime("%Y%m%d%H%M%S"), "base_model": cfg["base_model"],
            "input": input_section(tmp, cfg)}
    if certified:  # one entry per shipped CPU variant; the policy names it
        meta["certified"] = {optimize.VARIANTS[name]: certified[optimize.VARIANTS[name]] for name in passed}
        _policy_says_certified(tmp / "policy.yaml")
    if calibration:
        report["calibration_json"] = {k: calibration.get(k) for k in ("temperature", "block_threshold", "weights_sha256",
                                                                       "data", "variant")}
    (tmp / "fanzha.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")
    (tmp / "parity.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    card, shown = model_card.write(model_dir, tmp, meta, eval_report)  # README.md, covered by the manifest
    print(f"[fanzha] model card {card.name}: {shown}", flush=True)

    manifest = {"files": {p.name: sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()}}
    for name in ("metrics.json", "data_manifest.json"):
        if (model_dir / name).is_file():
            manifest[name.removesuffix(".json")] = json.loads((model_dir / name).read_text(encoding="utf-8"))
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    return report


def _certify(certify, tmp: Path, cfg: dict, model_dir: Path, labels: list[str], passed: list[str], rows: list[dict],
             where: str, cap: int, guard_data, int8, report: dict, trials: Int8Trials | None = None) -> dict:
    """Run the injected certification on the shipped CPU variants; apply the int8 guard's verdict.
    An int8 variant that fails it is quantized again with the next recipe (`trials`) and certified
    again against its reference's entry (not scored again), as the accuracy guard does; when no recipe passes both, it is not
    shipped with --int8-optional, else a GuardError. Removes failed variants from `passed`."""
    # a provisional fanzha.json: the Predictor needs labels and max_length (final one written later)
    (tmp / "fanzha.json").write_text(json.dumps({"labels": labels, "max_length": cfg["max_length"], "temperature": 1.0,
                                                 "default_variant": optimize.VARIANTS[passed[0]],
                                                 "input": input_section(tmp, cfg)}), encoding="utf-8")
    test, test_where = optimize.test_rows(model_dir, cap, data=guard_data)
    result = certify(tmp, [optimize.VARIANTS[name] for name in passed], rows, test, cfg.get("taxonomy"),
                     legit=cfg.get("certify_legit", "all"))
    certified, guards = result["certified"], result.get("guards", {})
    report["certification"] = {"validation": where, "test": test_where, "validation_rows": len(rows),
                               "test_rows": len(test), "guards": guards}
    int8_file = optimize.VARIANTS["int8"]
    guard = guards.get(int8_file)
    while guard is not None and not guard["passed"] and trials is not None:
        print(f"[fanzha]   {report['int8']['recipe']}: fails the certified guard ({guard['reason']})", flush=True)
        trials.failed(f"certified guard: {guard['reason']}")
        if not trials.next():
            break
        again = certify(tmp, [int8_file], rows, test, cfg.get("taxonomy"), legit=cfg.get("certify_legit", "all"),
                        known={optimize.VARIANTS["opt"]: certified[optimize.VARIANTS["opt"]]})
        certified[int8_file], guard = again["certified"][int8_file], again["guards"][int8_file]
        guards[int8_file] = guard
    if guard is not None and "int8" in report:
        report["int8"]["certified"] = guard
        if not guard["passed"]:
            report["int8"]["passed"] = False
            if int8 == "optional":
                (tmp / int8_file).unlink()
                report["int8"]["shipped"] = False
                passed.remove("int8")
                certified.pop(int8_file, None)
                print(f"[fanzha] warning: int8 fails the certified guard ({guard['reason']}); shipping the fp32 "
                      f"variants only", file=sys.stderr, flush=True)
            else:
                (tmp / "parity.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
                raise optimize.GuardError(f"int8 variant fails the certified guard on {len(rows)} validation rows: "
                                          f"{guard['reason']}; export with --int8-optional to ship the fp32 variants "
                                          f"instead, or --no-int8")
    missing = [optimize.VARIANTS[n] for n in passed if optimize.VARIANTS[n] not in certified]
    if missing:
        raise ParityError(f"certification returned no entry for {missing}")
    (tmp / "parity.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    return certified


def _policy_says_certified(path: Path) -> None:
    """policy.yaml: `thresholds.fraud.block: certified` — the served variant's certified threshold
    (fanzha.json `certified[variant].block_threshold`, resolved by serving/policy.py)."""
    policy = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    fraud = policy.setdefault("thresholds", {}).setdefault("fraud", {})
    fraud["block"] = "certified"
    path.write_text(yaml.safe_dump(policy, sort_keys=False, allow_unicode=True), encoding="utf-8")


def main(argv=None, certify=None) -> int:
    parser = argparse.ArgumentParser(prog="fanzha export", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="model artifact folder (output of fanzha train)")
    parser.add_argument("out", type=Path, help="serving artifact folder to write")
    parser.add_argument("--policy", type=Path, help="decision policy (default: the one in the training config)")
    parser.add_argument("--no-int8", action="store_true", help="skip the int8 variant (and its accuracy guard)")
    parser.add_argument("--int8-optional", action="store_true",
                        help="when int8 fails the accuracy guard, ship the fp32 variants instead of failing")
    parser.add_argument("--guard-rows", type=int, default=optimize.GUARD_ROWS,
                        help="validation rows for the int8 accuracy guard (default: the certification's sample)")
    parser.add_argument("--guard-data", type=Path, help="corpus folder (validation.jsonl) or labelled JSONL for the "
                                                        "guard (default: the model's own validation split)")
    parser.add_argument("--default-variant", choices=optimize.CPU_VARIANTS,
                        help="serving default (default: the fastest variant that passed, timed here)")
    parser.add_argument("--certify-rows", type=int, default=optimize.CERTIFY_ROWS,
                        help="validation (and test) rows that certify each variant's temperature and block threshold")
    parser.add_argument("--eval-report", type=Path, help="the fanzha evaluate report.json the model card shows "
                                                         "(default: MODEL/eval/report.json; one of other weights is left out)")
    args = parser.parse_args(argv)
    try:
        export(args.model, args.out, args.policy, int8=False if args.no_int8 else ("optional" if args.int8_optional else True), guard_rows=args.guard_rows,
               guard_data=args.guard_data, default_variant=args.default_variant, certify=certify,
               certify_rows=args.certify_rows, eval_report=args.eval_report)
    except CalibrationError as e:  # a stale calibration.json: say what to run, no traceback
        print(f"fanzha export: error: {e}", file=sys.stderr)
        return 2
    except (ParityError, optimize.GuardError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
