"""The embedded default corpus: synthetic Chinese SMS for every class of the taxonomy.

    python -m data.synth --out runs/synth --n 12000 --seed 0    # writes train/validation/test.jsonl

Why it exists: the public sets in `../shared/data` teach shortcuts (fraud texts there are long,
generated call scripts; "ham" is news fragments) and contain none of the verification-code,
bank and delivery notices that a filter must never block. This generator fills both gaps with
short, SMS-shaped messages: ~45% `normal` (of which ~58% legitimate notifications, including
hard negatives that mention 公安/法院/贷款/退款/客服), ~15% `spam`, ~40% fraud over the seven
fraud types. Templates are data (`data/synth_slots/*.yaml`); the template language is in
`data/synth_templates.py`.

Two regions: besides mainland SMS, every pool has templates written in Traditional characters
with the vocabulary and scam scripts of Taiwan / Hong Kong / Macau (`region: tw_hk_mo` in their
YAML files: 中華郵政 / 監理站 / 蝦皮 / LINE / 八達通 / 轉數快 …), fraud and legitimate notices
and personal messages alike, so that neither the script nor the regional vocabulary tells a
class apart. `REGION_SHARE` (~22%) of each pool's messages come from its regional templates;
training normalizes them to Simplified, so what they add is the vocabulary and the scripts.

Split by template, not by message: every message carries its template id as `group`, and a
template's messages all land in one split. Per pool (normal.notice, normal.personal, spam, each
fraud type) and region the templates are ordered by sha256(seed, template id) and cut ~70/15/15
into train/validation/test, at least one template each, so the held-out splits measure how well
a model generalizes to *unseen phrasings* of every class (and of its regional variant) rather
than to new slot values of a phrasing it has already memorised. The cut depends on the seed,
not on Python's hash salt.

Deterministic: one `random.Random(seed)` drives everything, in a fixed order; a seed gives
byte-identical files.
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import random
import sys
from collections import Counter
from pathlib import Path

from data.synth_templates import MAINLAND, Library, Template, load_library, restyle
from data.taxonomy import load_taxonomy

SPLITS = ("train", "validation", "test")
SPLIT_SHARES = (0.70, 0.15, 0.15)

# Share of generated messages per sampling pool. normal = 0.45 (notice 0.26 >= half of it),
# spam = 0.15, fraud = 0.40 (fraud.other a little smaller: it is a catch-all).
POOL_WEIGHTS = {
    "normal.notice": 0.26,
    "normal.personal": 0.19,
    "spam": 0.15,
    "fraud.impersonate_authority": 0.06,
    "fraud.loan": 0.06,
    "fraud.fake_customer_service": 0.06,
    "fraud.impersonate_acquaintance": 0.06,
    "fraud.brushing": 0.06,
    "fraud.investment": 0.06,
    "fraud.other": 0.04,
}
# Share of each pool's messages drawn from its regional (Taiwan / Hong Kong / Macau, Traditional
# script) templates; a pool without regional templates draws only mainland ones.
REGION_SHARE = 0.22
# Attempts to re-render a message whose exact text was already produced; after that a repeat
# is kept only if it stays inside one split (a text in two splits would leak).
_RETRIES = 6


def _key(seed: int, template_id: str) -> str:
    return hashlib.sha256(f"{seed}\0{template_id}".encode("utf-8")).hexdigest()


def assign_splits(templates: list[Template], seed: int = 0) -> dict[str, str]:
    """template id -> split; per pool and region ~70/15/15 of the templates, at least one on
    each side (so every class has unseen regional phrasings in validation and test too)."""
    by_pool: dict[tuple[str, str], list[str]] = {}
    for t in templates:
        by_pool.setdefault((t.pool, t.region), []).append(t.id)
    out: dict[str, str] = {}
    for pool, region in sorted(by_pool):
        ids = sorted(by_pool[(pool, region)], key=lambda tid: (_key(seed, tid), tid))
        if len(ids) < len(SPLITS):
            raise ValueError(f"pool {pool} ({region}) has {len(ids)} templates; needs >= {len(SPLITS)}")
        n_val = max(1, round(len(ids) * SPLIT_SHARES[1]))
        n_test = max(1, round(len(ids) * SPLIT_SHARES[2]))
        n_train = len(ids) - n_val - n_test
        for i, tid in enumerate(ids):
            out[tid] = SPLITS[0] if i < n_train else SPLITS[1] if i < n_train + n_val else SPLITS[2]
    return out


def _quotas(n: int, weights: dict[str, float]) -> dict[str, int]:
    """Largest-remainder rounding: exact total n, every pool within one of its share."""
    total = sum(weights.values())
    raw = {p: n * w / total for p, w in weights.items()}
    counts = {p: int(v) for p, v in raw.items()}
    rest = sorted(weights, key=lambda p: (-(raw[p] - counts[p]), p))
    for p in rest[: n - sum(counts.values())]:
        counts[p] += 1
    return counts


def _check_library(library: Library) -> None:
    taxonomy = load_taxonomy()
    pools = {t.pool for t in library.templates}
    for t in library.templates:
        if t.label not in taxonomy.classes:
            raise ValueError(f"template {t.id}: label {t.label!r} is not a taxonomy class")
    if pools != set(POOL_WEIGHTS):
        raise ValueError(f"template pools {sorted(pools)} != weighted pools {sorted(POOL_WEIGHTS)}")
    missing = set(taxonomy.classes) - {t.label for t in library.templates}
    if missing:
        raise ValueError(f"no templates for classes {sorted(missing)}")


def _cum_weights(templates: list[Template]) -> list[float]:
    """Uniform within a region; the regional templates together get REGION_SHARE of the pool."""
    n_regional = sum(t.region != MAINLAND for t in templates)
    n_mainland = len(templates) - n_regional
    if not n_regional or not n_mainland:
        weights = [1.0] * len(templates)
    else:
        weights = [REGION_SHARE / n_regional if t.region != MAINLAND else (1 - REGION_SHARE) / n_mainland
                   for t in templates]
    return list(itertools.accumulate(weights))


def generate(n: int, seed: int = 0) -> list[dict]:
    """n messages: {"text", "label", "source": "synthetic", "group": template id, "split"}."""
    if n < 0:
        raise ValueError("n must be >= 0")
    library = load_library()
    _check_library(library)
    split_of = assign_splits(list(library.templates), seed)
    by_pool: dict[str, list[Template]] = {}
    for t in library.templates:
        by_pool.setdefault(t.pool, []).append(t)
    cum_weights = {pool: _cum_weights(ts) for pool, ts in by_pool.items()}

    rng = random.Random(seed)
    order = [p for p, k in _quotas(n, POOL_WEIGHTS).items() for _ in range(k)]
    rng.shuffle(order)
    seen: dict[str, str] = {}  # text -> split
    rows = []
    for pool in order:
        for attempt in range(_RETRIES * 4):
            t = rng.choices(by_pool[pool], cum_weights=cum_weights[pool])[0]
            text = restyle(library.render(t, rng), rng)
            split = split_of[t.id]
            if text not in seen or (attempt >= _RETRIES and seen[text] == split):
                break
        else:
            raise RuntimeError(f"pool {pool}: cannot render a text that stays in one split")
        seen[text] = split
        rows.append({"text": text, "label": t.label, "source": "synthetic", "group": t.id, "split": split})
    return rows


def write_corpus(out_dir, n: int = 12000, seed: int = 0) -> dict[str, Path]:
    """Write train/validation/test.jsonl (UTF-8, one JSON object per line); return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = generate(n, seed)
    paths = {}
    for split in SPLITS:
        path = out / f"{split}.jsonl"
        with path.open("w", encoding="utf-8", newline="\n") as f:
            for row in rows:
                if row["split"] == split:
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
        paths[split] = path
    return paths


def counts_table(rows: list[dict]) -> str:
    """Per split x class counts, the table `main` prints."""
    classes = load_taxonomy().classes
    c = Counter((r["split"], r["label"]) for r in rows)
    width = max(map(len, classes))
    lines = [f"{'class':<{width}}  " + "  ".join(f"{s:>10}" for s in SPLITS)]
    for label in classes:
        lines.append(f"{label:<{width}}  " + "  ".join(f"{c[(s, label)]:>10}" for s in SPLITS))
    lines.append(f"{'total':<{width}}  " + "  ".join(f"{sum(c[(s, l)] for l in classes):>10}" for s in SPLITS))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data.synth", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="output folder for train/validation/test.jsonl")
    parser.add_argument("--n", type=int, default=12000, help="number of messages (all splits together)")
    parser.add_argument("--seed", type=int, default=0, help="seed: fixes texts and the template split")
    args = parser.parse_args(argv)
    paths = write_corpus(args.out, args.n, args.seed)
    rows = [json.loads(line) for p in paths.values() for line in p.read_text(encoding="utf-8").splitlines()]
    print(counts_table(rows))
    for split, path in paths.items():
        print(f"{split}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
