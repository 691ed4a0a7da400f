"""Feedback as training data (`data.feedback`): files written by `fanzha feedback export` are
checked, deduplicated against every split and added to the train split, counted in the manifest
and shown as their own source in the data card."""
import json
from pathlib import Path

import pytest

from data.taxonomy import load_taxonomy
from tests.conftest import REPO
from training.config import ConfigError, DataConfig, load_config
from training.examples import DataError, load_splits

TAXONOMY = load_taxonomy(REPO / "configs/taxonomy.yaml")


def _write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n"
                            for r in rows), encoding="utf-8")
    return path


def _corpus(folder: Path) -> Path:
    """A corpus folder as data.sources writes it (text, label, source, group, split)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = {
        "train": [("您的快递已到，取件码1234，请及时领取。", "normal"), ("本店周年庆全场五折，回T退订", "spam"),
                  ("您的征信有问题，请下载APP注销校园贷账户", "fraud.loan")],
        "validation": [("明天上午十点开会，请准时参加", "normal")],
        "test": [("我是你领导，明天来我办公室，先转2万元到这个账户", "fraud.impersonate_acquaintance")],
    }
    for split, items in rows.items():
        _write_jsonl(folder / f"{split}.jsonl", [
            {"text": t, "label": label, "source": "tiny", "group": f"tiny/{split}{i}", "split": split}
            for i, (t, label) in enumerate(items)])
    return folder


def _feedback_row(i, text, label, feedback_source="analyst", campaign=None):
    return {"text": text, "label": label, "source": "feedback", "group": f"feedback:{campaign or i}",
            "feedback_id": i, "feedback_source": feedback_source, "time": "2026-12-02T04:50:00Z",
            "campaign": campaign}


FEEDBACK = [
    # the test row with other digits and punctuation: its near-dup key is the test row's
    _feedback_row(1, "我是你领导,明天来我办公室 先转3万元到这个账户!", "fraud.impersonate_acquaintance", "user_report"),
    _feedback_row(2, "【顺丰】客服：您的包裹丢失，加微信办理三倍理赔", "fraud.fake_customer_service", "analyst", "c-7"),
    _feedback_row(3, "【顺丰】客服: 您的包裹丢失, 加微信办理三倍理赔!", "fraud.fake_customer_service", "analyst", "c-7"),
    _feedback_row(4, "您尾号8812的账户今日到账工资5000元", "normal", "appeal"),
]


def test_feedback_rows_are_deduplicated_counted_and_trained_on(tmp_path):
    corpus = _corpus(tmp_path / "tiny")
    fb = _write_jsonl(tmp_path / "feedback.jsonl", FEEDBACK)
    cfg = DataConfig(synthetic_n=0, corpus_dirs=[str(corpus)], feedback=[str(fb)])
    splits, manifest = load_splits(cfg, TAXONOMY, tmp_path / "work")

    kept = [r for r in splits["train"] if r.get("source") == "feedback"]
    assert [r["feedback_id"] for r in kept] == [2, 4]  # 1: a test row again, 3: feedback 2 again
    assert kept[0]["campaign"] == "c-7" and kept[0]["group"] == "feedback:c-7"  # extra fields kept
    assert len(splits["train"]) == 3 + 2 and len(splits["validation"]) == 1 and len(splits["test"]) == 1
    assert all(r.get("source") != "feedback" for s in ("validation", "test") for r in splits[s])

    assert manifest["feedback"] == {
        "files": [str(fb)], "rows": 4, "kept": 2,
        "duplicates": {"of_splits": 1, "within_feedback": 1},
        "labels": {"fraud.fake_customer_service": 1, "normal": 1},
        "feedback_sources": {"analyst": 1, "appeal": 1},
    }
    entry = next(f for f in manifest["files"] if f["path"] == str(fb))
    assert entry["rows"] == 4 and len(entry["sha256"]) == 64
    assert manifest["sources"]["train"]["feedback"] == 2 and manifest["rows"]["train"] == 5


def test_caps_and_repeat_see_feedback_rows(tmp_path):
    corpus = _corpus(tmp_path / "tiny")
    row = dict(FEEDBACK[1])
    del row["source"]  # absent: set to "feedback"
    fb = _write_jsonl(tmp_path / "feedback.jsonl", [row, FEEDBACK[3]])
    cfg = DataConfig(synthetic_n=0, corpus_dirs=[str(corpus)], feedback=[str(fb)],
                     repeat={"feedback:normal": 3}, caps={"feedback:fraud.fake_customer_service": 0})
    splits, manifest = load_splits(cfg, TAXONOMY, tmp_path / "work")
    assert manifest["sources"]["train"]["feedback"] == 3  # the normal row three times, the capped one gone
    assert {r["label"] for r in splits["train"] if r["source"] == "feedback"} == {"normal"}


@pytest.mark.parametrize("line, message", [
    ('{"text": "好", "label": ', "invalid JSON"),
    ('{"label": "normal"}', "'text'"),
    ('{"text": "您好，快递到了"}', "'label'"),
    ('{"text": "  ", "label": "normal"}', "empty text"),
    ('{"text": "您好，快递到了", "label": "fraud.nope"}', "unknown label 'fraud.nope'"),
])
def test_bad_feedback_rows_name_file_and_line(tmp_path, line, message):
    corpus = _corpus(tmp_path / "tiny")
    # a blank line first: the line number is the file's, not the row's index
    fb = _write_jsonl(tmp_path / "feedback.jsonl", [FEEDBACK[1], "", line])
    with pytest.raises(DataError, match=f"{fb}:3: .*{message}"):
        load_splits(DataConfig(synthetic_n=0, corpus_dirs=[str(corpus)], feedback=[str(fb)]), TAXONOMY, tmp_path)


def test_missing_feedback_file_is_a_data_error(tmp_path):
    corpus = _corpus(tmp_path / "tiny")
    with pytest.raises(DataError, match="nope.jsonl"):
        load_splits(DataConfig(synthetic_n=0, corpus_dirs=[str(corpus)], feedback=[str(tmp_path / "nope.jsonl")]),
                    TAXONOMY, tmp_path)


def test_feedback_alone_is_not_a_corpus():
    with pytest.raises(ConfigError, match="data.feedback alone is not a corpus"):
        load_config(None, {"data.synthetic_n": 0, "data.feedback": ["fb.jsonl"]})
    with pytest.raises(ConfigError, match="data.feedback"):
        load_config(None, {"data.feedback": [3]})


@pytest.mark.slow
def test_training_with_feedback_shows_it_in_the_data_card(tiny_base, tmp_path):
    from training.train import train

    corpus = _corpus(tmp_path / "tiny")
    fb = _write_jsonl(tmp_path / "feedback.jsonl", FEEDBACK)
    out = tmp_path / "model"
    cfg = load_config(None, {"base_model": str(tiny_base), "output_dir": str(out), "max_steps": 3,
                             "batch_size": 8, "max_length": 32, "threads": 1,
                             "data.synthetic_n": 120, "data.corpus_dirs": [str(corpus)],
                             "data.feedback": [str(fb)], "taxonomy": str(REPO / "configs/taxonomy.yaml"),
                             "policy": str(REPO / "configs/policy.yaml"), "tracking": "none"})
    train(cfg)

    manifest = json.loads((out / "data_manifest.json").read_text(encoding="utf-8"))
    assert manifest["feedback"]["kept"] == 2 and manifest["sources"]["train"]["feedback"] == 2
    card = json.loads((out / "data_card.json").read_text(encoding="utf-8"))
    assert card["source_x_label"]["feedback"] == {"fraud.fake_customer_service": 1, "normal": 1}
    assert card["feedback"]["duplicates"] == {"of_splits": 1, "within_feedback": 1}
    md = (out / "data_card.md").read_text(encoding="utf-8")
    assert "| feedback |" in md and "## Feedback" in md
    assert "- rows read: 4, kept: 2" in md and "- duplicates dropped: of a split 1, within feedback 1" in md
