"""Prior correction: undo the shift that class weights put into a model's priors.

    python -m training.prior artifacts/sms/model     # for a model trained before training did it itself

A loss weighted by w_c is an ordinary loss on data in which class c is w_c times as frequent, so
the trained model estimates a posterior proportional to w_c * p(c | x): weights that help rare
fraud types get learned also make the model call them too often (on the SMS model's held-out
split, loan precision 0.64 and brushing 0.50 at recall 0.84 and 0.67). Subtracting log w_c from
the classifier bias removes exactly that factor (logit adjustment, Menon et al., ICLR 2021), so
the artifact's argmax and probabilities follow the training mix's own prior again. `fanzha
train` applies it after training whenever class weights were used (`prior_correction: true`);
`prior.json` in the model records what was subtracted.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import yaml

from data.taxonomy import load_taxonomy
from training.examples import weights_from_counts
HEAD_BIASES = ("classifier.bias", "classifier.out_proj.bias")  # BERT-style heads; RoBERTa-style heads


def head_bias_key(names) -> str:
    for key in HEAD_BIASES:
        if key in names:
            return key
    raise ValueError(f"no classifier bias among the weights (looked for {HEAD_BIASES})")


def correct_model(model, shift: list[float]) -> None:
    """Subtract `shift` from a loaded sequence-classification model's output bias, in place."""
    import torch

    params = dict(model.named_parameters())
    bias = params[head_bias_key(params)]
    with torch.no_grad():
        bias -= torch.tensor(shift, dtype=bias.dtype)


def log_weights(weights: dict[str, float], classes: list[str]) -> list[float]:
    return [math.log(weights.get(c, 1.0)) for c in classes]


def record(folder: Path, shift: list[float], classes: list[str], scheme: str) -> None:
    (folder / "prior.json").write_text(json.dumps(
        {"class_weights": scheme, "subtracted_from_classifier_bias": dict(zip(classes, shift))},
        indent=2, ensure_ascii=False), encoding="utf-8")


def correct_folder(folder: str | Path) -> dict:
    """Apply the correction to a saved model artifact, in place; refuses to apply it twice."""
    from safetensors.torch import load_file, save_file

    folder = Path(folder)
    if (folder / "prior.json").is_file():
        raise ValueError(f"{folder}: prior correction already applied (prior.json exists)")
    cfg = yaml.safe_load((folder / "train_config.yaml").read_text(encoding="utf-8"))
    taxonomy = load_taxonomy(cfg.get("taxonomy"))
    counts = json.loads((folder / "data_manifest.json").read_text(encoding="utf-8"))["labels"]["train"]
    weights = weights_from_counts(counts, taxonomy, cfg.get("class_weights", "balanced"))
    if not weights:
        raise ValueError(f"{folder}: trained without class weights; nothing to correct")
    shift = log_weights(weights, taxonomy.classes)
    tensors = load_file(folder / "model.safetensors")
    key = head_bias_key(tensors)
    if tensors[key].shape[0] != len(shift):
        raise ValueError(f"{folder}: {key} has {tensors[key].shape[0]} entries, the taxonomy {len(shift)} classes")
    tensors[key] = tensors[key] - tensors[key].new_tensor(shift)
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    cfg["prior_correction"] = True
    (folder / "train_config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True), encoding="utf-8")
    record(folder, shift, taxonomy.classes, cfg.get("class_weights"))
    return dict(zip(taxonomy.classes, shift))


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m training.prior MODEL_DIR", file=sys.stderr)
        return 2
    try:
        shift = correct_folder(args[0])
    except (OSError, KeyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"subtracted_from_classifier_bias": {k: round(v, 4) for k, v in shift.items()}}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
