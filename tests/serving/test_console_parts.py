"""The analyst console's parts on their own: sessions and CSRF tokens, the block-list edit of a
real policy file, the review log on a real SQLite store, the audit-log source, retiring a
campaign. (The console in a browser, against the real server: test_console.py.)"""
from __future__ import annotations

import json
import shutil
import time

import pytest

from data.normalize import VARIANTS_PATH, Normalizer
from data.template import template
from serving.audit import DecisionLog, mask
from serving.console.auth import KeysError, Sessions, named_keys
from serving.console.review import AuditTail, Filters, ReviewLog, ReviewQueue
from serving.feedback.campaigns import Campaigns
from serving.feedback.export import training_rows
from serving.feedback.store import open_store
from serving.policy import CampaignRules, Policy, PolicyError, PolicyFile
from tests.serving.conftest import REPO

SCAM = "【ETC服务】您的ETC认证已失效，请点击 http://etc-rz.top/a8 重新认证，客服13812345678，卡号6222021234567890123"


def test_named_keys_and_sessions():
    keys = named_keys({"FANZHA_API_KEY": "single-key", "FANZHA_API_KEYS": "alice:alice-key-1, bob:bob-key-22"})
    assert keys == {"single-key": "default", "alice-key-1": "alice", "bob-key-22": "bob"}
    for bad in ("alice", "alice:short", ":k-long-enough", "a:same-key-1,b:same-key-1"):
        with pytest.raises(KeysError):
            named_keys({"FANZHA_API_KEYS": bad})
    sessions = Sessions(keys)
    assert sessions.key_name("bob-key-22") == "bob" and sessions.key_name("bob-key-2") is None
    cookie = sessions.issue("alice")
    session = sessions.verify(cookie)
    assert session.name == "alice"
    token = sessions.csrf(session)
    tampered = token[:-1] + ("1" if token.endswith("0") else "0")  # a token ending in "0" stayed the same (CI, 1 in 16)
    assert sessions.check_csrf(session, token) and not sessions.check_csrf(session, tampered)
    assert not sessions.check_csrf(session, None)
    payload, mac = cookie.rsplit(".", 1)
    assert sessions.verify(payload + "." + "0" * len(mac)) is None  # forged signature
    assert sessions.verify(cookie[1:]) is None
    # another session has another token; a removed or rotated key ends its sessions
    assert sessions.csrf(sessions.verify(sessions.issue("alice"))) != token
    assert Sessions({"single-key": "default", "bob-key-22": "bob"}).verify(cookie) is None
    assert Sessions({**keys, "alice-key-ROTATED": "alice"}).verify(cookie) is None
    assert Sessions(keys, lifetime=-1).verify(cookie) is None  # expired
    # an open console (no keys) signs anonymous sessions with the deployment key
    open_ = Sessions({}, secret=b"k" * 32)
    assert open_.open and open_.verify(open_.issue("anonymous")).name == "anonymous"
    assert open_.verify(sessions.issue("alice")) is None


def test_blocklist_edit_keeps_the_file_and_is_validated(tmp_path):
    path = tmp_path / "policy.yaml"
    shutil.copy(REPO / "configs" / "policy.yaml", path)
    before = path.read_text(encoding="utf-8")
    pf = PolicyFile(path, check_every=0)
    policy, added = pf.add_to_blocklist("domain", "Pay-Refund.VIP")
    assert added and policy.block_domains == {"pay-refund.vip"} and pf.policy is policy
    policy, added = pf.add_to_blocklist("phone", "+86 138-1234-5678")
    assert added and policy.block_phones == {"13812345678"}
    assert pf.add_to_blocklist("domain", "pay-refund.vip")[1] is False  # already there: unchanged
    after = path.read_text(encoding="utf-8")
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines()) if a != b]
    assert len(changed) == 2 and len(before.splitlines()) == len(after.splitlines())  # comments and layout kept
    assert all("#" in b for _, b in changed)  # the trailing comments stay on the edited lines
    assert Policy.load(path).to_dict() == policy.to_dict()
    for kind, value in (("domain", "not a domain"), ("domain", "<script>"), ("phone", "12345"), ("url", "x.cn")):
        with pytest.raises(PolicyError):
            pf.add_to_blocklist(kind, value)
    assert path.read_text(encoding="utf-8") == after  # a refused edit leaves the file alone
    # a model check that refuses the new policy refuses the edit too
    pf.checks.append(lambda p: (_ for _ in ()).throw(PolicyError("refused by a model")))
    with pytest.raises(PolicyError, match="refused by a model"):
        pf.add_to_blocklist("domain", "other.cn")
    assert path.read_text(encoding="utf-8") == after


def test_blocklist_edit_of_block_style_lists_and_missing_sections(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("thresholds:\n  fraud: {block: 0.9, flag: 0.5}\nblocklist:\n  domains:\n    - a.cn  # first\n"
                    "  # phones come later\nallowlist:\n  senders: [\"95588\"]\n", encoding="utf-8")
    pf = PolicyFile(path)
    assert pf.add_to_blocklist("domain", "b.cn")[0].block_domains == {"a.cn", "b.cn"}
    assert pf.add_to_blocklist("phone", "4008123456")[0].block_phones == {"4008123456"}
    assert "- a.cn  # first" in path.read_text(encoding="utf-8") and pf.policy.allow_senders == {"95588"}
    bare = tmp_path / "bare.yaml"
    bare.write_text("thresholds:\n  fraud: {block: 0.9}\n", encoding="utf-8")
    assert PolicyFile(bare).add_to_blocklist("domain", "c.cn")[0].block_domains == {"c.cn"}


def test_masked_text_keeps_the_template_of_the_original():
    """A queue item holds the masked text; confirming it must found the campaign of the original."""
    normalize = Normalizer(VARIANTS_PATH)
    assert "138****5678" in mask(SCAM) and "6222021234567890123" not in mask(SCAM)
    assert template(normalize(mask(SCAM))) == template(normalize(SCAM))
    with_id = "身份证11010519491231002X已冻结，回电 010-87654321，验证码482913"
    assert template(normalize(mask(with_id))) == template(normalize(with_id))


def test_review_log_writes_flags_and_blocks_masked(tmp_path):
    store = open_store(tmp_path / "feedback.db")
    review = ReviewLog(store)
    log = DecisionLog(decisions=False)
    log.review = review
    results = [{"action": "block", "label": "fraud.other", "category": "fraud", "reason": "threshold:fraud.block",
                "score": 0.99, "fraud_score": 0.99},
               {"action": "allow", "label": "normal", "category": "normal", "reason": "threshold:none", "score": 0.9,
                "fraud_score": 0.01},
               {"action": "flag", "label": "spam", "category": "spam", "reason": "threshold:spam.flag", "score": 0.85,
                "fraud_score": 0.1}]
    log.write(results, [SCAM, "明天见", "<b>促销</b> 回T退订"], ["106900", None, "95588"])
    review.flush()
    rows = store.reviews()
    assert [r["action"] for r in rows] == ["flag", "block"]  # newest first, no allow
    assert rows[1]["text"] == mask(SCAM) and rows[1]["sender"] == "106900"
    assert store.reviews(actions=("block",))[0]["id"] == rows[1]["id"]
    assert store.reviews(reason="threshold:spam")[0]["label"] == "spam"
    assert store.reviews(category="fraud", since=time.time() + 60) == []
    queue = ReviewQueue(store, review)
    items = queue.items(Filters.parse(kind="block"))
    assert [i["ref"] for i in items] == [f"r{rows[1]['id']}"] and items[0]["status"] == {"state": "open"}
    store.add_action("alice", "confirm_fraud", items[0]["ref"], json.dumps({"label": "fraud.other"}))
    done = queue.items(Filters.parse(status="done"))
    assert [i["ref"] for i in done] == [items[0]["ref"]] and done[0]["status"]["by"] == "alice"
    assert queue.get([items[0]["ref"], "r999999", "bogus"]).keys() == {items[0]["ref"]}
    review.close()


def test_review_log_on_a_full_writer_drops_and_counts_not_blocks(tmp_path):
    review = ReviewLog(open_store(tmp_path / "feedback.db"), max_pending=1)
    review.offer([{"action": "block", "text": "a", "created_at": time.time()}] * 3)
    assert review.dropped == 3
    review.close()


def test_filters_are_checked():
    assert Filters.parse(since="24h", now=100_000).since == 100_000 - 86_400
    for bad in ({"kind": "allow"}, {"category": "x"}, {"since": "yesterday"}, {"status": "new"}, {"reason": "r" * 101}):
        with pytest.raises(ValueError):
            Filters.parse(**bad)


def test_audit_log_is_a_queue_source(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = DecisionLog(decisions=False, audit_path=path)
    log.write([{"action": "block", "label": "fraud.loan", "reason": "threshold:fraud.block", "score": 0.97},
               {"action": "allow", "label": "normal", "reason": "threshold:none", "score": 0.9}],
              [SCAM, "好的"], [None, None])
    log.close()
    with path.open("a", encoding="utf-8") as f:
        f.write('{"half a line\n')  # a line being written, or a foreign one: skipped
    items = AuditTail(path).items(Filters(), 10)
    assert len(items) == 1 and items[0]["ref"] == "a0" and items[0]["text"] == mask(SCAM)
    assert ReviewQueue(audit=AuditTail(path)).get(["a0"])["a0"]["label"] == "fraud.loan"


def test_retire_stops_a_campaign_until_an_analyst_labels_it_again(tmp_path):
    normalize = Normalizer(VARIANTS_PATH)
    rules = CampaignRules()
    campaigns = Campaigns(open_store(tmp_path / "feedback.db"), lambda: rules, labels=("fraud.other",)).start()
    matcher = campaigns.matcher(normalize)
    variant = SCAM.replace("13812345678", "13900001111")
    cid = campaigns.submit(matcher, SCAM, "fraud.other", "analyst")["campaign"]
    assert matcher.decide_many([normalize(variant)], rules) == [("block", f"campaign:{cid}")]
    state = campaigns.retire(cid, "alice")
    assert state["retired"] and state["action"] is None
    assert matcher.decide_many([normalize(variant)], rules) == [None]
    assert campaigns.retire("c-unknown", "alice") is None
    rows, skipped = training_rows(campaigns.store.iter_rows())
    assert [r["feedback_source"] for r in rows] == ["analyst"] and sum(skipped.values()) == 1
    # a fresh replica reads the same state from the store
    again = Campaigns(open_store(tmp_path / "feedback.db"), lambda: rules, labels=("fraud.other",)).start()
    assert again.matcher(normalize).decide_many([normalize(variant)], rules) == [None]
    campaigns.submit(matcher, variant, "fraud.other", "analyst")  # an analyst revives it
    assert matcher.decide_many([normalize(variant)], rules) == [("block", f"campaign:{cid}")]
    campaigns.stop()
    again.stop()


def test_review_and_action_logs_on_postgres(postgres_schema):
    store = open_store(postgres_schema)
    now = time.time()
    store.add_reviews([{"created_at": now, "action": "block", "category": "fraud", "label": "fraud.loan",
                        "reason": "campaign:c7", "score": 0.9, "fraud_score": 0.95, "sender": None, "text": mask(SCAM),
                        "sha": "ab"},
                       {"created_at": now + 1, "action": "flag", "category": "spam", "label": "spam",
                        "reason": "threshold:spam.flag", "score": 0.8, "fraud_score": 0.1, "sender": "95588",
                        "text": "促销", "sha": "cd"}])
    assert [r["action"] for r in store.reviews()] == ["flag", "block"]
    assert [r["label"] for r in store.reviews(reason="campaign:")] == ["fraud.loan"]
    assert store.reviews(actions=("flag",), category="spam")[0]["sender"] == "95588"
    first = store.reviews()[1]["id"]
    assert [r["id"] for r in store.reviews(ids=(first,))] == [first]
    store.add_action("bob", "confirm_fraud", f"r{first}", None)
    assert store.actions((f"r{first}",))[0]["key_name"] == "bob"
    store.close()
