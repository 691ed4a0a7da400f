"""Ship models safely: `fanzha promote`, `fanzha rollback` and `fanzha models`.

    fanzha promote fanzha-sms:v2-1a2b3c4d                      # the gate, then fanzha-sms@champion
    fanzha promote fanzha-sms:v2-1a2b3c4d --alias challenger   # integrity + parity only (shadow, canary)
    fanzha promote fanzha-sms:v2-1a2b3c4d --force --reason "campaign wave, gate slice noise"
    fanzha rollback fanzha-sms [--alias champion]              # back to the previous holder
    fanzha models [fanzha-sms]                                 # tags, aliases, verdicts, history

Promotion to `champion` runs the gate (serving/lifecycle/gate.py, configs/gate.yaml) on the
frozen golden sets (`fanzha golden`): the candidate against the current champion, or on the
absolute ceilings alone when there is none. The report (gate.json, gate.html) is stored with
the candidate in the model store (`<model folder>/gate/<time>/`) and its verdict in the alias
file (serving/lifecycle/aliases.py). A failed gate moves nothing unless `--force --reason`, and
the reason is recorded. Any other alias is set after the integrity and parity checks only.

Exit codes: 0 done, 1 the gate refused the candidate, 2 bad input (unknown tag, a tag failing
its integrity check, a name or alias with no holder, --force without --reason): one line on stderr.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from serving.integrity import verify_artifact
from serving.lifecycle.aliases import CHAMPION, PREVIOUS, AliasError, AliasStore, check_name
from serving.lifecycle.live import locate
from serving.lifecycle.registry import artifact_dir
from serving.predictor import ArtifactError

REPO = Path(__file__).resolve().parents[2]
DEFAULT_GOLDEN = REPO / "artifacts" / "golden"
DEFAULT_GATE = REPO / "configs" / "gate.yaml"


def promote(ref: str, alias: str = CHAMPION, *, force: bool = False, reason: str = "",
            golden: Path = DEFAULT_GOLDEN, gate_config: Path = DEFAULT_GATE, store: AliasStore | None = None,
            log=print) -> dict:
    """Gate (for champion) and move `alias`; returns {"tag", "alias", "moved", "previous", "report", "passed", "failed"}."""
    from serving.lifecycle import gate

    store = store or AliasStore()
    check_name(alias, "alias")
    if force and not reason.strip():
        raise AliasError("--force needs --reason TEXT: an overridden gate is recorded with why")
    tag, folder = locate(ref, store)  # integrity-checked
    name = tag.split(":", 1)[0]
    parity = gate.parity_gate(folder)  # integrity (locate() above) and parity, for every alias
    if not parity["passed"]:
        raise ArtifactError(f"{tag} fails its parity check: {parity['detail']}")
    current = store.get(name, alias)
    if current == tag:
        log(f"{name}@{alias} is already {tag}: nothing to do")
        return {"tag": tag, "alias": alias, "moved": False, "previous": current, "report": None,
                "passed": True, "failed": []}
    report_dir, passed, failed = None, True, []
    if alias == CHAMPION:
        champion = artifact_dir(current) if current else None
        log(f"gate: {tag} against {current or 'no champion (absolute ceilings only)'} on {golden}")
        report = gate.run_gate(folder, champion, golden, gate_config)
        report_dir = folder / "gate" / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-vs-{(current or 'none').replace(':', '_')}"
        gate.write_report(report, report_dir)
        passed, failed = bool(report["passed"]), list(report["failed"])
        store.record_verdict(name, tag, {"champion": current, "passed": passed, "failed": failed,
                                         "report": str(report_dir / "gate.html"), "forced": force and not passed})
        log(gate.table(report))
        log(f"gate report: {report_dir / 'gate.html'}")
        if not passed and not force:
            return {"tag": tag, "alias": alias, "moved": False, "previous": current, "report": str(report_dir),
                    "passed": False, "failed": failed}
    old = store.set(name, alias, tag, reason=reason, forced=force and not passed,
                    gate=str(report_dir / "gate.json") if report_dir else None)
    return {"tag": tag, "alias": alias, "moved": True, "previous": old, "report": str(report_dir) if report_dir else None,
            "passed": passed, "failed": failed}


def listing(name: str | None, store: AliasStore | None = None) -> list[dict]:
    """The fanzha models in the store (optionally of one name), newest first, with their aliases and verdicts."""
    import bentoml

    store = store or AliasStore()
    models = [m for m in bentoml.models.list() if (m.info.labels or {}).get("project") == "fanzha"
              and (name is None or m.tag.name == name)]
    states: dict[str, dict] = {}
    rows = []
    for model in sorted(models, key=lambda m: m.info.creation_time, reverse=True):
        state = states.setdefault(model.tag.name, store.read(model.tag.name))
        tag = str(model.tag)
        verdicts = state["verdicts"].get(tag, [])
        rows.append({"tag": tag, "created": model.info.creation_time.strftime("%Y-%m-%d %H:%M:%S"),
                     "aliases": sorted(a for a, t in state["aliases"].items() if t == tag),
                     "gate": verdicts[-1] if verdicts else None})
    return rows


def _verdict(v: dict | None) -> str:
    if v is None:
        return "-"
    word = "passed" if v["passed"] else ("FAILED, forced" if v.get("forced") else "FAILED: " + ", ".join(v["failed"]))
    return f"{word} (vs {v.get('champion') or 'none'}, {v['at']})"


def print_models(name: str | None, store: AliasStore) -> int:
    rows = listing(name, store)
    if name is not None and not rows:
        raise AliasError(f"no model named {name!r} in the model store; `fanzha register ARTIFACT --name {name}`")
    width = max([len(r["tag"]) for r in rows] + [3])
    print(f"{'tag':<{width}}  {'created':<19}  {'aliases':<20}  gate")
    for r in rows:
        print(f"{r['tag']:<{width}}  {r['created']:<19}  {','.join(r['aliases']) or '-':<20}  {_verdict(r['gate'])}")
    for model_name in sorted({r["tag"].split(":")[0] for r in rows}):
        history = store.read(model_name)["history"]
        if history:
            print(f"\nalias history of {model_name}:")
            for h in history:
                how = " (rollback)" if h.get("rollback") else " (FORCED)" if h.get("forced") else ""
                print(f"  {h['at']}  @{h['alias']}: {h.get('from') or '-'} -> {h['tag']}{how}  by {h['by']}"
                      + (f": {h['reason']}" if h.get("reason") else ""))
    return 0


def main_promote(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="fanzha promote", description="gate a registered model and move an alias to it")
    parser.add_argument("tag", help="name:version (see `fanzha models`), or name@alias")
    parser.add_argument("--alias", default=CHAMPION, help="alias to move (default champion: the gate runs; "
                        "any other alias gets the integrity and parity checks only)")
    parser.add_argument("--force", action="store_true", help="move the alias even if the gate fails (needs --reason)")
    parser.add_argument("--reason", default="", help="why: recorded in the alias history")
    parser.add_argument("--golden", type=Path, default=DEFAULT_GOLDEN, help="frozen golden sets (`fanzha golden`)")
    parser.add_argument("--gate-config", type=Path, default=DEFAULT_GATE)
    args = parser.parse_args(argv)
    try:
        out = promote(args.tag, args.alias, force=args.force, reason=args.reason, golden=args.golden,
                      gate_config=args.gate_config, log=lambda s: print(s, file=sys.stderr))
    except (ArtifactError, ValueError) as e:
        print(f"fanzha promote: {str(e).splitlines()[0] if len(str(e)) < 400 else str(e)[:400]}", file=sys.stderr)
        return 2
    name = out["tag"].split(":")[0]
    if not out["moved"] and not out["passed"]:
        print(f"fanzha promote: the gate refused {out['tag']}: failed {', '.join(out['failed'])} "
              f"(report {out['report']}/gate.html; override with --force --reason TEXT)", file=sys.stderr)
        return 1
    if out["moved"]:
        forced = " (gate FAILED, forced)" if not out["passed"] else ""
        print(f"{name}@{out['alias']} -> {out['tag']}{forced}; was {out['previous'] or 'unset'}", file=sys.stderr)
    print(json.dumps(out))
    return 0


def main_rollback(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="fanzha rollback", description="point an alias back to its previous holder")
    parser.add_argument("name", help="model name, e.g. fanzha-sms")
    parser.add_argument("--alias", default=CHAMPION)
    parser.add_argument("--reason", default="", help="why: recorded in the alias history")
    args = parser.parse_args(argv)
    store = AliasStore()
    try:
        state = store.read(check_name(args.name, "model name"))
        back = state["aliases"].get(PREVIOUS) if args.alias == CHAMPION else state["previous_of"].get(args.alias)
        if back is not None:
            verify_artifact(artifact_dir(back))  # never roll back onto a model that would not load
        was, now = store.rollback(args.name, args.alias, reason=args.reason)
    except (ArtifactError, ValueError) as e:
        print(f"fanzha rollback: {e}", file=sys.stderr)
        return 2
    print(f"{args.name}@{args.alias} -> {now} (rolled back from {was}; {was} is now @{PREVIOUS if args.alias == CHAMPION else 'previous_of'})",
          file=sys.stderr)
    print(now)
    return 0


def main_models(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="fanzha models", description="registered models, aliases, gate verdicts, history")
    parser.add_argument("name", nargs="?", help="one model name (default: every fanzha model in the store)")
    args = parser.parse_args(argv)
    try:
        return print_models(args.name, AliasStore())
    except (ArtifactError, ValueError) as e:
        print(f"fanzha models: {e}", file=sys.stderr)
        return 2
