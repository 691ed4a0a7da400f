"""Resumable scoring output: the partial table beside OUT and its checkpoint sidecar.

    fanzha score --model ARTIFACT --input IN --output OUT --resume   # continues after a crash or kill -9

While a run goes, OUT is built as `.OUT.partial` (CSV/TSV/JSONL: one file that only grows;
Parquet: a folder of segment files, one row group each) and, after every chunk is on disk,
`.OUT.checkpoint.json` records the rows committed, the input cursor after them, the partial
output's committed size (bytes, or segments) and the running counts. The fingerprints of the input
and of the model, and the settings that shape the output (text column, chunk size), are recorded
too, so `--resume` refuses to splice two different runs. Resuming cuts the partial output back to
the committed size (a chunk written after the last checkpoint is written again, once) and reads
the input from the cursor. When every row is in, the partial output becomes OUT (Parquet: the
segments are streamed into one file) and the sidecar is removed.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pandas as pd

from data.tables import Cursor, TableWriter, table_format

VERSION = 1


class ResumeError(ValueError):
    """The checkpoint does not belong to this input, model or settings."""


def file_fingerprint(path: Path, sample: int = 1 << 20) -> dict:
    """Size, mtime and a hash of the first and last MiB: cheap on a multi-GB archive, and it
    changes when the file is replaced or appended to."""
    stat = path.stat()
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(sample))
        if stat.st_size > sample:
            f.seek(max(sample, stat.st_size - sample))
            h.update(f.read(sample))
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": h.hexdigest()}


def artifact_fingerprint(folder: Path) -> str:
    """Hash of the small files that decide the answers (manifest, metadata, policy) and the size
    and mtime of the ONNX files."""
    h = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.suffix in (".json", ".yaml"):
            h.update(path.name.encode() + path.read_bytes())
        elif path.suffix == ".onnx" or path.name.endswith(".onnx.data"):
            stat = path.stat()
            h.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return h.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp, path)


class PartialOutput:
    """OUT under construction. `identity` is what must match to resume; `state` the committed
    progress: rows, cursor (input position), size (output bytes or segments), stats (caller's)."""

    def __init__(self, output: str | Path, identity: dict, resume: bool = False):
        self.output = Path(output)
        self.fmt = table_format(self.output)
        name, suffix = self.output.name, self.output.suffix
        self.partial = self.output.with_name(f".{name}.partial" + ("" if self.fmt == "parquet" else suffix))
        self.sidecar = self.output.with_name(f".{name}.checkpoint.json")
        self.identity = {"version": VERSION, **identity}
        self.state = {"rows": 0, "cursor": None, "size": 0, "stats": {}}
        self.discarded = 0  # rows of an earlier run thrown away (started again without --resume)
        previous = self._load()
        if resume and previous is not None:
            self._check(previous["identity"])
            self.state = previous["state"]
            self._cut_back()
        else:
            self.discarded = previous["state"]["rows"] if previous else 0
            self._remove_partial()
            if self.fmt == "parquet":
                self.partial.mkdir(parents=True)

    @property
    def rows(self) -> int:
        return self.state["rows"]

    @property
    def cursor(self) -> Cursor | None:
        return Cursor(*self.state["cursor"]) if self.state["cursor"] else None

    @property
    def stats(self) -> dict:
        return self.state["stats"]

    def _load(self) -> dict | None:
        if not self.sidecar.is_file():
            return None
        try:
            data = json.loads(self.sidecar.read_text(encoding="utf-8"))
            return data if "identity" in data and "state" in data else None
        except (OSError, json.JSONDecodeError):
            return None

    def _check(self, recorded: dict) -> None:
        for key, value in self.identity.items():
            if recorded.get(key) != value:
                raise ResumeError(f"cannot resume {self.output}: its checkpoint was made with a different {key} "
                                  f"({recorded.get(key)!r}, now {value!r}); run without --resume to start again")

    def _cut_back(self) -> None:
        """Drop what was written after the last checkpoint."""
        size = self.state["size"]
        if self.fmt == "parquet":
            self.partial.mkdir(parents=True, exist_ok=True)
            for segment in self.partial.glob("part-*.parquet"):
                if int(segment.stem.split("-")[1]) >= size:
                    segment.unlink()
            missing = [k for k in range(size) if not self._segment(k).is_file()]
        else:
            missing = [] if self.partial.is_file() and self.partial.stat().st_size >= size else ["data"]
            if not missing:
                with open(self.partial, "r+b") as f:
                    f.truncate(size)
        if missing:
            raise ResumeError(f"cannot resume {self.output}: the partial output {self.partial} lacks committed "
                              f"data ({missing[:3]}); run without --resume to start again")

    def _remove_partial(self) -> None:
        if self.partial.is_dir():
            shutil.rmtree(self.partial)
        elif self.partial.exists():
            self.partial.unlink()
        self.sidecar.unlink(missing_ok=True)

    def _segment(self, k: int) -> Path:
        return self.partial / f"part-{k:06d}.parquet"

    def commit(self, frame: pd.DataFrame, cursor: Cursor | None, stats: dict) -> None:
        """Append `frame`, make it durable, then record the new state (in that order, so the
        checkpoint never points past data that is not on disk)."""
        if self.fmt == "parquet":
            path = self._segment(self.state["size"])
            with TableWriter(path) as writer:
                writer.write(frame)
            size = self.state["size"] + 1
        else:
            path = self.partial
            TableWriter(path, append=True).write(frame)
            size = path.stat().st_size
        _fsync(path)
        self.state = {"rows": self.state["rows"] + len(frame), "cursor": list(cursor) if cursor else self.state["cursor"],
                      "size": size, "stats": stats}
        _write_json_atomic(self.sidecar, {"identity": self.identity, "state": self.state})

    def finish(self) -> Path:
        """Turn the committed partial output into OUT and drop the sidecar."""
        if self.fmt == "parquet":
            tmp = self.output.with_name(f".{self.output.name}.merging")
            _merge_segments([self._segment(k) for k in range(self.state["size"])], tmp)
            os.replace(tmp, self.output)
            shutil.rmtree(self.partial)
        else:
            os.replace(self.partial, self.output)
        self.sidecar.unlink(missing_ok=True)
        return self.output


def _merge_segments(segments: list[Path], out: Path) -> None:
    """Stream the segments into one Parquet file, one row group each. A column typed differently
    across segments (all-null in one chunk, say) gets one type: the non-null one, float for mixed
    numbers, else string."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schemas = [pq.read_schema(s) for s in segments]
    fields = []
    for name in schemas[0].names:
        types = {schema.field(name).type for schema in schemas} - {pa.null()}
        if len(types) <= 1:
            kind = types.pop() if types else pa.null()
        elif all(pa.types.is_integer(t) or pa.types.is_floating(t) for t in types):
            kind = pa.float64()
        else:
            kind = pa.string()
        fields.append(pa.field(name, kind))
    schema = pa.schema(fields)  # no pandas metadata: it would describe the first segment only
    with pq.ParquetWriter(out, schema) as writer:
        for segment in segments:
            writer.write_table(pq.read_table(segment).select(schema.names).cast(schema))
    _fsync(out)
