"""The label taxonomy: classes, categories, coarse labels and per-source label maps.

    python -m data.taxonomy            # prints the classes and every source mapping

Everything is read from `configs/taxonomy.yaml` (one file, PRODUCT.md): a class is `normal`,
`spam` or `fraud.<type>`; its category is the part before the dot. A *coarse* label (e.g.
`not_fraud`) names a set of classes, so a source that labels coarsely trains the model without
being forced into a wrong fine class.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import yaml

CATEGORIES = ("normal", "spam", "fraud")
DEFAULT_PATH = Path(__file__).resolve().parent.parent / "configs" / "taxonomy.yaml"


class TaxonomyError(ValueError):
    """The taxonomy file or a label is invalid."""


def category_of(label: str) -> str:
    """`fraud.loan` -> `fraud`; `spam` -> `spam`."""
    return label.split(".", 1)[0]


@dataclass(frozen=True)
class Taxonomy:
    classes: tuple[str, ...]
    coarse: dict[str, tuple[str, ...]] = field(default_factory=dict)
    sources: dict[str, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self):
        if len(set(self.classes)) != len(self.classes):
            raise TaxonomyError("duplicate class names in taxonomy")
        for name in self.classes:
            if category_of(name) not in CATEGORIES:
                raise TaxonomyError(f"class {name!r}: category must be one of {CATEGORIES}")
        for name, members in self.coarse.items():
            if name in self.classes:
                raise TaxonomyError(f"coarse label {name!r} shadows a class")
            unknown = set(members) - set(self.classes)
            if unknown:
                raise TaxonomyError(f"coarse label {name!r} names unknown classes {sorted(unknown)}")
        for source, mapping in self.sources.items():
            for raw, target in mapping.items():
                if not self.is_label(target):
                    raise TaxonomyError(f"source {source!r}: {raw!r} maps to unknown label {target!r}")

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.classes))

    @property
    def label2id(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.classes)}

    def with_classes(self, labels) -> "Taxonomy":
        """This taxonomy in a model's own class order (its config.json id2label), so that score
        columns, label ids and masks follow the model, not today's taxonomy file. Coarse labels
        keep their members the model knows; source maps are dropped (not needed for scoring)."""
        labels = tuple(labels)
        if labels == self.classes:
            return self
        coarse = {k: tuple(m for m in v if m in labels) for k, v in self.coarse.items() if k not in labels}
        return Taxonomy(classes=labels, coarse={k: v for k, v in coarse.items() if v})

    def is_label(self, label: str) -> bool:
        return label in self.classes or label in self.coarse

    def allowed(self, label: str) -> tuple[str, ...]:
        """The classes a (fine or coarse) label allows."""
        if label in self.classes:
            return (label,)
        if label in self.coarse:
            return self.coarse[label]
        raise TaxonomyError(f"unknown label {label!r}; known: {list(self.classes) + list(self.coarse)}")

    def allowed_mask(self, label: str) -> list[int]:
        allowed = set(self.allowed(label))
        return [int(c in allowed) for c in self.classes]

    def map_source(self, source: str, raw_label) -> str:
        """Map a source's own label to a taxonomy label, with a clear error if it is unknown."""
        if source not in self.sources:
            raise TaxonomyError(f"unknown source {source!r}; configured: {sorted(self.sources)}")
        mapping = self.sources[source]
        key = str(raw_label).strip()
        if key not in mapping:
            raise TaxonomyError(f"source {source!r}: unknown label {key!r}; known: {sorted(mapping)}")
        return mapping[key]


def best_in_top_category(probs: np.ndarray, category_index: np.ndarray, category_scores: np.ndarray) -> np.ndarray:
    """Class indices [n]: the most probable class among those of the most probable category.
    `category_index[k]` is class k's position in CATEGORIES, `category_scores` [n, len(CATEGORIES)]."""
    in_top = category_index[None, :] == category_scores.argmax(axis=1)[:, None]
    return np.where(in_top, probs, -1.0).argmax(axis=1)


def served_labels(probs: np.ndarray, labels) -> np.ndarray:
    """The served label rule (serving/predictor.py `_fill`): the best class inside the most
    probable category, a category's score being the sum of its classes' probabilities; `labels`
    in the columns' order (the model's id2label). Returns class indices [n]. Plain argmax differs
    when a category's mass is spread over several classes."""
    probs = np.asarray(probs)
    index = np.array([CATEGORIES.index(category_of(c)) for c in labels])
    matrix = (index[:, None] == np.arange(len(CATEGORIES))).astype(probs.dtype if probs.dtype.kind == "f" else np.float64)
    if not len(probs):
        return np.zeros(0, dtype=np.int64)
    return best_in_top_category(probs, index, probs @ matrix)


def category_scores(probs: np.ndarray, labels) -> dict[str, np.ndarray]:
    """Category -> score [n] (the sum of its classes' probabilities); `labels` in the columns' order."""
    cats = np.array([category_of(c) for c in labels])
    return {c: probs[:, cats == c].sum(axis=1) for c in CATEGORIES}


def label_kinds(labels: list[str], taxonomy: "Taxonomy") -> tuple[np.ndarray, np.ndarray]:
    """(is_fraud, is_legit): a label is fraud if it allows only fraud classes, legit if it allows none."""
    cats = [{category_of(c) for c in taxonomy.allowed(label)} for label in labels]
    return np.array([c == {"fraud"} for c in cats], dtype=bool), np.array(["fraud" not in c for c in cats], dtype=bool)


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    return _load(str(Path(path or DEFAULT_PATH).resolve()))


@lru_cache(maxsize=8)
def _load(path: str) -> Taxonomy:
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise TaxonomyError(f"cannot read taxonomy {path}: {e}") from e
    if not isinstance(raw, dict) or "classes" not in raw:
        raise TaxonomyError(f"{path}: expected a mapping with a 'classes' list")
    unknown = set(raw) - {"classes", "coarse", "sources"}
    if unknown:
        raise TaxonomyError(f"{path}: unknown keys {sorted(unknown)}")
    return Taxonomy(
        classes=tuple(raw["classes"]),
        coarse={k: tuple(v) for k, v in (raw.get("coarse") or {}).items()},
        sources={k: {str(a): b for a, b in (v or {}).items()} for k, v in (raw.get("sources") or {}).items()},
    )


def main(argv=None) -> int:
    tax = load_taxonomy(argv[0] if argv else None)
    for i, c in enumerate(tax.classes):
        print(f"{i}\t{c}")
    for name, members in tax.coarse.items():
        print(f"coarse {name}: {', '.join(members)}")
    for source, mapping in tax.sources.items():
        for raw, target in mapping.items():
            print(f"{source}\t{raw}\t-> {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
