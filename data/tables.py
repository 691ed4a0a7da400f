"""Tables in and out, by file extension: CSV, TSV, JSONL, Parquet — read in chunks.

    python -m data.tables messages.csv          # prints columns, row count and undecodable rows

Reading never drops a row: cells are read as text (CSV/TSV keep "" for empty cells), bytes
that are not UTF-8 are kept as lone surrogates so the row survives and can be reported
(`has_bad_utf8`), and `clean_text` turns them into U+FFFD before writing. A JSONL line that is
not a JSON object becomes a row whose `_error` column says why.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Iterator, Sequence

import pandas as pd

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
ROW_ERROR = "_error"  # column set on rows the reader could not parse


class TableError(ValueError):
    """The file cannot be read or written as a table."""


def table_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise TableError(f"{path}: unsupported extension {suffix!r}; use one of {sorted(FORMATS)}")
    return FORMATS[suffix]


def has_bad_utf8(value) -> bool:
    """True if a string carries undecodable bytes (read with surrogateescape)."""
    return isinstance(value, str) and any("\udc80" <= ch <= "\udcff" for ch in value)


def clean_text(value):
    if has_bad_utf8(value):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return value


def _jsonl_chunks(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    rows: list[dict] = []
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            line = raw.decode("utf-8", "surrogateescape").strip()
            if not line:
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    row = {ROW_ERROR: f"line {n}: expected a JSON object, got {type(row).__name__}"}
            except json.JSONDecodeError as e:
                row = {ROW_ERROR: f"line {n}: invalid JSON ({e.msg})"}
            rows.append(row)
            if len(rows) >= chunk_rows:
                yield pd.DataFrame(rows)
                rows = []
    if rows:
        yield pd.DataFrame(rows)


def iter_table(path: str | Path, chunk_rows: int = 10_000) -> Iterator[pd.DataFrame]:
    """Yield the table in chunks of at most `chunk_rows` rows, in file order."""
    path = Path(path)
    fmt = table_format(path)
    if not path.is_file():
        raise TableError(f"{path}: no such file")
    if fmt in ("csv", "tsv"):
        try:
            yield from pd.read_csv(path, sep="\t" if fmt == "tsv" else ",", dtype=object, keep_default_na=False,
                                   chunksize=chunk_rows, encoding="utf-8", encoding_errors="surrogateescape")
        except pd.errors.EmptyDataError as e:
            raise TableError(f"{path}: empty file (no header row)") from e
        except pd.errors.ParserError as e:
            raise TableError(f"{path}: malformed {fmt.upper()}: {e}") from e
    elif fmt == "jsonl":
        yield from _jsonl_chunks(path, chunk_rows)
    else:
        import pyarrow.parquet as pq

        try:
            file = pq.ParquetFile(path)
        except Exception as e:  # pyarrow raises several types for a broken file
            raise TableError(f"{path}: not a readable Parquet file: {e}") from e
        for batch in file.iter_batches(batch_size=chunk_rows):
            yield batch.to_pandas()


def columns_of(path: str | Path) -> list[str]:
    """Column names (JSONL: the keys of the first object rows)."""
    for chunk in iter_table(path, chunk_rows=1000):
        return [c for c in chunk.columns if c != ROW_ERROR]
    return []


def read_table(path: str | Path, required: Sequence[str] = ()) -> pd.DataFrame:
    chunks = list(iter_table(path))
    frame = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame()
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise TableError(f"{path}: missing column(s) {missing}; found {list(frame.columns)}")
    return frame


class TableWriter:
    """Append chunks to a CSV / TSV / JSONL / Parquet file (format by extension)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.fmt = table_format(self.path)
        self._parquet = None
        self._schema = None
        self._started = False

    def write(self, frame: pd.DataFrame) -> None:
        frame = frame.map(clean_text) if len(frame) else frame
        if self.fmt in ("csv", "tsv"):
            frame.to_csv(self.path, sep="\t" if self.fmt == "tsv" else ",", index=False,
                         mode="a" if self._started else "w", header=not self._started, encoding="utf-8")
        elif self.fmt == "jsonl":
            with open(self.path, "a" if self._started else "w", encoding="utf-8") as f:
                for row in frame.to_dict("records"):
                    f.write(json.dumps({k: _jsonable(v) for k, v in row.items()}, ensure_ascii=False) + "\n")
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self._parquet is None:
                self._schema = table.schema
                self._parquet = pq.ParquetWriter(self.path, self._schema)
            else:
                table = table.cast(self._schema)
            self._parquet.write_table(table)
        self._started = True

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _jsonable(value):
    if value is None or isinstance(value, (str, int, float, bool, list, dict)):
        return value if not (isinstance(value, float) and value != value) else None
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    for name in args:
        rows = bad = 0
        for chunk in iter_table(name):
            rows += len(chunk)
            bad += int(chunk.map(has_bad_utf8).any(axis=1).sum())
        print(f"{name}: columns {columns_of(name)}, {rows} rows, {bad} with invalid UTF-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
