"""`fanzha diff OLD NEW`: counts, transition tables and examples of what changed, as Markdown or HTML."""
import json
import shutil

import pandas as pd
import pytest
import yaml

from data.tables import read_table
from serving.lifecycle.diff import compare, main as diff_main
from serving.batch.score import main as score_main


def _scored(n=12):
    return pd.DataFrame({
        "id": [f"m{i}" for i in range(n)],
        "text": [f"消息{i} <b>|竖线|</b>" for i in range(n)],
        "label": ["normal"] * n, "category": ["normal"] * n, "score": [0.9] * n,
        "fraud_score": [0.05] * n, "spam_score": [0.05] * n, "action": ["allow"] * n, "error": [""] * n})


def test_transitions_examples_and_both_formats(tmp_path, capsys):
    old, new = _scored(), _scored()
    new.loc[[1, 2, 3], ["label", "category", "action", "fraud_score"]] = ["fraud.loan", "fraud", "block", 0.95]
    new.loc[4, ["label", "category", "action"]] = ["spam", "spam", "flag"]
    new.loc[5, ["label", "category", "action", "error"]] = [None, None, None, "empty text"]
    old.to_csv(tmp_path / "old.csv", index=False)
    new.to_parquet(tmp_path / "new.parquet", index=False)
    md, page = tmp_path / "r.md", tmp_path / "r.html"
    assert diff_main([str(tmp_path / "old.csv"), str(tmp_path / "new.parquet"), "--out", str(md), "--key", "id",
                      "--examples", "2"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["rows"] == 12 and summary["changed"] == {"action": 5, "category": 5, "label": 5}
    assert summary["transitions"]["action"] == {"allow -> allow": 7, "allow -> block": 3, "allow -> error": 1,
                                                "allow -> flag": 1}
    assert summary["transitions"]["category"]["normal -> fraud"] == 3
    assert summary["mean_fraud_score_shift"] == pytest.approx(3 * 0.9 / 12)
    text = md.read_text(encoding="utf-8")
    assert "| normal | 7 | 1 | 3 | 1 |" in text, "category matrix: normal, spam, fraud, then error"
    assert text.count("| allow -> block |") == 2, "examples are capped per transition"
    assert "\\|竖线\\|" in text, "pipes in messages are escaped"
    assert diff_main([str(tmp_path / "old.csv"), str(tmp_path / "new.parquet"), "--out", str(page)]) == 0
    html = page.read_text(encoding="utf-8")
    assert "<table>" in html and "&lt;b&gt;" in html and "<b>|" not in html


def test_misaligned_files_fail_clearly(tmp_path, capsys):
    _scored(12).to_csv(tmp_path / "a.csv", index=False)
    _scored(11).to_csv(tmp_path / "b.csv", index=False)
    assert diff_main([str(tmp_path / "a.csv"), str(tmp_path / "b.csv")]) == 2
    assert "different row counts" in capsys.readouterr().err
    other = _scored(12)
    other.loc[7, "id"] = "x"
    other.to_csv(tmp_path / "c.csv", index=False)
    assert diff_main([str(tmp_path / "a.csv"), str(tmp_path / "c.csv"), "--key", "id"]) == 2
    assert "row 7" in capsys.readouterr().err
    pd.DataFrame({"text": ["x"]}).to_csv(tmp_path / "raw.csv", index=False)
    assert diff_main([str(tmp_path / "a.csv"), str(tmp_path / "raw.csv")]) == 2
    assert "fanzha score" in capsys.readouterr().err


@pytest.mark.slow
def test_diff_of_two_real_scorings(tiny_serving, tmp_path, capsys):
    """The same model with a stricter policy: the diff counts what pandas counts on the two files."""
    from data.synth import generate

    strict = tmp_path / "strict"
    shutil.copytree(tiny_serving, strict)
    policy = yaml.safe_load((strict / "policy.yaml").read_text(encoding="utf-8"))
    policy["thresholds"]["fraud"] = {"block": 0.2, "flag": 0.1}
    (strict / "policy.yaml").write_text(yaml.safe_dump(policy), encoding="utf-8")
    src = tmp_path / "in.jsonl"
    pd.DataFrame({"text": [r["text"] for r in generate(300, seed=4)]}).to_json(src, orient="records", lines=True,
                                                                                force_ascii=False)
    for model, out in ((tiny_serving, "old.csv"), (strict, "new.parquet")):
        assert score_main(["--model", str(model), "--input", str(src), "--output", str(tmp_path / out), "--quiet"]) == 0
    capsys.readouterr()
    result = compare(tmp_path / "old.csv", tmp_path / "new.parquet", chunk_rows=64)
    old, new = read_table(tmp_path / "old.csv"), read_table(tmp_path / "new.parquet")
    expected = pd.crosstab(old["action"], new["action"])
    for (a, b), n in result["_matrix"]["action"].items():
        assert expected.loc[a, b] == n
    assert result["changed"]["action"] == int((old["action"] != new["action"]).sum()) > 0
    assert result["changed"]["category"] == 0, "a policy change moves actions, not categories"
