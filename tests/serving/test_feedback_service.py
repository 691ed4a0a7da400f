"""`POST /feedback` against a real `bentoml serve` on the tiny model and a real SQLite store: an
analyst confirms fraud SMS the model did not block, and their variants (other digits, another
domain) are blocked by the very next request with reason `campaign:*`, also after a restart, in
/classify and /chat alike; bad reports get a 4xx with the reason, never a 5xx."""
from __future__ import annotations

import json
import re
import time

import httpx
import pytest

from tests.serving.conftest import REPO, start_server, stop_server

pytestmark = pytest.mark.slow
KEY = "feedback-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
LEGIT = ["您的验证码是482913，5分钟内有效，请勿泄露。", "【中国银行】您尾号1234的账户于11月3日消费256.00元。",
         "【顺丰速运】您的快件已到达小区驿站，取件码 8-2-1103，请及时领取。", "明天下午三点开会，记得带材料",
         "【交管12123】您的机动车已通过年检，电子凭证请在交管12123 APP查看。"]
_DOMAIN = re.compile(r"(?:https?://)?(?:[a-z0-9-]+\.)+(?:cn|com|top|vip)(?:/[a-z0-9]*)?", re.I)


def fraud_probes(n: int = 4) -> list[str]:
    """Hand-written fraud SMS carrying a link (data/probes): what a campaign sends."""
    rows = [json.loads(line) for line in (REPO / "data/probes/ood_sms.jsonl").read_text(encoding="utf-8").splitlines()]
    return [r["text"] for r in rows if r["label"].startswith("fraud") and _DOMAIN.search(r["text"])][:n]


def variant(text: str, k: int) -> str:
    """The same script with other digits and another domain."""
    text = _DOMAIN.sub(f"https://pay-{k}x.vip/r{k}", text)
    return re.sub(r"\d", lambda m: str((int(m.group()) + k + 3) % 10), text)


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    return tmp_path_factory.mktemp("feedback") / "feedback.db"


def serve(tiny_serving, db, **env):
    return start_server(tiny_serving, {"FANZHA_API_KEY": KEY, "FANZHA_FEEDBACK_DB": str(db),
                                       "FANZHA_FEEDBACK_SYNC_S": "0.2", **env})


def classify(base, texts):
    r = httpx.post(base + "/classify", json={"texts": texts}, headers=AUTH, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def test_analyst_confirmation_blocks_variants_at_once_and_after_a_restart(tiny_serving, db):
    probes = fraud_probes()
    variants = [variant(t, k) for k, t in enumerate(probes, 1)]
    assert len(probes) == 4 and all(v != t for v, t in zip(variants, probes))
    proc, base = serve(tiny_serving, db)
    try:
        before = classify(base, probes + variants + LEGIT)
        assert not any(r["action"] == "block" for r in before[: 2 * len(probes)])  # the model lets them through
        ids = []
        for text in probes:
            r = httpx.post(base + "/feedback", json={"text": text, "label": "fraud", "source": "analyst",
                                                     "note": "confirmed from a user complaint"}, headers=AUTH)
            assert r.status_code == 200, r.text
            answer = r.json()
            assert answer["campaign"].startswith("c") and answer["campaign_state"]["action"] == "block"
            ids.append(answer["id"])
        after = classify(base, variants + LEGIT)  # the very next request
        assert [r["action"] for r in after[: len(variants)]] == ["block"] * len(variants)
        assert all(r["reason"].startswith("campaign:c") for r in after[: len(variants)])
        assert [(r["action"], r["reason"]) for r in after[len(variants):]] == \
            [(r["action"], r["reason"]) for r in before[2 * len(probes):]]  # legitimate messages untouched
        chat = httpx.post(base + "/chat", json={"turns": [{"speaker": "a", "text": "你好"},
                                                          {"speaker": "a", "text": variants[0]}]}, headers=AUTH).json()
        assert chat["action"] == "block" and chat["detected_at_turn"] == 1
        metrics = httpx.get(base + "/metrics", headers=AUTH).text
        assert re.search(r'fanzha_feedback_total\{label="fraud",source="analyst"\} 4\.0', metrics)
        assert re.search(r'fanzha_campaign_hits_total\{action="block"\} [1-9]', metrics)
        assert re.search(r"fanzha_campaigns_active(\{[^}]*\})? 4\.0", metrics)
        info = httpx.get(base + "/info", headers=AUTH).json()["feedback"]
        assert info["database"] == "sqlite" and info["reports"] == 4 and info["deciding"] == 4
        assert [c["id"] for c in httpx.get(base + "/feedback/campaigns", headers=AUTH).json()]
    finally:
        stop_server(proc)
    proc, base = serve(tiny_serving, db)  # a restart loses nothing
    try:
        again = classify(base, variants)
        assert [r["reason"] for r in again] == [r["reason"] for r in after[: len(variants)]]
        # undo one confirmation: its variants go back to the model's answer, at once
        r = httpx.delete(f"{base}/feedback/{ids[0]}", headers=AUTH)
        assert r.status_code == 200 and r.json()["deleted"] is True
        assert classify(base, variants[:1])[0]["reason"] == before[len(probes)]["reason"]
        assert httpx.delete(f"{base}/feedback/{ids[0]}", headers=AUTH).json()["deleted"] is False
    finally:
        stop_server(proc)


def test_bad_reports_get_4xx_with_the_reason(tiny_serving, db):
    proc, base = serve(tiny_serving, db)
    try:
        good = {"text": "【ETC服务】您的ETC认证已失效", "label": "spam", "source": "user_report"}
        assert httpx.post(base + "/feedback", json=good).status_code == 401  # no key
        assert httpx.post(base + "/feedback", json=good, headers={"Authorization": "Bearer wrong"}).status_code == 401
        cases = [
            ({**good, "label": "fraud.no_such_type"}, 422, "unknown label"),
            ({**good, "source": "friend"}, 422, "source"),
            ({**good, "text": ""}, 422, "text"),
            ({**good, "text": "   "}, 422, "empty text"),
            ({**good, "text": "诈" * 5000}, 422, "text"),
            ({**good, "text": 5}, 422, "text"),
            ({"label": "spam", "source": "user_report"}, 422, "text"),
            ({**good, "source": "appeal"}, 422, "its label is normal"),
            ({**good, "color": "red"}, 422, "color"),
        ]
        for body, status, reason in cases:
            r = httpx.post(base + "/feedback", json=body, headers=AUTH)
            assert r.status_code == status and reason in r.json()["error"], (body, r.status_code, r.text)
        r = httpx.post(base + "/feedback", content=b"{not json", headers={**AUTH, "Content-Type": "application/json"})
        assert 400 <= r.status_code < 500, r.text
        assert httpx.delete(f"{base}/feedback/999999", headers=AUTH).status_code == 404
        assert httpx.delete(f"{base}/feedback/abc", headers=AUTH).status_code == 422
        assert httpx.get(base + "/feedback/queue", headers=AUTH).status_code == 200
    finally:
        stop_server(proc)


def test_without_a_database_feedback_is_503_and_classify_answers(tiny_serving):
    proc, base = start_server(tiny_serving, {"FANZHA_API_KEY": KEY})
    try:
        r = httpx.post(base + "/feedback", json={"text": "x", "label": "spam", "source": "analyst"}, headers=AUTH)
        assert r.status_code == 503 and "FANZHA_FEEDBACK_DB" in r.json()["error"]
        assert classify(base, LEGIT)[0]["action"]
    finally:
        stop_server(proc)


def test_two_workers_share_one_sqlite_file(tiny_serving, tmp_path):
    """Each worker follows the file: a report taken by one is decided on by both within seconds."""
    proc, base = serve(tiny_serving, tmp_path / "shared.db", FANZHA_WORKERS="2")
    try:
        probe = fraud_probes(1)[0]
        r = httpx.post(base + "/feedback", json={"text": probe, "label": "fraud", "source": "analyst"}, headers=AUTH)
        assert r.status_code == 200
        time.sleep(1.5)  # > FANZHA_FEEDBACK_SYNC_S: the other worker has read it
        reasons = {classify(base, [variant(probe, 7)])[0]["reason"] for _ in range(20)}
        assert reasons == {f"campaign:{r.json()['campaign']}"}
    finally:
        stop_server(proc)
