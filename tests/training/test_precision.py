"""`precision: auto|fp32|bf16|fp16` -> TrainingArguments, and a CUDA run (skipped without a GPU).

    pytest tests/training/test_precision.py
"""
import json

import pytest
import torch

from tests.conftest import REPO
from training.config import ConfigError, load_config
from training.distributed import precision_args, resolve_precision


def test_precision_resolution(monkeypatch):
    assert resolve_precision("auto", cuda=False) == "fp32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", cuda=True) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", cuda=True) == "fp16"
    assert resolve_precision("bf16", cuda=False) == "bf16"  # CPU autocast
    with pytest.raises(ConfigError, match="fp16 needs a CUDA GPU"):
        resolve_precision("fp16", cuda=False)
    assert precision_args("bf16") == {"bf16": True, "fp16": False}
    assert precision_args("fp32") == {"bf16": False, "fp16": False}
    with pytest.raises(ConfigError, match="precision must be one of"):
        load_config(None, {"precision": "fp8"})


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_training_uses_the_gpu_with_autocast(tiny_base, tmp_path):
    from training.train import train

    out = train(load_config(None, {"base_model": str(tiny_base), "output_dir": str(tmp_path / "model"), "max_steps": 20,
                                   "batch_size": 16, "learning_rate": 0.002, "max_length": 48, "data.synthetic_n": 300,
                                   "tracking": "none", "taxonomy": str(REPO / "configs/taxonomy.yaml"),
                                   "policy": str(REPO / "configs/policy.yaml")}))
    run = json.loads((out / "metrics.json").read_text())["run"]
    assert run["precision"] == ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
    assert run["devices"][0].startswith("cuda:0 ")
    assert (out / "model.safetensors").is_file()
