"""A larger Chinese base trains and evaluates through the same path as m3e-small (issue 19).

    fanzha train --config configs/sms.yaml --set base_model=hfl/chinese-roberta-wwm-ext \
                 --set output_dir=artifacts/experiments/sms-roberta

The test never downloads (no hub at run time, in tests or CI): it runs only where the base is
already in the local Hugging Face cache (e.g. after `huggingface-cli download
hfl/chinese-roberta-wwm-ext` on a machine with a hub), and skips itself elsewhere, saying so.
It trains the SMS config's shape for a few steps on the synthetic corpus, then evaluates.

Expected cost (estimated from the architectures, not measured here): chinese-roberta-wwm-ext
and bert-base-chinese are 12 layers × 768 wide against m3e-small's 4 × 512, about 7× the
compute per token, so the 2-core SMS run (~52 min) would take several hours, and serving
latency grows about as much; on one GPU the run takes minutes.
"""
from __future__ import annotations

import pytest

from tests.conftest import REPO

BASES = ("hfl/chinese-roberta-wwm-ext", "bert-base-chinese")


def _cached(repo_id: str):
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(repo_id, local_files_only=True)
    except Exception:  # noqa: BLE001 — not in the cache (or no hub library): not available here
        return None


@pytest.mark.slow
@pytest.mark.parametrize("base", BASES)
def test_a_larger_base_trains_and_evaluates_on_the_sms_config(base, tmp_path, monkeypatch):
    if _cached(base) is None:
        pytest.skip(f"{base} is not in the local Hugging Face cache; this test never downloads "
                    "(download it where a hub is reachable to run it)")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    train_and_evaluate_sms_shape(base, tmp_path)


@pytest.mark.slow
def test_the_same_path_with_a_local_base_folder(tiny_base, tmp_path, monkeypatch):
    """What the test above runs, on a base that is here (a local folder): so its path is checked
    on every machine, not only where the larger bases are cached."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    train_and_evaluate_sms_shape(str(tiny_base), tmp_path)


def train_and_evaluate_sms_shape(base: str, tmp_path) -> None:
    from training.config import load_config
    from training.evaluate import main as evaluate
    from training.train import train

    cfg = load_config(REPO / "configs" / "sms.yaml", {
        "base_model": base, "output_dir": str(tmp_path / "model"), "max_steps": 6, "batch_size": 8,
        "max_length": 64, "data.synthetic_n": 400, "data.corpus_dirs": [], "data.caps": {}, "data.repeat": {},
        "tracking": "none", "save_steps": 1000})
    model = train(cfg)
    assert (model / "model.safetensors").is_file() and (model / "metrics.json").is_file()
    corpus = model / "_eval"
    from data.synth import write_corpus

    write_corpus(corpus, n=300, seed=1)
    assert evaluate([str(model), str(corpus), "--out", str(tmp_path / "eval"), "--no-baseline"]) in (0, None)
    assert (tmp_path / "eval" / "report.html").is_file()
