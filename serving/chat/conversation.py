"""Conversation-aware scoring of chats and calls: risk as the conversation unfolds, and the turn at
which it should have been blocked — for `POST /chat` and bulk scoring.

    fanzha score --chat --model artifacts/chat/serving --input conversations.jsonl --output scored.jsonl
    python -m serving.chat.conversation --model artifacts/chat/serving --input conversations.jsonl --output scored.jsonl

Stateless: the caller sends the turns so far, `[{"speaker": ..., "text": ...}, ...]`. Every prefix
is scored (one batch): after turn t the model sees the window of the last K turns ending at t,
preceded by the opening turn's first characters once it is out of the window, built by
`data.conversations.model_inputs` — exactly as in training (role markers 甲 for the first
speaker, 乙 for anyone else; newest turns kept when a window is too long). Each prefix gets the
predictor's result and the policy's action (thresholds, and the block-list on the new turn).

The conversation's risk is the MAXIMUM fraud score over its prefixes, not the last one: a scam
recognised at turn 5 stays recognised when later turns are harmless ("好的，谢谢"), so a warning
is never withdrawn. `action` is the most severe action any prefix reached, `label` / `category`
those of the riskiest prefix, `detected_at_turn` the first turn (0-based) whose prefix was
blocked (null if none). Turns whose text is empty after normalization are left out of the
windows (as in training) and get `error` in `turns`.

The chat model is a serving artifact like any other (`fanzha export`); the window size K and the
opening anchor are read from its fanzha.json (`input.chat: {window, anchor}`, written at export
from the training config), else data.conversations.WINDOW / ANCHOR. With an SMS model the same
code runs (the HTTP service's fallback without FANZHA_CHAT_MODEL), on shorter windows.

Decisions go through `Predictor.classify` -> `Policy.apply`, the same rule as `/classify` and
`fanzha score`, on the same policy source: the service hands its one PolicyFile to the chat model
too (its `fraud.block: certified` resolves to the chat model's own certified threshold).

Cost: a live call sends all its turns on every request, but a window's text depends only on the
turns up to its end, so the model probabilities of each prepared window are kept in a bounded LRU
(FANZHA_CHAT_CACHE windows, default 4096) and only the new windows are scored; the decisions are
made afresh every time, so a policy change applies to old turns too.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from pydantic import BaseModel, ConfigDict, Field

from data import settings
from data.conversations import ANCHOR, WINDOW, model_inputs
from serving.policy import ACTIONS
from serving.feedback.store import StoreError
from serving.predictor import ArtifactError, Predictor

MAX_TURNS = settings.get_int("FANZHA_CHAT_MAX_TURNS")
CACHE_WINDOWS = settings.get_int("FANZHA_CHAT_CACHE")
OUTPUT_FIELDS = ("label", "category", "fraud_score", "action", "detected_at_turn", "error")


class Turn(BaseModel):
    """One turn of a conversation, in order."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)
    speaker: Union[str, int, None] = Field(None, description="who spoke (any id; only equality matters)")
    text: str = Field(..., description="what was said")


class TurnResult(BaseModel):
    turn: int
    fraud_score: Optional[float] = None
    label: Optional[str] = None
    category: Optional[str] = None
    action: Optional[str] = None
    reason: str = ""
    error: str = ""


class ChatResult(BaseModel):
    """The conversation's risk so far."""

    risk: Optional[float] = Field(None, description="max fraud score over the prefixes")
    label: Optional[str] = Field(None, description="label of the riskiest prefix")
    category: Optional[str] = Field(None, description="normal | spam | fraud, of the riskiest prefix")
    action: Optional[str] = Field(None, description="most severe action reached: allow | flag | block")
    detected_at_turn: Optional[int] = Field(None, description="first turn (0-based) at which it was blocked")
    riskiest_turn: Optional[int] = None
    turns: list[TurnResult] = Field(default_factory=list, description="the result after each turn")
    error: str = ""


def chat_settings(predictor: Predictor) -> tuple[int, int]:
    """(window, anchor) from the artifact's fanzha.json `input.chat`, else data.conversations'."""
    chat = predictor.meta.input.get("chat") or {}
    return int(chat.get("window", WINDOW)), int(chat.get("anchor", ANCHOR))


class WindowCache:
    """A bounded, thread-safe LRU: prepared window text -> probabilities (a numpy row)."""

    def __init__(self, size: int = CACHE_WINDOWS):
        self.size, self._items, self._lock = size, OrderedDict(), threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: str):
        with self._lock:
            row = self._items.get(key)
            if row is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return row

    def __setitem__(self, key: str, row) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._items[key] = row
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class ConversationScorer:
    def __init__(self, predictor: Predictor, window: int | None = None, anchor: int | None = None,
                 cache_windows: int = CACHE_WINDOWS):
        self.predictor = predictor
        default_window, default_anchor = chat_settings(predictor)
        self.window = window or default_window
        self.anchor = default_anchor if anchor is None else anchor
        self.cache = WindowCache(cache_windows) if cache_windows > 0 else None

    @classmethod
    def from_env(cls, fallback: Predictor) -> "ConversationScorer":
        """FANZHA_CHAT_MODEL (a serving artifact folder, integrity-checked), else `fallback`. A
        chat model decides on the fallback's policy source: one file, one reload, both models."""
        folder = settings.get("FANZHA_CHAT_MODEL")
        if not folder:
            return cls(fallback)
        from serving.integrity import verify_artifact

        verify_artifact(folder)
        return cls(Predictor(folder, policy=fallback.policy_source))

    def score(self, turns: Sequence[Any]) -> dict:
        return self.score_many([turns])[0]

    def score_many(self, conversations: Sequence[Sequence[Any]]) -> list[dict]:
        """One result per conversation; all their prefixes go through the model in one call."""
        plans, windows, texts = [], [], []
        for turns in conversations:
            problem = _check(turns)
            if problem:
                plans.append(problem)
                continue
            turns = [t.model_dump() if isinstance(t, BaseModel) else t for t in turns]
            kept = [i for i, t in enumerate(turns) if self.predictor.normalize(t["text"])]
            spoken = [turns[i] for i in kept]
            plans.append((len(turns), kept, len(windows)))
            windows += self._windows(spoken)
            texts += [t["text"] for t in spoken]
        # block-list hits in the new turn, then thresholds on the window's scores: Policy.apply
        results = self.predictor.classify(windows, with_scores=False, list_texts=texts, cache=self.cache, channel="chat") \
            if windows else []
        return [plan if isinstance(plan, dict) else _summarize(*plan, results) for plan in plans]


    def _windows(self, spoken: list[dict]) -> list[str]:
        """The model inputs after each turn, normalized with the artifact's own table."""
        return model_inputs(spoken, self.predictor.meta.max_length, self.window, self.anchor,
                            normalizer=self.predictor.normalize)


def _check(turns) -> dict | None:
    if not isinstance(turns, (list, tuple)) or not turns:
        return {**ChatResult().model_dump(), "error": "turns must be a non-empty list"}
    if len(turns) > MAX_TURNS:
        return {**ChatResult().model_dump(), "error": f"at most {MAX_TURNS} turns (FANZHA_CHAT_MAX_TURNS)"}
    for i, t in enumerate(turns):
        if isinstance(t, BaseModel):
            continue
        if not isinstance(t, dict) or not isinstance(t.get("text"), str):
            return {**ChatResult().model_dump(), "error": f"turn {i}: expected {{\"speaker\": ..., \"text\": string}}"}
    return None


def _summarize(n_turns: int, kept: list[int], start: int, results: list[dict]) -> dict:
    per_turn = [{**TurnResult(turn=i).model_dump(), "error": "empty text"} for i in range(n_turns)]
    for k, i in enumerate(kept):
        r = results[start + k]
        per_turn[i] = {"turn": i, "fraud_score": r["fraud_score"], "label": r["label"], "category": r["category"],
                       "action": r["action"], "reason": r.get("reason", ""), "error": r["error"]}
    scored = [t for t in per_turn if t["fraud_score"] is not None]
    if not scored:
        return {**ChatResult(turns=per_turn).model_dump(), "error": "no turn with text"}
    top = max(scored, key=lambda t: t["fraud_score"])
    blocked = [t["turn"] for t in scored if t["action"] == "block"]
    return {"risk": top["fraud_score"], "label": top["label"], "category": top["category"],
            "action": max((t["action"] for t in scored), key=ACTIONS.index),
            "detected_at_turn": blocked[0] if blocked else None, "riskiest_turn": top["turn"],
            "turns": per_turn, "error": ""}


def _read_lines(path: Path):
    """(line number, parsed object or None, error) for each non-blank line of a JSONL file."""
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield n, None, "invalid UTF-8"
                continue
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                yield n, None, f"invalid JSON: {e.msg}"
                continue
            if isinstance(obj, dict):
                yield n, obj, ""
            else:
                yield n, None, "expected an object {\"id\", \"turns\"}"


def score_conversations(model: str | Path | Predictor, input_path, output_path, chunk: int = 64,
                        per_turn: bool = False, policy: str | Path | None = None, feedback_db: str | None = None) -> dict:
    """Score a JSONL file of {"id", "turns"} into a JSONL file of {"id", label, category,
    fraud_score, action, detected_at_turn, error} (+ "turns" with per_turn), one line per input
    line, in order. Written to a temporary file, renamed when complete."""
    input_path, output_path = Path(input_path), Path(output_path)
    if not input_path.is_file():
        raise FileNotFoundError(f"{input_path}: no such file")
    if input_path.suffix != ".jsonl" or output_path.suffix != ".jsonl":
        raise ValueError("--chat reads and writes JSONL (.jsonl): one conversation per line")
    if not isinstance(model, Predictor):
        from serving.integrity import verify_artifact

        verify_artifact(model)  # the service's check
        model = Predictor(model, policy=policy)  # a policy path is kept current, as in the service
    if feedback_db is not None:  # the feedback campaigns decide each turn too, as in the service's /chat
        from serving.feedback.campaigns import attach_snapshot

        attach_snapshot(model, feedback_db)
    scorer = ConversationScorer(model)
    tmp = output_path.with_name(f".{output_path.name}.partial")
    started, rows, actions, errors = time.time(), 0, Counter(), 0

    def flush(batch, out):
        nonlocal rows, errors
        scored = scorer.score_many([obj.get("turns") if obj else None for _, obj, _ in batch])
        for (n, obj, error), r in zip(batch, scored):
            line = {"id": obj.get("id") if obj else None, "fraud_score": r["risk"],
                    **{k: r[k] for k in OUTPUT_FIELDS if k != "fraud_score"}}
            line["error"] = error or r["error"]
            if per_turn:
                line["turns"] = r["turns"]
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
            rows += 1
            errors += bool(line["error"])
            if line["action"]:
                actions[line["action"]] += 1

    try:
        with open(tmp, "w", encoding="utf-8") as out:
            batch = []
            for item in _read_lines(input_path):
                batch.append(item)
                if len(batch) >= chunk:
                    flush(batch, out)
                    batch = []
            if batch:
                flush(batch, out)
        os.replace(tmp, output_path)
    finally:
        tmp.unlink(missing_ok=True)
    seconds = time.time() - started
    return {"conversations": rows, "errors": errors, "actions": dict(actions),
            "window": scorer.window, "seconds": round(seconds, 2), "output": str(output_path)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="fanzha score --chat", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="serving artifact folder (the chat model)")
    parser.add_argument("--input", required=True, help="JSONL, one {\"id\", \"turns\": [{\"speaker\", \"text\"}]} per line")
    parser.add_argument("--output", required=True, help="JSONL to write")
    parser.add_argument("--per-turn", action="store_true", help="also write every turn's result")
    parser.add_argument("--policy", default=None, help="decision policy file (default: the artifact's policy.yaml)")
    parser.add_argument("--feedback-db", default=None, help="feedback store whose campaigns decide too (fanzha score)")
    args = parser.parse_args(argv)
    try:
        summary = score_conversations(args.model, args.input, args.output, per_turn=args.per_turn, policy=args.policy,
                                      feedback_db=args.feedback_db)
    except (OSError, ValueError, ArtifactError, StoreError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(summary, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
