"""One decision engine, one policy: every path (`/classify`, `/chat` with its own chat model,
`fanzha score`, the chat bulk scorer) decides through `Predictor.classify` -> `Policy.apply` on the
same policy source, and a `certified` block threshold resolves to the served variant's own.

Each test here is a divergence the review found; each failed on the code before the fix."""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pandas as pd
import pytest
import yaml

from serving.chat.conversation import ConversationScorer, score_conversations
from serving.policy import Policy, PolicyError, PolicyFile
from serving.predictor import Predictor
from serving.batch.score import main as score_main
from tests.serving.conftest import start_server, stop_server

SCAM_LINK = "您的ETC认证已失效，请登录 etc-renz.cn 重新认证"
CHAT = [{"speaker": "a", "text": "您好，这里是客服中心"}, {"speaker": "b", "text": "什么事"},
        {"speaker": "a", "text": "请打开 etc-renz.cn 办理退款"}]


def resign(folder) -> None:
    """Recompute an artifact's manifest sums after a test edited its files on purpose."""
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    manifest["files"] = {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in manifest["files"]
                         if (folder / name).is_file()}
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def with_certified(src, dst, thresholds: dict[str, float], temperature: float = 1.0):
    """A copy of the artifact whose fanzha.json certifies `thresholds` (variant file -> threshold)."""
    shutil.copytree(src, dst)
    meta = json.loads((dst / "fanzha.json").read_text(encoding="utf-8"))
    meta["certified"] = {v: {**(meta.get("certified") or {}).get(v, {}), "temperature": temperature,
                             "block_threshold": t} for v, t in thresholds.items()}
    (dst / "fanzha.json").write_text(json.dumps(meta), encoding="utf-8")
    resign(dst)
    return dst


def write_policy(path, domains=(), block="certified", senders=(), on_block=None) -> None:
    allow = {"senders": list(senders), **({"on_block": on_block} if on_block else {})}
    path.write_text(yaml.safe_dump({"thresholds": {"fraud": {"flag": 0.5, "block": block}, "spam": {"flag": 0.8}},
                                    "allowlist": allow, "blocklist": {"domains": list(domains), "phones": []}}),
                    encoding="utf-8")


def test_certified_threshold_follows_the_served_variant(tiny_serving, tmp_path):
    art = with_certified(tiny_serving, tmp_path / "art", {"model.onnx": 0.97, "model.opt.onnx": 0.93}, temperature=2.0)
    policy = tmp_path / "policy.yaml"
    write_policy(policy)
    fp32, opt = Predictor(art, variant="fp32", policy=policy), Predictor(art, variant="opt", policy=policy)
    assert fp32.policy.thresholds["fraud"]["block"] == 0.97
    assert opt.policy.thresholds["fraud"]["block"] == 0.93
    assert fp32.info()["thresholds"]["fraud"]["block"] == 0.97  # /info reports what decides
    assert fp32.temperature == 2.0
    # a number in the file is an operator override for every model and variant
    write_policy(policy, block=0.8)
    assert Predictor(art, variant="fp32", policy=policy).policy.thresholds["fraud"]["block"] == 0.8


def test_certified_without_a_certificate_is_refused(tiny_serving, tmp_path):
    art = tmp_path / "art"
    shutil.copytree(tiny_serving, art)
    meta = json.loads((art / "fanzha.json").read_text(encoding="utf-8"))
    meta.pop("certified", None)
    (art / "fanzha.json").write_text(json.dumps(meta), encoding="utf-8")
    policy = tmp_path / "policy.yaml"
    write_policy(policy)
    with pytest.raises(PolicyError, match="no certified block threshold"):
        Predictor(art, policy=policy)


def test_a_reload_one_model_cannot_serve_keeps_the_old_policy(tiny_serving, tmp_path):
    art = with_certified(tiny_serving, tmp_path / "art", {})  # certifies nothing
    policy = tmp_path / "policy.yaml"
    write_policy(policy, block=0.9)
    source = PolicyFile(policy, check_every=0)
    predictor = Predictor(art, policy=source)
    write_policy(policy, block="certified")
    with pytest.raises(PolicyError):
        source.reload()
    assert predictor.policy.thresholds["fraud"]["block"] == 0.9
    assert predictor.classify(["你好"])[0]["action"] in ("allow", "flag", "block")


def test_allow_listed_sender_turns_a_block_into_a_flag(tiny_serving):
    everything_blocks = Policy.from_dict({"thresholds": {"fraud": {"block": 0.0}},
                                          "allowlist": {"senders": ["95588"]}})
    predictor = Predictor(tiny_serving, policy=everything_blocks)
    spoofed, other = predictor.classify([SCAM_LINK, SCAM_LINK], senders=["95588", "10690000"])
    assert (spoofed["action"], spoofed["reason"]) == ("flag", "allowlist:sender")
    assert (other["action"], other["reason"]) == ("block", "threshold:fraud.block")
    trusting = Policy.from_dict({"thresholds": {"fraud": {"block": 0.0}},
                                 "allowlist": {"senders": ["95588"], "on_block": "allow"}})
    assert Predictor(tiny_serving, policy=trusting).classify([SCAM_LINK], senders=["95588"])[0]["action"] == "allow"
    with pytest.raises(PolicyError, match="on_block"):
        Policy.from_dict({"allowlist": {"senders": [], "on_block": "block"}})


def test_every_path_gives_the_same_decision(tiny_serving, tmp_path):
    """The predictor, the chat scorer (newest turn matched) and `fanzha score` on one policy."""
    policy = tmp_path / "policy.yaml"
    write_policy(policy, domains=["etc-renz.cn"], block=0.9)
    direct = Predictor(tiny_serving, policy=policy).classify([SCAM_LINK])[0]
    assert (direct["action"], direct["reason"]) == ("block", "blocklist:domain:etc-renz.cn")
    chat = ConversationScorer(Predictor(tiny_serving, policy=policy)).score(CHAT)
    assert chat["turns"][2]["reason"] == "blocklist:domain:etc-renz.cn" and chat["detected_at_turn"] == 2
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    pd.DataFrame({"id": [1, 2], "text": [SCAM_LINK, "明天一起吃饭吗"]}).to_csv(src, index=False)
    assert score_main(["--model", str(tiny_serving), "--input", str(src), "--output", str(out),
                       "--policy", str(policy), "--quiet"]) == 0
    assert pd.read_csv(out)["action"].tolist()[0] == "block"
    convs, scored = tmp_path / "c.jsonl", tmp_path / "c.out.jsonl"
    convs.write_text(json.dumps({"id": "x", "turns": CHAT}, ensure_ascii=False) + "\n", encoding="utf-8")
    score_conversations(tiny_serving, convs, scored, policy=policy)
    assert json.loads(scored.read_text(encoding="utf-8"))["detected_at_turn"] == 2


def test_score_runs_the_integrity_check(tiny_serving, tmp_path, capsys):
    art = tmp_path / "art"
    shutil.copytree(tiny_serving, art)
    with open(art / "tokenizer.json", "a", encoding="utf-8") as f:
        f.write(" ")
    src = tmp_path / "in.csv"
    pd.DataFrame({"text": ["你好"]}).to_csv(src, index=False)
    assert score_main(["--model", str(art), "--input", str(src), "--output", str(tmp_path / "o.csv"), "--quiet"]) == 2
    assert "tokenizer.json" in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists()


def test_chat_scores_only_windows_it_has_not_seen(tiny_serving):
    scorer = ConversationScorer(Predictor(tiny_serving, variant="fp32"))
    fresh = ConversationScorer(Predictor(tiny_serving, variant="fp32"), cache_windows=0)
    first = scorer.score(CHAT[:2])
    misses = scorer.cache.misses
    assert misses == 2
    again = scorer.score(CHAT)  # a live call re-sends every turn
    assert scorer.cache.misses - misses == 1  # only the new turn's window ran through the model
    assert again["turns"][:2] == first["turns"]
    assert again == fresh.score(CHAT)  # the cache changes the cost, never the answer


def test_one_policy_file_reaches_classify_and_chat_model(tiny_serving, tmp_path):
    """A service with its own chat model: FANZHA_POLICY, its watcher and the admin reload reach
    /chat as they reach /classify; the chat model keeps its own certified threshold; /chat is
    admission-controlled: a busy /chat queues its calls (serving/admission.py), an overloaded one
    answers 503 at once, never another 5xx."""
    sms = with_certified(tiny_serving, tmp_path / "sms", {"model.opt.onnx": 0.95, "model.onnx": 0.95})
    chat_model = with_certified(tiny_serving, tmp_path / "chat", {"model.opt.onnx": 0.99, "model.onnx": 0.99})
    policy = tmp_path / "policy.yaml"
    write_policy(policy)
    proc, base = start_server(sms, {"FANZHA_CHAT_MODEL": str(chat_model), "FANZHA_POLICY": str(policy),
                                    "FANZHA_POLICY_CHECK_S": "0.2", "FANZHA_CHAT_MAX_CONCURRENCY": "1",
                                    "FANZHA_CHAT_MAX_QUEUE": "4",
                                    "FANZHA_API_KEY": "k"})
    auth = {"Authorization": "Bearer k"}
    try:
        info = httpx.get(base + "/info", headers=auth).json()
        assert info["thresholds"]["fraud"]["block"] == 0.95
        assert info["chat"]["thresholds"]["fraud"]["block"] == 0.99
        before = httpx.post(base + "/chat", json={"turns": CHAT}, headers=auth).json()
        assert before["turns"][2]["reason"].startswith("threshold:")
        write_policy(policy, domains=["etc-renz.cn"])  # an incident: block the domain, no restart
        deadline, chat, classify = time.time() + 10, None, None
        while time.time() < deadline:
            classify = httpx.post(base + "/classify", json={"texts": [SCAM_LINK]}, headers=auth).json()[0]
            chat = httpx.post(base + "/chat", json={"turns": CHAT}, headers=auth).json()
            if classify["reason"].startswith("blocklist") and chat["turns"][2]["reason"].startswith("blocklist"):
                break
            time.sleep(0.3)
        assert classify["reason"] == "blocklist:domain:etc-renz.cn"
        assert chat["turns"][2]["reason"] == "blocklist:domain:etc-renz.cn" and chat["detected_at_turn"] == 2
        write_policy(policy)  # back, through the admin endpoint this time
        assert httpx.post(base + "/admin/reload-policy", headers=auth).status_code == 200
        assert httpx.post(base + "/chat", json={"turns": CHAT}, headers=auth).json()["turns"][2]["reason"] \
            .startswith("threshold:")
        def post(k):  # distinct calls: nothing to reuse from the window cache
            turns = [{"speaker": i % 2, "text": f"第{k}通第{i}句：请把验证码告诉我，账户{i}需要验证"} for i in range(400)]
            return httpx.post(base + "/chat", json={"turns": turns}, headers=auth, timeout=60).status_code

        with ThreadPoolExecutor(4) as pool:  # busy, not overloaded: one scored, three waiting, all answered
            codes = list(pool.map(post, range(4)))
        assert codes == [200] * 4, codes
        # overloaded: while one long call is scored and four wait, a further call is answered 503 at
        # once. The long call (the most turns /chat takes, long texts) holds the one place for
        # seconds, so eleven calls sent meanwhile overflow the queue whatever the machine's speed
        # (twelve equal calls in parallel could all fit: some finished before the last arrived)
        long_turns = [{"speaker": i % 2, "text": f"第{i}句：" + "请把银行卡验证码告诉我，您的账户需要马上验证，否则会被冻结。" * 6}
                      for i in range(512)]
        with ThreadPoolExecutor(12) as pool:
            long_call = pool.submit(lambda: httpx.post(base + "/chat", json={"turns": long_turns}, headers=auth,
                                                       timeout=120).status_code)
            time.sleep(0.3)
            codes = list(pool.map(post, range(100, 111)))
        assert long_call.result() == 200
        assert set(codes) <= {200, 503} and 503 in codes and 200 in codes, codes
    finally:
        stop_server(proc)
