"""What a calibration or an evaluation was computed on: a fingerprint of the model's weights and
its label list, recorded in MODEL/calibration.json and MODEL/eval/report.json, and checked by
`fanzha export` before it uses a calibration.json.

The fingerprint is the sha256 of the weight file (`model.safetensors`; with several weight
files, the sha256 of their sorted `name sha256` lines), and the labels are config.json's
id2label in id order.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from data.digest import sha256_file

WEIGHT_PATTERNS = ("*.safetensors", "*.bin")


class CalibrationError(ValueError):
    """MODEL/calibration.json does not belong to the model's weights."""


file_sha256 = sha256_file  # data/digest.py


def weight_files(model_dir: Path) -> list[Path]:
    model_dir = Path(model_dir)
    return sorted({p for pattern in WEIGHT_PATTERNS for p in model_dir.glob(pattern) if p.is_file()})


def model_labels(model_dir: Path) -> list[str]:
    """config.json id2label, in id order."""
    id2label = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))["id2label"]
    return [id2label[k] for k in sorted(id2label, key=int)]


def weights_sha256(model_dir: Path) -> str:
    files = weight_files(model_dir)
    if not files:
        raise FileNotFoundError(f"{model_dir}: no weight files ({', '.join(WEIGHT_PATTERNS)})")
    if len(files) == 1:
        return file_sha256(files[0])
    return hashlib.sha256("".join(f"{p.name} {file_sha256(p)}\n" for p in files).encode()).hexdigest()


def fingerprint(model_dir: Path) -> dict:
    """{"weights_sha256", "weight_files", "labels"} of a model artifact folder."""
    return {"weights_sha256": weights_sha256(model_dir), "weight_files": [p.name for p in weight_files(model_dir)],
            "labels": model_labels(model_dir)}


def check_calibration(model_dir: Path, calibration: dict, path: Path | None = None) -> None:
    """Raise CalibrationError (one line: what is wrong, what to run) unless `calibration` was
    fitted on exactly these weights and labels."""
    model_dir = Path(model_dir)
    path = path or model_dir / "calibration.json"
    fix = f"run `fanzha evaluate {model_dir} DATA` to refit it, or delete {path}"
    if "weights_sha256" not in calibration or "labels" not in calibration:
        raise CalibrationError(f"{path} records no weights fingerprint (written by an older fanzha evaluate), so it "
                               f"cannot be tied to these weights; {fix}")
    actual = fingerprint(model_dir)
    if calibration["weights_sha256"] != actual["weights_sha256"]:
        raise CalibrationError(f"{path} was fitted on other weights (sha256 {calibration['weights_sha256'][:12]}…, "
                               f"the model's are {actual['weights_sha256'][:12]}…); {fix}")
    if list(calibration["labels"]) != actual["labels"]:
        raise CalibrationError(f"{path} was fitted on other labels ({len(calibration['labels'])} classes, "
                               f"not the model's config.json id2label); {fix}")
