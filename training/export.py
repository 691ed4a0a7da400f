"""Export a trained model artifact to the serving artifact (ONNX + tokenizer + policy + reports).

    fanzha export artifacts/demo/model artifacts/demo/serving [--policy configs/policy.yaml]

Writes `model.onnx` (opset 17, dynamic batch and sequence axes; inputs `input_ids`,
`attention_mask`; output `logits`), tokenizer files, `config.json`, `policy.yaml`,
`fanzha.json` (labels, max_length, temperature, default variant), `parity.json` (max |logit
difference| and label agreement of ONNX Runtime against PyTorch on a sample) and
`manifest.json` (sha256 of every file, training metrics, data fingerprints). Fails with a clear
message when fp32 parity breaks (max difference above 1e-3).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import yaml

from data.encoding import encode_batch, prepare
from training.evaluate import predict_logits

OPSET = 17
FP32_TOLERANCE = 1e-3
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
EDGE_TEXTS = ["短", "a", "验证码 123456", "【ETC服务】您的ETC认证已失效，请点击链接重新认证" * 40, "x" * 2000]


class ParityError(RuntimeError):
    """ONNX Runtime disagrees with PyTorch beyond tolerance."""


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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
    from tokenizers import Tokenizer

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    tok = Tokenizer.from_file(str(tokenizer_json))
    prepared = [prepare(t, max_length) for t in texts]
    out = []
    for start in range(0, len(prepared), batch_size):
        ids, mask = encode_batch(tok, prepared[start:start + batch_size], max_length)
        out.append(session.run(["logits"], {"input_ids": ids, "attention_mask": mask})[0])
    return np.concatenate(out)


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


def apply_calibration(model_dir: Path, policy_path: Path, explicit_policy: bool) -> dict:
    """Carry `fanzha evaluate`'s calibration (MODEL/calibration.json) into the serving artifact:
    the temperature goes to fanzha.json, and — unless a policy was passed explicitly — the block
    threshold chosen on validation becomes the policy's fraud.block (flag kept at or below it)."""
    path = model_dir / "calibration.json"
    if not path.is_file():
        return {}
    calibration = json.loads(path.read_text(encoding="utf-8"))
    if not explicit_policy and "block_threshold" in calibration:
        policy = yaml.safe_load(policy_path.read_text(encoding="utf-8")) or {}
        fraud = policy.setdefault("thresholds", {}).setdefault("fraud", {})
        fraud["block"] = round(float(calibration["block_threshold"]), 6)
        if "flag" in fraud:
            fraud["flag"] = min(fraud["flag"], fraud["block"])
        policy_path.write_text(yaml.safe_dump(policy, sort_keys=False), encoding="utf-8")
    return calibration


def export(model_dir: Path, out: Path, policy: Path | None = None, sample: list[str] | None = None) -> dict:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    started = time.time()
    cfg = yaml.safe_load((model_dir / "train_config.yaml").read_text(encoding="utf-8"))
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    print(f"[fanzha] exporting {model_dir} to ONNX (opset {OPSET})", flush=True)
    export_onnx(model, tmp / "model.onnx")
    for name in TOKENIZER_FILES + ("config.json",):
        if (model_dir / name).is_file():
            shutil.copy(model_dir / name, tmp / name)
    shutil.copy(policy or cfg["policy"], tmp / "policy.yaml")
    calibration = apply_calibration(model_dir, tmp / "policy.yaml", explicit_policy=policy is not None)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    meta = {"labels": labels, "max_length": cfg["max_length"], "temperature": calibration.get("temperature", 1.0), "default_variant": "model.onnx",
            "model_name": out.parent.name if out.name == "serving" else out.name,
            "version": time.strftime("%Y%m%d%H%M%S"), "base_model": cfg["base_model"]}
    (tmp / "fanzha.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")

    print("[fanzha] parity check: PyTorch vs ONNX Runtime", flush=True)
    texts = sample or sample_texts()
    reference = predict_logits(model, tokenizer, texts, cfg["max_length"])
    report = {"fp32": parity_report(reference, onnx_logits(tmp / "model.onnx", tmp / "tokenizer.json", texts,
                                                            cfg["max_length"]), FP32_TOLERANCE)}
    (tmp / "parity.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    if report["fp32"]["max_abs_logit_diff"] > FP32_TOLERANCE:
        raise ParityError(f"ONNX export parity broken: max |logit diff| {report['fp32']['max_abs_logit_diff']:.2e} "
                          f"> {FP32_TOLERANCE:g} (report in {tmp / 'parity.json'})")

    manifest = {"files": {p.name: sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()}}
    for name in ("metrics.json", "data_manifest.json"):
        if (model_dir / name).is_file():
            manifest[name.removesuffix(".json")] = json.loads((model_dir / name).read_text(encoding="utf-8"))
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    report["export_seconds"] = round(time.time() - started, 1)
    print(f"[fanzha] serving artifact written to {out}: parity max |diff| "
          f"{report['fp32']['max_abs_logit_diff']:.2e}, label agreement {report['fp32']['label_agreement']:.4f}", flush=True)
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="fanzha export", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="model artifact folder (output of fanzha train)")
    parser.add_argument("out", type=Path, help="serving artifact folder to write")
    parser.add_argument("--policy", type=Path, help="decision policy (default: the one in the training config)")
    args = parser.parse_args(argv)
    try:
        export(args.model, args.out, args.policy)
    except ParityError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
