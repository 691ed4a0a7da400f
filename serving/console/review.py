"""The review queue: flagged and blocked messages and open appeals, newest first, numbers masked.

    FANZHA_FEEDBACK_DB=/var/lib/fanzha/feedback.db FANZHA_REVIEW_LOG=1 fanzha serve --model ...

Where the items come from:
- the **review log** (opt-in, FANZHA_REVIEW_LOG=1, needs FANZHA_FEEDBACK_DB): every `flag` and
  `block` the service answers on /classify is appended to the `review_log` table beside the
  feedback (serving/feedback/store.py), with phone, bank-card and ID numbers masked
  (serving/audit.py `mask`), by a writer thread off the answer path. Items are `r<id>`;
- otherwise the **audit log** where that is on (FANZHA_AUDIT_LOG): its last FANZHA_REVIEW_TAIL_MB=16
  MB are read for flag / block lines (already masked). Items are `a<byte offset>`;
- and the appeals no analyst answered (serving/feedback/campaigns.py `Campaigns.queue`), masked
  here. Items are `f<feedback id>`.

A writer that cannot keep up (more than FANZHA_REVIEW_PENDING=50000 decisions waiting) or a
store that is down drops review rows: they are counted in
`fanzha_log_errors_total{log="review"}` and reported at most once a minute; the answers never wait.
"""
from __future__ import annotations

import json
import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from data import settings
from serving.audit import mask

log = logging.getLogger("fanzha.console")
QUEUED_ACTIONS = ("flag", "block")
KINDS = ("flag", "block", "appeal")


def _count_error(n: int) -> None:
    try:
        from serving.metrics import count_log_error

        count_log_error("review", n)
    except Exception:  # noqa: BLE001 — counting must not fail either
        pass


class ReviewLog:
    """A DecisionLog sink: flagged / blocked decisions into the store's review_log table."""

    def __init__(self, store, max_pending: int = 50_000):
        self.store = store
        self.max_pending = max_pending
        self._queue: queue.Queue = queue.Queue()
        self._pending = 0  # rows offered and not yet written (changed under _lock)
        self._lock = threading.Lock()
        self._reported = 0.0
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="fanzha-review-log", daemon=True)
        self._thread.start()

    @classmethod
    def from_env(cls, store) -> "ReviewLog | None":
        if not settings.get_bool("FANZHA_REVIEW_LOG"):
            return None
        if store is None:
            raise ValueError("FANZHA_REVIEW_LOG=1 keeps the review log beside the feedback store: set FANZHA_FEEDBACK_DB too")
        return cls(store, settings.get_int("FANZHA_REVIEW_PENDING"))

    def offer(self, rows: list[dict]) -> None:
        """Queue one batch's flagged / blocked rows (text already masked); never blocks."""
        rows = [r for r in rows if r.get("action") in QUEUED_ACTIONS]
        if not rows:
            return
        with self._lock:
            full = self._pending + len(rows) > self.max_pending
            if not full:
                self._pending += len(rows)
        if full:
            self._drop(len(rows), "the writer is behind")
            return
        self._queue.put(rows)

    def _drop(self, n: int, why: str) -> None:
        self.dropped += n
        _count_error(n)
        now = time.monotonic()
        if now - self._reported > 60:
            self._reported = now
            log.error("review log: %d decision(s) not written (%s); counted in fanzha_log_errors_total{log=\"review\"}",
                      n, why)

    def _run(self) -> None:
        while True:
            rows = self._queue.get()
            if rows is None:
                return
            batch = list(rows)
            while len(batch) < 2000:  # whatever else is waiting goes in the same transaction
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)
                    break
                batch += more
            try:
                self.store.add_reviews(batch)
            except Exception as e:  # noqa: BLE001 — a log never fails the service
                self._drop(len(batch), type(e).__name__)
            finally:
                with self._lock:
                    self._pending -= len(batch)

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until what was offered is written (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._pending > 0 and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        self.flush()
        self._queue.put(None)
        self._thread.join(timeout=5)


@dataclass(frozen=True)
class Filters:
    """The queue's filters (all optional): kind (flag | block | appeal), category, reason prefix,
    since (epoch seconds), status (open | done | all)."""

    kind: str = ""
    category: str = ""
    reason: str = ""
    since: float = 0.0
    status: str = "all"

    @classmethod
    def parse(cls, kind: str = "", category: str = "", reason: str = "", since: str = "", status: str = "all",
              now: float | None = None) -> "Filters":
        """From the page's query: `since` is `1h`, `24h`, `7d` (before now) or epoch seconds."""
        if kind and kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        if category and category not in ("normal", "spam", "fraud"):
            raise ValueError("category must be normal, spam or fraud")
        if status not in ("open", "done", "all"):
            raise ValueError("status must be open, done or all")
        if len(reason) > 100:
            raise ValueError("reason: at most 100 characters")
        start = 0.0
        if since:
            units = {"h": 3600, "d": 86400, "m": 60}
            now = time.time() if now is None else now
            try:
                start = now - float(since[:-1]) * units[since[-1]] if since[-1] in units else float(since)
            except (ValueError, KeyError):
                raise ValueError("since: 1h, 24h, 7d or epoch seconds") from None
        return cls(kind, category, reason, start, status)


class AuditTail:
    """Flag / block lines of the audit log (JSON lines, text already masked), read from its end."""

    def __init__(self, path: str | Path, tail_bytes: int = 16 << 20):
        self.path, self.tail_bytes = Path(path), tail_bytes

    def _lines(self):
        try:
            size = self.path.stat().st_size
        except OSError:
            return
        start = max(0, size - self.tail_bytes)
        with self.path.open("rb") as f:
            f.seek(start)
            if start:
                start += len(f.readline())  # a partial first line
            offset = start
            for raw in f:
                here, offset = offset, offset + len(raw)
                try:
                    entry = json.loads(raw)
                except ValueError:
                    continue  # a line being written, or not ours
                if isinstance(entry, dict) and entry.get("action") in QUEUED_ACTIONS:
                    yield here, entry

    def items(self, f: Filters, limit: int, refs: set | None = None) -> list[dict]:
        out = []
        for offset, e in self._lines():
            ref = f"a{offset}"
            if refs is not None and ref not in refs:
                continue
            label = e.get("label") or ""
            item = {"ref": ref, "time": e.get("ts"), "kind": e.get("action"), "action": e.get("action"),
                    "category": label.split(".", 1)[0] if label else None, "label": label or None,
                    "reason": e.get("reason"), "score": e.get("score"), "fraud_score": e.get("fraud_score"),
                    "sender": e.get("sender"), "text": e.get("text") or "", "campaign": None}
            if _keep(item, f):
                out.append(item)
        out.reverse()
        return out[:limit]


def _keep(item: dict, f: Filters) -> bool:
    if f.kind and item["kind"] != f.kind:
        return False
    if f.category and item["category"] != f.category:
        return False
    if f.reason and not (item["reason"] or "").startswith(f.reason):
        return False
    return (item["time"] or 0) >= f.since


def _from_review(row: dict) -> dict:
    return {"ref": f"r{row['id']}", "time": row["created_at"], "kind": row["action"], "action": row["action"],
            "category": row["category"], "label": row["label"], "reason": row["reason"], "score": row["score"],
            "fraud_score": row["fraud_score"], "sender": row["sender"], "text": row["text"], "campaign": None}


class ReviewQueue:
    """Assembles the queue from the review log (or the audit log) and the open appeals."""

    def __init__(self, store=None, review: ReviewLog | None = None, audit: AuditTail | None = None, campaigns=None):
        self.store, self.review, self.audit, self.campaigns = store, review, audit, campaigns

    @classmethod
    def from_env(cls, campaigns, review: ReviewLog | None) -> "ReviewQueue":
        audit = settings.get("FANZHA_AUDIT_LOG")
        tail = AuditTail(audit, int(settings.get_float("FANZHA_REVIEW_TAIL_MB") * (1 << 20))) if audit else None
        store = campaigns.store if campaigns is not None else None
        return cls(store, review, tail if review is None else None, campaigns)

    def source(self) -> str:
        if self.review is not None:
            return "review log (FANZHA_REVIEW_LOG)"
        if self.audit is not None:
            return f"audit log ({self.audit.path})"
        return "none: set FANZHA_REVIEW_LOG=1 (with FANZHA_FEEDBACK_DB) or FANZHA_AUDIT_LOG to list flagged and blocked messages"

    def _appeals(self, f: Filters) -> list[dict]:
        if self.campaigns is None or (f.kind and f.kind != "appeal"):
            return []
        out = []
        for a in self.campaigns.queue():
            item = {"ref": f"f{a['id']}", "time": a["created_at"], "kind": "appeal", "action": None,
                    "category": "normal", "label": "normal", "reason": "appeal", "score": None, "fraud_score": None,
                    "sender": a["sender"], "text": mask(a["text"]), "campaign": a["campaign"]}
            if _keep(item, f):
                out.append(item)
        return out

    def items(self, f: Filters = Filters(), limit: int = 200) -> list[dict]:
        """Newest first, at most `limit`, each with `status` (`done` once an analyst acted on it)."""
        out: list[dict] = []
        if f.kind != "appeal":
            if self.review is not None:
                actions = (f.kind,) if f.kind else QUEUED_ACTIONS
                out += [_from_review(r) for r in self.store.reviews(actions, f.category or None, f.reason or None,
                                                                    f.since, limit=limit * 4)]
            elif self.audit is not None:
                out += self.audit.items(f, limit * 4)
        out += self._appeals(f)
        out.sort(key=lambda i: -(i["time"] or 0))
        self.with_status(out)
        if f.status != "all":
            out = [i for i in out if i["status"]["state"] == f.status]
        return out[:limit]

    def with_status(self, items: list[dict]) -> None:
        """Set each item's `status` from the action log (`done` once an analyst acted on it)."""
        done = {}
        if self.store is not None and items:
            try:
                for a in reversed(self.store.actions(tuple(i["ref"] for i in items))):  # oldest first: the last wins
                    done[a["item"]] = {"state": "done", "action": a["action"], "by": a["key_name"], "at": a["at"],
                                       "detail": a["detail"]}
            except Exception as e:  # noqa: BLE001 — the queue still lists without its status
                log.error("review queue: reading the action log failed (%s)", type(e).__name__)
        for item in items:
            item["status"] = done.get(item["ref"], {"state": "open"})

    def get(self, refs: list[str]) -> dict[str, dict]:
        """The items named by `refs` (r<id> | a<offset> | f<id>), wherever they are; unknown refs are absent."""
        found: dict[str, dict] = {}
        review_ids = tuple(int(r[1:]) for r in refs if r[:1] == "r" and r[1:].isdigit())
        if review_ids and self.store is not None and self.review is not None:
            for row in self.store.reviews(ids=review_ids, limit=len(review_ids)):
                found[f"r{row['id']}"] = _from_review(row)
        audit_refs = {r for r in refs if r[:1] == "a"}
        if audit_refs and self.audit is not None:
            for item in self.audit.items(Filters(), len(audit_refs), audit_refs):
                found[item["ref"]] = item
        if any(r[:1] == "f" for r in refs):
            for item in self._appeals(Filters()):
                if item["ref"] in refs:
                    found[item["ref"]] = item
        return found
