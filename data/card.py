"""A data card: what went into a training set, per source, label and split.

    python -m data.sources --out /tmp/fanzha-data      # writes card.json and card.md beside the splits
    python -m data.card /tmp/fanzha-data               # rebuilds the card from the written splits

Why: the shared sets carry shortcuts (fraud texts are long, spam is longer than ham, chat
negatives are meeting transcripts). Length quantiles per label, next to the counts, make a
model that learned length instead of content easy to suspect before any training.
"""
from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

QUANTILES = (("p10", 0.10), ("p50", 0.50), ("p90", 0.90))


def length_stats(lengths) -> dict:
    """count, min, p10, p50, p90, max of a list of text lengths (nearest-rank quantiles)."""
    xs = sorted(lengths)
    if not xs:
        return {"count": 0}
    stats = {"count": len(xs), "min": xs[0]}
    for name, q in QUANTILES:
        stats[name] = xs[min(len(xs) - 1, int(q * len(xs)))]
    stats["max"] = xs[-1]
    return stats


def _table(pairs) -> dict:
    out: dict = defaultdict(Counter)
    for row, col in pairs:
        out[row][col] += 1
    return {row: dict(sorted(cols.items())) for row, cols in sorted(out.items())}


def build_card(records, splits=None, **reports) -> dict:
    """`records` (with a "split" key unless `splits` gives one per record) -> the card as a dict.
    Extra keyword arguments (load_report=, hygiene_report=, split_report=, feedback=) are stored as they are."""
    records = list(records)
    splits = list(splits) if splits is not None else [r.get("split", "all") for r in records]
    if len(splits) != len(records):
        raise ValueError(f"{len(splits)} split names for {len(records)} records")
    lengths = defaultdict(list)
    source_lengths = defaultdict(list)
    for r in records:
        lengths[r["label"]].append(len(r["text"]))
        source_lengths[f"{r['source']}: {r['label']}"].append(len(r["text"]))
    return {
        "rows": len(records),
        "source_x_label": _table((r["source"], r["label"]) for r in records),
        "split_x_label": _table((s, r["label"]) for r, s in zip(records, splits)),
        "length_by_label": {k: length_stats(v) for k, v in sorted(lengths.items())},
        "length_by_source_label": {k: length_stats(v) for k, v in sorted(source_lengths.items())},
        **{k: v for k, v in reports.items() if v is not None},
    }


def _md_counts(title: str, table: dict) -> list[str]:
    cols = sorted({c for row in table.values() for c in row})
    lines = [f"## {title}", "", "| | " + " | ".join(cols) + " | total |", "|---" * (len(cols) + 2) + "|"]
    for row, counts in table.items():
        lines.append(f"| {row} | " + " | ".join(str(counts.get(c, 0)) for c in cols)
                     + f" | {sum(counts.values())} |")
    return lines + [""]


def _md_lengths(title: str, stats: dict) -> list[str]:
    keys = ["count", "min", *(n for n, _ in QUANTILES), "max"]
    lines = [f"## {title}", "", "| | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(str(s.get(k, "")) for k in keys) + " |" for name, s in stats.items()]
    return lines + [""]


def card_markdown(card: dict) -> str:
    lines = ["# Data card", "", f"{card['rows']} records after hygiene.", ""]
    lines += _md_counts("Rows per source × label", card["source_x_label"])
    lines += _md_counts("Rows per split × label", card["split_x_label"])
    lines += _md_lengths("Text length (characters) per label — watch for a length shortcut",
                         card["length_by_label"])
    lines += _md_lengths("Text length per source × label", card["length_by_source_label"])
    hygiene = card.get("hygiene_report")
    if hygiene:
        lines += ["## Hygiene", ""]
        for key in ("scrubbed", "emptied", "exact_dups", "near_dups", "resolved", "narrowed", "conflicts", "cross_source"):
            if hygiene.get(key):
                lines.append(f"- {key}: {sum(hygiene[key].values())} — "
                             + ", ".join(f"{k}: {v}" for k, v in sorted(hygiene[key].items())))
        lines.append(f"- conflicting near-dup keys dropped: {hygiene.get('conflict_keys', 0)}")
        lines.append("")
    load = card.get("load_report")
    if load and load.get("skipped"):
        lines += ["## Skipped while loading", ""]
        lines += [f"- {s['source']}: {s['count']} × {s['reason']} (first at {s['first']})" for s in load["skipped"]]
        lines.append("")
    feedback = card.get("feedback")  # training's manifest["feedback"]: rows of `fanzha feedback export`
    if feedback:
        dups = feedback["duplicates"]
        lines += ["## Feedback", "", f"- rows read: {feedback['rows']}, kept: {feedback['kept']} (train split)",
                  f"- duplicates dropped: of a split {dups['of_splits']}, within feedback {dups['within_feedback']}",
                  "- kept per label: " + ", ".join(f"{k}: {v}" for k, v in feedback["labels"].items()),
                  "- kept per feedback source: "
                  + ", ".join(f"{k}: {v}" for k, v in feedback["feedback_sources"].items()),
                  *(f"- file: {f}" for f in feedback["files"]), ""]
    split = card.get("split_report")
    if split and split.get("warnings"):
        lines += ["## Split warnings", "", *(f"- {w}" for w in split["warnings"]), ""]
    return "\n".join(lines)


def write_card(card: dict, path_json, path_md) -> None:
    Path(path_json).write_text(json.dumps(card, ensure_ascii=False, indent=2), encoding="utf-8")
    Path(path_md).write_text(card_markdown(card), encoding="utf-8")


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if len(args) != 1:
        print("usage: python -m data.card FOLDER  (with train/validation/test.jsonl)", file=sys.stderr)
        return 2
    folder = Path(args[0])
    records = []
    for name in ("train", "validation", "test"):
        path = folder / f"{name}.jsonl"
        if path.is_file():
            with open(path, encoding="utf-8") as f:
                records += [json.loads(line) for line in f if line.strip()]
    card = build_card(records)
    write_card(card, folder / "card.json", folder / "card.md")
    print(card_markdown(card))
    return 0


if __name__ == "__main__":
    sys.exit(main())
