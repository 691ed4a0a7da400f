"""Checkpoints of an unfinished training run, and `fanzha train --resume`.

    fanzha train --config configs/sms.yaml            # checkpoints every save_steps into OUTPUT/checkpoints
    fanzha train --config configs/sms.yaml --resume   # after a crash: continue from the newest one

The Trainer writes OUTPUT/checkpoints/checkpoint-STEP (weights, optimizer, scheduler, RNG states,
trainer_state.json last) and prunes all but the newest `save_total_limit`; its
resume_from_checkpoint restores them and skips the batches already seen. Beside the checkpoints
lie the resolved config and the world size the run started with: resuming with anything else
would continue a different run, so it is refused, naming what differs. A finished run deletes
its checkpoints (the model artifact is then complete).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

# Keys that do not change the weights a run converges to; they may differ on resume.
RESUME_FREE = ("threads", "eval_batch_size", "eval_max_rows", "tracking", "save_steps", "save_total_limit",
               "certify_legit")


class ResumeError(ValueError):
    """There is nothing to resume, or the run to resume is not this one."""


def checkpoint_dir(out: Path) -> Path:
    return Path(out) / "checkpoints"


def step_of(checkpoint: Path) -> int:
    return int(re.fullmatch(r"checkpoint-(\d+)", checkpoint.name).group(1))


def latest(out: Path) -> Path | None:
    """The newest complete checkpoint (trainer_state.json is written last: a run killed while
    writing one leaves it without)."""
    folder = checkpoint_dir(out)
    done = [p for p in folder.glob("checkpoint-*") if re.fullmatch(r"checkpoint-\d+", p.name)
            and (p / "trainer_state.json").is_file()] if folder.is_dir() else []
    return max(done, key=step_of, default=None)


def _flat(value, prefix: str = "") -> dict:
    if isinstance(value, dict):
        return {k: v for key, sub in value.items() for k, v in _flat(sub, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): value}


def differences(before: dict, now: dict) -> list[str]:
    """'key: before -> now' for every setting that differs, except RESUME_FREE."""
    old, new = _flat(before), _flat(now)
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k) and k.split(".")[0] not in RESUME_FREE)
    return [f"{k}: {old.get(k, '(unset)')!r} -> {new.get(k, '(unset)')!r}" for k in keys]


def prepare(out: Path, config: dict, world_size: int, resume: bool, write: bool) -> Path | None:
    """The checkpoint to resume from (None: a fresh run). Refuses a fresh run over the checkpoints
    of an unfinished one, and a resume with another config or world size. With `write` (rank 0),
    records this run's config and world size beside the checkpoints."""
    folder = checkpoint_dir(out)
    newest = latest(out)
    if not resume:
        if newest is not None:
            raise ResumeError(f"{folder} holds the checkpoints of an unfinished run (newest: step {step_of(newest)}); "
                              f"add --resume to continue it, or delete {folder} to start afresh")
        if write:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "train_config.yaml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True),
                                                      encoding="utf-8")
            (folder / "launch.json").write_text(json.dumps({"world_size": world_size}), encoding="utf-8")
        return None
    if newest is None:
        raise ResumeError(f"--resume: no checkpoint in {folder} to resume from (train without --resume)")
    before = yaml.safe_load((folder / "train_config.yaml").read_text(encoding="utf-8"))
    launch = json.loads((folder / "launch.json").read_text(encoding="utf-8"))
    changed = differences(before, config)
    if launch["world_size"] != world_size:
        changed.append(f"world_size: {launch['world_size']} -> {world_size}")
    if changed:
        raise ResumeError(f"--resume: this config is not the one the run in {folder} started with; "
                          f"differs in {'; '.join(changed)}")
    return newest


def record_run_id(out: Path, run_id: str) -> None:
    """The tracking run of this training, so that a resumed run can say which one it continues."""
    path = checkpoint_dir(out) / "launch.json"
    launch = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps({**launch, "mlflow_run_id": run_id}), encoding="utf-8")


def earlier_run_id(out: Path) -> str | None:
    path = checkpoint_dir(out) / "launch.json"
    return json.loads(path.read_text(encoding="utf-8")).get("mlflow_run_id") if path.is_file() else None
