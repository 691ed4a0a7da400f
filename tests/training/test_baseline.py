"""The TF-IDF + LR yardsticks: the all-sources baseline and the per-dataset specialists (PRODUCT.md's bar)."""
import random

import pytest

from data.taxonomy import load_taxonomy
from training.baseline import fit_predict, per_dataset

TAX = load_taxonomy()
TELECOM = {  # invented texts: each fraud type has its own words
    "fraud.loan": "您好我是贷款专员额度审批放款先交保证金利息",
    "fraud.fake_customer_service": "您好我是快递客服包裹丢失理赔退款请下载会议软件",
    "fraud.impersonate_authority": "您好我是公安局民警您涉嫌洗钱案件配合调查安全账户",
    "fraud.impersonate_acquaintance": "我是你领导老王明天来办公室先帮我转账垫付一下",
    "not_fraud": "尊敬的用户本月流量套餐优惠活动回复退订",
}


def _rows(source, vocab, n, rng):
    return [{"source": source, "label": label, "text": "".join(rng.sample(words, 10)) + str(i)}
            for label, words in vocab.items() for i in range(n)]


def _corpus(seed=0):
    rng = random.Random(seed)
    sms = {"normal": "明天下午三点开会记得带材料我们吃饭", "spam": "全场五折新品上市欢迎光临会员专享回复"}
    # another source that labels the telecom loan words as fake customer service: a specialist
    # trained on telecom alone must not see it
    other = {"fraud.fake_customer_service": TELECOM["fraud.loan"]}
    train = _rows("telecom_fraud_texts", TELECOM, 40, rng) + _rows("spam80w", sms, 40, rng) + _rows("golfxiao_dialogs", other, 400, rng)
    test = _rows("telecom_fraud_texts", TELECOM, 10, rng) + _rows("spam80w", sms, 10, rng) + _rows("golfxiao_dialogs", other, 5, rng)
    return train, test


def test_per_dataset_trains_each_target_dataset_alone():
    train, test = _corpus()
    out = per_dataset(train, test, TAX)
    assert set(out) == {"telecom_fraud_texts", "spam80w"}  # golfxiao has no target of its own
    tel = out["telecom_fraud_texts"]
    assert tel["train_rows"] == 200 and tel["telecom_rows"] == 50
    assert tel["telecom_fraud_type_macro_f1"] == pytest.approx(1.0)  # not_fraud counted right, as "not fraud"
    assert out["spam80w"]["spam80w_spam_vs_ham_accuracy"] == pytest.approx(1.0)
    # the all-sources baseline, trained with the conflicting source, gets telecom loans wrong
    probs = fit_predict(train, [r["text"] for r in test if r["label"] == "fraud.loan"], TAX)
    assert (probs.argmax(axis=1) == TAX.label2id["fraud.fake_customer_service"]).mean() > 0.5


def test_per_dataset_skips_absent_or_single_label_sources():
    train, test = _corpus()
    assert per_dataset(train, [r for r in test if r["source"] == "golfxiao_dialogs"], TAX) == {}
    one_label = [r for r in train if r["source"] != "spam80w" or r["label"] == "normal"]
    assert "spam80w" not in per_dataset(one_label, test, TAX)


@pytest.mark.shared_data
def test_per_dataset_on_a_real_telecom_slice(shared_data_dir):
    from data import sources

    rows = list(sources.load_telecom_fraud_texts(shared_data_dir / sources.FILES["telecom_fraud_texts"]))
    rng = random.Random(0)
    rng.shuffle(rows)
    out = per_dataset(rows[:2000], rows[2000:2500], TAX)["telecom_fraud_texts"]
    assert out["telecom_rows"] == 500 and out["telecom_fraud_type_macro_f1"] > 0.85
