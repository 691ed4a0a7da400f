"""A uniform model soup: `soup: N` in a training config trains N members and serves their mean.

    fanzha train --config configs/sms.yaml             # soup: 2 there
    fanzha train --config configs/sms.yaml --resume    # after a crash: finished members are kept

Every member starts from the same initialization (the base model and a classifier head drawn
from `seed`) and trains on the same rows; member k differs only in its shuffling, augmentation
and dropout, which follow `order_seed` = seed + k (member 0 is exactly the single model `soup: 1`
trains). The artifact's weights are the members' element-wise mean (Wortsman et al. 2022, "Model
soups"): one model, served at one model's cost.

Why: one SMS training's figures move with its seed by more than issue 19's margins.
configs/sms.yaml is a soup of two members of half an epoch each (`epochs` is per member), so it
costs one epoch of one model (PRODUCT.md: <= 30 minutes on 2 CPU cores); at the same data as the
one-epoch model it replaced, the independent probes' fraud-type macro-F1 went from 0.905 to 0.917
and the legitimate probes blocked from 4 of 131 to 0, for 1.5 points of in-distribution macro-F1
(docs/data-training.md, "Model soups"). The members must share the head's initialization: it
barely moves in training (cosine 0.997 between two members' classifier weights), so a head drawn
from another seed is another head (cosine 0.012), and that mean scored 0.846, below both members.

The members are trained into OUTPUT/_members/order-seed-K (each a complete model artifact, so a
killed run resumes member by member: a finished member is kept if it was trained with this config
on these rows, by the data manifest's checksums, and trained again if not) and removed once the
soup is written; their validation and test figures stay in the soup's metrics.json
`soup.members`. The splits are loaded once, for every member and the soup. The soup's artifact is
written as a single training's (training/train.py `write_artifact`): evaluation, data manifest and
card, the input tables, and its own MLflow run.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path

import yaml

from training import resume as checkpoints
from training.config import TrainConfig
from training.examples import DataError

MEMBERS = "_members"


def members_dir(out: str | Path) -> Path:
    return Path(out) / MEMBERS


def member_config(cfg: TrainConfig, k: int) -> TrainConfig:
    """Member k of the soup `cfg` describes: the same config with order_seed + k, into its own folder."""
    seed = cfg.shuffle_seed + k
    return dataclasses.replace(cfg, soup=1, order_seed=seed,
                               output_dir=str(members_dir(cfg.output_dir) / f"order-seed-{seed}"))


def finished(member: TrainConfig) -> bool:
    """The member's artifact is complete and was trained with this very config."""
    out = Path(member.output_dir)
    if checkpoints.latest(out) is not None or not (out / "model.safetensors").is_file() or not (
            out / "metrics.json").is_file() or not (out / "train_config.yaml").is_file():
        return False
    before = yaml.safe_load((out / "train_config.yaml").read_text(encoding="utf-8"))
    return not checkpoints.differences(before, member.to_dict())


def average_weights(folders: list[Path]) -> dict:
    """The element-wise mean of the members' model.safetensors (float32 sums, stored in the first's dtypes)."""
    from safetensors.torch import load_file

    states = [load_file(Path(f) / "model.safetensors") for f in folders]
    keys = list(states[0])
    for folder, state in zip(folders[1:], states[1:]):
        if set(state) != set(keys) or any(state[k].shape != states[0][k].shape for k in keys):
            raise DataError(f"soup: {folder} is not the same architecture as {folders[0]}")
    return {k: (sum(s[k].float() for s in states) / len(states)).to(states[0][k].dtype) for k in keys}


def _data_fingerprint(manifest: dict) -> list:
    """What the rows were (checksums and counts), not where they were written."""
    return [(f["sha256"], f["rows"]) for f in manifest["files"]], manifest["rows"], manifest["labels"]


def trained_on(folder: Path, manifest: dict) -> bool:
    """Whether the member in `folder` was trained on the rows `manifest` describes (checksums and counts)."""
    trained = json.loads((Path(folder) / "data_manifest.json").read_text(encoding="utf-8"))
    return _data_fingerprint(trained) == _data_fingerprint(manifest)


def train_soup(cfg: TrainConfig, resume: bool = False) -> Path:
    """Train the members (skipping, with `resume`, those already finished on these very rows) and
    write the soup. The data is loaded once, for every member and the soup alike."""
    from data.taxonomy import load_taxonomy
    from training import distributed
    from training.train import load_run_data, train

    started, out = time.time(), Path(cfg.output_dir)
    data = load_run_data(cfg, load_taxonomy(cfg.taxonomy))
    members = [member_config(cfg, k) for k in range(cfg.soup)]
    for k, member in enumerate(members):
        if resume and finished(member):
            if trained_on(Path(member.output_dir), data[1]):
                print(f"[fanzha] soup member {k + 1} of {cfg.soup} ({member.output_dir}) is already trained", flush=True)
                continue
            # the same config on other rows (a corpus rewritten, the generator changed): not this soup's member
            print(f"[fanzha] soup member {k + 1} of {cfg.soup} ({member.output_dir}) was trained on other rows than "
                  "this config loads now: training it again", flush=True)
            shutil.rmtree(member.output_dir)
        print(f"[fanzha] soup member {k + 1} of {cfg.soup}: order_seed {member.order_seed} -> {member.output_dir}",
              flush=True)
        train(member, resume=resume and checkpoints.latest(Path(member.output_dir)) is not None, data=data)
    if not distributed.is_main():
        return out  # rank 0 writes the soup
    write_soup(cfg, [Path(m.output_dir) for m in members], started, data)
    shutil.rmtree(members_dir(out), ignore_errors=True)
    print(f"[fanzha] soup of {cfg.soup} written to {out} in {time.time() - started:.0f}s", flush=True)
    return out


def write_soup(cfg: TrainConfig, folders: list[Path], started: float, data: tuple | None = None) -> None:
    """The members' mean in `folders`, written as `cfg`'s model artifact; `data`: the loaded splits
    and manifest (`load_run_data`), else loaded here. A member trained on other rows is refused."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from training import tracking
    from training.evaluate import evaluate_rows
    from training.train import TrainingRun, write_artifact

    run = TrainingRun(cfg, resume=False, data=data)
    out = run.out
    records = []
    for folder in folders:
        if not trained_on(folder, run.manifest):
            raise DataError(f"soup: {folder} was trained on other rows than {out}'s config loads now "
                            "(the generator or a corpus changed between members); retrain without --resume")
        member = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
        config = yaml.safe_load((folder / "train_config.yaml").read_text(encoding="utf-8"))
        records.append({"order_seed": config["order_seed"], "train_seconds": member.get("train_seconds"),
                        "train_steps": member.get("train_steps"),
                        **{split: {k: member[split][k] for k in ("accuracy", "macro_f1") if k in member[split]}
                           for split in ("validation", "test") if split in member}})
    model = AutoModelForSequenceClassification.from_pretrained(folders[0])
    model.load_state_dict(average_weights(folders), strict=True)
    tokenizer = AutoTokenizer.from_pretrained(folders[0])
    first = json.loads((folders[0] / "metrics.json").read_text(encoding="utf-8"))
    metrics = {"train_seconds": round(time.time() - started, 1),
               "train_steps": sum(r["train_steps"] or 0 for r in records),
               "run": {k: v for k, v in first.get("run", {}).items() if k != "mlflow"},
               "soup": {"members": records}}
    with tracking.training_run(cfg.tracking == "mlflow", out, {"soup": cfg.soup, "model_dir": out}) as tracked:
        if tracked is not None:
            metrics["run"]["mlflow"] = tracked.info
            tracked.log_inputs(run.config, run.manifest)
        # each member's bias is already prior-corrected, by the same shift: so is their mean
        write_artifact(cfg, out, model.float().eval(), tokenizer, run.taxonomy, run.splits, run.manifest, run.weights,
                       metrics, evaluate_rows, bias_corrected=True)
        if tracked is not None:
            tracked.log_results(json.loads((out / "metrics.json").read_text(encoding="utf-8")), out)
    shutil.rmtree(checkpoints.checkpoint_dir(out), ignore_errors=True)
