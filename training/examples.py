"""Training examples: records from the embedded generator, corpus folders and feedback files
(`fanzha feedback export`, train split only), and a manifest.

A record is `{"text", "label", "source", "group", "split"}`; `label` is a taxonomy class or a
coarse label (a set of classes). The manifest lists what was used (file fingerprints, row
counts per split and label) and is saved in the model artifact.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from data.taxonomy import Taxonomy
from data.digest import sha256_file

SPLITS = ("train", "validation", "test")


class DataError(ValueError):
    """Training data is missing or malformed."""


def iter_jsonl(path: Path):
    """(line number, row) for each non-blank line; errors name file:line."""
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError as e:
                raise DataError(f"{path}:{n}: invalid UTF-8 ({e.reason} at byte {e.start})") from e
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{n}: invalid JSON: {e.msg}") from e
            if not isinstance(row, dict) or not isinstance(row.get("text"), str) or "label" not in row:
                raise DataError(f"{path}:{n}: expected an object with a string 'text' and a 'label'")
            yield n, row


def read_jsonl(path: Path) -> list[dict]:
    return [row for _, row in iter_jsonl(path)]


_sha256 = sha256_file  # data/digest.py


def load_splits(data_cfg, taxonomy: Taxonomy, workdir: Path) -> tuple[dict[str, list[dict]], dict]:
    """All splits plus the data manifest. The synthetic corpus is generated into `workdir`."""
    folders: list[Path] = []
    if data_cfg.synthetic_n:
        from data.synth import write_corpus

        folders.append(workdir / "synthetic")
        write_corpus(folders[-1], n=data_cfg.synthetic_n, seed=data_cfg.synthetic_seed)
    folders += [Path(d) for d in data_cfg.corpus_dirs]
    splits: dict[str, list[dict]] = {s: [] for s in SPLITS}
    files = []
    for folder in folders:
        for split in SPLITS:
            path = folder / f"{split}.jsonl"
            if not path.is_file():
                raise DataError(f"{path} not found: a corpus folder needs train/validation/test.jsonl")
            rows = read_jsonl(path)
            for n, row in enumerate(rows, 1):
                if not taxonomy.is_label(row["label"]):
                    raise DataError(f"{path}:{n}: unknown label {row['label']!r}")
                row.setdefault("source", folder.name)
            splits[split] += rows
            files.append({"path": str(path), "sha256": _sha256(path), "rows": len(rows)})
    feedback = None
    if data_cfg.feedback:  # before caps/repeat, so their keys can name "feedback"
        kept, feedback, feedback_files = load_feedback([Path(p) for p in data_cfg.feedback], splits, taxonomy)
        splits["train"] += kept
        files += feedback_files
    if data_cfg.caps:
        splits["train"] = apply_caps(splits["train"], data_cfg.caps, data_cfg.synthetic_seed)
    if data_cfg.repeat:
        splits["train"] = apply_repeat(splits["train"], data_cfg.repeat)
    if data_cfg.train_limit:
        splits["train"] = splits["train"][: data_cfg.train_limit]
    if not splits["train"]:
        raise DataError("no training rows")
    manifest = {
        "files": files,
        "synthetic": {"n": data_cfg.synthetic_n, "seed": data_cfg.synthetic_seed} if data_cfg.synthetic_n else None,
        "feedback": feedback,
        "rows": {s: len(r) for s, r in splits.items()},
        "labels": {s: dict(sorted(Counter(r["label"] for r in rows).items())) for s, rows in splits.items()},
        "sources": {s: dict(sorted(Counter(r.get("source", "?") for r in rows).items())) for s, rows in splits.items()},
    }
    return splits, manifest


def load_feedback(paths: list[Path], splits: dict[str, list[dict]],
                  taxonomy: Taxonomy) -> tuple[list[dict], dict, list[dict]]:
    """Rows of `fanzha feedback export` files for the train split, their summary for the manifest
    and their file entries. A row whose near-dup key is that of any split row (the test split
    included: a corrected test message must not leak into training) or of an earlier feedback row
    is dropped and counted; `labels` and `feedback_sources` count the kept rows."""
    from data.hygiene import near_dup_key

    seen_splits = {near_dup_key(r["text"]) for rows in splits.values() for r in rows}
    seen_feedback: set[str] = set()
    kept, files, read = [], [], 0
    duplicates = {"of_splits": 0, "within_feedback": 0}
    for path in paths:
        if not path.is_file():
            raise DataError(f"{path} not found: data.feedback names files written by `fanzha feedback export`")
        rows = 0
        for n, row in iter_jsonl(path):
            rows += 1
            if not row["text"].strip():
                raise DataError(f"{path}:{n}: empty text")
            if not isinstance(row["label"], str) or not taxonomy.is_label(row["label"]):
                raise DataError(f"{path}:{n}: unknown label {row['label']!r}")
            key = near_dup_key(row["text"])
            if key in seen_splits:
                duplicates["of_splits"] += 1
            elif key in seen_feedback:
                duplicates["within_feedback"] += 1
            else:
                kept.append({**row, "source": row.get("source") or "feedback"})
            seen_feedback.add(key)
        read += rows
        files.append({"path": str(path), "sha256": _sha256(path), "rows": rows})
    summary = {
        "files": [f["path"] for f in files], "rows": read, "kept": len(kept), "duplicates": duplicates,
        "labels": dict(sorted(Counter(r["label"] for r in kept).items())),
        "feedback_sources": dict(sorted(Counter(r.get("feedback_source", "?") for r in kept).items())),
    }
    return kept, summary, files


def apply_caps(rows: list[dict], caps: dict[str, int], seed: int) -> list[dict]:
    """Keep at most caps[key] rows per 'source:label' (or 'label') key; order otherwise kept.
    Unmatched keys are an error, as in apply_repeat."""
    import random

    def key(r):
        specific = f"{r.get('source')}:{r['label']}"
        return specific if specific in caps else (r["label"] if r["label"] in caps else None)

    groups: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        k = key(r)
        if k is not None:
            groups.setdefault(k, []).append(i)
    unknown = sorted(set(caps) - set(groups))
    if unknown:
        raise DataError(f"data.caps: no training rows match {unknown}")
    drop: set[int] = set()
    rng = random.Random(seed)
    for k, idx in sorted(groups.items()):
        if len(idx) > caps[k]:
            keep = set(rng.sample(idx, caps[k]))
            drop |= set(idx) - keep
    return [r for i, r in enumerate(rows) if i not in drop]


def _repeat_key(row: dict, repeat: dict[str, int]) -> str | None:
    source, label = row.get("source"), row["label"]
    for key in (f"{source}:{label}", source, label):
        if key in repeat:
            return key
    return None


def apply_repeat(rows: list[dict], repeat: dict[str, int]) -> list[dict]:
    """Use each row repeat[key] times ('source:label', then 'source', then 'label'); the copies
    follow the originals, and the trainer shuffles. Unmatched keys are an error (a typo must
    not silently train on the wrong mix)."""
    keys = [_repeat_key(r, repeat) for r in rows]
    unknown = sorted(set(repeat) - set(keys))
    if unknown:
        raise DataError(f"data.repeat: no training rows match {unknown}")
    out = list(rows)
    for r, key in zip(rows, keys):
        if key is not None:
            out += [r] * (repeat[key] - 1)
    return out


WEIGHT_POWERS = {"balanced": 1.0, "sqrt": 0.5}  # config `class_weights` -> power; 'none' has no weights


def inverse_frequency(counts: dict[str, int], taxonomy: Taxonomy, cap: float = 10.0, power: float = 1.0) -> dict[str, float]:
    """Inverse-frequency weights over fine labels (coarse labels count for none), capped, raised to
    `power` (1: balanced; 0.5: the milder square root, which keeps more of the data's prior)."""
    present = [c for c in taxonomy.classes if counts.get(c)]
    if not present:
        return {c: 1.0 for c in taxonomy.classes}
    total = sum(counts[c] for c in present)
    return {c: min(cap, total / (len(present) * counts[c])) ** power if counts.get(c) else 1.0
            for c in taxonomy.classes}


def weights_from_counts(counts: dict[str, int], taxonomy: Taxonomy, scheme: str) -> dict[str, float]:
    """The weights of a config `class_weights` scheme from training label counts (as in
    data_manifest.json); {} for 'none'."""
    power = WEIGHT_POWERS.get(scheme)
    return inverse_frequency(counts, taxonomy, power=power) if power else {}
