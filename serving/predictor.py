"""The one predictor: tokenizer + ONNX Runtime session + decision policy.

    python -m serving.predictor artifacts/demo/serving "您的ETC认证已失效，请点击 etc-renz.cn 重新认证"

The BentoML service, `fanzha score` and the export parity report all call this class, so the
same text gets the same answer everywhere. A serving artifact folder holds `model*.onnx`,
`tokenizer.json`, `config.json`, `policy.yaml` and `fanzha.json` (labels, max_length,
temperature, default variant); nothing here imports torch.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from data.encoding import encode_batch, prepare
from serving.policy import ACTIONS, CATEGORIES, Policy

RESULT_FIELDS = ("label", "category", "score", "fraud_score", "spam_score", "action", "error")


class ArtifactError(RuntimeError):
    """The serving artifact is missing or inconsistent."""


@dataclass(frozen=True)
class ArtifactMeta:
    labels: tuple[str, ...]
    max_length: int
    temperature: float
    default_variant: str
    model_name: str
    version: str

    @classmethod
    def load(cls, folder: Path) -> "ArtifactMeta":
        path = folder / "fanzha.json"
        if not path.is_file():
            raise ArtifactError(f"{folder} is not a serving artifact (no fanzha.json); run `fanzha export` first")
        raw = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            labels=tuple(raw["labels"]),
            max_length=int(raw["max_length"]),
            temperature=float(raw.get("temperature", 1.0)),
            default_variant=raw.get("default_variant", "model.onnx"),
            model_name=raw.get("model_name", folder.name),
            version=str(raw.get("version", "0")),
        )


def _session(path: Path, threads: int | None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class Predictor:
    def __init__(self, artifact: str | Path, variant: str | None = None, threads: int | None = None,
                 policy: Policy | None = None, batch_size: int = 64):
        self.folder = Path(artifact)
        self.meta = ArtifactMeta.load(self.folder)
        self.labels = self.meta.labels
        self.variant = variant or self.meta.default_variant
        model_path = self.folder / self.variant
        if not model_path.is_file():
            raise ArtifactError(f"{model_path} not found; variants here: {sorted(p.name for p in self.folder.glob('*.onnx'))}")
        self.session = _session(model_path, threads)
        self.tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        self.policy = policy or Policy.load(self.folder / "policy.yaml")
        self.batch_size = batch_size
        self.categories = np.array([label.split(".", 1)[0] for label in self.labels])
        self._category_index = np.array([CATEGORIES.index(c) for c in self.categories])
        self._input_names = {i.name for i in self.session.get_inputs()}

    def reload_policy(self) -> Policy:
        self.policy = Policy.load(self.folder / "policy.yaml")
        return self.policy

    # -- numbers -------------------------------------------------------------------------
    def logits(self, prepared: Sequence[str]) -> np.ndarray:
        """Raw logits for already-`prepare`d texts, batched by length (sorted) for little padding."""
        out = np.zeros((len(prepared), len(self.labels)), dtype=np.float32)
        order = np.argsort([len(t) for t in prepared], kind="stable")
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            ids, mask = encode_batch(self.tokenizer, [prepared[i] for i in idx], self.meta.max_length)
            feed = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._input_names:
                feed["token_type_ids"] = np.zeros_like(ids)
            out[idx] = self.session.run(["logits"], {k: v for k, v in feed.items() if k in self._input_names})[0]
        return out

    def probabilities(self, prepared: Sequence[str]) -> np.ndarray:
        return softmax(self.logits(prepared) / self.meta.temperature)

    # -- answers -------------------------------------------------------------------------
    def classify(self, texts: Sequence[Any], with_scores: bool = True) -> list[dict]:
        """One result per input, in order. A text that cannot be scored gets `error` set."""
        results: list[dict] = [dict.fromkeys(RESULT_FIELDS) for _ in texts]
        good, prepared = [], []
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                results[i]["error"] = f"text must be a string, got {type(text).__name__}"
                continue
            p = prepare(text, self.meta.max_length)
            if not p:
                results[i]["error"] = "empty text"
                continue
            good.append(i)
            prepared.append(p)
        if good:
            probs = self.probabilities(prepared)
            self._fill(results, good, probs, with_scores)
        for r in results:
            if r["error"] is None:
                r["error"] = ""
        return results

    def _fill(self, results: list[dict], good: list[int], probs: np.ndarray, with_scores: bool) -> None:
        by_category = {c: probs[:, self.categories == c].sum(axis=1) for c in CATEGORIES}
        actions = self.policy.decide(by_category)
        # The label lies in the most probable category (so label, category and action agree):
        # mask out classes of other categories, then take the best remaining class.
        top_category = np.stack([by_category[c] for c in CATEGORIES], axis=1).argmax(axis=1)
        in_top = self._category_index[None, :] == top_category[:, None]
        best = np.where(in_top, probs, -1.0).argmax(axis=1)
        # Convert to Python once, not per element through numpy scalars.
        best_l, score_l = best.tolist(), probs[np.arange(len(best)), best].tolist()
        fraud_l, spam_l, action_l = by_category["fraud"].tolist(), by_category["spam"].tolist(), actions.tolist()
        probs_l = probs.tolist() if with_scores else None
        for k, i in enumerate(good):
            label = self.labels[best_l[k]]
            r = results[i]
            r.update(label=label, category=label.split(".", 1)[0], score=score_l[k], fraud_score=fraud_l[k],
                     spam_score=spam_l[k], action=ACTIONS[action_l[k]])
            if with_scores:
                r["scores"] = dict(zip(self.labels, probs_l[k]))

    def info(self) -> dict:
        return {
            "model_name": self.meta.model_name,
            "version": self.meta.version,
            "variant": self.variant,
            "labels": list(self.labels),
            "max_length": self.meta.max_length,
            "thresholds": self.policy.to_dict()["thresholds"],
        }


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2:
        print("usage: python -m serving.predictor ARTIFACT TEXT [TEXT ...]", file=sys.stderr)
        return 2
    for result in Predictor(args[0]).classify(args[1:], with_scores=False):
        print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
