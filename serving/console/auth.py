"""Who is calling: named API keys, and the console's browser sessions with their CSRF tokens.

    FANZHA_API_KEY=s3cret                          # one key, named "default"
    FANZHA_API_KEYS="alice:k1-long-random,bob:k2"  # named keys (analysts); may be combined with the above

Every key opens every endpoint (the gate, serving/security.py, compares the `Authorization:
Bearer` header with each one in constant time). The key's *name* is what the console writes
next to each analyst action, so give each analyst a key of their own.

A browser logs in once at `/ui/login` with a key; the answer sets a session cookie
(`fanzha_console`: HttpOnly, SameSite=Strict, Path=/ui, 12 hours; Secure behind HTTPS). The
cookie is stateless, so every worker and every replica with the same keys accepts it:
`base64(json{key name, key fingerprint, issued, nonce}).HMAC-SHA256`. The HMAC secret is
derived from all the keys (FANZHA_CONSOLE_SECRET is mixed in when set), so rotating or removing
a key ends its sessions. Without any key the console is open like the rest of the API; its
sessions are then anonymous and signed with the deployment key (serving/audit.py
`deployment_key`), which the workers sharing a state folder share.

A state-changing console request carries `X-CSRF-Token`, HMAC(secret, the session's nonce):
another site can neither read it (the page is same-origin) nor send the cookie (SameSite=Strict).
Scripts that send `Authorization: Bearer` need no session and no token.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from data import settings

COOKIE = "fanzha_console"
SESSION_S = 12 * 3600
ANONYMOUS = "anonymous"


class KeysError(ValueError):
    """FANZHA_API_KEYS is malformed."""


def named_keys(env: dict | None = None) -> dict[str, str]:
    """{key: name} from FANZHA_API_KEY ("default") and FANZHA_API_KEYS ("name:key,name:key")."""
    keys: dict[str, str] = {}
    single = settings.get("FANZHA_API_KEY", env) or ""
    if single:
        keys[single] = "default"
    for part in filter(None, (p.strip() for p in (settings.get("FANZHA_API_KEYS", env) or "").split(","))):
        name, sep, key = part.partition(":")
        name, key = name.strip(), key.strip()
        if not sep or not name or not key:
            raise KeysError("FANZHA_API_KEYS: each entry is name:key, comma-separated (e.g. alice:k1,bob:k2)")
        if len(key) < 8:
            raise KeysError(f"FANZHA_API_KEYS: the key of {name!r} is shorter than 8 characters")
        if key in keys and keys[key] != name:
            raise KeysError(f"FANZHA_API_KEYS: {name!r} and {keys[key]!r} share one key")
        keys[key] = name
    return keys


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Session:
    name: str      # the key's name (ANONYMOUS without keys)
    nonce: str
    issued: float


class Sessions:
    """Signs and checks session cookies and CSRF tokens (the gate and the console share one rule)."""

    def __init__(self, keys: dict[str, str], secret: bytes | None = None, lifetime: float = SESSION_S):
        self.keys = dict(keys)
        self.lifetime = lifetime
        self._extra = (settings.get("FANZHA_CONSOLE_SECRET") or "").encode()
        self._open_secret = secret
        self._secret: bytes | None = None
        self._fingerprints = {name: self._mac(f"key:{key}")[:16] for key, name in self.keys.items()}

    @property
    def secret(self) -> bytes:
        if self._secret is None:
            if self.keys:
                material = b"\0".join(k.encode() for k in sorted(self.keys)) + b"\0" + self._extra
                self._secret = hashlib.sha256(b"fanzha-console\0" + material).digest()
            else:  # open console: the deployment key, read (or created) on first use
                if self._open_secret is None:
                    from serving.audit import deployment_key

                    self._open_secret = deployment_key()
                self._secret = hashlib.sha256(b"fanzha-console-open\0" + self._open_secret + b"\0" + self._extra).digest()
        return self._secret

    @classmethod
    def from_env(cls) -> "Sessions":
        return cls(named_keys())

    @property
    def open(self) -> bool:
        return not self.keys

    def _mac(self, text: str) -> str:
        return hmac.new(self.secret, text.encode(), hashlib.sha256).hexdigest()

    def key_name(self, presented: str) -> str | None:
        """The name of a presented key, or None (compares with every key in constant time)."""
        found = None
        for key, name in self.keys.items():
            if hmac.compare_digest(presented.encode(), key.encode()):
                found = name
        return found

    def issue(self, name: str) -> str:
        payload = _b64(json.dumps({"n": name, "f": self._fingerprints.get(name, ""), "t": int(time.time()),
                                   "x": secrets.token_hex(12)}, separators=(",", ":")).encode())
        return f"{payload}.{self._mac(payload)}"

    def verify(self, cookie: str | None) -> Session | None:
        """The session a cookie value carries, or None (bad signature, expired, or its key is gone)."""
        if not cookie or "." not in cookie or len(cookie) > 1024:
            return None
        payload, _, mac = cookie.rpartition(".")
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        try:
            data = json.loads(_unb64(payload))
            name, fingerprint, issued, nonce = str(data["n"]), str(data["f"]), float(data["t"]), str(data["x"])
        except (ValueError, KeyError, TypeError):
            return None
        if not 0 <= time.time() - issued <= self.lifetime:
            return None
        if self.keys and self._fingerprints.get(name) != fingerprint:
            return None  # the key was removed or rotated
        if not self.keys and name != ANONYMOUS:
            return None
        return Session(name, nonce, issued)

    def csrf(self, session: Session) -> str:
        return self._mac(f"csrf:{session.nonce}")[:32]

    def check_csrf(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(token.encode(), self.csrf(session).encode())


def cookie_from(headers: dict) -> str | None:
    """The console cookie's value from ASGI headers ({lower-case bytes: bytes})."""
    raw = headers.get(b"cookie", b"").decode("latin-1")
    for part in raw.split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return None


def set_cookie(value: str, secure: bool, max_age: int = SESSION_S) -> str:
    attrs = f"{COOKIE}={value}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={max_age}"
    return attrs + ("; Secure" if secure else "")
