"""`fanzha score --engine ray`: the same batch scoring on Ray Data, on one machine or a cluster.

    fanzha score --engine ray --model artifacts/demo/serving --input in.parquet --output out.parquet
    fanzha score --engine ray --ray-address auto --workers 32 --model ... --input ... --output ...

read -> map_batches -> write. The driver first plans the chunks (a parse-only pass over CSV/JSONL,
Parquet metadata otherwise): chunk k starts at a cursor a sequential read would reach, so chunk
k holds exactly the rows the local engine scores together. Read tasks (one per chunk) parse their
chunk from the input; an actor pool, each actor holding one ONNX predictor built from the
artifact files shipped through the object store (nodes need not see the artifact folder), scores
chunk by chunk; the driver writes the chunks in order through the same checkpointed writer as the
local engine, so the output is identical, `--resume` works, and OUT stays one file.
A Ray row is one whole chunk (the pickled frame): Ray never retypes the data (a JSONL column mixing
types, undecodable bytes kept for the error report) nor re-batches it.

On a cluster, every node needs this package with the `serve` and `ray` extras
(`pip install 'fanzha[serve,ray]'`) and must be able to read the input path (shared storage).
"""
from __future__ import annotations

import logging
import pickle
import tempfile
from functools import partial
from pathlib import Path
from typing import Iterator

from data.tables import Cursor, count_rows, read_chunks, table_format
from serving.predictor import ArtifactMeta, Predictor
from serving.batch.score import score_frame


def artifact_files(folder: Path) -> dict[str, bytes]:
    """The files a predictor needs: everything but the ONNX variants it will not load."""
    variant = ArtifactMeta.load(folder).default_variant
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())
            if p.is_file() and (not (p.suffix == ".onnx" or p.name.endswith(".onnx.data")) or p.name.startswith(variant))}


def plan_chunks(input_path: Path, chunk_rows: int, start: Cursor | None) -> list[tuple[Cursor | None, Cursor]]:
    """(start, end) cursors of every chunk a sequential read from `start` would yield."""
    if table_format(input_path) == "parquet":
        total, first = count_rows(input_path), start.rows if start else 0
        ends = list(range(first + chunk_rows, total, chunk_rows)) + ([total] if total > first else [])
        cursors = [Cursor(r, r, 0) for r in ends]
    else:
        cursors = [cursor for _, cursor in read_chunks(input_path, chunk_rows, start, frames=False)]
    return list(zip([start] + cursors[:-1], cursors))


def _read_chunk(path: Path, chunk_rows: int, start: Cursor | None, text_column: str, index: int, rows: int):
    import pyarrow as pa

    frame, _ = next(read_chunks(path, chunk_rows, start, raw_column=text_column))
    if len(frame) != rows:
        raise RuntimeError(f"{path}: chunk {index} has {len(frame)} rows, planned {rows}; did the file change?")
    return [pa.table({"chunk": pa.array([index], pa.int64()),
                      "frame": pa.array([pickle.dumps(frame, protocol=5)], pa.large_binary())})]


def _datasource(input_path: Path, chunk_rows: int, plan, text_column: str):
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    class ChunkSource(Datasource):
        def estimate_inmemory_data_size(self):
            return input_path.stat().st_size

        def get_read_tasks(self, parallelism, per_task_row_limit=None, data_context=None):
            tasks, size = [], max(1, input_path.stat().st_size // max(1, len(plan)))
            for k, (start, end) in enumerate(plan):
                rows = end.rows - (start.rows if start else 0)
                read = partial(_read_chunk, input_path, chunk_rows, start, text_column, k, rows)
                tasks.append(ReadTask(read, BlockMetadata(num_rows=1, size_bytes=size, input_files=None, exec_stats=None)))
            return tasks

    return ChunkSource()


class ChunkScorer:
    """A Ray actor: one predictor, built once from the shipped artifact files."""

    def __init__(self, files, text_column: str, threads: int, sender_column: str | None = None, feedback=None):
        import ray

        files = ray.get(files)  # an ObjectRef: the artifact travels through the object store
        with tempfile.TemporaryDirectory(prefix="fanzha-artifact-") as folder:
            for name, data in files.items():
                (Path(folder) / name).write_bytes(data)
            self.predictor = Predictor(folder, threads=threads)  # everything is loaded into memory here
        if feedback is not None:  # (store, last report id): every actor decides on the same reports
            from serving.feedback.campaigns import attach_snapshot

            attach_snapshot(self.predictor, *feedback)
        self.text_column, self.sender_column = text_column, sender_column

    def __call__(self, batch):
        import pyarrow as pa

        frames = [pickle.dumps(score_frame(self.predictor, pickle.loads(blob), self.text_column, self.sender_column), protocol=5)
                  for blob in batch.column("frame").to_pylist()]
        return pa.table({"chunk": batch.column("chunk"), "frame": pa.array(frames, pa.large_binary())})


def ray_chunks(model: Path, input_path: Path, text_column: str, chunk_rows: int, start: Cursor | None = None,
               workers: int | None = None, threads: int | None = None, address: str | None = None,
               policy: Path | None = None, sender_column: str | None = None, feedback=None) -> Iterator:
    """(scored chunk, input cursor after it), in input order, scored on Ray. `policy`: a policy
    file shipped to every actor in place of the artifact's policy.yaml (read once per actor)."""
    import ray
    from ray.data import DataContext

    owned = not ray.is_initialized()
    if owned:
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)
    try:
        plan = plan_chunks(Path(input_path), chunk_rows, start)
        if not plan:
            return
        context = DataContext.get_current()
        context.execution_options.preserve_order = True  # chunks come back in input order
        context.enable_progress_bars = False  # fanzha score draws its own
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        threads = threads or 1
        pool = workers or (1, max(1, int(ray.cluster_resources().get("CPU", 1) // threads)))
        shipped = artifact_files(Path(model))
        if policy is not None:
            shipped["policy.yaml"] = Path(policy).read_bytes()
        files = ray.put(shipped)
        ds = ray.data.read_datasource(_datasource(Path(input_path), chunk_rows, plan, text_column),
                                      ray_remote_args={"num_cpus": 0})  # parsing is light; CPUs go to actors
        ds = ds.map_batches(ChunkScorer, fn_constructor_args=(files, text_column, threads, sender_column, feedback), batch_size=1,
                            batch_format="pyarrow", concurrency=pool, num_cpus=threads)
        expected = 0
        for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            for index, blob in zip(batch.column("chunk").to_pylist(), batch.column("frame").to_pylist()):
                if index != expected:
                    raise RuntimeError(f"Ray returned chunk {index} where chunk {expected} was due")
                yield pickle.loads(blob), plan[index][1]
                expected += 1
    finally:
        if owned:
            ray.shutdown()
