"""Request gate of the service: API-key auth, body-size limit, content type; no text in error logs.

    FANZHA_API_KEY=s3cret fanzha serve --model artifacts/demo/serving
    curl -H 'Authorization: Bearer s3cret' -d '{"texts": ["..."]}' localhost:3000/classify

`Gatekeeper` is an ASGI middleware (added with `Fanzha.add_asgi_middleware`), so it answers
before BentoML reads or parses anything. Settings (env, read when the worker starts):

| env | default | meaning |
| --- | --- | --- |
| FANZHA_API_KEY | unset | when set, every request needs `Authorization: Bearer <key>` (401 otherwise) |
| FANZHA_API_KEYS | unset | more keys, named: `alice:key1,bob:key2` (the name is logged with each console action; serving/console/auth.py) |
| FANZHA_AUTH_HEALTH | 0 | 1: /healthz, /livez, /readyz need the key too |
| FANZHA_AUTH_METRICS | 1 | 0: /metrics is open (for a scraper without credentials) |
| FANZHA_MAX_BODY_BYTES | 1048576 | larger request bodies get 413, unread |

`/admin/*` always needs the key; without FANZHA_API_KEY it answers 403 (admin disabled).
The analyst console (`/ui`, serving/console) also takes its session cookie instead of the header:
`/ui/login` and `/ui/static/` are open, a console page without a session redirects (303) to
`/ui/login`, and a console API call without one gets 401.
A POST body must be JSON (`Content-Type: application/json` or none): anything else gets 415,
which also keeps BentoML's multipart/form decoders and its pickle format away from the API.

`GET /docs.json` is answered here too: BentoML's OpenAPI document, corrected once per worker to
what the service answers (serving/openapi.py). A method a documented path does not declare
(GET /classify, DELETE /info) gets 405 with an `Allow` header and the same `{"error": ...}` body
as the other answers of the gate.

`redact_validation_logs()` strips pydantic's `input_value=...` (message text) from the errors
BentoML logs for rejected requests; the response never contained it.
"""
from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass

from data import settings
from serving.console.auth import Sessions, cookie_from, named_keys

PROBES = ("/healthz", "/livez", "/readyz")


@dataclass(frozen=True)
class GateSettings:
    api_key: str | None = None
    auth_health: bool = False
    auth_metrics: bool = True
    max_body_bytes: int = 1 << 20
    named_keys: tuple[tuple[str, str], ...] = ()  # (name, key) from FANZHA_API_KEYS

    @classmethod
    def from_env(cls) -> "GateSettings":
        keys = named_keys()
        single = settings.get("FANZHA_API_KEY") or None
        return cls(api_key=single,
                   auth_health=settings.get_bool("FANZHA_AUTH_HEALTH"),
                   auth_metrics=settings.get_bool("FANZHA_AUTH_METRICS"),
                   max_body_bytes=settings.get_int("FANZHA_MAX_BODY_BYTES"),
                   named_keys=tuple((name, key) for key, name in keys.items() if key != single))

    @property
    def keys(self) -> dict[str, str]:
        """{key: name} of every key that opens the service."""
        out = {self.api_key: "default"} if self.api_key else {}
        out.update({key: name for name, key in self.named_keys})
        return out

    @property
    def auth(self) -> bool:
        return bool(self.api_key or self.named_keys)

    def needs_key(self, path: str) -> bool:
        if path.startswith("/admin/"):
            return True
        if not self.auth:
            return False
        if path in PROBES:
            return self.auth_health
        if path == "/metrics":
            return self.auth_metrics
        return True


async def _send(send, status: int, body: bytes, media: bytes, head_only: bool = False, headers: tuple = ()) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", media), (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": b"" if head_only else body})


async def _reply(send, status: int, message: str, headers: tuple = ()) -> None:
    await _send(send, status, json.dumps({"error": message}).encode(), b"application/json", headers=headers)


async def _internal_get(app, scope, path: str) -> tuple[int, bytes]:
    """GET `path` from the wrapped app, in process; (status, body)."""
    inner = {**scope, "method": "GET", "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": [(b"accept", b"application/json")]}
    status, chunks = 500, []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def collect(message):
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    try:
        await app(inner, receive, collect)
    except Exception:  # noqa: BLE001 — without a document the gate still works, unchanged
        logging.getLogger(__name__).exception("could not build the OpenAPI document")
        return 500, b""
    return status, b"".join(chunks)


class Gatekeeper:
    def __init__(self, app, settings: GateSettings | None = None) -> None:
        self.app = app
        self.settings = settings or GateSettings.from_env()
        self.sessions = Sessions(self.settings.keys)
        # (corrected document, path -> declared methods); None: not built yet; False: BentoML had none
        self._docs: tuple[bytes, dict] | None | bool = None
        self._docs_lock = asyncio.Lock()

    async def _documented(self, scope) -> tuple[bytes, dict] | None:
        """The corrected OpenAPI document, built once from BentoML's own answer to GET /docs.json;
        None if BentoML could not produce it (then /docs.json and methods pass through unchanged)."""
        if self._docs is None:
            async with self._docs_lock:
                if self._docs is None:
                    from serving.openapi import allowed_methods, truthful

                    status, body = await _internal_get(self.app, scope, "/docs.json")
                    if status == 200:
                        doc = truthful(json.loads(body))
                        self._docs = (json.dumps(doc, ensure_ascii=False).encode(), allowed_methods(doc))
                    else:
                        self._docs = False
        return self._docs or None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path, s = scope["path"], self.settings
        headers = dict(scope["headers"])  # keys are lower-case bytes
        caller = self._caller(headers)  # the key's name, or None
        if caller is not None:
            scope["fanzha.caller"] = caller
        if path == "/ui" or path.startswith("/ui/"):
            if path != "/ui/login" and not path.startswith("/ui/static/"):
                session = self.sessions.verify(cookie_from(headers))
                scope["fanzha.session"] = session
                if s.auth and caller is None and session is None:
                    if not path.startswith("/ui/api/") and scope["method"] in ("GET", "HEAD"):
                        return await _send(send, 303, b"", b"text/plain", headers=((b"location", b"/ui/login"),))
                    return await _reply(send, 401, "log in at /ui/login, or send 'Authorization: Bearer <key>'")
        elif s.needs_key(path):
            if not s.auth:
                return await _reply(send, 403, "admin endpoints are disabled: start the service with FANZHA_API_KEY set")
            if caller is None:
                return await _reply(send, 401, "missing or invalid API key (send 'Authorization: Bearer <key>')",
                                    ((b"www-authenticate", b"Bearer"),))
        docs = await self._documented(scope)
        if docs is not None:
            body, declared = docs
            methods = declared.get(path)
            if methods is not None and scope["method"] not in methods:
                allow = ", ".join(sorted(methods))
                return await _reply(send, 405, f"{scope['method']} is not allowed on {path}; use {allow}",
                                    ((b"allow", allow.encode()),))
            if path == "/docs.json" and scope["method"] in ("GET", "HEAD"):
                return await _send(send, 200, body, b"application/json", scope["method"] == "HEAD")
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        media = headers.get(b"content-type", b"application/json").split(b";")[0].strip().lower()
        if media != b"application/json" and not path.startswith("/admin/"):
            return await _reply(send, 415, f"request body must be JSON (Content-Type: application/json), got {media.decode('latin-1')!r}")
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                return await _reply(send, 400, "invalid Content-Length header")
            if int(length) > s.max_body_bytes:
                return await _reply(send, 413, f"request body of {int(length)} bytes exceeds the limit of {s.max_body_bytes} bytes")
            return await self.app(scope, receive, send)
        # No Content-Length (chunked): read up to the limit here, then replay it to the app.
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > s.max_body_bytes:
                return await _reply(send, 413, f"request body exceeds the limit of {s.max_body_bytes} bytes")
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)


    def _caller(self, headers: dict) -> str | None:
        value = headers.get(b"authorization", b"")
        if not value.startswith(b"Bearer ") or not self.settings.auth:
            return None
        return self.sessions.key_name(value[7:].decode("latin-1"))


class _RedactValidationErrors(logging.Filter):
    """Log a rejected request's validation error as counts and locations, without input values."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and hasattr(exc, "errors") and type(exc).__name__ == "ValidationError":
            try:
                where = [(".".join(map(str, e["loc"])), e["type"]) for e in exc.errors(include_input=False)][:5]
            except Exception:  # noqa: BLE001 — never let logging fail the request
                where = []
            record.msg = f"{record.getMessage()}: rejected input, {exc.error_count()} validation error(s) {where}"
            record.args, record.exc_info, record.exc_text = (), None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"  # a client's mistake, not ours
        return True


def redact_validation_logs() -> None:
    for name in ("bentoml._internal.server.http_app", "bentoml.serve"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactValidationErrors) for f in logger.filters):
            logger.addFilter(_RedactValidationErrors())
