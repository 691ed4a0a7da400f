"""Feedback campaigns with real parts: SQLite and PostgreSQL stores, datasketch's MinHash LSH, the
tiny model's own normalization, and the one decision engine (`Predictor.classify` ->
`Policy.apply`) that /classify, /chat and `fanzha score` share."""
from __future__ import annotations

import json
import time
import zlib

import pandas as pd
import pytest
import yaml

from data.normalize import VARIANTS_PATH, Normalizer
from data.template import shingles, template
from serving.feedback.campaigns import NUM_PERM, CampaignIndex, Campaigns
from serving.feedback.store import StoreError, open_store
from serving.policy import CampaignRules, Policy, PolicyError

SCAM = "【ETC服务】您的ETC认证已失效，请点击 etc-renz.cn 重新认证，客服4008123456，逾期将影响通行"
# the same script: other digits, another domain, full-width letters, Traditional characters
VARIANTS = ["【ETC服务】您的ETC认证已失效，请点击 etc-abc.top 重新认证，客服4001239999，逾期将影响通行",
            "【ＥＴＣ服務】您的ETC認證已失效，請點擊 http://etc.vip/a8 重新認證，客服95013，逾期將影響通行"]
LEGIT = ["您的验证码是482913，5分钟内有效，请勿泄露。", "【中国银行】您尾号1234的账户于11月3日消费256.00元。",
         "【顺丰速运】您的快件已到达小区驿站，取件码 8-2-1103，请及时领取。", "明天下午三点开会，记得带材料"]
LOAN = "恭喜您获得贷款资格，额度{}元，当天放款，点击 loan{}.cn 申请，回T退订"


@pytest.fixture
def normalize():
    return Normalizer(VARIANTS_PATH)


def make(store, rules=None, labels=("fraud.fake_customer_service", "fraud.loan", "fraud.other")):
    rules = rules or CampaignRules()
    return Campaigns(store, lambda: rules, labels=labels).start()


@pytest.fixture
def sqlite_store(tmp_path):
    return open_store(tmp_path / "feedback.db")


def test_template_masks_what_campaigns_change():
    t = template(Normalizer(VARIANTS_PATH)("订单A8F3K2已发货，详询 400-812-3456 或 https://x.cn/a?b=1，金额256.00元，11月3日"))
    assert t == "订单I已发货详询P或U金额D元D月D日"
    assert template("加vx：abc123，138****5678") == "加vxIP"


def test_signatures_are_datasketch_minhash_values(normalize):
    """The batched signature equals datasketch's own MinHash.update_batch, value for value."""
    from datasketch import MinHash

    index = CampaignIndex(normalize)
    templates = [template(normalize(t)) for t in [SCAM, *VARIANTS, *LEGIT, "短", "x" * 300]]
    for t, row in zip(templates, index.signatures(templates)):
        m = MinHash(num_perm=NUM_PERM, hashfunc=zlib.crc32)
        m.update_batch(shingles(t))
        assert (m.hashvalues == row).all(), t


def test_analyst_confirmation_blocks_variants_at_once_and_survives_a_restart(sqlite_store, normalize):
    campaigns = make(sqlite_store)
    matcher = campaigns.matcher(normalize)
    rules = CampaignRules()
    assert matcher.decide_many([normalize(v) for v in VARIANTS], rules) == [None, None]
    answer = campaigns.submit(matcher, SCAM, "fraud.fake_customer_service", "analyst")
    cid = answer["campaign"]
    assert answer["joined"] is False and answer["campaign_state"]["action"] == "block"
    texts = [normalize(t) for t in [*VARIANTS, *LEGIT]]
    assert matcher.decide_many(texts, rules) == [("block", f"campaign:{cid}")] * 2 + [None] * len(LEGIT)
    # a new process on the same file: the same decisions, nothing lost
    again = make(open_store(sqlite_store.path)).matcher(normalize)
    assert again.decide_many(texts, rules) == matcher.decide_many(texts, rules)
    assert sqlite_store.journal_mode() == "wal"


def test_a_store_larger_than_one_page_is_read_whole(sqlite_store, normalize):
    """`fanzha score` reads the store once: every page of it, not the first."""
    for k in range(10):
        sqlite_store.add(LOAN.format(k, k) + "第" * k, "fraud.loan", "analyst")
    campaigns = Campaigns(sqlite_store, lambda: CampaignRules(), labels=("fraud.loan",))
    campaigns.page = 3
    assert campaigns.sync() == 10 and len(campaigns.reports) == 10
    sqlite_store.add(SCAM, "fraud.loan", "analyst")
    assert campaigns.sync() == 1 and campaigns.sync() == 0


def test_user_reports_count_distinct_senders_and_appeals_and_undo(sqlite_store, normalize):
    rules = CampaignRules(min_weight=3)
    campaigns = make(sqlite_store, rules)
    matcher = campaigns.matcher(normalize)
    probe = normalize(LOAN.format(80000, "zz"))
    ids = [campaigns.submit(matcher, LOAN.format(50000 + i, i), "fraud.loan", "user_report", sender="13800000001")["id"]
           for i in range(5)]  # one sender, five reports: weight 1
    assert matcher.decide_many([probe], rules) == [None]
    for n, sender in enumerate(("13800000002", "13800000003")):
        answer = campaigns.submit(matcher, LOAN.format(60000 + n, f"b{n}"), "fraud.loan", "user_report", sender=sender)
    state = answer["campaign_state"]
    assert answer["joined"] and state["weight"] == 3 and state["action"] == "block"
    cid = answer["campaign"]
    assert matcher.decide_many([probe], rules) == [("block", f"campaign:{cid}")]
    # an appeal takes weight away and lands in the review queue
    appeal = campaigns.submit(matcher, LOAN.format(70000, "c"), "normal", "appeal")
    assert appeal["campaign"] == cid and appeal["campaign_state"]["weight"] == 2
    assert matcher.decide_many([probe], rules) == [None]
    assert [q["id"] for q in campaigns.queue()] == [appeal["id"]]
    # undoing the appeal restores the block; undoing two reports of one sender changes nothing
    assert campaigns.undo(appeal["id"])["deleted"] is True
    assert campaigns.undo(appeal["id"])["deleted"] is False  # undone before: no second effect
    assert campaigns.undo(10**9) is None
    assert matcher.decide_many([probe], rules) == [("block", f"campaign:{cid}")]
    campaigns.undo(ids[0]), campaigns.undo(ids[1])
    assert matcher.decide_many([probe], rules) == [("block", f"campaign:{cid}")]


def test_an_analyst_normal_exempts_the_template_against_poisoned_reports(sqlite_store, normalize):
    rules = CampaignRules(min_weight=2)
    campaigns = make(sqlite_store, rules)
    matcher = campaigns.matcher(normalize)
    notice = "【中国银行】您尾号{}的账户于11月3日消费{}元，如非本人操作请致电95566。"
    first = campaigns.submit(matcher, notice.format(1234, 256), "spam", "user_report", sender="a")
    campaigns.submit(matcher, notice.format(9876, 18), "spam", "user_report", sender="b")
    probe = normalize(notice.format(5555, 77))
    assert matcher.decide_many([probe], rules) == [("flag", f"campaign:{first['campaign']}")]  # spam -> flag
    exempt = campaigns.submit(matcher, notice.format(1111, 1), "normal", "analyst")
    assert exempt["campaign"] == first["campaign"] and exempt["campaign_state"]["exempt"]
    for sender in "cdefg":  # more reports cannot undo the analyst's word
        campaigns.submit(matcher, notice.format(2222, 2), "spam", "user_report", sender=sender)
    assert matcher.decide_many([probe], rules) == [None]


def test_bad_reports_are_refused_with_the_reason(sqlite_store, normalize):
    campaigns = make(sqlite_store)
    matcher = campaigns.matcher(normalize)
    for text, label, source, reason in [
            (SCAM, "fraud.unknown_kind", "analyst", "unknown label"),
            (SCAM, "fraud.loan", "friend", "source must be one of"),
            ("  ", "fraud.loan", "analyst", "empty text"),
            (SCAM, "fraud.loan", "appeal", "its label is normal"),
            (SCAM, "normal", "user_report", "contest a block with source appeal")]:
        with pytest.raises(ValueError, match=reason):
            campaigns.submit(matcher, text, label, source)
    assert sqlite_store.last_id() == 0  # nothing stored


def test_old_days_are_dropped_whole(sqlite_store, normalize):
    rules = CampaignRules(ttl_days=2)
    day = 86400.0
    old = sqlite_store.add(SCAM, "fraud.loan", "analyst", created_at=time.time() - 3 * day)
    recent = sqlite_store.add(LOAN.format(1, 1), "fraud.loan", "analyst", created_at=time.time() - 0.5 * day)
    campaigns = make(sqlite_store, rules)
    matcher = campaigns.matcher(normalize)
    assert set(campaigns.reports) == {recent["id"]} and len(campaigns.days) == 1
    assert matcher.decide_many([normalize(VARIANTS[0])], rules) == [None]  # its day left the retention
    assert matcher.decide_many([normalize(LOAN.format(2, 2))], rules)[0][1] == f"campaign:{recent['campaign']}"
    # three days later the recent day leaves the window too: dropped from the campaigns and the index
    # at the next sync, whole
    start = time.time()
    campaigns.clock = lambda: start + 3 * day
    assert campaigns.sync() == 1 and not campaigns.reports and not campaigns.campaigns and len(matcher.index) == 0
    assert old["id"] not in campaigns.reports


def test_policy_campaigns_section_is_validated():
    assert Policy.from_dict({"campaigns": {"min_weight": 5, "actions": {"spam": "block"}}}).campaigns == \
        CampaignRules(min_weight=5, actions={"fraud": "block", "spam": "block"})
    for bad in ({"min_weight": -1}, {"ttl_days": 0}, {"similarity": 1.5}, {"actions": {"fraud": "delete"}},
                {"unknown": 1}):
        with pytest.raises(PolicyError, match="campaigns"):
            Policy.from_dict({"campaigns": bad})


def _policy_with(tmp_path, tiny_serving, **lists):
    raw = yaml.safe_load((tiny_serving / "policy.yaml").read_text(encoding="utf-8"))
    raw.update(lists)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def test_precedence_blocklist_campaign_allowlist_thresholds(tmp_path, tiny_serving, sqlite_store):
    """The one engine: a campaign beats a trusted sender (pseudo base stations spoof short codes) and
    the thresholds; the block-list beats the campaign."""
    from serving.predictor import Predictor

    policy = _policy_with(tmp_path, tiny_serving, allowlist={"senders": ["95588"]},
                          blocklist={"domains": ["etc-abc.top"], "phones": []})
    predictor = Predictor(tiny_serving, policy=policy)
    campaigns = make(sqlite_store, labels=predictor.labels)
    predictor.use_campaigns(campaigns)
    before = predictor.classify([VARIANTS[1], *LEGIT], senders=["95588"] + [None] * len(LEGIT))
    assert before[0]["reason"] == "allowlist:sender"
    cid = campaigns.submit(predictor.campaigns, SCAM, "fraud.fake_customer_service", "analyst")["campaign"]
    after = predictor.classify([VARIANTS[0], VARIANTS[1], *LEGIT], senders=[None, "95588"] + [None] * len(LEGIT))
    assert [(r["action"], r["reason"]) for r in after[:2]] == [("block", "blocklist:domain:etc-abc.top"),
                                                              ("block", f"campaign:{cid}")]
    assert [(r["action"], r["reason"]) for r in after[2:]] == [(r["action"], r["reason"]) for r in before[1:]]
    assert predictor.classify([VARIANTS[1]])[0]["label"] == before[0]["label"]  # the model's own answer is kept


def test_fanzha_score_decides_with_the_same_campaigns(tmp_path, tiny_serving, sqlite_store):
    from fanzha.cli import main as cli
    from serving.predictor import Predictor

    predictor = Predictor(tiny_serving)
    campaigns = make(sqlite_store, labels=predictor.labels)
    predictor.use_campaigns(campaigns)
    campaigns.submit(predictor.campaigns, SCAM, "fraud.fake_customer_service", "analyst")
    texts = [*VARIANTS, *LEGIT, ""]
    pd.DataFrame({"text": texts}).to_csv(tmp_path / "in.csv", index=False)
    assert cli(["score", "--model", str(tiny_serving), "--input", str(tmp_path / "in.csv"),
                "--output", str(tmp_path / "out.csv"), "--feedback-db", str(sqlite_store.path), "--quiet"]) == 0
    out = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    served = predictor.classify(texts)
    assert list(out["reason"]) == [r["reason"] for r in served]
    assert list(out["action"]) == [r["action"] or "" for r in served]
    assert out["reason"].str.startswith("campaign:").sum() == 2
    assert cli(["score", "--model", str(tiny_serving), "--input", str(tmp_path / "in.csv"), "--output",
                str(tmp_path / "x.csv"), "--feedback-db", str(tmp_path / "no" / "such.db"), "--quiet"]) == 2


def test_feedback_export_writes_only_what_an_analyst_stands_behind(tmp_path, sqlite_store, normalize):
    from fanzha.cli import main as cli
    from training.examples import read_jsonl

    campaigns = make(sqlite_store)
    matcher = campaigns.matcher(normalize)
    confirmed = campaigns.submit(matcher, SCAM, "fraud.fake_customer_service", "analyst")
    report = campaigns.submit(matcher, VARIANTS[0], "fraud.other", "user_report", sender="s1")
    lone = campaigns.submit(matcher, LOAN.format(1, 1), "fraud.loan", "user_report", sender="s2")
    appeal = campaigns.submit(matcher, "【中国银行】您的信用卡账单已出，本期应还256.00元，请于11月3日前还款。", "normal", "appeal")
    campaigns.submit(matcher, "【中国银行】您的信用卡账单已出，本期应还18.00元，请于12月3日前还款。", "normal", "analyst")
    undone = campaigns.submit(matcher, VARIANTS[1], "fraud.fake_customer_service", "analyst")
    campaigns.undo(undone["id"])
    out = tmp_path / "feedback.jsonl"
    assert cli(["feedback", "export", "--db", str(sqlite_store.path), "--out", str(out)]) == 0
    rows = read_jsonl(out)
    by_id = {r["feedback_id"]: r for r in rows}
    assert set(by_id) == {confirmed["id"], report["id"], appeal["id"], appeal["id"] + 1}
    assert by_id[report["id"]]["label"] == "fraud.fake_customer_service"  # the analyst's label, not the reporter's
    assert by_id[appeal["id"]]["label"] == "normal" and by_id[appeal["id"]]["feedback_source"] == "appeal"
    assert lone["id"] not in by_id and undone["id"] not in by_id
    row = by_id[confirmed["id"]]
    assert row["source"] == "feedback" and row["group"] == f"feedback:{confirmed['campaign']}" and row["time"].endswith("Z")
    assert cli(["feedback", "export", "--db", str(sqlite_store.path), "--out", str(out), "--since", "2999-01-01"]) == 0
    assert read_jsonl(out) == []
    assert cli(["feedback", "export", "--db", str(tmp_path / "missing.db"), "--out", str(out)]) == 2
    assert cli(["feedback", "export", "--db", str(sqlite_store.path), "--out", str(tmp_path / "x.csv")]) == 2


def test_postgres_replicas_follow_each_other(postgres_schema, normalize):
    """Two replicas on one PostgreSQL: a report or an undo on one reaches the other's in-memory
    index within a few seconds."""
    rules = CampaignRules()
    a = Campaigns(open_store(postgres_schema), lambda: rules, labels=("fraud.loan",), sync_every=0.2).start()
    b = Campaigns(open_store(postgres_schema), lambda: rules, labels=("fraud.loan",), sync_every=0.2).start()
    try:
        ma, mb = a.matcher(normalize), b.matcher(normalize)
        probe = [normalize(VARIANTS[0])]
        answer = a.submit(ma, SCAM, "fraud.loan", "analyst")
        assert ma.decide_many(probe, rules) == [("block", f"campaign:{answer['campaign']}")]
        assert _within(5, lambda: mb.decide_many(probe, rules) == [("block", f"campaign:{answer['campaign']}")])
        b.undo(answer["id"])
        assert _within(5, lambda: ma.decide_many(probe, rules) == [None])
    finally:
        a.stop(), b.stop()


def test_store_down_classify_goes_on_feedback_refused(tmp_path, tiny_serving):
    """An unreachable PostgreSQL: the engine keeps deciding (campaign checks skipped and counted),
    reports fail with StoreError (the service's 503)."""
    from serving.metrics import service_metrics
    from serving.predictor import Predictor

    predictor = Predictor(tiny_serving)
    metrics = service_metrics()
    campaigns = Campaigns(open_store("postgresql://nobody:x@127.0.0.1:9/none"), lambda: CampaignRules(), metrics,
                          labels=predictor.labels).start()
    predictor.use_campaigns(campaigns)
    skipped = metrics.campaign_checks_degraded.labels("skipped")._value.get()
    results = predictor.classify([SCAM, *LEGIT])
    assert all(r["action"] for r in results)
    assert metrics.campaign_checks_degraded.labels("skipped")._value.get() == skipped + len(results)
    with pytest.raises(StoreError, match="feedback database postgresql://nobody:\\*\\*\\*@"):
        campaigns.submit(predictor.campaigns, SCAM, "fraud.loan", "analyst")
    campaigns.stop()


def _within(seconds: float, check) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_export_rows_load_as_training_feedback(tmp_path, sqlite_store, normalize):
    """What `fanzha feedback export` writes is what `data.feedback` reads (training/examples.py)."""
    from data.taxonomy import load_taxonomy
    from training.config import load_config
    from training.examples import load_splits

    campaigns = make(sqlite_store)
    campaigns.submit(campaigns.matcher(normalize), SCAM, "fraud.fake_customer_service", "analyst")
    out = tmp_path / "fb.jsonl"
    from serving.feedback.export import export
    assert export(str(sqlite_store.path), out)["written"] == 1
    cfg = load_config(None, {"data.synthetic_n": 60, "data.feedback": [str(out)]})
    splits, manifest = load_splits(cfg.data, load_taxonomy(cfg.taxonomy), tmp_path)
    assert manifest["feedback"]["kept"] == 1 and [r for r in splits["train"] if r["source"] == "feedback"]
    assert json.loads(out.read_text(encoding="utf-8"))["text"] == SCAM
