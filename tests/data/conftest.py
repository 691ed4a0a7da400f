"""Fixtures for the data-layer tests: the real shared files (small slices are read at run time,
nothing is copied into the repo) and a folder of tiny synthetic source files in the same formats."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from data.sources import FILES, data_dir


@pytest.fixture(scope="session")
def source_dir() -> Path:
    """`data_dir()` with all four source files. Missing: fail when CI=true, skip elsewhere."""
    root = data_dir()
    missing = [name for name in FILES.values() if not (root / name).is_file()]
    if missing:
        message = (f"shared data not found: {', '.join(str(root / m) for m in missing)} "
                   f"(set FANZHA_DATA_DIR to the folder holding sms/ and chat/)")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " — required in CI")
        pytest.skip(message)
    return root


def write_fake_sources(root: Path) -> Path:
    """Four tiny files in the shared formats, written from invented texts."""
    (root / "sms").mkdir(parents=True, exist_ok=True)
    (root / "chat").mkdir(parents=True, exist_ok=True)
    (root / "sms/spam80w.tsv").write_text(
        "0\t明天下午三点开会\n1\t【某商城】全场五折，回复TD退订\n0\t他说\t\"好的\"\n1\t【某商城】全场五折，回复TD退订\n",
        encoding="utf-8")
    (root / "sms/telecom_fraud_texts.csv").write_text(
        "text,label\n【某商城】全场五折，回复TD退订,正常\n"
        "\"您好，我是市公安局民警，您涉嫌洗钱，请配合调查\",冒充公检法\n"
        "\"您的贷款已审批，请先缴纳保证金DIGIT元\",贷款诈骗\n", encoding="utf-8")
    (root / "chat/golfxiao_dialogs.csv").write_text(
        "fraud_type,case,speaker,content,is_fraud\n"
        "兼职刷单诈骗,a.csv#1,骗子小王,骗子小王：刷单一单返佣金二十元,True\n"
        "兼职刷单诈骗,a.csv#1,受害人,听起来不错，怎么开始？,False\n"
        "兼职刷单诈骗,a.csv#1,骗子小王,先垫付一百元,True\n"
        "none,m.csv#会议,发言人1,下面请各位介绍一下本季度的业绩,False\n", encoding="utf-8")
    dialogues = [
        {"tts_id": "t1", "left": ["您好，这里是银行客服，您的账户异常", "请提供验证码"],
         "right": ["怎么了？", "好的"], "label": "fraud", "fraud_type": "银行诈骗",
         "termination_reason": "用户提供了验证码，诈骗成功"},
        {"tts_id": "t2", "left": ["您好，外卖到了吗？"], "right": ["到了，谢谢", ""], "label": "normal",
         "fraud_type": "外卖服务", "termination_reason": "正常结束"},
    ]
    (root / "chat/teleantifraud_synth.jsonl").write_text(
        "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in dialogues), encoding="utf-8")
    return root


@pytest.fixture
def fake_dir(tmp_path) -> Path:
    return write_fake_sources(tmp_path / "data")
