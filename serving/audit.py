"""What the service writes about each message: a decision log (default) and an audit log (opt-in).

    python -m serving.audit "客服电话 138-1234-5678，卡号 6222 0212 3456 7890 123"   # prints the masked text

Message text is personal data, so by default it is never logged. The decision log (logger
`fanzha.decisions`, one JSON line per message on stderr) holds the action, label, reason,
scores, the text's length and a fingerprint (sha256 prefix, or HMAC-SHA256 keyed by
FANZHA_LOG_HASH_KEY so that short texts such as verification codes cannot be guessed back
from it). FANZHA_DECISION_LOG=0 turns it off.

The audit log (FANZHA_AUDIT_LOG=/path/audit.jsonl, off by default) adds the sender and the
text with phone, bank-card and ID-card numbers masked: any run of 7 or more digits (spaces or
hyphens allowed between groups) keeps only a few digits — 11-13 digits (a mobile, with or
without +86): the first 3 and last 4 (138****5678); 15-19 (ID or bank card): the last 4;
other lengths (landlines, long codes): the last 2. Shorter runs (codes, amounts) stay.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import sys
import threading
import time
from pathlib import Path

_NUMBER = re.compile(r"\d{17}[Xx]|\+?\d(?:[ \-]?\d){6,}")  # an ID card may end in X
_KEEP = ("action", "label", "reason", "score", "fraud_score", "error")


def _mask_number(match: re.Match) -> str:
    raw = match.group(0)
    chars = [c for c in raw if c.isdigit() or c in "Xx"]
    n = len(chars)
    if 11 <= n <= 13:
        keep_head, keep_tail = 3 if n == 11 else n - 8, 4
    elif 15 <= n <= 19:
        keep_head, keep_tail = 0, 4
    else:
        keep_head, keep_tail = 0, 2
    return "".join(chars[:keep_head]) + "*" * (n - keep_head - keep_tail) + "".join(chars[n - keep_tail:])


def mask(text: str) -> str:
    """Mask phone, bank-card and ID-card numbers (any run of >= 7 digits)."""
    return _NUMBER.sub(_mask_number, text)


def fingerprint(text: str, key: bytes | None = None) -> str:
    data = text.encode("utf-8", "surrogatepass")
    if key:
        return hmac.new(key, data, hashlib.sha256).hexdigest()[:16]
    return hashlib.sha256(data).hexdigest()[:16]


def _decision_logger() -> logging.Logger:
    logger = logging.getLogger("fanzha.decisions")
    if not logger.handlers:  # BentoML configures its own loggers only; this one writes plain lines
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


class DecisionLog:
    """Writes one line per scored message to the decision log and, if enabled, the audit log."""

    def __init__(self, decisions: bool = True, audit_path: str | Path | None = None, hash_key: bytes | None = None):
        self.logger = _decision_logger() if decisions else None
        self.hash_key = hash_key
        self.audit_path = Path(audit_path) if audit_path else None
        self._audit = open(self.audit_path, "a", encoding="utf-8", buffering=1 << 16) if self.audit_path else None
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls) -> "DecisionLog":
        key = os.environ.get("FANZHA_LOG_HASH_KEY")
        return cls(decisions=os.environ.get("FANZHA_DECISION_LOG", "1") not in ("0", "false", "no", ""),
                   audit_path=os.environ.get("FANZHA_AUDIT_LOG") or None, hash_key=key.encode() if key else None)

    def write(self, results: list[dict], texts: list, senders: list) -> None:
        if self.logger is None and self._audit is None:
            return
        now = round(time.time(), 3)
        lines, audit = [], []
        for result, text, sender in zip(results, texts, senders):
            text = text if isinstance(text, str) else ""
            entry = {"ts": now, **{k: result.get(k) for k in _KEEP}, "chars": len(text),
                     "sha": fingerprint(text, self.hash_key)}
            if self.logger is not None:
                lines.append(json.dumps({"event": "decision", **entry}, ensure_ascii=False))
            if self._audit is not None:
                audit.append(json.dumps({**entry, "sender": sender, "text": mask(text)}, ensure_ascii=False))
        if lines:
            self.logger.info("\n".join(lines))
        if audit:
            with self._lock:
                self._audit.write("\n".join(audit) + "\n")
                self._audit.flush()

    def close(self) -> None:
        if self._audit is not None:
            self._audit.close()
            self._audit = None


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    for text in args:
        print(mask(text))
    return 0 if args else 2


if __name__ == "__main__":
    sys.exit(main())
