"""Tests for the embedded synthetic corpus (data/synth.py, data/synth_templates.py).

    .venv/bin/python -m pytest tests/data/test_synth.py -q

They pin the contract the rest of the project relies on (record schema, splits by template,
determinism) and the properties that make the corpus worth training on: every class on every
side of the split, wide surface variety, overlapping lengths (no length shortcut), and a large
share of legitimate notifications among `normal`.
"""
from __future__ import annotations

import json
import re
import shutil
import statistics
from collections import Counter, defaultdict

import pytest

from data import synth
from data.synth_templates import SLOT_DIR, TemplateError, load_library, restyle
from data.taxonomy import category_of, load_taxonomy

CLASSES = load_taxonomy().classes
KEYS = {"text", "label", "source", "group", "split"}


@pytest.fixture(scope="module")
def rows():
    return synth.generate(6000, seed=0)


def test_schema_and_labels(rows):
    assert len(rows) == 6000
    for r in rows:
        assert set(r) == KEYS
        assert r["label"] in CLASSES
        assert r["source"] == "synthetic"
        assert r["split"] in synth.SPLITS
        assert r["group"].split("/", 1)[0] in synth.POOL_WEIGHTS
        assert r["text"].strip() == r["text"] and r["text"]


def test_no_template_syntax_leaks(rows):
    leftovers = [r["text"] for r in rows if re.search(r"[\[\]{}|@]", r["text"]) and "飞机@" not in r["text"]]
    assert not leftovers, leftovers[:5]


def test_deterministic_and_seed_dependent():
    a = synth.generate(2000, seed=7)
    assert json.dumps(a, ensure_ascii=False) == json.dumps(synth.generate(2000, seed=7), ensure_ascii=False)
    b = synth.generate(2000, seed=8)
    assert [r["text"] for r in a] != [r["text"] for r in b]


def test_write_corpus_is_byte_identical(tmp_path):
    first = synth.write_corpus(tmp_path / "a", n=1500, seed=3)
    second = synth.write_corpus(tmp_path / "b", n=1500, seed=3)
    assert set(first) == set(synth.SPLITS)
    total = 0
    for split in synth.SPLITS:
        raw = first[split].read_bytes()
        assert raw == second[split].read_bytes()
        text = raw.decode("utf-8")
        assert "\\u" not in text  # ensure_ascii=False: Chinese stays readable
        lines = text.splitlines()
        total += len(lines)
        assert all(json.loads(line)["split"] == split for line in lines)
    assert total == 1500


@pytest.mark.parametrize("seed", [0, 1, 123])
def test_every_class_in_every_split(seed):
    got = {(r["split"], r["label"]) for r in synth.generate(3000, seed=seed)}
    missing = [(s, c) for s in synth.SPLITS for c in CLASSES if (s, c) not in got]
    assert not missing


def test_groups_and_texts_never_cross_splits(rows):
    split_of_group, split_of_text = defaultdict(set), defaultdict(set)
    for r in rows:
        split_of_group[r["group"]].add(r["split"])
        split_of_text[r["text"]].add(r["split"])
    assert all(len(s) == 1 for s in split_of_group.values())
    assert all(len(s) == 1 for s in split_of_text.values())


def test_template_split_is_per_pool_and_proportional():
    library = load_library()
    for seed in (0, 5):
        split_of = synth.assign_splits(list(library.templates), seed)
        per_pool = defaultdict(Counter)
        for t in library.templates:
            per_pool[t.pool][split_of[t.id]] += 1
        for pool, c in per_pool.items():
            n = sum(c.values())
            assert all(c[s] >= 1 for s in synth.SPLITS), pool
            assert 0.6 <= c["train"] / n <= 0.8, (pool, c)
    assert synth.assign_splits(list(library.templates), 0) != synth.assign_splits(list(library.templates), 5)


def test_assign_splits_refuses_tiny_pools():
    few = [t for t in load_library().templates if t.pool == "spam"][:2]
    with pytest.raises(ValueError):
        synth.assign_splits(few, 0)


def test_class_mix(rows):
    share = Counter(r["label"] for r in rows)
    n = len(rows)
    assert abs(share["normal"] / n - 0.45) < 0.02
    assert abs(share["spam"] / n - 0.15) < 0.02
    fraud = sum(v for k, v in share.items() if category_of(k) == "fraud")
    assert abs(fraud / n - 0.40) < 0.02
    for label in CLASSES:
        if category_of(label) == "fraud":
            assert share[label] / n >= 0.03, label


def test_many_templates_per_class():
    per_class = Counter(t.label for t in load_library().templates)
    for label in CLASSES:
        assert per_class[label] >= 25, (label, per_class[label])
    assert per_class["normal"] >= 80


def test_variety(rows):
    sample = synth.generate(5000, seed=11)
    assert len({r["text"] for r in sample}) / len(sample) >= 0.8
    groups = defaultdict(set)
    for r in sample:
        groups[r["label"]].add(r["group"])
    for label in CLASSES:
        assert len(groups[label]) >= 20, (label, len(groups[label]))
    # each template, on its own, has many surface forms (composition, not fixed strings)
    import random

    library = load_library()
    distinct = []
    for t in library.templates:
        rng = random.Random(0)
        distinct.append(len({restyle(library.render(t, rng), rng) for _ in range(20)}))
    assert statistics.median(distinct) >= 15
    assert sum(d >= 5 for d in distinct) / len(distinct) >= 0.95


def test_lengths_overlap(rows):
    def lengths(pred):
        return sorted(len(r["text"]) for r in rows if pred(r["label"]))

    fraud = lengths(lambda lab: category_of(lab) == "fraud")
    normal = lengths(lambda lab: lab == "normal")
    spam = lengths(lambda lab: lab == "spam")
    assert statistics.median(fraud) < 2 * statistics.median(normal)
    assert statistics.median(normal) < 2 * statistics.median(fraud)
    assert sum(x < 60 for x in fraud) / len(fraud) >= 0.6
    assert sum(x < 40 for x in spam) / len(spam) >= 0.2  # spam is not all long
    # both sides have short and long messages
    assert sum(x < 30 for x in fraud) / len(fraud) >= 0.1
    assert sum(x >= 90 for x in fraud) >= 10 and sum(x >= 90 for x in normal) >= 10


def test_notifications_and_hard_negatives(rows):
    normal = [r for r in rows if r["label"] == "normal"]
    notices = [r for r in normal if r["group"].startswith("normal.notice/")]
    assert len(notices) >= len(normal) / 2
    texts = [r["text"] for r in notices]
    for cue in ("验证码", "尾号", "取件码", "话费", "12123", "预约", "还款"):
        assert sum(cue in t for t in texts) >= 10, cue
    for cue in ("公安", "法院", "贷款", "退款", "客服", "转账", "理赔", "ETC"):
        assert any(cue in r["text"] for r in normal), cue


def test_fraud_carries_scam_hooks(rows):
    # a link, a phone / account / QQ number, a chat id, or money: what real scam SMS carry
    hook = re.compile(r"https?://|[a-z0-9-]+\.(cn|com|top|xyz|vip|cc|net|icu|shop|club|gg|nu)\b|\d{5,}"
                      r"|1\d{2}[- ]\d{4}[- ]\d{4}|QQ|Q\d|企鹅|扣扣|[vV]|微|薇|威信|转|投|垫付|万|元|验证码")
    fraud = [r["text"] for r in rows if category_of(r["label"]) == "fraud"]
    assert sum(bool(hook.search(t)) for t in fraud) / len(fraud) >= 0.9
    assert sum(bool(re.search(r"https?://|t\.cn/|dwz\.cn/", t)) for t in fraud) / len(fraud) >= 0.1


def test_library_rejects_unknown_slot(tmp_path):
    shutil.copy(SLOT_DIR / "vocab.yaml", tmp_path / "vocab.yaml")
    (tmp_path / "bad.yaml").write_text('label: spam\ntemplates:\n  x: "买{no_such_slot}"\n', encoding="utf-8")
    with pytest.raises(TemplateError, match="no_such_slot"):
        load_library(str(tmp_path))
    (tmp_path / "bad.yaml").write_text('label: spam\ntemplates:\n  x: "买{@no_such_fragment}"\n', encoding="utf-8")
    with pytest.raises(TemplateError, match="no_such_fragment"):
        load_library(str(tmp_path))  # failures are not cached


def test_main_prints_counts(tmp_path, capsys):
    assert synth.main(["--out", str(tmp_path), "--n", "600", "--seed", "2"]) == 0
    out = capsys.readouterr().out
    for label in CLASSES:
        assert label in out
    assert (tmp_path / "test.jsonl").exists()
    assert sum(1 for s in synth.SPLITS for _ in (tmp_path / f"{s}.jsonl").open(encoding="utf-8")) == 600


def test_small_and_zero_n():
    assert synth.generate(0) == []
    assert len(synth.generate(7, seed=1)) == 7
    with pytest.raises(ValueError):
        synth.generate(-1)
