"""One file digest for every contract that names files by content: the serving artifact's
manifest (training/export.py, serving/integrity.py), the weights a calibration was fitted on
(training/fingerprint.py), the data manifest (training/examples.py) and the normalization table."""
from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
