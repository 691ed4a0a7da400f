"""Where a CPU training step goes, and what the speed settings buy: the SMS config's real batches,
timed under each recipe in the same run, the recipes taking turns round by round.

    python -m bench.train_step [--config configs/sms.yaml] [--batches 12] [--rounds 3] [--out artifacts/bench-train]
    make bench-train

The batches are drawn as the Trainer draws them (length-grouped, the config's batch size and
augmentation), once, and every recipe runs the same ones: forward, backward and the AdamW step,
timed apart. The recipes:

- `before`: the base model's attention dropout (m3e-small: 0.1) and fp32, what configs/sms.yaml
  trained with until issue 20;
- `no_attention_dropout`: attention_dropout 0, fp32 — PyTorch's SDPA takes its fused CPU kernel;
  with dropout it falls back to a path that draws batch x heads x length^2 masks;
- `no_attention_dropout_bf16`: the same with bf16 autocast, where the CPU computes bf16 natively
  (AVX512-BF16 / AMX; `precision: bf16-if-native`); left out on other CPUs.

On shared cores other work slows whichever recipe runs at that moment: the rounds alternate the
order and the table gives each recipe's median round, with the load average before and after.
Writes OUT/train_step.json and OUT/train_step.md; the projected epoch is steps per epoch times
the median step, not a timed training run.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import random
import statistics
import time
from pathlib import Path

RECIPES = ("before", "no_attention_dropout", "no_attention_dropout_bf16")


def sample_batches(cfg, n: int, seed: int = 1):
    """`n` batches as the Trainer would draw them, collated, plus the epoch's step count."""
    import tempfile

    import torch
    from transformers import AutoTokenizer
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from data.taxonomy import load_taxonomy
    from training.base_model import resolve
    from training.examples import load_splits, weights_from_counts
    from training.train import build_dataset, collate

    taxonomy = load_taxonomy(cfg.taxonomy)
    with tempfile.TemporaryDirectory() as work:
        splits, manifest = load_splits(cfg.data, taxonomy, Path(work))
    rows = splits["train"]
    tokenizer = AutoTokenizer.from_pretrained(resolve(cfg.base_model), do_lower_case=True)
    weights = weights_from_counts(manifest["labels"]["train"], taxonomy, cfg.class_weights)
    dataset = build_dataset(rows, tokenizer, taxonomy, cfg.max_length, weights, cfg.augment, cfg.seed)
    lengths = [min(len(r["text"]), cfg.max_length) for r in rows]
    order = list(LengthGroupedSampler(cfg.batch_size, lengths=lengths, generator=torch.Generator().manual_seed(cfg.seed)))
    batches = [order[i:i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
    picked = random.Random(seed).sample(range(len(batches)), min(n, len(batches)))
    return [collate([dataset[i] for i in batches[b]]) for b in picked], len(batches), len(taxonomy.classes), taxonomy


def time_recipe(recipe: str, cfg, batches, num_labels: int, warmup: int = 2) -> dict:
    """ms per step (forward, backward, optimizer) of a fresh model under `recipe` on `batches`."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from training.base_model import resolve
    from training.train import allowed_set_loss

    torch.manual_seed(cfg.seed)
    extra = {} if recipe == "before" else {"attention_probs_dropout_prob": 0.0}
    model = AutoModelForSequenceClassification.from_pretrained(resolve(cfg.base_model), num_labels=num_labels, **extra)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate)
    bf16 = recipe.endswith("bf16")

    def step(batch, clock):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss = allowed_set_loss(logits, batch["allowed"], batch["weight"])
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        if clock is not None:
            clock["forward"] += t1 - t0
            clock["backward"] += t2 - t1
            clock["optimizer"] += t3 - t2

    for batch in batches[:warmup]:
        step(batch, None)
    clock = {"forward": 0.0, "backward": 0.0, "optimizer": 0.0}
    for batch in batches:
        step(batch, clock)
    ms = {k: 1000 * v / len(batches) for k, v in clock.items()}
    ms["step"] = sum(ms.values())
    return ms


def run(cfg, n_batches: int, rounds: int, recipes: list[str]) -> dict:
    import torch

    from training import distributed

    torch.set_num_threads(distributed.cpu_threads(cfg.threads))
    load_before = [round(x, 2) for x in os.getloadavg()]
    batches, steps_per_epoch, num_labels, _ = sample_batches(cfg, n_batches)
    tokens = sum(int(b["attention_mask"].sum()) for b in batches)
    padded = sum(b["input_ids"].numel() for b in batches)
    per_round: dict[str, list[dict]] = {r: [] for r in recipes}
    for k in range(rounds):
        for recipe in (recipes if k % 2 == 0 else recipes[::-1]):
            per_round[recipe].append(time_recipe(recipe, cfg, batches, num_labels))
            print(f"[bench] round {k + 1}/{rounds} {recipe}: {per_round[recipe][-1]['step']:.0f} ms/step", flush=True)
    table = {}
    for recipe, results in per_round.items():
        median = statistics.median(r["step"] for r in results)
        best = min(results, key=lambda r: abs(r["step"] - median))
        table[recipe] = {**{k: round(v, 1) for k, v in best.items()}, "step_by_round": [round(r["step"], 1) for r in results],
                         "projected_epoch_min": round(steps_per_epoch * median / 60000, 1)}
    base = table["before"]["step"]
    for recipe in table:
        table[recipe]["speedup_vs_before"] = round(base / table[recipe]["step"], 2)
    return {"recipes": table, "batches": len(batches), "rounds": rounds, "batch_size": cfg.batch_size,
            "steps_per_epoch": steps_per_epoch, "tokens_per_batch": round(tokens / len(batches)),
            "padding": round(1 - tokens / padded, 4), "threads": torch.get_num_threads(),
            "native_bf16": distributed.cpu_has_native_bf16(), "load_avg_before": load_before,
            "load_avg_after": [round(x, 2) for x in os.getloadavg()], "time": time.strftime("%Y-%m-%d %H:%M:%S")}


def markdown(result: dict, command: str) -> str:
    lines = [f"Training step on {result['threads']} CPU threads, {result['batches']} batches of {result['batch_size']} "
             f"(~{result['tokens_per_batch']} tokens, {100 * result['padding']:.1f} % padding), median of "
             f"{result['rounds']} rounds; load average {result['load_avg_before']} -> {result['load_avg_after']}.",
             f"Command: `{command}`", "",
             "| recipe | forward ms | backward ms | optimizer ms | step ms | speed-up | projected epoch (min) |",
             "|---|---|---|---|---|---|---|"]
    for recipe, r in result["recipes"].items():
        lines.append(f"| {recipe} | {r['forward']} | {r['backward']} | {r['optimizer']} | {r['step']} | "
                     f"{r['speedup_vs_before']}x | {r['projected_epoch_min']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    from training.config import ConfigError, load_config
    from training.config import parse_overrides

    parser = argparse.ArgumentParser(prog="python -m bench.train_step", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/sms.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("artifacts/bench-train"))
    args = parser.parse_args(argv)
    if args.batches < 1 or args.rounds < 1:
        parser.error("--batches and --rounds must be >= 1")
    try:
        cfg = load_config(args.config, parse_overrides(args.set))
    except (ConfigError, OSError) as e:
        raise SystemExit(f"error: {e}") from e
    from training import distributed

    recipes = [r for r in RECIPES if not r.endswith("bf16") or distributed.cpu_has_native_bf16()]
    result = run(cfg, args.batches, args.rounds, recipes)
    command = "python -m bench.train_step " + " ".join(argv if argv is not None else sys.argv[1:])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train_step.json").write_text(json.dumps({**result, "command": command}, indent=2), encoding="utf-8")
    text = markdown(result, command.strip())
    (args.out / "train_step.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
