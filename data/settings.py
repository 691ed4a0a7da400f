"""Every environment variable fanzha reads, defined once: name, type, default, area, meaning.

    python -m data.settings --markdown     # the settings reference (one table per area)
    python -m data.settings                # the names, one per line

Modules read a variable through `get(name)` (or `get_int` / `get_float` / `get_bool`), never
from os.environ, so the default written here is the only one (tests/test_settings.py checks
that). `get` reads the environment on every call: a module that reads at import keeps doing so
at import, one that reads per call sees `monkeypatch.setenv`. An unknown name raises KeyError,
so a typo cannot silently read nothing. Parsing stays with the module that reads the value,
with its own error messages; the typed getters only call int()/float() as those modules did.

`blank`: whether an empty value (`NAME=`) counts as unset (the default is used) or is the value,
as each variable has always been read. Bottom layer: standard library only.
"""
from __future__ import annotations

import argparse
import getpass
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

REPO = Path(__file__).resolve().parent.parent
ON = ("1", "true", "yes", "on")
TYPES = ("str", "int", "float", "bool", "path", "url", "path or url", "list")
AREAS = {  # area -> what its variables are about (the reference's order)
    "service": "What the HTTP service serves and how it decides.",
    "limits": "Request limits: larger requests are refused with the status named, before any work.",
    "auth": "API keys and which endpoints need them (serving/security.py, serving/console/auth.py).",
    "logs": "What the service writes about each message (serving/audit.py); by default no message text.",
    "feedback & campaigns": "Analyst and user reports, and the campaigns they build (serving/feedback).",
    "console": "The analyst console `/ui` and its review queue (serving/console).",
    "chat": "`POST /chat`: conversation-aware scoring (serving/chat).",
    "batch": "How messages are batched onto the model, and the processes and threads that run it "
             "(serving/tuning.py; measured with `make bench`).",
    "lifecycle/models": "Registered models, aliases, hot swap and the shadow model (serving/lifecycle).",
    "data & training": "Corpora, normalization and training runs.",
    "bench/test": "Read by the test suite only; a deployment does not set them.",
}


@dataclass(frozen=True)
class Setting:
    name: str
    type: str
    default: str | Callable[[], str] | None  # the raw value used when unset; a callable is read per call
    area: str
    help: str
    blank: str = "value"  # "value": an empty string is the value; "unset": it counts as unset
    shown: str | None = None  # the default as the reference shows it (for computed defaults)

    def __post_init__(self):
        if self.type not in TYPES or self.area not in AREAS or self.blank not in ("value", "unset"):
            raise ValueError(f"{self.name}: type {self.type!r}, area {self.area!r}, blank {self.blank!r}")
        if callable(self.default) and not self.shown:
            raise ValueError(f"{self.name}: a computed default needs `shown`")

    def default_value(self) -> str | None:
        return self.default() if callable(self.default) else self.default


def _state_dir() -> str:
    return os.path.join(get("XDG_STATE_HOME"), "fanzha")


_U = "unset"
REGISTRY: dict[str, Setting] = {s.name: s for s in (
    # service
    Setting("FANZHA_MODEL", "path", None, "service", "Serving artifact folder to serve (the output of `fanzha export`), "
            "e.g. `artifacts/sms/serving`; integrity-checked at start. `fanzha serve --model FOLDER` sets it. "
            "FANZHA_MODEL_TAG, when set, is used instead.", _U),
    Setting("FANZHA_POLICY", "path", None, "service", "Decision policy file (thresholds, allow and block lists) for every "
            "model served, re-read when it changes. Unset: the served artifact's own `policy.yaml`. "
            "`fanzha serve --policy FILE` sets it.", _U),
    Setting("FANZHA_POLICY_CHECK_S", "float", "1", "service", "How often the policy file is checked for changes, in "
            "seconds (e.g. `1`)."),
    Setting("FANZHA_VARIANT", "str", "", "service", "ONNX variant of the model to run: `fp32`, `opt`, `int8`, `fp16` or a "
            "file name in the artifact. Empty: the artifact's default variant (the fastest that passed export's checks)."),
    Setting("PORT", "int", "3000", "service", "Port of the server `fanzha demo` starts (`fanzha serve` takes `--port`)."),
    # limits
    Setting("FANZHA_MAX_BODY_BYTES", "int", str(1 << 20), "limits", "Largest request body, in bytes (default 1 MiB); a "
            "larger one is answered 413 without being read."),
    Setting("FANZHA_MAX_TEXTS", "int", "256", "limits", "Most messages in one `/classify` request; more: 400."),
    Setting("FANZHA_MAX_SENDER_CHARS", "int", "64", "limits", "Longest sender id, in characters; longer: 400."),
    Setting("FANZHA_MAX_EXPLAIN_CHARS", "int", "20000", "limits", "Longest text `POST /explain` takes, in characters; "
            "longer: 400."),
    Setting("FANZHA_MAX_QUEUE", "int", "4096", "limits", "Most messages waiting for the model; beyond that the service "
            "is overloaded and answers 503 at once instead of queueing."),
    # auth
    Setting("FANZHA_API_KEY", "str", None, "auth", "When set, every request needs `Authorization: Bearer <key>` (401 "
            "otherwise) and `/admin/*` is enabled; the key is named `default` in the console's action log. Without any "
            "key the API is open and `/admin/*` answers 403.", _U),
    Setting("FANZHA_API_KEYS", "list", None, "auth", "More keys, one per analyst, named: `alice:key1,bob:key2` (each key "
            "at least 8 characters). The name is recorded with each console action; combines with FANZHA_API_KEY.", _U),
    Setting("FANZHA_AUTH_HEALTH", "bool", "0", "auth", "`1`: the probes /healthz, /livez, /readyz need the key too "
            "(default: open, for load balancers)."),
    Setting("FANZHA_AUTH_METRICS", "bool", "1", "auth", "`0`: /metrics is open, for a Prometheus scraper without "
            "credentials (default: it needs the key when keys are set)."),
    # logs
    Setting("FANZHA_DECISION_LOG", "bool", "1", "logs", "The decision log: one JSON line per message on stderr (action, "
            "label, scores, text length and a keyed fingerprint, never the text). `0`, `false`, `no` or empty: off."),
    Setting("FANZHA_AUDIT_LOG", "path", None, "logs", "Audit log file, e.g. `/var/log/fanzha/audit.jsonl`: adds the sender "
            "and the text, with phone, bank-card and ID numbers masked. Unset: off.", _U),
    Setting("FANZHA_LOG_HASH_KEY", "str", None, "logs", "Key of the text fingerprints in the logs (HMAC-SHA256). Unset: a "
            "random key per deployment, kept in `log-hash.key` in FANZHA_STATE_DIR; set one key on every host whose "
            "fingerprints must match.", _U),
    Setting("FANZHA_STATE_DIR", "path", _state_dir, "logs", "Folder for what must outlive a process: the deployment key "
            "`log-hash.key` (mode 0600). Workers and services sharing the folder share the key.", _U,
            shown="`$XDG_STATE_HOME/fanzha`"),
    Setting("XDG_STATE_HOME", "path", "~/.local/state", "logs", "The standard per-user state folder; FANZHA_STATE_DIR "
            "defaults to `$XDG_STATE_HOME/fanzha`.", _U),
    # feedback & campaigns
    Setting("FANZHA_FEEDBACK_DB", "path or url", None, "feedback & campaigns", "Feedback store: a SQLite file "
            "(`/var/lib/fanzha/feedback.db`) or a `postgresql://` URL. Unset: no campaigns, and `/feedback` answers 503.", _U),
    Setting("FANZHA_FEEDBACK_SYNC_S", "float", "0.25", "feedback & campaigns", "How often each worker reads new reports "
            "and undos from the store, in seconds."),
    Setting("FANZHA_MAX_FEEDBACK_CHARS", "int", "4096", "feedback & campaigns", "Longest reported text, in characters; "
            "longer: 422."),
    # console
    Setting("FANZHA_CONSOLE_SECRET", "str", None, "console", "Extra secret mixed into the key that signs console "
            "sessions; changing it ends every session. Unset: the key comes from the API keys alone.", _U),
    Setting("FANZHA_REVIEW_LOG", "bool", "0", "console", "`1`: every flag and block on `/classify` is written, numbers "
            "masked, to the review log beside the feedback store (needs FANZHA_FEEDBACK_DB) for the review queue."),
    Setting("FANZHA_REVIEW_PENDING", "int", "50000", "console", "Most decisions waiting to be written to the review log; "
            "beyond that rows are dropped and counted (`fanzha_log_errors_total{log=\"review\"}`), answers never wait."),
    Setting("FANZHA_REVIEW_TAIL_MB", "float", "16", "console", "Without the review log: how many MiB at the end of the "
            "audit log (FANZHA_AUDIT_LOG) the review queue reads for flagged and blocked messages."),
    # chat
    Setting("FANZHA_CHAT_MODEL", "path", None, "chat", "Serving artifact folder of a conversation model for `POST /chat` "
            "(integrity-checked). Unset: /chat uses the served model. `fanzha serve --chat-model FOLDER` sets it.", _U),
    Setting("FANZHA_CHAT_MAX_CONCURRENCY", "int", "4", "chat", "`/chat` requests (and, separately, `/explain` requests) "
            "scored at once per worker; more wait their turn (`FANZHA_CHAT_MAX_QUEUE`)."),
    Setting("FANZHA_CHAT_MAX_QUEUE", "int", "64", "chat", "`/chat` requests (and, separately, `/explain` requests) "
            "waiting for a place per worker; beyond that a request is answered 503 at once, to be retried."),
    Setting("FANZHA_CHAT_MAX_TURNS", "int", "512", "chat", "Most turns in one conversation sent to `/chat`; more is refused."),
    Setting("FANZHA_CHAT_CACHE", "int", "4096", "chat", "Conversation windows whose scores are kept, so that a live call "
            "re-sent with each new turn only scores its new windows; `0`: no cache."),
    # batch
    Setting("FANZHA_MAX_BATCH_SIZE", "int", "64", "batch", "Most messages in one model call; under load the batch grows "
            "to it by itself."),
    Setting("FANZHA_MAX_BATCH_TOKENS", "int", "1024", "batch", "Token budget of one model call (messages × the longest "
            "one's tokens): bounds how long a newly arrived SMS waits behind a batch."),
    Setting("FANZHA_ACCESS_LOG", "bool", "0", "logs", "`1`: BentoML's access log, one line per HTTP request (path, "
            "status, sizes, latency) beside the decision log. Off by default, with FANZHA_TRACING: together they "
            "were 0.85 ms of a one-SMS request's 2.26 ms on the null model (docs: Benchmarks, the HTTP floor). "
            "Request counts by status and latencies are on `/metrics` either way."),
    Setting("FANZHA_TRACING", "bool", "0", "logs", "`1`: an OpenTelemetry span per API request (and the "
            "`X-BentoML-Request-ID` header), exported as BentoML's `tracing` configuration says (`BENTOML_CONFIG`). "
            "Off by default: without an exporter the spans go nowhere, and they cost the most of the HTTP floor."),
    Setting("FANZHA_WORKERS", "int", "1", "batch", "Server processes, each with its own copy of the model and batch loop."),
    Setting("FANZHA_THREADS", "int", "0", "batch", "ONNX Runtime threads per worker; `0`: the CPU cores this container "
            "may use (its cgroup quota), shared among the workers."),
    Setting("FANZHA_SPIN", "str", "1", "batch", "Whether ONNX Runtime's threads spin-wait for work. `1` (ONNX Runtime's "
            "default): one SMS at a time is ~1.7 ms faster through HTTP on 2 cores than with `0`, at the same throughput "
            "under load; the threads spin for a few ms after each call. `run`: spin within a call only, and leave the "
            "cores idle between calls. `0`: never (every parallel operator wakes its threads through the kernel)."),
    Setting("FANZHA_CGROUP_ROOT", "path", "/", "batch", "Where the cgroup and /proc files that give the container's CPU "
            "quota are read; only tests change it."),
    # lifecycle/models
    Setting("FANZHA_MODEL_TAG", "str", None, "lifecycle/models", "Registered model to serve: a pinned tag "
            "(`fanzha-sms:20250101120000-1a2b3c4d`) or an alias to follow (`fanzha-sms@champion`: hot swap when it moves). "
            "Also the Bento argument `model_tag`; `fanzha serve --model TAG` sets it.", _U),
    Setting("FANZHA_MODEL_CHECK_S", "float", "5", "lifecycle/models", "How often a service following an alias checks "
            "whether it moved, in seconds."),
    Setting("FANZHA_SHADOW_TAG", "str", None, "lifecycle/models", "A second model that scores every batch in the shadow, "
            "after the answers (NAME@ALIAS, a tag or an artifact folder); it is measured, never answered. "
            "`fanzha serve --shadow` sets it.", _U),
    Setting("FANZHA_SHADOW_QUEUE", "int", "8", "lifecycle/models", "Batches waiting for the shadow model; when it falls "
            "behind, further batches are dropped and counted."),
    Setting("FANZHA_SHADOW_LOG", "path", None, "lifecycle/models", "File of one JSON line per message with the champion's "
            "and the shadow's decisions (keyed fingerprint, no text); `fanzha diff --shadow FILE` summarises it.", _U),
    Setting("FANZHA_SHADOW_THREADS", "int", "1", "lifecycle/models", "ONNX Runtime threads of the shadow model, so that "
            "it takes at most that many cores from the answering model."),
    Setting("FANZHA_USER", "str", lambda: getpass.getuser(), "lifecycle/models", "Who `fanzha promote` and `fanzha rollback` "
            "record in the alias history.", _U, shown="the login name"),
    Setting("BENTOML_HOME", "path", "~/bentoml", "lifecycle/models", "BentoML's model store: `fanzha register` puts "
            "models there and the service finds tags and aliases there."),
    # data & training
    Setting("FANZHA_DATA_DIR", "path", str(REPO.parent / "shared" / "data"), "data & training", "Folder of the shared "
            "raw datasets (`sms/`, `chat/`) that `python -m data.sources` and the tests read.", _U,
            shown="`<repo>/../shared/data`"),
    Setting("FANZHA_VARIANTS", "path", str(REPO / "configs" / "variants.yaml"), "data & training", "Variant table that "
            "training and evaluation normalize text with (LINE / 賴 → one spelling); a served model uses its own copy.",
            _U, shown="`<repo>/configs/variants.yaml`"),
    Setting("FANZHA_CACHE", "path", str(REPO / ".cache"), "data & training", "Where the base encoder m3e-small is "
            "converted to safetensors once (`make setup`) and loaded from.", shown="`<repo>/.cache`"),
    Setting("MLFLOW_TRACKING_URI", "url", None, "data & training", "MLflow store of every `fanzha train` and `fanzha "
            "evaluate` run, e.g. `http://mlflow.internal:5000`. Unset: the store the model was trained with, else "
            "`sqlite:///artifacts/mlflow.db`.", _U),
    Setting("MLFLOW_EXPERIMENT_NAME", "str", "fanzha", "data & training", "MLflow experiment the runs are recorded in."),
    # bench/test
    Setting("FANZHA_TEST_POSTGRES_URL", "url", "postgresql://fanzha:fanzha@127.0.0.1:5432/fanzha_test", "bench/test",
            "PostgreSQL server of the feedback-store tests (each in a fresh schema); `.ci/run` creates the default one."),
    Setting("CI", "bool", "", "bench/test", "`true`: a test whose input is missing (shared data, Chromium, PostgreSQL) "
            "fails instead of skipping."),
)}


def setting(name: str) -> Setting:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"{name} is not a registered setting (data/settings.py)") from None


def default(name: str) -> str | None:
    """The registered default of `name` (computed ones computed now)."""
    return setting(name).default_value()


def get(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The value of `name` in `environ` (default os.environ, read now), else its default."""
    s = setting(name)
    value = (os.environ if environ is None else environ).get(name)
    if value is None or (value == "" and s.blank == "unset"):
        return s.default_value()
    return value


def get_int(name: str) -> int:
    return int(get(name))  # int()'s own ValueError for a bad value, as before


def get_float(name: str) -> float:
    return float(get(name))


def get_bool(name: str) -> bool:
    """True for 1 / true / yes / on (any case); anything else, empty included, is False."""
    return get(name).lower() in ON


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _shown(s: Setting) -> str:
    if s.shown is not None:
        return s.shown
    return "unset" if s.default is None else "(empty)" if s.default == "" else f"`{s.default}`"


def markdown() -> str:
    """The settings reference: one table per area (name, type, default, description)."""
    out = ["Every environment variable fanzha reads, generated from `data/settings.py` "
           "(`python -m data.settings --markdown`)."]
    for area, about in AREAS.items():
        rows = [s for s in REGISTRY.values() if s.area == area]
        out += ["", f"## {area}", "", about, "", "| name | type | default | description |", "| --- | --- | --- | --- |"]
        out += [f"| `{s.name}` | {s.type} | {_cell(_shown(s))} | {_cell(s.help)} |" for s in rows]
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data.settings", description=__doc__.split("\n\n")[0])
    parser.add_argument("--markdown", action="store_true", help="print the settings reference")
    args = parser.parse_args(argv)
    print(markdown() if args.markdown else "\n".join(REGISTRY), end="" if args.markdown else "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
