"""Tables in and out, by file extension: CSV, TSV, JSONL, Parquet — read in chunks.

    python -m data.tables messages.csv          # prints columns, row count and undecodable rows

Reading never drops a row: cells are read as text (CSV/TSV keep "" for empty cells), bytes
that are not UTF-8 are kept as lone surrogates so the row survives and can be reported
(`has_bad_utf8`), and `clean_text` turns them into U+FFFD before writing. A JSONL line that is
not a JSON object, or a CSV line whose quoting is broken (data/csv_records.py), becomes a row
whose `_error` column says why. `read_chunks` yields exact chunks with a `Cursor` after each, from
which a later read can start (byte offsets for CSV/TSV/JSONL, a row index for Parquet): that is
what makes batch scoring resumable.

Integer columns keep their type and exact value, also when some rows lack a value (a missing
key, a null, an unparseable line): JSONL and Parquet integers are read as pandas' nullable
`Int64` (never float64, which rounds ids above 2^53), integers beyond int64 stay Python ints,
and every writer puts the same digits back (CSV/TSV cells are text and are kept as read).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

import pandas as pd

from data.csv_records import CsvRecords

INT64 = (-(1 << 63), (1 << 63) - 1)
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


class Cursor(NamedTuple):
    """Where a read stopped: rows read so far, the byte offset and line number after them
    (CSV/TSV/JSONL; for Parquet the offset is the row index)."""

    rows: int = 0
    offset: int = 0
    line: int = 0


def _jsonl_records(path: Path, start: Cursor | None):
    """(row dict, end offset, end line) per non-blank line."""
    offset, number = (start.offset, start.line) if start else (0, 0)
    with open(path, "rb") as f:
        f.seek(offset)
        for raw in f:
            offset += len(raw)
            number += 1
            line = raw.decode("utf-8", "surrogateescape").strip()
            if not line:
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    row = {ROW_ERROR: f"line {number}: expected a JSON object, got {type(row).__name__}"}
            except json.JSONDecodeError as e:
                row = {ROW_ERROR: f"line {number}: invalid JSON ({e.msg})"}
            yield row, offset, number


def _csv_records(path: Path, sep: str, start: Cursor | None, raw_column: str | None):
    """(row list, error, end offset, end line) per record; an error row keeps the raw line
    in `raw_column` (default: the first column)."""
    try:
        records = CsvRecords(path, sep)
    except EOFError as e:
        raise TableError(str(e)) from e
    columns = records.columns
    raw_at = columns.index(raw_column) if raw_column in columns else 0
    yield columns
    for fields, error, raw, end, line in records.read(*(start[1:] if start else ())):
        if error:
            fields = [""] * len(columns)
            fields[raw_at] = raw
        yield fields, error, end, line


def _parquet_chunks(path: Path, chunk_rows: int, start: Cursor | None):
    """Exact chunks of `chunk_rows` rows (record batches stop at row-group ends; these do not)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises several types for a broken file
        raise TableError(f"{path}: not a readable Parquet file: {e}") from e
    skip = start.rows if start else 0
    groups, first_row = [], 0
    for g in range(file.num_row_groups):
        n = file.metadata.row_group(g).num_rows
        if first_row + n > skip:
            groups.append(g)
        else:
            skip -= n
        first_row += n
    rows = start.rows if start else 0
    buffer, buffered = [], 0
    batches = file.iter_batches(batch_size=chunk_rows, row_groups=groups) if groups else iter(())
    for batch in batches:
        if skip:
            cut = min(skip, batch.num_rows)
            batch, skip = batch.slice(cut), skip - cut
        buffer.append(pa.Table.from_batches([batch]))
        buffered += batch.num_rows
        while buffered >= chunk_rows:
            table = pa.concat_tables(buffer).combine_chunks()
            head, rest = table.slice(0, chunk_rows), table.slice(chunk_rows)
            rows += head.num_rows
            yield _to_pandas(head), Cursor(rows, rows, 0)
            buffer, buffered = ([rest] if rest.num_rows else []), rest.num_rows
    if buffered:
        rows += buffered
        yield _to_pandas(pa.concat_tables(buffer).combine_chunks()), Cursor(rows, rows, 0)


def _to_pandas(table) -> pd.DataFrame:
    """Arrow integers become nullable pandas integers (Int64, UInt64, ...): with a null, plain
    to_pandas() would make them float64 and round ids above 2^53."""
    import pyarrow as pa

    def nullable(kind):
        if pa.types.is_integer(kind):
            return pd.api.types.pandas_dtype(("U" if pa.types.is_unsigned_integer(kind) else "") + f"Int{kind.bit_width}")
        return None

    return table.to_pandas(types_mapper=nullable)


def _keep_ints(frame: pd.DataFrame) -> pd.DataFrame:
    """Object columns built from parsed JSON: a column of integers (and missing values) becomes
    Int64, exactly (integers beyond int64 stay Python ints); then the other columns' types are inferred."""
    ints = {}
    for column in frame.columns:
        values = [v for v in frame[column].tolist() if v is not None and not (isinstance(v, float) and v != v)]
        if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            if all(INT64[0] <= v <= INT64[1] for v in values):
                ints[column] = pd.array([None if v is None or (isinstance(v, float) and v != v) else v
                                         for v in frame[column].tolist()], dtype="Int64")
            else:
                ints[column] = frame[column]
    rest = frame.drop(columns=list(ints)).infer_objects() if ints else frame.infer_objects()
    for column, values in ints.items():
        rest[column] = values
    return rest[list(frame.columns)]


def read_chunks(path: str | Path, chunk_rows: int = 10_000, start: Cursor | None = None,
                raw_column: str | None = None, frames: bool = True) -> Iterator[tuple[pd.DataFrame | None, Cursor]]:
    """Yield (chunk, cursor after it) in file order, every chunk `chunk_rows` rows except the last.
    Start at `start`, a cursor an earlier read returned. `frames=False` yields (None, cursor)
    only, without building frames (a cheap plan of the chunks)."""
    path = Path(path)
    fmt = table_format(path)
    if not path.is_file():
        raise TableError(f"{path}: no such file")
    if fmt == "parquet":
        for frame, cursor in _parquet_chunks(path, chunk_rows, start):
            yield (frame if frames else None), cursor
        return
    rows_done = start.rows if start else 0
    if fmt == "jsonl":
        records = ((row, None, end, line) for row, end, line in _jsonl_records(path, start))
        columns = None
    else:
        records = _csv_records(path, "\t" if fmt == "tsv" else ",", start, raw_column)
        columns = next(records)
    rows, errors, end, line = [], [], 0, 0
    for row, error, end, line in records:
        rows.append(row)
        errors.append(error)
        if len(rows) >= chunk_rows:
            rows_done += len(rows)
            yield (_frame(rows, errors, columns) if frames else None), Cursor(rows_done, end, line)
            rows, errors = [], []
    if rows:
        rows_done += len(rows)
        yield (_frame(rows, errors, columns) if frames else None), Cursor(rows_done, end, line)


def _frame(rows: list, errors: list, columns: list[str] | None) -> pd.DataFrame:
    if columns is None:  # JSONL: dicts (as objects first: pandas would make an int column with a gap float64)
        return _keep_ints(pd.DataFrame(rows, dtype=object))
    frame = pd.DataFrame(rows, columns=columns, dtype=object)
    if any(errors):
        frame[ROW_ERROR] = errors
    return frame


def iter_table(path: str | Path, chunk_rows: int = 10_000) -> Iterator[pd.DataFrame]:
    """Yield the table in chunks of `chunk_rows` rows, in file order."""
    for frame, _ in read_chunks(path, chunk_rows):
        yield frame


def count_rows(path: str | Path) -> int:
    """Rows in the file, cheaply: Parquet metadata (exact), else a newline count (CSV: an upper
    bound when quoted fields span lines or lines are blank)."""
    path = Path(path)
    if table_format(path) == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    lines, last = 0, b"\n"
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            lines += block.count(b"\n")
            last = block[-1:]
    lines += last != b"\n"
    return max(0, lines - (table_format(path) in ("csv", "tsv")))


def columns_of(path: str | Path) -> list[str]:
    """Column names (CSV/TSV: the header, even with no rows; JSONL: the keys of the first object rows)."""
    if table_format(path) in ("csv", "tsv") and Path(path).is_file():
        return next(_csv_records(Path(path), "\t" if table_format(path) == "tsv" else ",", None, None))
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

    def __init__(self, path: str | Path, append: bool = False):
        """`append=True` continues an existing CSV/TSV/JSONL file (no second header)."""
        self.path = Path(path)
        self.fmt = table_format(self.path)
        self._parquet = None
        self._schema = None
        self._started = append and self.fmt != "parquet" and self.path.is_file() and self.path.stat().st_size > 0

    def write(self, frame: pd.DataFrame) -> None:
        if len(frame):  # text columns only: an Int64 column stays as it is
            text = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])
                    and not pd.api.types.is_bool_dtype(frame[c])]
            frame = frame.assign(**{c: frame[c].map(clean_text) for c in text}) if text else frame
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

            table = to_arrow(frame)
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


def to_arrow(frame: pd.DataFrame):
    """An Arrow table of the frame; an object column mixing types (JSONL) is written as text."""
    import pyarrow as pa

    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        frame = frame.copy()
        for column in frame.columns[frame.dtypes == object]:
            values = [_jsonable(v) for v in frame[column]]
            frame[column] = [v if v is None or isinstance(v, str) else json.dumps(v, ensure_ascii=False) for v in values]
        return pa.Table.from_pandas(frame, preserve_index=False)


def _jsonable(value):
    if value is pd.NA or value is pd.NaT:
        return None
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
