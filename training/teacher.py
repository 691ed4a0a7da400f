"""The teacher side of `fanzha distill` (training/distill.py): a student cut from the teacher's
layers, and the teacher's logits on the transfer texts, scored once and cached on disk.

    fanzha distill --teacher artifacts/sms/model --config configs/sms-student.yaml

The student keeps the teacher's embeddings, pooler, classifier and the encoder layers named by
`student_layers` (renumbered 0..k-1), so it starts where the teacher is rather than at random.
Scoring the transfer set is the distillation's most expensive data step (every text once through
the teacher, batched by length, no grad), so the logits are cached under
`$FANZHA_CACHE/teacher_logits/<key>.npy`, the key being the sha256 of the teacher's weights
digest, its labels, max_length and normalization table, and the texts' fingerprint: a rerun or a
resumed run reads them back instead of scoring again, and any change in either side misses.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import time
from pathlib import Path

import numpy as np
import yaml

from training.config import ConfigError
from training.fingerprint import model_labels, weights_sha256

_LAYER = re.compile(r"(^|\.)encoder\.layer\.(\d+)\.")  # BERT, RoBERTa and their kin name layers so


def describe(model_dir: Path) -> dict:
    """What the artifact records of a teacher (or champion): path, weights digest, labels, shape."""
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise ConfigError(f"{model_dir} is not a model artifact (no config.json); pass the folder `fanzha train` wrote")
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    trained = model_dir / "train_config.yaml"
    max_length = (yaml.safe_load(trained.read_text(encoding="utf-8")) or {}).get("max_length") if trained.is_file() else None
    return {"path": str(model_dir.resolve()), "weights_sha256": weights_sha256(model_dir), "labels": model_labels(model_dir),
            "num_hidden_layers": config.get("num_hidden_layers"), "hidden_size": config.get("hidden_size"),
            "max_length": max_length}


def check_layers(layers: list[int], available: int) -> None:
    if not layers or sorted(set(layers)) != list(layers) or layers[0] < 0 or layers[-1] >= available:
        raise ConfigError(f"distill.student_layers={layers}: expected increasing layer indices within "
                          f"[0, {available - 1}] of the teacher's {available} layers")


def student_from_teacher(teacher, layers: list[int], **config_overrides):
    """A fresh model of the teacher's kind with len(layers) encoder layers, holding the teacher's
    weights for everything but the layers left out (a strict load: nothing is left at random).
    `config_overrides`: model config keys that change no weight (attention_probs_dropout_prob)."""
    from transformers import AutoModelForSequenceClassification

    check_layers(layers, teacher.config.num_hidden_layers)
    config = copy.deepcopy(teacher.config)
    config.update({**config_overrides, "num_hidden_layers": len(layers)})
    student = AutoModelForSequenceClassification.from_config(config)
    state = {}
    for key, value in teacher.state_dict().items():
        match = _LAYER.search(key)
        if match:
            index = int(match.group(2))
            if index not in layers:
                continue
            key = key[:match.start(2)] + str(layers.index(index)) + key[match.end(2):]
        state[key] = value.clone()
    student.load_state_dict(state, strict=True)
    return student


def cache_folder(configured: str = "") -> Path:
    from training.base_model import cache_dir

    return Path(configured) if configured else cache_dir() / "teacher_logits"


def texts_fingerprint(texts: list[str]) -> str:
    digest = hashlib.sha256()
    for t in texts:
        digest.update(t.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def cache_key(model_dir: Path, record: dict, texts_sha256: str) -> str:
    table = Path(model_dir) / "variants.yaml"
    parts = {"weights_sha256": record["weights_sha256"], "labels": record["labels"], "max_length": record["max_length"],
             "variants_sha256": hashlib.sha256(table.read_bytes()).hexdigest() if table.is_file() else None,
             "texts_sha256": texts_sha256}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def teacher_logits(model_dir: Path, record: dict, texts: list[str], cache: Path, batch_size: int = 128,
                   role: str = "teacher") -> tuple[np.ndarray, dict]:
    """(logits, info) of the model in `model_dir` on `texts`, from the cache when it holds them;
    info: {"cache", "hit", "seconds"}."""
    fingerprint = texts_fingerprint(texts)
    path = cache / f"{cache_key(model_dir, record, fingerprint)}.npy"
    if path.is_file():
        logits = np.load(path)
        if logits.shape == (len(texts), len(record["labels"])):
            print(f"[fanzha] {role} logits: {len(texts)} texts read from the cache {path}", flush=True)
            return logits, {"cache": str(path), "hit": True, "seconds": 0.0}
    started = time.time()
    print(f"[fanzha] {role} scoring {len(texts)} transfer texts (batches of {batch_size}, sorted by length)", flush=True)
    logits = score(model_dir, texts, record["max_length"] or 64, batch_size, role)
    seconds = time.time() - started
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")  # several ranks may write it: each renames its own
    np.save(tmp, logits)
    tmp.replace(path)
    (cache / f"{path.stem}.json").write_text(json.dumps(
        {"model": record["path"], "weights_sha256": record["weights_sha256"], "texts": len(texts),
         "texts_sha256": fingerprint, "seconds": round(seconds, 1)}, indent=2), encoding="utf-8")
    print(f"[fanzha] {role} scored {len(texts)} texts in {seconds:.1f}s ({len(texts) / max(seconds, 1e-9):.0f}/s); "
          f"cached in {path}", flush=True)
    return logits, {"cache": str(path), "hit": False, "seconds": round(seconds, 1)}


def score(model_dir: Path, texts: list[str], max_length: int, batch_size: int, role: str = "teacher") -> np.ndarray:
    """The model's logits on `texts` as it is served (its own normalization table), no grad, on the GPU if any."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from training.evaluate import model_normalizer, predict_logits

    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    if torch.cuda.is_available():
        model = model.to("cuda")
    return predict_logits(model, AutoTokenizer.from_pretrained(model_dir), texts, max_length, batch_size, progress=True,
                          normalizer=model_normalizer(model_dir), desc=role)


def soft_targets(logits: list[np.ndarray], mix: list[float], temperature: float, shift: list[float]) -> np.ndarray:
    """The distillation target per text: the models' tempered distributions softmax((z + shift) / T),
    averaged with weights `mix`. `shift`: log class weights, which move the target into the
    class-weighted space the student trains in (the prior correction takes them out again)."""
    total = 0.0
    for z, w in zip(logits, mix):
        scaled = (z.astype(np.float64) + np.asarray(shift, dtype=np.float64)) / temperature
        scaled -= scaled.max(axis=1, keepdims=True)
        p = np.exp(scaled)
        total = total + w * p / p.sum(axis=1, keepdims=True)
    return np.asarray(total, dtype=np.float32)
