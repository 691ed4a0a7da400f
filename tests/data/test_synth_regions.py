"""The regional kinds of the synthetic corpus (issue 19): Taiwan, Hong Kong and Macau fraud of the
types a model trained on the general templates missed, their legitimate look-alikes, and the split
by kind.

    .venv/bin/python -m pytest tests/data/test_synth_regions.py -q
"""
from __future__ import annotations

import json
import re
from collections import Counter, defaultdict

import pytest

from data import synth
from data.synth_templates import REGIONS, load_library
from data.taxonomy import category_of
from tests.data.test_synth import assert_splits_disjoint

REGIONAL = ("tw", "hk", "mo")
# kind -> label: every region has templates of each
FRAUD_KINDS = {
    "stock_group": "fraud.investment",
    "romance_invest": "fraud.investment",
    "loan_offer": "fraud.loan",
    "bill_phish": "fraud.fake_customer_service",
    "installment_atm": "fraud.fake_customer_service",
    "parcel_customs": "fraud.fake_customer_service",
    "eticket": "fraud.impersonate_authority",
    "job_task": "fraud.brushing",
    "guess_who": "fraud.impersonate_acquaintance",
}
LEGIT_KINDS = {"lookalike": "normal.notice", "channel_chat": "normal.personal", "shop_ad": "spam"}
MAINLAND_KINDS = {"tg_group": "fraud.investment", "tg_job": "fraud.brushing", "tg_loan": "fraud.loan"}


@pytest.fixture(scope="module")
def library():
    return load_library()


@pytest.fixture(scope="module")
def rows():
    return synth.generate(8000, seed=0)


@pytest.fixture(scope="module")
def by_id(library):
    return {t.id: t for t in library.templates}


def _texts(rows, by_id, region=None, kind=None, fraud=None, pool=None):
    out = []
    for r in rows:
        t = by_id[r["group"]]
        if region is not None and t.region != region:
            continue
        if kind is not None and t.kind != kind:
            continue
        if fraud is not None and (category_of(r["label"]) == "fraud") != fraud:
            continue
        if pool is not None and t.pool != pool:
            continue
        out.append(r["text"])
    return out


def test_regions_and_kinds_are_declared(library):
    assert {t.region for t in library.templates} == set(REGIONS)
    kinds = defaultdict(set)
    for t in library.templates:
        if t.kind:
            kinds[(t.region, t.kind)].add(t.pool)
    for region in REGIONAL:
        for kind, pool in {**FRAUD_KINDS, **LEGIT_KINDS}.items():
            assert kinds[(region, kind)] == {pool}, (region, kind, kinds[(region, kind)])
    for kind, pool in MAINLAND_KINDS.items():
        assert kinds[("mainland", kind)] == {pool}, kind


@pytest.mark.parametrize("seed", [0, 1, 7, 123])
def test_every_kind_has_templates_in_train_and_test(library, seed):
    split_of = synth.assign_splits(list(library.templates), seed)
    sides = defaultdict(Counter)
    for t in library.templates:
        if t.kind:
            sides[(t.region, t.kind)][split_of[t.id]] += 1
    wanted = [(r, k) for r in REGIONAL for k in {**FRAUD_KINDS, **LEGIT_KINDS}] + [("mainland", k) for k in MAINLAND_KINDS]
    for key in wanted:
        assert sides[key]["train"] >= 1 and sides[key]["test"] >= 1, (key, sides[key])
    # the templates of a kind are cut within the kind: test templates of a kind are never trained on
    for t in library.templates:
        if t.kind:
            assert synth.stratum_of(t) == (t.pool, t.region, t.kind)


def test_every_kind_renders_in_the_corpus(rows, by_id):
    got = Counter((by_id[r["group"]].region, by_id[r["group"]].kind) for r in rows)
    for region in REGIONAL:
        for kind in {**FRAUD_KINDS, **LEGIT_KINDS}:
            assert got[(region, kind)] >= 1, (region, kind, got[(region, kind)])
    # and regional fraud of every region is in the held-out test split
    test_fraud = Counter(by_id[r["group"]].region for r in rows
                         if r["split"] == "test" and category_of(r["label"]) == "fraud")
    for region in REGIONAL:
        assert test_fraud[region] >= 15, (region, test_fraud)


def test_channel_spellings_per_region(rows, by_id):
    tw = _texts(rows, by_id, "tw", fraud=True)
    hk = _texts(rows, by_id, "hk", fraud=True)
    mo = _texts(rows, by_id, "mo", fraud=True)
    mainland = _texts(rows, by_id, "mainland", fraud=True)
    for cue in ("LINE", "賴", "加賴", "LINE ID", "line"):
        assert sum(cue in t for t in tw) >= 5, cue
    assert any(re.search(r"@[a-z]+\d+", t) for t in tw)  # LINE official-account style ids
    for texts in (hk, mo):
        assert sum("WhatsApp" in t for t in texts) >= 10
        assert any(re.search(r"(?<![A-Za-z])WA(?![A-Za-z])", t) for t in texts)
    assert any("微信" in t or "WeChat" in t for t in mo)
    regional = tw + hk + mo
    for cue in ("Telegram", "TG", "飛機"):
        assert any(cue in t for t in regional), cue
    for cue in ("纸飞机", "飞机", "TG", "薇信"):
        assert any(cue in t for t in mainland), cue


def test_currency_words_per_region(rows, by_id):
    tw = " ".join(_texts(rows, by_id, "tw"))
    hk = " ".join(_texts(rows, by_id, "hk"))
    mo = " ".join(_texts(rows, by_id, "mo"))
    for cue in ("NT$", "新台幣", "台幣"):
        assert cue in tw, cue
    for cue in ("HK$", "港幣", "蚊"):
        assert cue in hk, cue
    for cue in ("MOP", "澳門元", "葡幣"):
        assert cue in mo, cue


def test_regional_brands_in_fraud(rows, by_id):
    tw = " ".join(_texts(rows, by_id, "tw", fraud=True))
    hk = " ".join(_texts(rows, by_id, "hk", fraud=True))
    mo = " ".join(_texts(rows, by_id, "mo", fraud=True))
    for cue in ("監理", "遠通電收", "分期", "ATM"):
        assert cue in tw, cue
    assert sum(c in tw for c in ("中華電信", "台灣大哥大", "遠傳")) >= 2  # the operators are impersonated
    assert any(c in tw for c in ("台電", "台灣電力", "自來水", "北水處", "瓦斯"))
    assert any(c in tw for c in ("關稅", "關務署", "清關", "稅費"))
    for cue in ("運輸署", "轉數快", "TU"):
        assert cue in hk, cue
    assert any(c in hk for c in ("分期", "重複扣款"))
    assert any(c in hk for c in ("順豐", "香港郵政", "郵政", "KEX"))
    assert any(c in hk for c in ("易通行", "HKeToll", "隧道費"))
    assert any(c in hk for c in ("中電", "港燈", "水務署", "煤氣公司"))
    assert any(c in hk for c in ("csl", "3香港", "SmarTone", "中國移動香港"))
    assert "交通事務局" in mo
    assert any(c in mo for c in ("分期", "重複扣款"))
    assert any(c in mo for c in ("澳門郵政", "順豐", "海關"))
    assert any(c in mo for c in ("澳電", "自來水公司"))
    assert any(c in mo for c in ("MPay", "澳門通"))
    # Cantonese particles in Hong Kong and Macau fraud, as people there write
    for texts in (hk, mo):
        assert sum(texts.count(p) for p in "嘅咗唔喺啲") >= 50


def test_legitimate_look_alikes_per_region(rows, by_id):
    for region in REGIONAL:
        notices = _texts(rows, by_id, region, kind="lookalike")
        chat = _texts(rows, by_id, region, kind="channel_chat")
        ads = _texts(rows, by_id, region, kind="shop_ad")
        assert len(notices) >= 20 and len(chat) >= 8 and len(ads) >= 8, (region, len(notices), len(chat), len(ads))
    tw_notices = " ".join(_texts(rows, by_id, "tw", pool="normal.notice"))
    for cue in ("中華郵政", "7-11", "全家", "165", "驗證碼", "點數", "帳單"):
        assert cue in tw_notices, cue
    hk_notices = " ".join(_texts(rows, by_id, "hk", pool="normal.notice"))
    for cue in ("香港郵政", "順豐", "18222", "驗證碼", "積分"):
        assert cue in hk_notices, cue
    mo_notices = " ".join(_texts(rows, by_id, "mo", pool="normal.notice"))
    for cue in ("澳門郵政", "司", "驗證碼", "積分"):
        assert cue in mo_notices, cue
    # personal chat that names the channel, innocently
    assert any("LINE" in t or "賴" in t for t in _texts(rows, by_id, "tw", kind="channel_chat"))
    for region in ("hk", "mo"):
        assert any("WhatsApp" in t for t in _texts(rows, by_id, region, kind="channel_chat")), region
    # shops: some of the advertising says how to stop it
    for region, cue in (("tw", r"退訂|拒收"), ("hk", r"STOP|退訂"), ("mo", r"STOP|取消訂閱")):
        assert any(re.search(cue, t) for t in _texts(rows, by_id, region, kind="shop_ad")), region


def test_official_domains_only_in_legitimate_messages(library, rows, by_id):
    sites = {e["site"] for name in ("tw_utility", "hk_utility", "mo_utility", "mo_telco", "tw_telco", "hk_telco",
                                    "hk_courier", "tw_toll") for e in library.vocab["entities"][name]}
    sites |= {"www.mvdis.gov.tw", "www.hketoll.gov.hk", "www.macaupost.gov.mo", "www.dsat.gov.mo"}
    pattern = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, sorted(sites))) + r")(?![\w-])")
    fraud = [r["text"] for r in rows if category_of(r["label"]) == "fraud"]
    assert not [t for t in fraud if pattern.search(t)]
    legit = [r["text"] for r in rows if r["label"] == "normal" and by_id[r["group"]].region in REGIONAL]
    assert sum(bool(pattern.search(t)) for t in legit) >= 20
    # and the fraud of the new kinds carries a look-alike link, a number or a chat id
    hook = re.compile(r"https?://|\.(top|cc|vip|xyz|icu|info|shop|life|com|net|club|online|ink|buzz)\b|\d{4,}|@\w+|LINE|賴")
    kinded = [r["text"] for r in rows if by_id[r["group"]].kind in FRAUD_KINDS]
    assert sum(bool(hook.search(t)) for t in kinded) / len(kinded) >= 0.8


def test_regional_share_and_legit_at_least_fraud(rows, by_id):
    regional = [r for r in rows if by_id[r["group"]].region in REGIONAL]
    share = len(regional) / len(rows)
    assert 0.25 <= share <= 0.35, share
    fraud = sum(category_of(r["label"]) == "fraud" for r in regional)
    assert len(regional) - fraud >= fraud
    # no region swamps the others or the mainland
    per_region = Counter(by_id[r["group"]].region for r in rows)
    assert per_region["mainland"] >= 0.6 * len(rows)
    for region in REGIONAL:
        assert per_region[region] >= 0.03 * len(rows), per_region


def test_split_disjoint_and_deterministic(rows):
    assert_splits_disjoint(rows)
    again = synth.generate(8000, seed=0)
    assert json.dumps(again, ensure_ascii=False) == json.dumps(rows, ensure_ascii=False)
    library = load_library()
    assert synth.assign_splits(list(library.templates), 3) == synth.assign_splits(list(library.templates), 3)


def test_only_taxonomy_labels(rows):
    labels = {r["label"] for r in rows}
    assert labels == {"normal", "spam", "fraud.impersonate_authority", "fraud.loan", "fraud.fake_customer_service",
                      "fraud.impersonate_acquaintance", "fraud.brushing", "fraud.investment", "fraud.other"}
