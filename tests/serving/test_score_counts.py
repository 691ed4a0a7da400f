"""`fanzha score` summary and columns: rows_in is what was read from the input, counted apart from what
was written; integer id columns come back with their type and exact value in every format."""
import csv
import json

import pyarrow.parquet as pq
import pytest

import serving.batch.score as score
from data.tables import read_table
from tests.data.test_tables import BIG, _write_ids

pytestmark = pytest.mark.slow


def _input_rows(path) -> int:
    """Rows of the input, counted without data/tables.py."""
    if path.suffix == ".parquet":
        return pq.ParquetFile(path).metadata.num_rows
    with open(path, newline="", encoding="utf-8") as f:
        if path.suffix == ".jsonl":
            return sum(1 for line in f if line.strip())
        return sum(1 for _ in csv.DictReader(f, delimiter="\t" if path.suffix == ".tsv" else ","))


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_rows_in_counts_the_input_not_the_output(tiny_serving, tmp_path, monkeypatch, suffix):
    src, dst = tmp_path / f"in{suffix}", tmp_path / "out.csv"
    _write_ids(src, BIG * 6)
    n_input = _input_rows(src)
    real = score.score_frame
    # a scorer that loses the last row of every chunk: the summary must show it
    monkeypatch.setattr(score, "score_frame", lambda *a, **k: real(*a, **k).iloc[:-1])
    summary = score.score_file(tiny_serving, src, dst, chunk_rows=7, progress=False)
    chunks = -(-n_input // 7)
    assert summary["rows_in"] == n_input
    assert summary["rows_out"] == len(read_table(dst)) == n_input - chunks
    assert summary["rows_in"] != summary["rows_out"]


@pytest.mark.parametrize("suffix_in, suffix_out", [(".jsonl", ".parquet"), (".jsonl", ".jsonl"), (".jsonl", ".csv"),
                                                   (".parquet", ".jsonl"), (".parquet", ".parquet"), (".parquet", ".tsv")])
def test_integer_ids_come_back_exact(tiny_serving, tmp_path, suffix_in, suffix_out):
    src, dst = tmp_path / f"in{suffix_in}", tmp_path / f"out{suffix_out}"
    expected = _write_ids(src, [2**53 + 1, None, 9007199254740993] + BIG[2:] + [None])
    assert score.main(["--model", str(tiny_serving), "--input", str(src), "--output", str(dst),
                       "--chunk-rows", "3", "--quiet"]) == 0
    if suffix_out == ".jsonl":
        rows = [json.loads(line) for line in dst.read_text(encoding="utf-8").splitlines()]
        assert [r.get("id") for r in rows] == expected
    elif suffix_out == ".parquet":
        table = pq.read_table(dst)
        assert table.column("id").to_pylist() == expected and str(table.schema.field("id").type) == "int64"
    else:
        sep = "\t" if suffix_out == ".tsv" else ","
        with open(dst, newline="", encoding="utf-8") as f:
            cells = [row["id"] for row in csv.DictReader(f, delimiter=sep)]
        assert cells == ["" if i is None else str(i) for i in expected]
