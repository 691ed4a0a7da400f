"""`fanzha register` into a temporary BentoML store, the pinned Bento build, and serving that Bento."""
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx
import pytest
import yaml

from fanzha.cli import main as cli_main
from serving.integrity import IntegrityError
from serving.predictor import ArtifactError, Predictor
from tests.serving.conftest import free_port, private_bentoml_home, stop_server

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A private BENTOML_HOME for this module."""
    yield from private_bentoml_home(tmp_path_factory)


@pytest.fixture(scope="module")
def tag(store, tiny_serving):
    from serving.lifecycle.registry import register

    return register(tiny_serving)


def test_register_stores_the_artifact_with_its_manifest(tag, tiny_serving, capsys):
    import bentoml

    from serving.lifecycle.registry import artifact_dir

    name, version = tag.split(":")
    assert name.startswith("fanzha-tiny") and version != "latest"  # fanzha-<model_name>
    model = bentoml.models.get(tag)
    manifest = json.loads((tiny_serving / "manifest.json").read_text(encoding="utf-8"))
    assert model.info.metadata["files_sha256"] == manifest["files"]
    assert model.info.metadata["metrics"] == manifest["metrics"], "training metrics travel with the model"
    assert model.info.labels["project"] == "fanzha"
    folder = artifact_dir(tag)
    assert Predictor(folder).classify(["你好"])[0]["label"] == Predictor(tiny_serving).classify(["你好"])[0]["label"]
    assert cli_main(["register", str(tiny_serving)]) == 0, "registering again is a no-op"
    assert capsys.readouterr().out.strip() == tag


def test_registered_model_links_its_mlflow_run(store, tiny_serving, tmp_path):
    import bentoml

    from serving.lifecycle.registry import register

    artifact = tmp_path / "serving"
    shutil.copytree(tiny_serving, artifact)
    manifest = json.loads((artifact / "manifest.json").read_text(encoding="utf-8"))
    run = {"run_id": "0123abcd", "experiment_id": "1", "tracking_uri": "sqlite:///artifacts/mlflow.db"}
    manifest["metrics"]["run"] = {**manifest["metrics"].get("run", {}), "mlflow": run}  # as fanzha train records it
    (artifact / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    assert bentoml.models.get(register(artifact, name="fanzha-tracked")).info.metadata["mlflow"] == run


def test_tags_must_be_pinned_and_known(tag):
    from serving.lifecycle.registry import artifact_dir, pinned

    for bad in ("fanzha-tiny", "fanzha-tiny:latest"):
        with pytest.raises(ArtifactError, match="not pinned"):
            pinned(bad)
    with pytest.raises(ArtifactError, match="fanzha register"):
        artifact_dir("fanzha-tiny:0000-deadbeef")


def test_a_tampered_artifact_is_not_registered(store, tiny_serving, tmp_path):
    from serving.lifecycle.registry import register

    broken = tmp_path / "serving"
    shutil.copytree(tiny_serving, broken)
    (broken / "model.onnx").write_bytes(b"not a model")
    with pytest.raises(IntegrityError, match="model.onnx: sha256 differs"):
        register(broken, name="fanzha-broken")


def test_build_settings_pin_the_serve_extra():
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    build = project["tool"]["bentoml"]["build"]
    assert build["service"] == "serving.service:Fanzha"
    assert set(project["project"]["optional-dependencies"]["serve"]) <= set(build["python"]["packages"])
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert "bento: $(STAMP) ##" in makefile and "--arg model_tag=" in makefile


def test_bento_build_and_serve(tag, store, tmp_path):
    env = dict(os.environ, BENTOML_HOME=str(store))
    env.pop("FANZHA_MODEL", None)
    env.pop("FANZHA_MODEL_TAG", None)
    build = subprocess.run([sys.executable, "-m", "bentoml", "build", "--arg", f"model_tag={tag}", "-o", "tag", "."],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    bento_tag = build.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    bento_dir = store / "bentos" / bento_tag.replace(":", "/")
    info = yaml.safe_load((bento_dir / "bento.yaml").read_text(encoding="utf-8"))
    assert info["args"] == {"model_tag": tag}
    assert [m["tag"] for m in info["services"][0]["models"]] == [tag]
    assert (bento_dir / "src/serving/service.py").is_file() and (bento_dir / "src/configs/policy.yaml").is_file()
    assert not (bento_dir / "src/training").exists() and not (bento_dir / "src/tests").exists()
    requirements = (bento_dir / "env/python/requirements.txt").read_text(encoding="utf-8")
    assert "onnxruntime" in requirements and "torch" not in requirements

    port = free_port()  # serve the Bento itself, from outside the repository: its own code and pinned model
    proc = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", bento_tag, "--host", "127.0.0.1", "--port", str(port)],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            assert proc.poll() is None, "the Bento server exited"
            try:
                if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        assert httpx.get(base + "/info").json()["model_tag"] == tag
        r = httpx.post(base + "/classify", json={"texts": ["你好"]}, timeout=30)
        assert r.status_code == 200 and r.json()[0]["label"]
    finally:
        stop_server(proc)


def test_serve_from_a_model_tag_and_refuse_an_unpinned_one(tag, store, tmp_path):
    from tests.serving.conftest import start_server

    elsewhere = tmp_path / "not-an-artifact"  # FANZHA_MODEL is ignored when a tag is given
    proc, base = start_server(elsewhere, {"FANZHA_MODEL_TAG": tag, "BENTOML_HOME": str(store)})
    try:
        assert httpx.get(base + "/info").json()["model_tag"] == tag
        assert httpx.post(base + "/classify", json={"texts": ["你好"]}, timeout=30).status_code == 200
    finally:
        stop_server(proc)
    with pytest.raises(RuntimeError, match="is not pinned"):
        start_server(elsewhere, {"FANZHA_MODEL_TAG": tag.split(":")[0] + ":latest", "BENTOML_HOME": str(store)}, timeout=60)
