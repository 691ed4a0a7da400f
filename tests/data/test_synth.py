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


@pytest.fixture(scope="module")
def many_rows():
    # the vocabulary checks count rare cues: every template added thins each one's share of a
    # sample, so they look at a sample large enough that a cue the library renders cannot vanish
    # by chance (at 6,000 rows two such counts fell below their floor when 270 templates were added)
    return synth.generate(30000, seed=0)


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
    # "@" is fine only as the head of a chat id (飞机@kf123, LINE @vip888); a stray one is syntax
    leftovers = [r["text"] for r in rows if re.search(r"[\[\]{}|]|@(?![A-Za-z0-9_])", r["text"])]
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


def assert_splits_disjoint(rows) -> None:
    """No template group and no text in two splits."""
    split_of_group, split_of_text = defaultdict(set), defaultdict(set)
    for r in rows:
        split_of_group[r["group"]].add(r["split"])
        split_of_text[r["text"]].add(r["split"])
    assert all(len(s) == 1 for s in split_of_group.values())
    assert all(len(s) == 1 for s in split_of_text.values())


def test_groups_and_texts_never_cross_splits(rows):
    assert_splits_disjoint(rows)


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
    few = [t for t in load_library().templates if t.pool == "spam" and not t.kind][:2]
    with pytest.raises(ValueError):
        synth.assign_splits(few, 0)
    one_of_a_kind = [t for t in load_library().templates if t.pool == "spam" and t.kind][:1]
    with pytest.raises(ValueError):  # a kind needs a template in train and one in test
        synth.assign_splits(one_of_a_kind, 0)


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


def test_notifications_and_hard_negatives(many_rows):
    normal = [r for r in many_rows if r["label"] == "normal"]
    notices = [r for r in normal if r["group"].startswith("normal.notice/")]
    assert len(notices) >= len(normal) / 2
    texts = [r["text"] for r in notices]
    for cue in ("验证码", "尾号", "取件码", "话费", "12123", "预约", "还款"):
        assert sum(cue in t for t in texts) >= 50, cue
    for cue in ("公安", "法院", "贷款", "退款", "客服", "转账", "理赔", "ETC"):
        assert any(cue in r["text"] for r in normal), cue


def test_fraud_carries_scam_hooks(rows):
    # a link, a phone / account / QQ number, a chat id, or money: what real scam SMS carry
    hook = re.compile(r"https?://|[a-z0-9-]+\.(cn|com|top|xyz|vip|cc|net|icu|shop|club|gg|nu)\b|\d{5,}"
                      r"|1\d{2}[- ]\d{4}[- ]\d{4}|QQ|Q\d|企鹅|扣扣|[vV]|微|薇|威信|转|投|垫付|万|元|验证码"
                      r"|LINE|賴|WhatsApp|轉|匯|萬|驗證碼|\d{4}[- ]\d{3,4}")
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


# --- the regional (Taiwan / Hong Kong / Macau, Traditional script) part of the corpus ---------

# Characters that exist only in Traditional script (their Simplified forms differ).
TRADITIONAL_ONLY = set("帳郵點請務認銀費這們個訊號錢發戶額關違規繳資機電話線網過會時為與對處單達經貸級幣證導聯絡"
                       "員購買賣區車門間險衛醫療詢詳轉匯萬實態開設補領撥鐘內")


def _region_of():
    return {t.id: t.region for t in load_library().templates}


def _traditional(text: str) -> bool:
    return any(c in TRADITIONAL_ONLY for c in text)


def test_traditional_script_in_fraud_normal_and_spam(rows):
    by_category = defaultdict(list)
    for r in rows:
        by_category[category_of(r["label"])].append(r["text"])
    for category, floor in (("fraud", 0.10), ("normal", 0.10), ("spam", 0.08)):
        texts = by_category[category]
        share = sum(map(_traditional, texts)) / len(texts)
        assert share >= floor, (category, share)
    # every fraud type has Traditional-script messages, not only some of them
    for label in CLASSES:
        texts = [r["text"] for r in rows if r["label"] == label]
        assert sum(map(_traditional, texts)) / len(texts) >= 0.08, label


def test_regional_templates_are_traditional_and_mainland_ones_simplified(rows):
    region = _region_of()
    regional = [r["text"] for r in rows if region[r["group"]] != "mainland"]
    mainland = [r["text"] for r in rows if region[r["group"]] == "mainland"]
    import opencc  # what training's normalization uses (data/normalize.py)

    t2s = opencc.OpenCC("t2s").convert
    assert sum(t2s(t) != t for t in regional) / len(regional) >= 0.95  # short ones may be script-neutral
    assert sum(t2s(t) != t for t in mainland) / len(mainland) <= 0.01


def test_region_share_per_pool(rows):
    region = _region_of()
    per_pool = defaultdict(Counter)
    for r in rows:
        per_pool[r["group"].split("/", 1)[0]][region[r["group"]] != "mainland"] += 1
    assert set(per_pool) == set(synth.POOL_WEIGHTS)
    for pool, c in per_pool.items():
        share = c[True] / (c[True] + c[False])
        assert abs(share - synth.REGION_SHARE) < 0.07, (pool, share)


def test_many_regional_templates():
    templates = [t for t in load_library().templates if t.region != "mainland"]
    per_pool = Counter(t.pool for t in templates)
    assert set(per_pool) == set(synth.POOL_WEIGHTS)
    assert all(n >= 10 for n in per_pool.values()), per_pool
    assert sum(category_of(t.label) == "fraud" for t in templates) >= 60
    assert sum(t.label == "normal" for t in templates) >= 40


@pytest.mark.parametrize("seed", [0, 1, 123])
def test_regional_templates_on_every_side_of_the_split(seed):
    library = load_library()
    split_of = synth.assign_splits(list(library.templates), seed)
    per_stratum, per_side = defaultdict(Counter), defaultdict(Counter)
    for t in library.templates:
        per_stratum[synth.stratum_of(t)][split_of[t.id]] += 1
        per_side[(t.pool, t.region == "mainland")][split_of[t.id]] += 1
    for (pool, region, kind), c in per_stratum.items():
        sides = ("train", "test") if kind else synth.SPLITS  # a kind: train and test at least
        assert all(c[s] >= 1 for s in sides), (pool, region, kind, c)
    for stratum, c in per_side.items():
        assert all(c[s] >= 1 for s in synth.SPLITS), (stratum, c)
    region = {t.id: t.region for t in library.templates}
    got = {(r["split"], r["label"]) for r in synth.generate(6000, seed=seed) if region[r["group"]] != "mainland"}
    missing = [(s, c) for s in synth.SPLITS for c in CLASSES if (s, c) not in got]
    assert not missing


def test_regional_vocabulary_and_scripts(many_rows):
    region = _region_of()
    fraud = [r["text"] for r in many_rows if category_of(r["label"]) == "fraud" and region[r["group"]] != "mainland"]
    normal = [r["text"] for r in many_rows if r["label"] == "normal" and region[r["group"]] != "mainland"]
    for cue in ("LINE", "監理", "健保", "郵政", "ATM", "帳戶", "HK$", "WhatsApp", "點數", "八達通", "轉數快"):
        assert any(cue in t for t in fraud), cue
    for cue in ("驗證碼", "郵政", "健保", "八達通", "轉數快", "帳戶", "LINE", "ATM"):
        assert any(cue in t for t in normal), cue
    assert any(re.search(r"09\d\d-\d{3}-\d{3}", t) for t in fraud)  # Taiwan mobile numbers


def test_official_links_in_legitimate_notices_only(rows):
    official = ("post.gov.tw", "hongkongpost.hk", "nhi.gov.tw", "mvdis.gov.tw", "12306.cn", "122.gov.cn",
                "cmbchina.com", "chinatax.gov.cn", "10086.cn", "www.gov.cn")
    notices = [r["text"] for r in rows if r["group"].startswith("normal.notice/")]
    fraud = [r["text"] for r in rows if category_of(r["label"]) == "fraud"]
    assert sum(any(d in t for d in official) for t in notices) >= 30
    for d in ("post.gov.tw", "hongkongpost.hk", "cmbchina.com", "10086.cn", "122.gov.cn"):
        assert any(d in t for t in notices), d
    assert not [t for t in fraud if re.search(r"(?<![\w-])(" + "|".join(map(re.escape, official)) + r")", t)]
    # fraud links are look-alikes on odd domains, in both regions
    assert any(re.search(r"post[\w-]*\.(top|cc|vip|xyz|icu|info|shop|life|club|online|ink|buzz)", t) for t in fraud)
