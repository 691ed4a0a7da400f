"""fanzha's serving layer: the ONNX predictor, decision policy, BentoML service, batch scoring.

Imports neither torch nor `datasets` (a serving image stays lean); builds on `data/` only.
"""
