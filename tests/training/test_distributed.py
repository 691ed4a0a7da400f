"""DDP under torchrun: two CPU processes (gloo) train one model, written once by rank 0, that
matches a single-process run with the same global batch.

    pytest tests/training/test_distributed.py
"""
import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

# 368 training rows = 23 global batches of 16: no ragged last batch (DDP would pad it by repeating
# rows); no augmentation (each process would disguise its own draws); a base without dropout (each
# process draws its own masks). Then both runs see the same batches in the same order.
TINY = {"max_steps": 150, "learning_rate": 0.003, "max_length": 48, "data.synthetic_n": 600,
        "data.train_limit": 368, "augment": {}, "threads": 1, "tracking": "none",
        "taxonomy": str(REPO / "configs/taxonomy.yaml"), "policy": str(REPO / "configs/policy.yaml")}
# Measured: the two loss curves agreed to 4 decimals, the weights to 6e-4 (of values up to 1.4:
# DDP sums the gradients in another order), validation accuracy by one row of 90, test exactly.
LOSS_TOLERANCE, WEIGHT_TOLERANCE, ACCURACY_TOLERANCE, F1_TOLERANCE = 0.005, 0.01, 0.035, 0.05


@pytest.fixture(scope="module")
def dropout_free_base(tmp_path_factory):
    import shutil

    from transformers import BertConfig, BertModel

    from training.base_model import prepare_builtin

    folder = tmp_path_factory.mktemp("ddp") / "base"
    config = BertConfig(vocab_size=21128, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    BertModel(config).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(prepare_builtin("m3e-small") / name, folder / name)
    return folder


def test_torchrun_two_processes_match_one(dropout_free_base, tmp_path):
    from safetensors.torch import load_file

    from training.config import load_config
    from training.train import train

    single = train(load_config(REPO / "configs/default.yaml", {
        **TINY, "base_model": str(dropout_free_base), "output_dir": str(tmp_path / "single"), "batch_size": 16}))
    ddp = tmp_path / "ddp"
    sets = {**TINY, "base_model": dropout_free_base, "output_dir": ddp, "batch_size": 8, "augment": "{}"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "fanzha", "train", "--config", str(REPO / "configs/default.yaml"),
                           *[f"--set={k}={v}" for k, v in sets.items()]],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("model artifact written") == 1, "rank 0 alone writes the artifact"

    one, two = (json.loads((d / "metrics.json").read_text()) for d in (single, ddp))
    assert two["run"] == {**one["run"], "world_size": 2, "devices": ["cpu", "cpu"], "per_device_batch_size": 8}
    assert one["run"]["effective_batch_size"] == two["run"]["effective_batch_size"] == 16
    assert two["run"]["learning_rate"] == 0.003
    labels = [json.loads((d / "config.json").read_text())["id2label"] for d in (single, ddp)]
    assert labels[0] == labels[1] and set(one["test"]["per_class"]) == set(two["test"]["per_class"])
    manifests = [json.loads((d / "data_manifest.json").read_text()) for d in (single, ddp)]
    assert [[f["sha256"] for f in m["files"]] for m in manifests] == [[f["sha256"] for f in manifests[0]["files"]]] * 2
    assert manifests[0]["rows"] == manifests[1]["rows"] and manifests[0]["rows"]["train"] == 368

    assert one["loss_curve"][-1] < one["loss_curve"][0] - 0.3, "the run learned something"
    assert len(one["loss_curve"]) == len(two["loss_curve"])
    assert max(abs(a - b) for a, b in zip(one["loss_curve"], two["loss_curve"])) <= LOSS_TOLERANCE
    w1, w2 = (load_file(d / "model.safetensors") for d in (single, ddp))
    assert max((w1[k] - w2[k]).abs().max().item() for k in w1) <= WEIGHT_TOLERANCE
    for split in ("validation", "test"):
        assert abs(one[split]["accuracy"] - two[split]["accuracy"]) <= ACCURACY_TOLERANCE, split
        assert abs(one[split]["macro_f1"] - two[split]["macro_f1"]) <= F1_TOLERANCE, split
    for name in ("model.safetensors", "data_card.json", "train_config.yaml", "taxonomy.yaml"):
        assert (ddp / name).is_file()
    assert not (ddp / "_work").exists() and not (ddp / "checkpoints").exists()
