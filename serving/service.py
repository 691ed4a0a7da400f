"""The BentoML service: a thin shell around `serving.screening.Screener` (predictor + policy).

    FANZHA_MODEL=artifacts/demo/serving bentoml serve serving.service:Fanzha --port 3000
    FANZHA_MODEL_TAG=fanzha-demo:20250101120000-1a2b3c4d bentoml serve serving.service:Fanzha
    FANZHA_MODEL_TAG=fanzha-sms@champion FANZHA_SHADOW_TAG=fanzha-sms@challenger bentoml serve serving.service:Fanzha
    # or: fanzha serve --model artifacts/demo/serving;  a Bento: make bento (README)

Endpoints: `POST /classify` {"texts": [text | {"text": ..., "sender": ...}, ...]} (adaptive
batching), `GET /info`, `POST /admin/reload-policy` and `POST /admin/reload-model` (API key), BentoML's `/healthz`, `/livez`,
`/readyz` (ready only after the artifact passed its integrity check, the model loaded and a
warm-up inference ran), `/metrics` (Prometheus, serving/metrics.py), `/docs.json` (OpenAPI),
`/feedback` (serving/feedback), `POST /explain` and the analyst console `/ui` (serving/console).

Batching — measured, then chosen: `/classify` is a plain async API that validates the request
(pydantic item models and `Field(min_length, max_length)`: 400 with the item's position) and
hands its items to `serving.batcher.Batcher`, which batches concurrent requests onto one
inference thread. BentoML's own `batchable=True` dispatcher was the first version; on the tiny
model (2 cores, sequential single SMS over HTTP, one server at a time, 3 rounds) it gave p50
2.8-3.2 ms against 2.1-2.4 ms now, and under concurrent load it answered 503 to 14-85 % of
the requests and kept lone SMS waiting ~20 ms after a burst (details in serving/batcher.py).
`serving.security.Gatekeeper` (ASGI middleware) does auth, the body limit and the content type
before anything is parsed; per-item problems (empty text, ...) come back as that item's `error`.

Models (serving/lifecycle/live.py): each loaded model is a `Slot` (predictor, screener, its own
batcher, chat scorer). A request holds the slot current when it arrived, so a hot swap (the
followed alias moved) never changes a request's model halfway; a shadow model scores the
batches after the answers, off the answer path.

Settings (env): FANZHA_MODEL (artifact folder) or FANZHA_MODEL_TAG / bento argument
`model_tag` (pinned BentoML model tag, or NAME@ALIAS to follow, checked every
FANZHA_MODEL_CHECK_S=5 s); FANZHA_SHADOW_TAG (a shadow model: NAME@ALIAS, tag or folder;
FANZHA_SHADOW_QUEUE=8 batches, FANZHA_SHADOW_LOG=path, FANZHA_SHADOW_THREADS=1); FANZHA_POLICY (policy file, default the artifact's
policy.yaml; re-read when it changes, checked every FANZHA_POLICY_CHECK_S=1 s);
FANZHA_MAX_QUEUE=4096; FANZHA_CHAT_MAX_CONCURRENCY=4 (`/chat` requests scored at once; up to
FANZHA_CHAT_MAX_QUEUE=64 more wait their turn, beyond that 503 at once: serving/admission.py); speed settings (batch size, workers, threads) in serving/tuning.py; limits in
serving/api_models.py, auth and body size in serving/security.py, logs in serving/audit.py.

A new endpoint (e.g. `/chat`) is one more `@bentoml.api` method using `self.batcher` (shares the
batches), `self.screener` or `self.predictor`; the gate, metrics and OpenAPI document cover it
without other changes.
"""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Optional

import bentoml
from bentoml.exceptions import ServiceUnavailable
from bentoml.validators import ContentType
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import Field

from data import settings
from serving import tuning
from serving.admission import Admission
from serving.api_models import MAX_EXPLAIN_CHARS, MAX_SENDER_CHARS, MAX_TEXTS, Explanation, Item, Result
from serving.explain import explain
from serving.audit import DecisionLog
from serving.batcher import Batcher, Overloaded, sms_length
from serving.chat.conversation import MAX_TURNS, ChatResult, ConversationScorer, Turn
from serving.integrity import verify_artifact
from serving.metrics import LATENCY_BUCKETS, service_metrics
from serving.policy import PolicyError, PolicyFile
from serving.predictor import ArtifactError, Predictor
from serving.console.app import Console, router as console_router
from serving.console.auth import Sessions
from serving.console.review import ReviewLog, ReviewQueue
from serving.feedback.api import FeedbackIn, FeedbackRoutes, validation_error
from serving.lifecycle.live import Follower, Shadow, Slot, locate, peak_rss_mb
from serving.lifecycle.registry import pinned
from serving.screening import Screener
from serving.security import Gatekeeper, GateSettings, redact_validation_logs

# Adaptive batching (serving/batcher.py): up to tuning.MAX_BATCH_SIZE messages per model call;
# more than MAX_QUEUE messages waiting is an overload answered with 503 at once.
MAX_QUEUE = settings.get_int("FANZHA_MAX_QUEUE")
CHAT_MAX_CONCURRENCY = settings.get_int("FANZHA_CHAT_MAX_CONCURRENCY")
CHAT_MAX_QUEUE = settings.get_int("FANZHA_CHAT_MAX_QUEUE")  # /chat (and /explain) calls waiting their turn
# A pinned tag (name:version) or an alias to follow (name@champion: hot swap, serving/lifecycle/live.py)
MODEL_TAG = settings.get("FANZHA_MODEL_TAG") or getattr(bentoml.use_arguments(), "model_tag", None)
FOLLOWS_ALIAS = bool(MODEL_TAG and "@" in MODEL_TAG)
MODEL_CHECK_S = settings.get_float("FANZHA_MODEL_CHECK_S")
SHADOW = settings.get("FANZHA_SHADOW_TAG") or None  # name@alias, name:version or an artifact folder
SHADOW_QUEUE = settings.get_int("FANZHA_SHADOW_QUEUE")
WARM_UP = ["预热：您的验证码是123456。", "warm-up"]

info_app = FastAPI(title="fanzha info", docs_url=None, redoc_url=None, openapi_url=None)
info_app.add_exception_handler(RequestValidationError, validation_error)  # 422 {"error", "detail"}, no input echoed
info_app.include_router(console_router)  # the analyst console, /ui (serving/console)
redact_validation_logs()


def model_dir() -> str:
    path = settings.get("FANZHA_MODEL")
    if not path:
        raise ArtifactError("set FANZHA_MODEL to a serving artifact folder (output of `fanzha export`) "
                            "or FANZHA_MODEL_TAG to a registered model (`fanzha register`) or an alias (NAME@champion)")
    return path


def checked_artifact() -> tuple[str | None, Path] | None:
    """(tag, folder) of the model to serve, integrity-checked — at import, so that `bentoml serve`
    (which imports this module before starting workers) exits with the reason instead of
    respawning a worker that fails every 10 s. None when no model is configured (importing for
    docs or tests)."""
    if not (MODEL_TAG or settings.get("FANZHA_MODEL")):
        return None
    if MODEL_TAG:
        return locate(MODEL_TAG)
    verify_artifact(model_dir())
    return None, Path(model_dir())


ARTIFACT = checked_artifact()


# BentoML's per-request access log line and OpenTelemetry span are the largest parts of the HTTP
# floor that are not the service's own work (py-spy on the null-model service, bench/null_model.py):
# off unless asked for (FANZHA_ACCESS_LOG, FANZHA_TRACING). Request counts and latencies stay on /metrics.
ACCESS_LOG = settings.get_bool("FANZHA_ACCESS_LOG")
UNTRACED = {} if settings.get_bool("FANZHA_TRACING") else {"tracing": {"excluded_urls": [".*"]}}


@bentoml.service(name="fanzha", workers=tuning.WORKERS, traffic={"timeout": 30},
                 metrics={"enabled": True, "duration": {"buckets": list(LATENCY_BUCKETS)}},
                 logging={"access": {"enabled": ACCESS_LOG}}, **UNTRACED)
@bentoml.asgi_app(info_app, path="/")
class Fanzha:
    # A pinned model reference makes `bentoml build` pack that model into the Bento (an alias
    # is followed in the store at run time instead: nothing to pack).
    model_ref = bentoml.models.BentoModel(pinned(MODEL_TAG)) if MODEL_TAG and not FOLLOWS_ALIAS else None

    def __init__(self) -> None:
        tag, folder = ARTIFACT or (None, Path(model_dir()))
        # One policy file for every model this service holds: the watcher and the admin reload
        # reach /classify, /chat and the shadow alike (each model resolves `certified` to its own
        # threshold). Without FANZHA_POLICY it is the served artifact's own policy.yaml, and a
        # hot swap re-points it to the new artifact's.
        self.own_policy = not settings.get("FANZHA_POLICY")
        self.policy_file = PolicyFile(settings.get("FANZHA_POLICY") or folder / "policy.yaml",
                                      check_every=settings.get_float("FANZHA_POLICY_CHECK_S"))
        self.metrics = service_metrics()
        self.log = DecisionLog.from_env()
        chat_folder = settings.get("FANZHA_CHAT_MODEL")  # /chat on its own model, else on the served one
        if chat_folder:
            verify_artifact(chat_folder)
        self.chat_predictor = Predictor(chat_folder, policy=self.policy_file) if chat_folder else None
        # Feedback campaigns (serving/feedback): one view of the store per worker, asked by the
        # decision engine of every model this service holds (block-list > campaign > allow-list)
        self.feedback = FeedbackRoutes.from_env(lambda: self.policy_file.current().campaigns, self.metrics)
        if self.chat_predictor is not None:
            self.chat_predictor.use_campaigns(self.feedback.campaigns)
        # the console's review log (opt-in FANZHA_REVIEW_LOG): /classify's flags and blocks, beside the feedback
        self.review = ReviewLog.from_env(self.feedback.campaigns.store if self.feedback.campaigns else None)
        self.log.review = self.review
        self.shadow = self._shadow() if SHADOW else None
        self.follower = Follower(MODEL_TAG if FOLLOWS_ALIAS else None, self._slot(tag, folder),
                                 self._swap_in, self._swapped)
        self.metrics.serving(tag)
        info_app.state.console = Console(Sessions(GateSettings.from_env().keys), self.follower, self.feedback,
                                         self.policy_file, ReviewQueue.from_env(self.feedback.campaigns, self.review))
        limits = " (FANZHA_CHAT_MAX_CONCURRENCY, FANZHA_CHAT_MAX_QUEUE)"
        self.chat_admission = Admission("/chat", CHAT_MAX_CONCURRENCY, CHAT_MAX_QUEUE, limits)
        self.explain_admission = Admission("/explain", CHAT_MAX_CONCURRENCY, CHAT_MAX_QUEUE, limits)
        self.follower.start(MODEL_CHECK_S)
        self.ready = True

    # --- models: one Slot per loaded model (serving/lifecycle/live.py) ---------------------------
    def _slot(self, tag: str | None, folder: Path) -> Slot:
        """Load, warm up and wire one model: predictor, screener, its own batcher, chat scorer."""
        predictor = Predictor(folder, policy=self.policy_file)  # threads, spinning, variant: serving/tuning.py
        predictor.use_campaigns(self.feedback.campaigns)
        self.feedback.serve_labels(predictor.labels)
        screener = Screener(predictor, None, self.log, self.metrics)
        batcher = Batcher(lambda items: self._screen(screener, items), tuning.MAX_BATCH_SIZE, MAX_QUEUE,
                          max_batch_tokens=tuning.MAX_BATCH_TOKENS, length=sms_length(predictor.meta.max_length))
        chat = ConversationScorer(self.chat_predictor or predictor)
        predictor.classify(WARM_UP)  # first inference allocates buffers; not counted or logged
        return Slot(tag, Path(folder), predictor, screener, batcher, chat)

    def _swap_in(self, tag: str, folder: Path) -> Slot:
        slot = self._slot(tag, folder)
        if self.own_policy:
            try:  # the served artifact's policy follows the model; every model's check runs first
                self.policy_file.repoint(folder / "policy.yaml")
            except Exception:
                slot.close()
                raise
        return slot

    def _swapped(self, result: str, seconds: float, tag: str | None) -> None:
        self.metrics.swaps.labels(result).inc()
        if result == "ok":
            self.metrics.serving(tag, self.follower.last.get("from"))

    def _screen(self, screener: Screener, items: list) -> list[dict]:
        results = screener.screen(items)
        if self.shadow is not None:
            self.shadow.offer(items, results)  # a queue put: the answers do not wait for the shadow
        return results

    def _shadow(self) -> Shadow:
        tag, folder = (None, Path(SHADOW)) if Path(SHADOW).is_dir() else locate(SHADOW)
        if tag is None:
            verify_artifact(folder)
        predictor = Predictor(folder, threads=tuning.SHADOW_THREADS, policy=self.policy_file)
        predictor.use_campaigns(self.feedback.campaigns)  # the shadow decides as the champion would
        predictor.classify(WARM_UP)
        return Shadow(predictor, tag or str(folder), self.metrics, SHADOW_QUEUE, settings.get("FANZHA_SHADOW_LOG"),
                      self.log.hash_key, champion_tag=lambda: self.follower.slot.tag)

    @property
    def predictor(self) -> Predictor:
        return self.follower.slot.predictor

    def __is_ready__(self) -> bool:
        return getattr(self, "ready", False)

    @bentoml.on_shutdown
    def close(self) -> None:
        """After in-flight requests finished (SIGTERM drains them): stop the batch loop, close the audit log."""
        self.follower.stop()
        self.follower.slot.close()
        if self.shadow is not None:
            self.shadow.close()
        if self.review is not None:
            self.review.close()
        self.feedback.close()
        self.log.close()

    @bentoml.api
    async def classify(self, texts: list[Item] = Field(..., min_length=1, max_length=MAX_TEXTS,
                                                       description="messages: a string, or {\"text\": ..., \"sender\": ...}")
                       ) -> Annotated[list[Result], ContentType("application/json")]:
        """Classify messages: one result per item, in order (label, category, score, fraud_score,
        spam_score, action, reason, error, scores)."""
        # The explicit ContentType matters for speed: without it BentoML regenerates the JSON
        # schema of list[Result] on every response to pick the media type (~0.9 ms per request).
        slot = self.follower.acquire()  # the request finishes on this model, even if a swap comes
        try:
            return await slot.batcher.submit(texts)
        except Overloaded as e:
            raise ServiceUnavailable(str(e)) from None
        finally:
            self.follower.release(slot)

    # --- /chat: conversation-aware scoring (serving/chat/conversation.py, issue #7) ---------------------------
    @bentoml.api
    async def chat(self, turns: list[Turn] = Field(..., min_length=1, max_length=MAX_TURNS,
                                             description="the conversation so far, oldest first: {\"speaker\", \"text\"}")
             ) -> Annotated[ChatResult, ContentType("application/json")]:
        """Risk of a chat or call so far: risk (max fraud score over its prefixes), label, category,
        action, detected_at_turn (first turn blocked, or null) and each turn's result."""
        # Admission control on the event loop, before any work (serving/admission.py): a busy
        # service queues the call, an overloaded one answers 503 now; the scoring runs on a worker thread.
        async with self.chat_admission.slot():
            slot = self.follower.acquire()
            try:
                return await asyncio.to_thread(slot.chat_scorer.score, turns)
            finally:
                self.follower.release(slot)
    # --- end /chat ------------------------------------------------------------------------------

    # --- /explain: one weight per character, by occlusion (serving/explain.py, issue 18) --------
    @bentoml.api
    async def explain(self, text: str = Field(..., min_length=1, max_length=MAX_EXPLAIN_CHARS,
                                              description="the message to explain"),
                      sender: Optional[str] = Field(None, max_length=MAX_SENDER_CHARS, description="its sender id")
                      ) -> Annotated[Explanation, ContentType("application/json")]:
        """`result` (exactly what /classify answers for the text) and `weights`: per character, how
        much it pushed the fraud score (occlusion: one ONNX Runtime call on at most 256 copies)."""
        async with self.explain_admission.slot():
            slot = self.follower.acquire()
            try:
                return await asyncio.to_thread(explain, slot.predictor, text, sender)
            finally:
                self.follower.release(slot)

    @info_app.get("/info")
    def info(self) -> dict:
        """Model name, version, tag, labels, decision thresholds, policy, shadow and request limits."""
        gate = GateSettings.from_env()
        slot = self.follower.slot
        chat = slot.chat_scorer
        return {**slot.predictor.info(),
                "chat": {"model": "this model" if chat.predictor is slot.predictor else str(chat.predictor.folder),
                         "variant": chat.predictor.variant, "thresholds": chat.predictor.policy_for("chat").to_dict()["thresholds"],
                         "window": chat.window, "anchor": chat.anchor, **self.chat_admission.summary()},
                "policy": {**self.policy_file.policy.summary(), "source": str(self.policy_file.path),
                           "loaded_at": self.policy_file.loaded_at},
                "limits": {"max_texts": MAX_TEXTS, "max_sender_chars": MAX_SENDER_CHARS,
                           "max_body_bytes": gate.max_body_bytes, "auth": gate.auth},
                "batching": {"max_batch_size": tuning.MAX_BATCH_SIZE, "max_batch_tokens": tuning.MAX_BATCH_TOKENS,
                             "max_queue": MAX_QUEUE, "workers": tuning.WORKERS},
                "model_tag": slot.tag, "folder": str(slot.folder), "loaded_at": slot.loaded_at,
                "follows": MODEL_TAG if FOLLOWS_ALIAS else None, "last_swap": self.follower.last,
                "memory": peak_rss_mb(), "feedback": self.feedback.info(),
                "shadow": self.shadow.info() if self.shadow is not None else None}

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

    @info_app.post("/admin/reload-model")
    def reload_model(self):
        """Check the followed alias now and swap if it moved (the API key is required): 200 with
        the result (`ok` or `unchanged`), 409 when the service follows no alias, 422 when the new
        model failed to load (the old one keeps serving)."""
        if not FOLLOWS_ALIAS:
            return JSONResponse({"error": "this service serves a fixed model, not an alias: start it with "
                                 "--model NAME@ALIAS (FANZHA_MODEL_TAG) to follow one", "result": "not-following"},
                                status_code=409)
        result = self.follower.check()
        if result["result"] == "failed":
            return JSONResponse(result, status_code=422)
        return result


    # --- /feedback: reports, undo, campaigns, review queue (serving/feedback/api.py) ------------------
    @info_app.post("/feedback", responses=FeedbackRoutes.POST_RESPONSES)
    def post_feedback(self, body: FeedbackIn):
        """Report a message (the API key is required when one is set): {"text", "label":
        normal|spam|fraud|fraud.<type>, "source": analyst|user_report|appeal, "sender"?,
        "message_id"?, "note"?} -> the feedback id and the campaign it joined or founded."""
        return self.feedback.post(body, self.follower.slot.predictor)

    @info_app.delete("/feedback/{feedback_id}", responses=FeedbackRoutes.DELETE_RESPONSES)
    def delete_feedback(self, feedback_id: int):
        """Undo a report: its weight leaves its campaign at once, on every replica within seconds."""
        return self.feedback.delete(feedback_id)

    @info_app.get("/feedback/campaigns", responses=FeedbackRoutes.GET_RESPONSES)
    def feedback_campaigns(self):
        """Campaigns in memory (the retention window), newest first, with weight, label and action."""
        return self.feedback.listing()

    @info_app.get("/feedback/queue", responses=FeedbackRoutes.GET_RESPONSES)
    def feedback_queue(self):
        """The review queue: appeals no analyst answered since, newest first."""
        return self.feedback.queue()


Fanzha.add_asgi_middleware(Gatekeeper)
