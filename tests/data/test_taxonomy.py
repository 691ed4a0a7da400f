import pytest

from data.taxonomy import Taxonomy, TaxonomyError, category_of, load_taxonomy

PRODUCT_FRAUD_TYPES = {
    "fraud.impersonate_authority", "fraud.loan", "fraud.fake_customer_service",
    "fraud.impersonate_acquaintance", "fraud.brushing", "fraud.investment", "fraud.other",
}


def test_taxonomy_has_product_classes():
    tax = load_taxonomy()
    assert {"normal", "spam"} | PRODUCT_FRAUD_TYPES <= set(tax.classes)
    assert all(category_of(c) in ("normal", "spam", "fraud") for c in tax.classes)
    assert tax.id2label[0] == tax.classes[0] and tax.label2id[tax.classes[-1]] == len(tax.classes) - 1


def test_coarse_label_allows_a_set():
    tax = load_taxonomy()
    assert set(tax.allowed("not_fraud")) == {"normal", "spam"}
    assert tax.allowed("spam") == ("spam",)
    mask = tax.allowed_mask("not_fraud")
    assert sum(mask) == 2 and mask[tax.label2id["normal"]] == 1


def test_source_mapping_and_errors():
    tax = load_taxonomy()
    assert tax.map_source("telecom_fraud_texts", "正常") == "not_fraud"
    assert tax.map_source("spam80w", 1) == "spam"
    with pytest.raises(TaxonomyError, match="unknown label"):
        tax.map_source("spam80w", "7")
    with pytest.raises(TaxonomyError, match="unknown source"):
        tax.map_source("nope", "0")
    with pytest.raises(TaxonomyError, match="unknown label"):
        tax.allowed("fraud.nonexistent")


def test_invalid_taxonomies_are_rejected(tmp_path):
    with pytest.raises(TaxonomyError, match="category"):
        Taxonomy(classes=("normal", "scam.x"))
    with pytest.raises(TaxonomyError, match="unknown classes"):
        Taxonomy(classes=("normal",), coarse={"x": ("spam",)})
    bad = tmp_path / "t.yaml"
    bad.write_text("classes: [normal]\nextra: 1\n", encoding="utf-8")
    with pytest.raises(TaxonomyError, match="unknown keys"):
        load_taxonomy(bad)
