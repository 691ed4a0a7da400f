"""fanzha's training layer: typed config, fine-tuning, evaluation, ONNX export.

Builds on `data/`; never imports `serving/` (and serving never imports this package).
"""
