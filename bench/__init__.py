"""Benchmarks (`make bench`): engines, the HTTP service under load, a transformers-pipeline peer.

    python -m bench.run --model artifacts/demo/model --serving artifacts/demo/serving
"""
