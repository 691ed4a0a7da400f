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


# -- the fingerprint is keyed by default: one random key per deployment, in the state folder --------
def _clean_env(monkeypatch, state):
    monkeypatch.delenv("FANZHA_LOG_HASH_KEY", raising=False)
    monkeypatch.setenv("FANZHA_STATE_DIR", str(state))


def test_fingerprint_is_keyed_by_default(monkeypatch, tmp_path):
    _clean_env(monkeypatch, tmp_path / "state")
    log = DecisionLog.from_env()
    assert log.hash_key, "no FANZHA_LOG_HASH_KEY: a deployment key, never a bare sha256"
    key_file = tmp_path / "state" / "log-hash.key"
    assert key_file.is_file() and (key_file.stat().st_mode & 0o777) == 0o600
    assert len(log.hash_key) >= 32 and log.hash_key in key_file.read_bytes()
    again = DecisionLog.from_env()
    assert again.hash_key == log.hash_key, "written once, then read"
    assert fingerprint("验证码 482913", log.hash_key) != fingerprint("验证码 482913")
    other = tmp_path / "other"
    monkeypatch.setenv("FANZHA_STATE_DIR", str(other))
    assert DecisionLog.from_env().hash_key != log.hash_key, "random per deployment"


def test_an_explicit_key_wins_and_writes_nothing(monkeypatch, tmp_path):
    _clean_env(monkeypatch, tmp_path / "state")
    monkeypatch.setenv("FANZHA_LOG_HASH_KEY", "s3cret")
    assert DecisionLog.from_env().hash_key == b"s3cret"
    assert not (tmp_path / "state" / "log-hash.key").exists()


def test_two_services_on_one_state_folder_share_the_key(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k != "FANZHA_LOG_HASH_KEY"}
    env["FANZHA_STATE_DIR"] = str(tmp_path / "shared")
    code = "from serving.audit import DecisionLog; print(DecisionLog.from_env().hash_key.hex())"
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=repo, env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(4)]  # started together: a race for who writes the key
    keys = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert len(keys) == 1 and "" not in keys


# -- a logging failure never fails the request: it is counted --------------------------------------
def _log_errors() -> float:
    from prometheus_client import REGISTRY

    return sum(REGISTRY.get_sample_value("fanzha_log_errors_total", {"log": kind}) or 0 for kind in ("decision", "audit"))


def test_a_full_disk_does_not_raise_and_is_counted(tmp_path):
    from serving.metrics import service_metrics

    service_metrics()
    before = _log_errors()
    log = DecisionLog(decisions=False, audit_path="/dev/full", hash_key=b"k")
    for _ in range(3):
        log.write(RESULTS, TEXTS, ["95588", None])  # ENOSPC on every flush
    log.close()
    assert _log_errors() - before == 3


def test_a_failing_decision_log_handler_does_not_raise_and_is_counted():
    from serving.metrics import service_metrics

    service_metrics()
    log = DecisionLog(decisions=True)
    handler = log.logger.handlers[0]
    stream, handler.stream = handler.stream, open("/dev/full", "w", buffering=1)
    before = _log_errors()
    try:
        log.write(RESULTS, TEXTS, ["95588", None])
    finally:
        handler.stream = stream
    assert _log_errors() - before == 1


@pytest.mark.slow
def test_a_full_disk_never_fails_a_request_through_a_real_server(tiny_serving, tmp_path):
    import re

    import httpx

    from tests.serving.conftest import start_server, stop_server

    proc, base = start_server(tiny_serving, {"FANZHA_AUDIT_LOG": "/dev/full", "FANZHA_STATE_DIR": str(tmp_path)})

    def errors() -> float:
        page = httpx.get(base + "/metrics", timeout=30).text
        found = re.findall(r'^fanzha_log_errors_total\{log="audit"\} ([0-9.e+]+)$', page, re.M)
        assert found, "the counter is exported before any failure"
        return float(found[0])

    try:
        before = errors()
        for i in range(3):
            r = httpx.post(base + "/classify", json={"texts": [f"您的快递{i}已到", "加微信领红包"]}, timeout=30)
            assert r.status_code == 200, r.text
            assert [x["error"] for x in r.json()] == ["", ""]
        assert errors() - before >= 3
        assert (tmp_path / "log-hash.key").is_file(), "the server keyed its fingerprints with the deployment key"
    finally:
        stop_server(proc)
