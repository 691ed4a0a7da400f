"""The model lifecycle: the BentoML model store (registry.py) and what a new model does differently (diff.py)."""
