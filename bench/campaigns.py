"""What the feedback campaigns cost and what they catch (serving/feedback), on the shared data.

    python -m bench.campaigns --serving artifacts/sms/serving [--sizes 10000,100000] [--out artifacts/bench/campaigns]

Part `campaigns` of `make bench`. For each store size, a SQLite store is filled with
analyst-confirmed reports: the fraud rows of telecom_fraud_texts, then (for 100k) the spam
rows of spam80w, then copies of those with other digits, another domain and a disguise
(data/obfuscate.py) up to the size. Then, through the served artifact's own normalization:

- load: reading the store and building the index (what a replica does at start);
- memory: what the index allocates (tracemalloc, on a second build), and the growth of this
  process's resident memory while the store was read and the index built;
- lookup: µs per message of `Matcher.decide_many` (the engine's campaign step) in batches of
  64, on held-out legitimate SMS (spam80w ham of the test split, split by data/hygiene.py),
  next to the model's own `Predictor.classify` of the same batches (the peer in this run);
- false matches: the share of those legitimate SMS a campaign decides (flag or block);
- variants: the share of fresh variants (other digits and domain, half of them with a disguise,
  a new seed) of 1000 stored fraud reports that a campaign blocks;
- POST -> block: a real `bentoml serve` on the 10k store, one new analyst report, then
  /classify on a variant of it until a campaign blocks it (one worker, and two workers sharing
  the file); seconds from the POST.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import resource
import shutil
import sys
import time
import urllib.request
from pathlib import Path

_DOMAIN = re.compile(r"(?:https?://)?(?:[a-z0-9-]+\.)+(?:cn|com|top|vip|net|cc)(?:/[a-z0-9]*)?", re.I)
KINDS = ("symbols", "homophone", "traditional", "digits", "spaces")


def variant(text: str, rng: random.Random, disguise: bool = True) -> str:
    """Another message of the same script: other digits, another domain, maybe one disguise."""
    from data.obfuscate import obfuscate

    text = _DOMAIN.sub(lambda m: f"{rng.choice(['pay', 'srv', 'hk', 'etc'])}-{rng.randint(1, 999)}.top", text)
    text = re.sub(r"\d", lambda m: str(rng.randint(0, 9)), text)
    if disguise and rng.random() < 0.5:
        text = obfuscate(text, rng.choice(KINDS), rng)
    return text


def corpora(limit_ham: int = 5000) -> dict:
    """fraud and spam texts, and held-out legitimate SMS (the test split of spam80w's ham)."""
    from data.hygiene import split_records
    from data.sources import load_spam80w, load_telecom_fraud_texts

    fraud = [r["text"] for r in load_telecom_fraud_texts() if r["label"].startswith("fraud")]
    sms = split_records(list(load_spam80w()))
    spam = [r["text"] for r in sms if r["label"] == "spam" and r["split"] == "train"]
    ham = [r["text"] for r in sms if r["label"] == "normal" and r["split"] == "test"]
    random.Random(0).shuffle(ham)
    return {"fraud": fraud, "spam": spam, "ham": ham[:limit_ham]}


def fill(store, data: dict, size: int, seed: int = 1) -> dict:
    rng = random.Random(seed)
    base = [(t, "fraud") for t in data["fraud"]] + ([(t, "spam") for t in data["spam"]] if size > 10_000 else [])
    rows, counts = [], {"fraud": 0, "spam": 0, "copies": 0}
    for text, label in base[:size]:
        rows.append((text, label))
        counts[label] += 1
    while len(rows) < size:
        text, label = base[rng.randrange(len(base))]
        rows.append((variant(text, rng), label))
        counts["copies"] += 1
    started = time.perf_counter()
    for text, label in rows:
        store.add(text, label, "analyst", note="bench")
    counts["insert_s"] = round(time.perf_counter() - started, 1)
    counts["stored_fraud_texts"] = [t for t, label in base[:size] if label == "fraud"]
    return counts


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def per_message_us(fn, batches, rounds: int = 3) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        n = 0
        for batch in batches:
            fn(batch)
            n += len(batch)
        best = min(best, (time.perf_counter() - started) / max(1, n) * 1e6)
    return round(best, 1)


def measure(serving: Path, size: int, data: dict, folder: Path, log=print) -> dict:
    from serving.feedback.campaigns import CampaignIndex, Campaigns
    from serving.feedback.store import open_store
    from serving.policy import Policy
    from serving.predictor import Predictor

    db = folder / f"campaigns-{size}.db"
    db.unlink(missing_ok=True)
    store = open_store(db)
    counts = fill(store, data, size)
    stored_fraud = counts.pop("stored_fraud_texts")
    predictor = Predictor(serving)
    rules = Policy.load(serving / "policy.yaml").campaigns
    rss0 = rss_mb()
    started = time.perf_counter()
    campaigns = Campaigns(store, lambda: rules, labels=predictor.labels)
    campaigns.sync()
    matcher = campaigns.matcher(predictor.normalize)
    load_s = time.perf_counter() - started
    memory = rss_mb() - rss0
    import tracemalloc

    tracemalloc.start()  # the index alone, built once more under tracemalloc
    index = CampaignIndex(predictor.normalize)
    for report in campaigns.reports.values():
        index.add(report)
    traced = tracemalloc.get_traced_memory()[0] / 2**20
    tracemalloc.stop()
    del index
    ham = [predictor.normalize(t) for t in data["ham"]]
    batches = [ham[i:i + 64] for i in range(0, len(ham), 64)]
    lookup = per_message_us(lambda b: matcher.decide_many(b, rules), batches)
    raw = [data["ham"][i:i + 64] for i in range(0, min(len(ham), 1280), 64)]
    model = per_message_us(lambda b: predictor.classify(b), raw, rounds=2)
    false = sum(d is not None for d in matcher.decide_many(ham, rules))
    rng = random.Random(99)
    fresh = [predictor.normalize(variant(t, rng)) for t in rng.sample(stored_fraud, min(1000, len(stored_fraud)))]
    caught = sum(d is not None and d[0] == "block" for d in matcher.decide_many(fresh, rules))
    part = {"stored": size, **counts, "templates_in_lsh": len(matcher.index.signature),
            "load_and_index_s": round(load_s, 1), "index_memory_mb": round(traced, 1),
            "process_rss_growth_mb": round(memory, 1),
            "lookup_us_per_msg": lookup, "model_us_per_msg": model,
            "lookup_vs_model": round(lookup / model, 3) if model else None,
            "legit_messages": len(ham), "false_matches": false, "false_match_rate": round(false / max(1, len(ham)), 5),
            "variants": len(fresh), "variants_blocked": caught, "variant_recall": round(caught / len(fresh), 3),
            "similarity": rules.similarity}
    log(f"[bench] campaigns {size}: {json.dumps(part, ensure_ascii=False)}")
    store.close()
    return part


def post_to_block(serving: Path, db: Path, data: dict, workers: int, log=print) -> dict:
    """Seconds from an analyst's POST /feedback to the first /classify (of a variant) a campaign blocks;
    with several workers, to the first 10 answers in a row that are blocked (each request may land
    on any worker)."""
    from bench import servers

    key = "bench-key"
    rng = random.Random(7 + workers)
    text = "【" + rng.choice(["顺丰", "中通", "京东"]) + "理赔】您的快递在运输中丢失，我们将为您办理" + \
           f"{rng.randint(100, 900)}元理赔，请添加客服QQ {rng.randint(10**8, 10**9)} 或点击 kd-pei{rng.randint(1, 99)}.cn 办理"
    probe = variant(text, rng, disguise=False)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}

    def call(path, body):
        request = urllib.request.Request(base + path, json.dumps(body, ensure_ascii=False).encode(), headers)
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.loads(r.read())

    env = {"FANZHA_FEEDBACK_DB": str(db), "FANZHA_API_KEY": key, "FANZHA_WORKERS": str(workers)}
    with servers.fanzha_service(serving, env) as base:
        started = time.perf_counter()
        call("/feedback", {"text": text, "label": "fraud", "source": "analyst"})
        posted = time.perf_counter() - started
        streak, requests = 0, 0
        while time.perf_counter() - started < 30 and streak < (1 if workers == 1 else 10):
            requests += 1
            reason = call("/classify", {"texts": [probe]})[0]["reason"]
            streak = streak + 1 if reason.startswith("campaign:") else 0
        seconds = time.perf_counter() - started
    part = {"workers": workers, "post_s": round(posted, 3), "blocked_after_s": round(seconds, 3),
            "classify_requests": requests, "blocked": streak > 0}
    log(f"[bench] campaigns POST->block: {part}")
    return part


def run(serving: Path, out: Path, sizes=(10_000, 100_000), log=print, quick: bool = False) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    data = corpora(500 if quick else 5000)
    result = {"sizes": [measure(serving, s, data, out, log) for s in sizes]}
    db = out / f"campaigns-{sizes[0]}.db"
    result["post_to_block"] = []
    for workers in (1, 2):
        copy = out / f"post-{workers}.db"
        shutil.copy(db, copy)
        result["post_to_block"].append(post_to_block(serving, copy, data, workers, log))
    return result


def markdown(part: dict) -> list[str]:
    lines = ["", "## Feedback campaigns (serving/feedback)", "",
             "| stored reports | templates in LSH | load + index s | index MB | lookup µs/msg | model µs/msg | "
             "lookup / model | legit SMS false-matched | fraud variants blocked |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for s in part["sizes"]:
        lines.append(f"| {s['stored']:,} | {s['templates_in_lsh']:,} | {s['load_and_index_s']} | {s['index_memory_mb']} | "
                     f"{s['lookup_us_per_msg']} | {s['model_us_per_msg']} | {s['lookup_vs_model']} | "
                     f"{s['false_matches']}/{s['legit_messages']} ({s['false_match_rate']:.2%}) | "
                     f"{s['variants_blocked']}/{s['variants']} ({s['variant_recall']:.1%}) |")
    for p in part.get("post_to_block", []):
        lines.append(f"\nPOST /feedback -> variant blocked, {p['workers']} worker(s): {p['blocked_after_s']} s "
                     f"(the POST itself {p['post_s']} s, {p['classify_requests']} /classify calls)")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.campaigns", description=__doc__.split("\n\n")[0])
    parser.add_argument("--serving", type=Path, required=True)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--out", type=Path, default=Path("artifacts/bench/campaigns"))
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.serving, args.out, tuple(int(s) for s in args.sizes.split(",")), quick=args.quick)
    (args.out / "campaigns.json").write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    print("\n".join(markdown(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
