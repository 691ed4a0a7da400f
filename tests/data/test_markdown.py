"""The one markdown table writer: every table the project writes (model card, scoring diff, results
pages) keeps each value in its own cell, whatever the value holds."""
import re

from data.markdown import table


def cells(line: str) -> list[str]:
    """The cells of one table line, splitting on unescaped pipes only."""
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])]


def test_pipes_and_line_breaks_stay_in_their_cell():
    md = table(["text", "label"], [["退订回T | 拒收请回复R", "spam"], ["第一行\n第二行", "normal"]])
    lines = md.split("\n")
    assert len(lines) == 4  # header, rule, two rows: a line break does not start a row
    assert cells(lines[2]) == ["退订回T | 拒收请回复R", "spam"]
    assert cells(lines[3]) == ["第一行 第二行", "normal"]


def test_header_rule_and_formatter():
    md = table(["a", "b"], [[0.123456, None]], fmt=lambda v: "—" if v is None else f"{v:.2f}")
    assert md == "| a | b |\n|---|---|\n| 0.12 | — |"
