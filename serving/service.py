"""The BentoML service: a thin shell around `serving.screening.Screener` (predictor + policy).

    FANZHA_MODEL=artifacts/demo/serving bentoml serve serving.service:Fanzha --port 3000
    FANZHA_MODEL_TAG=fanzha-demo:20250101120000-1a2b3c4d bentoml serve serving.service:Fanzha
    # or: fanzha serve --model artifacts/demo/serving;  a Bento: make bento (README)

Endpoints: `POST /classify` {"texts": [text | {"text": ..., "sender": ...}, ...]} (adaptive
batching), `GET /info`, `POST /admin/reload-policy` (API key), BentoML's `/healthz`, `/livez`,
`/readyz` (ready only after the artifact passed its integrity check, the model loaded and a
warm-up inference ran), `/metrics` (Prometheus, serving/metrics.py) and `/docs.json` (OpenAPI).

Batching — measured, then chosen: `/classify` is a plain async API that validates the request
(pydantic item models and `Field(min_length, max_length)`: 400 with the item's position) and
hands its items to `serving.batcher.Batcher`, which batches concurrent requests onto one
inference thread. BentoML's own `batchable=True` dispatcher was the first version; on the tiny
model (2 cores, sequential single SMS over HTTP, one server at a time, 3 rounds) it gave p50
2.8-3.2 ms against 2.1-2.4 ms now, and under concurrent load it answered 503 to 14-85 % of
the requests and kept lone SMS waiting ~20 ms after a burst (details in serving/batcher.py).
`serving.security.Gatekeeper` (ASGI middleware) does auth, the body limit and the content type
before anything is parsed; per-item problems (empty text, ...) come back as that item's `error`.

Settings (env): FANZHA_MODEL (artifact folder) or FANZHA_MODEL_TAG / bento argument
`model_tag` (pinned BentoML model tag); FANZHA_POLICY (policy file, default the artifact's
policy.yaml; re-read when it changes, checked every FANZHA_POLICY_CHECK_S=1 s);
FANZHA_MAX_QUEUE=4096; FANZHA_CHAT_MAX_CONCURRENCY=4 (`/chat` requests scored at once; more
are answered 503 at once); speed settings (batch size, workers, threads) in serving/tuning.py; limits in
serving/api_models.py, auth and body size in serving/security.py, logs in serving/audit.py.

A new endpoint (e.g. `/chat`) is one more `@bentoml.api` method using `self.batcher` (shares the
batches), `self.screener` or `self.predictor`; the gate, metrics and OpenAPI document cover it
without other changes.
"""
from __future__ import annotations

import asyncio
import os
from typing import Annotated

import bentoml
from bentoml.exceptions import ServiceUnavailable
from bentoml.validators import ContentType
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import Field

from serving import tuning
from serving.api_models import MAX_SENDER_CHARS, MAX_TEXTS, Item, Result
from serving.audit import DecisionLog
from serving.batcher import Batcher, Overloaded, sms_length
from serving.chat.conversation import MAX_TURNS, ChatResult, ConversationScorer, Turn
from serving.integrity import verify_artifact
from serving.metrics import LATENCY_BUCKETS, service_metrics
from serving.policy import PolicyError, PolicyFile
from serving.predictor import ArtifactError, Predictor
from serving.lifecycle.registry import artifact_dir, pinned
from serving.screening import Screener
from serving.security import Gatekeeper, GateSettings, redact_validation_logs

# Adaptive batching (serving/batcher.py): up to tuning.MAX_BATCH_SIZE messages per model call;
# more than MAX_QUEUE messages waiting is an overload answered with 503 at once.
MAX_QUEUE = int(os.environ.get("FANZHA_MAX_QUEUE", "4096"))
CHAT_MAX_CONCURRENCY = int(os.environ.get("FANZHA_CHAT_MAX_CONCURRENCY", "4"))
MODEL_TAG = os.environ.get("FANZHA_MODEL_TAG") or getattr(bentoml.use_arguments(), "model_tag", None)
WARM_UP = ["预热：您的验证码是123456。", "warm-up"]

info_app = FastAPI(title="fanzha info", docs_url=None, redoc_url=None, openapi_url=None)
redact_validation_logs()


def model_dir() -> str:
    path = os.environ.get("FANZHA_MODEL")
    if not path:
        raise ArtifactError("set FANZHA_MODEL to a serving artifact folder (output of `fanzha export`) "
                            "or FANZHA_MODEL_TAG to a registered model (`fanzha register`)")
    return path


def checked_artifact() -> str | None:
    """The artifact folder, integrity-checked — at import, so that `bentoml serve` (which imports
    this module before starting workers) exits with the reason instead of respawning a worker
    that fails every 10 s. None when no model is configured (importing for docs or tests)."""
    if not (MODEL_TAG or os.environ.get("FANZHA_MODEL")):
        return None
    folder = str(artifact_dir(MODEL_TAG)) if MODEL_TAG else model_dir()
    verify_artifact(folder)
    return folder


ARTIFACT = checked_artifact()


@bentoml.service(name="fanzha", workers=tuning.WORKERS, traffic={"timeout": 30},
                 metrics={"enabled": True, "duration": {"buckets": list(LATENCY_BUCKETS)}})
@bentoml.asgi_app(info_app, path="/")
class Fanzha:
    # A pinned model reference makes `bentoml build` pack that model into the Bento.
    model_ref = bentoml.models.BentoModel(pinned(MODEL_TAG)) if MODEL_TAG else None

    def __init__(self) -> None:
        folder = ARTIFACT or model_dir()
        # One policy file for every model this service holds: the watcher and the admin reload
        # reach /classify and /chat alike (each model resolves `certified` to its own threshold).
        self.policy_file = PolicyFile(os.environ.get("FANZHA_POLICY") or os.path.join(folder, "policy.yaml"),
                                      check_every=float(os.environ.get("FANZHA_POLICY_CHECK_S", "1")))
        self.predictor = Predictor(folder, policy=self.policy_file)  # threads, spinning, variant: serving/tuning.py
        self.metrics = service_metrics()
        self.screener = Screener(self.predictor, None, DecisionLog.from_env(), self.metrics)
        self.batcher = Batcher(self.screener.screen, tuning.MAX_BATCH_SIZE, MAX_QUEUE, max_batch_tokens=tuning.MAX_BATCH_TOKENS, length=sms_length(self.predictor.meta.max_length))
        self.chat_scorer = ConversationScorer.from_env(self.predictor)  # /chat: FANZHA_CHAT_MODEL, else this model
        self.chat_in_flight = 0  # /chat calls being scored (changed on the event loop only)
        self.predictor.classify(WARM_UP)  # first inference allocates buffers; not counted or logged
        self.ready = True

    def __is_ready__(self) -> bool:
        return getattr(self, "ready", False)

    @bentoml.on_shutdown
    def close(self) -> None:
        """After in-flight requests finished (SIGTERM drains them): stop the batch loop, close the audit log."""
        self.batcher.close()
        self.screener.log.close()

    @bentoml.api
    async def classify(self, texts: list[Item] = Field(..., min_length=1, max_length=MAX_TEXTS,
                                                       description="messages: a string, or {\"text\": ..., \"sender\": ...}")
                       ) -> Annotated[list[Result], ContentType("application/json")]:
        """Classify messages: one result per item, in order (label, category, score, fraud_score,
        spam_score, action, reason, error, scores)."""
        # The explicit ContentType matters for speed: without it BentoML regenerates the JSON
        # schema of list[Result] on every response to pick the media type (~0.9 ms per request).
        try:
            return await self.batcher.submit(texts)
        except Overloaded as e:
            raise ServiceUnavailable(str(e)) from None

    # --- /chat: conversation-aware scoring (serving/chat/conversation.py, issue #7) ---------------------------
    @bentoml.api
    async def chat(self, turns: list[Turn] = Field(..., min_length=1, max_length=MAX_TURNS,
                                             description="the conversation so far, oldest first: {\"speaker\", \"text\"}")
             ) -> Annotated[ChatResult, ContentType("application/json")]:
        """Risk of a chat or call so far: risk (max fraud score over its prefixes), label, category,
        action, detected_at_turn (first turn blocked, or null) and each turn's result."""
        # Admission control on the event loop, before any work: a full service answers 503 now
        # instead of queueing calls without bound; the scoring itself runs on a worker thread.
        if self.chat_in_flight >= CHAT_MAX_CONCURRENCY:
            raise ServiceUnavailable(f"too many /chat requests in flight (FANZHA_CHAT_MAX_CONCURRENCY="
                                     f"{CHAT_MAX_CONCURRENCY}); retry")
        self.chat_in_flight += 1
        try:
            return await asyncio.to_thread(self.chat_scorer.score, turns)
        finally:
            self.chat_in_flight -= 1
    # --- end /chat ------------------------------------------------------------------------------

    @info_app.get("/info")
    def info(self) -> dict:
        """Model name, version, labels, decision thresholds, policy and request limits."""
        gate = GateSettings.from_env()
        chat = self.chat_scorer.predictor
        return {**self.predictor.info(),
                "chat": {"model": "this model" if chat is self.predictor else str(chat.folder),
                         "variant": chat.variant, "thresholds": chat.policy.to_dict()["thresholds"],
                         "window": self.chat_scorer.window, "anchor": self.chat_scorer.anchor,
                         "max_concurrency": CHAT_MAX_CONCURRENCY},
                "policy": {**self.policy_file.policy.summary(), "source": str(self.policy_file.path),
                           "loaded_at": self.policy_file.loaded_at},
                "limits": {"max_texts": MAX_TEXTS, "max_sender_chars": MAX_SENDER_CHARS,
                           "max_body_bytes": gate.max_body_bytes, "auth": gate.api_key is not None},
                "batching": {"max_batch_size": tuning.MAX_BATCH_SIZE, "max_queue": MAX_QUEUE, "workers": tuning.WORKERS},
                "model_tag": MODEL_TAG}

    @info_app.post("/admin/reload-policy")
    def reload_policy(self):
        """Re-read the policy file now (the API key is required); an invalid file changes nothing."""
        try:
            policy = self.policy_file.reload()  # every model's check runs first (PolicyFile.checks)
        except PolicyError as e:
            self.metrics.reloads.labels("invalid").inc()
            return JSONResponse({"error": str(e), "reloaded": False}, status_code=422)
        self.metrics.reloads.labels("ok").inc()
        return {"reloaded": True, "policy": policy.summary(), "source": str(self.policy_file.path)}


Fanzha.add_asgi_middleware(Gatekeeper)
