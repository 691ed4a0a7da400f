"""Decision policy: per-category probability thresholds -> `allow` | `flag` | `block`.

The policy is configuration (`policy.yaml` in the serving artifact, see configs/policy.yaml),
never code. The action of a message is the most severe action any category's score reaches.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

ACTIONS = ("allow", "flag", "block")  # increasing severity
CATEGORIES = ("normal", "spam", "fraud")


class PolicyError(ValueError):
    """The policy file is invalid."""


@dataclass(frozen=True)
class Policy:
    # category -> {action -> threshold}; a category's score >= threshold triggers the action
    thresholds: dict[str, dict[str, float]] = field(default_factory=dict)

    def __post_init__(self):
        for category, rules in self.thresholds.items():
            if category not in CATEGORIES:
                raise PolicyError(f"policy: unknown category {category!r}; known: {CATEGORIES}")
            for action, value in rules.items():
                if action not in ("flag", "block"):
                    raise PolicyError(f"policy: {category}.{action}: action must be flag or block")
                if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                    raise PolicyError(f"policy: {category}.{action}={value!r} must be a number in [0, 1]")
            if "flag" in rules and "block" in rules and rules["flag"] > rules["block"]:
                raise PolicyError(f"policy: {category}: flag threshold above block threshold")

    @classmethod
    def load(cls, path: str | Path) -> "Policy":
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as e:
            raise PolicyError(f"cannot read policy {path}: {e}") from e
        unknown = set(raw) - {"thresholds"}
        if unknown:
            raise PolicyError(f"policy {path}: unknown keys {sorted(unknown)}")
        return cls(thresholds={c: {a: float(v) for a, v in (r or {}).items()} for c, r in (raw.get("thresholds") or {}).items()})

    def to_dict(self) -> dict:
        return {"thresholds": self.thresholds}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False), encoding="utf-8")

    def decide(self, category_scores: dict[str, np.ndarray]) -> np.ndarray:
        """Vectorized: category -> scores [n] gives the action index [n] (0 allow, 1 flag, 2 block)."""
        n = len(next(iter(category_scores.values())))
        level = np.zeros(n, dtype=np.int64)
        for category, rules in self.thresholds.items():
            scores = category_scores[category]
            for action, threshold in rules.items():
                hit = scores >= threshold
                level = np.where(hit, np.maximum(level, ACTIONS.index(action)), level)
        return level
