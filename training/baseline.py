"""The yardstick: char 1–3-gram TF-IDF + logistic regression on the same split.

PRODUCT.md's baseline. Trained on the fine-labelled training rows (coarse rows such as
`not_fraud` cannot be used by a plain classifier), on normalized text, and evaluated exactly
like the model so the report can put both side by side.
"""
from __future__ import annotations

import numpy as np

from data.normalize import normalize
from data.taxonomy import Taxonomy


def fit_predict(train: list[dict], test_texts: list[str], taxonomy: Taxonomy, max_rows: int = 120_000,
                seed: int = 0) -> np.ndarray:
    """Class probabilities [len(test_texts), n_classes] (columns in taxonomy order)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    rows = [r for r in train if r["label"] in taxonomy.label2id]
    if len(rows) > max_rows:
        rng = np.random.default_rng(seed)
        rows = [rows[i] for i in sorted(rng.choice(len(rows), max_rows, replace=False))]
    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=2, max_features=300_000,
                                 sublinear_tf=True)
    x = vectorizer.fit_transform([normalize(r["text"]) for r in rows])
    y = np.array([taxonomy.label2id[r["label"]] for r in rows])
    clf = LogisticRegression(max_iter=300, C=10.0)
    clf.fit(x, y)
    probs = np.zeros((len(test_texts), len(taxonomy.classes)))
    probs[:, clf.classes_] = clf.predict_proba(vectorizer.transform([normalize(t) for t in test_texts]))
    return probs
