"""`certify_legit: sms` (issue 19): the SMS threshold is certified on SMS-like legitimate rows,
/chat's on the legitimate chat utterances, and every path decides with the one its channel was
certified for: /classify and `fanzha score` the SMS threshold, /chat and `score --chat` the chat
one (`Predictor.policy_for`), both through `Policy.apply`."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from data.synth import generate
from tests.conftest import fraud_like_legit_chat
from serving.certify import certify_variants
from serving.chat.conversation import ConversationScorer
from serving.predictor import Predictor

pytestmark = pytest.mark.slow
MAX_FPR = 0.01  # a budget this small validation set can certify (0.1 % needs ~3,000 legitimate rows)


@pytest.fixture(scope="module")
def rows(tiny_serving_better):
    synthetic = generate(900, seed=5)
    fraud = [r for r in synthetic if r["label"].startswith("fraud")]
    # victims' turns and talk about scams: legitimate chat utterances that read like fraud
    chat = fraud_like_legit_chat(tiny_serving_better.parent / "model", synthetic)
    return synthetic + chat, fraud


@pytest.fixture(scope="module")
def certified(tiny_serving_better, rows, tmp_path_factory):
    validation, _ = rows
    variant = json.loads((tiny_serving_better / "fanzha.json").read_text(encoding="utf-8"))["default_variant"]
    variant = {"fp32": "model.onnx", "opt": "model.opt.onnx", "int8": "model.int8.onnx"}.get(variant, variant)
    sms = certify_variants(tiny_serving_better, [variant], validation, legit="sms", max_fpr=MAX_FPR)["certified"][variant]
    everything = certify_variants(tiny_serving_better, [variant], validation, legit="all", max_fpr=MAX_FPR)["certified"][variant]
    folder = tmp_path_factory.mktemp("certified") / "serving"
    shutil.copytree(tiny_serving_better, folder)
    meta = json.loads((folder / "fanzha.json").read_text(encoding="utf-8"))
    meta["certified"] = {variant: sms}
    (folder / "fanzha.json").write_text(json.dumps(meta), encoding="utf-8")
    return sms, everything, folder


def test_the_sms_threshold_is_fitted_without_chat_utterances(certified):
    sms, everything, _ = certified
    assert sms["legit"] == "sms" and everything["legit"] == "all" and "chat_block_threshold" not in everything
    # /chat's threshold is fitted on the legitimate chat turns alone, so the budget holds on that
    # channel: fitted on every legitimate row, the easy SMS rows diluted it
    assert sms["chat_legit"] == "chat"
    at_chat = sms["validation_chat_rows_at_chat_threshold"]
    assert at_chat["legit_rows"] == 150 and at_chat["false_block_rate"] <= MAX_FPR, at_chat
    assert sms["chat_block_threshold"] >= everything["block_threshold"]
    assert sms["block_threshold"] < sms["chat_block_threshold"]  # fraud-like chat turns no longer set it
    assert sms["validation"]["legit_rows"] < everything["validation"]["legit_rows"]
    assert sms["validation"]["blocked_fraud_recall"] > everything["validation"]["blocked_fraud_recall"]
    assert sms["validation"]["clopper_pearson_bound_holds"]
    assert sms["validation_chat_rows"]["legit_rows"] == 150  # what the SMS threshold would do to chat: reported
    # the chat threshold, at least as strict as the all-rows one, blocks no more of any legitimate row
    assert sms["validation_all_legit_at_chat_threshold"]["false_block_rate"] <= everything["validation"]["false_block_rate"]


def test_each_channel_decides_with_its_own_certified_threshold(certified, rows):
    sms, _, folder = certified
    predictor = Predictor(folder)
    scores = np.array([r["fraud_score"] for r in predictor.classify([f["text"] for f in rows[1]], with_scores=False)])
    between = [f["text"] for f, s in zip(rows[1], scores)
               if sms["block_threshold"] <= s < sms["chat_block_threshold"]]
    assert between, "no fraud message between the two thresholds"
    as_sms = predictor.classify(between[:5])
    as_chat = predictor.classify(between[:5], channel="chat")
    assert {(r["action"], r["reason"]) for r in as_sms} == {("block", "threshold:fraud.block")}
    assert all(r["action"] != "block" for r in as_chat)
    # /chat's scorer decides each window on the chat threshold: block exactly from it up
    for text in between[:5] + [f["text"] for f in rows[1][:20]]:
        conversation = ConversationScorer(predictor).score([{"speaker": "caller", "text": text}])
        risk = conversation["risk"]
        assert (conversation["action"] == "block") == (np.float32(risk) >= np.float32(sms["chat_block_threshold"])), \
            (risk, conversation["action"])
    info = predictor.info()
    assert info["thresholds"]["fraud"]["block"] == pytest.approx(sms["block_threshold"])
    assert info["chat_thresholds"]["fraud"]["block"] == pytest.approx(sms["chat_block_threshold"])


def test_the_gate_judges_chat_golden_rows_on_the_chat_certificate(certified, rows):
    """A golden row from a chat source is judged as /chat decides it, not on the SMS threshold."""
    from serving.lifecycle.gate import channel_of, score

    sms, _, folder = certified
    predictor = Predictor(folder)
    texts = [f["text"] for f in rows[1]]
    scores = np.array([r["fraud_score"] for r in predictor.classify(texts, with_scores=False)])
    between = [t for t, s in zip(texts, scores) if sms["block_threshold"] <= s < sms["chat_block_threshold"]][:6]
    assert between
    golden = [{"source": "spam80w"}, {"source": "golfxiao_dialogs"}] * (len(between) // 2) + [{"source": "synthetic"}] * (len(between) % 2)
    channels = [channel_of(r) for r in golden]
    actions = score(predictor, between, 4, "test", channels)
    for action, channel in zip(actions, channels):
        assert (action == "block") == (channel == "sms"), (action, channel)
