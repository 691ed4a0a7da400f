"""The independent probe set (data/probes/independent/probes.jsonl): schema and coverage.

The set was written blind to the synthetic templates; this test only checks its shape and
that it shares no text with the template-adjacent set (data/probes/ood_sms.jsonl).
"""

import json
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INDEPENDENT = ROOT / "data" / "probes" / "independent" / "probes.jsonl"
TEMPLATE_ADJACENT = ROOT / "data" / "probes" / "ood_sms.jsonl"

FRAUD = (
    "fraud.impersonate_authority",
    "fraud.loan",
    "fraud.fake_customer_service",
    "fraud.impersonate_acquaintance",
    "fraud.brushing",
    "fraud.investment",
    "fraud.other",
)
LABELS = {"normal", "spam", *FRAUD}
REGIONS = ("cn", "tw", "hk", "mo")
CHANNELS = {"line", "whatsapp", "wechat", "qq", "telegram", "phone", "url", "none"}
KEYS = {"text", "label", "region", "length", "kind", "channel"}


def _load(path):
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope="module")
def rows():
    return _load(INDEPENDENT)


def test_schema(rows):
    for i, r in enumerate(rows):
        assert set(r) == KEYS, (i, sorted(r))
        assert isinstance(r["text"], str) and r["text"].strip(), i
        assert r["label"] in LABELS, (i, r["label"])
        assert r["region"] in REGIONS, (i, r["region"])
        assert r["channel"] in CHANNELS, (i, r["channel"])
        assert r["kind"] and r["kind"].replace("_", "").isalnum() and r["kind"] == r["kind"].lower(), (i, r["kind"])
        assert r["length"] == ("long" if len(r["text"]) > 70 else "short"), (i, len(r["text"]), r["length"])


def test_size_and_coverage(rows):
    assert len(rows) >= 300
    labels = Counter(r["label"] for r in rows)
    assert labels["normal"] >= 100
    assert labels["spam"] >= 20
    cells = Counter((r["region"], r["label"]) for r in rows)
    for region in REGIONS:
        assert sum(n for (g, _), n in cells.items() if g == region) >= 45, region
        for label in FRAUD:
            assert cells[(region, label)] >= 3, (region, label, cells[(region, label)])
    lengths = Counter(r["length"] for r in rows)
    assert lengths["long"] >= 0.3 * len(rows)


def test_no_duplicates(rows):
    texts = [r["text"] for r in rows]
    dups = [t for t, n in Counter(texts).items() if n > 1]
    assert not dups, dups


def test_disjoint_from_template_adjacent_set(rows):
    old = {r["text"] for r in _load(TEMPLATE_ADJACENT)}
    shared = [r["text"] for r in rows if r["text"] in old]
    assert not shared, shared
