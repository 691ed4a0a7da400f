"""Distil a trained model into a smaller student (knowledge distillation).

    fanzha distill --teacher artifacts/sms/model --config configs/sms-student.yaml [--set distill.alpha=0.5] [--resume]
    fanzha distill --teacher T --champion artifacts/sms-v2/model --config configs/sms-student.yaml   # two teachers

Writes a model artifact with exactly `fanzha train`'s layout and contracts (training/train.py:
`fit` and `write_artifact` are shared), so `fanzha export`, `fanzha evaluate` and `fanzha promote`
take it unchanged, plus `distill.json`: the teacher (path, weights digest), the champion if any,
the settings and the transfer set. The student is cut from the teacher (training/teacher.py).

Loss per batch: alpha * T^2 * KL(p || softmax(student / T)) + (1 - alpha) * the labelled loss of
`fanzha train` (the allowed-set loss, so coarse sources stay coarse), where p is the teacher's
tempered distribution on the clean text (averaged with the champion's when one is given). The
transfer set is the training split of the data config (same loader, same deterministic splits:
validation and test stay unseen) plus an unlabelled pool, which has the KL term only: every row
of `transfer_sources` (the 80万 SMS) in the corpus folders' train.jsonl (all of them, not only
those data.caps kept), and disguised copies of the synthetic fraud/spam training texts, whose
target is the teacher on the clean original (what the student should say on a disguise).
Checkpoints, --resume and MLflow are `fanzha train`'s; a resume refuses another config,
teacher or champion, naming what differs. docs/distill.md has the whole story.
"""
from __future__ import annotations

import argparse
import random
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from data.taxonomy import TaxonomyError
from training.config import ConfigError, TrainConfig, apply_overrides, build, option, read_extending
from training.examples import DataError, read_jsonl
from training.resume import ResumeError

SETTINGS_FREE = ("teacher_batch_size", "logits_cache")  # do not change the student's weights


@dataclass
class DistillConfig:
    student_layers: list = option("the teacher's encoder layers the student keeps (0-based, increasing)", [0, 3])
    temperature: float = option("softening temperature T of both distributions in the KL term", 2.0)
    alpha: float = option("weight of the KL term; 1 - alpha weighs the labelled loss", 0.7)
    champion_weight: float = option("with --champion: its share of the target distribution (the teacher's: 1 - this)",
                                    0.5)
    transfer_sources: list = option("sources whose rows in data.corpus_dirs' train.jsonl join the unlabelled pool "
                                    "(all of them, before data.caps)", ["spam80w"])
    transfer_disguised: int = option("disguised copies of each synthetic fraud/spam training text in the pool "
                                     "(kinds: the config's augment, else all)", 1)
    transfer_max_rows: int = option("at most this many unlabelled pool rows, a seeded sample (0: all)", 0)
    teacher_batch_size: int = option("batch size of the teacher's scoring pass", 128)
    logits_cache: str = option("folder of the teacher-logit cache ('': $FANZHA_CACHE/teacher_logits)", "")

    def __post_init__(self):
        if not self.student_layers or not all(isinstance(i, int) and not isinstance(i, bool) for i in self.student_layers):
            raise ConfigError(f"distill.student_layers must be a list of layer indices, got {self.student_layers!r}")
        if self.temperature <= 0:
            raise ConfigError(f"distill.temperature must be > 0, got {self.temperature}")
        for key in ("alpha", "champion_weight"):
            if not 0 <= getattr(self, key) <= 1:
                raise ConfigError(f"distill.{key} must be within [0, 1], got {getattr(self, key)}")
        if self.transfer_disguised < 0 or self.transfer_max_rows < 0 or self.teacher_batch_size < 1:
            raise ConfigError("distill.transfer_disguised and transfer_max_rows must be >= 0, teacher_batch_size >= 1")


def load_distill_config(path: str | Path | None, overrides: dict | None = None) -> tuple[TrainConfig, DistillConfig]:
    """(training config, distillation settings): the file's `distill:` section and `distill.*` overrides go to the latter."""
    raw = apply_overrides(read_extending(Path(path)) if path else {}, overrides)
    settings = build(DistillConfig, raw.pop("distill", None) or {}, f"{path or 'config'}: distill")
    cfg = build(TrainConfig, raw, str(path or "config"))
    if cfg.soup != 1:  # a soup of students would need a soup of distillations; train one student
        raise ConfigError(f"soup={cfg.soup}: fanzha distill trains one student (soup is a fanzha train setting; "
                          "distill from a soup teacher instead)")
    return cfg, settings


def transfer_pool(cfg: TrainConfig, settings: DistillConfig, splits: dict, taxonomy) -> list[dict]:
    """The unlabelled rows (label None; `target`: the text the teacher scores), none of whose texts
    is in any split (the held-out ones stay unseen, training rows are there already)."""
    from data.obfuscate import KINDS, Obfuscator

    seen = {r["text"] for rows in splits.values() for r in rows}
    pool: list[dict] = []
    wanted, found = set(settings.transfer_sources), set()
    for folder in map(Path, cfg.data.corpus_dirs):
        for row in read_jsonl(folder / "train.jsonl"):
            source = row.get("source", folder.name)
            if source in wanted and row["text"] not in seen:
                seen.add(row["text"])
                found.add(source)
                pool.append({"text": row["text"], "target": row["text"], "label": None, "source": source})
    if cfg.data.corpus_dirs and wanted - found:
        raise DataError(f"distill.transfer_sources: no new train.jsonl rows of {sorted(wanted - found)} in "
                        f"{cfg.data.corpus_dirs}")
    kinds = sorted(k for k, p in cfg.augment.items() if p > 0) or list(KINDS)
    rng, obfuscator = random.Random(cfg.seed), Obfuscator({})
    for row in splits["train"]:
        if row.get("source") != "synthetic" or any(c.startswith("normal") for c in taxonomy.allowed(row["label"])):
            continue  # only messages certainly fraud or spam are disguised, as in training
        for _ in range(settings.transfer_disguised):
            text = obfuscator.obfuscate(row["text"], rng.choice(kinds), rng)
            if text not in seen:
                seen.add(text)
                pool.append({"text": text, "target": row["text"], "label": None, "source": "synthetic:disguised"})
    if settings.transfer_max_rows and len(pool) > settings.transfer_max_rows:
        keep = sorted(random.Random(cfg.seed).sample(range(len(pool)), settings.transfer_max_rows))
        pool = [pool[i] for i in keep]
    return pool


def _distill_trainer(settings: DistillConfig):
    from training.train import trainer_class

    class DistillTrainer(trainer_class()):
        extra_inputs = ("soft",)

        def loss(self, logits, allowed, weight, soft):
            t = settings.temperature
            log_q = torch.log_softmax(logits.float() / t, dim=-1)
            kl = (soft * (torch.log(soft.clamp_min(1e-12)) - log_q)).sum(-1).mean()
            labelled = super().loss(logits, allowed, weight)
            if self.model.training:
                parts = self.__dict__.setdefault("_parts", {"kl": [], "labelled_loss": []})
                parts["kl"].append(kl.item())
                parts["labelled_loss"].append(labelled.item())
            return settings.alpha * t * t * kl + (1 - settings.alpha) * labelled

        def log(self, logs, *args, **kwargs):
            parts = self.__dict__.pop("_parts", None)
            if parts and "loss" in logs:  # the two terms since the last log line, beside the Trainer's loss
                logs = {**logs, **{k: round(sum(v) / len(v), 4) for k, v in parts.items()}}
            return super().log(logs, *args, **kwargs)

    return DistillTrainer


def distill_collate(features: list[dict]) -> dict:
    from training.train import collate

    batch = collate(features)
    batch["soft"] = torch.tensor([f["soft"] for f in features], dtype=torch.float)
    return batch


def distill(cfg: TrainConfig, settings: DistillConfig, teacher: Path, champion: Path | None = None,
            resume: bool = False) -> Path:
    """Train the student and write its model artifact (with distill.json)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from training import teacher as teachers
    from training.prior import correct_model, log_weights
    from training.train import TrainingRun, build_dataset, fit

    teacher, champion = Path(teacher), Path(champion) if champion else None
    records = {"teacher": teachers.describe(teacher), "champion": teachers.describe(champion) if champion else None}
    cfg.base_model = records["teacher"]["path"]  # the student starts from the teacher (train_config.yaml says so)
    compared = {k: v for k, v in asdict(settings).items() if k not in SETTINGS_FREE}
    if champion is None:
        compared.pop("champion_weight")
    whom = {role: {k: r[k] for k in ("path", "weights_sha256")} for role, r in records.items() if r}
    run = TrainingRun(cfg, resume, {**cfg.to_dict(), "distill": {**compared, **whom}})
    classes = list(run.taxonomy.classes)
    for role, record in records.items():
        if record and record["labels"] != classes:
            raise ConfigError(f"the {role}'s labels {record['labels']} are not the taxonomy's {classes} ({cfg.taxonomy})")
        if record:
            record["max_length"] = record["max_length"] or cfg.max_length
    model = AutoModelForSequenceClassification.from_pretrained(teacher)
    dropout = {} if cfg.attention_dropout is None else {"attention_probs_dropout_prob": cfg.attention_dropout}
    student = teachers.student_from_teacher(model, list(settings.student_layers), **dropout)  # as fanzha train
    del model
    # The class-weighted loss trains in a space shifted by log w, which the prior correction takes
    # out of the artifact at the end: the targets get the shift, and so does the student's start
    # (the teacher's head is corrected), else the correction would remove a shift never learnt.
    shift = log_weights(run.weights, classes) if run.weights and cfg.prior_correction else [0.0] * len(classes)
    correct_model(student, [-s for s in shift])
    tokenizer = AutoTokenizer.from_pretrained(teacher)

    labelled, pool = run.splits["train"], transfer_pool(cfg, settings, run.splits, run.taxonomy)
    rows = [*({**r, "target": r["text"]} for r in labelled), *pool]
    targets = list(dict.fromkeys(r["target"] for r in rows))  # each text scored once, in a fixed order
    cache = teachers.cache_folder(settings.logits_cache)
    scored, info = [], {}
    for role in ("teacher", "champion"):
        if records[role]:
            logits, info[role] = teachers.teacher_logits(Path(records[role]["path"]), records[role], targets, cache,
                                                         settings.teacher_batch_size, role)
            scored.append(logits)
    mix = [1 - settings.champion_weight, settings.champion_weight] if champion else [1.0]
    soft = teachers.soft_targets(scored, mix, settings.temperature, shift)
    index = {t: i for i, t in enumerate(targets)}
    dataset = build_dataset(rows, tokenizer, run.taxonomy, cfg.max_length, run.weights, cfg.augment,
                            cfg.shuffle_seed, extra={"soft": [soft[index[r["target"]]].tolist() for r in rows]})
    sources: dict[str, int] = {}
    for r in pool:
        sources[r["source"]] = sources.get(r["source"], 0) + 1
    print(f"[fanzha] distilling {len(records['teacher']['labels'])}-class teacher {teacher} "
          f"({records['teacher']['num_hidden_layers']} layers) into layers {settings.student_layers}: "
          f"{len(labelled)} labelled + {len(pool)} unlabelled rows {sources}", flush=True)
    record = {**records, "settings": asdict(settings), "student_layers": list(settings.student_layers),
              "transfer": {"labelled_rows": len(labelled), "unlabelled_rows": len(pool), "unlabelled_by_source": sources,
                           "texts_scored": len(targets), "texts_sha256": teachers.texts_fingerprint(targets),
                           "logits": info}}
    return fit(run, student, tokenizer, dataset, _distill_trainer(settings), distill_collate, command="distill",
               curves={"loss_curve": "loss", "kl_curve": "kl", "labelled_loss_curve": "labelled_loss"},
               records={"distill.json": record})


def main(argv=None) -> int:
    from training.config import parse_overrides

    parser = argparse.ArgumentParser(prog="fanzha distill", description=__doc__.split("\n\n")[0])
    parser.add_argument("--teacher", required=True, type=Path, help="model artifact to distil (output of fanzha train)")
    parser.add_argument("--champion", type=Path, help="a second teacher (e.g. the deployed champion's model "
                                                     "artifact), averaged in with weight distill.champion_weight")
    parser.add_argument("--config", default="configs/sms-student.yaml", help="YAML config (overrides defaults; "
                        "its `distill:` section: training/distill.py DistillConfig)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config key, e.g. --set distill.alpha=0.5 --set max_steps=100")
    parser.add_argument("--output", help="output folder (same as --set output_dir=...)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest checkpoint in output_dir (same config and teachers required)")
    args = parser.parse_args(argv)
    overrides = parse_overrides(args.set)
    if args.output:
        overrides["output_dir"] = args.output
    try:
        cfg, settings = load_distill_config(args.config, overrides)
        distill(cfg, settings, args.teacher, args.champion, resume=args.resume)
    except (ConfigError, DataError, TaxonomyError, ResumeError, FileNotFoundError) as e:
        print(f"fanzha distill: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
