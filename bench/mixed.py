"""The realistic length mix: ~3/4 short SMS, ~1/4 long scripts of 150–300 characters, through
the HTTP service under load and through raw ONNX Runtime on length-sorted batches of 64.

    python -m bench.run --model M --serving S --skip engines,service,chat,peer,normalize,score   # this part only

Messages are generated, never read from a corpus: `data.synth.generate` SMS, and long scripts
made by joining generated messages of one label (a scam script is several lures in a row) until
150–300 characters. Raw ORT is `Predictor.probabilities` on the served variant, tokenization
included, over the same messages sorted by length in batches of 64: the best a length-aware
batcher can do with no HTTP, no queueing and every message known in advance. A padded batch
costs (items × longest item), so a service that batches without looking at lengths makes a
63-SMS batch pay for one script's 256 tokens; `service_vs_sorted_ort` shows whether it does.
"""
from __future__ import annotations

import random
import time
from pathlib import Path

LONG_SHARE = 0.25
LONG_CHARS = (150, 300)


def messages(n: int, seed: int = 2024, long_share: float = LONG_SHARE) -> list[str]:
    """n generated messages, `long_share` of them scripts of LONG_CHARS characters, shuffled."""
    from data.synth import generate

    rows = generate(n * 4, seed=seed)
    rng = random.Random(seed)
    by_label: dict[str, list[str]] = {}
    for r in rows:
        by_label.setdefault(r["label"], []).append(r["text"])
    n_long = round(n * long_share)
    out = [r["text"] for r in rows[:n - n_long]]
    labels = sorted(by_label)
    while len(out) < n:
        pool = by_label[rng.choice(labels)]
        want = rng.randint(*LONG_CHARS)
        script = ""
        while len(script) < want:
            script += rng.choice(pool)
        if len(script) > LONG_CHARS[1]:
            script = script[:want]
        if len(script) >= LONG_CHARS[0]:
            out.append(script)
    rng.shuffle(out)
    return out


def sorted_ort(serving: Path, texts: list[str], variant: str | None, batch: int = 64, rounds: int = 1) -> dict:
    """msg/s of Predictor.probabilities (prepare + tokenize + ORT) on length-sorted batches, and
    the same batches in arrival order for comparison."""
    from data.encoding import prepare
    from serving.predictor import Predictor

    predictor = Predictor(serving, variant=variant)
    max_length = predictor.meta.max_length

    def rate(ordered: list[str]) -> float:
        batches = [ordered[i:i + batch] for i in range(0, len(ordered), batch)]
        fn = lambda b: predictor.probabilities([prepare(t, max_length, normalizer=predictor.normalize) for t in b])  # noqa: E731
        fn(batches[0])
        start = time.perf_counter()
        for _ in range(rounds):
            for b in batches:
                fn(b)
        return round(rounds * len(ordered) / (time.perf_counter() - start), 1)

    by_length = sorted(texts, key=len)
    return {"batch": batch, "sorted_msg_per_s": rate(by_length), "arrival_order_msg_per_s": rate(texts),
            "variant": variant}


def summary(texts: list[str]) -> dict:
    lengths = sorted(map(len, texts))
    return {"messages": len(texts), "median_chars": lengths[len(lengths) // 2],
            "over_150_chars": round(sum(n > 150 for n in lengths) / len(lengths), 3), "max_chars": lengths[-1]}


def ratios(part: dict) -> dict:
    levels = part["service"]["levels"]
    one = next((x["throughput_rps"] for x in levels if x["concurrency"] == 1), None)
    loaded = max((x["throughput_rps"] for x in levels if x["concurrency"] > 1), default=None)
    best = max(x["throughput_rps"] for x in levels)
    out = {}
    if one and loaded is not None:
        out["mixed_load_vs_one_client"] = round(loaded / one, 2)
    if part["ort"]["sorted_msg_per_s"]:
        out["mixed_service_vs_sorted_ort"] = round(best / part["ort"]["sorted_msg_per_s"], 2)
    return out
