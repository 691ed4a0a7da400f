"""Markdown tables: the one writer behind the model card (training/model_card.py), the scoring
diff (serving/lifecycle/diff.py) and the results pages (docs/gen/results_md.py).

A cell's `|` is escaped and its line breaks become spaces, so a value holding either (a message
text, a config path, a gate's detail) stays in its own cell instead of breaking the table.
"""
from __future__ import annotations

from typing import Callable, Sequence


def cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\r\n", " ").replace("\n", " ")


def table(header: Sequence, rows: Sequence[Sequence], fmt: Callable = str) -> str:
    """A GitHub-flavoured markdown table, without a trailing newline; `fmt` renders each body value."""
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(fmt(v)) for v in row) + " |" for row in rows]
    return "\n".join(lines)
