"""Evaluate a trained model artifact on labelled data.

    fanzha evaluate artifacts/demo/model data.jsonl [--out metrics.json]

DATA is a JSONL / CSV / TSV / Parquet file with `text` and `label` columns (a taxonomy class or
coarse label), or a corpus folder (its `test.jsonl` is used). Writes accuracy, macro-F1,
per-class precision/recall/F1 and the confusion matrix as JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from data.encoding import encode_ids, pad, prepare
from data.tables import read_table
from data.taxonomy import load_taxonomy
from training.metrics import classification_metrics


@torch.inference_mode()
def predict_logits(model, tokenizer, texts: list[str], max_length: int, batch_size: int = 128,
                   progress: bool = False) -> np.ndarray:
    """Logits for raw texts, through the same normalization and encoding as serving."""
    prepared = [prepare(t, max_length) for t in texts]
    ids = encode_ids(tokenizer.backend_tokenizer, prepared, max_length)
    order = np.argsort([len(r) for r in ids], kind="stable")
    out = np.zeros((len(texts), model.config.num_labels), dtype=np.float32)
    for start in tqdm(range(0, len(order), batch_size), desc="evaluate", disable=not progress):
        idx = order[start:start + batch_size]
        input_ids, mask = pad([ids[i] for i in idx])
        logits = model(input_ids=torch.from_numpy(input_ids), attention_mask=torch.from_numpy(mask)).logits
        out[idx] = logits.float().numpy()
    return out


def evaluate_rows(model, tokenizer, rows: list[dict], taxonomy, max_length: int, batch_size: int = 128) -> dict:
    logits = predict_logits(model, tokenizer, [r["text"] for r in rows], max_length, batch_size)
    probs = torch.softmax(torch.from_numpy(logits), dim=-1).numpy()
    return classification_metrics(probs, [r["label"] for r in rows], taxonomy)


def load_rows(path: Path) -> list[dict]:
    if path.is_dir():
        path = path / "test.jsonl"
    frame = read_table(path, required=("text", "label"))
    return frame[["text", "label"]].to_dict("records")


def main(argv=None) -> int:
    import yaml
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    parser = argparse.ArgumentParser(prog="fanzha evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="model artifact folder (output of fanzha train)")
    parser.add_argument("data", type=Path, help="labelled file or corpus folder")
    parser.add_argument("--out", type=Path, help="metrics JSON path (default: MODEL/eval_<data>.json)")
    args = parser.parse_args(argv)
    cfg = yaml.safe_load((args.model / "train_config.yaml").read_text(encoding="utf-8"))
    taxonomy = load_taxonomy(cfg.get("taxonomy"))
    model = AutoModelForSequenceClassification.from_pretrained(args.model).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    rows = load_rows(args.data)
    logits = predict_logits(model, tokenizer, [r["text"] for r in rows], cfg["max_length"], progress=True)
    probs = torch.softmax(torch.from_numpy(logits), dim=-1).numpy()
    metrics = classification_metrics(probs, [r["label"] for r in rows], taxonomy)
    out = args.out or args.model / f"eval_{args.data.stem}.json"
    out.write_text(json.dumps(metrics, indent=2, ensure_ascii=False), encoding="utf-8")
    print(json.dumps({k: metrics[k] for k in ("rows", "accuracy", "macro_f1", "category_accuracy")}))
    print(f"[fanzha] metrics written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
