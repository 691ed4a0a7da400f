"""Aliases in the BentoML model store: `fanzha-sms@champion`, `@challenger`, `@previous`.

    from serving.lifecycle.aliases import AliasStore, resolve
    AliasStore().set("fanzha-sms", "champion", "fanzha-sms:v2-1a2b3c4d", by="ana", reason="weekly retrain")
    resolve("fanzha-sms@champion")        # -> "fanzha-sms:v2-1a2b3c4d" (a pinned tag: name:version)

The aliases of one model name live in one JSON file in the store itself,
`$BENTOML_HOME/fanzha/aliases/<name>.json`, so every process on the store (a second service, a
Bento started with the same BENTOML_HOME, `fanzha models`) sees the same holders:

    {"name": ..., "aliases": {"champion": TAG, "previous": TAG, "challenger": TAG},
     "previous_of": {"challenger": TAG, ...},      # what each non-champion alias pointed to before
     "history": [{"at", "alias", "tag", "from", "by", "reason", "forced", "gate"}...],
     "verdicts": {TAG: [{"at", "champion", "passed", "failed", "report"}...]}}

Moving `champion` makes its old holder `previous`; `rollback` moves `champion` back to
`previous` (and the model rolled back from becomes `previous`, so a second rollback undoes the
first). Every change is a read-modify-write under an exclusive `flock` on `<name>.lock`, written
to a temporary file, fsynced and renamed over the old one: concurrent callers are serialised and
a reader never sees half a file. The file also carries `generation`, a counter that a service
following an alias compares to notice a move cheaply.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import time
from pathlib import Path

from data import settings
from serving.predictor import ArtifactError

CHAMPION, PREVIOUS = "champion", "previous"
_NAME = re.compile(r"^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$")


class AliasError(ArtifactError):
    """An unknown name or alias, an alias with no holder, or an invalid alias name."""


def store_home() -> Path:
    """The BentoML home that bentoml.models uses in this process (BENTOML_HOME, else ~/bentoml)."""
    from bentoml._internal.configuration.containers import BentoMLContainer

    return Path(BentoMLContainer.bentoml_home.get())


def split_ref(ref: str) -> tuple[str, str | None, str | None]:
    """`name@alias` -> (name, alias, None); `name:version` -> (name, None, version)."""
    ref = ref.strip()
    if "@" in ref:
        name, alias = ref.split("@", 1)
        check_name(name, "model name")
        check_name(alias, "alias")
        return name, alias, None
    if ":" in ref:
        name, version = ref.split(":", 1)
        return name, None, version
    return ref, None, None


def check_name(value: str, what: str) -> str:
    if not _NAME.match(value or ""):
        raise AliasError(f"invalid {what} {value!r}: use lower-case letters, digits, '.', '_' and '-'")
    return value


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class AliasStore:
    def __init__(self, home: str | Path | None = None):
        self.root = Path(home or store_home()) / "fanzha" / "aliases"

    def path(self, name: str) -> Path:
        return self.root / f"{check_name(name, 'model name')}.json"

    def read(self, name: str) -> dict:
        """The alias file of `name` (an empty state when none was ever set)."""
        path = self.path(name)
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"name": name, "generation": 0, "aliases": {}, "previous_of": {}, "history": [], "verdicts": {}}
        except (OSError, ValueError) as e:
            raise AliasError(f"{path}: unreadable alias file ({e})") from e
        for key, empty in (("aliases", {}), ("previous_of", {}), ("history", []), ("verdicts", {})):
            state.setdefault(key, empty)
        return state

    def stamp(self, name: str) -> tuple[int, int] | None:
        """Cheap change detection for a watcher: (mtime_ns, size) of the alias file, None if absent."""
        try:
            st = os.stat(self.path(name))
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def get(self, name: str, alias: str) -> str | None:
        return self.read(name)["aliases"].get(alias)

    def holder(self, name: str, alias: str) -> str:
        tag = self.get(name, alias)
        if tag is None:
            raise AliasError(f"{name}@{alias} has no holder in the model store {store_home()}; "
                             f"set one with `fanzha promote {name}:VERSION --alias {alias}`")
        return tag

    @contextlib.contextmanager
    def _locked(self, name: str):
        """Exclusive access to `name`'s alias file; yields its state, written back on success."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f"{name}.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = self.read(name)
            before = json.dumps(state, sort_keys=True)
            yield state
            if json.dumps(state, sort_keys=True) == before:
                return  # nothing changed (the alias already pointed there): no write, no new generation
            state["generation"] = int(state.get("generation", 0)) + 1
            path = self.path(name)
            tmp = path.with_suffix(f".tmp.{os.getpid()}")
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(state, f, ensure_ascii=False, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)

    def set(self, name: str, alias: str, tag: str, *, by: str | None = None, reason: str = "",
            forced: bool = False, gate: str | None = None) -> str | None:
        """Point `name@alias` at `tag`; returns the old holder. `champion`'s old holder becomes `previous`."""
        check_name(alias, "alias")
        if alias == PREVIOUS:
            raise AliasError("'previous' is kept by fanzha (the champion before the last move); use `fanzha rollback`")
        with self._locked(name) as state:
            old = state["aliases"].get(alias)
            if old == tag:
                return old
            state["aliases"][alias] = tag
            if old is not None:
                if alias == CHAMPION:
                    state["aliases"][PREVIOUS] = old
                else:
                    state["previous_of"][alias] = old
            state["history"].append({"at": now(), "alias": alias, "tag": tag, "from": old, "by": by or user(),
                                     "reason": reason, "forced": forced, "gate": gate})
            return old

    def rollback(self, name: str, alias: str = CHAMPION, *, by: str | None = None, reason: str = "") -> tuple[str, str]:
        """Point `name@alias` back at its previous holder; returns (from, to)."""
        with self._locked(name) as state:
            current = state["aliases"].get(alias)
            back = state["aliases"].get(PREVIOUS) if alias == CHAMPION else state["previous_of"].get(alias)
            if current is None:
                raise AliasError(f"{name}@{alias} has no holder: nothing to roll back")
            if back is None:
                raise AliasError(f"{name}@{alias} has no previous holder to roll back to (it was only ever {current})")
            state["aliases"][alias] = back
            if alias == CHAMPION:
                state["aliases"][PREVIOUS] = current
            else:
                state["previous_of"][alias] = current
            state["history"].append({"at": now(), "alias": alias, "tag": back, "from": current, "by": by or user(),
                                     "reason": reason or "rollback", "forced": False, "gate": None, "rollback": True})
            return current, back

    def record_verdict(self, name: str, tag: str, verdict: dict) -> None:
        with self._locked(name) as state:
            state["verdicts"].setdefault(tag, []).append({"at": now(), **verdict})


def user() -> str:
    try:
        return settings.get("FANZHA_USER")  # unset: the login name
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def resolve(ref: str, store: AliasStore | None = None) -> str:
    """A pinned tag for `name:version` (returned as is) or `name@alias` (its current holder)."""
    name, alias, version = split_ref(ref)
    if alias is None:
        return ref
    return (store or AliasStore()).holder(name, alias)
