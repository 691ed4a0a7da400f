"""The BentoML service: a thin shell around `serving.predictor.Predictor`.

    FANZHA_MODEL=artifacts/demo/serving bentoml serve serving.service:Fanzha --port 3000
    # or: fanzha serve --model artifacts/demo/serving

Endpoints: `POST /classify` {"texts": [...]} (adaptive batching), `GET /info`, and BentoML's
`/healthz`, `/livez`, `/readyz` (ready only after the model loaded and a warm-up inference
ran) and `/metrics` (Prometheus).
"""
from __future__ import annotations

import os

import bentoml
from fastapi import FastAPI
from pydantic import Field

from serving.predictor import Predictor

# Adaptive batching for SMS: a batch waits at most a few ms for company, never the 60 s default.
MAX_BATCH_SIZE = int(os.environ.get("FANZHA_MAX_BATCH_SIZE", "64"))
MAX_LATENCY_MS = int(os.environ.get("FANZHA_MAX_LATENCY_MS", "20"))
THREADS = int(os.environ.get("FANZHA_THREADS", "0")) or None

info_app = FastAPI(title="fanzha info")


def model_dir() -> str:
    path = os.environ.get("FANZHA_MODEL")
    if not path:
        raise RuntimeError("set FANZHA_MODEL to a serving artifact folder (output of `fanzha export`)")
    return path


@bentoml.service(name="fanzha", workers=1, traffic={"timeout": 30})
@bentoml.asgi_app(info_app, path="/")
class Fanzha:
    def __init__(self) -> None:
        self.predictor = Predictor(model_dir(), threads=THREADS)
        self.predictor.classify(["预热：您的验证码是123456。", "warm-up"])  # first inference allocates buffers
        self.ready = True

    def __is_ready__(self) -> bool:
        return getattr(self, "ready", False)

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH_SIZE, max_latency_ms=MAX_LATENCY_MS)
    def classify(self, texts: list[str] = Field(..., min_length=1, description="messages to classify")) -> list[dict]:
        """Classify messages: one result per text (label, category, score, fraud_score,
        spam_score, action, error, scores)."""
        return self.predictor.classify(texts)

    @info_app.get("/info")
    def info(self) -> dict:
        """Model name, version, labels and decision thresholds."""
        return self.predictor.info()
