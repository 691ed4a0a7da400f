"""Put a serving artifact into the BentoML model store, and find it again by tag.

    fanzha register artifacts/demo/serving [--name fanzha-demo]     # prints the pinned tag
    FANZHA_MODEL_TAG=fanzha-demo:20250101120000-1a2b3c4d bentoml serve serving.service:Fanzha

The artifact is integrity-checked first (serving/integrity.py) and stored as is, with labels
(project, model name, version) and metadata from its manifest.json: the training metrics, the
data fingerprints (`data_manifest`), the sha256 of every file, and `mlflow` (run id, experiment,
tracking URI of the training run, when it was tracked: `mlflow ui` opens it). The version is the export
version plus a digest of the file sums, so registering the same artifact twice returns the
existing tag, and two different artifacts never share one. Tags must be pinned: `name:latest`
or a bare name is refused by the service and by `make bento`, because "latest" means different
models on different machines.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import sys
from pathlib import Path

from data import settings
from serving.integrity import verify_artifact
from serving.predictor import ArtifactError, ArtifactMeta


def _store():
    import bentoml  # lazily: `fanzha score` and the predictor do not need BentoML

    return bentoml


def files_digest(manifest: dict) -> str:
    return hashlib.sha256(json.dumps(manifest["files"], sort_keys=True).encode()).hexdigest()


def pinned(tag: str):
    """A BentoML Tag with an explicit version; refuses `name` and `name:latest`."""
    from bentoml import Tag

    try:
        parsed = Tag.from_taglike(tag)
    except ValueError as e:
        raise ArtifactError(f"invalid model tag {tag!r}: {e}") from e
    if parsed.version in (None, "latest"):
        raise ArtifactError(f"model tag {tag!r} is not pinned: give name:version (see `bentoml models list`), never :latest")
    return parsed


def artifact_dir(tag: str) -> Path:
    """The folder of a registered serving artifact."""
    bentoml = _store()
    try:
        model = bentoml.models.get(pinned(tag))
    except bentoml.exceptions.NotFound as e:
        home = settings.get("BENTOML_HOME")
        raise ArtifactError(f"model {tag} is not in the BentoML model store ({home}); run `fanzha register ARTIFACT`") from e
    return Path(model.path)


def _no_nulls(value):
    """`value` without null entries: BentoML's model metadata takes no None (e.g. a data manifest's
    `feedback: null` when a model was trained without feedback files)."""
    if isinstance(value, dict):
        return {k: _no_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_no_nulls(v) for v in value if v is not None]
    return value


def register(artifact: str | Path, name: str | None = None) -> str:
    """Register (or find) the artifact; return its pinned tag `name:version`."""
    bentoml = _store()
    artifact = Path(artifact)
    manifest = verify_artifact(artifact)
    meta = ArtifactMeta.load(artifact)
    name = name or "fanzha-" + re.sub(r"[^a-z0-9._-]+", "-", meta.model_name.lower()).strip("-._")
    digest = files_digest(manifest)
    tag = bentoml.Tag(name, f"{re.sub(r'[^a-z0-9]', '', meta.version.lower())}-{digest[:8]}".lstrip("-"))
    try:
        existing = bentoml.models.get(tag)
    except bentoml.exceptions.NotFound:
        existing = None
    if existing is not None:
        if files_digest(verify_artifact(existing.path)) != digest:
            raise ArtifactError(f"{tag} exists in the model store with different files; delete it first")
        return str(existing.tag)
    labels = {"project": "fanzha", "model_name": meta.model_name, "version": meta.version}
    metadata = {"files_sha256": manifest["files"], "files_digest": digest, "labels": list(meta.labels),
                "max_length": meta.max_length, "temperature": meta.temperature}
    for key in ("metrics", "data_manifest", "calibration"):
        if key in manifest:
            metadata[key] = _no_nulls(json.loads(json.dumps(manifest[key]), parse_constant=str))  # plain JSON types only
    trained_by = manifest.get("metrics", {}).get("run", {}).get("mlflow")
    if trained_by:  # the MLflow run that trained these weights: run_id, experiment_id, tracking_uri
        metadata["mlflow"] = trained_by
    with bentoml.models.create(tag, labels=labels, metadata=metadata) as model:
        for path in sorted(artifact.iterdir()):
            if path.is_file():
                shutil.copy2(path, Path(model.path) / path.name)
    verify_artifact(artifact_dir(str(tag)))  # what is in the store is what was checked
    return str(tag)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="fanzha register", description=__doc__.split("\n\n")[0])
    parser.add_argument("artifact", type=Path, help="serving artifact folder (fanzha export)")
    parser.add_argument("--name", help="model name in the store (default: fanzha-<model_name>)")
    args = parser.parse_args(argv)
    try:
        tag = register(args.artifact, args.name)
    except (ArtifactError, ValueError) as e:
        print(f"fanzha register: {e}", file=sys.stderr)
        return 1
    print(f"[fanzha] registered {args.artifact} as {tag} in the BentoML model store", file=sys.stderr)
    print(tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
