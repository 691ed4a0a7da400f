"""What a new model would do differently: compare two scored files row by row.

    fanzha diff old_scored.parquet new_scored.parquet --out report.md     # or report.html
    fanzha diff old.csv new.csv --key id --examples 5                        # Markdown on stdout
    fanzha diff --shadow shadow.jsonl [--out report.html]                    # a service's shadow log

OLD and NEW are outputs of `fanzha score` on the same input (any table format, not necessarily the
same one), aligned by row; `--key` also checks that a column (an id) agrees on every row. The
report counts rows whose action, category or label changed, gives the transition tables
(old action -> new action, old category -> new category, with `error` for an unscored row) and a
few example messages per changed transition. Both files are streamed: memory stays flat. The last
line printed is a JSON summary.

`--shadow LOG` reads the shadow decision log of a service run with `--shadow`
(FANZHA_SHADOW_LOG, serving/lifecycle/live.py): one line per message with the champion's and
the challenger's decisions, paired, and the keyed text fingerprint instead of the text. The same
report, OLD being the champion and NEW the challenger; the examples show fingerprints.
"""
from __future__ import annotations

import argparse
import html
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterator

import pandas as pd

from data.markdown import table
from data.tables import TableError, columns_of, iter_table
from serving.policy import ACTIONS, CATEGORIES

NEEDED = ("label", "category", "action", "error")
ERROR = "error"  # the transition state of a row that could not be scored


class DiffError(ValueError):
    """The two files cannot be compared."""


def _aligned(old: Iterator[pd.DataFrame], new: Iterator[pd.DataFrame]) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """Pairs of equally long frames, whatever the chunking of either side."""
    a = b = None
    while True:
        a = next(old, None) if a is None or not len(a) else a
        b = next(new, None) if b is None or not len(b) else b
        if a is None or b is None:
            if (a is not None and len(a)) or (b is not None and len(b)):
                raise DiffError("the files have different row counts; they must score the same input")
            return
        n = min(len(a), len(b))
        yield a.iloc[:n].reset_index(drop=True), b.iloc[:n].reset_index(drop=True)
        a, b = a.iloc[n:], b.iloc[n:]


def _states(frame: pd.DataFrame, column: str) -> list[str]:
    errors = frame["error"].fillna("").astype(str).tolist()
    values = frame[column].tolist()
    return [ERROR if e else str(v) for v, e in zip(values, errors)]


def compare(old_path: str | Path, new_path: str | Path, text_column: str = "text", key: str | None = None,
            examples: int = 3, chunk_rows: int = 20_000) -> dict:
    cols = {}
    for path in (old_path, new_path):
        cols[path] = columns_of(path)
        missing = [c for c in NEEDED if c not in cols[path]]
        if missing:
            raise DiffError(f"{path}: no column(s) {missing}; is it an output of `fanzha score`?")
        if key and key not in cols[path]:
            raise DiffError(f"{path}: no key column {key!r}")
    pairs = _aligned(iter_table(old_path, chunk_rows), iter_table(new_path, chunk_rows))
    return tally(pairs, str(old_path), str(new_path), text_column if text_column in cols[old_path] else None,
                 key, examples)


def shadow_pairs(path: str | Path, chunk_rows: int = 20_000) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """(champion, challenger) frames from a shadow decision log (JSON lines)."""
    def frame(side: list[dict], shas: list[str]) -> pd.DataFrame:
        df = pd.DataFrame(side, columns=["tag", "label", "action", "reason", "fraud_score"])
        df["category"] = df["label"].astype(str).str.split(".", n=1).str[0]
        df["error"], df["text"] = "", shas
        return df

    try:
        handle = open(path, encoding="utf-8")
    except OSError as e:
        raise DiffError(f"cannot read shadow log {path}: {e}") from e
    with handle:
        champion, challenger, shas = [], [], []
        for n, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                a, b = row["champion"], row["challenger"]
                if not (isinstance(a, dict) and isinstance(b, dict)):
                    raise KeyError("champion")
            except (ValueError, KeyError, TypeError) as e:
                raise DiffError(f"{path}:{n}: not a shadow log line ({e}); write one with `fanzha serve --shadow`") from e
            champion.append(a)
            challenger.append(b)
            shas.append(f"sha {str(row.get('sha', ''))[:16]}")
            if len(champion) >= chunk_rows:
                yield frame(champion, shas), frame(challenger, shas)
                champion, challenger, shas = [], [], []
        if champion:
            yield frame(champion, shas), frame(challenger, shas)


def tally(pairs, old_name: str, new_name: str, text_column: str | None, key: str | None = None,
          examples: int = 3) -> dict:
    has_text = text_column is not None
    rows, changed = 0, Counter()
    transitions = {"action": Counter(), "category": Counter()}
    samples: dict[str, dict] = {"action": defaultdict(list), "category": defaultdict(list)}
    shift = 0.0
    for old, new in pairs:
        if key and old[key].astype(str).tolist() != new[key].astype(str).tolist():
            bad = next(i for i, (x, y) in enumerate(zip(old[key].astype(str), new[key].astype(str))) if x != y)
            raise DiffError(f"row {rows + bad}: {key} {old[key][bad]!r} in OLD but {new[key][bad]!r} in NEW")
        labels = (_states(old, "label"), _states(new, "label"))
        changed["label"] += sum(x != y for x, y in zip(*labels))
        for column in ("action", "category"):
            pairs = list(zip(_states(old, column), _states(new, column)))
            transitions[column].update(pairs)
            for i, pair in enumerate(pairs):
                if pair[0] != pair[1]:
                    changed[column] += 1
                    bucket = samples[column][pair]
                    if len(bucket) < examples:
                        bucket.append({"row": rows + i, "text": str(old[text_column][i]) if has_text else "",
                                       "old": _brief(old, i), "new": _brief(new, i)})
        if "fraud_score" in old.columns and "fraud_score" in new.columns:
            delta = pd.to_numeric(new["fraud_score"], errors="coerce") - pd.to_numeric(old["fraud_score"], errors="coerce")
            shift += float(delta.fillna(0).sum())
        rows += len(old)
    return {"old": old_name, "new": new_name, "rows": rows,
            "changed": {c: changed[c] for c in ("action", "category", "label")},
            "mean_fraud_score_shift": round(shift / rows, 6) if rows else 0.0,
            "transitions": {c: {f"{a} -> {b}": n for (a, b), n in sorted(t.items())} for c, t in transitions.items()},
            "_matrix": transitions, "_examples": samples}


def _brief(frame: pd.DataFrame, i: int) -> str:
    error = frame["error"][i]
    if isinstance(error, str) and error:
        return f"error: {error}"
    try:
        return f"{frame['label'][i]} ({float(frame['score'][i]):.2f})"
    except (KeyError, TypeError, ValueError):
        return str(frame["label"][i])


def _rank(state: str) -> tuple:
    """allow, flag, block / normal, spam, fraud.*, then anything else, `error` last."""
    order = ACTIONS + CATEGORIES
    head = state.split(".", 1)[0]
    return (state == ERROR, order.index(head) if head in order else len(order), state)


def _tables(result: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of every table in the report."""
    rows = result["rows"]
    out = [("Summary", ["", "rows", "share"],
            [[f"action differs on {result['changed']['action']} of {rows} messages", "", ""]] * bool(result.get("shadow")) +
            [["rows compared", str(rows), ""]] +
            [[f"{c} changed", str(n), f"{n / rows:.2%}" if rows else "-"] for c, n in result["changed"].items()] +
            [["mean fraud_score shift (new - old)", f"{result['mean_fraud_score_shift']:+.4f}", ""]])]
    for column in ("action", "category"):
        matrix = result["_matrix"][column]
        olds = sorted({a for a, _ in matrix}, key=_rank)
        news = sorted({b for _, b in matrix}, key=_rank)
        out.append((f"{column.capitalize()} transitions (rows: old, columns: new)", ["old \\ new"] + news,
                    [[a] + [str(matrix.get((a, b), 0)) for b in news] for a in olds]))
    for column in ("action", "category"):
        lines = [[f"{a} -> {b}", str(e["row"]), e["text"][:120], e["old"], e["new"]]
                 for (a, b), items in sorted(result["_examples"][column].items()) for e in items]
        if lines:
            out.append((f"Examples of changed {column}", ["transition", "row", "message", "old", "new"], lines))
    return out


def to_markdown(result: dict) -> str:
    parts = [f"# Scoring diff\n\nOLD `{result['old']}` vs NEW `{result['new']}`, aligned by row.\n"]
    for title, header, rows in _tables(result):
        parts.append(f"## {title}\n\n" + table(header, rows) + "\n")
    return "\n".join(parts)


def to_html(result: dict) -> str:
    esc = html.escape
    parts = ["<!doctype html><meta charset='utf-8'><title>fanzha diff</title>",
             "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1.5em}"
             "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}th{background:#f3f3f3}</style>",
             f"<h1>Scoring diff</h1><p>OLD <code>{esc(result['old'])}</code> vs NEW <code>{esc(result['new'])}</code>,"
             " aligned by row.</p>"]
    for title, header, rows in _tables(result):
        parts.append(f"<h2>{esc(title)}</h2><table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>"
                     + "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows) + "</table>")
    return "\n".join(parts) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="fanzha diff", description=__doc__.split("\n\n")[0])
    parser.add_argument("old", nargs="?", help="file scored by the old model")
    parser.add_argument("new", nargs="?", help="file scored by the new model (same input)")
    parser.add_argument("--shadow", help="a service's shadow decision log (FANZHA_SHADOW_LOG) instead of OLD and NEW")
    parser.add_argument("--out", help="report file: .md or .html (default: Markdown on stdout)")
    parser.add_argument("--text-column", default="text", help="column shown in the examples")
    parser.add_argument("--key", help="a column that must agree on every row (e.g. a message id)")
    parser.add_argument("--examples", type=int, default=3, help="example messages per changed transition")
    args = parser.parse_args(argv)
    if args.out and Path(args.out).suffix.lower() not in (".md", ".html", ".htm"):
        print("error: --out must end in .md or .html", file=sys.stderr)
        return 2
    if bool(args.shadow) == bool(args.old and args.new) or (args.shadow and (args.old or args.new)):
        print("error: give OLD and NEW scored files, or --shadow LOG", file=sys.stderr)
        return 2
    try:
        if args.shadow:
            result = tally(shadow_pairs(args.shadow), "champion", "challenger", "text", None, args.examples)
            result["shadow"] = str(args.shadow)
        else:
            result = compare(args.old, args.new, args.text_column, args.key, args.examples)
    except (DiffError, TableError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.out:
        out = Path(args.out)
        out.write_text(to_html(result) if out.suffix.lower() in (".html", ".htm") else to_markdown(result), encoding="utf-8")
    else:
        print(to_markdown(result))
    summary = {k: v for k, v in result.items() if not k.startswith("_")}
    print(json.dumps({**summary, "report": args.out}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
