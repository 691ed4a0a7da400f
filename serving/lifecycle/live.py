"""A service's models while it runs: following an alias (hot swap) and scoring in the shadow.

**Hot swap.** `fanzha serve --model fanzha-sms@champion` (FANZHA_MODEL_TAG) serves the alias's
holder. `Follower.check()` (every FANZHA_MODEL_CHECK_S=5 s on a thread, or `POST
/admin/reload-model`) reads the alias file (serving/lifecycle/aliases.py); when the alias moved,
the new model is loaded beside the old one: integrity check, ONNX session, policy resolved for
it, a warm-up inference. Only then does the service switch, by replacing one `Slot` (predictor,
screener, its own batcher, chat scorer) with another: a request takes the slot current when it
arrives and finishes on it, so requests in flight finish on the model they started with, and
the old slot is closed when its last request is answered. A load that fails keeps the old model,
is logged, and is counted in `fanzha_model_swaps_total{result="failed"}`.

**Shadow.** `--shadow fanzha-sms@challenger` (FANZHA_SHADOW_TAG) scores every batch with a second
model too, after the champion's answers are ready: the inference thread only puts the batch on a
bounded queue (FANZHA_SHADOW_QUEUE=8 batches) and a separate, lower-priority thread with one ORT
thread scores it. When the shadow falls behind, batches are dropped and counted, never queued
without bound. Both decide with the service's one policy file. Metrics:
`fanzha_shadow_scored_total`, `fanzha_shadow_dropped_total`,
`fanzha_shadow_disagreements_total{champion_action,challenger_action}`. FANZHA_SHADOW_LOG=path
writes one JSON line per message with both decisions and the keyed text fingerprint of the
decision log (no text); `fanzha diff --shadow LOG` summarises it.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from serving.api_models import split_items
from serving.audit import fingerprint
from serving.integrity import verify_artifact
from serving.lifecycle.aliases import AliasStore, split_ref
from serving.lifecycle.registry import artifact_dir, pinned

log = logging.getLogger("fanzha.lifecycle")
_KEEP = ("label", "action", "reason", "fraud_score")


def locate(ref: str, store: AliasStore | None = None) -> tuple[str, Path]:
    """(pinned tag, integrity-checked folder) of `name@alias` or `name:version`."""
    name, alias, _ = split_ref(ref)
    tag = (store or AliasStore()).holder(name, alias) if alias else str(pinned(ref))
    folder = artifact_dir(tag)
    verify_artifact(folder)
    return tag, folder


def peak_rss_mb() -> dict:
    """This process's resident memory now and its peak since start (Linux /proc), in MiB."""
    out = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[{"VmRSS": "rss_mb", "VmHWM": "peak_rss_mb"}[key]] = round(int(value.split()[0]) / 1024, 1)
    except OSError:
        pass
    return out


@dataclass(eq=False)
class Slot:
    """One loaded model and everything that scores with it; requests hold it while they run."""
    tag: str | None
    folder: Path
    predictor: Any
    screener: Any
    batcher: Any
    chat_scorer: Any
    loaded_at: float = field(default_factory=time.time)
    in_flight: int = 0
    retired: bool = False

    def close(self) -> None:
        self.batcher.close()
        self.predictor.detach()


class Follower:
    """Holds the current Slot and swaps it when the followed alias moves.

    `build(tag, folder) -> Slot` loads, checks and warms a model (the service provides it);
    `on_swap(result, seconds, tag)` records the outcome."""

    def __init__(self, ref: str | None, slot: Slot, build: Callable[[str, Path], Slot],
                 on_swap: Callable[[str, float, str | None], None] | None = None, store: AliasStore | None = None):
        self.ref, self.slot, self.build, self.on_swap = ref, slot, build, on_swap
        self.store = store or AliasStore()
        self._lock = threading.Lock()       # guards slot / in_flight (held for microseconds)
        self._swapping = threading.Lock()   # one load at a time
        self.name, self.alias, _ = split_ref(ref) if ref else (None, None, None)
        self._stamp = self.store.stamp(self.name) if self.alias else None
        self.last: dict = {"result": None}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> Slot:
        with self._lock:
            slot = self.slot
            slot.in_flight += 1
            return slot

    def release(self, slot: Slot) -> None:
        with self._lock:
            slot.in_flight -= 1
            done = slot.retired and slot.in_flight == 0
        if done:
            slot.close()

    def check(self, force: bool = False) -> dict:
        """Swap to the alias's holder if it changed (or `force`); returns what happened."""
        if not self.alias:
            return {"result": "not-following", "tag": self.slot.tag}
        stamp = self.store.stamp(self.name)
        if not force and stamp == self._stamp:
            return {"result": "unchanged", "tag": self.slot.tag}
        with self._swapping:
            self._stamp = stamp
            started = time.perf_counter()
            try:
                tag = self.store.holder(self.name, self.alias)
                if tag == self.slot.tag:
                    return {"result": "unchanged", "tag": tag}
                folder = artifact_dir(tag)
                verify_artifact(folder)  # a tampered or half-copied model never gets loaded
                new = self.build(tag, folder)
            except Exception as e:  # noqa: BLE001 — a failed load keeps the old model
                seconds = time.perf_counter() - started
                log.error("swap to %s@%s failed, keeping %s: %s", self.name, self.alias, self.slot.tag,
                          str(e).splitlines()[0] if str(e) else type(e).__name__)
                self.last = {"result": "failed", "tag": self.slot.tag, "error": str(e)[:500], "seconds": round(seconds, 3),
                             "at": time.time()}
                if self.on_swap:
                    self.on_swap("failed", seconds, None)
                return self.last
            with self._lock:
                old, self.slot = self.slot, new
                old.retired = True
                idle = old.in_flight == 0
            if idle:
                old.close()
            seconds = time.perf_counter() - started
            log.warning("now serving %s (%s@%s moved; was %s; load + warm-up %.2f s)", tag, self.name, self.alias,
                        old.tag, seconds)
            self.last = {"result": "ok", "tag": tag, "from": old.tag, "seconds": round(seconds, 3), "at": time.time(),
                         **peak_rss_mb()}
            if self.on_swap:
                self.on_swap("ok", seconds, tag)
            return self.last

    def start(self, every: float) -> None:
        if not self.alias or every <= 0:
            return

        def loop():
            while not self._stop.wait(every):
                try:
                    self.check()
                except Exception as e:  # noqa: BLE001 — the watcher never dies
                    log.error("checking %s@%s failed: %s", self.name, self.alias, e)

        self._thread = threading.Thread(target=loop, name="fanzha-model-follower", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()


class Shadow:
    """Scores batches with a second model off the answer path; counts how its decisions differ."""

    def __init__(self, predictor, tag: str | None, metrics=None, max_batches: int = 8, log_path: str | None = None,
                 hash_key: bytes | None = None, champion_tag: Callable[[], str | None] = lambda: None):
        self.predictor, self.tag, self.metrics = predictor, tag, metrics
        self.champion_tag, self.hash_key = champion_tag, hash_key
        self._queue: queue.Queue = queue.Queue(max_batches)
        self.scored = self.dropped = 0
        self.disagreements: dict[tuple[str, str], int] = {}
        self._log = open(log_path, "a", encoding="utf-8", buffering=1 << 16) if log_path else None
        self._thread = threading.Thread(target=self._run, name="fanzha-shadow", daemon=True)
        self._thread.start()

    def offer(self, items: list, results: list[dict]) -> None:
        """Called by the inference thread after the champion answered; never blocks."""
        try:
            self._queue.put_nowait((items, results, self.champion_tag()))
        except queue.Full:
            self.dropped += len(items)
            if self.metrics is not None:
                self.metrics.shadow_dropped.inc(len(items))

    def _run(self) -> None:
        try:  # below the answering threads: on shared cores the shadow yields to the champion
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except (OSError, AttributeError):
            pass
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                self._score(*job)
            except Exception as e:  # noqa: BLE001 — the shadow never fails the service
                log.error("shadow scoring failed: %s", type(e).__name__)

    def _score(self, items: list, champion: list[dict], champion_tag: str | None) -> None:
        texts, senders = split_items(items)
        challenger = self.predictor.classify(texts, with_scores=False, senders=senders)
        lines, scored = [], 0
        for text, a, b in zip(texts, champion, challenger):
            if a.get("error") or b.get("error"):
                continue
            scored += 1
            if a["action"] != b["action"]:
                key = (a["action"], b["action"])
                self.disagreements[key] = self.disagreements.get(key, 0) + 1
                if self.metrics is not None:
                    self.metrics.shadow_disagreements.labels(*key).inc()
            if self._log is not None:
                lines.append(json.dumps({"ts": round(time.time(), 3), "sha": fingerprint(text if isinstance(text, str) else "", self.hash_key),
                                         "chars": len(text) if isinstance(text, str) else 0,
                                         "champion": {"tag": champion_tag, **{k: a.get(k) for k in _KEEP}},
                                         "challenger": {"tag": self.tag, **{k: b.get(k) for k in _KEEP}}},
                                        ensure_ascii=False))
        self.scored += scored
        if self.metrics is not None:
            self.metrics.shadow_scored.inc(scored)
        if lines:
            self._log.write("\n".join(lines) + "\n")
            self._log.flush()

    def info(self) -> dict:
        return {"tag": self.tag, "folder": str(self.predictor.folder), "scored": self.scored, "dropped": self.dropped,
                "queued_batches": self._queue.qsize(),
                "disagreements": {f"{a}->{b}": n for (a, b), n in sorted(self.disagreements.items())}}

    def close(self) -> None:
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass
        if self._log is not None:
            self._log.close()
