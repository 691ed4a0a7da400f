"""bench/null_model.py: a serving artifact over constant logits loads through the same
integrity check and predictor path as the real one, and decides nothing from the text."""
from bench.null_model import null_artifact
from serving.integrity import verify_artifact
from serving.predictor import Predictor


def test_null_artifact_is_served_like_the_real_one(tiny_serving, tmp_path):
    null = null_artifact(tiny_serving, tmp_path / "null")
    verify_artifact(null)  # the manifest matches the new files
    assert not (tmp_path / "null" / "model.onnx").read_bytes() == (tiny_serving / "model.onnx").read_bytes()
    predictor = Predictor(null)
    texts = ["您的ETC认证已失效，请点击 http://etc-rz.top/a8 重新认证", "好的", "验证码 482913" * 40]
    results = predictor.classify(texts)
    assert {r["label"] for r in results} == {"normal"} and {r["action"] for r in results} == {"allow"}
    assert len({round(r["fraud_score"], 6) for r in results}) == 1  # the same scores whatever the text
    assert predictor.info()["labels"] == Predictor(tiny_serving).info()["labels"]
