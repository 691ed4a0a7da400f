"""The decision policy: thresholds with reasons, allow-list, block-list, validation, hot reload."""
import os

import numpy as np
import pytest
import yaml

from serving.policy import Policy, PolicyError, PolicyFile, main as policy_main
from serving.predictor import Predictor

REPO_POLICY = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "policy.yaml")
LISTS = {"thresholds": {"fraud": {"block": 0.9, "flag": 0.5}, "spam": {"flag": 0.8}},
         "allowlist": {"senders": ["95588", "95533"]},
         "blocklist": {"domains": ["etc-renz.cn"], "phones": ["400-812-3456", "+86 138 1234 5678"]}}


def test_repo_policy_loads_and_documents_every_key():
    policy = Policy.load(REPO_POLICY)
    assert policy.thresholds["fraud"]["block"] > policy.thresholds["fraud"]["flag"]
    raw = yaml.safe_load(open(REPO_POLICY, encoding="utf-8"))
    assert set(raw) == {"thresholds", "allowlist", "blocklist", "campaigns"}
    assert policy.campaigns.to_dict() == raw["campaigns"]  # the documented values are the defaults in effect
    assert policy_main([REPO_POLICY]) == 0


@pytest.mark.parametrize("scores, expected", [
    ({"fraud": 0.95, "spam": 0.0, "normal": 0.05}, ("block", "threshold:fraud.block")),
    ({"fraud": 0.6, "spam": 0.3, "normal": 0.1}, ("flag", "threshold:fraud.flag")),
    ({"fraud": 0.1, "spam": 0.85, "normal": 0.05}, ("flag", "threshold:spam.flag")),
    ({"fraud": 0.1, "spam": 0.3, "normal": 0.6}, ("allow", "threshold:none")),
    ({"fraud": 0.9, "spam": 0.0, "normal": 0.1}, ("block", "threshold:fraud.block")),  # >= is inclusive
])
def test_thresholds_give_action_and_reason(scores, expected):
    assert Policy.from_dict(LISTS).decide_one(scores) == expected


def test_decide_one_agrees_with_the_vectorized_decide():
    policy = Policy.from_dict(LISTS)
    rng = np.random.default_rng(0)
    fraud = rng.random(2000, dtype=np.float32)
    spam = ((1 - fraud) * rng.random(2000, dtype=np.float32)).astype(np.float32)
    fraud[:3] = np.float32(0.9), np.float32(0.5), np.nextafter(np.float32(0.9), np.float32(0))  # edges
    normal = (1 - fraud - spam).astype(np.float32)
    levels = policy.decide({"fraud": fraud, "spam": spam, "normal": normal})
    for i in range(len(fraud)):
        action, _ = policy.decide_one({"fraud": float(fraud[i]), "spam": float(spam[i]), "normal": float(normal[i])})
        assert ("allow", "flag", "block")[levels[i]] == action


@pytest.mark.parametrize("text, sender, expected", [
    ("【ETC服务】认证失效，请点击 http://etc-renz.cn/a 重新认证", None, ("block", "blocklist:domain:etc-renz.cn")),
    ("请访问 www.ETC-renz.CN 认证", None, ("block", "blocklist:domain:etc-renz.cn")),           # sub-domain, case
    ("点击ｅｔｃ－ｒｅｎｚ．ｃｎ认证", None, ("block", "blocklist:domain:etc-renz.cn")),             # full-width
    ("退款请致电 400 812 3456", None, ("block", "blocklist:phone:4008123456")),
    ("加我 +86 138-1234-5678 详谈", None, ("block", "blocklist:phone:13812345678")),
    ("电话13812345678 13912345678", None, ("block", "blocklist:phone:13812345678")),
    ("【工商银行】您尾号1234的卡入账500元", "95588", ("allow", "allowlist:sender")),
    ("【工商银行】账户异常请登录 etc-renz.cn", "95588", ("block", "blocklist:domain:etc-renz.cn")),  # spoofed short code
    ("你好", "95589", None),
    ("访问 notetc-renz.cn 或 etc-renz.cnx", None, None),                                        # no partial matches
    ("订单号 40081234567", None, None),
])
def test_lists(text, sender, expected):
    assert Policy.from_dict(LISTS).listed(text, sender) == expected


@pytest.mark.parametrize("raw, message", [
    ({"thresholds": {"fraudd": {"block": 0.9}}}, "unknown category"),
    ({"thresholds": {"fraud": {"block": 1.5}}}, "in \\[0, 1\\]"),
    ({"thresholds": {"fraud": {"flag": 0.9, "block": 0.5}}}, "flag threshold above block"),
    ({"thresholds": {"fraud": {"drop": 0.5}}}, "flag or block"),
    ({"thresholds": {"fraud": "high"}}, "thresholds must map"),
    ({"allowlist": {"senders": [95588]}}, "quoted strings"),
    ({"allowlist": {"senders": "95588"}}, "quoted strings"),
    ({"allowlist": {"sender": ["95588"]}}, "allowlist takes only"),
    ({"blocklist": {"domains": ["http://x.cn"]}}, "not a lower-case domain"),
    ({"blocklist": {"phones": ["12345"]}}, "at least 7 digits"),
    ({"blocklists": {}}, "unknown keys"),
    (["thresholds"], "mapping"),
])
def test_invalid_policies_are_refused_with_the_reason(raw, message):
    with pytest.raises(PolicyError, match=message):
        Policy.from_dict(raw)


@pytest.mark.slow
def test_apply_post_processes_predictor_results(tiny_serving):
    predictor = Predictor(tiny_serving)
    policy = Policy.from_dict(LISTS)
    texts = ["【ETC服务】请点击 etc-renz.cn 重新认证", "【工商银行】您尾号1234的卡入账500元", "", "明天见"]
    results = policy.apply(predictor.classify(texts), texts, [None, "95588", "95588", None])
    assert results[0]["action"] == "block" and results[0]["reason"] == "blocklist:domain:etc-renz.cn"
    assert results[1]["action"] == "allow" and results[1]["reason"] == "allowlist:sender"
    assert results[2]["action"] is None and results[2]["reason"] == "" and results[2]["error"] == "empty text"
    assert results[3]["reason"].startswith("threshold:")
    assert results[3]["action"] == predictor.classify([texts[3]])[0]["action"], "thresholds alone: the predictor's action"


def test_policy_file_reloads_on_change_and_keeps_the_old_policy_when_broken(tmp_path):
    path = tmp_path / "policy.yaml"
    Policy.from_dict(LISTS).save(path)
    live = PolicyFile(path, check_every=0)
    assert live.current().allow_senders == {"95588", "95533"}
    changed = dict(LISTS, allowlist={"senders": ["10086"]})
    path.write_text(yaml.safe_dump(changed), encoding="utf-8")
    os.utime(path, ns=(1, 1))  # a new mtime even on coarse-grained file systems
    assert live.current().allow_senders == {"10086"}
    path.write_text("thresholds: {fraud: {block: 7}}\n", encoding="utf-8")
    os.utime(path, ns=(2, 2))
    assert live.current().allow_senders == {"10086"}, "an invalid file changes nothing"
    with pytest.raises(PolicyError, match="in \\[0, 1\\]"):
        live.reload()
    assert live.current().allow_senders == {"10086"}
