import numpy as np
import pytest
import torch

from serving.predictor import ArtifactError, Predictor

pytestmark = pytest.mark.slow


def test_predictor_matches_pytorch(tiny_model, tiny_serving):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from training.evaluate import predict_logits

    texts = ["您的快递丢件了，客服为您理赔，请加微信 kf2211", "明天下午三点开会", "a", "验" * 500]
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model).eval()
    reference = predict_logits(model, AutoTokenizer.from_pretrained(tiny_model), texts, 48)
    predictor = Predictor(tiny_serving)
    assert np.abs(predictor.logits([__import__("data.encoding").encoding.prepare(t, 48) for t in texts]) - reference).max() < 1e-3
    probs = torch.softmax(torch.from_numpy(reference), -1).numpy()
    for result, p in zip(predictor.classify(texts), probs):
        assert result["scores"][result["label"]] == pytest.approx(result["score"])
        fraud = sum(v for k, v in zip(predictor.labels, p) if k.startswith("fraud."))
        assert result["fraud_score"] == pytest.approx(fraud, abs=1e-4)


def test_bad_items_get_errors_and_keep_positions(tiny_serving):
    predictor = Predictor(tiny_serving)
    results = predictor.classify(["", None, 5, "\u200b\u200b", "好的，收到", "x" * 100_000])
    assert len(results) == 6
    assert [r["error"] for r in results[:4]] == ["empty text", "text must be a string, got NoneType",
                                                 "text must be a string, got int", "empty text"]
    assert results[4]["error"] == "" and results[4]["label"]
    assert results[5]["error"] == "" and results[5]["label"], "over-long texts are truncated, not refused"
    assert predictor.classify([]) == []


def test_batched_equals_single(tiny_serving):
    predictor = Predictor(tiny_serving, batch_size=3)
    texts = [f"第{i}条消息" + "很长" * i for i in range(10)]
    together = predictor.classify(texts)
    alone = [predictor.classify([t])[0] for t in texts]
    for a, b in zip(together, alone):
        assert a["label"] == b["label"] and a["fraud_score"] == pytest.approx(b["fraud_score"], abs=1e-5)


def test_missing_artifact_is_a_clear_error(tmp_path):
    with pytest.raises(ArtifactError, match="fanzha export"):
        Predictor(tmp_path)
