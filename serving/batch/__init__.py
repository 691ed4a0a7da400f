"""Batch scoring of message files: streaming and resumable (score.py, checkpoint.py), on Ray (ray_engine.py)."""
