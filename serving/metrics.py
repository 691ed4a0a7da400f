"""Prometheus metrics of the service, next to BentoML's own on `GET /metrics`.

    curl -s localhost:3000/metrics | grep ^fanzha_

BentoML already exports per-endpoint request counts and latency
(`bentoml_service_request_total`, `bentoml_service_request_duration_seconds`, with the
millisecond buckets set in serving/service.py) and the adaptive batch sizes
(`bentoml_service_adaptive_batch_size`). This adds what a counter-fraud operator watches:

| metric | labels | meaning |
| --- | --- | --- |
| `fanzha_decisions_total` | action, category, rule | scored messages by action, category and deciding rule (threshold / allowlist / blocklist) |
| `fanzha_item_errors_total` | | items that could not be scored (empty text, ...) |
| `fanzha_inference_seconds` | | model + policy time of one batch |
| `fanzha_batch_items` | | messages per batch as run |
| `fanzha_text_chars` | | characters per message |
| `fanzha_policy_reloads_total` | result | policy reloads (ok / invalid) |
| `fanzha_log_errors_total` | log | decision / audit / review log writes that failed; the request was answered all the same (serving/audit.py, serving/console/review.py) |
| `fanzha_model_info` | tag | 1 for the model tag being served (0 for one swapped out); serving/lifecycle/live.py |
| `fanzha_model_swaps_total` | result | hot swaps to a moved alias (ok / failed: the old model kept serving) |
| `fanzha_shadow_scored_total` | | messages the shadow model scored |
| `fanzha_shadow_dropped_total` | | messages the shadow skipped because it was behind (its queue was full) |
| `fanzha_shadow_disagreements_total` | champion_action, challenger_action | messages on which the two models' actions differ |
| `fanzha_feedback_total` | source, label | reports taken by `POST /feedback` (serving/feedback) |
| `fanzha_campaigns_active` | | campaigns that decide now (confirmed by an analyst, or weight >= min_weight) |
| `fanzha_campaign_hits_total` | action | messages decided by a campaign (reason `campaign:<id>`) |
| `fanzha_campaign_checks_degraded_total` | mode | campaign checks while the store is down: `stale` (on what is in memory) or `skipped` (nothing loaded yet) |
| `fanzha_feedback_sync_failures_total` | | reads of the feedback store that failed |

prometheus_client is imported when `ServiceMetrics` is built (in the worker, inside the
service's `__init__`), after BentoML has set PROMETHEUS_MULTIPROC_DIR — importing it at module
import time would leave these metrics invisible to the multiprocess collector.
"""
from __future__ import annotations

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05,
                   0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_CHAR_BUCKETS = (8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384)


class ServiceMetrics:
    def __init__(self) -> None:
        import prometheus_client as prom  # deferred on purpose, see the module docstring

        self.decisions = prom.Counter("fanzha_decisions_total", "scored messages by action, category and deciding rule",
                                      ["action", "category", "rule"])
        self.errors = prom.Counter("fanzha_item_errors_total", "items that could not be scored")
        self.inference = prom.Histogram("fanzha_inference_seconds", "model + policy time of one batch",
                                        buckets=LATENCY_BUCKETS)
        self.batch_items = prom.Histogram("fanzha_batch_items", "messages per batch as run", buckets=_SIZE_BUCKETS)
        self.text_chars = prom.Histogram("fanzha_text_chars", "characters per message", buckets=_CHAR_BUCKETS)
        self.reloads = prom.Counter("fanzha_policy_reloads_total", "policy reloads", ["result"])
        self.log_errors = prom.Counter("fanzha_log_errors_total",
                                       "decision/audit/review log writes that failed (the request was answered)", ["log"])
        for log in ("decision", "audit", "review"):  # visible at 0 before the first failure
            self.log_errors.labels(log)
        # one value per worker process; the highest is shown (a worker mid-swap shows both tags)
        self.model_info = prom.Gauge("fanzha_model_info", "1 for the model tag being served", ["tag"],
                                     multiprocess_mode="livemax")
        self.swaps = prom.Counter("fanzha_model_swaps_total", "hot swaps to a moved alias", ["result"])
        for result in ("ok", "failed"):
            self.swaps.labels(result)
        self.shadow_scored = prom.Counter("fanzha_shadow_scored_total", "messages scored by the shadow model")
        self.shadow_dropped = prom.Counter("fanzha_shadow_dropped_total", "messages the shadow skipped (it was behind)")
        self.shadow_disagreements = prom.Counter("fanzha_shadow_disagreements_total",
                                                 "messages on which champion and shadow actions differ",
                                                 ["champion_action", "challenger_action"])
        self.feedback = prom.Counter("fanzha_feedback_total", "reports taken by POST /feedback", ["source", "label"])
        self.campaigns_active = prom.Gauge("fanzha_campaigns_active", "campaigns that decide now",
                                           multiprocess_mode="livemax")
        self.campaign_hits = prom.Counter("fanzha_campaign_hits_total", "messages decided by a campaign", ["action"])
        self.campaign_checks_degraded = prom.Counter("fanzha_campaign_checks_degraded_total",
                                                     "campaign checks while the feedback store is down", ["mode"])
        for mode in ("stale", "skipped"):
            self.campaign_checks_degraded.labels(mode)
        self.feedback_sync_failures = prom.Counter("fanzha_feedback_sync_failures_total",
                                                   "reads of the feedback store that failed")

    def serving(self, tag: str | None, old: str | None = None) -> None:
        if old:
            self.model_info.labels(old).set(0)
        self.model_info.labels(tag or "unregistered").set(1)

    def record(self, results: list[dict], texts: list, seconds: float) -> None:
        self.inference.observe(seconds)
        self.batch_items.observe(len(results))
        for result, text in zip(results, texts):
            if isinstance(text, str):
                self.text_chars.observe(len(text))
            if result.get("error"):
                self.errors.inc()
            else:
                rule = result.get("reason", "").split(":", 1)[0] or "threshold"
                self.decisions.labels(result["action"], result["category"], rule).inc()


_instance: ServiceMetrics | None = None


def count_log_error(log: str, n: int = 1) -> None:
    """A decision ("decision"), audit ("audit") or review ("review") log write failed (`n` lines);
    counted where the service's metrics live."""
    if _instance is not None:
        _instance.log_errors.labels(log).inc(n)


def service_metrics() -> ServiceMetrics:
    """The process's one set of metrics (prometheus_client refuses to register a name twice)."""
    global _instance
    if _instance is None:
        _instance = ServiceMetrics()
    return _instance
