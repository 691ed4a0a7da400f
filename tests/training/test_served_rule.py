"""`fanzha evaluate` reports what the service answers: the served label rule (the best class inside
the most probable category) over the model's own label list (config.json id2label)."""
import numpy as np
import pytest

from data.taxonomy import load_taxonomy
from training.metrics import classification_metrics
from training.scorecard import scorecard

TAX = load_taxonomy()
FRAUD_TYPES = [c for c in TAX.classes if c.startswith("fraud.")]


def _row(**p):
    row = np.zeros(len(TAX.classes))
    for label, value in p.items():
        row[TAX.label2id[label.replace("__", ".")]] = value
    return row


# normal 0.40 is the single most probable class, but fraud's mass (0.30 + 0.30 = 0.60) is larger:
# the service answers fraud.loan (best class of the fraud category); argmax says normal.
SPLIT = _row(normal=0.40, fraud__loan=0.30, fraud__investment=0.30 - 1e-6, spam=1e-6)


def test_served_rule_is_the_best_class_of_the_most_probable_category():
    from data.taxonomy import served_labels

    probs = np.stack([SPLIT, _row(spam=0.9, normal=0.1)])
    assert probs.argmax(1).tolist() == [TAX.label2id["normal"], TAX.label2id["spam"]]
    assert served_labels(probs, TAX.classes).tolist() == [TAX.label2id["fraud.loan"], TAX.label2id["spam"]]


def test_served_rule_matches_the_predictor(monkeypatch):
    """serving/predictor.py `_fill` and data.taxonomy.served_labels give the same label."""
    from data.taxonomy import served_labels
    from serving.predictor import Predictor

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(len(TAX.classes), 0.3), size=500).astype(np.float32)
    fake = Predictor.__new__(Predictor)
    fake.labels = TAX.classes
    fake.categories = np.array([c.split(".")[0] for c in TAX.classes])
    fake._category_names = fake.categories.tolist()
    from serving.policy import CATEGORIES

    fake._category_index = np.array([CATEGORIES.index(c) for c in fake.categories])
    fake._category_matrix = (fake._category_index[:, None] == np.arange(len(CATEGORIES))).astype(np.float32)
    from serving.policy import Policy

    monkeypatch.setattr(Predictor, "policy", Policy.from_dict({}), raising=False)
    results = [None] * len(probs)
    fake._fill(results, list(range(len(probs))), probs, False)
    assert [r["label"] for r in results] == [TAX.classes[i] for i in served_labels(probs, TAX.classes)]
    assert (served_labels(probs, TAX.classes) != probs.argmax(1)).any(), "the sample must contain disagreements"


def test_per_class_figures_use_the_served_rule():
    # truth fraud.loan; served: fraud.loan (right), argmax: normal (wrong)
    probs = np.stack([SPLIT, _row(normal=0.9, spam=0.1)])
    labels = ["fraud.loan", "normal"]
    served = classification_metrics(probs, labels, TAX)
    assert served["accuracy"] == 1.0 and served["macro_f1"] == 1.0
    assert served["per_class"]["fraud.loan"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    plain = classification_metrics(probs, labels, TAX, rule="argmax")
    # argmax: normal predicted twice (precision 1/2, recall 1 -> F1 2/3), fraud.loan never (F1 0)
    assert plain["accuracy"] == 0.5 and plain["macro_f1"] == pytest.approx((2 / 3 + 0) / 2)
    assert plain["per_class"]["fraud.loan"]["recall"] == 0.0


def test_scorecard_keeps_the_argmax_figures_beside_the_served_ones():
    probs = np.stack([SPLIT, _row(normal=0.9, spam=0.1)])
    rows = [{"text": "a", "label": "fraud.loan", "source": "s"}, {"text": "b", "label": "normal", "source": "s"}]
    card = scorecard(probs, rows, TAX, block_threshold=0.5)
    assert card["label_rule"] == "served" and card["macro_f1"] == 1.0
    assert card["argmax_rule"]["macro_f1"] == pytest.approx(1 / 3) and card["argmax_rule"]["accuracy"] == 0.5
    # the block decision does not depend on the label rule: fraud 0.6 >= 0.5 blocks row 0, not row 1
    assert card["false_block_rate"] == card["argmax_rule"]["false_block_rate"] == 0.0
    assert card["fraud_block_recall"] == 1.0


def test_the_models_own_label_order_is_used():
    """A model whose id2label lists the classes in another order than today's taxonomy file."""
    order = list(reversed(TAX.classes))
    assert hasattr(TAX, "with_classes"), "the taxonomy can take a model's own class order"
    model_tax = TAX.with_classes(order)
    assert list(model_tax.classes) == order and model_tax.label2id["normal"] == len(order) - 1
    probs = np.zeros((1, len(order)))
    probs[0, order.index("spam")] = 1.0  # column for spam in the MODEL's order
    assert classification_metrics(probs, ["spam"], model_tax)["accuracy"] == 1.0
    assert model_tax.allowed_mask("not_fraud")[order.index("spam")] == 1


def test_evaluate_normalizes_with_the_models_own_table(tiny_model, tmp_path, monkeypatch):
    """A model is evaluated as it was trained and will be served: with its own copy of the
    variant table, even after the source table changed (issue 19 changed it)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import data.normalize as normalize_module
    from data.normalize import Normalizer
    from training.evaluate import model_normalizer, predict_logits

    changed = tmp_path / "variants.yaml"
    changed.write_text("variants:\n  贷款: [验证码]\n", encoding="utf-8")  # a table that rewrites a legit word
    monkeypatch.setenv("FANZHA_VARIANTS", str(changed))
    normalize_module._default.cache_clear()
    try:
        texts = ["您的验证码是482913，请勿泄露", "加V信领取兼职刷单佣金"]
        own = model_normalizer(tiny_model)
        assert own is not None and own(texts[0]) == Normalizer(tiny_model / "variants.yaml")(texts[0])
        assert "贷款" in normalize_module.normalize(texts[0]) and "贷款" not in own(texts[0])
        model = AutoModelForSequenceClassification.from_pretrained(tiny_model).eval()
        tokenizer = AutoTokenizer.from_pretrained(tiny_model)
        served = predict_logits(model, tokenizer, texts, 48, normalizer=own)
        source = predict_logits(model, tokenizer, texts, 48)
        monkeypatch.delenv("FANZHA_VARIANTS")
        normalize_module._default.cache_clear()
        assert np.allclose(served, predict_logits(model, tokenizer, texts, 48), atol=1e-6)  # as trained
        assert not np.allclose(served[0], source[0], atol=1e-4)  # the changed table would have moved it
    finally:
        normalize_module._default.cache_clear()
