"""`fanzha score` streams, survives kill -9 (`--resume` writes what an uninterrupted run writes),
keeps bad rows with their error, and writes the same file with 1 or 2 worker processes."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from data.tables import read_chunks, read_table
from serving.batch.checkpoint import PartialOutput, artifact_fingerprint, file_fingerprint
from serving.predictor import Predictor
from serving.batch.score import Tally, main as score_main, score_frame

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def messages(n: int, seed: int = 0) -> pd.DataFrame:
    """n varied messages from the embedded generator (repeated with a counter past 5,000)."""
    from data.synth import generate

    texts = [r["text"] for r in generate(min(n, 5000), seed)]
    return pd.DataFrame({"id": [f"m{i}" for i in range(n)],
                         "text": [texts[i] if i < len(texts) else f"{texts[i % len(texts)]} #{i}" for i in range(n)]})


def write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    elif path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


def run(model, src, dst, *extra, capsys=None) -> dict:
    assert score_main(["--model", str(model), "--input", str(src), "--output", str(dst), "--quiet", *extra]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1]) if capsys else {}


def _state(sidecar: Path) -> dict:
    try:
        return json.loads(sidecar.read_text(encoding="utf-8"))["state"]
    except (OSError, ValueError, KeyError):
        return {"rows": 0}


@pytest.mark.parametrize("suffix_in, suffix_out", [(".csv", ".csv"), (".jsonl", ".parquet")])
def test_resume_after_sigkill_equals_an_uninterrupted_run(tiny_serving, tmp_path, suffix_in, suffix_out, capsys):
    n = 20_000
    src = write(messages(n), tmp_path / f"in{suffix_in}")
    ref, out = tmp_path / f"ref{suffix_out}", tmp_path / f"out{suffix_out}"
    run(tiny_serving, src, ref, "--chunk-rows", "64")
    sidecar = out.with_name(f".{out.name}.checkpoint.json")
    proc = subprocess.Popen([sys.executable, "-m", "serving.batch.score", "--model", str(tiny_serving), "--input", str(src),
                             "--output", str(out), "--chunk-rows", "64", "--quiet"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300  # a guard against a hung child, not a speed check
    while _state(sidecar)["rows"] < 640:
        assert proc.poll() is None, proc.stderr.read().decode(errors="replace")
        assert time.monotonic() < deadline, "no progress recorded"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = _state(sidecar)
    assert 0 < state["rows"] < n and not out.exists(), "killed mid-way"
    partial = out.with_name(f".{out.name}.partial" + ("" if suffix_out == ".parquet" else suffix_out))
    if suffix_out == ".parquet":  # a segment written after the last checkpoint, torn
        (partial / f"part-{state['size']:06d}.parquet").write_bytes(b"PAR1 torn")
    else:
        with open(partial, "ab") as f:
            f.write("m99999,半行".encode())
    summary = run(tiny_serving, src, out, "--chunk-rows", "64", "--resume", capsys=capsys)
    assert summary["resumed_from"] == state["rows"] and summary["rows_in"] == summary["rows_out"] == n
    assert not sidecar.exists() and not partial.exists()
    if suffix_out == ".csv":
        assert out.read_bytes() == ref.read_bytes()
    else:
        pd.testing.assert_frame_equal(read_table(out), read_table(ref))
        assert pq.ParquetFile(out).metadata.num_row_groups == pq.ParquetFile(ref).metadata.num_row_groups


def test_bad_rows_are_kept_with_their_error(tiny_serving, tmp_path, capsys):
    src = tmp_path / "in.csv"
    src.write_bytes("id,text\n1,你好\n2,\n".encode() + b'3,"broken quote\n' + "4,正常短信\n".encode()
                    + b"5,\xc4\xe3\xba\xc3\n" + "6,a,b\n7,最后一条".encode())
    dst = tmp_path / "out.jsonl"
    assert score_main(["--model", str(tiny_serving), "--input", str(src), "--output", str(dst)]) == 0
    captured = capsys.readouterr()
    assert "7/7" in captured.err and "rows/s" in captured.err, "a progress bar with a total and a rate"
    summary = json.loads(captured.out.strip().splitlines()[-1])
    rows = [json.loads(line) for line in dst.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["1", "2", "", "4", "5", "", "7"]
    errors = [r["error"] for r in rows]
    assert errors[0] == errors[3] == errors[6] == ""
    assert errors[1] == "empty text"
    assert errors[2].startswith("line 4: broken CSV quoting") and rows[2]["text"] == '3,"broken quote'
    assert errors[4] == "invalid UTF-8 in text" and "\ufffd" in rows[4]["text"]
    assert errors[5] == "line 7: expected 2 fields, saw 3" and rows[5]["text"] == "6,a,b"
    assert rows[3]["label"] and rows[3]["action"] in ("allow", "flag", "block")
    assert summary["rows_in"] == summary["rows_out"] == 7 and summary["errors"] == 4
    assert summary["error_kinds"] == {"empty text": 1, "broken CSV quoting": 1, "invalid UTF-8 in text": 1,
                                      "expected 2 fields, saw 3": 1}
    assert sum(summary["actions"].values()) == sum(summary["categories"].values()) == 3


def test_two_workers_write_what_one_writes(tiny_serving, tmp_path, capsys):
    src = write(messages(2000, seed=1), tmp_path / "in.csv")
    with open(src, "ab") as f:
        f.write(b'm2000,\nm2001,"open\nm2002,\xff bad\n')
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    run(tiny_serving, src, one, "--workers", "1", "--chunk-rows", "100")
    summary = run(tiny_serving, src, two, "--workers", "2", "--chunk-rows", "100", capsys=capsys)
    assert two.read_bytes() == one.read_bytes()
    assert summary["workers"] == 2 and summary["rows_out"] == 2003 and summary["errors"] == 3
    assert "workers" in summary["peak_rss_mb"]


def test_resume_refuses_a_changed_input_and_a_fresh_run_discards(tiny_serving, tmp_path, capsys):
    src = write(messages(300, seed=2), tmp_path / "in.csv")
    out = tmp_path / "out.csv"
    identity = {"input": file_fingerprint(src), "model": artifact_fingerprint(tiny_serving),
                "text_column": "text", "chunk_rows": 64}
    frame, cursor = next(read_chunks(src, 64, raw_column="text"))  # an interrupted run: one chunk committed
    scored = score_frame(Predictor(tiny_serving), frame, "text")
    tally = Tally()
    tally.add(scored)
    PartialOutput(out, identity).commit(scored, cursor, tally.to_dict())
    summary = run(tiny_serving, src, out, "--chunk-rows", "64", "--resume", capsys=capsys)
    assert summary["resumed_from"] == 64 and summary["rows_out"] == 300
    ref = tmp_path / "ref.csv"
    run(tiny_serving, src, ref, "--chunk-rows", "64")
    assert out.read_bytes() == ref.read_bytes()

    PartialOutput(out, identity).commit(scored, cursor, tally.to_dict())
    with open(src, "a", encoding="utf-8") as f:
        f.write("m300,新的一行\n")
    args = ["--model", str(tiny_serving), "--input", str(src), "--output", str(out), "--quiet", "--chunk-rows", "64"]
    assert score_main(args + ["--resume"]) == 2
    assert "different input" in capsys.readouterr().err
    assert out.with_name(".out.csv.checkpoint.json").exists(), "a refused resume keeps the partial run"
    assert score_main(args) == 0
    assert "discarded the checkpoint" in capsys.readouterr().err
    assert len(read_table(out)) == 301


def test_header_only_input_gives_header_only_output(tiny_serving, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("id,text\n", encoding="utf-8")
    run(tiny_serving, src, tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_text(encoding="utf-8").strip() == \
        "id,text,label,category,score,fraud_score,spam_score,action,reason,error"
