"""CSV / TSV records with their byte offsets; broken quoting costs only the lines it breaks.

    python -m data.csv_records messages.csv      # prints every damaged line and why

Python's csv module parses the records (a quoted field may span lines); it is fed one physical
line at a time, so the byte offset after every record is known — that is what lets a scoring run
resume in the middle of a file. A record whose quoting is broken (an unterminated quote that
swallows the following lines, a stray quote across lines, a field over the csv size limit, a
quoted field spanning more than MAX_RECORD_LINES lines) becomes an error row carrying its first
raw line, and parsing starts again on the next line, so one bad quote never loses the rest of
the file. A single line with too many fields is an error
row; one with too few is padded with "" (as pandas does). Blank lines are skipped.
"""
from __future__ import annotations

import csv
import sys
from collections import deque
from pathlib import Path
from typing import Iterator

MAX_RECORD_LINES = 100  # a quoted field spanning more physical lines is taken for broken quoting

Record = tuple  # (fields or None on an error row, error, raw line of an error row, end offset, end line)


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def unique_names(names: list[str]) -> list[str]:
    """Column names made unique the way pandas does it: a, a.1, a.2."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        if name in seen:
            seen[name] += 1
            new = f"{name}.{seen[name]}"
            while new in seen:
                seen[name] += 1
                new = f"{name}.{seen[name]}"
            seen[new] = 0
            out.append(new)
        else:
            seen[name] = 0
            out.append(name)
    return out


class CsvRecords:
    """The records of one CSV/TSV file after its header; `read(offset, line)` starts anywhere
    a previous read reported as a resume point."""

    def __init__(self, path: str | Path, sep: str = ","):
        self.path, self.sep = Path(path), sep
        with open(self.path, "rb") as f:
            offset = line = 0
            header: list[str] = []
            while not header:
                raw = f.readline()
                if not raw:
                    raise EOFError(f"{path}: empty file (no header row)")
                offset, line = offset + len(raw), line + 1
                text = _decode(raw).lstrip("\ufeff")
                header = next(csv.reader([text], delimiter=sep), [])
        self.columns = unique_names(header)
        self.data_offset, self.data_line = offset, line

    def read(self, offset: int | None = None, line: int | None = None) -> Iterator[Record]:
        """(fields, error, raw line, end offset, end line) per record. A damaged record yields its
        first line as an error row and its other lines are parsed again, so every end offset is a
        point from which a fresh read parses exactly as this one continues."""
        offset = self.data_offset if offset is None else offset
        line = self.data_line if line is None else line
        with open(self.path, "rb") as f:
            f.seek(offset)
            pending: list[bytes] = []  # raw lines of the record being parsed
            pushback: deque[bytes] = deque()  # lines of a damaged record, to parse again

            def lines():
                while True:
                    raw = pushback.popleft() if pushback else f.readline()
                    if not raw:
                        return
                    pending.append(raw)
                    if len(pending) > MAX_RECORD_LINES:
                        return  # ends the reader; the record is damaged and a new reader follows
                    yield _decode(raw)

            reader = csv.reader(lines(), delimiter=self.sep)
            while True:
                try:
                    fields, error = next(reader), None
                except StopIteration:
                    if not pending:
                        break
                    fields, error = None, f"broken CSV quoting: a quoted field spans over {MAX_RECORD_LINES} lines"
                except csv.Error as e:  # e.g. a field over csv.field_size_limit()
                    fields, error = None, f"broken CSV quoting: {e}"
                raw_lines = pending[:]
                pending.clear()
                if fields == []:  # a blank line
                    offset, line = offset + len(raw_lines[0]), line + 1
                    continue
                if error is None and len(raw_lines) > 1:
                    error = self._strict_error(raw_lines)
                elif error is None and ("\n" in fields[-1] or not raw_lines[0].endswith(b"\n")):
                    # the last line of the file: an unterminated quote ends there
                    strict = self._strict_error(raw_lines)
                    error = strict if strict and "unexpected end of data" in strict else None
                if error is None and len(fields) != len(self.columns):
                    if len(fields) < len(self.columns) and len(raw_lines) == 1:
                        fields = fields + [""] * (len(self.columns) - len(fields))
                    else:
                        error = f"expected {len(self.columns)} fields, saw {len(fields)}"
                if error is None:
                    offset, line = offset + sum(map(len, raw_lines)), line + len(raw_lines)
                    yield fields, None, "", offset, line
                    continue
                offset, line = offset + len(raw_lines[0]), line + 1
                yield None, f"line {line}: {error}", _decode(raw_lines[0]).rstrip("\r\n"), offset, line
                if len(raw_lines) > 1:
                    pushback.extendleft(reversed(raw_lines[1:]))
                    reader = csv.reader(lines(), delimiter=self.sep)

    def _strict_error(self, raw_lines: list[bytes]) -> str | None:
        """Why a record that spans lines (or ends the file) is broken, or None if it is sound."""
        try:
            rows = list(csv.reader(map(_decode, raw_lines), delimiter=self.sep, strict=True))
        except csv.Error as e:
            return f"broken CSV quoting: {e}"
        return None if len(rows) == 1 else "broken CSV quoting"


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    for name in args:
        records = CsvRecords(name, "\t" if name.lower().endswith(".tsv") else ",")
        rows = bad = 0
        for fields, error, raw, _, _ in records.read():
            rows += 1
            if error:
                bad += 1
                print(f"{name}: {error}: {raw[:120]!r}")
        print(f"{name}: {len(records.columns)} columns, {rows} rows, {bad} damaged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
