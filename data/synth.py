"""The embedded default corpus: synthetic Chinese SMS for every class of the taxonomy.

    python -m data.synth --out runs/synth --n 12000 --seed 0    # writes train/validation/test.jsonl

Why it exists: the public sets in `../shared/data` teach shortcuts (fraud texts there are long,
generated call scripts; "ham" is news fragments) and contain none of the verification-code,
bank and delivery notices that a filter must never block. This generator fills both gaps with
short, SMS-shaped messages: ~45% `normal` (of which ~58% legitimate notifications, including
hard negatives that mention 公安/法院/贷款/退款/客服), ~15% `spam`, ~40% fraud over the seven
fraud types. Templates are data (`data/synth_slots/*.yaml`); the template language is in
`data/synth_templates.py`.

Regions: besides mainland SMS, every pool has templates written in Traditional characters with
the vocabulary and scam scripts of Taiwan, Hong Kong and Macau (`region: tw` / `hk` / `mo` in
their YAML files: 中華郵政 / 監理站 / 蝦皮 / LINE / 八達通 / 轉數快 / MOP …), fraud and legitimate
notices and personal messages alike, so that neither the script nor the regional vocabulary tells
a class apart. `REGION_SHARE` (~30%) of each pool's messages come from its regional templates, so
regional legitimate rows outnumber regional fraud ones; training normalizes them to Simplified,
so what they add is the vocabulary, the channels (LINE / 賴, WhatsApp, Telegram / 飛機) and the
scripts. Templates of a *kind* (`region_tw.yaml`, `region_hk.yaml`, `region_mo.yaml`,
`mainland_kinds.yaml`: LINE 飆股 groups, 免聯徵 loans, points / unpaid-bill phishing of operators
and utilities, e-ticket and toll phishing, 解除分期, customs fees, LINE / WhatsApp jobs, 猜猜我是誰,
and per region their legitimate look-alikes) weigh `KIND_WEIGHT` against a general template.

Split by template, not by message: every message carries its template id as `group`, and a
template's messages all land in one split. Per stratum (`stratum_of`: pool and mainland /
regional for the general templates; pool, region and kind for the templates of a kind) the
templates are ordered by sha256(seed, template id) and cut ~70/15/15 into train/validation/test:
a general stratum gets at least one template on each side, a kind at least one in train and one
in test. So the held-out splits measure how well a model generalizes to *unseen phrasings* of
every class, of its regional variant and of every regional scam kind, rather than to new slot
values of a phrasing it has already memorised. The cut depends on the seed, not on Python's hash
salt.

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
# spam = 0.15, fraud = 0.42. fraud.other is a catch-all of many kinds (prizes, gambling, fake shops
# and tickets, game trades, romance without investment, fake charity, extortion); at 0.04 (before
# 2026-12-03) it had the fewest messages per template of any fraud pool, so it gets a fraud type's 0.06.
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
    "fraud.other": 0.06,
}
# Share of each pool's messages drawn from its regional (Taiwan / Hong Kong / Macau, Traditional
# script) templates; a pool without regional templates draws only mainland ones. 0.30 of every
# pool, so regional rows are ~30% of the corpus and regional legitimate rows (normal + spam,
# 0.6 of it) outnumber regional fraud ones: Traditional script or a LINE id never means fraud.
REGION_SHARE = 0.30
# Sampling weight of a template of a kind (data/synth_slots/region_tw.yaml ...: the regional scam
# types a model trained on the general templates missed, and their legitimate look-alikes) against
# a general template of its side: they are few per kind, and what the held-out test of a kind sees.
KIND_WEIGHT = 2.0
# Attempts to re-render a message whose exact text was already produced; after that a repeat
# is kept only if it stays inside one split (a text in two splits would leak).
_RETRIES = 6


def _key(seed: int, template_id: str) -> str:
    return hashlib.sha256(f"{seed}\0{template_id}".encode("utf-8")).hexdigest()


def stratum_of(t: Template) -> tuple[str, str, str]:
    """The unit the split is cut within: (pool, mainland | regional, "") for the general templates,
    (pool, region, kind) for the templates of a kind (a scam or notice type of one region)."""
    if t.kind:
        return t.pool, t.region, t.kind
    return t.pool, MAINLAND if t.region == MAINLAND else "regional", ""


def assign_splits(templates: list[Template], seed: int = 0) -> dict[str, str]:
    """template id -> split. Per stratum (`stratum_of`) the templates are ordered by
    sha256(seed, id) and cut ~70/15/15: a general stratum needs >= 3 templates and gets at least
    one on each side; a kind's stratum needs >= 2 and gets at least one in train and one in test
    (validation when it is large enough), so every kind is tested on phrasings never trained on."""
    by_stratum: dict[tuple[str, str, str], list[str]] = {}
    for t in templates:
        by_stratum.setdefault(stratum_of(t), []).append(t.id)
    out: dict[str, str] = {}
    for stratum in sorted(by_stratum):
        pool, region, kind = stratum
        ids = sorted(by_stratum[stratum], key=lambda tid: (_key(seed, tid), tid))
        need = 2 if kind else len(SPLITS)
        if len(ids) < need:
            what = f"{pool} ({region}{', ' + kind if kind else ''})"
            raise ValueError(f"pool {what} has {len(ids)} templates; needs >= {need}")
        n_val = round(len(ids) * SPLIT_SHARES[1]) if kind else max(1, round(len(ids) * SPLIT_SHARES[1]))
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
    """Within each side (mainland / regional) a template of a kind weighs KIND_WEIGHT, a general one
    1; the regional templates together get REGION_SHARE of the pool."""
    def own(t: Template) -> float:
        return KIND_WEIGHT if t.kind else 1.0

    regional = sum(own(t) for t in templates if t.region != MAINLAND)
    mainland = sum(own(t) for t in templates if t.region == MAINLAND)
    if not regional or not mainland:
        weights = [own(t) for t in templates]
    else:
        weights = [own(t) * (REGION_SHARE / regional if t.region != MAINLAND else (1 - REGION_SHARE) / mainland)
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
