"""Loaders for the four shared datasets, and the command that turns them into clean splits.

    python -m data.sources --out /tmp/fanzha-data                      # all four sources
    python -m data.sources --out /tmp/d --sources spam80w --limit 2000 # a quick slice

Each loader is a generator of records `{"text", "label", "source", "group"}` (label: a taxonomy
class or coarse label, mapped through `configs/taxonomy.yaml`; group: what must stay on one side
of a split). Files are decoded line by line so a bad byte is reported with its file, line and byte
offset; rows that cannot become an example (an empty text) are never dropped silently but counted
in a `LoadReport`. Speaker names and generation metadata never enter the text (they leak the label).
The command then cleans (data/hygiene.py), splits and writes a data card (data/card.py).
"""
from __future__ import annotations

import argparse
import csv
import itertools
import json
import logging
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from data import settings
from data.hygiene import scrub_speakers
from data.taxonomy import Taxonomy, TaxonomyError, load_taxonomy

log = logging.getLogger(__name__)


class DataError(ValueError):
    """A data file is missing or malformed; the message names the file and what to do."""


def data_dir() -> Path:
    """`$FANZHA_DATA_DIR`, else `<repo>/../shared/data`."""
    return Path(settings.get("FANZHA_DATA_DIR"))


_default_dir = data_dir  # load_sources() takes a `data_dir` argument that shadows the function


@dataclass
class LoadReport:
    """What was read, yielded and skipped (with reasons), per source."""

    rows: Counter = field(default_factory=Counter)      # input rows / lines / dialogues read
    records: Counter = field(default_factory=Counter)   # records yielded
    skipped: Counter = field(default_factory=Counter)   # (source, reason) -> count
    scrubbed: Counter = field(default_factory=Counter)  # source -> texts with speaker names removed
    examples: dict = field(default_factory=dict)        # (source, reason) -> first location

    def skip(self, source: str, reason: str, where: str) -> None:
        self.skipped[(source, reason)] += 1
        self.examples.setdefault((source, reason), where)

    def to_dict(self) -> dict:
        return {"rows": dict(self.rows), "records": dict(self.records), "scrubbed": dict(self.scrubbed),
                "skipped": [{"source": s, "reason": r, "count": n, "first": self.examples[(s, r)]}
                            for (s, r), n in sorted(self.skipped.items())]}

    def summary(self) -> str:
        lines = [f"{s}: {self.rows[s]} rows read -> {self.records[s]} records"
                 + (f" ({self.scrubbed[s]} with speaker names removed)" if self.scrubbed[s] else "")
                 for s in self.rows]
        lines += [f"  skipped {n} ({s}: {r}; first at {self.examples[(s, r)]})"
                  for (s, r), n in sorted(self.skipped.items())]
        return "\n".join(lines)


def _open(path: Path) -> Path:
    if not path.is_file():
        raise DataError(f"data file not found: {path} — put the shared data there or set "
                        f"FANZHA_DATA_DIR to the folder holding sms/ and chat/")
    return path


def _lines(path: Path, limit: int | None = None) -> Iterator[tuple[int, str]]:
    """(line number, decoded line with its newline); a bad byte -> DataError with line and offset."""
    offset = 0
    with open(_open(path), "rb") as f:
        for lineno, raw in enumerate(f, 1):
            if limit is not None and lineno > limit:
                return
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{path}: invalid UTF-8 at line {lineno}, byte offset {offset + e.start} "
                                f"({raw[e.start:e.start + 4]!r}); every shared file must be UTF-8") from e
            offset += len(raw)
            yield lineno, line[1:] if lineno == 1 and line.startswith("\ufeff") else line


def _csv_rows(path: Path, required: tuple[str, ...], limit: int | None) -> Iterator[tuple[int, dict]]:
    """Rows of a CSV with a header as dicts; quoted fields may hold commas and newlines."""
    lines = _lines(path)
    reader = csv.reader(line for _, line in lines)  # newlines kept: quoted fields may span lines
    header = next(reader, None)
    if header is None:
        raise DataError(f"{path}: empty file, expected a header with columns {list(required)}")
    header = [h.strip() for h in header]
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found {header}")
    for n, row in enumerate(reader, 1):
        if limit is not None and n > limit:
            return
        yield reader.line_num, dict(zip(header, row + [""] * (len(header) - len(row))))


def _label(tax: Taxonomy, source: str, raw, path: Path, where) -> str:
    try:
        return tax.map_source(source, raw)
    except TaxonomyError as e:
        raise DataError(f"{path}, {where}: {e} (add it to the sources: section of configs/taxonomy.yaml)") from e


def _record(text: str, label: str, source: str, group: str) -> dict:
    return {"text": text, "label": label, "source": source, "group": group}


def load_spam80w(path=None, limit=None, report=None, tax=None) -> Iterator[dict]:
    """`label<TAB>text` per line; the text is everything after the first tab, quotes and all."""
    source, path, tax = "spam80w", Path(path or data_dir() / "sms/spam80w.tsv"), tax or load_taxonomy()
    report = report if report is not None else LoadReport()
    for lineno, line in _lines(path, limit):
        report.rows[source] += 1
        raw_label, tab, text = line.rstrip("\r\n").partition("\t")
        if not tab and not line.strip():
            report.skip(source, "blank line", f"line {lineno}")
            continue
        where = f"line {lineno}" + ("" if tab else " (no TAB; expected label<TAB>text)")
        label = _label(tax, source, raw_label, path, where)
        if not text.strip():
            report.skip(source, "empty text", f"line {lineno}")
            continue
        report.records[source] += 1
        yield _record(text, label, source, f"{source}:{lineno}")


def load_telecom_fraud_texts(path=None, limit=None, report=None, tax=None) -> Iterator[dict]:
    """`text,label` CSV; `正常` maps to the coarse `not_fraud` (normal or spam)."""
    source, path, tax = "telecom_fraud_texts", Path(path or data_dir() / "sms/telecom_fraud_texts.csv"), tax or load_taxonomy()
    report = report if report is not None else LoadReport()
    for lineno, row in _csv_rows(path, ("text", "label"), limit):
        report.rows[source] += 1
        label = _label(tax, source, row["label"], path, f"line {lineno}")
        if not row["text"].strip():
            report.skip(source, "empty text", f"line {lineno}")
            continue
        report.records[source] += 1
        yield _record(row["text"], label, source, f"{source}:{lineno}")


_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no"}


UNLABELLED_CONVERSATION = "fraud-file conversation with no utterance marked is_fraud (unlabelled)"
UNMARKED_FRAUDSTER = "unmarked utterance of a speaker marked is_fraud elsewhere in the conversation (unlabelled)"


def unlabelled_conversation(label: str, any_fraud_marked: bool) -> bool:
    """A golfxiao conversation from a fraud file (`label` not normal) with no utterance marked
    is_fraud: its fraudster was not marked ("诈骗者李伟" with is_fraud False; ../shared/data/README.md),
    so its turns' labels are unknown. Both loaders leave it out: this one (utterances) and
    data.conversations (whole conversations)."""
    return label != "normal" and not any_fraud_marked


def load_golfxiao_dialogs(path=None, limit=None, report=None, tax=None) -> Iterator[dict]:
    """One record per utterance: a fraudster's (is_fraud) is fraud of its conversation's type, every
    other one is `normal`. The speaker column is never used; speaker names written inside the content
    ("李明：…", "骗子：…") are scrubbed with the names of the conversation's speakers. A fraud-file
    conversation with no fraudster marked is left out (`unlabelled_conversation`), and so is an
    unmarked line of a speaker marked is_fraud elsewhere in the conversation (the fraudster's
    grooming turns: never legitimate), each counted as skipped."""
    source, path, tax = "golfxiao_dialogs", Path(path or data_dir() / "chat/golfxiao_dialogs.csv"), tax or load_taxonomy()
    report = report if report is not None else LoadReport()
    rows = _csv_rows(path, ("fraud_type", "case", "speaker", "content", "is_fraud"), limit)
    # Conversations are contiguous: buffer one to know all its speaker names before scrubbing.
    buffer: list[tuple[int, dict]] = []
    for item in itertools.chain(rows, [None]):
        if buffer and (item is None or item[1]["case"] != buffer[0][1]["case"]):
            names = {r["speaker"].strip() for _, r in buffer if r["speaker"].strip()}
            # a marked fraudster's other lines (e.g. a loan "customer service" greeting, is_fraud False): the
            # fraudster's, so never legitimate, but not marked fraud either: left out, counted
            fraudsters = {r["speaker"].strip() for _, r in buffer
                          if r["speaker"].strip() and r["is_fraud"].strip().lower() in _TRUE}
            records = []
            for lineno, r in buffer:
                for rec in _golfxiao_record(r, lineno, names, source, path, tax, report):
                    if rec["label"] == "normal" and r["speaker"].strip() in fraudsters:
                        report.records[source] -= 1
                        report.skip(source, UNMARKED_FRAUDSTER, f"line {lineno}")
                    else:
                        records.append(rec)
            label = _label(tax, source, buffer[0][1]["fraud_type"], path, f"line {buffer[0][0]}")
            if records and unlabelled_conversation(label, any(rec["label"] != "normal" for rec in records)):
                for _ in records:
                    report.records[source] -= 1
                    report.skip(source, UNLABELLED_CONVERSATION, f"case {buffer[0][1]['case']}")
                records = []
            yield from records
            buffer = []
        if item is not None:
            buffer.append(item)


def _golfxiao_record(r, lineno, names, source, path, tax, report):
    report.rows[source] += 1
    if not r["content"].strip():
        report.skip(source, "empty text", f"line {lineno}")
        return
    flag = r["is_fraud"].strip().lower()
    if flag not in _TRUE | _FALSE:
        raise DataError(f"{path}, line {lineno}: unknown is_fraud value {r['is_fraud']!r} in source "
                        f"{source!r}; expected True or False")
    fraud_label = _label(tax, source, r["fraud_type"], path, f"line {lineno}")  # validates every row
    text = scrub_speakers(r["content"], names)
    if text != r["content"]:
        report.scrubbed[source] += 1
    if not text.strip():
        report.skip(source, "empty after removing speaker names", f"line {lineno}")
        return
    report.records[source] += 1
    yield _record(text, fraud_label if flag in _TRUE else "normal", source, f"{source}:{r['case']}")


def json_records(path: Path, limit, required: tuple[str, ...], report: "LoadReport", source: str) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank JSONL line, counted in report.rows[source]; a line
    that is not JSON or lacks a `required` field fails with its file and line number."""
    for lineno, line in _lines(path, limit):
        if not line.strip():
            continue
        report.rows[source] += 1
        try:
            d = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}, line {lineno}: invalid JSON ({e})") from e
        missing = [k for k in required if k not in d]
        if missing:
            raise DataError(f"{path}, line {lineno}: missing field(s) {missing}; found {sorted(d)}")
        yield lineno, d


def load_teleantifraud_synth(path=None, limit=None, report=None, tax=None) -> Iterator[dict]:
    """One record per turn: in a fraud dialogue the `left` turns (the caller) are fraud of the mapped
    type; `right` turns and every turn of a normal dialogue are `normal`. Metadata such as
    `termination_reason` describes the outcome and is never read. group = `tts_id`: it is not unique
    (variants generated from one seed share it), so grouping by it keeps those variants together."""
    source, path, tax = "teleantifraud_synth", Path(path or data_dir() / "chat/teleantifraud_synth.jsonl"), tax or load_taxonomy()
    report = report if report is not None else LoadReport()
    for lineno, d in json_records(path, limit, ("left", "right", "label"), report, source):
        is_fraud = str(d["label"]).strip() == "fraud"
        if is_fraud and "fraud_type" not in d:
            raise DataError(f"{path}, line {lineno}: fraud dialogue without a fraud_type field")
        raw = d["fraud_type"] if is_fraud else d["label"]
        label = _label(tax, source, raw, path, f"line {lineno}")
        group = f"{source}:{d.get('tts_id') or lineno}"
        for side in ("left", "right"):
            for i, turn in enumerate(d[side] or []):
                if not isinstance(turn, str) or not turn.strip():
                    report.skip(source, "empty turn", f"line {lineno} {side}[{i}]")
                    continue
                report.records[source] += 1
                yield _record(turn, label if is_fraud and side == "left" else "normal", source, group)


LOADERS = {
    "spam80w": load_spam80w,
    "telecom_fraud_texts": load_telecom_fraud_texts,
    "golfxiao_dialogs": load_golfxiao_dialogs,
    "teleantifraud_synth": load_teleantifraud_synth,
}
FILES = {"spam80w": "sms/spam80w.tsv", "telecom_fraud_texts": "sms/telecom_fraud_texts.csv",
         "golfxiao_dialogs": "chat/golfxiao_dialogs.csv", "teleantifraud_synth": "chat/teleantifraud_synth.jsonl"}


def load_sources(names: Iterable[str] | None = None, data_dir: str | Path | None = None,
                 limit: int | None = None, tax: Taxonomy | None = None,
                 warn: bool = True) -> tuple[list[dict], LoadReport]:
    """All records of the named sources (default: all four), in order, and the report; skipped
    rows are also logged as a warning unless `warn=False` (for callers that print the report)."""
    names = list(names or LOADERS)
    unknown = [n for n in names if n not in LOADERS]
    if unknown:
        raise DataError(f"unknown source(s) {unknown}; known: {list(LOADERS)}")
    root, tax, report = Path(data_dir) if data_dir else _default_dir(), tax or load_taxonomy(), LoadReport()
    records = []
    for name in names:
        records.extend(LOADERS[name](root / FILES[name], limit=limit, report=report, tax=tax))
    if warn and report.skipped:
        log.warning("skipped rows while loading:\n%s", report.summary())
    return records, report


def write_jsonl(path: Path, records: Iterable[dict]) -> int:
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
            n += 1
    return n


def main(argv=None) -> int:
    from data.card import build_card, write_card
    from data.hygiene import clean, split_records, split_report

    p = argparse.ArgumentParser(prog="python -m data.sources", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="output folder for train/validation/test.jsonl and the card")
    p.add_argument("--sources", default=",".join(LOADERS), help="comma-separated source names")
    p.add_argument("--limit", type=int, default=None, help="read only the first N rows of each file")
    p.add_argument("--data-dir", default=None, help="default: $FANZHA_DATA_DIR or ../shared/data")
    p.add_argument("--seed", type=int, default=0, help="seed of the grouped split")
    args = p.parse_args(argv)
    start = time.perf_counter()
    try:
        records, load_report = load_sources(args.sources.split(","), args.data_dir, args.limit, warn=False)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    loaded = time.perf_counter()
    kept, hygiene = clean(records)
    split = split_records(kept, seed=args.seed)
    splits = split_report(split)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("train", "validation", "test"):
        write_jsonl(out / f"{name}.jsonl", (r for r in split if r["split"] == name))
    card = build_card(split, load_report=load_report.to_dict(), hygiene_report=hygiene.to_dict(),
                      split_report=splits)
    write_card(card, out / "card.json", out / "card.md")
    print(load_report.summary(), hygiene.summary(), "split: " + json.dumps(splits["sizes"]),
          *splits["warnings"], sep="\n")
    print(f"wrote {out} in {time.perf_counter() - start:.1f}s (loading {loaded - start:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
