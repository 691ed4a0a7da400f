"""Calibration and thresholds chosen on validation data: the math lives in data/calibration.py
(shared with serving/certify.py, which certifies each exported variant); re-exported here."""
from __future__ import annotations

from data.calibration import (CONFIDENCE, MAX_FPR, allowed_false_blocks, allowed_nll, block_figures,  # noqa: F401
                              block_threshold, certified_threshold_exists, expected_calibration_error,
                              fit_temperature, softmax)
