"""`precision: auto|fp32|bf16|fp16` -> TrainingArguments, and a CUDA run (skipped without a GPU).

    pytest tests/training/test_precision.py
"""
import json

import pytest
import torch

from tests.conftest import REPO
from training.config import ConfigError, load_config
from training.distributed import cpu_has_native_bf16, precision_args, resolve_precision


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


def test_bf16_if_native_follows_the_cpu(monkeypatch):
    """bf16 autocast on a CPU only where it is native (AVX512-BF16 / AMX): emulated bf16 is slower
    than fp32. On a GPU `bf16-if-native` is `auto`."""
    assert cpu_has_native_bf16("fpu sse avx2 avx512f avx512_bf16 avx512_vnni")
    assert cpu_has_native_bf16("fpu avx2 amx_bf16 amx_tile")
    assert not cpu_has_native_bf16("fpu sse avx2 fma")
    assert not cpu_has_native_bf16("avx512_bf16x")  # whole flags only
    assert resolve_precision("bf16-if-native", cuda=False, cpu_bf16=True) == "bf16"
    assert resolve_precision("bf16-if-native", cuda=False, cpu_bf16=False) == "fp32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("bf16-if-native", cuda=True, cpu_bf16=True) == "fp16"
    assert load_config(None, {"precision": "bf16-if-native"}).precision == "bf16-if-native"


def test_attention_dropout_reaches_the_model(tiny_base, tmp_path):
    """`attention_dropout: 0` (configs/sms.yaml) is what the trained model's config says: SDPA's
    fused CPU kernel runs only without attention dropout (issue 20)."""
    from transformers import AutoConfig

    from training.train import train

    base_p = AutoConfig.from_pretrained(tiny_base).attention_probs_dropout_prob
    assert base_p > 0
    cfg = load_config(None, {"base_model": str(tiny_base), "output_dir": str(tmp_path / "m"), "max_steps": 2,
                             "batch_size": 4, "max_length": 24, "data.synthetic_n": 200, "attention_dropout": 0.0,
                             "tracking": "none", "save_steps": 0, "eval_max_rows": 20,
                             "taxonomy": str(REPO / "configs/taxonomy.yaml"), "policy": str(REPO / "configs/policy.yaml")})
    assert AutoConfig.from_pretrained(train(cfg)).attention_probs_dropout_prob == 0.0
    for bad in (-0.1, 1.0, "0.1", True):
        with pytest.raises(ConfigError, match="attention_dropout"):
            load_config(None, {"attention_dropout": bad})


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
