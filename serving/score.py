"""Batch scoring: re-score a table of messages with a serving artifact.

    fanzha score --model artifacts/demo/serving --input messages.csv --output scored.parquet

IN and OUT are CSV, TSV, JSONL or Parquet (by extension). OUT keeps every input column and
row, in order, and adds `label`, `category`, `score`, `fraud_score`, `spam_score`, `action`
and `error` (empty unless that row could not be scored: empty text, a non-string, invalid
UTF-8, an unparseable line). The text column is `text` unless `--text-column` says otherwise;
if it is missing the command fails before any work. Output goes to a temporary file that is
renamed when complete, so a crash never leaves a half-written OUT.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from data.tables import ROW_ERROR, TableError, TableWriter, columns_of, has_bad_utf8, iter_table
from serving.predictor import RESULT_FIELDS, Predictor


class ScoreError(ValueError):
    """Scoring cannot start (bad arguments or input)."""


def score_frame(predictor: Predictor, frame: pd.DataFrame, text_column: str) -> pd.DataFrame:
    """Add the result columns to one chunk; rows the reader or predictor could not handle get `error`."""
    texts = frame[text_column].tolist() if text_column in frame.columns else [None] * len(frame)
    reader_errors = frame[ROW_ERROR].tolist() if ROW_ERROR in frame.columns else [None] * len(frame)
    to_score, positions, pre_errors = [], [], {}
    for i, (text, read_error) in enumerate(zip(texts, reader_errors)):
        if isinstance(read_error, str) and read_error:
            pre_errors[i] = read_error
        elif has_bad_utf8(text):
            pre_errors[i] = "invalid UTF-8 in text"
        elif text is None or (isinstance(text, float) and text != text):
            pre_errors[i] = f"missing {text_column!r}"
        else:
            to_score.append(text)
            positions.append(i)
    results = [dict.fromkeys(RESULT_FIELDS) for _ in range(len(frame))]
    for i, r in zip(positions, predictor.classify(to_score, with_scores=False)):
        results[i] = r
    for i, message in pre_errors.items():
        results[i]["error"] = message
    out = frame.drop(columns=[ROW_ERROR], errors="ignore").copy()
    added = pd.DataFrame(results, columns=list(RESULT_FIELDS), index=out.index)
    for column in RESULT_FIELDS:
        out[column] = added[column]
    return out


def score_file(model: str | Path, input_path: str | Path, output_path: str | Path, text_column: str = "text",
               chunk_rows: int = 4096, progress: bool = True) -> dict:
    input_path, output_path = Path(input_path), Path(output_path)
    columns = columns_of(input_path)  # fails early on a missing file / bad extension
    TableWriter(output_path)  # validates the output extension before any work
    if text_column not in columns:
        raise ScoreError(f"{input_path}: no column {text_column!r} (columns: {columns}); use --text-column")
    clash = sorted(set(columns) & set(RESULT_FIELDS))
    if clash:
        raise ScoreError(f"{input_path}: input already has result column(s) {clash}; rename them first")
    predictor = Predictor(model)
    tmp = output_path.with_name(f".{output_path.name}.partial{output_path.suffix}")
    started = time.time()
    rows = 0
    actions, categories, errors = Counter(), Counter(), 0
    bar = tqdm(desc="score", unit=" rows", disable=not progress, smoothing=0.1)
    try:
        with TableWriter(tmp) as writer:
            for chunk in iter_table(input_path, chunk_rows):
                scored = score_frame(predictor, chunk, text_column)
                writer.write(scored)
                rows += len(scored)
                errors += int((scored["error"] != "").sum())
                actions.update(a for a in scored["action"] if a)
                categories.update(c for c in scored["category"] if c)
                bar.update(len(scored))
        os.replace(tmp, output_path)
    finally:
        bar.close()
        if tmp.exists():
            tmp.unlink()
    seconds = time.time() - started
    return {"rows_in": rows, "rows_out": rows, "errors": errors, "actions": dict(actions),
            "categories": dict(categories), "seconds": round(seconds, 2),
            "rows_per_second": round(rows / seconds, 1) if seconds else None, "output": str(output_path)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="fanzha score", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="serving artifact folder (output of fanzha export)")
    parser.add_argument("--input", required=True, help="CSV, TSV, JSONL or Parquet file")
    parser.add_argument("--output", required=True, help="CSV, TSV, JSONL or Parquet file to write")
    parser.add_argument("--text-column", default="text", help="column holding the message text")
    parser.add_argument("--chunk-rows", type=int, default=4096, help="rows read and scored at a time")
    args = parser.parse_args(argv)
    try:
        summary = score_file(args.model, args.input, args.output, args.text_column, args.chunk_rows)
    except (ScoreError, TableError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(summary, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
