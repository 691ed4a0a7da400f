import numpy as np
import pytest
import torch

from data.encoding import prepare
from serving.predictor import RESULT_FIELDS, VARIANT_FILES, ArtifactError, Predictor

pytestmark = pytest.mark.slow
TEXTS = ["您的快递丢件了，客服为您理赔，请加微信 kf2211", "明天下午三点开会", "a", "验" * 500]


def test_predictor_matches_pytorch(tiny_model, tiny_serving):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from training.evaluate import predict_logits

    model = AutoModelForSequenceClassification.from_pretrained(tiny_model).eval()
    reference = predict_logits(model, AutoTokenizer.from_pretrained(tiny_model), TEXTS, 48)
    for variant in ("fp32", "opt"):  # the fp32 variants give PyTorch's numbers
        predictor = Predictor(tiny_serving, variant=variant)
        assert np.abs(predictor.logits([prepare(t, 48) for t in TEXTS]) - reference).max() < 1e-3, variant
    import json

    # the served temperature is the one certified for this variant on its own scores (fanzha.json)
    temperature = json.loads((tiny_serving / "fanzha.json").read_text())["certified"]["model.onnx"]["temperature"]
    probs = torch.softmax(torch.from_numpy(reference) / temperature, -1).numpy()
    predictor = Predictor(tiny_serving, variant="fp32")
    for result, p in zip(predictor.classify(TEXTS), probs):
        assert result["scores"][result["label"]] == pytest.approx(result["score"])
        fraud = sum(v for k, v in zip(predictor.labels, p) if k.startswith("fraud."))
        assert result["fraud_score"] == pytest.approx(fraud, abs=1e-4)
        assert list(result) == [*RESULT_FIELDS, "scores"]


def test_variants_by_short_name_file_name_and_default(tiny_serving):
    import json

    default = json.loads((tiny_serving / "fanzha.json").read_text())["default_variant"]
    assert Predictor(tiny_serving).variant == default
    reference = Predictor(tiny_serving, variant="model.onnx").classify(TEXTS)
    for short, file_name in VARIANT_FILES.items():
        if short == "fp16":
            continue  # GPUs
        predictor = Predictor(tiny_serving, variant=short)
        assert predictor.variant == file_name and predictor.info()["variant"] == file_name
        for got, want in zip(predictor.classify(TEXTS), reference):
            assert got["fraud_score"] == pytest.approx(want["fraud_score"], abs=0.02), short
    with pytest.raises(ArtifactError, match="variants here: .*model.int8.onnx"):
        Predictor(tiny_serving, variant="model.int4.onnx")


def test_bad_items_get_errors_and_keep_positions(tiny_serving):
    predictor = Predictor(tiny_serving)
    results = predictor.classify(["", None, 5, "\u200b\u200b", "好的，收到", "x" * 100_000])
    assert len(results) == 6
    assert [r["error"] for r in results[:4]] == ["empty text", "text must be a string, got NoneType",
                                                 "text must be a string, got int", "empty text"]
    assert all(list(r) == list(RESULT_FIELDS) and r["label"] is None for r in results[:4])
    assert results[4]["error"] == "" and results[4]["label"]
    assert results[5]["error"] == "" and results[5]["label"], "over-long texts are truncated, not refused"
    assert predictor.classify([]) == []
    assert predictor.logits([]).shape == (0, len(predictor.labels))


@pytest.mark.parametrize("variant, tolerance", [
    ("fp32", 1e-5), ("opt", 1e-5),
    # dynamic int8 quantizes activations with per-batch ranges: scores move a little with the batch
    ("int8", 2e-2),
])
def test_batched_equals_single(tiny_serving, variant, tolerance):
    predictor = Predictor(tiny_serving, batch_size=3, variant=variant)
    texts = [f"第{i}条消息" + "很长" * i for i in range(10)]
    together = predictor.classify(texts)
    alone = [predictor.classify([t])[0] for t in texts]
    for a, b in zip(together, alone):
        assert a["fraud_score"] == pytest.approx(b["fraud_score"], abs=tolerance)
        if variant != "int8":
            assert a["label"] == b["label"]
    without = predictor.classify(texts, with_scores=False)  # the same batches: the same answers
    assert [r["label"] for r in without] == [r["label"] for r in together] and "scores" not in without[0]


def test_missing_artifact_is_a_clear_error(tmp_path):
    with pytest.raises(ArtifactError, match="fanzha export"):
        Predictor(tmp_path)
