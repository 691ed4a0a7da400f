"""Serving-artifact integrity: every file against the sha256 sums in its `manifest.json`.

    python -m serving.integrity artifacts/demo/serving     # prints "ok: N files" or the mismatches

`fanzha export` writes `manifest.json` with key `files` (name -> sha256). The service and
`fanzha register` refuse an artifact whose files were changed, lost or added in a pickle
format, so what runs is byte for byte what was exported and evaluated. `policy.yaml` is the one
file exempt: it is configuration, edited in place to change a running deployment's policy,
and validated by `serving.policy` instead. Weights are only ever ONNX (or safetensors in the
training artifact); nothing here or in the predictor unpickles anything.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from serving.predictor import ArtifactError
from data.digest import sha256_file

MUTABLE = frozenset({"policy.yaml"})  # configuration, validated on load, may differ from the export
PICKLE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".bin", ".ckpt", ".joblib", ".npy", ".npz")


class IntegrityError(ArtifactError):
    """The artifact's files do not match its manifest."""


sha256 = sha256_file  # data/digest.py


def read_manifest(folder: str | Path) -> dict:
    path = Path(folder) / "manifest.json"
    if not path.is_file():
        raise IntegrityError(f"{folder}: no manifest.json — not an artifact written by `fanzha export`; re-export it")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise IntegrityError(f"{path}: unreadable manifest ({e})") from e
    if not isinstance(manifest.get("files"), dict) or not manifest["files"]:
        raise IntegrityError(f"{path}: manifest has no 'files' (name -> sha256)")
    return manifest


def verify_artifact(folder: str | Path, required: tuple[str, ...] = ("fanzha.json", "tokenizer.json")) -> dict:
    """Check the files of a serving artifact against its manifest; return the manifest.

    Raises IntegrityError naming every missing, changed or unexpected pickle file."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    files: dict[str, str] = manifest["files"]
    problems = []
    for name in required:
        if name not in files:
            problems.append(f"{name}: not listed in manifest.json")
    if not any(name.endswith(".onnx") for name in files):
        problems.append("no .onnx model listed in manifest.json")
    for name, expected in sorted(files.items()):
        path = folder / name
        if name in MUTABLE:
            continue
        if "/" in name or "\\" in name or name in (".", ".."):
            problems.append(f"{name!r}: not a plain file name")
        elif not path.is_file():
            problems.append(f"{name}: missing")
        elif sha256(path) != expected:
            problems.append(f"{name}: sha256 differs from manifest.json (changed after export)")
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in PICKLE_SUFFIXES:
            problems.append(f"{path.name}: pickle-format file in a serving artifact (only ONNX/JSON/YAML are served)")
        elif path.suffix == ".onnx" and path.name not in files:
            problems.append(f"{path.name}: ONNX model not listed in manifest.json")
    if problems:
        raise IntegrityError(f"serving artifact {folder} failed its integrity check — refusing to load it:\n  - "
                             + "\n  - ".join(problems))
    return manifest


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m serving.integrity ARTIFACT", file=sys.stderr)
        return 2
    try:
        manifest = verify_artifact(args[0])
    except ArtifactError as e:
        print(e, file=sys.stderr)
        return 1
    print(f"ok: {len(manifest['files'])} files match {Path(args[0]) / 'manifest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
