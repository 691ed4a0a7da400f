"""The real BentoML server, over HTTP, on the tiny exported model: API, policy, auth, limits, logs."""
import json
import os
import shutil

import httpx
import pytest
import yaml

from serving.policy import PolicyFile
from serving.predictor import Predictor
from serving.screening import Screener
from tests.serving.conftest import server_output, start_server, stop_server

pytestmark = pytest.mark.slow
FIELDS = {"label", "category", "score", "fraud_score", "spam_score", "action", "reason", "error", "scores"}
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
        assert got["reason"] == f"threshold:{got['category']}.{got['action']}" or got["reason"] == "threshold:none"
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


# -- a production-like server: API key, a policy with lists, audit log, output captured -------------
KEY = "test-key-7f3a"
AUTH = {"Authorization": f"Bearer {KEY}"}
POLICY = {"thresholds": {"fraud": {"block": 0.9, "flag": 0.5}, "spam": {"flag": 0.8}},
          "allowlist": {"senders": ["95588"]},
          "blocklist": {"domains": ["etc-renz.cn"], "phones": ["4008123456"]}}
SECRET = "我的验证码是 739164 手机 13987654321"  # must never reach the logs in clear


@pytest.fixture(scope="module")
def secured(tiny_serving, tmp_path_factory):
    folder = tmp_path_factory.mktemp("secured")
    policy = folder / "policy.yaml"
    policy.write_text(yaml.safe_dump(POLICY), encoding="utf-8")
    audit = folder / "audit.jsonl"
    proc, base = start_server(tiny_serving, {"FANZHA_API_KEY": KEY, "FANZHA_POLICY": str(policy),
                                             "FANZHA_POLICY_CHECK_S": "0", "FANZHA_AUDIT_LOG": str(audit),
                                             "FANZHA_MAX_TEXTS": "8", "FANZHA_MAX_BODY_BYTES": "20000",
                                             "FANZHA_ACCESS_LOG": "1", "FANZHA_TRACING": "1",
                                             # its own prometheus dir: BentoML wipes $BENTOML_HOME's on start
                                             "BENTOML_HOME": str(folder / "bentoml")})
    yield {"base": base, "policy": policy, "audit": audit, "proc": proc, "artifact": tiny_serving}
    stop_server(proc)


def _post(server, body, **kw):
    return httpx.post(server["base"] + "/classify", json=body, headers=AUTH, timeout=30, **kw)


def test_items_with_metadata_and_the_policy_lists(secured):
    items = ["【ETC服务】请点击 http://www.etc-renz.cn 重新认证", {"text": "【工商银行】您尾号1234的卡入账500元", "sender": 95588},
             {"text": "退款请致电 400-812-3456", "sender": "95588"}, {"text": "周末一起吃饭吗？"}, {"text": "", "sender": "95588"}]
    r = _post(secured, {"texts": items})
    assert r.status_code == 200, r.text
    got = r.json()
    assert [g["reason"] for g in got[:3]] == ["blocklist:domain:etc-renz.cn", "allowlist:sender", "blocklist:phone:4008123456"]
    assert [g["action"] for g in got[:3]] == ["block", "allow", "block"]
    assert got[4]["error"] == "empty text" and got[4]["action"] is None
    expected = Screener(Predictor(secured["artifact"]), PolicyFile(secured["policy"])).screen(items)
    for g, e in zip(got, expected):
        assert set(g) == FIELDS
        assert (g["label"], g["action"], g["reason"], g["error"]) == (e["label"], e["action"], e["reason"], e["error"])


def test_auth_limits_and_content_type(secured):
    base = secured["base"]
    assert httpx.post(base + "/classify", json={"texts": ["a"]}).status_code == 401
    assert httpx.post(base + "/classify", json={"texts": ["a"]}, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert httpx.get(base + "/info").status_code == 401 and httpx.get(base + "/info", headers=AUTH).status_code == 200
    assert httpx.get(base + "/readyz").status_code == 200, "probes stay open by default"
    assert httpx.get(base + "/metrics").status_code == 401 and httpx.get(base + "/metrics", headers=AUTH).status_code == 200
    too_many = _post(secured, {"texts": ["a"] * 9})
    assert too_many.status_code == 400 and "at most 8 items" in too_many.text
    too_big = _post(secured, {"texts": ["长" * 7000]})
    assert too_big.status_code == 413 and "exceeds the limit of 20000 bytes" in too_big.json()["error"]
    form = httpx.post(base + "/classify", content=b"texts=a", headers={**AUTH, "Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415
    long_sender = _post(secured, {"texts": [{"text": "a", "sender": "9" * 65}]})
    assert long_sender.status_code == 400 and "at most 64 characters" in long_sender.text
    extra = _post(secured, {"texts": [{"text": "a", "senderr": "95588"}]})
    assert extra.status_code == 400 and "senderr" in extra.text, "a typo in a field name is not silently ignored"
    info = httpx.get(base + "/info", headers=AUTH).json()
    assert info["limits"] == {"max_texts": 8, "max_sender_chars": 64, "max_body_bytes": 20000, "auth": True}


def test_policy_reload_by_endpoint_and_on_change(secured):
    base, policy = secured["base"], secured["policy"]
    text = {"text": "【工商银行】您尾号1234的卡入账500元", "sender": "10086"}
    assert _post(secured, {"texts": [text]}).json()[0]["reason"] != "allowlist:sender"
    assert httpx.post(base + "/admin/reload-policy").status_code == 401
    try:
        policy.write_text(yaml.safe_dump({**POLICY, "allowlist": {"senders": ["95588", "10086"]}}), encoding="utf-8")
        r = httpx.post(base + "/admin/reload-policy", headers=AUTH)
        assert r.status_code == 200 and r.json()["policy"]["allowlist_senders"] == 2
        assert _post(secured, {"texts": [text]}).json()[0]["reason"] == "allowlist:sender"
        policy.write_text("thresholds: {fraud: {block: 3}}\n", encoding="utf-8")
        bad = httpx.post(base + "/admin/reload-policy", headers=AUTH)
        assert bad.status_code == 422 and "in [0, 1]" in bad.json()["error"]
        assert _post(secured, {"texts": [text]}).json()[0]["reason"] == "allowlist:sender", "a broken file changes nothing"
        policy.write_text(yaml.safe_dump({**POLICY, "allowlist": {"senders": []}}), encoding="utf-8")
        os.utime(policy, ns=(10**18, 10**18))  # a new mtime even on coarse file-system clocks
        assert _post(secured, {"texts": [text]}).json()[0]["reason"] != "allowlist:sender", "re-read on change, no endpoint"
    finally:
        policy.write_text(yaml.safe_dump(POLICY), encoding="utf-8")
        httpx.post(base + "/admin/reload-policy", headers=AUTH)


def test_logs_hold_decisions_but_no_text_and_the_audit_log_masks(secured):
    assert _post(secured, {"texts": [SECRET, {"text": SECRET, "sender": "95588"}]}).status_code == 200
    assert _post(secured, {"texts": [SECRET, 5]}).status_code == 400  # a rejected request is logged too
    httpx.get(secured["base"] + "/readyz")
    log = server_output(secured["proc"])
    assert '"event": "decision"' in log and '"chars": ' in log and '"sha": ' in log
    assert "739164" not in log and "13987654321" not in log and "验证码" not in log
    audit = [json.loads(line) for line in secured["audit"].read_text(encoding="utf-8").splitlines()]
    mine = [a for a in audit if a["chars"] == len(SECRET)]
    assert mine and all(a["text"] == "我的验证码是 739164 手机 139****4321" for a in mine)
    assert {a["sender"] for a in mine} == {None, "95588"}


def test_access_log_and_tracing_are_off_unless_asked_for(server, secured):
    """BentoML's per-request access line and OpenTelemetry span cost time on every call (docs:
    Benchmarks, the HTTP floor): the default service writes no access line and opens no span (no
    span, no X-BentoML-Request-ID); FANZHA_ACCESS_LOG=1 and FANZHA_TRACING=1 (the secured server) do."""
    plain = httpx.post(server + "/classify", json={"texts": ["周末一起吃饭吗？"]}, timeout=30)
    traced = _post(secured, {"texts": ["周末一起吃饭吗？"]})
    assert plain.status_code == traced.status_code == 200
    assert "x-bentoml-request-id" not in plain.headers and "x-bentoml-request-id" in traced.headers
    httpx.get(server + "/readyz"), httpx.get(secured["base"] + "/readyz")
    assert "path=/classify" in server_output(secured["proc"])
    default = server_output(server.proc)
    assert '"event": "decision"' in default and "path=/classify" not in default


def test_openapi_schema_describes_classify(server):
    spec = httpx.get(server + "/docs.json").json()
    post = spec["paths"]["/classify"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    texts = body["properties"]["texts"]
    assert body["required"] == ["texts"] and texts["type"] == "array" and texts["minItems"] == 1 and texts["maxItems"] > 1
    schemas = spec["components"]["schemas"]
    item = schemas[texts["items"]["$ref"].rsplit("/", 1)[1]]
    assert {"type": "string"} in item["oneOf"] and schemas["Message"]["required"] == ["text"]
    assert set(schemas["Message"]["properties"]) == {"text", "sender"}
    out = post["responses"]["200"]["content"]["application/json"]["schema"]
    assert out["type"] == "array" and set(schemas[out["items"]["$ref"].rsplit("/", 1)[1]]["properties"]) == FIELDS
    assert "/info" in spec["paths"] and "/admin/reload-policy" in spec["paths"]


def _decisions(base) -> dict[str, float]:
    lines = httpx.get(base + "/metrics", headers=AUTH).text.splitlines()
    return {l.rsplit(" ", 1)[0]: float(l.rsplit(" ", 1)[1]) for l in lines if l.startswith(("fanzha_decisions_total{", "fanzha_item_errors_total"))}


def test_metrics_count_actions_categories_and_rules(secured):
    before = _decisions(secured["base"])
    items = ["请点击 etc-renz.cn 认证", "请点击 etc-renz.cn 认证", {"text": "入账500元", "sender": "95588"}, "周末吃饭吗", ""]
    got = _post(secured, {"texts": items}).json()
    after = _decisions(secured["base"])
    delta = {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}
    expected: dict[str, float] = {}
    for g in got[:4]:
        key = f'fanzha_decisions_total{{action="{g["action"]}",category="{g["category"]}",rule="{g["reason"].split(":")[0]}"}}'
        expected[key] = expected.get(key, 0) + 1
    expected["fanzha_item_errors_total"] = 1
    assert delta == expected
    metrics = httpx.get(secured["base"] + "/metrics", headers=AUTH).text
    assert "fanzha_inference_seconds_bucket" in metrics and "fanzha_batch_items_bucket" in metrics
    latency = [l for l in metrics.splitlines() if l.startswith("bentoml_service_request_duration_seconds_bucket{")
               and 'endpoint="/classify"' in l]
    assert any('le="0.002"' in l for l in latency), "millisecond buckets for SMS latency"


@pytest.mark.parametrize("raw, status, needle", [
    (b'{"texts": ["\xff\xfe"]}', 400, "Invalid JSON"),                 # invalid UTF-8
    (b'{"texts": ["a\\ud800b"]}', 400, "Invalid JSON"),                 # lone surrogate
    (b'[' * 50000 + b']' * 50000, 400, "Invalid JSON"),                 # nesting bomb
    (b'{"texts": "one string"}', 400, "valid array"),
    (b'{"texts": [["nested"]]}', 400, "each item must be a string"),
    (b'{"texts": [{"sender": "95588"}]}', 400, "Field required"),
    (b'', 400, "Field required"),
])
def test_malformed_bodies_get_4xx(server, raw, status, needle):
    r = httpx.post(server + "/classify", content=raw, headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == status and needle in r.text


def test_control_and_nul_characters_are_stripped_not_refused(server):
    # refusing them would let a scammer skip the filter by inserting a NUL
    r = httpx.post(server + "/classify", json={"texts": ["加\x00微\x00信 领\x07取返利", "加微信 领取返利", "\x00\x01\x1f"]}, timeout=30)
    assert r.status_code == 200
    dirty, clean, only_controls = r.json()
    assert dirty["label"] == clean["label"] and dirty["fraud_score"] == pytest.approx(clean["fraud_score"], abs=1e-5)
    assert only_controls["error"] == "empty text"


def test_refuses_to_start_on_a_tampered_artifact(tiny_serving, tmp_path):
    artifact = tmp_path / "serving"
    shutil.copytree(tiny_serving, artifact)
    (artifact / "tokenizer.json").write_text((artifact / "tokenizer.json").read_text(encoding="utf-8") + " ", encoding="utf-8")
    with pytest.raises(RuntimeError, match="tokenizer.json: sha256 differs from manifest.json"):
        start_server(artifact, timeout=60)
