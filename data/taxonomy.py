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
