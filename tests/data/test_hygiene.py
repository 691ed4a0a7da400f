"""Hygiene (scrubbing, dedup, label conflicts), the grouped split and the data card.

    python -m pytest tests/data -q -k "sources or hygiene or card"
"""
from __future__ import annotations

import json
from collections import defaultdict

import pytest

from data.card import build_card, card_markdown, length_stats, write_card
from data.hygiene import (clean, dedup_report, near_dup_key, resolve_label, scrub_speakers, split_records,
                          split_report)
from data.sources import load_sources
from data.taxonomy import load_taxonomy

TAX = load_taxonomy()


def rec(text, label="normal", source="spam80w", group=None):
    return {"text": text, "label": label, "source": source, "group": group or f"{source}:{text}"}


# --- scrubbing ------------------------------------------------------------------------------

@pytest.mark.parametrize("text, names, expected", [
    ("骗子：你好，加我微信", (), "你好，加我微信"),
    ("诈骗者A: 转账吧。受害人：好的", (), "转账吧。好的"),
    ("李明：非常好！充值吧", ("李明", "王华"), "非常好！充值吧"),
    ("（骗子已消失）", (), ""),
    ("好的（此人为诈骗者，已将他拉黑）", (), "好的"),
    ("我觉得他就是骗子，别信", (), "我觉得他就是骗子，别信"),   # a role word as content stays
    ("账户名：张某，账号：123", ("张某",), "账户名：张某，账号：123"),  # a name not in prefix position stays
])
def test_scrub_speakers(text, names, expected):
    assert scrub_speakers(text, names) == expected


def test_clean_scrubs_chat_but_not_sms():
    kept, report = clean([rec("骗子：先垫付一百元", "fraud.brushing", "golfxiao_dialogs", "c1"),
                          rec("商务部发言人沈丹阳：外资稳定增长")])
    assert [r["text"] for r in kept] == ["先垫付一百元", "商务部发言人沈丹阳:外资稳定增长"]
    assert report.scrubbed == {"golfxiao_dialogs": 1}


# --- near duplicates and label conflicts ----------------------------------------------------

def test_near_dup_key_collapses_masks_digits_and_punctuation():
    keys = {near_dup_key(t) for t in ("您的验证码是 123456，5分钟内有效。", "您的验证码是xxxxxx,x分钟内有效",
                                      "您的验证码是DIGIT，DIGIT分钟内有效！", "您的验证码是某某 某分钟内有效")}
    assert len(keys) == 1
    assert near_dup_key("加vx领取") != near_dup_key("加领取")  # the x of "vx" is not a mask
    assert near_dup_key("访问URL领取") == near_dup_key("访问 url 领取") != near_dup_key("访问领取")
    assert near_dup_key("...") != near_dup_key("!!!")  # nothing but punctuation: exact copies only


def test_clean_removes_exact_and_near_duplicates():
    records = [rec("您的验证码是123456"), rec("您的验证码是123456"), rec("您的验证码是654321"), rec("明天见")]
    kept, report = clean(records)
    assert [r["text"] for r in kept] == ["您的验证码是123456", "明天见"]
    assert report.exact_dups == {"spam80w": 1} and report.near_dups == {"spam80w": 1}
    assert dedup_report(records).to_dict()["exact_dups"] == {"spam80w": 1}


@pytest.mark.parametrize("labels, expected", [
    (["spam", "not_fraud"], "spam"), (["not_fraud", "normal"], "normal"), (["fraud", "fraud.loan"], "fraud.loan"),
    (["not_fraud", "not_fraud"], "not_fraud"), (["fraud.loan", "not_fraud"], None),
    (["spam", "normal"], "not_fraud"), (["fraud.investment", "fraud.other"], "fraud"), (["fraud.loan", "normal"], None),
])
def test_resolve_label(labels, expected):
    assert resolve_label(labels, TAX) == expected


def test_conflicts_resolved_or_dropped_and_counted():
    records = [rec("【联通】流量包五折，回复TD退订", "spam"),
               rec("【联通】流量包五折,回复td退订", "not_fraud", "telecom_fraud_texts"),
               rec("好的", "normal", "golfxiao_dialogs", "c1"),
               rec("好的。", "fraud.investment", "golfxiao_dialogs", "c2")]
    kept, report = clean(records)
    assert [(r["source"], r["label"]) for r in kept] == [("spam80w", "spam")]
    assert report.conflicts == {"golfxiao_dialogs: normal": 1, "golfxiao_dialogs: fraud.investment": 1}
    assert report.conflict_keys == 1 and report.conflict_examples[0]["text"] == "好的"
    assert report.resolved == {"not_fraud | spam -> spam": 1}
    assert "conflicting rows dropped" in report.summary()


# --- the grouped split ----------------------------------------------------------------------

def test_conversations_never_split_and_split_is_deterministic():
    # Texts differ in characters, not digits (texts differing only in digits are one near-dup).
    records = [rec(f"第{chr(0x4e00 + c)}段对话的第{'甲乙丙丁戊'[t]}句话", "normal", "golfxiao_dialogs", f"case-{c}")
               for c in range(300) for t in range(5)]
    out = split_records(records, seed=3)
    sides = defaultdict(set)
    for r in out:
        sides[r["group"]].add(r["split"])
    assert all(len(s) == 1 for s in sides.values())
    sizes = split_report(out)["sizes"]
    assert 0.7 < sizes["train"] / len(out) < 0.9 and sizes["validation"] and sizes["test"]
    assert out == split_records(records, seed=3)
    assert out != split_records(records, seed=4)
    assert split_records(list(reversed(records)), seed=3) == list(reversed(out))  # order-independent


def test_near_duplicates_stay_on_one_side():
    records = [rec(f"尊敬的客户，您的话费余额为{n}元，请及时充值") for n in range(200)]
    records += [rec(f"独立短信{'甲乙丙丁戊己庚辛'[n % 8]}{'子丑寅卯辰巳午未申酉'[n // 8 % 10]}") for n in range(80)]
    out = split_records(records)
    assert len({r["split"] for r in out[:200]}) == 1
    assert split_report(out)["leaks"] == 0


def test_split_report_warns_on_missing_labels():
    out = split_records([rec(f"句子{chr(0x4e00 + i)}", "spam" if i == 0 else "normal") for i in range(100)])
    assert any("no 'spam'" in w for w in split_report(out)["warnings"])
    with pytest.raises(ValueError):
        split_records([], fractions=(0.5, 0.5))


# --- the card -------------------------------------------------------------------------------

def test_length_stats():
    assert length_stats(range(1, 101)) == {"count": 100, "min": 1, "p10": 11, "p50": 51, "p90": 91, "max": 100}
    assert length_stats([]) == {"count": 0}


def test_card_counts_and_files(tmp_path):
    records = split_records([rec("短" * 5), rec("长" * 60, "spam"), rec("中" * 20, "not_fraud", "telecom_fraud_texts")])
    card = build_card(records, hygiene_report={"conflicts": {"a: spam": 2}, "conflict_keys": 1})
    assert card["source_x_label"] == {"spam80w": {"normal": 1, "spam": 1}, "telecom_fraud_texts": {"not_fraud": 1}}
    assert card["length_by_label"]["spam"]["p50"] == 60
    assert sum(sum(v.values()) for v in card["split_x_label"].values()) == 3
    write_card(card, tmp_path / "card.json", tmp_path / "card.md")
    assert json.loads((tmp_path / "card.json").read_text(encoding="utf-8"))["rows"] == 3
    md = (tmp_path / "card.md").read_text(encoding="utf-8")
    assert "| spam80w | 1 | 0 | 1 | 2 |" in md and "conflicts: 2" in md
    assert md == card_markdown(card)


@pytest.mark.shared_data
def test_real_slices_clean_split_card(source_dir):
    records, _ = load_sources(data_dir=source_dir, limit=2000)
    kept, report = clean(records)
    assert 0 < len(kept) <= len(records)
    assert sum(report.kept.values()) == len(kept)
    out = split_records(kept)
    check = split_report(out)
    assert check["leaks"] == 0 and min(check["sizes"].values()) > 0
    card = build_card(out)
    # The length shortcut the card exists to show: spam80w spam is longer than ham.
    assert card["length_by_label"]["spam"]["p50"] > card["length_by_label"]["normal"]["p50"]
    assert all(TAX.is_label(label) for label in card["length_by_label"])
