"""Decision policy: per-category thresholds, a sender allow-list and a domain / phone block-list
-> `allow` | `flag` | `block`, with the reason.

    python -m serving.policy configs/policy.yaml     # validate a policy file, print it resolved

The policy is configuration (`policy.yaml` in the serving artifact, see configs/policy.yaml),
never code. Precedence, most specific first:

1. block-list: a URL domain (or any sub-domain of it) or a phone number found in the text
   -> `block`, reason `blocklist:domain:<domain>` / `blocklist:phone:<digits>`. It beats the
   allow-list because pseudo base stations (伪基站) spoof trusted short codes such as 95588.
2. campaign: the text matches a feedback campaign that decides (serving/feedback/campaigns.py,
   policy section `campaigns:`, rules in `CampaignRules`) -> its action, reason `campaign:<id>`.
   It beats the allow-list for the same reason as the block-list.
3. allow-list: the message's sender id is trusted -> `allow`, reason `allowlist:sender` — except
   when the thresholds would block it: then `allowlist.on_block` (default `flag`), so that a
   scam sent by a pseudo base station under a spoofed bank short code is still shown to an
   analyst instead of passing silently. `on_block: allow` restores the old trust-the-sender rule.
4. thresholds: the most severe action any category's score reaches, reason
   `threshold:<category>.<action>` (e.g. `threshold:fraud.block`), or `threshold:none`.

`thresholds.fraud.block: certified` means "the block threshold `fanzha export` certified for the
variant being served" (fanzha.json `certified[<variant>].block_threshold`, fitted on that
variant's own scores). One policy file can then serve several models (the SMS model and the chat
model) and variants, each at its own certified threshold: `Policy.resolve` turns `certified`
into the number for one model; a number instead is an operator override that applies to every
model the file serves. A fraud flag threshold above the resolved block threshold is lowered to it.

Lists are matched on the normalized text (data/normalize.py), so full-width or symbol-split
domains and numbers (ｅｔｃ－ｒｅｎｚ．ｃｎ, 138-1234-5678, +86 138 1234 5678) still match.
`Policy.apply` is the one decision rule: `Predictor.classify` calls it for every path (the HTTP
`/classify` and `/chat`, `fanzha score`, Ray); `PolicyFile` re-reads the file when it changes (hot
reload, no restart), and every predictor that holds the same `PolicyFile` follows it.
"""
from __future__ import annotations

import dataclasses
import json
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
CERTIFIED = "certified"  # thresholds.fraud.block: the served variant's certified threshold
ON_BLOCK = ("flag", "allow")  # what an allow-listed sender's model `block` becomes


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
class CampaignRules:
    """policy.yaml `campaigns:` — how feedback campaigns decide (serving/feedback/campaigns.py)."""
    min_weight: float = 3          # user-report weight (distinct senders) at which a campaign decides
    appeal_weight: float = 1.0     # weight one appeal takes away
    similarity: float = 0.6        # MinHash Jaccard of templates at which a text joins / matches a campaign
    ttl_days: int = 30             # reports older than this many days are dropped, a day at a time
    actions: dict = field(default_factory=lambda: {"fraud": "block", "spam": "flag"})

    def __post_init__(self):
        for name in ("min_weight", "appeal_weight"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise PolicyError(f"policy: campaigns.{name} must be a number >= 0, got {value!r}")
        if not isinstance(self.similarity, (int, float)) or not 0.0 < self.similarity <= 1.0:
            raise PolicyError(f"policy: campaigns.similarity must be in (0, 1], got {self.similarity!r}")
        if not isinstance(self.ttl_days, int) or isinstance(self.ttl_days, bool) or self.ttl_days < 1:
            raise PolicyError(f"policy: campaigns.ttl_days must be an integer >= 1, got {self.ttl_days!r}")
        if not isinstance(self.actions, dict) or set(self.actions) - {"fraud", "spam"} \
                or any(a not in ACTIONS for a in self.actions.values()):
            raise PolicyError(f"policy: campaigns.actions maps fraud|spam -> allow|flag|block, got {self.actions!r}")

    @classmethod
    def from_dict(cls, raw, source: str = "policy") -> "CampaignRules":
        if raw is None:
            return cls()
        known = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(raw, dict) or set(raw) - known:
            raise PolicyError(f"{source}: campaigns takes only {sorted(known)}")
        actions = {**cls().actions, **(raw.get("actions") or {})}
        return cls(**{**raw, "actions": actions})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Policy:
    # category -> {action -> threshold}; a category's score >= threshold triggers the action
    thresholds: dict[str, dict[str, float]] = field(default_factory=dict)
    allow_senders: frozenset[str] = frozenset()
    block_domains: frozenset[str] = frozenset()
    block_phones: frozenset[str] = frozenset()
    allow_on_block: str = "flag"
    campaigns: CampaignRules = field(default_factory=CampaignRules)

    def __post_init__(self):
        if self.allow_on_block not in ON_BLOCK:
            raise PolicyError(f"policy: allowlist.on_block must be one of {ON_BLOCK}, got {self.allow_on_block!r}")
        for category, rules in self.thresholds.items():
            if category not in CATEGORIES:
                raise PolicyError(f"policy: unknown category {category!r}; known: {CATEGORIES}")
            for action, value in rules.items():
                if action not in ("flag", "block"):
                    raise PolicyError(f"policy: {category}.{action}: action must be flag or block")
                if value == CERTIFIED and (category, action) == ("fraud", "block"):
                    continue
                if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
                    raise PolicyError(f"policy: {category}.{action}={value!r} must be a number in [0, 1]")
            if "flag" in rules and "block" in rules and CERTIFIED not in (rules["flag"], rules["block"]) \
                    and rules["flag"] > rules["block"]:
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
                 if a in self.thresholds.get(c, {}) and self.thresholds[c][a] != CERTIFIED]
        object.__setattr__(self, "_rules", rules)

    @property
    def needs_certified(self) -> bool:
        return self.thresholds.get("fraud", {}).get("block") == CERTIFIED

    def resolve(self, certified_block: float | None, model: str = "this model") -> "Policy":
        """This policy for one model: `certified` replaced by that model's certified block
        threshold (fraud flag lowered to it when above). Raises PolicyError when the policy asks
        for a certified threshold the model does not have."""
        if not self.needs_certified:
            return self
        if certified_block is None:
            raise PolicyError(f"policy says fraud.block: {CERTIFIED}, but {model} has no certified block threshold "
                              "(export it again with `fanzha export`, or set a number)")
        fraud = {**self.thresholds["fraud"], "block": float(certified_block)}
        if "flag" in fraud:
            fraud["flag"] = min(fraud["flag"], fraud["block"])
        return Policy(thresholds={**self.thresholds, "fraud": fraud}, allow_senders=self.allow_senders,
                      block_domains=self.block_domains, block_phones=self.block_phones,
                      allow_on_block=self.allow_on_block, campaigns=self.campaigns)

    @classmethod
    def from_dict(cls, raw: dict, source: str = "policy") -> "Policy":
        if not isinstance(raw, dict):
            raise PolicyError(f"{source}: expected a mapping at the top level")
        unknown = set(raw) - {"thresholds", "allowlist", "blocklist", "campaigns"}
        if unknown:
            raise PolicyError(f"{source}: unknown keys {sorted(unknown)} (known: thresholds, allowlist, blocklist, "
                              "campaigns)")
        allow, block = raw.get("allowlist") or {}, raw.get("blocklist") or {}
        for name, section, known in (("allowlist", allow, {"senders", "on_block"}),
                                     ("blocklist", block, {"domains", "phones"})):
            if not isinstance(section, dict) or set(section) - known:
                raise PolicyError(f"{source}: {name} takes only {sorted(known)}")
        try:
            thresholds = {c: {a: v if v == CERTIFIED else float(v) for a, v in (r or {}).items()}
                          for c, r in (raw.get("thresholds") or {}).items()}
        except (TypeError, ValueError, AttributeError) as e:
            raise PolicyError(f"{source}: thresholds must map category -> {{flag|block: number}} ({e})") from e
        def as_set(name: str, values, f=str.strip) -> frozenset[str]:
            # Strings only: YAML reads 010 as 8 and drops leading zeros, silently breaking a match.
            if not isinstance(values, (list, type(None))) or any(not isinstance(v, str) for v in values or []):
                raise PolicyError(f"{source}: {name} must be a list of quoted strings, e.g. [\"95588\"]")
            return frozenset(f(v) for v in values or [])

        return cls(thresholds=thresholds, allow_senders=as_set("allowlist.senders", allow.get("senders")),
                   block_domains=as_set("blocklist.domains", block.get("domains"), lambda v: v.strip().lower()),
                   block_phones=as_set("blocklist.phones", block.get("phones"), phone_key),
                   allow_on_block=allow.get("on_block", "flag"),
                   campaigns=CampaignRules.from_dict(raw.get("campaigns"), source))

    @classmethod
    def load(cls, path: str | Path) -> "Policy":
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            raise PolicyError(f"cannot read policy {path}: {e}") from e
        return cls.from_dict(raw, f"policy {path}")

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"thresholds": self.thresholds}
        if self.allow_senders or self.allow_on_block != "flag":
            out["allowlist"] = {"senders": sorted(self.allow_senders), "on_block": self.allow_on_block}
        if self.block_domains or self.block_phones:
            out["blocklist"] = {"domains": sorted(self.block_domains), "phones": sorted(self.block_phones)}
        if self.campaigns != CampaignRules():
            out["campaigns"] = self.campaigns.to_dict()
        return out

    def summary(self) -> dict:
        return {"thresholds": self.thresholds, "allowlist_senders": len(self.allow_senders),
                "allowlist_on_block": self.allow_on_block,
                "blocklist_domains": len(self.block_domains), "blocklist_phones": len(self.block_phones),
                "campaigns": self.campaigns.to_dict()}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True), encoding="utf-8")

    # -- decisions -----------------------------------------------------------------------
    def _check_resolved(self) -> None:
        if self.needs_certified:
            raise PolicyError("policy with fraud.block: certified used before Policy.resolve (a bug)")

    def decide(self, category_scores: dict[str, np.ndarray]) -> np.ndarray:
        """Vectorized thresholds only: category -> scores [n] gives the action index [n]
        (0 allow, 1 flag, 2 block). For analysis; answers go through `apply`."""
        self._check_resolved()
        n = len(next(iter(category_scores.values())))
        level = np.zeros(n, dtype=np.int64)
        for action, category, threshold in self._rules:
            hit = np.asarray(category_scores[category], dtype=np.float32) >= threshold
            level = np.where(hit, np.maximum(level, ACTIONS.index(action)), level)
        return level

    def decide_one(self, category_scores: dict[str, float]) -> tuple[str, str]:
        """(action, reason) from the thresholds alone for one message's category scores."""
        self._check_resolved()
        for action, category, threshold in self._rules:
            if np.float32(category_scores[category]) >= threshold:
                return action, f"threshold:{category}.{action}"
        return "allow", "threshold:none"

    def blocklisted(self, text: str, normalized: str | None = None, normalize_fn=None) -> tuple[str, str] | None:
        """("block", reason) when a domain or phone of the block-list is in the text, else None."""
        if not (self.block_domains or self.block_phones):
            return None
        if normalized is None:
            normalized = (normalize_fn or normalize)(text)
        for host in domains_in(normalized) if self.block_domains else ():
            parts = host.split(".")
            for i in range(len(parts) - 1):
                if ".".join(parts[i:]) in self.block_domains:
                    return "block", f"blocklist:domain:{'.'.join(parts[i:])}"
        if self.block_phones:
            hits = phones_in(normalized) & self.block_phones
            if hits:
                return "block", f"blocklist:phone:{min(hits)}"
        return None

    def decide_message(self, text: str, sender: str | None, category_scores: dict[str, float],
                       normalize_fn=None, campaigns=None) -> tuple[str, str]:
        """(action, reason) for one message: block-list, then campaign (`campaigns`: a
        serving.feedback Matcher, or None), then allow-list, then thresholds."""
        normalized = None
        if self.block_domains or self.block_phones or campaigns is not None:
            normalized = (normalize_fn or normalize)(text)
        campaign = campaigns.decide_many([normalized], self.campaigns)[0] if campaigns is not None else None
        return self._decide(text, sender, category_scores, normalized, campaign)

    def _decide(self, text, sender, category_scores, normalized, campaign) -> tuple[str, str]:
        listed = self.blocklisted(text, normalized)
        if listed is not None:
            return listed
        if campaign is not None:
            return campaign
        action, reason = self.decide_one(category_scores)
        if sender is not None and sender.strip() in self.allow_senders:
            return (self.allow_on_block if action == "block" else "allow"), "allowlist:sender"
        return action, reason

    def listed(self, text: str, sender: str | None = None, normalized: str | None = None) -> tuple[str, str] | None:
        """(action, reason) when the block-list decides the message, or ("allow", "allowlist:sender")
        for a trusted sender (whose model block still becomes `on_block`: see decide_message)."""
        hit = self.blocklisted(text, normalized)
        if hit is not None:
            return hit
        if sender is not None and sender.strip() in self.allow_senders:
            return "allow", "allowlist:sender"
        return None

    def apply(self, results: list[dict], texts: Sequence[Any], senders: Sequence[str | None] | None = None,
              normalize_fn=None, campaigns=None) -> list[dict]:
        """THE decision rule. Set `action` and `reason` of the predictor's results in place (rows
        with `error` get action None and reason ""). `texts[i]` is what the lists and campaigns
        are matched on, `senders[i]` message i's sender id or None; `normalize_fn` the model's
        normalization; `campaigns` the feedback campaigns' matcher for it (or None)."""
        senders = senders if senders is not None else [None] * len(results)
        scored = []
        for i, result in enumerate(results):
            if result.get("error") or result.get("label") is None:
                result["action"], result["reason"] = None, ""
            else:
                scored.append(i)
        normalized = decided = None
        if scored and (self.block_domains or self.block_phones or campaigns is not None):
            normalize_fn = normalize_fn or normalize
            normalized = [normalize_fn(texts[i]) for i in scored]
            if campaigns is not None:  # one batched lookup for the whole batch
                decided = campaigns.decide_many(normalized, self.campaigns)
        for k, i in enumerate(scored):
            result = results[i]
            fraud, spam = result["fraud_score"], result["spam_score"]
            normal = (result.get("scores") or {}).get("normal", 1.0 - fraud - spam)
            result["action"], result["reason"] = self._decide(
                texts[i], senders[i], {"fraud": fraud, "spam": spam, "normal": normal},
                normalized[k] if normalized is not None else None, decided[k] if decided is not None else None)
        return results


class StaticPolicy:
    """A fixed policy with PolicyFile's interface (`current()`, `policy`), for tests and tools."""

    def __init__(self, policy: Policy):
        self.policy, self.path, self.loaded_at = policy, None, time.time()

    def current(self) -> Policy:
        return self.policy

    def reload(self) -> Policy:
        return self.policy


class PolicyFile:
    """A policy file kept current: `current()` re-reads it when its mtime or size changed (checked
    at most every `check_every` seconds); an invalid new version is logged and the old one kept."""

    def __init__(self, path: str | Path, check_every: float = 1.0):
        self.path = Path(path)
        self.check_every = check_every
        # callables run on a new version before it replaces the old one (each model that decides
        # on this file checks that it can resolve it); one that raises PolicyError refuses it
        self.checks: list = []
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
            for check in self.checks:
                check(policy)
            self.policy, self._stamp, self.loaded_at = policy, stamp, time.time()
            return policy

    def repoint(self, path: str | Path) -> Policy:
        """Follow another file from now on (a hot-swapped model's own policy.yaml); the checks run
        first, and a file that fails them changes nothing (PolicyError)."""
        path = Path(path)
        with self._lock:
            policy = Policy.load(path)
            for check in self.checks:
                check(policy)
            self.path, self.policy, self.loaded_at = path, policy, time.time()
            self._stamp = self._stat()
            return policy

    def add_to_blocklist(self, kind: str, value: str) -> tuple[Policy, bool]:
        """Add a domain or phone number to the file's block-list, then reload: (the policy now in
        force, whether the entry is new). The file is edited as text, so its comments and layout
        stay; the edited text must parse to the old policy plus exactly this entry and pass every
        model's check before it replaces the file (atomically, under a lock file shared by the
        workers). PolicyError for a bad value or a file that cannot be edited safely."""
        import fcntl

        if kind not in ("domain", "phone"):
            raise PolicyError("kind must be domain or phone")
        value = value.strip()
        if kind == "domain":
            key = value.lower().rstrip(".")
            if _DOMAIN.fullmatch(key) is None:
                raise PolicyError(f"{value!r} is not a domain name (e.g. etc-renz.cn)")
        else:
            key = phone_key(value)
            if not key.isdigit() or len(key) < 7 or len(key) > 20:
                raise PolicyError(f"{value!r} is not a phone number of 7 to 20 digits")
        field_name, attr = ("domains", "block_domains") if kind == "domain" else ("phones", "block_phones")
        lock_path = self.path.with_name(f".{self.path.name}.lock")
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                text = self.path.read_text(encoding="utf-8")
                old = Policy.from_dict(yaml.safe_load(text) or {}, f"policy {self.path}")
                if key in getattr(old, attr):
                    return self.reload(), False
                edited = _insert_blocklist(text, field_name, key)
                try:
                    new = Policy.from_dict(yaml.safe_load(edited) or {}, f"policy {self.path}")
                except yaml.YAMLError as e:
                    raise PolicyError(f"policy {self.path}: the edit would not parse ({e}); add {key!r} by hand") from e
                if new.to_dict() != dataclasses.replace(old, **{attr: getattr(old, attr) | {key}}).to_dict():
                    raise PolicyError(f"policy {self.path}: cannot add {key!r} without changing other rules; add it by hand")
                for check in self.checks:
                    check(new)
                tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
                tmp.write_text(edited, encoding="utf-8")
                os.replace(tmp, self.path)
                return self.reload(), True
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

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


def _insert_blocklist(text: str, field_name: str, value: str) -> str:
    """`text` with `value` added to `blocklist.<field_name>`, keeping every other line: a flow
    list (`domains: [a, b]  # comment`) gets the item appended inside the brackets, a block list
    (`- a` lines) gets one more line, a missing key or section is added."""
    item = json.dumps(value)
    lines = text.splitlines(keepends=True)
    top = next((i for i, line in enumerate(lines) if re.match(r"blocklist\s*:", line)), None)
    if top is None:
        sep = "" if not text or text.endswith("\n") else "\n"
        return f"{text}{sep}blocklist:\n  {field_name}: [{item}]\n"
    end = next((i for i in range(top + 1, len(lines)) if lines[i].strip() and not lines[i][0].isspace()
                and not lines[i].lstrip().startswith("#")), len(lines))
    rest = lines[top].split(":", 1)[1].strip()
    if rest and not rest.startswith("#"):
        raise PolicyError("blocklist is written on one line; edit it by hand")
    for i in range(top + 1, end):
        m = re.match(rf"(\s+){field_name}\s*:(.*)$", lines[i].rstrip("\n"))
        if not m:
            continue
        indent, value_part = m.group(1), m.group(2)
        flow = re.match(r"\s*\[(.*?)\](\s*(#.*)?)$", value_part)
        if flow:
            inside = flow.group(1).strip()
            items = f"{inside}, {item}" if inside else item
            lines[i] = f"{indent}{field_name}: [{items}]{flow.group(2)}\n"
            return "".join(lines)
        if value_part.strip() and not value_part.strip().startswith("#"):
            raise PolicyError(f"blocklist.{field_name} is neither a [list] nor a list of '- ' lines; edit it by hand")
        last, dash = i, None
        for j in range(i + 1, end):
            d = re.match(r"(\s*)- ", lines[j])
            if d:
                last, dash = j, d.group(1)
            elif lines[j].strip() and not lines[j].lstrip().startswith("#"):
                break
        lines.insert(last + 1, f"{dash if dash is not None else indent + '  '}- {item}\n")
        return "".join(lines)
    indent = next((re.match(r"(\s+)", lines[i]).group(1) for i in range(top + 1, end)
                   if lines[i].strip() and not lines[i].lstrip().startswith("#")), "  ")
    lines.insert(top + 1, f"{indent}{field_name}: [{item}]\n")
    return "".join(lines)


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
