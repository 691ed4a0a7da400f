"""Decision policy: per-category thresholds, a sender allow-list and a domain / phone block-list
-> `allow` | `flag` | `block`, with the reason.

    python -m serving.policy configs/policy.yaml     # validate a policy file, print it resolved

The policy is configuration (`policy.yaml` in the serving artifact, see configs/policy.yaml),
never code. Precedence, most specific first:

1. block-list: a URL domain (or any sub-domain of it) or a phone number found in the text
   -> `block`, reason `blocklist:domain:<domain>` / `blocklist:phone:<digits>`. It beats the
   allow-list because pseudo base stations (伪基站) spoof trusted short codes such as 95588.
2. allow-list: the message's sender id is trusted -> `allow`, reason `allowlist:sender`.
3. thresholds: the most severe action any category's score reaches, reason
   `threshold:<category>.<action>` (e.g. `threshold:fraud.block`), or `threshold:none`.

Lists are matched on the normalized text (data/normalize.py), so full-width or symbol-split
domains and numbers (ｅｔｃ－ｒｅｎｚ．ｃｎ, 138-1234-5678, +86 138 1234 5678) still match.
`Policy.apply` post-processes the predictor's results, so the HTTP service and batch scoring
can share it; `PolicyFile` re-reads the file when it changes (hot reload, no restart).
"""
from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml

from data.normalize import normalize

ACTIONS = ("allow", "flag", "block")  # increasing severity
CATEGORIES = ("normal", "spam", "fraud")
_TIE_ORDER = ("fraud", "spam", "normal")  # which category a reason names when several reach one action
log = logging.getLogger("fanzha.policy")

_DOMAIN = re.compile(r"(?<![a-z0-9-])((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9])(?![a-z0-9-])")
_PHONE_RUN = re.compile(r"\+?\d[\d\- ]*\d")


class PolicyError(ValueError):
    """The policy file is invalid."""


def phone_key(number: str) -> str:
    """Digits only, without a +86 / 0086 country prefix on a mobile number."""
    digits = re.sub(r"\D", "", number)
    for prefix in ("0086", "86"):
        if digits.startswith(prefix) and len(digits) - len(prefix) == 11 and digits[len(prefix)] == "1":
            return digits[len(prefix):]
    return digits


def domains_in(normalized: str) -> list[str]:
    return _DOMAIN.findall(normalized)


def phones_in(normalized: str) -> set[str]:
    """Candidate numbers: each digit run (separators removed) and each space-separated piece of it."""
    keys = set()
    for run in _PHONE_RUN.findall(normalized):
        keys.add(phone_key(run))
        keys.update(phone_key(piece) for piece in run.split(" ") if piece)
    return keys


@dataclass(frozen=True)
class Policy:
    # category -> {action -> threshold}; a category's score >= threshold triggers the action
    thresholds: dict[str, dict[str, float]] = field(default_factory=dict)
    allow_senders: frozenset[str] = frozenset()
    block_domains: frozenset[str] = frozenset()
    block_phones: frozenset[str] = frozenset()

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
        for sender in self.allow_senders:
            if not sender or sender != sender.strip():
                raise PolicyError(f"policy: allowlist.senders: invalid sender id {sender!r}")
        for domain in self.block_domains:
            if _DOMAIN.fullmatch(domain) is None:
                raise PolicyError(f"policy: blocklist.domains: {domain!r} is not a lower-case domain name (e.g. etc-renz.cn)")
        for phone in self.block_phones:
            if not phone.isdigit() or len(phone) < 7:
                raise PolicyError(f"policy: blocklist.phones: {phone!r} must have at least 7 digits")
        # float32 thresholds: the same comparison as the predictor's vectorized `decide`
        rules = [(a, c, np.float32(self.thresholds[c][a])) for a in ("block", "flag") for c in _TIE_ORDER
                 if a in self.thresholds.get(c, {})]
        object.__setattr__(self, "_rules", rules)

    @classmethod
    def from_dict(cls, raw: dict, source: str = "policy") -> "Policy":
        if not isinstance(raw, dict):
            raise PolicyError(f"{source}: expected a mapping at the top level")
        unknown = set(raw) - {"thresholds", "allowlist", "blocklist"}
        if unknown:
            raise PolicyError(f"{source}: unknown keys {sorted(unknown)} (known: thresholds, allowlist, blocklist)")
        allow, block = raw.get("allowlist") or {}, raw.get("blocklist") or {}
        for name, section, known in (("allowlist", allow, {"senders"}), ("blocklist", block, {"domains", "phones"})):
            if not isinstance(section, dict) or set(section) - known:
                raise PolicyError(f"{source}: {name} takes only {sorted(known)}")
        try:
            thresholds = {c: {a: float(v) for a, v in (r or {}).items()} for c, r in (raw.get("thresholds") or {}).items()}
        except (TypeError, ValueError, AttributeError) as e:
            raise PolicyError(f"{source}: thresholds must map category -> {{flag|block: number}} ({e})") from e
        def as_set(name: str, values, f=str.strip) -> frozenset[str]:
            # Strings only: YAML reads 010 as 8 and drops leading zeros, silently breaking a match.
            if not isinstance(values, (list, type(None))) or any(not isinstance(v, str) for v in values or []):
                raise PolicyError(f"{source}: {name} must be a list of quoted strings, e.g. [\"95588\"]")
            return frozenset(f(v) for v in values or [])

        return cls(thresholds=thresholds, allow_senders=as_set("allowlist.senders", allow.get("senders")),
                   block_domains=as_set("blocklist.domains", block.get("domains"), lambda v: v.strip().lower()),
                   block_phones=as_set("blocklist.phones", block.get("phones"), phone_key))

    @classmethod
    def load(cls, path: str | Path) -> "Policy":
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            raise PolicyError(f"cannot read policy {path}: {e}") from e
        return cls.from_dict(raw, f"policy {path}")

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"thresholds": self.thresholds}
        if self.allow_senders:
            out["allowlist"] = {"senders": sorted(self.allow_senders)}
        if self.block_domains or self.block_phones:
            out["blocklist"] = {"domains": sorted(self.block_domains), "phones": sorted(self.block_phones)}
        return out

    def summary(self) -> dict:
        return {"thresholds": self.thresholds, "allowlist_senders": len(self.allow_senders),
                "blocklist_domains": len(self.block_domains), "blocklist_phones": len(self.block_phones)}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True), encoding="utf-8")

    # -- decisions -----------------------------------------------------------------------
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

    def decide_one(self, category_scores: dict[str, float]) -> tuple[str, str]:
        """(action, reason) from the thresholds alone for one message's category scores."""
        for action, category, threshold in self._rules:
            if np.float32(category_scores[category]) >= threshold:
                return action, f"threshold:{category}.{action}"
        return "allow", "threshold:none"

    def listed(self, text: str, sender: str | None = None, normalized: str | None = None) -> tuple[str, str] | None:
        """(action, reason) when a list rule decides the message, else None."""
        if self.block_domains or self.block_phones:
            normalized = normalize(text) if normalized is None else normalized
            for host in domains_in(normalized) if self.block_domains else ():
                parts = host.split(".")
                for i in range(len(parts) - 1):
                    if ".".join(parts[i:]) in self.block_domains:
                        return "block", f"blocklist:domain:{'.'.join(parts[i:])}"
            if self.block_phones:
                hits = phones_in(normalized) & self.block_phones
                if hits:
                    return "block", f"blocklist:phone:{min(hits)}"
        if sender is not None and sender.strip() in self.allow_senders:
            return "allow", "allowlist:sender"
        return None

    def apply(self, results: list[dict], texts: Sequence[Any], senders: Sequence[str | None] | None = None) -> list[dict]:
        """Set `action` and `reason` of the predictor's results in place (rows with `error` keep
        action None and get reason ""). `senders[i]` is message i's sender id or None."""
        senders = senders if senders is not None else [None] * len(results)
        for result, text, sender in zip(results, texts, senders):
            if result.get("error") or result.get("label") is None:
                result["reason"] = ""
                continue
            fraud, spam = result["fraud_score"], result["spam_score"]
            normal = (result.get("scores") or {}).get("normal", 1.0 - fraud - spam)
            decision = self.listed(text, sender) or self.decide_one({"fraud": fraud, "spam": spam, "normal": normal})
            result["action"], result["reason"] = decision
        return results


class PolicyFile:
    """A policy file kept current: `current()` re-reads it when its mtime or size changed (checked
    at most every `check_every` seconds); an invalid new version is logged and the old one kept."""

    def __init__(self, path: str | Path, check_every: float = 1.0):
        self.path = Path(path)
        self.check_every = check_every
        self._lock = threading.Lock()
        self._stamp = self._stat()
        self.policy = Policy.load(self.path)
        self.loaded_at = time.time()
        self._next_check = time.monotonic() + check_every

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def reload(self) -> Policy:
        """Re-read now; raises PolicyError (keeping the old policy) when the file is invalid."""
        with self._lock:
            stamp = self._stat()
            policy = Policy.load(self.path)
            self.policy, self._stamp, self.loaded_at = policy, stamp, time.time()
            return policy

    def current(self) -> Policy:
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + self.check_every
            stamp = self._stat()
            if stamp is not None and stamp != self._stamp:
                try:
                    self.reload()
                    log.warning("policy %s changed on disk: reloaded", self.path)
                except PolicyError as e:
                    self._stamp = stamp  # do not retry the same broken file on every request
                    log.error("policy %s changed on disk but is invalid, keeping the previous policy: %s", self.path, e)
        return self.policy


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m serving.policy POLICY.yaml", file=sys.stderr)
        return 2
    try:
        policy = Policy.load(args[0])
    except PolicyError as e:
        print(f"invalid: {e}", file=sys.stderr)
        return 1
    print(yaml.safe_dump(policy.to_dict(), sort_keys=False, allow_unicode=True), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
