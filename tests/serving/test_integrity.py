"""Serving artifacts are checked against manifest.json before anything loads them."""
import json
import shutil

import pytest

from serving.integrity import IntegrityError, main as integrity_main, verify_artifact

pytestmark = pytest.mark.slow


@pytest.fixture
def artifact(tiny_serving, tmp_path):
    copy = tmp_path / "serving"
    shutil.copytree(tiny_serving, copy)
    return copy


def test_an_exported_artifact_passes(artifact, capsys):
    manifest = verify_artifact(artifact)
    assert "model.onnx" in manifest["files"]
    assert integrity_main([str(artifact)]) == 0 and "ok:" in capsys.readouterr().out


@pytest.mark.parametrize("tamper, message", [
    (lambda a: (a / "model.onnx").write_bytes((a / "model.onnx").read_bytes() + b"\0"), "model.onnx: sha256 differs"),
    (lambda a: (a / "tokenizer.json").unlink(), "tokenizer.json: missing"),
    (lambda a: (a / "manifest.json").unlink(), "no manifest.json"),
    (lambda a: (a / "manifest.json").write_text("{not json"), "unreadable manifest"),
    (lambda a: (a / "weights.pkl").write_bytes(b"\x80\x04"), "weights.pkl: pickle-format file"),
    (lambda a: shutil.copy(a / "model.onnx", a / "model.extra.onnx"), "model.extra.onnx: ONNX model not listed"),
])
def test_tampered_artifacts_are_refused(artifact, tamper, message, capsys):
    tamper(artifact)
    with pytest.raises(IntegrityError, match=message):
        verify_artifact(artifact)
    assert integrity_main([str(artifact)]) == 1 and message.split(":")[0] in capsys.readouterr().err


def test_policy_yaml_is_configuration_not_checked(artifact):
    (artifact / "policy.yaml").write_text("thresholds: {fraud: {block: 0.99}}\n", encoding="utf-8")
    verify_artifact(artifact)
    manifest = json.loads((artifact / "manifest.json").read_text(encoding="utf-8"))
    assert "policy.yaml" in manifest["files"], "export still records it"
