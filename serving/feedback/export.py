"""`fanzha feedback export`: feedback rows -> training rows in the corpus format.

    fanzha feedback export --db artifacts/feedback.db --out feedback.jsonl [--since 2026-11-01]
    fanzha feedback export --db postgresql://fanzha@db/fanzha --out feedback.jsonl --include-unconfirmed

Each line is `{"text", "label", "source": "feedback", "group": "feedback:<campaign>",
"feedback_id", "feedback_source", "time", "campaign"}`; a training config lists such files under
`data.feedback` (training/examples.py dedups them against the corpus splits and the data card
shows them as their own source).

Only what an analyst stands behind becomes a label, so that poisoned reports never train a
model: an `analyst` row keeps its label; a `user_report` is exported with the analyst's label
of its campaign when an analyst confirmed it as spam or fraud; an `appeal` is exported as
`normal` when an analyst confirmed its campaign as normal (this is how the false blocks of one
model teach the next). `--include-unconfirmed` adds the other user reports of campaigns whose
weight reached `--min-weight`. Undone (deleted) reports are never exported. The summary goes
to stderr: rows written, and rows left out by reason.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections import Counter
from pathlib import Path

from serving.feedback.campaigns import Campaign, Report, category
from serving.feedback.store import StoreError, is_url, open_store


def _since(value: str | None) -> float:
    if not value:
        return 0.0
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise SystemExit(f"fanzha feedback export: --since {value!r} is not a date (YYYY-MM-DD or ISO 8601)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.timestamp()


def _time(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def training_rows(rows, include_unconfirmed: bool = False, min_weight: float = 3.0):
    """(rows to write, Counter of rows left out by reason) from the store's live rows."""
    campaigns: dict[str, Campaign] = {}
    reports = []
    for row in rows:
        report = Report.from_row(row)
        campaigns.setdefault(report.campaign, Campaign(report.campaign)).reports[report.id] = report
        reports.append(report)
    out, skipped = [], Counter()
    for r in reports:
        analyst, label, weight = campaigns[r.campaign].state(1.0)
        if r.source == "analyst":
            chosen = r.label
        elif r.source == "user_report":
            if analyst is not None and category(analyst) != "normal":
                chosen = analyst
            elif analyst is None and include_unconfirmed and weight >= min_weight:
                chosen = r.label
            else:
                skipped["user_report not confirmed by an analyst"] += 1
                continue
        elif r.source == "retire":  # a console action on the campaign, not a message label
            skipped["retire rows (console actions)"] += 1
            continue
        else:  # appeal
            if analyst is not None and category(analyst) == "normal":
                chosen = "normal"
            else:
                skipped["appeal not confirmed as normal by an analyst"] += 1
                continue
        out.append({"text": r.text, "label": chosen, "source": "feedback", "group": f"feedback:{r.campaign}",
                    "feedback_id": r.id, "feedback_source": r.source, "time": _time(r.created_at),
                    "campaign": r.campaign})
    return out, skipped


def export(db: str, out: Path, since: float = 0.0, include_unconfirmed: bool = False, min_weight: float = 3.0) -> dict:
    store = open_store(db)
    try:
        rows, skipped = training_rows(store.iter_rows(since), include_unconfirmed, min_weight)
    finally:
        store.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(out)
    return {"written": len(rows), "labels": dict(Counter(r["label"] for r in rows)),
            "by_source": dict(Counter(r["feedback_source"] for r in rows)), "left_out": dict(skipped)}


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="fanzha feedback", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("export", help="write confirmed feedback as training rows (JSONL, corpus format)")
    p.add_argument("--db", required=True, help="SQLite file or postgresql:// URL (the service's FANZHA_FEEDBACK_DB)")
    p.add_argument("--out", required=True, type=Path, help="output .jsonl")
    p.add_argument("--since", default=None, help="only feedback from this date on (YYYY-MM-DD or ISO 8601, UTC)")
    p.add_argument("--include-unconfirmed", action="store_true",
                   help="also user reports of campaigns that reached --min-weight without an analyst")
    p.add_argument("--min-weight", type=float, default=3.0, help="with --include-unconfirmed (default 3)")
    ns = parser.parse_args(args)
    if ns.out.suffix != ".jsonl":
        print("fanzha feedback export: --out must be a .jsonl file (the corpus format)", file=sys.stderr)
        return 2
    if not is_url(ns.db) and not Path(ns.db).is_file():
        print(f"fanzha feedback export: {ns.db}: no such database file", file=sys.stderr)
        return 2
    try:
        summary = export(ns.db, ns.out, _since(ns.since), ns.include_unconfirmed, ns.min_weight)
    except StoreError as e:
        print(f"fanzha feedback export: {e}", file=sys.stderr)
        return 1
    print(json.dumps(summary, ensure_ascii=False), file=sys.stderr)
    print(ns.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
