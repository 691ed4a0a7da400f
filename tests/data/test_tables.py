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


BIG = [2**53 + 1, 9007199254740993, 2**63 - 1, 7, 12345678901234567]  # none survive a float64


def _write_ids(path, ids):
    """An input with an integer id column where some rows have no id and one row is invalid."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = [f"消息{i}" for i in range(len(ids))]
    if path.suffix == ".jsonl":
        lines = [json.dumps({"id": i, "text": t}) if i is not None else json.dumps({"text": t}) for i, t in zip(ids, texts)]
        lines.insert(3, "not json")
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return ids[:3] + [None] + ids[3:]
    if path.suffix == ".parquet":
        pq.write_table(pa.table({"id": pa.array(ids, pa.int64()), "text": texts}), path, row_group_size=3)
        return ids
    sep = "\t" if path.suffix == ".tsv" else ","
    path.write_text("id" + sep + "text\n" + "".join(f"{'' if i is None else i}{sep}{t}\n" for i, t in zip(ids, texts)),
                    encoding="utf-8")
    return ids


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet", ".csv", ".tsv"])
def test_integer_ids_keep_their_exact_value_when_read(tmp_path, suffix):
    ids = BIG[:2] + [None] + BIG[2:] + [None, 2**53 + 3]
    path = tmp_path / f"in{suffix}"
    expected = _write_ids(path, ids)
    for chunk_rows in (2, 4, 100):  # chunks with and without a missing id
        back = pd.concat([f for f, _ in __import__("data.tables", fromlist=["read_chunks"]).read_chunks(path, chunk_rows)],
                         ignore_index=True)
        values = [None if pd.isna(v) or v == "" else v for v in back["id"].tolist()]
        if suffix in (".csv", ".tsv"):  # text formats: the digits, exactly
            assert values == [None if i is None else str(i) for i in expected]
        else:
            assert values == expected and all(type(v) is int for v in values if v is not None), chunk_rows
            assert back["id"].dtype != "float64"


@pytest.mark.parametrize("suffix_in", [".jsonl", ".parquet", ".csv"])
@pytest.mark.parametrize("suffix_out", [".jsonl", ".parquet", ".csv", ".tsv"])
def test_integer_ids_survive_every_output_format(tmp_path, suffix_in, suffix_out):
    import pyarrow.parquet as pq

    from data.tables import read_chunks

    ids = [None, 2**53 + 1] + BIG[1:] + [None]
    src, dst = tmp_path / f"in{suffix_in}", tmp_path / f"out{suffix_out}"
    expected = _write_ids(src, ids)
    with TableWriter(dst) as w:
        for frame, _ in read_chunks(src, 3):  # as fanzha score does: every chunk gets the same columns
            w.write(frame.reindex(columns=["id", "text"], fill_value=None))
    text_in = suffix_in == ".csv"  # CSV cells are text: "" for a missing id
    want = [("" if text_in else None) if i is None else (str(i) if text_in else i) for i in expected]
    if suffix_out == ".jsonl":
        assert [json.loads(line).get("id") for line in dst.read_text(encoding="utf-8").splitlines()] == want
    elif suffix_out == ".parquet":
        table = pq.read_table(dst)
        assert table.column("id").to_pylist() == want
        if not text_in:
            assert str(table.schema.field("id").type) == "int64"
    else:
        sep = "\t" if suffix_out == ".tsv" else ","
        cells = [line.split(sep)[0] for line in dst.read_text(encoding="utf-8").splitlines()[1:]]
        assert cells == ["" if i is None else str(i) for i in expected]
