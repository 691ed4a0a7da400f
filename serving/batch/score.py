"""Batch scoring: re-score a table of messages with a serving artifact — streaming, resumable.

    fanzha score --model artifacts/demo/serving --input messages.csv --output scored.parquet [--workers 2] [--resume]
    fanzha score --engine ray --ray-address auto --model ... --input ... --output ...   # see serving/batch/ray_engine.py
    fanzha score --model ... --policy /etc/fanzha/policy.yaml --sender-column sender --input ... --output ...

IN and OUT are CSV, TSV, JSONL or Parquet (by extension). OUT keeps every input column and
row, in order, and adds `label`, `category`, `score`, `fraud_score`, `spam_score`, `action`
(decided by `Policy.apply` through the predictor, the same code and the same policy file as the
service: `--policy FILE`, else the artifact's policy.yaml; the allow-list applies when
`--sender-column` names the sender ids), `reason` (the rule that decided it) and `error` (empty unless that row
could not be scored: empty text, a non-string, invalid UTF-8, an unparseable JSONL line, broken
CSV quoting — such a row keeps its raw line in the text column). The text column is `text`
unless `--text-column` says otherwise; if it is missing the command fails before any work. The
input is read in chunks and memory stays flat whatever its size; `--workers N` scores chunks in
N processes (each with its own predictor and cores/N intra-op threads), written in input order.
OUT appears only when complete: until then it is a partial file with a checkpoint beside it
(serving/batch/checkpoint.py), and `--resume` continues an interrupted run — even one killed with
SIGKILL — to the same file an uninterrupted run writes.
The artifact passes the same integrity check as the service's (serving/integrity.py) before any
work. The last line printed is a JSON summary: rows in and out, errors, counts per action and category.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time
from collections import Counter, deque
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from data.tables import ROW_ERROR, Cursor, TableError, columns_of, count_rows, has_bad_utf8, read_chunks, table_format
from serving.batch.checkpoint import PartialOutput, ResumeError, artifact_fingerprint, file_fingerprint
from serving.feedback.campaigns import attach_snapshot
from serving.feedback.store import StoreError, describe, open_store
from serving.integrity import verify_artifact
from serving.policy import Policy, PolicyError, PolicyFile
from serving.predictor import RESULT_FIELDS, ArtifactError, Predictor, check_policy_for

ENGINES = ("local", "ray")


class ScoreError(ValueError):
    """Scoring cannot start (bad arguments or input)."""


def cpu_count() -> int:
    from serving.tuning import cpu_cores

    return cpu_cores()  # affinity, capped by the container's cgroup CPU quota


def score_frame(predictor: Predictor, frame: pd.DataFrame, text_column: str,
                sender_column: str | None = None) -> pd.DataFrame:
    """Add the result columns to one chunk; rows the reader or predictor could not handle get `error`."""
    texts = frame[text_column].tolist() if text_column in frame.columns else [None] * len(frame)
    all_senders = frame[sender_column].tolist() if sender_column and sender_column in frame.columns \
        else [None] * len(frame)
    reader_errors = frame[ROW_ERROR].tolist() if ROW_ERROR in frame.columns else [None] * len(frame)
    to_score, senders, positions, pre_errors = [], [], [], {}
    for i, (text, read_error) in enumerate(zip(texts, reader_errors)):
        if isinstance(read_error, str) and read_error:
            pre_errors[i] = read_error
        elif has_bad_utf8(text):
            pre_errors[i] = "invalid UTF-8 in text"
        elif text is None or (isinstance(text, float) and text != text):
            pre_errors[i] = f"missing {text_column!r}"
        else:
            to_score.append(text)
            sender = all_senders[i]
            senders.append(str(sender) if isinstance(sender, (str, int)) and not isinstance(sender, bool) else None)
            positions.append(i)
    results = [dict.fromkeys(RESULT_FIELDS) for _ in range(len(frame))]
    # the one decision rule (Policy.apply, inside classify): block-list, allow-list, thresholds
    for i, r in zip(positions, predictor.classify(to_score, with_scores=False, senders=senders)):
        results[i] = r
    for i, message in pre_errors.items():
        results[i]["error"] = message
    out = frame.drop(columns=[ROW_ERROR], errors="ignore").copy()
    added = pd.DataFrame(results, columns=list(RESULT_FIELDS), index=out.index)
    for column in RESULT_FIELDS:
        out[column] = added[column]
    return out


class Tally:
    """Running counts for the summary; kept in the checkpoint so a resumed run reports the whole file."""

    MAX_KINDS = 20

    def __init__(self, saved: dict | None = None):
        saved = saved or {}
        self.rows = saved.get("rows", 0)
        self.errors = saved.get("errors", 0)
        self.kinds = Counter(saved.get("error_kinds", {}))
        self.actions = Counter(saved.get("actions", {}))
        self.categories = Counter(saved.get("categories", {}))

    def add(self, scored: pd.DataFrame) -> None:
        self.rows += len(scored)
        errors = [e for e in scored["error"].tolist() if isinstance(e, str) and e]
        self.errors += len(errors)
        for e in errors:  # "line 12: broken CSV quoting: ..." -> "broken CSV quoting"
            kind = e.split(": ", 1)[1] if e.startswith("line ") and ": " in e else e
            kind = kind.split(": ", 1)[0].split(" (", 1)[0]
            self.kinds[kind if kind in self.kinds or len(self.kinds) < self.MAX_KINDS else "other"] += 1
        self.actions.update(a for a in scored["action"].tolist() if isinstance(a, str) and a)
        self.categories.update(c for c in scored["category"].tolist() if isinstance(c, str) and c)

    def to_dict(self) -> dict:
        return {"rows": self.rows, "errors": self.errors, "error_kinds": dict(self.kinds),
                "actions": dict(self.actions), "categories": dict(self.categories)}


# -- local engine: this process, or a pool of worker processes ------------------------------
_WORKER: Predictor | None = None


def _start_worker(model: str, threads: int, parent: int, policy: str | None = None,
                  feedback: tuple[str, int] | None = None) -> None:
    global _WORKER
    _WORKER = Predictor(model, threads=threads, policy=PolicyFile(policy) if policy else None)
    if feedback is not None:
        attach_snapshot(_WORKER, *feedback)

    def watch():  # a worker outlives a parent killed with SIGKILL otherwise
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _score_in_worker(frame: pd.DataFrame, text_column: str, sender_column: str | None = None) -> pd.DataFrame:
    return score_frame(_WORKER, frame, text_column, sender_column)


def local_chunks(model, input_path, text_column: str, chunk_rows: int, start: Cursor | None = None,
                 workers: int = 1, threads: int | None = None, policy: str | Path | None = None,
                 sender_column: str | None = None, feedback: tuple[str, int] | None = None):
    """(scored chunk, input cursor after it), in input order. `policy`: a policy file, re-read
    when it changes (as the service does), else the artifact's policy.yaml; `feedback`: (store,
    last report id) whose campaigns decide too, as in the service."""
    chunks = read_chunks(input_path, chunk_rows, start, raw_column=text_column)
    if workers <= 1:
        predictor = Predictor(model, threads=threads or cpu_count(), policy=PolicyFile(policy) if policy else None)
        if feedback is not None:
            attach_snapshot(predictor, *feedback)
        for frame, cursor in chunks:
            yield score_frame(predictor, frame, text_column, sender_column), cursor
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    threads = threads or max(1, cpu_count() // workers)
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker,
                               initargs=(str(model), threads, os.getpid(), str(policy) if policy else None, feedback))
    pending: deque = deque()  # bounded: at most 2 chunks per worker in flight, so memory stays flat
    try:
        for frame, cursor in chunks:
            pending.append((pool.submit(_score_in_worker, frame, text_column, sender_column), cursor))
            if len(pending) > 2 * workers:
                future, done = pending.popleft()
                yield future.result(), done
        while pending:
            future, done = pending.popleft()
            yield future.result(), done
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def peak_rss_mb() -> dict:
    """Peak resident memory of this process and of its largest finished child (worker), in MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"main": round(own, 1), "workers": round(children, 1)} if children else {"main": round(own, 1)}


def score_file(model: str | Path, input_path: str | Path, output_path: str | Path, text_column: str = "text",
               chunk_rows: int = 4096, progress: bool = True, workers: int | None = None, threads: int | None = None,
               resume: bool = False, engine: str = "local", ray_address: str | None = None,
               policy: str | Path | None = None, sender_column: str | None = None,
               feedback_db: str | None = None) -> dict:
    model, input_path, output_path = Path(model), Path(input_path), Path(output_path)
    columns = columns_of(input_path)  # fails early on a missing file / bad extension
    table_format(output_path)  # validates the output extension before any work
    if text_column not in columns:
        raise ScoreError(f"{input_path}: no column {text_column!r} (columns: {columns}); use --text-column")
    clash = sorted(set(columns) & set(RESULT_FIELDS))
    if clash:
        raise ScoreError(f"{input_path}: input already has result column(s) {clash}; rename them first")
    if engine not in ENGINES:
        raise ScoreError(f"unknown engine {engine!r}; use one of {ENGINES}")
    if chunk_rows < 1 or (workers is not None and workers < 1):
        raise ScoreError("--chunk-rows and --workers must be at least 1")
    if sender_column is not None and sender_column not in columns:
        raise ScoreError(f"{input_path}: no column {sender_column!r} for --sender-column (columns: {columns})")
    if not (model / "fanzha.json").is_file():
        raise ScoreError(f"{model} is not a serving artifact (no fanzha.json); run `fanzha export` first")
    verify_artifact(model)  # the service's check: what scores is byte for byte what was exported
    if policy is not None:
        policy = Path(policy)
        check_policy_for(model, Policy.load(policy))  # fails now, with the reason, on a policy this model cannot use
    feedback = None
    if feedback_db is not None:  # read now: a store that cannot be read fails before any work
        try:
            store = open_store(feedback_db)
            feedback = (feedback_db, store.last_id())
            store.close()
        except StoreError as e:
            raise ScoreError(f"--feedback-db: {e}") from None
    identity = {"input": file_fingerprint(input_path), "model": artifact_fingerprint(model),
                "text_column": text_column, "chunk_rows": chunk_rows,
                **({"policy": file_fingerprint(policy)} if policy is not None else {}),
                **({"sender_column": sender_column} if sender_column else {}),
                **({"feedback_db": describe(store)["where"]} if feedback else {})}
    out = PartialOutput(output_path, identity, resume=resume)
    if out.discarded:
        print(f"note: discarded the checkpoint of an unfinished run ({out.discarded} rows); --resume continues one",
              file=sys.stderr)
    tally, resumed_from = Tally(out.stats), out.rows
    if engine == "ray":
        from serving.batch.ray_engine import ray_chunks

        chunks = ray_chunks(model, input_path, text_column, chunk_rows, out.cursor, workers=workers,
                            threads=threads, address=ray_address, policy=policy, sender_column=sender_column,
                            feedback=feedback)
    else:
        chunks = local_chunks(model, input_path, text_column, chunk_rows, out.cursor, workers or 1, threads,
                              policy=policy, sender_column=sender_column, feedback=feedback)
    bar = tqdm(total=count_rows(input_path), initial=resumed_from, desc="score", unit=" rows",
               disable=not progress, smoothing=0.1, dynamic_ncols=True)
    started, dropped = time.time(), set()
    rows_read = out.cursor.rows if out.cursor else 0  # counted by the reader, apart from what is written
    try:
        for scored, cursor in chunks:
            rows_read = cursor.rows if cursor is not None else rows_read
            # JSONL rows may lack keys or add new ones: every chunk gets the same columns (new keys
            # are kept in JSONL output; a CSV header or Parquet schema cannot take them)
            extra = [c for c in scored.columns if c not in columns and c not in RESULT_FIELDS]
            keep = extra if out.fmt == "jsonl" else []
            dropped.update(set(extra) - set(keep))
            scored = scored.reindex(columns=columns + keep + list(RESULT_FIELDS), fill_value=None)
            tally.add(scored)
            out.commit(scored, cursor, tally.to_dict())
            bar.update(len(scored))
        if out.rows == 0:  # an empty input still gets an output with its header
            out.commit(pd.DataFrame(columns=columns + list(RESULT_FIELDS)), None, tally.to_dict())
        bar.total = bar.n  # a CSV newline count overestimates when quoted fields span lines
        out.finish()
    finally:
        chunks.close()
        bar.close()
    seconds = time.time() - started
    summary = tally.to_dict()
    new_rows = summary.pop("rows") - resumed_from
    return {"rows_in": rows_read, "rows_out": out.rows, **summary, "resumed_from": resumed_from,
            "engine": engine, "workers": workers or 1 if engine == "local" else workers, "seconds": round(seconds, 2),
            "rows_per_second": round(new_rows / seconds, 1) if seconds else None,
            "peak_rss_mb": peak_rss_mb(), "output": str(output_path),
            **({"dropped_columns": sorted(dropped)} if dropped else {})}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="fanzha score", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="serving artifact folder (output of fanzha export)")
    parser.add_argument("--input", required=True, help="CSV, TSV, JSONL or Parquet file")
    parser.add_argument("--output", required=True, help="CSV, TSV, JSONL or Parquet file to write")
    parser.add_argument("--text-column", default="text", help="column holding the message text")
    parser.add_argument("--policy", default=None,
                        help="decision policy file (default: the artifact's policy.yaml); the service's FANZHA_POLICY")
    parser.add_argument("--sender-column", default=None,
                        help="column holding sender ids, for the policy's allow-list (default: none)")
    parser.add_argument("--feedback-db", default=None,
                        help="feedback store (SQLite file or postgresql:// URL, the service's FANZHA_FEEDBACK_DB): its "
                             "campaigns decide too, as in the service (block-list > campaign > allow-list > thresholds)")
    parser.add_argument("--chunk-rows", type=int, default=4096, help="rows read, scored and checkpointed at a time")
    parser.add_argument("--workers", type=int, default=None,
                        help="scoring processes (local, default 1) or actors (ray, default: up to one per CPU)")
    parser.add_argument("--threads", type=int, default=None,
                        help="ONNX Runtime intra-op threads per worker (default: cores / workers; ray: 1)")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run from OUT's checkpoint (starts afresh if there is none)")
    parser.add_argument("--engine", choices=ENGINES, default="local", help="local processes, or Ray Data")
    parser.add_argument("--ray-address", default=None,
                        help="Ray cluster to join (e.g. auto, ray://head:10001); default: a local Ray")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--chat", action="store_true", help="score conversations: JSONL in, one {\"id\", \"turns\": "
                        "[{\"speaker\", \"text\"}]} per line; JSONL out (serving/chat/conversation.py)")
    parser.add_argument("--per-turn", action="store_true", help="with --chat: also write each turn's result")
    args = parser.parse_args(argv)
    if args.chat:  # conversations (issue #7): serving/chat/conversation.py owns the format
        from serving.chat.conversation import main as chat_main

        return chat_main(["--model", args.model, "--input", args.input, "--output", args.output]
                         + (["--per-turn"] if args.per_turn else []) + (["--policy", args.policy] if args.policy else [])
                         + (["--feedback-db", args.feedback_db] if args.feedback_db else []))
    try:
        summary = score_file(args.model, args.input, args.output, args.text_column, args.chunk_rows,
                             progress=not args.quiet, workers=args.workers, threads=args.threads, resume=args.resume,
                             engine=args.engine, ray_address=args.ray_address, policy=args.policy,
                             sender_column=args.sender_column, feedback_db=args.feedback_db)
    except (ScoreError, TableError, ResumeError, ArtifactError, PolicyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the partial output and its checkpoint are kept; rerun with --resume", file=sys.stderr)
        return 130
    print(json.dumps(summary, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
