"""Data hygiene: scrub label leaks, normalize, drop (near) duplicates, resolve label conflicts,
and split by group so that no conversation or near-duplicate crosses a split.

    python -m data.sources --out /tmp/fanzha-data      # runs clean() and split_records() on the real data

Why: the shared sets repeat the same SMS with different digits or masks (`x`, `XXX`, `某`,
`DIGIT`, `URL`) and sometimes with different labels (an operator SMS is `spam` in spam80w and
`正常` in telecom_fraud_texts); speaker names ("骗子：…") leak the label; utterances of one
conversation are near-identical in style. Any of these across train/test inflates the scores.
"""
from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import lru_cache

from data.normalize import normalize
from data.taxonomy import Taxonomy, load_taxonomy

SPLITS = ("train", "validation", "test")

# Role words that name which side a speaker is on; as a "X：" prefix or inside a stage direction
# ("（骗子已消失）") they give the label away. Only chat transcripts have speakers: in SMS the same
# words are content ("商务部发言人：…", "嫌疑人特征：…" are hard negatives), so SMS are not scrubbed.
ROLE_WORDS = ("诈骗者", "诈骗犯", "诈骗分子", "骗子", "受害人", "受害者", "嫌疑人", "嫌疑", "陌生人", r"发言人\d*")
CHAT_SOURCES = frozenset({"golfxiao_dialogs", "teleantifraud_synth"})
# Which legitimate rows fit a fraud block threshold (config key certify_legit): all of them, or
# "sms": the SMS-like ones, without chat utterances (the noisiest legitimate rows: victims' turns
# quote the scammer). One rule for the served certificate (serving/certify.py) and for the
# threshold `fanzha evaluate` reports blocked recall at (training/evaluate.py).
LEGIT_SETS = ("all", "sms")


def legit_for_chat_threshold(is_legit, sources):
    """The legitimate rows /chat's certificate (`chat_block_threshold`, under `certify_legit: sms`)
    is fitted on, and which they are: the chat utterances alone ("chat"), so that the false-block
    budget holds on the channel it decides. Fitted on every legitimate row instead, the easy SMS
    rows diluted the budget: 0.22 % of held-out legitimate chat turns were blocked at a threshold
    certified at 0.1 % overall (SMS model of 2026-12-02). Every legitimate row ("all") when there
    is no chat utterance to fit on."""
    import numpy as np

    is_legit = np.asarray(is_legit, dtype=bool)
    chat = is_legit & chat_rows(sources)
    return (chat, "chat") if chat.any() else (is_legit, "all")


def channel_thresholds(fraud_score, is_legit, sources, which: str, max_fpr: float, confidence: float) -> dict:
    """The block thresholds of both channels, fitted as every certificate is (serving/certify.py)
    and as `fanzha evaluate` reports them: `threshold` on the legitimate rows `certify_legit: which`
    names (`fitted`, their mask), and with "sms" also /chat's `chat_threshold` on the legitimate
    chat utterances (`chat_legit` says which rows: `legit_for_chat_threshold`); None with "all"."""
    from data.calibration import block_threshold

    fitted = legit_for_threshold(is_legit, sources, which)
    out = {"threshold": block_threshold(fraud_score, fitted, max_fpr, confidence=confidence), "fitted": fitted,
           "chat_threshold": None, "chat_legit": None}
    if which == "sms":
        chat_fit, out["chat_legit"] = legit_for_chat_threshold(is_legit, sources)
        out["chat_threshold"] = block_threshold(fraud_score, chat_fit, max_fpr, confidence=confidence)
    return out


def legit_for_threshold(is_legit, sources, which: str):
    """The boolean mask of legitimate rows that fit the block threshold under `certify_legit: which`."""
    import numpy as np

    if which not in LEGIT_SETS:
        raise ValueError(f"certify_legit must be one of {LEGIT_SETS}, got {which!r}")
    is_legit = np.asarray(is_legit, dtype=bool)
    return is_legit if which == "all" else is_legit & ~chat_rows(sources)


def chat_rows(sources):
    """Boolean mask of the rows whose source is chat utterances (CHAT_SOURCES): they reach the
    service through /chat and are judged on its certificate; every other row is an SMS."""
    import numpy as np

    return np.array([source in CHAT_SOURCES for source in sources], dtype=bool)


_BOUNDARY = r"(^|[\n。！？!?；;…])\s*"
_TOKEN = r"[^\s，。！？,.!?：:；;（）()“”\"']{0,3}"  # "骗子小王：", "受害人A：", not a whole clause
_ROLE_PREFIX = re.compile(_BOUNDARY + _TOKEN + "(?:" + "|".join(ROLE_WORDS) + ")" + _TOKEN + r"\s*[:：]\s*")
_STAGE = re.compile(r"[（(][^（）()]{0,60}(?:诈骗者|诈骗犯|骗子|受害人|受害者|嫌疑人)[^（）()]{0,60}[）)]")


@lru_cache(maxsize=4096)
def _name_prefix(names: frozenset) -> re.Pattern | None:
    names = sorted((n for n in names if n), key=len, reverse=True)
    if not names:
        return None
    return re.compile(_BOUNDARY + "(?:" + "|".join(map(re.escape, names)) + r")\s*[:：]\s*")


def scrub_speakers(text: str, names=()) -> str:
    """Remove speaker labels written into a text: "X：" prefixes (at the start or after a sentence
    end) where X is one of `names` or contains a role word, and stage directions naming a role."""
    out = _ROLE_PREFIX.sub(r"\1", text)
    pattern = _name_prefix(frozenset(n.strip() for n in names))
    if pattern is not None:
        out = pattern.sub(r"\1", out)
    return _STAGE.sub("", out)


_MASK_WORDS = re.compile(r"cellphone|hotline|phone|digit|url|name|place|email")
_SOME = re.compile(r"某+")
_X_DIGITS = re.compile(r"(?<![a-wyz])[x\d]+(?![a-wyz])")  # `x` masks, not the x of "vx"/"box"
_NON_WORD = re.compile(r"[\W_]+")
_HASHES = re.compile(r"#+")


def near_dup_key(text: str, normalized: bool = False) -> str:
    """Normalized text with punctuation/whitespace removed and every digit run, `x` mask, `某` and
    mask token (DIGIT, URL, NAME, PHONE, …) collapsed to `#`: SMS that differ only there collide.
    `normalized=True` skips normalize() for a text that already went through it."""
    text = text if normalized else normalize(text)
    t = _NON_WORD.sub("", text)
    t = _HASHES.sub("#", _X_DIGITS.sub("#", _SOME.sub("#", _MASK_WORDS.sub("#", t))))
    return t if t.strip("#") else "=" + text  # nothing but masks: only exact copies match


def resolve_label(labels, tax: Taxonomy) -> str | None:
    """The label allowed by every one of `labels` (intersection of their class sets), or None.
    spam ∩ not_fraud = spam; fraud.loan ∩ fraud = fraud.loan; fraud ∩ not_fraud = None; disjoint
    fine labels inside one coarse label fall back to it: fraud.loan vs fraud.other -> fraud."""
    labels = list(dict.fromkeys(labels))
    allowed = set(tax.allowed(labels[0]))
    for label in labels[1:]:
        allowed &= set(tax.allowed(label))
    if len(allowed) == 1:
        return next(iter(allowed))
    for label in [*labels, *tax.coarse]:
        if allowed and set(tax.allowed(label)) == allowed:
            return label
    if not allowed:
        # Sources disagree only on the fine type (fraud.investment vs fraud.other): the text is
        # certainly fraud, so keep it under the smallest coarse label that covers both.
        union = set().union(*(tax.allowed(label) for label in labels))
        covering = [c for c, members in tax.coarse.items() if union <= set(members)]
        if covering:
            return min(covering, key=lambda c: len(tax.coarse[c]))
    return None


@dataclass
class HygieneReport:
    """Counts of everything clean() changed or removed; nothing leaves without a count."""

    input: Counter = field(default_factory=Counter)          # source -> records in
    scrubbed: Counter = field(default_factory=Counter)       # source -> texts with speaker labels removed
    emptied: Counter = field(default_factory=Counter)        # source -> empty after cleaning (dropped)
    exact_dups: Counter = field(default_factory=Counter)     # source -> same normalized text as a kept one
    near_dups: Counter = field(default_factory=Counter)      # source -> same near-dup key, other text
    narrowed: Counter = field(default_factory=Counter)       # "source: from -> to" label made finer
    resolved: Counter = field(default_factory=Counter)       # "a | b -> c" clusters with mixed labels kept
    conflicts: Counter = field(default_factory=Counter)      # "source: label" rows dropped, no common class
    conflict_keys: int = 0
    cross_source: Counter = field(default_factory=Counter)   # "a + b" near-dup clusters spanning sources
    conflict_examples: list = field(default_factory=list)
    kept: Counter = field(default_factory=Counter)           # "source: label" -> rows kept

    def to_dict(self) -> dict:
        return {k: (dict(v) if isinstance(v, Counter) else v) for k, v in self.__dict__.items()}

    def summary(self) -> str:
        def line(name, c):
            return f"  {name}: {sum(c.values())} " + (str(dict(c.most_common(8))) if c else "")
        return "\n".join([f"hygiene: {sum(self.input.values())} records in -> {sum(self.kept.values())} kept",
                          line("speaker labels scrubbed", self.scrubbed), line("empty after cleaning", self.emptied),
                          line("exact duplicates removed", self.exact_dups),
                          line("near duplicates removed", self.near_dups),
                          line("mixed-label clusters resolved", self.resolved),
                          line("labels narrowed by a duplicate", self.narrowed),
                          line(f"conflicting rows dropped ({self.conflict_keys} keys)", self.conflicts),
                          line("near-dup clusters across sources", self.cross_source)])


def clean(records, tax: Taxonomy | None = None,
          scrub_sources=CHAT_SOURCES) -> tuple[list[dict], HygieneReport]:
    """Scrub speaker labels (in `scrub_sources`), normalize and deduplicate. One record per near-dup key survives: the first in input
    order, with the intersection of the cluster's labels; a cluster without a common class is
    dropped whole and counted (its texts are ambiguous, e.g. "好的" said by fraudster and victim)."""
    tax, report = tax or load_taxonomy(), HygieneReport()
    clusters: dict[str, list[dict]] = defaultdict(list)
    for rec in records:
        report.input[rec["source"]] += 1
        scrubbed = scrub_speakers(rec["text"]) if rec["source"] in scrub_sources else rec["text"]
        if scrubbed != rec["text"]:
            report.scrubbed[rec["source"]] += 1
        text = normalize(scrubbed)
        if not text:
            report.emptied[rec["source"]] += 1
            continue
        clusters[near_dup_key(text, normalized=True)].append({**rec, "text": text})
    kept = []
    for rows in clusters.values():
        keep = rows[0]
        label = resolve_label([r["label"] for r in rows], tax) if len(rows) > 1 else keep["label"]
        if len({r["source"] for r in rows}) > 1:
            report.cross_source[" + ".join(sorted({r["source"] for r in rows}))] += 1
        if label is None:
            report.conflict_keys += 1
            for r in rows:
                report.conflicts[f"{r['source']}: {r['label']}"] += 1
            if len(report.conflict_examples) < 20:
                report.conflict_examples.append({"text": keep["text"][:80],
                                                 "labels": sorted({f"{r['source']}: {r['label']}" for r in rows})})
            continue
        if len({r["label"] for r in rows}) > 1:
            report.resolved[" | ".join(sorted({r["label"] for r in rows})) + f" -> {label}"] += 1
        seen = {keep["text"]}
        for r in rows[1:]:
            (report.exact_dups if r["text"] in seen else report.near_dups)[r["source"]] += 1
            seen.add(r["text"])
        if label != keep["label"]:
            report.narrowed[f"{keep['source']}: {keep['label']} -> {label}"] += 1
        report.kept[f"{keep['source']}: {label}"] += 1
        kept.append({**keep, "label": label})
    return kept, report


def dedup_report(records, tax: Taxonomy | None = None) -> HygieneReport:
    """What clean() would remove from `records`, without keeping the result."""
    return clean(records, tax)[1]


def _bucket(name: str, seed: int, fractions) -> str:
    h = int.from_bytes(hashlib.blake2b(f"{seed}\0{name}".encode(), digest_size=8).digest(), "big") / 2 ** 64
    total, acc = sum(fractions), 0.0
    for split, frac in zip(SPLITS, fractions):
        acc += frac / total
        if h < acc:
            return split
    return SPLITS[len(fractions) - 1]


def split_records(records, fractions=(0.8, 0.1, 0.1), seed=0) -> list[dict]:
    """Copies of `records` with a "split". Records sharing a group (conversation) or a near-dup key
    are joined (union-find) and each joined component goes wholly to the split its hash picks."""
    if len(fractions) != len(SPLITS) or min(fractions) < 0 or sum(fractions) <= 0:
        raise ValueError(f"fractions must be {len(SPLITS)} non-negative numbers, got {fractions}")
    parent: dict[str, str] = {}

    def find(x):
        root = x
        while parent.setdefault(root, root) != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    nodes = []
    for rec in records:
        g, k = "g\0" + str(rec["group"]), "k\0" + near_dup_key(rec["text"])
        a, b = find(g), find(k)
        if a != b:
            parent[max(a, b)] = min(a, b)
        nodes.append(g)
    # Name each component by its smallest member so the hash does not depend on record order.
    name: dict[str, str] = {}
    for node in parent:
        root = find(node)
        name[root] = min(name.get(root, node), node)
    buckets = {}
    out = []
    for rec, g in zip(records, nodes):
        root = find(g)
        if root not in buckets:
            buckets[root] = _bucket(name[root], seed, fractions)
        out.append({**rec, "split": buckets[root]})
    return out


def split_report(split_records_: list[dict]) -> dict:
    """Sizes and label counts per split, a leak check (groups or near-dup keys on two sides) and
    warnings where a label is missing from a split or its share is far from its overall share."""
    sizes = Counter(r["split"] for r in split_records_)
    labels = defaultdict(Counter)
    sides = defaultdict(set)
    for r in split_records_:
        labels[r["split"]][r["label"]] += 1
        sides["g\0" + str(r["group"])].add(r["split"])
        sides["k\0" + near_dup_key(r["text"])].add(r["split"])
    overall = Counter(r["label"] for r in split_records_)
    n = len(split_records_) or 1
    warnings = []
    for split in SPLITS:
        m = sizes[split] or 1
        for label, count in sorted(overall.items()):
            share, expected = labels[split][label] / m, count / n
            if labels[split][label] == 0 and sizes[split]:
                warnings.append(f"warning: no {label!r} in {split}")
            elif count >= 50 and abs(share - expected) > 0.5 * expected:
                warnings.append(f"warning: {label!r} is {share:.1%} of {split} vs {expected:.1%} overall")
    leaks = sum(1 for s in sides.values() if len(s) > 1)
    if leaks:
        warnings.append(f"error: {leaks} groups or near-dup keys appear in more than one split")
    return {"sizes": {s: sizes[s] for s in SPLITS}, "labels": {s: dict(labels[s]) for s in SPLITS},
            "leaks": leaks, "warnings": warnings}
