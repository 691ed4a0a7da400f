"""Broken CSV quoting costs only the lines it breaks; every cursor is a place a read can resume."""
import pandas as pd
import pytest

from data.csv_records import CsvRecords
from data.tables import ROW_ERROR, TableError, count_rows, read_chunks, read_table

DAMAGED = (b'id,text\n1,hello\n2,"unterminated, quote\n3,fine\n4,"multi\nline ok"\n\n5,too,many,fields\n6\n'
           b'7,"a""b"\n8,\xff\xfe bad\n9,"never closed\n10,last')


def test_broken_quoting_becomes_error_rows_and_the_rest_survives(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(DAMAGED)
    frame = read_table(path)
    assert frame["id"].tolist()[:1] + frame["id"].tolist()[2:4] == ["1", "3", "4"]
    assert frame["text"][3] == "multi\nline ok", "a sound multi-line field after the damage is intact"
    errors = frame[ROW_ERROR].fillna("").tolist()
    assert [bool(e) for e in errors] == [False, True, False, False, True, False, False, False, True, False]
    assert errors[1].startswith("line 3: broken CSV quoting")
    assert errors[4] == "line 8: expected 2 fields, saw 4"
    assert errors[8] == "line 12: broken CSV quoting: unexpected end of data"
    assert frame["id"][1] == '2,"unterminated, quote', "the raw line is kept (first column by default)"
    assert frame["id"].tolist()[5:8] == ["6", "7", "8"] and frame["text"][5] == "" and frame["text"][6] == 'a"b'
    assert frame["text"].tolist()[-1] == "last"


def test_raw_line_goes_to_the_named_column(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(DAMAGED)
    frame = next(read_chunks(path, 100, raw_column="text"))[0]
    assert frame["text"][1] == '2,"unterminated, quote' and frame["id"][1] == ""


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 4])
@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_reading_from_any_cursor_continues_exactly(tmp_path, chunk_rows, suffix):
    path = tmp_path / f"t{suffix}"
    if suffix == ".csv":
        path.write_bytes(DAMAGED)
    elif suffix == ".jsonl":
        path.write_text('{"text": "a"}\n\n{broken\n{"text": "b", "n": 1}\n[1]\n{"text": "c"}\n', encoding="utf-8")
    else:
        pd.DataFrame({"text": [f"t{i}" for i in range(11)]}).to_parquet(path, row_group_size=3)
    whole = list(read_chunks(path, chunk_rows))
    assert all(len(f) == chunk_rows for f, _ in whole[:-1]), "exact chunks"
    for k, (_, cursor) in enumerate(whole):
        rest = list(read_chunks(path, chunk_rows, start=cursor))
        assert len(rest) == len(whole) - k - 1
        for (a, ca), (b, cb) in zip(rest, whole[k + 1:]):
            assert ca == cb
            pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))
    plan = [c for _, c in read_chunks(path, chunk_rows, frames=False)]
    assert plan == [c for _, c in whole]


def test_count_rows(tmp_path):
    csv = tmp_path / "a.csv"
    csv.write_text("text\na\nb\nc", encoding="utf-8")
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text('{"a": 1}\n{"a": 2}\n', encoding="utf-8")
    parquet = tmp_path / "a.parquet"
    pd.DataFrame({"a": range(7)}).to_parquet(parquet)
    assert (count_rows(csv), count_rows(jsonl), count_rows(parquet)) == (3, 2, 7)


def test_header_only_and_empty_files(tmp_path):
    (tmp_path / "h.csv").write_text("id,text\n", encoding="utf-8")
    assert list(read_chunks(tmp_path / "h.csv")) == []
    assert CsvRecords(tmp_path / "h.csv").columns == ["id", "text"]
    (tmp_path / "dup.csv").write_text("a,a,a.1\n1,2,3\n", encoding="utf-8")
    columns = list(read_table(tmp_path / "dup.csv").columns)
    assert len(set(columns)) == 3 and columns[0] == "a" and columns[2].startswith("a.1"), "duplicate names made unique"
    (tmp_path / "e.csv").write_bytes(b"")
    with pytest.raises(TableError, match="empty file"):
        list(read_chunks(tmp_path / "e.csv"))
