"""Frozen golden sets: the fixed messages every candidate model is judged on before it ships.

    fanzha golden --out artifacts/golden                          # from artifacts/data/all/test.jsonl
    fanzha golden --out /tmp/g --data corpus.jsonl --legit 300 --fraud 100 --notices 50

One command builds four sets, deterministically from `--seed`, into versioned files with a
manifest of fingerprints (`golden.json`):

- `heldout`: a stratified sample (source x label) of the held-out test split of the shared data.
  Legitimate rows: up to 20,000 (all 17,117 of the shared data's split). The gate's false-block
  ceiling (0.1 % at 95 % confidence, Clopper-Pearson) must be passable by a model that meets its
  export certificate: export admits up to ~0.044 % on its validation rows, and a model at that rate
  passes the ceiling on 4,940 legitimate rows (1 block allowed) with probability 0.36, on 17,957
  (10 allowed) with 0.83 (`data.calibration.ceiling_pass_probability`; the gate reports it);
- `probes`: the hand-written messages of data/probes/: the template-adjacent set (a smoke signal: same
  authors as the templates) and the independent set (data/probes/independent/, written blind to them;
  `source` is `independent:<region>`: cn, tw, hk, mo);
- `disguised`: copies of held-out fraud (and of the fraud probes) in every data/obfuscate.py kind;
- `notices`: legitimate notices (verification codes, bank, delivery) from the synthetic templates of
  the *test* family (template split seed 0, what the models were trained with), never seen in training.

`--relabel FILE` applies reviewed label corrections (a YAML list of `{text_sha256, label, reason}`;
the gate's list of blocked legitimate rows gives each row's `text_sha256`): a source's label noise,
such as an advertisement among 80万's ham, then stops counting against every model. Each
correction, the rows it changed and the file's sha256 are recorded in golden.json, and a changed
row carries `relabelled` (its reason) and `label_was`; a correction that matches no row is an error.

Every row carries its slice fields: `source`, `category` (fraud | spam | normal | not_fraud, the
last for coarse labels), `fraud_type` (the fraud label, `-` for legitimate rows), `disguise`
(`none` or the kind), `script` (simplified | traditional | none, by OpenCC t2s) and `length`.
`load_golden(folder)` verifies every file against the manifest and refuses a changed one: a gate
decision names the golden fingerprint it was made on. The built files are data: never commit them.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

from data.digest import sha256_file
from data.taxonomy import category_of, label_kinds, load_taxonomy

GOLDEN_FORMAT = "1"  # the row fields and set names below; bump when they change
SETS = ("heldout", "probes", "disguised", "notices")
SLICE_FIELDS = ("source", "category", "fraud_type", "disguise", "script", "length")
LENGTH_BUCKETS = ((20, "<=20"), (50, "21-50"), (100, "51-100"), (200, "101-200"))
REPO = Path(__file__).resolve().parent.parent
PROBES = REPO / "data" / "probes"
TEMPLATE_SEED = 0  # the synthetic template split the models train with (training config data.synthetic_seed)
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


class GoldenError(ValueError):
    """The golden set is missing, malformed or changed since it was built."""


@dataclass
class Sizes:
    legit: int = field(default=20000, metadata={"help": "held-out legitimate rows (normal, not_fraud); more than the "
                                                        "split holds takes them all"})
    fraud: int = field(default=900, metadata={"help": "held-out fraud rows"})
    spam: int = field(default=250, metadata={"help": "held-out spam rows"})
    min_per_stratum: int = field(default=50, metadata={"help": "at least this many rows per source x label"})
    disguised_per_kind: int = field(default=60, metadata={"help": "held-out fraud rows disguised per kind"})
    disguised_probes: bool = field(default=True, metadata={"help": "also disguise every fraud probe in every kind"})
    notices: int = field(default=400, metadata={"help": "synthetic legitimate notices (test-family templates)"})
    seed: int = 0

    def __post_init__(self):
        if min(self.legit, self.fraud, self.spam, self.min_per_stratum, self.disguised_per_kind, self.notices) < 0:
            raise GoldenError("golden set sizes must be >= 0")


@lru_cache(maxsize=1)
def _t2s():
    import opencc

    return opencc.OpenCC("t2s").convert


def script_of(text: str) -> str:
    """traditional when OpenCC t2s changes >= 2 characters or >= 10 % of the CJK ones (a single
    changed character is often a variant shared by both scripts); none without CJK characters."""
    cjk = len(_CJK.findall(text))
    if not cjk:
        return "none"
    changed = sum(a != b for a, b in zip(text, _t2s()(text)))
    return "traditional" if changed >= 2 or changed / cjk >= 0.1 else "simplified"


def length_bucket(text: str) -> str:
    return next((name for limit, name in LENGTH_BUCKETS if len(text) <= limit), f">{LENGTH_BUCKETS[-1][0]}")


def _row(text: str, label: str, source: str, set_name: str, disguise: str = "none") -> dict:
    is_fraud, _ = label_kinds([label], load_taxonomy())
    category = "fraud" if is_fraud[0] else category_of(label)
    return {"set": set_name, "text": text, "label": label, "source": source, "category": category,
            "fraud_type": label if is_fraud[0] else "-", "disguise": disguise, "script": script_of(text),
            "length": length_bucket(text)}


def probe_source(row: dict, path: Path) -> str:
    """A probe's `source` slice: its own (`probe_short`, ...: the template-adjacent set), else the
    set's folder and the row's region (`independent:tw`), so the gate reports each region of the
    independent probes (data/probes/independent/) on its own."""
    if row.get("source"):
        return str(row["source"])
    return f"{path.parent.name}:{row['region']}" if row.get("region") else "probe"


def _read_jsonl(path: Path) -> list[dict]:
    try:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, ValueError) as e:
        raise GoldenError(f"cannot read {path}: {e}") from e
    tax = load_taxonomy()
    for i, r in enumerate(rows, 1):
        if not isinstance(r, dict) or not str(r.get("text") or "").strip() or not tax.is_label(str(r.get("label"))):
            raise GoldenError(f"{path}:{i}: expected {{text, label, source}} with a taxonomy label, got {str(r)[:120]}")
    return rows


def _allocate(sizes: dict, target: int, floor: int) -> dict:
    """Per stratum: proportional to its size (largest remainder), at least min(floor, size)."""
    total = sum(sizes.values())
    if not total or target <= 0:
        return dict.fromkeys(sizes, 0)
    base = {k: min(n, floor) for k, n in sizes.items()}
    rest = max(0, target - sum(base.values()))
    spare = {k: n - base[k] for k, n in sizes.items()}
    raw = {k: rest * s / max(1, sum(spare.values())) for k, s in spare.items()}
    got = {k: min(spare[k], int(v)) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: (-(raw[k] - int(raw[k])), k))[: max(0, rest - sum(got.values()))]:
        got[k] = min(spare[k], got[k] + 1)
    return {k: base[k] + got[k] for k in sizes}


def heldout_rows(rows: list[dict], sizes: Sizes) -> list[dict]:
    """Stratified by source x label within each of legit / fraud / spam; exact duplicates dropped."""
    strata: dict[tuple[str, str], list[dict]] = {}
    seen = set()
    for r in rows:
        if r["text"] not in seen:
            seen.add(r["text"])
            strata.setdefault((str(r.get("source", "?")), r["label"]), []).append(r)
    out = []
    for group, target in (("legit", sizes.legit), ("fraud", sizes.fraud), ("spam", sizes.spam)):
        def kind(label):
            row = _row("", label, "", "")
            return "fraud" if row["category"] == "fraud" else "spam" if row["category"] == "spam" else "legit"
        members = {k: v for k, v in strata.items() if kind(k[1]) == group}
        counts = _allocate({k: len(v) for k, v in members.items()}, target, sizes.min_per_stratum)
        for key in sorted(members):
            rng = random.Random(f"{sizes.seed}:heldout:{key[0]}:{key[1]}")
            for r in rng.sample(members[key], counts[key]):
                out.append(_row(r["text"], r["label"], key[0], "heldout"))
    return out


def disguised_rows(fraud: list[dict], probes: list[dict], sizes: Sizes) -> tuple[list[dict], dict]:
    """Each data/obfuscate.py kind applied to its own sample of held-out fraud (plus every fraud
    probe); a copy the disguise left unchanged is dropped and counted."""
    from data.obfuscate import KINDS, obfuscate

    out, unchanged = [], Counter()
    for kind in KINDS:
        pick = random.Random(f"{sizes.seed}:disguise:{kind}").sample(fraud, min(len(fraud), sizes.disguised_per_kind))
        sources = pick + ([p for p in probes if p["category"] == "fraud"] if sizes.disguised_probes else [])
        for i, r in enumerate(sources):
            text = obfuscate(r["text"], kind, random.Random(f"{sizes.seed}:{kind}:{i}:{r['text']}"))
            if text == r["text"] or not text.strip():
                unchanged[kind] += 1
                continue
            out.append(_row(text, r["label"], r["source"], "disguised", kind))
    return out, dict(unchanged)


def notice_rows(n: int, seed: int) -> list[dict]:
    """n legitimate notices from test-family templates (unseen by models trained with TEMPLATE_SEED)."""
    from data.synth import assign_splits, generate
    from data.synth_templates import load_library

    templates = load_library().templates
    split_of = assign_splits(list(templates), TEMPLATE_SEED)
    test = {t.id for t in templates if split_of[t.id] == "test" and t.pool == "normal.notice"}
    out, seen, batch = [], set(), max(1000, 30 * n)
    while len(out) < n:
        for r in generate(batch, seed=seed + 1000 + batch):  # another seed than the training corpus
            if r["group"] in test and r["text"] not in seen and len(out) < n:
                seen.add(r["text"])
                out.append(_row(r["text"], r["label"], "synthetic_notice", "notices"))
        batch *= 2
    return out


def text_sha256(text: str) -> str:
    """How a golden row is named across versions (ids are positions in one build)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_relabels(path: Path) -> list[dict]:
    """The reviewed corrections of --relabel: [{text_sha256, label, reason}], validated."""
    import yaml

    try:
        entries = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise GoldenError(f"cannot read the relabel file {path}: {e}") from e
    if not isinstance(entries, list) or not entries:
        raise GoldenError(f"{path}: expected a YAML list of {{text_sha256, label, reason}}")
    tax, seen = load_taxonomy(), set()
    for i, e in enumerate(entries, 1):
        if not isinstance(e, dict) or set(e) != {"text_sha256", "label", "reason"}:
            raise GoldenError(f"{path}: entry {i}: expected exactly the keys text_sha256, label, reason, got {str(e)[:120]}")
        if not re.fullmatch(r"[0-9a-f]{64}", str(e["text_sha256"])):
            raise GoldenError(f"{path}: entry {i}: text_sha256 must be 64 lower-case hex digits")
        if not tax.is_label(str(e["label"])):
            raise GoldenError(f"{path}: entry {i}: {e['label']!r} is not a taxonomy label")
        if not str(e["reason"]).strip():
            raise GoldenError(f"{path}: entry {i}: a correction needs its reason")
        if e["text_sha256"] in seen:
            raise GoldenError(f"{path}: entry {i}: text_sha256 {e['text_sha256'][:12]}… is corrected twice")
        seen.add(e["text_sha256"])
    return entries


def apply_relabels(sets: dict[str, list[dict]], entries: list[dict], path: Path) -> list[dict]:
    """Every row, in every set, whose text a correction names gets its label, with its slices
    recomputed (a disguised copy has a text of its own); returns what was applied."""
    by_hash = {e["text_sha256"]: e for e in entries}
    applied = {h: {"text_sha256": h, "label": e["label"], "reason": e["reason"], "rows": 0, "label_was": []}
               for h, e in by_hash.items()}
    for name in SETS:
        for i, r in enumerate(sets.get(name, [])):
            e = by_hash.get(text_sha256(r["text"]))
            if e is None:
                continue
            fixed = _row(r["text"], e["label"], r["source"], r["set"], r["disguise"])
            sets[name][i] = {**fixed, "label_was": r["label"], "relabelled": e["reason"]}
            a = applied[e["text_sha256"]]
            a["rows"] += 1
            a["label_was"] = sorted(set(a["label_was"]) | {r["label"]})
    unmatched = [h for h, a in applied.items() if not a["rows"]]
    if unmatched:
        raise GoldenError(f"{path}: {len(unmatched)} correction(s) match no golden row: "
                          + ", ".join(h[:12] + "…" for h in unmatched))
    return list(applied.values())


def build(out: Path, data: Path, probes: Path = PROBES, sizes: Sizes | None = None, command: str = "",
          relabel: Path | None = None) -> dict:
    """Write SET.jsonl for every set and golden.json; return the manifest."""
    sizes = sizes or Sizes()
    entries = read_relabels(relabel) if relabel is not None else []
    corpus = data / "test.jsonl" if data.is_dir() else data
    if not corpus.is_file():
        raise GoldenError(f"held-out corpus not found: {corpus} (build it with `python -m data.sources --out "
                          f"artifacts/data/all`, or pass --data FILE.jsonl)")
    probe_files = sorted(probes.rglob("*.jsonl")) if probes.is_dir() else [probes] if probes.is_file() else []
    held = [r for r in _read_jsonl(corpus) if r.get("split", "test") == "test"]
    probe_rows = [_row(r["text"], r["label"], probe_source(r, p), "probes") for p in probe_files for r in _read_jsonl(p)]
    sets = {"heldout": heldout_rows(held, sizes), "probes": probe_rows}
    sets["disguised"], unchanged = disguised_rows([r for r in sets["heldout"] if r["category"] == "fraud"],
                                                  probe_rows, sizes)
    sets["notices"] = notice_rows(sizes.notices, sizes.seed) if sizes.notices else []
    relabels = apply_relabels(sets, entries, relabel) if entries else []
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for name in SETS:
        path = out / f"{name}.jsonl"
        with path.open("w", encoding="utf-8", newline="\n") as f:
            for i, r in enumerate(sets[name]):
                f.write(json.dumps({"id": f"{name}-{i:05d}", **r}, ensure_ascii=False) + "\n")
        files[path.name] = {"sha256": sha256_file(path), "rows": len(sets[name])}
    fingerprint = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
    rows = [r for name in SETS for r in sets[name]]
    inputs = {str(p): sha256_file(p) for p in [corpus, *probe_files, REPO / "configs" / "variants.yaml",
                                                *([relabel] if entries else [])]}
    inputs.update({f"data/synth_slots/{p.name}": sha256_file(p) for p in sorted((REPO / "data" / "synth_slots").glob("*"))
                   if p.is_file()})
    manifest = {"format": GOLDEN_FORMAT, "version": f"{GOLDEN_FORMAT}-{fingerprint[:12]}", "fingerprint": fingerprint,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "command": command,
                "inputs": inputs, "sizes": asdict(sizes), "files": files,
                "rows": {name: len(sets[name]) for name in SETS}, "disguise_unchanged_dropped": unchanged,
                "relabels": {"file": str(relabel), "sha256": inputs[str(relabel)], "applied": relabels} if entries else None,
                "slices": {f: dict(sorted(Counter(r[f] for r in rows).items())) for f in SLICE_FIELDS}}
    (out / "golden.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    return manifest


@dataclass(frozen=True)
class Golden:
    rows: list
    manifest: dict

    @property
    def version(self) -> str:
        return self.manifest["version"]

    @property
    def fingerprint(self) -> str:
        return self.manifest["fingerprint"]


def load_golden(folder: str | Path) -> Golden:
    """The verified rows of a golden set; GoldenError if a file is missing or changed since it was built."""
    folder = Path(folder)
    path = folder / "golden.json"
    if not path.is_file():
        raise GoldenError(f"{folder}: no golden.json — not a golden set; build one with `fanzha golden --out {folder}`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise GoldenError(f"{path}: unreadable golden manifest ({e})") from e
    if hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest() != manifest.get("fingerprint"):
        raise GoldenError(f"{path}: the file list does not match its fingerprint (the manifest was edited)")
    rows = []
    for name, entry in files.items():
        if not (folder / name).is_file():
            raise GoldenError(f"{folder / name}: missing (listed in golden.json)")
        if sha256_file(folder / name) != entry["sha256"]:
            raise GoldenError(f"{folder / name}: sha256 differs from golden.json — the golden set was changed "
                              f"after it was built; rebuild it with `fanzha golden` (a new version)")
        rows += [json.loads(line) for line in (folder / name).read_text(encoding="utf-8").splitlines() if line]
    return Golden(rows=rows, manifest=manifest)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="fanzha golden", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="folder for SET.jsonl and golden.json")
    p.add_argument("--data", type=Path, default=REPO / "artifacts" / "data" / "all",
                   help="corpus folder with test.jsonl (python -m data.sources --out ...), or one .jsonl")
    p.add_argument("--probes", type=Path, default=PROBES, help="folder (or file) of hand-written probes")
    p.add_argument("--force", action="store_true", help="replace an existing golden set (a new version)")
    p.add_argument("--relabel", type=Path, help="reviewed label corrections: a YAML list of {text_sha256, label, reason}")
    for f in Sizes.__dataclass_fields__.values():
        flag = "--" + f.name.replace("_", "-")
        if f.type in (bool, "bool"):
            p.add_argument(f"--no-{f.name.replace('_', '-')}", dest=f.name, action="store_false", help=f"skip: {f.metadata.get('help')}")
        else:
            p.add_argument(flag, type=int, default=f.default, help=f.metadata.get("help", "seed of every sample"))
    args = p.parse_args(argv)
    try:
        if (args.out / "golden.json").exists() and not args.force:
            raise GoldenError(f"{args.out} already holds a golden set (frozen); pass --force to replace it")
        sizes = Sizes(**{k: getattr(args, k) for k in Sizes.__dataclass_fields__})
        command = "fanzha golden " + " ".join(sys.argv[1:] if argv is None else list(map(str, argv)))
        manifest = build(args.out, args.data, args.probes, sizes, command, relabel=args.relabel)
    except GoldenError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"version": manifest["version"], "rows": manifest["rows"], "slices": manifest["slices"],
                      "relabelled": [{k: a[k] for k in ("text_sha256", "label_was", "label", "rows")}
                                     for a in (manifest["relabels"] or {}).get("applied", [])]},
                     indent=1, ensure_ascii=False))
    print(f"[fanzha] golden set {manifest['version']} written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
