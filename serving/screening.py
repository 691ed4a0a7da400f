"""Screening a batch of messages: predictor -> policy (thresholds, allow/block lists) -> metrics, logs.

    python -m serving.screening artifacts/demo/serving "您的ETC认证已失效" '{"text": "验证码 482913", "sender": "95588"}'

The BentoML service calls `Screener.screen` once per adaptive batch (items of many requests
concatenated); it must answer every item and never raise for one bad item, because an
exception would fail every request batched with it: if scoring the batch raises, each item is
scored alone and only the one that fails gets `error`. Items are `str`, `Message` or plain
dicts (see serving/api_models.py). Control and NUL characters are removed by normalization and
the rest of the text is scored — refusing such a text would let a scammer skip the filter by
inserting a NUL. (Invalid UTF-8 and lone surrogates never get here over HTTP: the JSON parser
refuses them with a 400.)
"""
from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

from serving.api_models import split_items
from serving.audit import DecisionLog
from serving.policy import PolicyFile
from serving.predictor import RESULT_FIELDS, Predictor

INTERNAL_ERROR = "internal error while scoring this item"
log = logging.getLogger("fanzha.screening")


class Screener:
    """`policy`, when given, becomes the predictor's policy source (the service passes its one
    PolicyFile, shared with the chat model); the decision itself is the predictor's
    (`Predictor.classify` -> `Policy.apply`), the same code as `/chat` and `fanzha score`."""

    def __init__(self, predictor: Predictor, policy: PolicyFile | None = None, log: DecisionLog | None = None,
                 metrics=None):
        self.predictor, self.log, self.metrics = predictor, log, metrics
        if policy is not None:
            self.predictor.policy = policy
        self.policy_file = self.predictor.policy_source

    def screen(self, items: list, with_scores: bool = True) -> list[dict]:
        started = time.perf_counter()
        texts, senders = split_items(items)
        try:
            results = self.predictor.classify(texts, with_scores=with_scores, senders=senders)
        except Exception as e:  # noqa: BLE001 — isolate the item that fails, answer the others
            # type only: an exception's message may quote message text
            log.error("scoring a batch of %d failed (%s); scoring its items one by one", len(texts), type(e).__name__)
            results = [self._one(text, sender, with_scores) for text, sender in zip(texts, senders)]
        # Side jobs never fail the answer: metrics and the decision log count their own failures.
        if self.metrics is not None:
            try:
                self.metrics.record(results, texts, time.perf_counter() - started)
            except Exception as e:  # noqa: BLE001
                log.error("recording metrics failed: %s", type(e).__name__)
        if self.log is not None:
            self.log.write(results, texts, senders)
        return results

    def _one(self, text, sender, with_scores: bool) -> dict:
        try:
            return self.predictor.classify([text], with_scores=with_scores, senders=[sender])[0]
        except Exception as e:  # noqa: BLE001
            log.error("scoring one item failed: %s", type(e).__name__)  # the message may quote the text
            return {**dict.fromkeys(RESULT_FIELDS), "reason": "", "error": INTERNAL_ERROR}


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2:
        print("usage: python -m serving.screening ARTIFACT TEXT_OR_JSON_ITEM [...]", file=sys.stderr)
        return 2
    items = [json.loads(a) if a.startswith("{") else a for a in args[1:]]
    screener = Screener(Predictor(args[0], policy=Path(args[0]) / "policy.yaml"))
    for result in screener.screen(items, with_scores=False):
        print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
