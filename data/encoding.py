"""Text -> token ids, identical for training and serving.

Both sides call `encode_batch` with the Rust `tokenizers.Tokenizer` saved in the artifact
(`tokenizer.json`), so a text becomes the same ids in `fanzha train`, `fanzha export` parity
checks, the HTTP service and `fanzha score`.

Truncation (documented contract): a text longer than the model's `max_length` keeps its HEAD
and its TAIL — two thirds of the token budget from the start, one third from the end — because
scam SMS put the hook first and the contact/link last. Before tokenizing, texts longer than
`8 * max_length` characters are cut the same way on characters, so a 100,000-character text
costs no more than a long SMS. Chat windows (data/conversations.py) are prepared with
`keep="tail"` instead: the newest turns are what matters, and they are kept whole.

`configure_tokenizer` is the one place that sets the Rust tokenizer up for this (no padding, no
truncation: `encode_ids` and `pad` do both); training, evaluation, export parity and serving
all call it. `prepare(..., normalizer=)` takes a serving artifact's `data.normalize.Normalizer`
(the table exported with the model); without one, the source tree's default table is used.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from data.normalize import normalize


def head_tail(seq: Sequence, budget: int):
    """Keep the first 2/3 and the last 1/3 of `budget` items of `seq`."""
    if len(seq) <= budget:
        return seq
    tail = budget // 3
    head = budget - tail
    return seq[:head] + seq[len(seq) - tail:] if tail else seq[:head]


KEEP = ("head_tail", "tail")
TRUNCATION = "head_tail"  # the rule for single messages, written into fanzha.json ("input.truncation")


def configure_tokenizer(tokenizer):
    """Set a tokenizer up for `encode_ids`: no padding, no truncation (this module does both,
    head + tail). Takes a `tokenizers.Tokenizer` or a transformers fast tokenizer (its
    `backend_tokenizer` is configured); returns the `tokenizers.Tokenizer` to pass to `encode_ids`."""
    backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
    backend.no_padding()
    backend.no_truncation()
    return backend


def prepare(text: str, max_length: int, keep: str = "head_tail",
            normalizer: Callable[[str], str] | None = None) -> str:
    """Normalize and cut an over-long text on characters (head and tail) before tokenizing.
    keep="tail" (chat windows, newest turn last) keeps the last `max_length - 2` characters: a
    character is at least one token, so the text then fits and `encode_ids` cuts nothing.
    `normalizer`: a serving artifact's Normalizer (default: data.normalize.normalize)."""
    norm = normalizer or normalize
    if keep == "tail":
        text = norm(text)
        return text[max(0, len(text) - (max_length - 2)):].lstrip()  # a cut may start at a space
    if keep != "head_tail":
        raise ValueError(f"keep must be one of {KEEP}, got {keep!r}")
    return head_tail(norm(text), 8 * max_length)


def encode_ids(tokenizer, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids with [CLS]/[SEP] for already-`prepare`d texts, head+tail truncated, unpadded."""
    # encode_batch_fast (tokenizers >= 0.20) gives the same ids without computing offsets: ~30 % faster
    encode = getattr(tokenizer, "encode_batch_fast", None) or tokenizer.encode_batch
    encodings = encode(list(texts), add_special_tokens=False)
    budget = max_length - 2
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    return [[cls_id, *head_tail(e.ids, budget), sep_id] for e in encodings]


def pad(rows: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Pad id rows to the longest row: int64 `input_ids` and `attention_mask` [batch, longest]."""
    longest = max((len(r) for r in rows), default=2)
    ids = np.zeros((len(rows), longest), dtype=np.int64)  # [PAD] is id 0 in BERT vocabularies
    mask = np.zeros((len(rows), longest), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return ids, mask


def encode_batch(tokenizer, texts: Sequence[str], max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Encode already-`prepare`d texts, padded to the longest in the batch (not to max_length)."""
    return pad(encode_ids(tokenizer, texts, max_length))
