"""The one predictor: tokenizer + ONNX Runtime session + decision policy.

    python -m serving.predictor artifacts/demo/serving "您的ETC认证已失效，请点击 etc-renz.cn 重新认证"

The BentoML service, `fanzha score` and the export parity report all call this class, so the
same text gets the same answer everywhere. A serving artifact folder holds `model*.onnx`,
`tokenizer.json`, `config.json`, `policy.yaml` and `fanzha.json` (labels, max_length,
temperature, default variant); nothing here imports torch.

Variants: `model.onnx` (fp32), `model.opt.onnx` (fused), `model.int8.onnx` (quantized),
`model.fp16.onnx` (GPUs); `variant=` (or FANZHA_VARIANT) takes a file name or fp32/opt/int8/fp16,
else the artifact's `default_variant` (the fastest that passed export's checks). Threads and
spinning come from serving/tuning.py. Speed: ONNX Runtime is >90 % of a call (profiled with
cProfile on the SMS model, batch 1 and 64), so the Python around it is kept to one pass over the
texts (normalize, then one Rust tokenizer call per batch, padded to the batch's longest text),
one softmax in place, one matrix product for the category scores and one `tolist()` per output.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from data.encoding import TRUNCATION, configure_tokenizer, encode_batch, prepare
from data.normalize import NORMALIZATION_VERSION, Normalizer
from data.taxonomy import best_in_top_category
from serving import tuning
from serving.policy import CATEGORIES, Policy, PolicyFile, StaticPolicy

RESULT_FIELDS = ("label", "category", "score", "fraud_score", "spam_score", "action", "reason", "error")
_EMPTY = dict.fromkeys(RESULT_FIELDS)


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
    certified: dict = field(default_factory=dict)  # variant file -> {temperature, block_threshold, ...}
    input: dict = field(default_factory=dict)  # the input contract: normalization, truncation, chat, ...

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
            certified=dict(raw.get("certified") or {}),
            input=dict(raw.get("input") or {}),
        )


def artifact_normalizer(folder: Path, meta: "ArtifactMeta | None" = None) -> Normalizer:
    """The artifact's own normalization (fanzha.json `input.normalization`, its `variants.yaml`).
    An artifact exported before the input contract, or whose table does not match, is refused:
    normalizing with the source tree's table could silently change what the model sees."""
    contract = (meta or ArtifactMeta.load(Path(folder))).input
    spec = contract.get("normalization") or {}
    redo = "re-export it with `fanzha export MODEL_ARTIFACT OUT`"
    if not spec:
        raise ArtifactError(f"{folder}: fanzha.json has no input.normalization (exported before serving artifacts "
                            f"carried their normalization table); {redo}")
    if str(spec.get("version")) != NORMALIZATION_VERSION:
        raise ArtifactError(f"{folder}: exported with normalization version {spec.get('version')!r}, this code "
                            f"implements {NORMALIZATION_VERSION!r}; {redo} (or serve it with a matching fanzha)")
    table = folder / spec.get("table", "variants.yaml")
    if not table.is_file():
        raise ArtifactError(f"{table} not found: the artifact lacks its normalization table; {redo}")
    normalizer = Normalizer(table)
    if spec.get("table_sha256") and normalizer.sha256 != spec["table_sha256"]:
        raise ArtifactError(f"{table}: sha256 {normalizer.sha256[:12]}… differs from fanzha.json's "
                            f"{str(spec['table_sha256'])[:12]}…; {redo}")
    truncation = contract.get("truncation", TRUNCATION)
    if truncation != TRUNCATION:
        raise ArtifactError(f"{folder}: truncation {truncation!r} is not supported here ({TRUNCATION!r}); {redo}")
    return normalizer


VARIANT_FILES = {"fp32": "model.onnx", "opt": "model.opt.onnx", "int8": "model.int8.onnx", "fp16": "model.fp16.onnx"}


def _session(path: Path, threads: int | None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or tuning.THREADS  # the cores we may use, not the host's
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0" if tuning.SPIN == "0" else "1")
    if tuning.SPIN == "run":
        options.add_session_config_entry("session.force_spinning_stop", "1")
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def calibrated(logits: np.ndarray, temperature: float, inplace: bool = False) -> np.ndarray:
    """softmax(logits / temperature) in float32: the service's probabilities, operation for
    operation (export's certification calls this too, so a certified threshold sees these numbers)."""
    z = np.asarray(logits, dtype=np.float32)
    if temperature != 1.0:
        z = z / np.float32(temperature)
    elif not inplace:
        z = z.copy()
    z -= z.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class Predictor:
    def __init__(self, artifact: str | Path, variant: str | None = None, threads: int | None = None,
                 policy: "Policy | PolicyFile | StaticPolicy | str | Path | None" = None, batch_size: int = 64):
        self.folder = Path(artifact)
        self.meta = ArtifactMeta.load(self.folder)
        self.labels = self.meta.labels
        self.variant = served_variant(self.meta, variant)  # "int8" or "model.int8.onnx" -> the file
        model_path = self.folder / self.variant
        if not model_path.is_file():
            raise ArtifactError(f"{model_path} not found; variants here: {sorted(p.name for p in self.folder.glob('*.onnx'))}")
        self.session = _session(model_path, threads)
        # data.encoding pads and truncates (head + tail) itself; the same set-up as training's
        self.tokenizer = configure_tokenizer(Tokenizer.from_file(str(self.folder / "tokenizer.json")))
        # The normalization table exported with the model (never the source tree's): str -> str,
        # also what the policy's block-list is matched on.
        self.normalize: Normalizer = artifact_normalizer(self.folder, self.meta)
        # The decision policy: a file kept current (shared with every other predictor of the
        # service, so one edit or reload reaches them all) or a fixed Policy; resolved for this
        # model's variant (`certified` -> this variant's certified block threshold).
        # fanzha.json `certified[<this variant>]`: temperature and block threshold fitted on this
        # variant's own scores by `fanzha export` ({} for an artifact exported before certification)
        self.certified = dict(self.meta.certified.get(self.variant) or {})
        self.temperature = float(self.certified.get("temperature", self.meta.temperature))
        self.policy_source = policy_source(policy, self.folder)
        self._resolved: tuple[Policy, Policy] | None = None
        self._resolved_chat: tuple[Policy, Policy] | None = None
        self._watch_source()
        self.policy  # resolve now: a policy this model cannot serve fails at start, not per request
        self.batch_size = batch_size
        self.categories = np.array([label.split(".", 1)[0] for label in self.labels])
        self._category_names = self.categories.tolist()
        self._category_index = np.array([CATEGORIES.index(c) for c in self.categories])
        # probabilities [n, classes] @ this [classes, categories] = category scores, in one call
        self._category_matrix = (self._category_index[:, None] == np.arange(len(CATEGORIES))).astype(np.float32)
        self.campaigns = None  # feedback campaigns' matcher on this model's normalization (use_campaigns)
        self._output_names = [self.session.get_outputs()[0].name]
        self._type_ids = "token_type_ids" in {i.name for i in self.session.get_inputs()}

    @property
    def policy(self) -> Policy:
        """The current policy, resolved for this model (re-resolved when the source changed)."""
        raw = self.policy_source.current()
        resolved = self._resolved
        if resolved is None or resolved[0] is not raw:
            resolved = (raw, raw.resolve(self.certified.get("block_threshold"), f"{self.folder} ({self.variant})"))
            self._resolved = resolved
        return resolved[1]

    def policy_for(self, channel: str = "sms") -> Policy:
        """The policy for one channel: "sms" (/classify, `fanzha score`) is `policy`; "chat" (/chat,
        `fanzha score --chat`) resolves `certified` to the variant's `chat_block_threshold` when
        its certificate has one (`certify_legit: sms`: the SMS threshold was fitted without chat
        utterances), else the same as "sms"."""
        chat = self.certified.get("chat_block_threshold")
        if channel == "sms" or chat is None:
            return self.policy
        if channel != "chat":
            raise ValueError(f"channel must be sms or chat, got {channel!r}")
        raw = self.policy_source.current()
        resolved = self._resolved_chat
        if resolved is None or resolved[0] is not raw:
            resolved = (raw, raw.resolve(chat, f"{self.folder} ({self.variant}, chat)"))
            self._resolved_chat = resolved
        return resolved[1]

    @policy.setter
    def policy(self, value) -> None:
        self.policy_source, self._resolved, self._resolved_chat = policy_source(value, self.folder), None, None
        self._watch_source()
        self.policy

    def _watch_source(self) -> None:
        """A reloaded file this model cannot resolve is refused before it replaces the old one."""
        checks = getattr(self.policy_source, "checks", None)
        if checks is not None and self._check_policy not in checks:
            checks.append(self._check_policy)

    def use_campaigns(self, campaigns) -> None:
        """Decide with the feedback campaigns (serving.feedback.Campaigns) too, matched on this
        model's own normalization; None stops."""
        if self.campaigns is not None:
            self.campaigns.campaigns.release(self.campaigns)
        self.campaigns = campaigns.matcher(self.normalize) if campaigns is not None else None

    def detach(self) -> None:
        """Stop taking part in the policy source's checks and the campaigns (a model retired by a hot swap)."""
        checks = getattr(self.policy_source, "checks", None)
        if checks is not None and self._check_policy in checks:
            checks.remove(self._check_policy)
        self.use_campaigns(None)

    def _check_policy(self, policy: Policy) -> None:
        policy.resolve(self.certified.get("block_threshold"), f"{self.folder} ({self.variant})")
        if self.certified.get("chat_block_threshold") is not None:
            policy.resolve(self.certified["chat_block_threshold"], f"{self.folder} ({self.variant}, chat)")

    # -- numbers -------------------------------------------------------------------------
    def _run(self, prepared: Sequence[str]) -> np.ndarray:
        ids, mask = encode_batch(self.tokenizer, prepared, self.meta.max_length)
        feed = {"input_ids": ids, "attention_mask": mask}
        if self._type_ids:
            feed["token_type_ids"] = np.zeros_like(ids)
        return self.session.run(self._output_names, feed)[0]

    def logits(self, prepared: Sequence[str]) -> np.ndarray:
        """Raw logits for already-`prepare`d texts; more than `batch_size` are batched by length
        (sorted), so that each batch is padded only to its own longest text."""
        if len(prepared) <= self.batch_size:  # the service's case: one batch, already small
            return self._run(prepared) if len(prepared) else np.zeros((0, len(self.labels)), dtype=np.float32)
        out = np.empty((len(prepared), len(self.labels)), dtype=np.float32)
        order = np.argsort(np.fromiter(map(len, prepared), dtype=np.int64, count=len(prepared)), kind="stable")
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            out[idx] = self._run([prepared[i] for i in idx])
        return out

    def probabilities(self, prepared: Sequence[str]) -> np.ndarray:
        return calibrated(self.logits(prepared), self.temperature, inplace=True)

    def probabilities_one_call(self, prepared: Sequence[str]) -> np.ndarray:
        """Calibrated probabilities of already-`prepare`d texts in ONE ONNX Runtime call, whatever
        their number (serving/explain.py: an explanation is one batch)."""
        return calibrated(self._run(prepared), self.temperature, inplace=True)

    def fraud_scores(self, probs: np.ndarray) -> np.ndarray:
        """The fraud category's score per row, exactly as `classify` computes it."""
        return (probs @ self._category_matrix)[:, CATEGORIES.index("fraud")]

    # -- answers -------------------------------------------------------------------------
    def classify(self, texts: Sequence[Any], with_scores: bool = True, senders: Sequence[str | None] | None = None,
                 list_texts: Sequence[Any] | None = None, cache=None, channel: str = "sms") -> list[dict]:
        """One result per input, in order, decided by the policy (`Policy.apply`, the one rule for
        every path). A text that cannot be scored gets `error` set. `senders`: sender ids for the
        allow-list; `list_texts`: what the block-list is matched on, when not the model's input
        (a chat window is scored, its newest turn matched); `cache`: a mapping of prepared text ->
        probabilities reused across calls (chat prefixes), or None; `channel`: "sms" or "chat"
        (`policy_for`: which certified block threshold decides)."""
        results: list[dict | None] = [None] * len(texts)
        good, prepared = [], []
        max_length = self.meta.max_length
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                results[i] = {**_EMPTY, "error": f"text must be a string, got {type(text).__name__}"}
                continue
            p = prepare(text, max_length, normalizer=self.normalize)
            if not p:
                results[i] = {**_EMPTY, "error": "empty text"}
                continue
            good.append(i)
            prepared.append(p)
        if good:
            self._fill(results, good, self._probabilities(prepared, cache), with_scores)
        policy = self.policy_for(channel)
        policy.apply(results, texts if list_texts is None else list_texts, senders, self.normalize, self.campaigns)
        return results

    def _probabilities(self, prepared: list[str], cache) -> np.ndarray:
        if cache is None:
            return self.probabilities(prepared)
        out = np.empty((len(prepared), len(self.labels)), dtype=np.float32)
        missing = []
        for k, p in enumerate(prepared):
            row = cache.get(p)
            if row is None:
                missing.append(k)
            else:
                out[k] = row
        if missing:
            fresh = self.probabilities([prepared[k] for k in missing])
            for k, row in zip(missing, fresh):
                out[k] = row
                cache[prepared[k]] = row
        return out

    def _fill(self, results: list, good: list[int], probs: np.ndarray, with_scores: bool) -> None:
        cat_scores = probs @ self._category_matrix  # [n, len(CATEGORIES)]
        # The label lies in the most probable category (so label, category and action agree):
        # mask out classes of other categories, then take the best remaining class.
        best = best_in_top_category(probs, self._category_index, cat_scores)  # the rule evaluate reports
        # Convert to Python once, not per element through numpy scalars.
        best_l, score_l = best.tolist(), probs[np.arange(len(best)), best].tolist()
        fraud_l = cat_scores[:, CATEGORIES.index("fraud")].tolist()
        spam_l = cat_scores[:, CATEGORIES.index("spam")].tolist()
        labels, categories = self.labels, self._category_names
        probs_l = probs.tolist() if with_scores else None
        for k, i in enumerate(good):
            b = best_l[k]
            r = {"label": labels[b], "category": categories[b], "score": score_l[k], "fraud_score": fraud_l[k],
                 "spam_score": spam_l[k], "action": None, "reason": "", "error": ""}
            if with_scores:
                r["scores"] = dict(zip(labels, probs_l[k]))
            results[i] = r

    def info(self) -> dict:
        return {
            "model_name": self.meta.model_name,
            "version": self.meta.version,
            "variant": self.variant,
            "labels": list(self.labels),
            "max_length": self.meta.max_length,
            "thresholds": self.policy.to_dict()["thresholds"],
            "chat_thresholds": self.policy_for("chat").to_dict()["thresholds"],
            "certified": self.certified or None,
            "temperature": self.temperature,
        }


def served_variant(meta: ArtifactMeta, variant: str | None = None) -> str:
    """The ONNX file a Predictor(folder, variant) serves."""
    chosen = variant or tuning.VARIANT or meta.default_variant
    return VARIANT_FILES.get(chosen, chosen)


def check_policy_for(folder: str | Path, policy: Policy, variant: str | None = None) -> Policy:
    """`policy` resolved for the model in `folder` (PolicyError if it cannot be), without loading it.
    The certificate is fanzha.json `certified[<served variant>]`: temperature and block threshold
    fitted on that variant's own scores by `fanzha export` ({} for an older artifact)."""
    meta = ArtifactMeta.load(Path(folder))
    chosen = served_variant(meta, variant)
    return policy.resolve((meta.certified.get(chosen) or {}).get("block_threshold"), f"{folder} ({chosen})")


def policy_source(policy, folder: Path):
    """A PolicyFile / StaticPolicy from what a caller passes: None (the artifact's policy.yaml,
    read once), a path (a file kept current), a Policy, or a source already."""
    if policy is None:
        return StaticPolicy(Policy.load(folder / "policy.yaml"))
    if isinstance(policy, Policy):
        return StaticPolicy(policy)
    if isinstance(policy, (str, Path)):
        return PolicyFile(policy)
    if hasattr(policy, "current"):
        return policy
    raise TypeError(f"policy: expected a Policy, PolicyFile or path, got {type(policy).__name__}")


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
