"""`POST /explain` on a real `bentoml serve`: its result is /classify's, byte for byte, and it has one
weight per character, for a short SMS and for a 2,000-character text (one call, at most 256 copies)."""
import math

import httpx
import pytest

from serving.explain import explain
from serving.predictor import Predictor
from tests.serving.conftest import start_server, stop_server

pytestmark = pytest.mark.slow
TEXTS = ["【ETC服务】您的ETC认证已失效，请点击 http://etc-rz.top 重新认证", "您的验证码为 482913，5分钟内有效。",
         "妈，我手机掉水里了，这是新号，急需转账3000元", "a", "<script>alert(1)</script>\"><img onerror=x>"]


def test_weights_measure_what_removing_a_character_does(tiny_serving_better):
    predictor = Predictor(tiny_serving_better)
    text = TEXTS[0]
    out = explain(predictor, text)
    assert out["result"] == predictor.classify([text])[0] and out["copies"] == len(text) and out["span"] == 1
    k = max(range(len(text)), key=lambda i: abs(out["weights"][i]))
    without = predictor.classify([text[:k] + text[k + 1:]])[0]["fraud_score"]
    assert out["weights"][k] == pytest.approx(out["result"]["fraud_score"] - without, abs=1e-5)
    long = (text + "，") * 60
    out = explain(predictor, long)
    assert len(out["weights"]) == len(long) and out["copies"] <= 256 and out["span"] == math.ceil(len(long) / 256)


def test_explain_agrees_with_classify_over_http(tiny_serving):
    proc, base = start_server(tiny_serving)
    try:
        batched = httpx.post(base + "/classify", json={"texts": TEXTS}, timeout=30).json()
        for text, together in zip(TEXTS, batched):
            alone = httpx.post(base + "/classify", json={"texts": [text]}, timeout=30).json()[0]
            r = httpx.post(base + "/explain", json={"text": text}, timeout=60)
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["result"] == alone and len(body["weights"]) == len(text)
            # batched with others, the scores may differ in the 8th digit (padding), never the decision
            assert [body["result"][k] for k in ("label", "action", "reason")] == \
                [together[k] for k in ("label", "action", "reason")]
            assert all(math.isfinite(w) for w in body["weights"])
        long = ("您好，这里是客服中心，请问有什么可以帮您？" * 100)[:2000]
        body = httpx.post(base + "/explain", json={"text": long}, timeout=120).json()
        assert len(body["weights"]) == 2000 and body["copies"] <= 256 and body["span"] == 8
        for bad in ({"text": ""}, {}, {"text": 5}, {"text": "x" * 30000}):
            assert httpx.post(base + "/explain", json=bad, timeout=30).status_code == 400, bad
    finally:
        stop_server(proc)
