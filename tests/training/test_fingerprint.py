"""calibration.json belongs to its weights: the fingerprint and label list, checked by export."""
import json

import pytest

from training.fingerprint import CalibrationError, check_calibration, fingerprint, file_sha256


def _model(folder, weights=b"weights-1", labels=("normal", "spam", "fraud.loan")):
    folder.mkdir(exist_ok=True)
    (folder / "model.safetensors").write_bytes(weights)
    (folder / "config.json").write_text(json.dumps({"id2label": {str(i): l for i, l in enumerate(labels)}}))
    return folder


def test_fingerprint_is_the_weights_sha256_and_the_id2label_order(tmp_path):
    import hashlib

    folder = _model(tmp_path / "m")
    fp = fingerprint(folder)
    assert fp["weights_sha256"] == hashlib.sha256(b"weights-1").hexdigest() == file_sha256(folder / "model.safetensors")
    assert fp["labels"] == ["normal", "spam", "fraud.loan"]


def test_a_calibration_of_other_weights_labels_or_without_fingerprint_is_refused(tmp_path):
    folder = _model(tmp_path / "m")
    good = {"temperature": 1.2, "block_threshold": 0.97, **fingerprint(folder)}
    check_calibration(folder, good)
    with pytest.raises(CalibrationError, match=r"other weights.*fanzha evaluate .* DATA.*or delete"):
        check_calibration(folder, {**good, "weights_sha256": "0" * 64})
    with pytest.raises(CalibrationError, match=r"other labels.*fanzha evaluate"):
        check_calibration(folder, {**good, "labels": ["spam", "normal", "fraud.loan"]})
    with pytest.raises(CalibrationError, match=r"no weights fingerprint.*fanzha evaluate"):
        check_calibration(folder, {"temperature": 1.2, "block_threshold": 0.97})
    _model(folder, weights=b"weights-2")  # retrained in place
    with pytest.raises(CalibrationError, match="other weights"):
        check_calibration(folder, good)
