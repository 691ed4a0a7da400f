"""Fine-tune a Chinese BERT-family encoder into a fanzha classifier.

    fanzha train --config configs/default.yaml [--set epochs=1 --set data.synthetic_n=2000] [--resume]
    torchrun --nproc_per_node 2 -m fanzha train --config ...      # DDP (training/distributed.py)

Writes the model artifact (PRODUCT.md): Hugging Face layout (`config.json` with `id2label`,
`model.safetensors`, tokenizer files) plus `train_config.yaml` (resolved config),
`metrics.json` (validation and test; `run`: world size, devices, precision, effective batch,
learning rate, MLflow run) and `data_manifest.json`. Checkpoints for `--resume`:
training/resume.py; tracking: training/tracking.py.

Loss: an example's label allows a set of classes (one class, or several for a coarse label
such as `not_fraud`); the loss is -log sum_{c allowed} p(c), weighted per class, so coarse
sources train the model without forcing a fine label.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from data.card import build_card, write_card
from data.encoding import configure_tokenizer, encode_ids, prepare
from data.normalize import default_table_path
from data.taxonomy import TaxonomyError, load_taxonomy
from training.base_model import resolve
from training.config import ConfigError, TrainConfig, load_config, parse_overrides, save_config
from training.examples import DataError, load_splits, weights_from_counts
from training.resume import ResumeError


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def allowed_set_loss(logits: torch.Tensor, allowed: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted mean of -log sum_{c in allowed} softmax(logits)_c."""
    log_p = torch.log_softmax(logits.float(), dim=-1)
    per_example = -torch.logsumexp(log_p.masked_fill(allowed == 0, float("-inf")), dim=-1)
    return (per_example * weight).sum() / weight.sum().clamp_min(1e-8)


def collate(features: list[dict]) -> dict[str, torch.Tensor]:
    longest = max(len(f["input_ids"]) for f in features)
    ids = torch.zeros((len(features), longest), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, f in enumerate(features):
        ids[i, : len(f["input_ids"])] = torch.tensor(f["input_ids"])
        mask[i, : len(f["input_ids"])] = 1
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "allowed": torch.tensor([f["allowed"] for f in features], dtype=torch.long),
        "weight": torch.tensor([f["weight"] for f in features], dtype=torch.float),
    }


def build_dataset(rows: list[dict], tokenizer, taxonomy, max_length: int, weights: dict[str, float],
                  augment: dict[str, float] | None = None, seed: int = 0, extra: dict[str, list] | None = None):
    """Examples tokenized on the fly, so fraud and spam texts can be disguised afresh each time
    they are drawn (adversarial augmentation, `augment`: obfuscation kind -> probability).
    A row whose label is None is unlabelled (every class allowed, weight 0: no labelled loss;
    `fanzha distill` trains it on the teacher alone); `extra`: more columns, one value per row,
    passed through to the batch (the teacher's distribution)."""
    from datasets import Dataset

    from data.obfuscate import Obfuscator

    obfuscator = Obfuscator(augment) if augment else None
    rng = random.Random(seed)
    backend = configure_tokenizer(tokenizer)  # the same set-up as evaluation, export and serving
    every = [1] * len(taxonomy.classes)
    labelled = [r["label"] is not None for r in rows]
    dataset = Dataset.from_dict({
        "text": [r["text"] for r in rows],
        "allowed": [taxonomy.allowed_mask(r["label"]) if known else every for r, known in zip(rows, labelled)],
        "weight": [weights.get(r["label"], 1.0) if known else 0.0 for r, known in zip(rows, labelled)],
        # Disguise only messages that are certainly fraud or spam: a legitimate text never is.
        "disguise": [known and all(not c.startswith("normal") for c in taxonomy.allowed(r["label"]))
                     for r, known in zip(rows, labelled)],
        # For length-grouped batching (less padding): characters approximate Chinese tokens.
        "length": [min(len(r["text"]), max_length) for r in rows],
        **(extra or {}),
    })
    passed = ("allowed", "weight", "length", *(extra or {}))

    def transform(batch: dict) -> dict:
        if "text" not in batch:  # a column read such as dataset["length"] by the length sampler
            return batch
        texts = batch["text"]
        if obfuscator is not None:
            texts = [obfuscator.augment(t, rng) if d else t for t, d in zip(texts, batch["disguise"])]
        ids = encode_ids(backend, [prepare(t, max_length) for t in texts], max_length)
        return {"input_ids": ids, **{k: batch[k] for k in passed}}

    dataset.set_transform(transform)
    return dataset


def trainer_class():
    """The Trainer with the allowed-set loss (`loss`; a subclass may add terms: training/distill.py)."""
    from transformers import Trainer

    class AllowedSetTrainer(Trainer):
        extra_inputs: tuple[str, ...] = ()  # batch keys `loss` takes besides allowed and weight

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            allowed, weight = inputs.pop("allowed"), inputs.pop("weight")
            extra = {k: inputs.pop(k) for k in self.extra_inputs}
            outputs = model(**inputs)
            loss = self.loss(outputs.logits, allowed, weight, **extra)
            return (loss, outputs) if return_outputs else loss

        def loss(self, logits, allowed, weight):
            """The labelled loss (training/distill.py adds the teacher's term to it)."""
            loss = allowed_set_loss(logits, allowed, weight)
            if self.args.world_size > 1:  # DDP averages the ranks' gradients: make that the global weighted mean
                import torch.distributed as dist

                total = weight.sum().detach().clone()
                dist.all_reduce(total)
                loss = loss * (weight.sum().clamp_min(1e-8) / total.clamp_min(1e-8)) * self.args.world_size
            return loss

        def _get_train_sampler(self, train_dataset=None):
            # Length groups built from the global batch, not the per-process one: DDP then shards
            # the very batches a single process with that batch size would draw.
            sampler = super()._get_train_sampler(train_dataset)
            if hasattr(sampler, "lengths") and hasattr(sampler, "batch_size"):  # LengthGroupedSampler
                sampler.batch_size *= self.args.world_size
            return sampler

    return AllowedSetTrainer


STALE_OUTPUTS = ("calibration.json", "eval")  # fitted on / computed from the weights this run replaces


def remove_stale_outputs(out: Path) -> list[str]:
    """Training into an existing model folder replaces its weights: the calibration and the
    evaluation of the old weights no longer describe the folder, so they go (and we say so)."""
    removed = []
    for name in STALE_OUTPUTS:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        else:
            continue
        removed.append(name)
    if removed:
        print(f"[fanzha] {out} held outputs of earlier weights; removed {', '.join(removed)} "
              f"(run `fanzha evaluate {out} DATA` after training to refit and re-evaluate)", flush=True)
    return removed


def keep_input_tables(cfg: TrainConfig, out: Path) -> None:
    """The normalization table and the taxonomy this model is trained with, kept in the model
    artifact (`variants.yaml`, `taxonomy.yaml`): `fanzha export` ships these copies, so a later
    edit of configs/ never reaches the serving artifact of this model."""
    shutil.copy(default_table_path(), out / "variants.yaml")
    shutil.copy(cfg.taxonomy, out / "taxonomy.yaml")


class TrainingRun:
    """One training's set-up, shared by `fanzha train` and `fanzha distill` (training/distill.py):
    ranks, device, precision, the checkpoint to resume from, and the deterministic data splits.
    `config`: what the run is (checkpoints refuse a resume with another, MLflow logs it). `data`:
    (splits, manifest) already loaded for this config's `data` (`load_run_data`): a soup's members
    and the soup itself share one load (training/soup.py)."""

    def __init__(self, cfg: TrainConfig, resume: bool, config: dict | None = None, data: tuple | None = None):
        from training import distributed, resume as checkpoints

        self.cfg, self.config, self.started = cfg, config or cfg.to_dict(), time.time()
        self.main_rank, self.world = distributed.is_main(), distributed.world_size()
        set_seed(cfg.seed)
        torch.set_num_threads(distributed.cpu_threads(cfg.threads))
        self.cuda = torch.cuda.is_available()
        self.precision = distributed.resolve_precision(cfg.precision, self.cuda)
        self.taxonomy = load_taxonomy(cfg.taxonomy)
        self.out = out = Path(cfg.output_dir)
        self.resume_from = checkpoints.prepare(out, self.config, self.world, resume, write=self.main_rank)
        out.mkdir(parents=True, exist_ok=True)
        if self.main_rank:
            remove_stale_outputs(out)
            keep_input_tables(cfg, out)
        self.splits, self.manifest = data or load_run_data(cfg, self.taxonomy)
        self.weights = weights_from_counts(self.manifest["labels"]["train"], self.taxonomy, cfg.class_weights)


def load_run_data(cfg: TrainConfig, taxonomy) -> tuple[dict, dict]:
    """The deterministic splits and data manifest of `cfg.data`, generated under OUTPUT/_work."""
    from training import distributed

    rank = f"rank{distributed.rank()}" if distributed.world_size() > 1 else ""  # no two processes write one file
    work = Path(cfg.output_dir) / "_work" / rank
    splits, manifest = load_splits(cfg.data, taxonomy, work)
    print(f"[fanzha] data: {manifest['rows']}  train labels: {manifest['labels']['train']}", flush=True)
    return splits, manifest


def train(cfg: TrainConfig, resume: bool = False, data: tuple | None = None) -> Path:
    """Train and write the model artifact. Under torchrun / accelerate launch every process runs
    this: each loads the same deterministic splits (checked), the Trainer runs DDP, and rank 0
    alone writes the artifact, the data card, the reports and the MLflow run. `data`: the splits
    and manifest already loaded for this config's data (`load_run_data`; a soup's members)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if cfg.soup > 1:
        from training.soup import train_soup

        return train_soup(cfg, resume)
    run = TrainingRun(cfg, resume, data=data)
    base = resolve(cfg.base_model)
    tokenizer = AutoTokenizer.from_pretrained(base, do_lower_case=True)
    dropout = {} if cfg.attention_dropout is None else {"attention_probs_dropout_prob": cfg.attention_dropout}
    model = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=len(run.taxonomy.classes), id2label=run.taxonomy.id2label, label2id=run.taxonomy.label2id,
        **dropout)
    train_ds = build_dataset(run.splits["train"], tokenizer, run.taxonomy, cfg.max_length, run.weights, cfg.augment,
                             cfg.shuffle_seed)
    return fit(run, model, tokenizer, train_ds, trainer_class(), collate)


def training_arguments(cfg: TrainConfig, run: TrainingRun, total_steps: int):
    from transformers import TrainingArguments

    from training import distributed, resume as checkpoints

    return TrainingArguments(
        output_dir=str(checkpoints.checkpoint_dir(run.out)),
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
        warmup_steps=int(cfg.warmup_ratio * total_steps),
        lr_scheduler_type="linear",
        logging_steps=max(1, min(50, total_steps // 10)),
        save_strategy="steps" if cfg.save_steps else "no",
        save_steps=cfg.save_steps or 500,
        save_total_limit=cfg.save_total_limit,
        report_to=["mlflow"] if cfg.tracking == "mlflow" and run.main_rank else "none",
        use_cpu=not run.cuda,
        **distributed.precision_args(run.precision),
        seed=cfg.shuffle_seed,
        data_seed=cfg.shuffle_seed,
        remove_unused_columns=False,
        train_sampling_strategy="group_by_length",  # batches of similar length: SMS short, scripts long
        length_column_name="length",
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,  # every parameter takes part (else an extra autograd pass per step)
        disable_tqdm=not run.main_rank,
    )


def fit(run: TrainingRun, model, tokenizer, train_ds, trainer_class, data_collator, command: str = "train",
        curves: dict[str, str] | None = None, records: dict[str, dict] | None = None) -> Path:
    """Run the Trainer (checkpoints, resume, MLflow) and write the model artifact. `curves`:
    metrics.json key -> logged value (default: loss_curve <- loss); `records`: extra JSON files
    written into the artifact (and logged)."""
    from training import distributed, resume as checkpoints, tracking
    from training.evaluate import evaluate_rows

    cfg, out, world, main_rank = run.cfg, run.out, run.world, run.main_rank
    effective_batch = cfg.batch_size * world * cfg.gradient_accumulation_steps
    steps_per_epoch = math.ceil(len(train_ds) / effective_batch)
    total_steps = cfg.max_steps if cfg.max_steps > 0 else math.ceil(steps_per_epoch * cfg.epochs)
    args = training_arguments(cfg, run, total_steps)
    devices = distributed.gather(distributed.device_name(args.device))  # args.device sets up DDP
    # Every process must train on the same rows (DDP shards one sequence of batches among them).
    data_digests = distributed.gather(fingerprint_rows(run.splits["train"]))
    if len(set(data_digests)) > 1:
        raise DataError(f"the processes loaded different training data (sha256 per rank: {data_digests})")
    info = {"world_size": world, "devices": devices, "precision": run.precision,
            "per_device_batch_size": cfg.batch_size, "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
            "effective_batch_size": effective_batch, "learning_rate": cfg.learning_rate}
    trainer = trainer_class(model=model, args=args, train_dataset=train_ds, data_collator=data_collator)
    print(f"[fanzha] training {out} (from {cfg.base_model}) for {total_steps} steps ({len(train_ds)} examples, batch "
          f"{cfg.batch_size} x {world} process(es) x {cfg.gradient_accumulation_steps} = {effective_batch}, "
          f"{run.precision} on {', '.join(sorted(set(devices)))})", flush=True)
    tags = {"world_size": world, "precision": run.precision, "model_dir": out}
    resume_from = run.resume_from
    if resume_from is not None:
        info["resumed_from_step"] = tags["resumed_from_step"] = checkpoints.step_of(resume_from)
        print(f"[fanzha] resuming from step {info['resumed_from_step']} ({resume_from})", flush=True)
    with tracking.training_run(cfg.tracking == "mlflow" and main_rank, out, tags,
                               checkpoints.earlier_run_id(out) if resume_from is not None else None,
                               command=command) as tracked:
        if tracked is not None:
            info["mlflow"] = tracked.info
            checkpoints.record_run_id(out, tracked.id)
            tracked.log_inputs(run.config, run.manifest)
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from is not None else None)
        train_seconds = time.time() - run.started
        if not main_rank:
            return out  # rank 0 writes the artifact
        history = trainer.state.log_history
        metrics = {"train_seconds": round(train_seconds, 1), "train_steps": total_steps, "run": info}
        for name, key in (curves or {"loss_curve": "loss"}).items():
            metrics[name] = [round(h[key], 4) for h in history if key in h]
        write_artifact(cfg, out, model.to("cpu").float().eval(), tokenizer, run.taxonomy, run.splits, run.manifest,
                       run.weights, metrics, evaluate_rows)
        for name, record in (records or {}).items():
            (out / name).write_text(json.dumps(record, indent=2, ensure_ascii=False), encoding="utf-8")
        if tracked is not None:
            tracked.log_results(json.loads((out / "metrics.json").read_text(encoding="utf-8")), out, extra=tuple(records or ()))
    shutil.rmtree(checkpoints.checkpoint_dir(out), ignore_errors=True)  # the artifact is complete
    print(f"[fanzha] model artifact written to {out} in {time.time() - run.started:.0f}s", flush=True)
    return out


def fingerprint_rows(rows: list[dict]) -> str:
    import hashlib

    return hashlib.sha256("\n".join(f"{r['label']}\t{r['text']}" for r in rows).encode()).hexdigest()


def write_artifact(cfg: TrainConfig, out: Path, model, tokenizer, taxonomy, splits: dict, manifest: dict,
                   weights: dict, metrics: dict, evaluate_rows, bias_corrected: bool = False) -> None:
    """`bias_corrected`: the model's bias already holds the prior correction (a soup of corrected
    members), which is then recorded and not applied again."""
    if weights and cfg.prior_correction:  # the weights' prior shift comes out of the bias (training/prior.py)
        from training.prior import correct_model, log_weights, record

        shift = log_weights(weights, taxonomy.classes)
        if not bias_corrected:
            correct_model(model, shift)
        record(out, shift, taxonomy.classes, cfg.class_weights)
    model.save_pretrained(out)  # safetensors
    tokenizer.save_pretrained(out)
    save_config(cfg, out / "train_config.yaml")
    for split in ("validation", "test"):
        rows = splits[split]
        if cfg.eval_max_rows and len(rows) > cfg.eval_max_rows:
            rows = random.Random(cfg.seed).sample(rows, cfg.eval_max_rows)
        if rows:
            metrics[split] = evaluate_rows(model, tokenizer, rows, taxonomy, cfg.max_length, cfg.eval_batch_size)
            print(f"[fanzha] {split}: accuracy {metrics[split]['accuracy']:.4f} "
                  f"macro-F1 {metrics[split]['macro_f1']:.4f}", flush=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False), encoding="utf-8")
    (out / "data_manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    write_card(build_card([dict(r, split=s) for s, rows in splits.items() for r in rows], feedback=manifest["feedback"]),
               out / "data_card.json", out / "data_card.md")  # counts and lengths: shortcuts in plain sight
    shutil.rmtree(out / "_work", ignore_errors=True)  # regenerable; the manifest fingerprints it


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="fanzha train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/default.yaml", help="YAML config (overrides defaults)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config key, e.g. --set epochs=1 --set data.synthetic_n=500")
    parser.add_argument("--output", help="output folder (same as --set output_dir=...)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest checkpoint in output_dir (same config required)")
    args = parser.parse_args(argv)
    overrides = parse_overrides(args.set)
    if args.output:
        overrides["output_dir"] = args.output
    try:
        train(load_config(args.config, overrides), resume=args.resume)
    except (ConfigError, DataError, TaxonomyError, ResumeError) as e:  # the config or the data: say what, no traceback
        print(f"fanzha train: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
