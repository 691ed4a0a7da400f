"""Batch-scoring throughput: `fanzha score` (local engine, 1 and 2 workers; Ray engine) against a
plain loop over a transformers pipeline, on the same generated file.

    python -m bench.score_bench --serving artifacts/demo/serving --rows 20000 [--torch-model artifacts/demo/model]
    python -m bench.score_bench --serving S --rows 2000000 --engines local-1     # peak RSS on a big file

Messages: `data.synth.generate` (5,000 distinct, then repeated with a counter), written as CSV
in slices. Each `fanzha score` run is a fresh subprocess, so its summary's rows/s (scoring time,
without interpreter start-up) and peak RSS (main process; largest worker) are its own; `wall_s`
includes start-up. The pipeline (`pipeline("text-classification")` on the PyTorch model, batch 64,
its own truncation) reads the same file in chunks and writes label and score per row. Writes
OUT/score_bench.json. On shared cores, other work moves every figure: the load average is recorded.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ENGINES = ("local-1", "local-2", "ray", "pipeline")
REPO = Path(__file__).resolve().parent.parent


def write_messages(path: Path, rows: int, seed: int = 0, slice_rows: int = 100_000) -> Path:
    """A CSV of `rows` messages (id, text), written slice by slice (flat memory)."""
    import pandas as pd

    from data.synth import generate

    texts = [r["text"] for r in generate(min(rows, 5000), seed)]
    with open(path, "w", encoding="utf-8", newline="") as f:
        for start in range(0, rows, slice_rows):
            ids = range(start, min(rows, start + slice_rows))
            pd.DataFrame({"id": [f"m{i}" for i in ids],
                          "text": [texts[i] if i < len(texts) else f"{texts[i % len(texts)]} #{i}" for i in ids]}
                         ).to_csv(f, index=False, header=start == 0)
    return path


def score_cli(serving: Path, src: Path, out: Path, *extra: str) -> dict:
    """One `fanzha score` run in a fresh process; its JSON summary plus the wall time."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "serving.batch.score", "--model", str(serving), "--input", str(src),
                           "--output", str(out), "--quiet", *extra], cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        return {"error": done.stderr.strip()[-600:]}
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    keep = ("rows_out", "errors", "rows_per_second", "seconds", "peak_rss_mb", "workers")
    return {**{k: summary[k] for k in keep}, "wall_s": round(wall, 2)}


def pipeline_loop(torch_model: Path, src: Path, out: Path, max_length: int, batch: int = 64) -> dict:
    """The plain way: read chunks, call a transformers pipeline, write label and score."""
    import torch
    from transformers import pipeline

    from data.tables import TableWriter, iter_table
    from serving.batch.score import cpu_count

    torch.set_num_threads(cpu_count())
    pipe = pipeline("text-classification", model=str(torch_model), device=-1)
    start, rows = time.perf_counter(), 0
    with TableWriter(out) as writer:
        for chunk in iter_table(src, 4096):
            texts = [t if isinstance(t, str) and t else " " for t in chunk["text"].tolist()]
            results = pipe(texts, batch_size=batch, truncation=True, max_length=max_length)
            writer.write(chunk.assign(label=[r["label"] for r in results], score=[r["score"] for r in results]))
            rows += len(chunk)
    seconds = time.perf_counter() - start
    return {"rows_out": rows, "rows_per_second": round(rows / seconds, 1), "seconds": round(seconds, 2)}


def run(model_dir: str | Path, rows: int, out_dir: str | Path, torch_model: str | Path | None = None,
        engines=ENGINES, log=print) -> dict:
    """Rows/s of each engine on `rows` generated messages; `model_dir` is the serving artifact, the
    pipeline's PyTorch model is `torch_model` or the `model/` folder beside it."""
    serving, out_dir = Path(model_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    src = write_messages(out_dir / f"messages_{rows}.csv", rows)
    torch_model = Path(torch_model) if torch_model else serving.parent / "model"
    results = {"rows": rows, "cores": len(os.sched_getaffinity(0)), "load_avg_before": os.getloadavg()[0]}
    for engine in engines:
        log(f"[score_bench] {engine} on {rows} rows ...")
        out = out_dir / f"scored_{engine}.csv"
        if engine.startswith("local-"):
            results[engine] = score_cli(serving, src, out, "--workers", engine.split("-")[1])
        elif engine == "ray":
            try:
                import ray  # noqa: F401
            except ImportError:
                results[engine] = {"skipped": "the `ray` extra is not installed"}
                continue
            results[engine] = score_cli(serving, src, out, "--engine", "ray")
        elif engine == "pipeline":
            if not (torch_model / "config.json").is_file():
                results[engine] = {"skipped": f"no PyTorch model at {torch_model}; pass --torch-model"}
                continue
            max_length = json.loads((serving / "fanzha.json").read_text(encoding="utf-8"))["max_length"]
            results[engine] = pipeline_loop(torch_model, src, out, max_length)
        log(f"[score_bench] {engine}: {results[engine]}")
        out.unlink(missing_ok=True)
    base = results.get("pipeline", {}).get("rows_per_second")
    if base:
        results["vs_pipeline"] = {e: round(results[e]["rows_per_second"] / base, 2) for e in engines
                                  if e != "pipeline" and results.get(e, {}).get("rows_per_second")}
    results["load_avg_after"] = os.getloadavg()[0]
    src.unlink(missing_ok=True)
    (out_dir / "score_bench.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.score_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--serving", required=True, help="serving artifact (output of fanzha export)")
    parser.add_argument("--torch-model", help="PyTorch model for the pipeline (default: SERVING/../model)")
    parser.add_argument("--rows", type=int, default=20_000, help="messages in the generated file")
    parser.add_argument("--engines", default=",".join(ENGINES), help=f"comma-separated subset of {ENGINES}")
    parser.add_argument("--out", default="artifacts/bench/score", help="folder for the file and the results")
    args = parser.parse_args(argv)
    engines = [e for e in args.engines.split(",") if e]
    unknown = set(engines) - set(ENGINES)
    if unknown:
        parser.error(f"unknown engine(s) {sorted(unknown)}")
    results = run(args.serving, args.rows, args.out, args.torch_model, engines)
    print(json.dumps(results, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
