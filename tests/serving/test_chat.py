"""serving/chat/conversation.py and serving/chat/evaluate.py on the tiny real model: prefixes scored as in training,
risk and detection turn, bulk scoring, POST /chat on a real `bentoml serve`, the evaluation report."""
from __future__ import annotations

import json
import shutil

import httpx
import numpy as np
import pytest

from data.conversations import model_inputs
from serving.chat.conversation import ConversationScorer, score_conversations
from serving.integrity import IntegrityError
from serving.policy import Policy
from serving.predictor import Predictor

SCAM = [{"speaker": "caller", "text": "您好，我是公安局民警，您的银行卡涉嫌洗钱"},
        {"speaker": "me", "text": "啊？怎么回事"},
        {"speaker": "caller", "text": "请立即把资金转到安全账户，并告诉我验证码"},
        {"speaker": "me", "text": "好的"}]


def scorer_with(artifact, block: float) -> ConversationScorer:
    # fp32: int8's dynamic quantization scales activations per batch, so its scores move slightly
    # with what else is in the batch; fp32 gives the same number for a window alone or batched.
    policy = Policy(thresholds={"fraud": {"flag": min(0.5, block), "block": block}})
    return ConversationScorer(Predictor(artifact, variant="fp32", policy=policy))


def test_every_prefix_scored_as_in_training(tiny_serving):
    scorer = scorer_with(tiny_serving, 0.9)
    result = scorer.score(SCAM)
    windows = model_inputs(SCAM, scorer.predictor.meta.max_length, scorer.window, scorer.anchor)
    alone = [scorer.predictor.classify([w], with_scores=False)[0] for w in windows]
    assert [t["turn"] for t in result["turns"]] == [0, 1, 2, 3]
    assert np.allclose([t["fraud_score"] for t in result["turns"]], [r["fraud_score"] for r in alone], atol=1e-5)
    assert result["risk"] == max(t["fraud_score"] for t in result["turns"])  # max over prefixes
    assert result["turns"][result["riskiest_turn"]]["fraud_score"] == result["risk"]


@pytest.mark.parametrize("block, expected", [(0.0, 0), (1.0, None)])
def test_detected_at_turn_is_the_first_blocked_prefix(tiny_serving, block, expected):
    result = scorer_with(tiny_serving, block).score(SCAM)
    assert result["detected_at_turn"] == expected
    assert result["action"] == ("block" if expected is not None else max(
        (t["action"] for t in result["turns"]), key=["allow", "flag", "block"].index))


def test_threshold_between_prefix_scores(tiny_serving):
    scores = [t["fraud_score"] for t in scorer_with(tiny_serving, 0.9).score(SCAM)["turns"]]
    middle = sorted(set(scores))[len(set(scores)) // 2]
    result = scorer_with(tiny_serving, middle).score(SCAM)
    assert result["detected_at_turn"] == next(i for i, s in enumerate(scores) if s >= middle)


def test_empty_turns_are_left_out_of_the_windows(tiny_serving):
    scorer = scorer_with(tiny_serving, 0.9)
    with_gap = SCAM[:2] + [{"speaker": "me", "text": "  \u200b "}] + SCAM[2:]
    gap, plain = scorer.score(with_gap), scorer.score(SCAM)
    assert gap["turns"][2]["error"] == "empty text" and gap["turns"][2]["fraud_score"] is None
    assert gap["turns"][3]["fraud_score"] == pytest.approx(plain["turns"][2]["fraud_score"], abs=1e-6)
    assert scorer.score([{"speaker": "a", "text": ""}])["error"] == "no turn with text"


@pytest.mark.parametrize("turns", [[], None, [{"speaker": "a"}], ["just a string"]])
def test_invalid_conversations_get_an_error(tiny_serving, turns):
    result = scorer_with(tiny_serving, 0.9).score(turns)
    assert result["error"] and result["risk"] is None


def test_window_size_comes_from_the_artifact(tiny_serving, tmp_path, monkeypatch):
    copy = tmp_path / "chat"
    shutil.copytree(tiny_serving, copy)
    meta = json.loads((copy / "fanzha.json").read_text())
    # export writes the chat window and anchor into fanzha.json `input` (tests/test_artifact_contract.py)
    (copy / "fanzha.json").write_text(json.dumps({**meta, "input": {**meta["input"], "chat": {"window": 2, "anchor": 0}}}))
    scorer = ConversationScorer(Predictor(copy))
    assert (scorer.window, scorer.anchor) == (2, 0)
    fallback = Predictor(tiny_serving)
    monkeypatch.delenv("FANZHA_CHAT_MODEL", raising=False)
    assert ConversationScorer.from_env(fallback).predictor is fallback
    monkeypatch.setenv("FANZHA_CHAT_MODEL", str(copy))  # fanzha.json no longer matches its manifest
    with pytest.raises(IntegrityError, match="fanzha.json"):
        ConversationScorer.from_env(fallback)


def test_bulk_scoring_keeps_every_line_in_order(tiny_serving, tmp_path):
    from serving.batch.score import main as score_main

    src = tmp_path / "in.jsonl"
    src.write_text("\n".join([json.dumps({"id": "scam", "turns": SCAM}, ensure_ascii=False), "{not json",
                              json.dumps({"id": 7}), json.dumps({"id": "one", "turns": SCAM[:1]}, ensure_ascii=False)]),
                   encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert score_main(["--chat", "--model", str(tiny_serving), "--input", str(src), "--output", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["scam", None, 7, "one"]
    assert all(set(r) == {"id", "label", "category", "fraud_score", "action", "detected_at_turn", "error"} for r in rows)
    assert rows[0]["error"] == "" and rows[0]["fraud_score"] is not None
    assert rows[1]["error"].startswith("invalid JSON") and rows[2]["error"] and rows[3]["error"] == ""
    fp32 = Predictor(tiny_serving, variant="fp32")
    score_conversations(fp32, src, out)
    direct = ConversationScorer(fp32).score(SCAM)
    first = json.loads(out.read_text(encoding="utf-8").splitlines()[0])
    assert first["fraud_score"] == pytest.approx(direct["risk"], abs=1e-5)
    assert first["detected_at_turn"] == direct["detected_at_turn"]
    with pytest.raises(ValueError, match="JSONL"):
        score_conversations(tiny_serving, src, tmp_path / "out.csv")


def test_http_chat_endpoint(server, tiny_serving):
    r = httpx.post(server + "/chat", json={"turns": SCAM}, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) >= {"risk", "label", "category", "action", "detected_at_turn", "turns"}
    assert len(body["turns"]) == len(SCAM) and body["action"] in ("allow", "flag", "block")
    direct = ConversationScorer(Predictor(tiny_serving)).score(SCAM)  # the server falls back to its model
    assert body["risk"] == pytest.approx(direct["risk"], abs=1e-5)
    assert body["detected_at_turn"] == direct["detected_at_turn"]
    for bad in ({"turns": []}, {"turns": [{"text": 3}]}, {"turns": [{"speaker": "a", "text": "x", "extra": 1}]}):
        assert httpx.post(server + "/chat", json=bad, timeout=30).status_code == 400


def test_chat_eval_report(tiny_serving, tmp_path):
    from data.conversations import build
    from serving.chat.evaluate import main as eval_main
    from tests.data.test_conversations import write_sources

    data = tmp_path / "chat"
    build(data, root=write_sources(tmp_path / "src", extra_dialogues=60), max_length=48)
    artifact = tmp_path / "serving"
    shutil.copytree(tiny_serving, artifact)  # --calibrate writes policy.yaml
    out = tmp_path / "report.html"
    assert eval_main(["--model", str(artifact), "--data", str(data), "--out", str(out), "--calibrate"]) == 0
    report = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    test = report["test"]
    assert {"precision", "recall", "f1", "false_alarm_rate", "median_detection_turn",
            "median_detection_fraction"} <= set(test)
    assert test["conversations"] == test["fraud"] + test["normal"] > 0
    threshold = report["settings"]["block_threshold"]
    assert Policy.load(artifact / "policy.yaml").thresholds["fraud"]["block"] == threshold
    # The real value, recomputed here from the validation conversations: the lowest threshold of the
    # grid whose false-alarm rate on normal conversations is within the 0.5 % budget (the top of
    # the grid only when none is).
    from serving.chat.evaluate import GRID

    scorer = ConversationScorer(Predictor(tiny_serving))
    lines = (data / "conversations_validation.jsonl").read_text(encoding="utf-8").splitlines()
    validation = [json.loads(line) for line in lines if line.strip()]
    normal = [c for c in validation if c["label"].split(".", 1)[0] != "fraud"]
    assert normal, "the validation set has normal conversations to measure false alarms on"
    peaks = [max((t["fraud_score"] for t in scorer.score(c["turns"])["turns"] if t["fraud_score"] is not None),
                 default=float("-inf")) for c in normal]

    def false_alarm_rate(t: float) -> float:
        return sum(p >= np.float32(t) for p in peaks) / len(normal)

    within = [float(t) for t in GRID if false_alarm_rate(t) <= 0.005]
    assert threshold == pytest.approx(min(within) if within else float(GRID[-1]), abs=1e-9)
    if within:
        assert false_alarm_rate(threshold) <= 0.005
    page = out.read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") >= 2 and "http://" not in page and "https://" not in page
