"""Engine benchmarks: the same model and the same messages through each inference engine, in
this process, one engine at a time.

    python -m bench.engines --model artifacts/demo/model --serving artifacts/demo/serving [--quick]

Every engine takes raw texts and returns class probabilities, tokenization included:
  pipeline          transformers `pipeline("text-classification")`, PyTorch eager (its own truncation)
  torch             PyTorch eager with fanzha's normalization and encoding, padded per batch
  ort-fp32/opt/int8 `serving.predictor.Predictor.probabilities` on model.onnx / .opt / .int8
  predictor-int8    the whole `Predictor.classify` (policy, result dicts) on model.int8.onnx
Batch 1: p50/p99 latency over single calls cycling through the messages. Batches of 32 and 64:
throughput (messages/s) over the messages in their given order (no sorting across batches, as
a server sees them).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

ENGINES = ("pipeline", "torch", "ort-fp32", "ort-opt", "ort-int8", "predictor-int8")


def build(name: str, model_dir: Path, serving: Path, max_length: int) -> Callable[[list[str]], object]:
    if name == "pipeline":
        from transformers import pipeline

        pipe = pipeline("text-classification", model=str(model_dir), device=-1, top_k=None)
        return lambda texts: pipe(texts, truncation=True, max_length=max_length, batch_size=len(texts))
    if name == "torch":
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from training.evaluate import predict_logits

        model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        return lambda texts: predict_logits(model, tokenizer, texts, max_length, batch_size=len(texts))
    from data.encoding import prepare
    from serving.predictor import Predictor

    predictor = Predictor(serving, variant=name.split("-", 1)[1])
    if name.startswith("predictor"):
        return predictor.classify
    return lambda texts: predictor.probabilities([prepare(t, max_length, normalizer=predictor.normalize) for t in texts])


def missing_variant(name: str, serving: Path) -> str | None:
    """The ONNX file an engine needs that the serving artifact does not hold (None: nothing missing)."""
    variant = name.split("-", 1)[1] if name.startswith(("ort-", "predictor-")) else None
    from serving.predictor import VARIANT_FILES

    file = VARIANT_FILES.get(variant)
    return file if file and not (Path(serving) / file).is_file() else None


def latency(fn: Callable, texts: list[str], calls: int) -> dict:
    for t in texts[:3]:
        fn([t])
    times = np.empty(calls)
    for i in range(calls):
        text = texts[i % len(texts)]
        start = time.perf_counter()
        fn([text])
        times[i] = time.perf_counter() - start
    return {"p50_ms": round(1e3 * float(np.percentile(times, 50)), 2), "p99_ms": round(1e3 * float(np.percentile(times, 99)), 2)}


def throughput(fn: Callable, texts: list[str], batch: int) -> float:
    batches = [texts[i:i + batch] for i in range(0, len(texts) - batch + 1, batch)]
    fn(batches[0])
    start = time.perf_counter()
    for b in batches:
        fn(b)
    return round(len(batches) * batch / (time.perf_counter() - start), 1)


def measure(model_dir: Path, serving: Path, texts: list[str], max_length: int, calls: int, bulk: int,
            engines=ENGINES, log=print) -> dict[str, dict]:
    """{engine: {batch1: {p50_ms, p99_ms}, batch32_msg_per_s, batch64_msg_per_s}}."""
    import torch

    from serving import tuning

    torch.set_num_threads(tuning.CORES)  # both runtimes get the same cores
    out = {}
    for name in engines:
        missing = missing_variant(name, serving)
        if missing:  # e.g. exported with --int8-optional when int8 missed its certified guard
            log(f"[bench] {name:15s} skipped: the serving artifact has no {missing}")
            continue
        fn = build(name, model_dir, serving, max_length)
        row = {"batch1": latency(fn, texts, calls)}
        for batch in (32, 64):
            row[f"batch{batch}_msg_per_s"] = throughput(fn, texts[:max(bulk, batch)], batch)
        out[name] = row
        log(f"[bench] {name:15s} batch-1 p50 {row['batch1']['p50_ms']:7.2f} ms p99 {row['batch1']['p99_ms']:7.2f} ms | "
            f"batch-32 {row['batch32_msg_per_s']:7.1f} msg/s | batch-64 {row['batch64_msg_per_s']:7.1f} msg/s")
        del fn
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.engines", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="model artifact (PyTorch engines)")
    parser.add_argument("--serving", type=Path, required=True, help="serving artifact (ONNX engines)")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--quick", action="store_true", help="tiny counts (a smoke run)")
    args = parser.parse_args(argv)
    from data.synth import generate

    meta = json.loads((args.serving / "fanzha.json").read_text(encoding="utf-8"))
    texts = [r["text"] for r in generate(128 if args.quick else 512, seed=2024)]
    result = measure(args.model, args.serving, texts, meta["max_length"], 5 if args.quick else 300,
                     64 if args.quick else 384, args.engines.split(","))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
