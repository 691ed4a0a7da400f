"""What the service writes about each message: a decision log (default) and an audit log (opt-in).

    python -m serving.audit "客服电话 138-1234-5678，卡号 6222 0212 3456 7890 123"   # prints the masked text

Message text is personal data, so by default it is never logged. The decision log (logger
`fanzha.decisions`, one JSON line per message on stderr) holds the action, label, reason,
scores, the text's length and a fingerprint: HMAC-SHA256 of the text, so that templated SMS and
short texts such as verification codes cannot be guessed back from it. The key is
FANZHA_LOG_HASH_KEY when set; otherwise a random key per deployment, written once (mode 0600) to
`log-hash.key` in the state folder FANZHA_STATE_DIR (default `$XDG_STATE_HOME/fanzha`, i.e.
`~/.local/state/fanzha`): services and workers sharing that folder share the key, so their
fingerprints match. FANZHA_DECISION_LOG=0 turns the log off.

Logging never fails a request: a write that fails (a full disk, a closed stream) is counted
in `fanzha_log_errors_total{log="decision"|"audit"}` (serving/metrics.py), reported on stderr
at most once a minute, and the answer goes out.

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
import secrets
import sys
import threading
import time
from pathlib import Path

from data import settings

KEY_FILE = "log-hash.key"
_log = logging.getLogger("fanzha.audit")

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


def state_dir() -> Path:
    """Where the service keeps what must outlive a process: FANZHA_STATE_DIR, else $XDG_STATE_HOME/fanzha."""
    return Path(settings.get("FANZHA_STATE_DIR")).expanduser()


def deployment_key(folder: str | Path | None = None) -> bytes:
    """The deployment's fingerprint key: read from `folder/log-hash.key`, created there first (random,
    0600) if missing. Concurrent creators agree: the file appears whole, once (a hard link of a
    finished temporary file), and every process then reads the one that won."""
    folder = Path(folder) if folder is not None else state_dir()
    path = folder / KEY_FILE
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = folder / f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_hex(32).encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process wrote it first: use theirs
        finally:
            tmp.unlink()
    key = path.read_bytes().strip()
    if len(key) < 32:
        raise ValueError(f"{path}: a log hash key of {len(key)} bytes; delete it to make a new one")
    return key


def _count_error(log: str) -> None:
    try:
        from serving.metrics import count_log_error

        count_log_error(log)
    except Exception:  # noqa: BLE001 — counting must not fail either
        pass


class _CountingHandler(logging.StreamHandler):
    """A failed write of a decision line is counted, not raised or printed with a traceback."""

    _last = 0.0

    def handleError(self, record) -> None:  # noqa: N802 — logging's name
        _count_error("decision")
        now = time.monotonic()
        if now - _CountingHandler._last > 60:
            _CountingHandler._last = now
            try:
                sys.__stderr__.write(f"fanzha: decision log write failed: {sys.exc_info()[1]!r}\n")
            except Exception:  # noqa: BLE001
                pass


def _decision_logger() -> logging.Logger:
    logger = logging.getLogger("fanzha.decisions")
    if not logger.handlers:  # BentoML configures its own loggers only; this one writes plain lines
        handler = _CountingHandler(sys.stderr)
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
        self._reported = 0.0
        # the console's review log (serving/console/review.py ReviewLog), set by the service when on
        self.review = None

    @classmethod
    def from_env(cls) -> "DecisionLog":
        """FANZHA_DECISION_LOG, FANZHA_AUDIT_LOG; the key: FANZHA_LOG_HASH_KEY, else the deployment's
        key in the state folder (`deployment_key`)."""
        decisions = settings.get("FANZHA_DECISION_LOG") not in ("0", "false", "no", "")
        audit = settings.get("FANZHA_AUDIT_LOG") or None
        key = settings.get("FANZHA_LOG_HASH_KEY")
        if key:
            hash_key = key.encode()
        elif decisions or audit:
            hash_key = deployment_key()
        else:
            hash_key = None
        return cls(decisions=decisions, audit_path=audit, hash_key=hash_key)

    def write(self, results: list[dict], texts: list, senders: list) -> None:
        """Log one batch; never raises (a failure is counted and reported, see the module docstring)."""
        if self.logger is None and self._audit is None and self.review is None:
            return
        try:
            self._write(results, texts, senders)
        except Exception as e:  # noqa: BLE001 — a log must never fail the answer
            _count_error("audit" if isinstance(e, _AuditError) else "decision")
            now = time.monotonic()
            if now - self._reported > 60:
                self._reported = now
                _log.error("writing the %s log failed (%s); counted in fanzha_log_errors_total",
                           "audit" if isinstance(e, _AuditError) else "decision", e.__cause__ or e)

    def _write(self, results: list[dict], texts: list, senders: list) -> None:
        now = round(time.time(), 3)
        lines, audit, review = [], [], []
        for result, text, sender in zip(results, texts, senders):
            text = text if isinstance(text, str) else ""
            entry = {"ts": now, **{k: result.get(k) for k in _KEEP}, "chars": len(text),
                     "sha": fingerprint(text, self.hash_key)}
            if self.logger is not None:
                lines.append(json.dumps({"event": "decision", **entry}, ensure_ascii=False))
            if self._audit is not None:
                audit.append(json.dumps({**entry, "sender": sender, "text": mask(text)}, ensure_ascii=False))
            if self.review is not None and result.get("action") in ("flag", "block"):
                review.append({"created_at": now, "action": result["action"], "category": result.get("category"),
                               "label": result.get("label"), "reason": result.get("reason"),
                               "score": result.get("score"), "fraud_score": result.get("fraud_score"),
                               "sender": sender, "text": mask(text), "sha": entry["sha"]})
        if review:
            self.review.offer(review)
        if lines:
            self.logger.info("\n".join(lines))
        if audit:
            with self._lock:
                try:
                    self._audit.write("\n".join(audit) + "\n")
                    self._audit.flush()
                except Exception as e:
                    self._reopen()  # drop what the buffer holds: the next batch starts clean
                    raise _AuditError() from e

    def _reopen(self) -> None:
        old, self._audit = self._audit, None
        try:
            old.close()
        except Exception:  # noqa: BLE001 — flushing the failed buffer fails again
            pass
        try:
            self._audit = open(self.audit_path, "a", encoding="utf-8", buffering=1 << 16)
        except OSError:
            self._audit = _Unavailable(self.audit_path)

    def close(self) -> None:
        if self._audit is not None:
            try:
                self._audit.close()
            except Exception:  # noqa: BLE001
                _count_error("audit")
            self._audit = None


class _AuditError(Exception):
    """The audit log could not be written (its cause is the OSError)."""


class _Unavailable:
    """An audit log that could not be reopened: every write tries again."""

    def __init__(self, path: Path):
        self.path, self._file = path, None

    def write(self, data: str) -> None:
        if self._file is None:
            self._file = open(self.path, "a", encoding="utf-8", buffering=1 << 16)
        self._file.write(data)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    for text in args:
        print(mask(text))
    return 0 if args else 2


if __name__ == "__main__":
    sys.exit(main())
