"""Loaders: slices of the real shared files, and synthetic files for every error path.

    python -m pytest tests/data -q -k "sources or hygiene or card"
"""
from __future__ import annotations

import json

import pytest

from data import sources
from data.sources import DataError, LoadReport, load_sources
from data.taxonomy import load_taxonomy

TAX = load_taxonomy()


def check_records(records, source):
    assert records
    for r in records:
        assert set(r) == {"text", "label", "source", "group"}
        assert r["source"] == source and r["text"].strip() and r["group"]
        assert TAX.is_label(r["label"]), r


# --- the real files, first rows only -------------------------------------------------------

@pytest.mark.shared_data
def test_spam80w_slice(source_dir):
    report = LoadReport()
    records = list(sources.load_spam80w(source_dir / sources.FILES["spam80w"], limit=2000, report=report))
    check_records(records, "spam80w")
    assert report.rows["spam80w"] == 2000 == len(records) + sum(report.skipped.values())
    assert {r["label"] for r in records} == {"normal", "spam"}


@pytest.mark.shared_data
def test_telecom_fraud_texts_slice(source_dir):
    records = list(sources.load_telecom_fraud_texts(source_dir / sources.FILES["telecom_fraud_texts"], limit=2000))
    check_records(records, "telecom_fraud_texts")
    assert len(records) == 2000
    assert "not_fraud" in {r["label"] for r in records}  # 正常 is "normal or spam", never "normal"
    assert "normal" not in {r["label"] for r in records}


@pytest.mark.shared_data
def test_golfxiao_slice_has_no_speaker_names(source_dir):
    path = source_dir / sources.FILES["golfxiao_dialogs"]
    records = list(sources.load_golfxiao_dialogs(path, limit=2000))
    check_records(records, "golfxiao_dialogs")
    assert all(r["group"].startswith("golfxiao_dialogs:") for r in records)
    # The slice starts with meeting transcripts (fraud_type none): every utterance is normal.
    assert records[0]["label"] == "normal" and not records[0]["text"].startswith("发言人")


@pytest.mark.shared_data
def test_teleantifraud_slice_uses_turns_only(source_dir):
    path = source_dir / sources.FILES["teleantifraud_synth"]
    records = list(sources.load_teleantifraud_synth(path, limit=200))
    check_records(records, "teleantifraud_synth")
    texts = {r["text"] for r in records}
    with open(path, encoding="utf-8") as f:
        dialogues = [json.loads(next(f)) for _ in range(200)]
    assert not texts & {d["termination_reason"] for d in dialogues}  # metadata never becomes input
    first = dialogues[0]
    by_text = {r["text"]: r["label"] for r in records if r["group"].endswith(first["tts_id"])}
    assert by_text[first["right"][0]] == "normal"
    assert TAX.allowed(by_text[first["left"][0]])[0].startswith("fraud")


@pytest.mark.shared_data
def test_load_sources_all_four_slices(source_dir):
    records, report = load_sources(limit=300, data_dir=source_dir)
    assert {r["source"] for r in records} == set(sources.LOADERS)
    assert sum(report.records.values()) == len(records)
    assert "spam80w" in report.summary() and report.to_dict()["rows"]["golfxiao_dialogs"] == 300


# --- synthetic files ------------------------------------------------------------------------

def test_fraud_file_conversation_without_a_marked_fraudster_is_left_out_as_the_chat_loader_does(tmp_path):
    """A golfxiao conversation in a fraud file with no utterance marked is_fraud is unlabelled (its
    fraudster was not marked: ../shared/data/README.md): data.conversations already left it out;
    the utterance loader labelled every turn `normal`, so fraudsters' lines became legitimate
    rows (one was blocked in the golden set and refused the SMS model, 2026-12-03)."""
    from data.conversations import load_golfxiao_conversations

    path = tmp_path / "golfxiao.csv"
    path.write_text("fraud_type,case,speaker,content,is_fraud\n"
                    "网络贷款诈骗,a.csv#1,小梅,您好，这里是贷款公司的客服，您的申请已初审通过,False\n"
                    "网络贷款诈骗,a.csv#1,小梅,先交一千元解冻费,True\n"
                    "网络贷款诈骗,a.csv#1,受害人,好的,False\n"
                    "网络贷款诈骗,a.csv#2,李明,您需要提供工作证明和借款用途,False\n"
                    "网络贷款诈骗,a.csv#2,王芳,好的我准备一下,False\n"
                    "none,m.csv#会议,发言人1,下面请各位介绍一下本季度的业绩,False\n", encoding="utf-8")
    report = LoadReport()
    rows = list(sources.load_golfxiao_dialogs(path, report=report))
    assert [(r["group"], r["label"]) for r in rows] == [
        ("golfxiao_dialogs:a.csv#1", "fraud.loan"), ("golfxiao_dialogs:a.csv#1", "normal"),
        ("golfxiao_dialogs:m.csv#会议", "normal")]
    assert report.skipped[("golfxiao_dialogs", sources.UNLABELLED_CONVERSATION)] == 2
    # the marked fraudster's unmarked opening line is the fraudster's, never a legitimate row
    assert report.skipped[("golfxiao_dialogs", sources.UNMARKED_FRAUDSTER)] == 1
    assert report.rows["golfxiao_dialogs"] == 6 and report.records["golfxiao_dialogs"] == 3
    unlabelled = {c.group for c in load_golfxiao_conversations(path) if c.label is None}
    assert unlabelled == {"golfxiao_dialogs:a.csv#2"} and not unlabelled & {r["group"] for r in rows}


@pytest.mark.shared_data
def test_golfxiao_utterances_and_conversations_agree_on_what_is_unlabelled(source_dir):
    from data.conversations import load_golfxiao_conversations

    path = source_dir / sources.FILES["golfxiao_dialogs"]
    report = LoadReport()
    groups = {r["group"] for r in sources.load_golfxiao_dialogs(path, limit=13000, report=report)}
    unlabelled = {c.group for c in load_golfxiao_conversations(path, limit=13000) if c.label is None}
    assert unlabelled, "the first 13,000 rows hold fraud-file conversations without a marked fraudster"
    assert not groups & unlabelled
    assert report.skipped[("golfxiao_dialogs", sources.UNLABELLED_CONVERSATION)] > 0


def test_fake_sources_load(fake_dir):
    records, report = load_sources(data_dir=fake_dir)
    by_source = {}
    for r in records:
        by_source.setdefault(r["source"], []).append(r)
    assert by_source["spam80w"][2]["text"] == '他说\t"好的"'  # tabs and quotes kept, not parsed
    assert [r["label"] for r in by_source["telecom_fraud_texts"]] == [
        "not_fraud", "fraud.impersonate_authority", "fraud.loan"]
    golf = by_source["golfxiao_dialogs"]
    assert golf[0] == {"text": "刷单一单返佣金二十元", "label": "fraud.brushing", "source": "golfxiao_dialogs",
                       "group": "golfxiao_dialogs:a.csv#1"}  # speaker prefix scrubbed, name not in text
    assert [r["label"] for r in golf] == ["fraud.brushing", "normal", "fraud.brushing", "normal"]
    tele = {r["text"]: r for r in by_source["teleantifraud_synth"]}
    assert tele["请提供验证码"]["label"] == "fraud.fake_customer_service"
    assert tele["怎么了？"]["label"] == "normal" and tele["您好，外卖到了吗？"]["label"] == "normal"
    assert tele["怎么了？"]["group"] == "teleantifraud_synth:t1"
    assert not any("诈骗成功" in r["text"] for r in records)
    assert report.skipped[("teleantifraud_synth", "empty turn")] == 1


def test_missing_file_names_it_and_the_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv("FANZHA_DATA_DIR", str(tmp_path))
    assert sources.data_dir() == tmp_path
    with pytest.raises(DataError, match=r"spam80w\.tsv.*FANZHA_DATA_DIR"):
        load_sources(["spam80w"])


def test_unknown_source_name(fake_dir):
    with pytest.raises(DataError, match="nope"):
        load_sources(["nope"], data_dir=fake_dir)


def test_missing_column_is_named(fake_dir):
    (fake_dir / "sms/telecom_fraud_texts.csv").write_text("content,label\n你好,正常\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"missing column\(s\) \['text'\]"):
        load_sources(["telecom_fraud_texts"], data_dir=fake_dir)


def test_unknown_label_names_label_and_source(fake_dir):
    (fake_dir / "sms/spam80w.tsv").write_text("0\t你好\n7\t什么\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"line 2.*'spam80w'.*unknown label '7'"):
        load_sources(["spam80w"], data_dir=fake_dir)
    (fake_dir / "chat/golfxiao_dialogs.csv").write_text(
        "fraud_type,case,speaker,content,is_fraud\n外星诈骗,c#1,甲,你好,True\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"'golfxiao_dialogs'.*外星诈骗"):
        load_sources(["golfxiao_dialogs"], data_dir=fake_dir)


def test_bad_utf8_names_file_line_and_offset(fake_dir):
    (fake_dir / "sms/spam80w.tsv").write_bytes(b"0\tok\n1\t\xff\xfe bad\n")
    with pytest.raises(DataError, match=r"spam80w\.tsv: invalid UTF-8 at line 2, byte offset 7"):
        load_sources(["spam80w"], data_dir=fake_dir)


def test_empty_texts_are_counted_not_dropped_silently(fake_dir, caplog):
    (fake_dir / "sms/spam80w.tsv").write_text("0\t你好\n1\t   \n0\t\n\n", encoding="utf-8")
    records, report = load_sources(["spam80w"], data_dir=fake_dir)
    assert len(records) == 1
    assert report.skipped[("spam80w", "empty text")] == 2
    assert report.skipped[("spam80w", "blank line")] == 1
    assert "empty text" in report.summary() and "line 2" in report.summary()
    assert "skipped rows" in caplog.text  # surfaced even when the caller ignores the report


def test_golfxiao_bad_is_fraud_and_empty_content(fake_dir):
    path = fake_dir / "chat/golfxiao_dialogs.csv"
    path.write_text("fraud_type,case,speaker,content,is_fraud\n投资诈骗,c#1,甲,,True\n投资诈骗,c#1,乙,嗯,maybe\n",
                    encoding="utf-8")
    report = LoadReport()
    with pytest.raises(DataError, match="is_fraud value 'maybe'"):
        list(sources.load_golfxiao_dialogs(path, report=report))
    assert report.skipped[("golfxiao_dialogs", "empty text")] == 1


def test_teleantifraud_missing_field(fake_dir):
    (fake_dir / "chat/teleantifraud_synth.jsonl").write_text('{"left": ["喂"], "label": "normal"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"line 1: missing field\(s\) \['right'\]"):
        load_sources(["teleantifraud_synth"], data_dir=fake_dir)


def test_cli_writes_splits_and_card(fake_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert sources.main(["--out", str(out), "--data-dir", str(fake_dir)]) == 0
    rows = [json.loads(line) for name in ("train", "validation", "test")
            for line in (out / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]
    assert rows and all(set(r) == {"text", "label", "source", "group", "split"} for r in rows)
    card = json.loads((out / "card.json").read_text(encoding="utf-8"))
    assert card["rows"] == len(rows) and "length_by_label" in card
    assert "Rows per source × label" in (out / "card.md").read_text(encoding="utf-8")
    assert "hygiene:" in capsys.readouterr().out


def test_cli_reports_data_errors(tmp_path, capsys):
    assert sources.main(["--out", str(tmp_path / "o"), "--data-dir", str(tmp_path)]) == 2
    assert "FANZHA_DATA_DIR" in capsys.readouterr().err
