"""data/conversations.py: conversations as role-marked turns, windows per prefix, labels, split."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from data.conversations import (FIRST, OTHER, build, load_conversations, load_golfxiao_conversations,
                                load_teleantifraud_conversations, model_inputs, prefix_windows, roles, sample_windows)
from data.hygiene import scrub_speakers
from data.normalize import normalize
from data.sources import LoadReport

GOLFXIAO = """fraud_type,case,speaker,content,is_fraud
兼职刷单诈骗,a.csv#1,小美,你好，我想问问兼职的事,False
兼职刷单诈骗,a.csv#1,骗子小王,骗子小王：刷单一单返佣金二十元,True
兼职刷单诈骗,a.csv#1,小美,听起来不错，怎么开始？,False
兼职刷单诈骗,a.csv#1,骗子小王,先垫付一百元到这个账户,True
兼职刷单诈骗,a.csv#1,,,
兼职刷单诈骗,a.csv#2,张某,我把钱全部转到了平台，结果输光了。,False
none,m.csv#会议,发言人1,下面请各位介绍一下本季度的业绩,False
none,m.csv#会议,发言人2,本季度营收增长百分之十,False
none,m.csv#会议,发言人3,谢谢，下一个问题,False
"""


def tele(tts_id, left, right, label, fraud_type):
    return json.dumps({"tts_id": tts_id, "left": left, "right": right, "label": label, "fraud_type": fraud_type,
                       "termination_reason": "诈骗成功"}, ensure_ascii=False) + "\n"


def write_sources(root: Path, extra_dialogues: int = 0) -> Path:
    (root / "chat").mkdir(parents=True, exist_ok=True)
    (root / "sms").mkdir(parents=True, exist_ok=True)
    (root / "chat/golfxiao_dialogs.csv").write_text(GOLFXIAO, encoding="utf-8")
    lines = [tele("t1", ["等待用户发言。", "您好，这里是银行客服，您的账户异常", "请提供验证码"], ["喂？", "怎么了？"], "fraud", "银行诈骗"),
             tele("t2", ["欢迎使用外卖服务，想吃点什么？"], ["一份炒饭", ""], "normal", "外卖服务")]
    lines += [tele(f"x{i}", [f"您好，这里是第{i}号彩票中心，恭喜中奖{i}万元", f"请先缴纳手续费{i}百元"], [f"真的吗{i}"],
                   "fraud", "彩票诈骗") for i in range(extra_dialogues)]
    lines += [tele(f"n{i}", [f"欢迎使用打车服务，第{i}位乘客请说目的地"], [f"去{i}号楼"], "normal", "打车服务")
              for i in range(extra_dialogues)]
    (root / "chat/teleantifraud_synth.jsonl").write_text("".join(lines), encoding="utf-8")
    return root


@pytest.fixture
def sources(tmp_path) -> Path:
    return write_sources(tmp_path / "data")


def test_roles_first_speaker_is_jia_everyone_else_yi():
    assert roles(["小王", "小美", "小王", "老板"]) == [FIRST, OTHER, FIRST, OTHER]


def test_prefix_windows_keep_the_last_k_turns_newest_last_and_the_opening():
    turns = [{"speaker": s, "text": t} for s, t in [("a", "一"), ("b", "二"), ("a", "三"), ("c", "四")]]
    assert prefix_windows(turns, k=2, anchor=0) == [("", "甲：一"), ("", "甲：一\n乙：二"), ("", "乙：二\n甲：三"),
                                                    ("", "甲：三\n乙：四")]
    assert [w[0] for w in prefix_windows(turns, k=2)] == ["", "", "甲：一", "甲：一"]  # once it left the window


def test_model_inputs_keep_the_tail_of_a_long_window():
    turns = [{"speaker": "a", "text": "很长的开场白" * 40}, {"speaker": "b", "text": "请把验证码发给我"}]
    last = model_inputs(turns, max_length=32)[-1]
    assert len(last) == 30 and last.endswith(normalize("乙：请把验证码发给我"))
    assert normalize(last) == last  # training stores it, serving re-normalizes: the same text


def test_model_inputs_put_the_opening_before_the_newest_turns():
    turns = [{"speaker": "a", "text": "您好，这里是银行客服中心，您的账户存在异常交易"}]
    turns += [{"speaker": "b" if i % 2 else "a", "text": f"第{i}句话" * 6} for i in range(1, 8)]
    windows = model_inputs(turns, max_length=64, k=2, anchor=10)
    assert windows[-1].startswith(normalize("甲：您好，这里是银行客服")) and windows[-1].endswith("第7句话")
    assert all(len(w) <= 62 and normalize(w) == w for w in windows)
    assert windows[1] == model_inputs(turns[:2], max_length=64, k=2, anchor=0)[1]  # turn 0 still in view


def test_golfxiao_conversations_in_order_scrubbed_and_labelled(sources):
    report = LoadReport()
    convs = {c.id.split("@")[0]: c for c in load_golfxiao_conversations(sources / "chat/golfxiao_dialogs.csv",
                                                                         report=report)}
    scam = convs["golfxiao_dialogs:a.csv#1"]
    assert [t["text"] for t in scam.turns][:2] == ["你好，我想问问兼职的事", "刷单一单返佣金二十元"]  # name prefix removed
    assert scam.label == "fraud.brushing" and scam.fraud_turns == [1, 3] and scam.first_fraud == 1
    assert [scam.window_label(e) for e in range(4)] == ["normal", "fraud.brushing", "fraud.brushing", "fraud.brushing"]
    assert convs["golfxiao_dialogs:a.csv#2"].label is None  # fraud file, no fraudster turn: unlabelled
    meeting = convs["golfxiao_dialogs:m.csv#会议"]
    assert meeting.label == "normal" and meeting.first_fraud is None
    assert roles([t["speaker"] for t in meeting.turns]) == [FIRST, OTHER, OTHER]
    assert sum(n for (s, r), n in report.skipped.items() if "empty" in r) == 1


def test_teleantifraud_turns_alternate_caller_first(sources):
    report = LoadReport()
    fraud, normal = load_teleantifraud_conversations(sources / "chat/teleantifraud_synth.jsonl", report=report)
    # the stage direction is dropped, so the caller's pretext is turn 1 after the victim's "喂？"
    assert [t["speaker"] for t in fraud.turns] == ["right", "left", "right", "left"]
    assert fraud.label == "fraud.fake_customer_service" and fraud.fraud_turns == [1, 3] and fraud.first_fraud == 1
    assert normal.label == "normal" and len(normal.turns) == 2  # the empty right turn is skipped
    assert report.skipped[("teleantifraud_synth", "stage direction removed")] == 1
    assert report.skipped[("teleantifraud_synth", "empty turn")] == 1


def test_sample_windows_keeps_the_earliest_and_more_of_long_conversations():
    import random

    kept = sample_windows(12, 4, random.Random(0))
    assert kept[:2] == [0, 1] and len(kept) == 4 and len(set(kept)) == 4
    assert len(sample_windows(200, 4, random.Random(0))) == 50  # a long meeting keeps one window in 4
    assert sample_windows(3, 4, random.Random(0)) == [0, 1, 2]


def test_build_writes_splits_without_crossing_conversations(tmp_path):
    root = write_sources(tmp_path / "data", extra_dialogues=40)
    out = tmp_path / "chat"
    summary = build(out, window=3, root=root, max_length=64, train_windows=0)
    rows = [json.loads(line) for s in ("train", "validation", "test") for line in open(out / f"{s}.jsonl", encoding="utf-8")]
    assert rows and all(set(r) >= {"text", "label", "source", "group", "split", "turn"} for r in rows)
    assert summary["split"]["leaks"] == 0
    sides = {}
    for r in rows:
        sides.setdefault(r["group"], set()).add(r["split"])
    assert all(len(s) == 1 for s in sides.values())
    assert not any("骗子" in r["text"] or "termination" in r["text"] for r in rows)
    convs = [json.loads(line) for s in ("validation", "test") for line in open(out / f"conversations_{s}.jsonl", encoding="utf-8")]
    assert convs and all(set(c) >= {"id", "turns", "label", "fraud_turns"} for c in convs)
    held_out = {c["group"] for c in convs}
    assert not held_out & {r["group"] for r in rows if r["split"] == "train"}
    assert (out / "conversations_unlabelled.jsonl").is_file() and (out / "card.md").is_file()


def test_real_conversations_slice(source_dir):
    convs, report = load_conversations(root=source_dir, limit=600)
    assert {c.source for c in convs} == {"golfxiao_dialogs", "teleantifraud_synth"}
    for c in convs:
        assert c.turns and all(t["text"].strip() for t in c.turns)
        if c.label is not None and c.label != "normal":
            assert c.first_fraud is not None and c.first_fraud < len(c.turns)
        if c.source == "teleantifraud_synth" and c.label != "normal":
            assert all(c.turns[i]["speaker"] == "left" for i in c.fraud_turns)
    windows = [w for c in convs[:50] for w in model_inputs(c.turns, 192)]
    assert all(len(w) <= 190 and normalize(w) == w for w in windows)
    assert all(scrub_speakers(t["text"]) == t["text"] for c in convs for t in c.turns)  # no "骗子：" left
