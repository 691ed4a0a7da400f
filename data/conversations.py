"""Conversations as ordered turns with role markers, and windows of the last K turns as examples.

    python -m data.conversations --out artifacts/data/chat [--window 4] [--train-windows 4] [--max-length 192]

Roles, not names: the first speaker of a conversation is 甲, everyone else is 乙 ("甲：…\n乙：…").
Speaker names leak the label (骗子小王, 受害人) and 3+ parties occur only in the meeting
transcripts (the golfxiao negatives), so multi-party chats collapse onto two roles and neither
a name nor the number of participants can become a feature. The caller of a phone call
(teleantifraud `left`) speaks first, so it is 甲.

An example is the window of the last K turns ending at turn t (fewer at the start), newest last;
one per prefix, so the model learns to judge a conversation as it unfolds. Once the window no
longer shows the opening turn, the opening's first 40 characters (ANCHOR) come first: the pretext
of a call ("这里是银行客服，您的账户异常…", "欢迎参加…电话会议") is what makes a later "好的，谢谢，
再见" a scam's or a service call's — without it, the closing turns of scams (labelled fraud) and
of service calls (normal) are the same text, and the max over prefixes turns that into false
alarms (measured: 24 of 222 validation normal conversations at 0.9 without the anchor). A window
longer than the model keeps its TAIL (the newest turns whole, the oldest cut from its start):
`model_inputs` fits the normalized window into max_length - 2 characters (data.encoding.prepare,
keep="tail"; a character is at least one token), for training and serving alike. Labels:
- golfxiao_dialogs: a window is fraud of the conversation's type once the conversation has had a
  fraudster turn (`is_fraud` True) at or before t, normal before; conversations of the `none`
  file (meeting transcripts) are normal. Conversations from a fraud file with no fraudster turn
  marked are UNLABELLED and left out of training and evaluation (on inspection they mix scams
  whose fraudster was not marked — "诈骗者李伟" with is_fraud False —, victims' retellings and
  police reports); the test split's are written to conversations_unlabelled.jsonl as a diagnostic.
- teleantifraud_synth (no per-turn labels): a fraud dialogue's windows are fraud from the
  caller's first turn on — the generator's fraudster states the pretext in its opening line
  (账户异常, 包裹被扣, 中奖, 您儿子出事了; checked on random samples) —; openers that also start
  normal dialogues ("您好") collide with them and are dropped by the label-conflict rule of
  data.hygiene.clean. Stage directions of the generator ("等待用户发言。") are not speech and are
  removed (counted). Normal dialogues' windows are normal.
Split: by conversation (data.hygiene.split_records over whole conversations; teleantifraud's
group is its tts_id, shared by variants of one seed), so no conversation crosses a split; then
windows are deduplicated in split order (train first), so a validation or test window never
repeats a training window. The training split keeps at most --train-windows windows per
conversation (more for long meetings): always the earliest half (early detection is the point),
plus a seeded sample.

Writes train/validation/test.jsonl (records {"text", "label", "source", "group", "split", "turn"}),
conversations_{validation,test}.jsonl ({"id", "source", "group", "turns": [{"speaker", "text"}],
"label", "fraud_turns"}), conversations_unlabelled.jsonl and card.json / card.md.
"""
from __future__ import annotations

import argparse
import itertools
import json
import random
import re
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from data.encoding import prepare
from data.hygiene import SPLITS, clean, scrub_speakers, split_records, split_report
from data.normalize import normalize
from data.sources import (FILES, DataError, LoadReport, _csv_rows, _label, _TRUE, _FALSE, data_dir, json_records,
                          unlabelled_conversation,
                          write_jsonl)
from data.taxonomy import Taxonomy, load_taxonomy

FIRST, OTHER = "甲", "乙"
WINDOW = 4        # turns per example
ANCHOR = 40       # characters of the opening turn kept in front of a window that no longer shows it
MAX_LENGTH = 192  # tokens of the chat model (configs/chat.yaml)
_STAGE_DIRECTION = re.compile(r"^\s*等待(?:用户|对方|您).{0,14}$")  # "等待用户发言。": generator output, not speech


@dataclass
class Conversation:
    id: str
    source: str
    group: str
    label: str | None                                # taxonomy label; None: unlabelled (left out)
    turns: list[dict] = field(default_factory=list)  # [{"speaker", "text"}] in order
    fraud_turns: list[int] = field(default_factory=list)  # turns by the fraudster
    first_fraud: int | None = None                   # windows ending here or later are fraud

    def window_label(self, end: int) -> str:
        return self.label if self.first_fraud is not None and end >= self.first_fraud else "normal"

    def to_record(self) -> dict:
        d = asdict(self)
        d.pop("first_fraud")
        return d


def roles(speakers: Sequence) -> list[str]:
    """甲 for every turn of the first speaker, 乙 for every other speaker's."""
    first = speakers[0] if len(speakers) else None
    return [FIRST if s == first else OTHER for s in speakers]


def prefix_windows(turns: Sequence[dict], k: int = WINDOW, anchor: int = ANCHOR) -> list[tuple[str, str]]:
    """(opening, recent) for each prefix: `recent` is its last k turns, role-marked, newest last;
    `opening` the first `anchor` characters of turn 0 once the window no longer shows it, else ""."""
    marks = roles([t["speaker"] for t in turns])  # the first speaker of a prefix is the first overall
    lines = [f"{m}：{t['text']}" for m, t in zip(marks, turns)]
    return [(lines[0][: anchor + 2] if anchor and end >= k else "", "\n".join(lines[max(0, end - k + 1): end + 1]))
            for end in range(len(lines))]


def model_inputs(turns: Sequence[dict], max_length: int, k: int = WINDOW, anchor: int = ANCHOR,
                 normalizer=None) -> list[str]:
    """What the model scores after each turn, identical in training and serving: the opening
    (when anchored) and the recent turns, normalized, within max_length - 2 characters — the
    recent part keeps its tail (data.encoding.prepare keep="tail"), so the newest turns stay whole.
    `normalizer`: a serving artifact's (Predictor.normalize); default data.normalize.normalize."""
    norm = normalizer or normalize
    budget, out = max_length - 2, []
    for opening, recent in prefix_windows(turns, k, anchor):
        head = norm(opening)[: budget // 2]
        if not head:
            out.append(prepare(recent, max_length, keep="tail", normalizer=norm))
            continue
        text = norm(head + "\n" + prepare(recent, budget - len(head) + 1, keep="tail", normalizer=norm))
        out.append(text if len(text) <= budget else text[len(text) - budget:].lstrip())
    return out


def load_golfxiao_conversations(path=None, limit=None, report=None, tax=None) -> Iterator[Conversation]:
    """Rows grouped by `case`, in order; speaker names removed from contents as in data.sources."""
    source, tax = "golfxiao_dialogs", tax or load_taxonomy()
    path, report = Path(path or data_dir() / FILES[source]), report if report is not None else LoadReport()
    rows = _csv_rows(path, ("fraud_type", "case", "speaker", "content", "is_fraud"), limit)
    for case, group in itertools.groupby(rows, key=lambda item: item[1]["case"]):
        group = list(group)
        names = {r["speaker"].strip() for _, r in group if r["speaker"].strip()}
        label = _label(tax, source, group[0][1]["fraud_type"], path, f"line {group[0][0]}")
        # id: case + first line (a few cases occur in two separate blocks); group: the case
        conv = Conversation(f"{source}:{case}@{group[0][0]}", source, f"{source}:{case}", label)
        for lineno, r in group:
            report.rows[source] += 1
            text = scrub_speakers(r["content"], names).strip()
            if not text:  # checked first, as in data.sources: empty rows may lack is_fraud too
                report.skip(source, "empty turn (after removing speaker names)", f"line {lineno}")
                continue
            flag = r["is_fraud"].strip().lower()
            if flag not in _TRUE | _FALSE:
                raise DataError(f"{path}, line {lineno}: unknown is_fraud value {r['is_fraud']!r}")
            if flag in _TRUE:
                conv.fraud_turns.append(len(conv.turns))
            conv.turns.append({"speaker": r["speaker"].strip(), "text": text})
        if not conv.turns:
            continue
        if conv.fraud_turns:
            conv.first_fraud = conv.fraud_turns[0]
        if unlabelled_conversation(label, bool(conv.fraud_turns)):
            conv.label = None  # fraud file, no fraudster turn marked: unlabelled (as data.sources leaves it out)
        report.records[source] += 1
        yield conv


def load_teleantifraud_conversations(path=None, limit=None, report=None, tax=None) -> Iterator[Conversation]:
    """left[0], right[0], left[1], ... (the caller, `left`, speaks first); metadata never read."""
    source, tax = "teleantifraud_synth", tax or load_taxonomy()
    path, report = Path(path or data_dir() / FILES[source]), report if report is not None else LoadReport()
    for lineno, d in json_records(path, limit, ("left", "right", "label"), report, source):
        is_fraud = str(d["label"]).strip() == "fraud"
        label = _label(tax, source, d.get("fraud_type") if is_fraud else d["label"], path, f"line {lineno}")
        group = f"{source}:{d.get('tts_id') or lineno}"
        conv = Conversation(f"{source}:{d.get('tts_id')}#{lineno}", source, group, label)
        pairs = itertools.zip_longest(d["left"] or [], d["right"] or [])
        for i, (side, turn) in enumerate((s, t) for pair in pairs for s, t in zip(("left", "right"), pair)):
            if turn is None:
                continue
            text = scrub_speakers(turn).strip() if isinstance(turn, str) else ""
            if not text:
                report.skip(source, "empty turn", f"line {lineno} turn {i}")
                continue
            if _STAGE_DIRECTION.match(text):
                report.skip(source, "stage direction removed", f"line {lineno} turn {i}")
                continue
            if is_fraud and side == "left":
                conv.fraud_turns.append(len(conv.turns))
            conv.turns.append({"speaker": side, "text": text})
        if not conv.turns:
            continue
        if is_fraud:  # fraud from the caller's first (remaining) turn: the pretext comes first
            conv.first_fraud = conv.fraud_turns[0] if conv.fraud_turns else 0
        report.records[source] += 1
        yield conv


LOADERS = {"golfxiao_dialogs": load_golfxiao_conversations,
           "teleantifraud_synth": load_teleantifraud_conversations}


def load_conversations(names=None, root=None, limit=None, tax=None) -> tuple[list[Conversation], LoadReport]:
    root, tax, report = Path(root) if root else data_dir(), tax or load_taxonomy(), LoadReport()
    convs = []
    for name in names or LOADERS:
        if name not in LOADERS:
            raise DataError(f"unknown chat source {name!r}; known: {list(LOADERS)}")
        convs.extend(LOADERS[name](root / FILES[name], limit=limit, report=report, tax=tax))
    return convs, report


def assign_splits(convs: list[Conversation], seed: int = 0) -> dict[str, str]:
    """Conversation group -> split, through the project's grouped split (whole conversations)."""
    records = [{"text": "\n".join(t["text"] for t in c.turns), "group": c.group} for c in convs]
    return {r["group"]: r["split"] for r in split_records(records, seed=seed)}


def sample_windows(n: int, limit: int, rng: random.Random) -> list[int]:
    """Prefix ends kept for training: at most max(limit, n // 4) (long meetings keep more of their
    hard negatives): the earliest limit // 2, plus a seeded sample of the rest."""
    limit = max(limit, n // 4) if limit else 0
    if not limit or n <= limit:
        return list(range(n))
    early = list(range((limit + 1) // 2))
    return early + sorted(rng.sample(range(len(early), n), limit - len(early)))


def window_records(conv: Conversation, split: str, k: int, ends: Sequence[int], max_length: int) -> list[dict]:
    texts = model_inputs(conv.turns, max_length, k)
    return [{"text": texts[e], "label": conv.window_label(e), "source": conv.source, "group": conv.group,
             "split": split, "turn": e} for e in ends]


def build(out: Path, window: int = WINDOW, root=None, limit=None, seed: int = 0, train_windows: int = 4,
          max_length: int = MAX_LENGTH, tax: Taxonomy | None = None) -> dict:
    """Write the window splits, the conversation files and the card; returns the summary."""
    tax = tax or load_taxonomy()
    convs, load_report = load_conversations(root=root, limit=limit, tax=tax)
    labelled = [c for c in convs if c.label is not None]
    split_of = assign_splits(labelled, seed)
    rng = random.Random(seed)
    windows = {s: [] for s in SPLITS}
    for c in labelled:
        s = split_of[c.group]
        ends = sample_windows(len(c.turns), train_windows if s == "train" else 0, rng)
        windows[s] += window_records(c, s, window, ends, max_length)
    # Dedup in split order: a held-out window that repeats a training window is dropped, never kept.
    kept, hygiene = clean([r for s in SPLITS for r in windows[s]], tax, scrub_sources=())
    out.mkdir(parents=True, exist_ok=True)
    for s in SPLITS:
        write_jsonl(out / f"{s}.jsonl", (r for r in kept if r["split"] == s))
    conv_counts = Counter()
    for s in ("validation", "test"):
        chosen = [c for c in labelled if split_of[c.group] == s]
        write_jsonl(out / f"conversations_{s}.jsonl", (c.to_record() for c in chosen))
    for c in labelled:
        conv_counts[f"{split_of[c.group]}: {c.source}: {c.label}"] += 1
    unlabelled = [c for c in convs if c.label is None]
    unlabelled_split = assign_splits(unlabelled, seed) if unlabelled else {}
    write_jsonl(out / "conversations_unlabelled.jsonl",
                (c.to_record() for c in unlabelled if unlabelled_split[c.group] == "test"))
    from data.card import build_card, write_card

    summary = {"window": window, "anchor": ANCHOR, "max_length": max_length, "train_windows": train_windows, "conversations": dict(sorted(conv_counts.items())),
               "unlabelled_conversations": len(unlabelled), "split": split_report(kept)}
    card = build_card(kept, load_report=load_report.to_dict(), hygiene_report=hygiene.to_dict(), conversations=summary)
    write_card(card, out / "card.json", out / "card.md")
    summary["load"], summary["hygiene"] = load_report.summary(), hygiene.summary()
    return summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m data.conversations", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--window", type=int, default=WINDOW, help="turns per example (the last K)")
    p.add_argument("--train-windows", type=int, default=4,
                   help="windows per training conversation: max(N, turns // 4), the earliest N // 2 always (0: all)")
    p.add_argument("--max-length", type=int, default=MAX_LENGTH,
                   help="tokens of the chat model (configs/chat.yaml max_length): windows keep their last max_length - 2 chars")
    p.add_argument("--limit", type=int, default=None, help="read only the first N rows / lines of each file")
    p.add_argument("--data-dir", default=None, help="default: $FANZHA_DATA_DIR or ../shared/data")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.window < 1:
        p.error("--window must be >= 1")
    started = time.perf_counter()
    try:
        summary = build(args.out, args.window, args.data_dir, args.limit, args.seed, args.train_windows, args.max_length)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(summary["load"], summary["hygiene"], json.dumps(summary["conversations"], ensure_ascii=False),
          "windows per split: " + json.dumps(summary["split"]["sizes"]), *summary["split"]["warnings"], sep="\n")
    print(f"wrote {args.out} in {time.perf_counter() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
