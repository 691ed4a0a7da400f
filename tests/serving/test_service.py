"""The real BentoML server, over HTTP, on the tiny exported model."""
import httpx
import pytest

from serving.predictor import Predictor

pytestmark = pytest.mark.slow
FIELDS = {"label", "category", "score", "fraud_score", "spam_score", "action", "error", "scores"}
TEXTS = ["【ETC服务】您的ETC认证已失效，请点击 http://etc-renz.cn 重新认证",
         "【招商银行】您的验证码为 482913，5分钟内有效", "周末一起吃饭吗？"]


def test_classify_returns_every_field_and_matches_predictor(server, tiny_serving):
    r = httpx.post(server + "/classify", json={"texts": TEXTS}, timeout=30)
    assert r.status_code == 200
    results = r.json()
    assert len(results) == len(TEXTS)
    expected = Predictor(tiny_serving).classify(TEXTS)
    for got, want in zip(results, expected):
        assert set(got) == FIELDS
        assert got["label"] == want["label"] and got["action"] == want["action"]
        assert got["fraud_score"] == pytest.approx(want["fraud_score"], abs=1e-5)
        assert sum(got["scores"].values()) == pytest.approx(1.0, abs=1e-4)
        assert got["action"] in ("allow", "flag", "block") and got["error"] == ""
        assert got["category"] == got["label"].split(".")[0]


def test_info_health_and_metrics(server):
    info = httpx.get(server + "/info").json()
    assert {"model_name", "version", "labels", "thresholds"} <= set(info)
    assert "fraud.loan" in info["labels"] and info["thresholds"]["fraud"]["block"] > 0
    for path in ("/healthz", "/livez", "/readyz"):
        assert httpx.get(server + path).status_code == 200, path
    httpx.post(server + "/classify", json={"texts": ["hi"]})
    metrics = httpx.get(server + "/metrics").text
    assert "bentoml_service_request" in metrics or "request_total" in metrics


def test_bad_inputs_get_clear_answers(server):
    post = lambda body, **kw: httpx.post(server + "/classify", timeout=30, **({"json": body} if kw == {} else kw))
    empty_list = post({"texts": []})
    assert empty_list.status_code == 400 and "at least 1" in empty_list.text
    not_string = post({"texts": [123, "ok"]})
    assert not_string.status_code == 400 and "string" in not_string.text
    missing = post({"message": "x"})
    assert missing.status_code == 400 and "texts" in missing.text
    malformed = httpx.post(server + "/classify", content=b'{"texts": [', headers={"content-type": "application/json"})
    assert 400 <= malformed.status_code < 500
    mixed = post({"texts": ["", "   ", "正常的短信，明天见", "长" * 100_000]})
    assert mixed.status_code == 200
    body = mixed.json()
    assert len(body) == 4, "no item may be lost"
    assert body[0]["error"] == "empty text" and body[1]["error"] == "empty text" and body[0]["label"] is None
    assert body[2]["error"] == "" and body[3]["error"] == "" and body[3]["label"]
