"""Campaigns: feedback on one scam script, matched in its variants, decided without retraining.

A report (`POST /feedback`) is matched against every stored report of the last
`campaigns.ttl_days` days: the text goes through the served artifact's normalization, then the
template mask (data/template.py: digits, URLs, phone numbers and ids become placeholders), and
is looked up by its exact template hash and, when long enough, by character 3-gram MinHash
with LSH (datasketch). A match joins that campaign; no match founds a new one (`c<id>`).

What a campaign decides (policy.yaml `campaigns:`, serving/policy.py `CampaignRules`):
- the latest `analyst` label wins at once: `fraud*`/`spam` confirms the campaign, `normal`
  exempts its template (no campaign decision; the model and the lists still decide);
- otherwise `user_report`s add weight, one per distinct sender (reports without a sender count
  as one), each `appeal` takes `appeal_weight` away; the campaign decides once its weight
  reaches `min_weight` (a flood of reports from one sender cannot block a template);
- a deciding campaign gives `actions[category]` (fraud: block, spam: flag by default) with
  reason `campaign:<id>`. The engine asks here after the block-list and before the allow-list
  and the thresholds (`Policy.apply`).

Retention: reports are kept in memory in daily shards (UTC days of `created_at`); when a day
leaves the retention it is dropped whole, from the campaigns and from every index, so the index
cannot grow forever (the database keeps every row, for `fanzha feedback export`).

One `Campaigns` per process follows the store (serving/feedback/store.py) by polling it every
`sync_every` seconds, and applies its own reports at once. Each model normalization served
gets its own `CampaignIndex` (a hot-swapped model with another table is matched on its own
normalization). If the store is down, matching goes on with what is in memory (counted as
`stale`), or is skipped when nothing could ever be loaded (counted as `skipped`).
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from data.template import shingles, template, template_hash
from serving.feedback.store import FeedbackStore, StoreError

SOURCES = ("analyst", "user_report", "appeal")
NUM_PERM = 64          # MinHash permutations; the similarity of a candidate is estimated on all of them
LSH_BANDS = (8, 4)     # LSH bands x rows (first 32 values): P(candidate) 0.68 at Jaccard 0.6, 0.89 at 0.7, 0.99 at 0.8
SHINGLE = 3            # character n-grams of the template
MIN_SHINGLE_CHARS = 10  # shorter templates are matched by their exact hash only
log = logging.getLogger("fanzha.feedback")


class FeedbackError(ValueError):
    """A feedback request that cannot be accepted (the service answers 4xx with this message)."""


def utc_day(ts: float) -> dt.date:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).date()


def category(label: str) -> str:
    return label.split(".", 1)[0]


@dataclass
class Report:
    id: int
    created_at: float
    label: str
    source: str
    sender: str | None
    campaign: str
    text: str

    @classmethod
    def from_row(cls, row: dict) -> "Report":
        """A store row (serving/feedback/store.py COLUMNS) as a report."""
        return cls(int(row["id"]), float(row["created_at"]), row["label"], row["source"], row.get("sender"),
                   row["campaign"], row["text"])


@dataclass
class Campaign:
    id: str
    reports: dict[int, Report] = field(default_factory=dict)
    _state: tuple | None = None

    def changed(self) -> None:
        self._state = None

    def state(self, appeal_weight: float) -> tuple[str | None, str | None, float]:
        """(analyst label or None, the campaign's label, weight), cached until a report changes."""
        return self._cached(appeal_weight)[0]

    def retired(self, appeal_weight: float = 1.0) -> bool:
        """Retired by the console (until an analyst labels it again)."""
        return self._cached(appeal_weight)[1]

    def _cached(self, appeal_weight: float) -> tuple[tuple, bool]:
        cached = self._state  # one read: another thread may reset it meanwhile
        if cached is not None and cached[0] == appeal_weight:
            return cached[1], cached[2]
        analyst = retired = None
        senders, labels, appeals = set(), Counter(), 0
        for r in list(self.reports.values()):  # ids increase with time: the last analyst row wins
            if r.source == "analyst":
                if analyst is None or r.id > analyst.id:
                    analyst = r
            elif r.source == "retire":
                if retired is None or r.id > retired.id:
                    retired = r
            elif r.source == "user_report":
                senders.add(r.sender or "")
                labels[r.label] += 1
            elif r.source == "appeal":
                appeals += 1
        label = analyst.label if analyst is not None else (labels.most_common(1)[0][0] if labels else "normal")
        value = (analyst.label if analyst is not None else None, label, len(senders) - appeal_weight * appeals)
        is_retired = retired is not None and (analyst is None or retired.id > analyst.id)
        self._state = (appeal_weight, value, is_retired)
        return value, is_retired

    def decision(self, rules) -> str | None:
        """The action this campaign takes on its variants under `rules`, or None (undecided,
        exempt or retired)."""
        (analyst, label, weight), retired = self._cached(rules.appeal_weight)
        if retired:
            return None
        if analyst is not None:
            return None if category(analyst) == "normal" else rules.actions.get(category(analyst))
        if category(label) == "normal" or weight < rules.min_weight:
            return None
        return rules.actions.get(category(label))

    def summary(self, rules) -> dict:
        analyst, label, weight = self.state(rules.appeal_weight)
        reports = list(self.reports.values())
        by_source = Counter(r.source for r in reports)
        decision = self.decision(rules)
        times = [r.created_at for r in reports]
        return {"id": self.id, "label": label, "weight": weight, "min_weight": rules.min_weight,
                "confirmed_by_analyst": analyst is not None and category(analyst) != "normal",
                "exempt": analyst is not None and category(analyst) == "normal",
                "retired": self.retired(rules.appeal_weight),
                "action": decision, "reports": dict(by_source), "size": len(self.reports),
                "first_seen": min(times) if times else None, "last_seen": max(times) if times else None}


_FMIX32 = (np.uint32(16), np.uint32(0x85EBCA6B), np.uint32(13), np.uint32(0xC2B2AE35), np.uint32(16))


class CampaignIndex:
    """Templates of the stored reports under one normalization: exact hash -> reports, and the
    distinct templates long enough for shingles in a MinHash LSH (datasketch), each template once.

    Signatures are datasketch MinHash values (scheme affine32, crc32 as the input hash: stable
    across processes, unlike the salted hash()), computed for a whole batch of texts in one
    vectorized pass; `tests/serving/test_feedback.py` checks them against `MinHash.update_batch`."""

    def __init__(self, normalize: Callable[[str], str]):
        from datasketch import MinHash, MinHashLSH  # imported where an index is built

        self.normalize = normalize
        self.lsh = MinHashLSH(num_perm=NUM_PERM, params=LSH_BANDS)
        self._minhash = MinHash(num_perm=NUM_PERM, hashfunc=zlib.crc32)  # carries the permutations
        a, b = self._minhash.permutations
        self._a, self._b = np.asarray(a, dtype=np.uint32), np.asarray(b, dtype=np.uint32)
        self.exact: dict[str, dict[int, str]] = {}      # template hash -> {report id: campaign}
        self.signature: dict[str, np.ndarray] = {}      # template hash -> MinHash values (in the LSH)
        self.of_report: dict[int, str] = {}             # report id -> template hash
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.of_report)

    def signatures(self, templates: list[str]) -> np.ndarray:
        """[len(templates), NUM_PERM] uint32: each template's MinHash values, as
        `MinHash(num_perm=NUM_PERM, hashfunc=zlib.crc32).update_batch(shingles(t))` gives them."""
        hashes, starts = [], []
        for t in templates:
            starts.append(len(hashes))
            hashes.extend(map(zlib.crc32, shingles(t, SHINGLE)))
        hv = np.array(hashes, dtype=np.uint32)
        s1, m1, s2, m2, s3 = _FMIX32
        hv ^= hv >> s1
        hv *= m1
        hv ^= hv >> s2
        hv *= m2
        hv ^= hv >> s3
        permuted = hv[:, None] * self._a + self._b  # uint32 arithmetic wraps: mod 2^32, as datasketch's
        return np.minimum.reduceat(permuted, np.array(starts, dtype=np.intp), axis=0)

    def add(self, report: Report) -> None:
        t = template(self.normalize(report.text))
        h = template_hash(t)
        with self._lock:
            holders = self.exact.setdefault(h, {})
            holders[report.id] = report.campaign
            self.of_report[report.id] = h
            if len(holders) == 1 and len(t) >= MIN_SHINGLE_CHARS:
                values = self.signatures([t])[0]
                self.signature[h] = values
                self._minhash.hashvalues = values
                self.lsh.insert(h, self._minhash, check_duplication=False)

    def remove(self, report_id: int) -> None:
        with self._lock:
            h = self.of_report.pop(report_id, None)
            if h is None:
                return
            holders = self.exact.get(h)
            if holders is not None:
                holders.pop(report_id, None)
                if not holders:
                    del self.exact[h]
                    if self.signature.pop(h, None) is not None:
                        self.lsh.remove(h)

    def match(self, normalized: str, similarity: float) -> dict[str, float]:
        return self.match_many([normalized], similarity)[0]

    def match_many(self, normalized: list[str], similarity: float) -> list[dict[str, float]]:
        """Per text: campaign -> best similarity (1.0 for the exact template; else the MinHash
        estimate of the templates' shingle Jaccard, kept when >= `similarity`)."""
        templates = [template(n) for n in normalized]
        hashes = [template_hash(t) for t in templates]
        out: list[dict[str, float]] = [{} for _ in templates]
        with self._lock:
            fuzzy = [k for k, t in enumerate(templates) if len(t) >= MIN_SHINGLE_CHARS] if self.signature else []
            for k, h in enumerate(hashes):
                for campaign in (self.exact.get(h) or {}).values():
                    out[k][campaign] = 1.0
            if not fuzzy:
                return out
            values = self.signatures([templates[k] for k in fuzzy])
            query = self._minhash
            for row, k in zip(values, fuzzy):
                query.hashvalues = row
                found = out[k]
                for key in self.lsh.query(query):
                    if key == hashes[k]:
                        continue
                    sim = float(np.count_nonzero(self.signature[key] == row)) / NUM_PERM
                    if sim >= similarity:
                        for campaign in self.exact[key].values():
                            if sim > found.get(campaign, 0.0):
                                found[campaign] = sim
        return out


class Campaigns:
    """This process's view of the feedback store: reports by day, campaigns, one index per
    normalization, kept current by `sync` (a thread started with `start`)."""

    def __init__(self, store: FeedbackStore | None, rules: Callable[[], object], metrics=None,
                 labels: tuple[str, ...] = (), sync_every: float = 0.25, clock: Callable[[], float] = time.time):
        self.store, self.rules, self.metrics, self.clock = store, rules, metrics, clock
        self.labels = frozenset(labels) | {"normal", "spam", "fraud"}
        self.sync_every = sync_every
        self.reports: dict[int, Report] = {}
        self.campaigns: dict[str, Campaign] = {}
        self.days: dict[dt.date, set[int]] = {}
        self.indexes: dict = {}                 # normalization table sha256 -> index
        self._users: dict = {}                  # ... -> models using it
        self.last_id, self.last_seq = 0, 0
        self._seen: set[int] = set()            # ids applied (or skipped) within the re-read overlap
        self.loaded = False                     # the store was read at least once
        self.healthy = store is None            # the last sync reached the store
        self.last_sync: float | None = None
        self.last_error: str | None = None
        self._ttl: int | None = None
        self.until_id: int | None = None        # a snapshot: ignore reports after this id
        self.page = 50_000                      # rows read from the store per query
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if store is None:
            self.loaded = True

    # -- indexes -------------------------------------------------------------------------
    def matcher(self, normalize: Callable[[str], str]) -> "Matcher":
        """The matcher of one model normalization: its index, built from what is in memory, is
        shared by every model with the same table (`Normalizer.sha256`) until `release`d by all."""
        key = getattr(normalize, "sha256", None) or id(normalize)
        with self._lock:
            if key not in self.indexes:
                index = CampaignIndex(normalize)
                for report in self.reports.values():
                    index.add(report)
                self.indexes[key], self._users[key] = index, 0
            self._users[key] += 1
            return Matcher(self, self.indexes[key], key)

    def release(self, matcher: "Matcher") -> None:
        """A model that used `matcher` is gone (hot swap): its index goes with its last user."""
        with self._lock:
            if matcher.key in self._users:
                self._users[matcher.key] -= 1
                if self._users[matcher.key] <= 0:
                    del self._users[matcher.key], self.indexes[matcher.key]

    # -- applying reports ----------------------------------------------------------------
    def _cutoff(self) -> dt.date:
        return utc_day(self.clock()) - dt.timedelta(days=max(1, int(self.rules().ttl_days)) - 1)

    def _apply(self, row: dict) -> Report | None:
        fid = int(row["id"])
        if fid in self._seen or fid in self.reports:
            return self.reports.get(fid)
        self._seen.add(fid)
        if row.get("deleted_at") is not None or utc_day(float(row["created_at"])) < self._cutoff():
            return None
        report = Report.from_row(row)
        self.reports[fid] = report
        self.days.setdefault(utc_day(report.created_at), set()).add(fid)
        campaign = self.campaigns.setdefault(report.campaign, Campaign(report.campaign))
        campaign.reports[fid] = report
        campaign.changed()
        for index in self.indexes.values():
            index.add(report)
        return report

    def _remove(self, fid: int) -> None:
        report = self.reports.pop(fid, None)
        if report is None:
            return
        self.days.get(utc_day(report.created_at), set()).discard(fid)
        campaign = self.campaigns.get(report.campaign)
        if campaign is not None:
            campaign.reports.pop(fid, None)
            campaign.changed()
            if not campaign.reports:
                del self.campaigns[report.campaign]
        for index in self.indexes.values():
            index.remove(fid)

    def _expire(self) -> int:
        """Drop every day before the retention, whole; the number of reports dropped."""
        cutoff, dropped = self._cutoff(), 0
        for day in [d for d in self.days if d < cutoff]:
            for fid in list(self.days.pop(day)):
                self._remove(fid)
                dropped += 1
        return dropped

    # -- following the store -------------------------------------------------------------
    def sync(self) -> int:
        """Apply the store's new reports and undos; the number of changes (StoreError when down)."""
        if self.store is None:
            return 0
        ttl = int(self.rules().ttl_days)
        since = self.clock() - ttl * 86400.0 - 86400.0
        try:
            if self._ttl is not None and ttl > self._ttl:  # a longer retention: read the older days again
                self._seen.clear()
                self.last_id = self.last_seq = 0
            rows = self.store.rows_after(self.last_id, since, self.page)
            while rows and len(rows) % self.page == 0:  # a full page: read on until the store has no more
                more = self.store.rows_after(int(rows[-1]["id"]), since, self.page, overlap=0)
                rows += more
                if len(more) < self.page:
                    break
            undos = self.store.deletes_after(self.last_seq)
        except StoreError as e:
            self.healthy, self.last_error = False, str(e)
            if self.metrics is not None:
                self.metrics.feedback_sync_failures.inc()
            raise
        changes = 0
        with self._lock:
            self._ttl = ttl
            for row in rows:
                if self.until_id is not None and int(row["id"]) > self.until_id:
                    continue
                if int(row["id"]) not in self._seen and self._apply(row) is not None:
                    changes += 1
                self.last_id = max(self.last_id, int(row["id"]))
            for seq, fid in undos:
                if fid in self.reports:
                    self._remove(fid)
                    changes += 1
                self.last_seq = max(self.last_seq, seq)
            changes += self._expire()
            floor = self.last_id - 4 * 256
            if len(self._seen) > 8192:
                self._seen = {i for i in self._seen if i > floor}
        self.loaded, self.healthy, self.last_sync, self.last_error = True, True, time.time(), None
        self._gauge()
        return changes

    def _gauge(self) -> None:
        if self.metrics is not None:
            rules = self.rules()
            self.metrics.campaigns_active.set(sum(1 for c in list(self.campaigns.values()) if c.decision(rules)))

    def start(self) -> "Campaigns":
        """Load now if the store answers (else keep trying in the background), then follow it."""
        if self.store is None:
            return self
        try:
            self.sync()
        except StoreError as e:
            log.error("feedback store unavailable at start, campaign checks skipped until it answers: %s", e)
        self._thread = threading.Thread(target=self._run, name="fanzha-feedback-sync", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.sync_every):
            was_healthy = self.healthy
            try:
                self.sync()
                if not was_healthy:
                    log.warning("feedback store answers again: campaign checks are current")
            except StoreError as e:
                if was_healthy:  # once per outage, not at every poll
                    log.error("feedback sync failed, deciding on what is in memory until the store answers: %s", e)
            except Exception:  # noqa: BLE001 — the thread must survive a bad row
                log.exception("feedback sync failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # -- feedback ------------------------------------------------------------------------
    def check(self, text, label, source) -> None:
        """FeedbackError (a 4xx) for a report that cannot be taken."""
        if source not in SOURCES:
            raise FeedbackError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
        if not isinstance(label, str) or label not in self.labels:
            known = ", ".join(sorted(self.labels))
            raise FeedbackError(f"unknown label {label!r}; known: {known}")
        if not isinstance(text, str) or not text.strip():
            raise FeedbackError("empty text")
        if source == "appeal" and label != "normal":
            raise FeedbackError("an appeal contests a block: its label is normal")
        if source == "user_report" and category(label) == "normal":
            raise FeedbackError("a user report labels a message spam or fraud; contest a block with source appeal")

    def submit(self, matcher: "Matcher", text: str, label: str, source: str, sender: str | None = None,
               message_id: str | None = None, note: str | None = None) -> dict:
        """Store one report, joined to the campaign its text matches (or founding one), and apply
        it here at once. FeedbackError for a bad report, StoreError when the store is down."""
        self.check(text, label, source)
        if self.store is None:
            raise StoreError("no feedback database configured (set FANZHA_FEEDBACK_DB)")
        rules = self.rules()
        found = matcher.index.match(matcher.index.normalize(text), rules.similarity)
        joined = max(found.items(), key=lambda kv: (kv[1], kv[0]))[0] if found else None
        row = self.store.add(text, label, source, sender, message_id, note, campaign=joined)
        with self._lock:
            self._apply(row)
        self._gauge()
        if self.metrics is not None:
            self.metrics.feedback.labels(source, label).inc()
        campaign = self.campaigns.get(row["campaign"])
        return {"id": row["id"], "campaign": row["campaign"], "joined": joined is not None,
                "similarity": found.get(joined) if joined else None,
                "campaign_state": campaign.summary(rules) if campaign else None}

    def undo(self, fid: int) -> dict | None:
        """Undo a report everywhere (None: unknown id)."""
        if self.store is None:
            raise StoreError("no feedback database configured (set FANZHA_FEEDBACK_DB)")
        row = self.store.delete(fid)
        if row is None:
            return None
        with self._lock:
            self._remove(fid)
            self._seen.add(fid)
        self._gauge()
        campaign = self.campaigns.get(row["campaign"])
        return {"id": fid, "deleted": bool(row.get("just_deleted")), "campaign": row["campaign"],
                "campaign_state": campaign.summary(self.rules()) if campaign else None}

    def retire(self, campaign_id: str, by: str) -> dict | None:
        """Stop a campaign deciding (the scam is over, or it was founded by mistake) without
        calling it legitimate: a `retire` row, which `fanzha feedback export` leaves out. A later
        analyst label revives it. None for an unknown campaign; StoreError when the store is down."""
        if self.store is None:
            raise StoreError("no feedback database configured (set FANZHA_FEEDBACK_DB)")
        with self._lock:
            campaign = self.campaigns.get(campaign_id)
            newest = max(campaign.reports.values(), key=lambda r: r.id) if campaign and campaign.reports else None
        if newest is None:
            return None
        label = campaign.state(self.rules().appeal_weight)[1] or newest.label
        row = self.store.add(newest.text, label, "retire", None, None, f"retired by {by}", campaign=campaign_id)
        with self._lock:
            self._apply(row)
        self._gauge()
        return campaign.summary(self.rules())

    def examples(self, campaign_ids) -> dict[str, str]:
        """The newest report's text of each campaign (callers mask it before showing it)."""
        out = {}
        with self._lock:
            for cid in campaign_ids:
                campaign = self.campaigns.get(cid)
                if campaign is not None and campaign.reports:
                    out[cid] = max(campaign.reports.values(), key=lambda r: r.id).text
        return out

    def queue(self) -> list[dict]:
        """Appeals no analyst has answered since (newest first): the review queue."""
        out = []
        with self._lock:
            for campaign in self.campaigns.values():
                last_analyst = max((r.id for r in campaign.reports.values() if r.source == "analyst"), default=0)
                for r in campaign.reports.values():
                    if r.source == "appeal" and r.id > last_analyst:
                        out.append({"id": r.id, "created_at": r.created_at, "text": r.text, "sender": r.sender,
                                    "campaign": campaign.id})
        return sorted(out, key=lambda r: -r["id"])

    def listing(self) -> list[dict]:
        rules = self.rules()
        with self._lock:
            campaigns = list(self.campaigns.values())
        return sorted((c.summary(rules) for c in campaigns), key=lambda s: -(s["last_seen"] or 0))

    def info(self) -> dict:
        rules = self.rules()
        return {"loaded": self.loaded, "healthy": self.healthy, "last_sync": self.last_sync,
                "last_error": self.last_error, "reports": len(self.reports), "campaigns": len(self.campaigns),
                "deciding": sum(1 for c in list(self.campaigns.values()) if c.decision(rules)),
                "days": len(self.days), "indexes": len(self.indexes)}


class Matcher:
    """What the decision engine asks (`Policy.apply`): does a normalized text belong to a
    campaign that decides? One per model normalization."""

    def __init__(self, campaigns: Campaigns, index: CampaignIndex, key=None):
        self.campaigns, self.index, self.key = campaigns, index, key

    def decide_many(self, normalized: list[str], rules) -> list[tuple[str, str] | None]:
        """Per normalized text: (action, "campaign:<id>") or None. An exempt campaign at least as
        similar as the best deciding one wins (no campaign decision): an analyst's `normal`
        guards a template against poisoned reports."""
        campaigns = self.campaigns
        metrics = campaigns.metrics
        if not campaigns.loaded:
            if metrics is not None:
                metrics.campaign_checks_degraded.labels("skipped").inc(len(normalized))
            return [None] * len(normalized)
        if not campaigns.healthy and metrics is not None:
            metrics.campaign_checks_degraded.labels("stale").inc(len(normalized))
        if not len(self.index):
            return [None] * len(normalized)
        out: list[tuple[str, str] | None] = []
        for found in self.index.match_many(normalized, rules.similarity):
            out.append(self._decision(found, rules))
        return out

    def _decision(self, found: dict[str, float], rules) -> tuple[str, str] | None:
        if not found:
            return None
        table = self.campaigns.campaigns
        best, best_sim, best_action, exempt_sim = None, -1.0, None, -1.0
        for cid, sim in found.items():
            campaign = table.get(cid)
            if campaign is None:
                continue
            action = campaign.decision(rules)
            if action is not None:
                if (sim, cid) > (best_sim, best or ""):
                    best, best_sim, best_action = cid, sim, action
            elif campaign.state(rules.appeal_weight)[0] == "normal":
                exempt_sim = max(exempt_sim, sim)
        if best is None or exempt_sim >= best_sim:
            return None
        metrics = self.campaigns.metrics
        if metrics is not None:
            metrics.campaign_hits.labels(best_action).inc()
        return best_action, f"campaign:{best}"


def attach_snapshot(predictor, target: str, until_id: int | None = None) -> Campaigns:
    """Load the feedback store once (reports up to `until_id`) and make `predictor` decide with
    its campaigns: `fanzha score --feedback-db` (no thread follows the store: a batch run sees
    the store as it was when it started). StoreError when the store cannot be read."""
    from serving.feedback.store import open_store

    campaigns = Campaigns(open_store(target), lambda: predictor.policy.campaigns, labels=predictor.labels)
    campaigns.until_id = until_id
    campaigns.sync()
    predictor.use_campaigns(campaigns)
    return campaigns
