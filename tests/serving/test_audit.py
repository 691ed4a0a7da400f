"""Decision and audit logs: no message text by default, masked numbers in the opt-in audit log."""
import json
import logging
import logging.handlers

import pytest

from serving.audit import DecisionLog, fingerprint, mask


@pytest.mark.parametrize("text, masked", [
    ("客服电话 138-1234-5678", "客服电话 138****5678"),
    ("加V13812345678详谈", "加V138****5678详谈"),
    ("+86 138 1234 5678", "86138****5678"),
    ("１３８１２３４５６７８", "１３８****５６７８"),                     # full-width digits
    ("卡号 6222 0212 3456 7890 123", "卡号 ***************0123"),
    ("身份证 11010519491231002X", "身份证 **************002X"),
    ("身份证号110105194912310021", "身份证号**************0021"),
    ("座机 010-12345678", "座机 010****5678"),
    ("验证码 482913，金额 256.00 元", "验证码 482913，金额 256.00 元"),  # short numbers stay
])
def test_mask(text, masked):
    assert mask(text) == masked


def test_fingerprint_is_stable_and_keyed():
    assert fingerprint("验证码 482913") == fingerprint("验证码 482913") != fingerprint("验证码 482914")
    assert fingerprint("验证码 482913", b"k1") != fingerprint("验证码 482913", b"k2") != fingerprint("验证码 482913")
    assert len(fingerprint("x")) == 16 and fingerprint("\ud800") != ""


RESULTS = [{"label": "fraud.loan", "action": "block", "reason": "blocklist:phone:13812345678", "score": 0.9,
            "fraud_score": 0.95, "error": "", "category": "fraud"},
           {"label": None, "action": None, "reason": "", "score": None, "fraud_score": None, "error": "empty text"}]
TEXTS = ["无抵押贷款请联系 13812345678 王经理，身份证 11010519491231002X", ""]


def test_decision_log_has_no_text():
    log = DecisionLog(decisions=True)
    buffer = logging.handlers.BufferingHandler(100)  # the logger does not propagate: listen to it directly
    log.logger.addHandler(buffer)
    try:
        log.write(RESULTS, TEXTS, ["95588", None])
    finally:
        log.logger.removeHandler(buffer)
    text = "\n".join(r.getMessage() for r in buffer.buffer)
    lines = [json.loads(line) for line in text.splitlines()]
    assert [l["action"] for l in lines] == ["block", None]
    assert lines[0]["chars"] == len(TEXTS[0]) and lines[0]["sha"] == fingerprint(TEXTS[0])
    assert lines[0]["reason"] == "blocklist:phone:13812345678" and lines[1]["error"] == "empty text"
    assert "贷款" not in text and "王经理" not in text and "95588" not in text


def test_audit_log_masks_numbers(tmp_path):
    log = DecisionLog(decisions=False, audit_path=tmp_path / "audit.jsonl", hash_key=b"k")
    log.write(RESULTS, TEXTS, ["95588", None])
    log.close()
    rows = [json.loads(l) for l in (tmp_path / "audit.jsonl").read_text(encoding="utf-8").splitlines()]
    assert rows[0]["text"] == "无抵押贷款请联系 138****5678 王经理，身份证 **************002X"
    assert rows[0]["sender"] == "95588" and rows[0]["sha"] == fingerprint(TEXTS[0], b"k")
    assert "13812345678" not in (tmp_path / "audit.jsonl").read_text(encoding="utf-8").replace("blocklist:phone:13812345678", "")
    assert rows[1]["error"] == "empty text"


def test_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("FANZHA_DECISION_LOG", "0")
    monkeypatch.setenv("FANZHA_AUDIT_LOG", str(tmp_path / "a.jsonl"))
    log = DecisionLog.from_env()
    assert log.logger is None and log.audit_path == tmp_path / "a.jsonl"
    log.close()
