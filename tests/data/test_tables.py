import json

import pandas as pd
import pytest

from data.tables import ROW_ERROR, TableError, TableWriter, clean_text, has_bad_utf8, iter_table, read_table


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_roundtrip_keeps_rows_and_order(tmp_path, suffix):
    frame = pd.DataFrame({"id": [str(i) for i in range(25)], "text": [f"消息{i}，含,逗号\t和\"引号\"" for i in range(25)]})
    path = tmp_path / f"t{suffix}"
    with TableWriter(path) as w:
        w.write(frame.iloc[:10])
        w.write(frame.iloc[10:])
    chunks = list(iter_table(path, chunk_rows=7))
    assert [len(c) for c in chunks] == [7, 7, 7, 4]
    back = pd.concat(chunks, ignore_index=True)
    assert back["text"].tolist() == frame["text"].tolist()
    assert back["id"].astype(str).tolist() == frame["id"].tolist()


def test_invalid_utf8_rows_survive(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes("text\nok\n".encode() + b"\xff\xfe broken\n" + "好\n".encode())
    frame = read_table(path)
    assert len(frame) == 3
    flags = [has_bad_utf8(t) for t in frame["text"]]
    assert flags == [False, True, False]
    assert "\ufffd" in clean_text(frame["text"][1])


def test_bad_jsonl_lines_become_error_rows(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"text": "a"}\nnot json\n[1, 2]\n{"text": "b"}\n', encoding="utf-8")
    frame = read_table(path)
    assert len(frame) == 4
    errors = frame[ROW_ERROR].fillna("").tolist()
    assert errors[0] == "" and "invalid JSON" in errors[1] and "JSON object" in errors[2] and errors[3] == ""


def test_errors_are_clear(tmp_path):
    with pytest.raises(TableError, match="unsupported extension"):
        list(iter_table(tmp_path / "x.xlsx"))
    with pytest.raises(TableError, match="no such file"):
        list(iter_table(tmp_path / "missing.csv"))
    (tmp_path / "e.csv").write_text("", encoding="utf-8")
    with pytest.raises(TableError, match="empty file"):
        list(iter_table(tmp_path / "e.csv"))
    (tmp_path / "ok.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(TableError, match="missing column"):
        read_table(tmp_path / "ok.csv", required=("text",))
    (tmp_path / "p.parquet").write_bytes(b"not parquet")
    with pytest.raises(TableError, match="Parquet"):
        list(iter_table(tmp_path / "p.parquet"))


def test_jsonl_writer_outputs_json(tmp_path):
    path = tmp_path / "o.jsonl"
    with TableWriter(path) as w:
        w.write(pd.DataFrame({"text": ["x"], "score": [0.5], "n": [None]}))
    assert json.loads(path.read_text(encoding="utf-8")) == {"text": "x", "score": 0.5, "n": None}
