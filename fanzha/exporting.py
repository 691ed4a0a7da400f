"""`fanzha export`: training/export.py with serving's certification plugged in.

training/ and serving/ never import each other (tests/test_layering.py); this package may import
both. `export(...)` is `training.export.export(..., certify=serving.certify.certify_variants)`:
each shipped CPU variant is certified on its own scores through serving's Predictor
(fanzha.json `certified`, policy `thresholds.fraud.block: certified`).
"""
from __future__ import annotations

import sys
from pathlib import Path

from serving.certify import certify_variants
from training import export as _export



def export(model_dir: Path, out: Path, *args, **kwargs) -> dict:
    kwargs.setdefault("certify", certify_variants)
    return _export.export(Path(model_dir), Path(out), *args, **kwargs)


def main(argv=None) -> int:
    return _export.main(argv, certify=certify_variants)


if __name__ == "__main__":
    sys.exit(main())
