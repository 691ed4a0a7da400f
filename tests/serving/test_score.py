"""`fanzha score` on every table format: every row and column kept, in order; bad rows flagged."""
import json

import pandas as pd
import pytest

from data.tables import read_table
from serving.predictor import Predictor
from serving.batch.score import main as score_main

pytestmark = pytest.mark.slow
RESULT_COLUMNS = ["label", "category", "score", "fraud_score", "spam_score", "action", "reason", "error"]


def _frame(n=40):
    texts = [f"【顺丰】您的快递{i}已到驿站，取件码 {1000 + i}" if i % 3 else f"加微信 vx{i} 领取刷单返利{i}元" for i in range(n)]
    texts[5] = ""
    return pd.DataFrame({"id": [f"m{i}" for i in range(n)], "text": texts, "sender": ["95555"] * n})


@pytest.mark.parametrize("suffix_in, suffix_out", [(".csv", ".parquet"), (".parquet", ".csv"), (".jsonl", ".jsonl"), (".tsv", ".tsv")])
def test_score_keeps_every_row_in_order(tiny_serving, tmp_path, suffix_in, suffix_out, capsys):
    frame = _frame()
    src, dst = tmp_path / f"in{suffix_in}", tmp_path / f"out{suffix_out}"
    if suffix_in == ".csv":
        frame.to_csv(src, index=False)
    elif suffix_in == ".tsv":
        frame.to_csv(src, sep="\t", index=False)
    elif suffix_in == ".parquet":
        frame.to_parquet(src, index=False)
    else:
        src.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in frame.to_dict("records")), encoding="utf-8")
    assert score_main(["--model", str(tiny_serving), "--input", str(src), "--output", str(dst), "--chunk-rows", "7"]) == 0
    out = read_table(dst)
    assert list(out.columns) == ["id", "text", "sender"] + RESULT_COLUMNS
    assert out["id"].tolist() == frame["id"].tolist()
    assert out["text"].fillna("").tolist() == frame["text"].tolist()
    errors = out["error"].fillna("").tolist()
    assert errors[5] == "empty text" and sum(bool(e) for e in errors) == 1
    expected = Predictor(tiny_serving).classify(frame["text"].tolist())
    assert out["label"].fillna("").tolist() == [e["label"] or "" for e in expected], "score and the predictor agree"
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["rows_in"] == summary["rows_out"] == 40 and summary["errors"] == 1


def test_missing_text_column_fails_before_work(tiny_serving, tmp_path, capsys):
    src = tmp_path / "in.csv"
    pd.DataFrame({"body": ["a"]}).to_csv(src, index=False)
    assert score_main(["--model", str(tiny_serving), "--input", str(src), "--output", str(tmp_path / "o.csv")]) == 2
    assert "no column 'text'" in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists()
    assert score_main(["--model", str(tiny_serving), "--input", str(src), "--output", str(tmp_path / "o.csv"),
                       "--text-column", "body"]) == 0


def test_non_utf8_rows_are_kept_with_an_error(tiny_serving, tmp_path):
    src = tmp_path / "in.csv"
    src.write_bytes("id,text\n1,你好\n".encode() + b"2,\xc4\xe3\xba\xc3 gbk\n" + "3,再见\n".encode())
    dst = tmp_path / "out.csv"
    assert score_main(["--model", str(tiny_serving), "--input", str(src), "--output", str(dst)]) == 0
    out = read_table(dst)
    assert out["id"].tolist() == ["1", "2", "3"]
    assert out["error"].fillna("").tolist() == ["", "invalid UTF-8 in text", ""]
    assert "\ufffd" in out["text"][1]


def test_bad_jsonl_lines_are_kept(tiny_serving, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "你好"}\n{"text": 12}\n{broken\n{"text": null}\n', encoding="utf-8")
    dst = tmp_path / "out.jsonl"
    assert score_main(["--model", str(tiny_serving), "--input", str(src), "--output", str(dst)]) == 0
    rows = [json.loads(l) for l in dst.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 4
    assert rows[0]["error"] == "" and "string" in rows[1]["error"] and "invalid JSON" in rows[2]["error"]
    assert rows[3]["error"]


def test_block_list_applies_in_batch_as_in_the_service(tiny_serving, tmp_path):
    import shutil

    import yaml

    model = tmp_path / "serving"
    shutil.copytree(tiny_serving, model)
    policy = yaml.safe_load((model / "policy.yaml").read_text(encoding="utf-8"))
    policy["blocklist"] = {"domains": ["etc-renz.cn"], "phones": ["4008123456"]}
    (model / "policy.yaml").write_text(yaml.safe_dump(policy), encoding="utf-8")
    texts = ["您好，明天下午三点开会", "ETC认证失效，请登录 https://www.etc-renz.cn/a 重新认证",
             "退款请致电 400-812-3456", "", "【顺丰】快递已到驿站，取件码 1234"]
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    pd.DataFrame({"text": texts}).to_csv(src, index=False)
    assert score_main(["--model", str(model), "--input", str(src), "--output", str(dst), "--quiet"]) == 0
    out = read_table(dst)
    expected = Predictor(model).classify(texts)
    assert out["action"].fillna("").tolist()[1:3] == ["block", "block"]
    assert [out["action"][i] for i in (0, 4)] == [expected[i]["action"] for i in (0, 4)], "thresholds decide the rest"
    assert out["error"].fillna("").tolist()[3] == "empty text" and out["action"].fillna("").tolist()[3] == ""
