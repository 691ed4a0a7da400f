"""`soup: N` (training/soup.py): N members from one initialization, their weights' mean written
as the model artifact; real tiny trainings."""
from __future__ import annotations

import hashlib
import json

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import REPO
from training.config import ConfigError, load_config
from training.soup import average_weights, member_config, members_dir
from training.train import train

HEAD = "classifier.weight"


def tiny(base, out, **overrides):
    return load_config(None, {"base_model": str(base), "output_dir": str(out), "max_steps": 6, "batch_size": 8,
                              "learning_rate": 2e-3, "max_length": 32, "data.synthetic_n": 300, "save_steps": 0,
                              "taxonomy": str(REPO / "configs/taxonomy.yaml"),
                              "policy": str(REPO / "configs/policy.yaml"), "tracking": "none", **overrides})


def weights(folder):
    return load_file(folder / "model.safetensors")


def test_members_share_the_initialization(tiny_base, tmp_path):
    """With a learning rate too small to move anything, every member is its initialization: the
    soup then equals a single seed-0 model, and not a seed-1 one (the head is drawn from the seed)."""
    still = {"learning_rate": 1e-12}
    soup = weights(train(tiny(tiny_base, tmp_path / "soup", soup=2, **still)))
    one = weights(train(tiny(tiny_base, tmp_path / "one", **still)))
    other = weights(train(tiny(tiny_base, tmp_path / "other", seed=1, **still)))
    assert (one[HEAD] - other[HEAD]).abs().max() > 1e-3  # a member drawn from seed + k would show
    for key in one:
        torch.testing.assert_close(soup[key], one[key], atol=1e-6, rtol=0)


def test_soup_is_the_mean_of_its_members_trained_alone(tiny_base, tmp_path):
    cfg = tiny(tiny_base, tmp_path / "soup", soup=2)
    out = train(cfg)
    alone = []
    for k in range(2):
        member = member_config(cfg, k)
        member.output_dir = str(tmp_path / f"alone-{k}")
        alone.append(train(member))
    assert member_config(cfg, 1).order_seed == 1 and member_config(cfg, 0).order_seed == cfg.seed
    first, second = weights(alone[0]), weights(alone[1])
    assert (first[HEAD] - second[HEAD]).abs().max() > 1e-4  # the order seed changes what a member learns
    soup, mean = weights(out), average_weights(alone)
    for key in mean:
        torch.testing.assert_close(soup[key], mean[key], atol=1e-5, rtol=1e-5)
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert [m["order_seed"] for m in metrics["soup"]["members"]] == [0, 1]
    assert "validation" in metrics and "validation" in metrics["soup"]["members"][0]
    assert not members_dir(out).exists()  # the members go once the soup is written
    assert (out / "prior.json").is_file() and (out / "variants.yaml").is_file() and (out / "data_manifest.json").is_file()
    saved = load_config(out / "train_config.yaml")
    assert saved.soup == 2 and saved.order_seed is None


def test_resume_keeps_finished_members(tiny_base, tmp_path, capsys):
    cfg = tiny(tiny_base, tmp_path / "soup", soup=2)
    train(member_config(cfg, 0))  # as a soup run killed during its second member leaves it
    capsys.readouterr()
    out = train(cfg, resume=True)
    log = capsys.readouterr().out
    assert "soup member 1 of 2" in log and "is already trained" in log
    assert "soup member 2 of 2: order_seed 1" in log
    assert (out / "model.safetensors").is_file() and not members_dir(out).exists()


def test_a_finished_member_of_another_config_is_retrained(tiny_base, tmp_path, capsys):
    cfg = tiny(tiny_base, tmp_path / "soup", soup=2)
    stale = member_config(tiny(tiny_base, tmp_path / "soup", soup=2, learning_rate=1e-3), 0)
    train(stale)
    capsys.readouterr()
    train(cfg, resume=True)
    assert "is already trained" not in capsys.readouterr().out


def test_distill_refuses_a_soup(tmp_path):
    from training.distill import load_distill_config

    path = tmp_path / "distill.yaml"
    path.write_text("soup: 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="one student"):
        load_distill_config(path)


def _write_corpus(folder, parcel_code: str):
    """A tiny corpus folder as data.sources writes it; `parcel_code` changes one training row."""
    folder.mkdir(exist_ok=True)
    for split, rows in (("train", [(f"您的快递已到，取件码{parcel_code}，请及时领取。", "normal"), ("本店周年庆全场五折，回T退订", "spam")]),
                        ("validation", [("明天上午十点开会，请准时参加", "normal")]),
                        ("test", [("我是你领导，先转2万元到这个账户", "fraud.impersonate_acquaintance")])):
        (folder / f"{split}.jsonl").write_text("".join(
            json.dumps({"text": t, "label": label, "source": "tiny", "group": f"tiny/{split}{i}", "split": split},
                       ensure_ascii=False) + "\n" for i, (t, label) in enumerate(rows)), encoding="utf-8")


def test_a_finished_member_trained_on_other_rows_is_trained_again(tiny_base, tmp_path, capsys):
    """The same config does not mean the same rows: after a corpus is rewritten (data.sources run
    again), a member that finished before would make a soup of two trainings on different data.
    The data manifest's checksums tell, before the next member trains, and that member is retrained."""
    corpus = tmp_path / "corpus"
    _write_corpus(corpus, "1234")
    cfg = tiny(tiny_base, tmp_path / "soup", soup=2, **{"data.corpus_dirs": [str(corpus)]})
    train(member_config(cfg, 0))
    _write_corpus(corpus, "5678")
    capsys.readouterr()
    out = train(cfg, resume=True)
    log = capsys.readouterr().out
    assert "soup member 1 of 2" in log and "was trained on other rows" in log and "is already trained" not in log
    manifest = json.loads((out / "data_manifest.json").read_text(encoding="utf-8"))
    trained = [f["sha256"] for f in manifest["files"] if f["path"] == str(corpus / "train.jsonl")]
    assert trained == [hashlib.sha256((corpus / "train.jsonl").read_bytes()).hexdigest()]


def test_the_soup_refuses_members_trained_on_other_rows(tiny_base, tmp_path):
    """write_soup's own check, for members it did not train itself: one trained before the corpus
    changed is refused, and nothing is written."""
    from training.examples import DataError
    from training.soup import write_soup

    corpus = tmp_path / "corpus"
    _write_corpus(corpus, "1234")
    cfg = tiny(tiny_base, tmp_path / "soup", soup=2, **{"data.corpus_dirs": [str(corpus)]})
    first = train(member_config(cfg, 0))
    _write_corpus(corpus, "5678")
    second = train(member_config(cfg, 1))
    with pytest.raises(DataError, match="other rows"):
        write_soup(cfg, [first, second], started=0.0)
    assert not (tmp_path / "soup" / "model.safetensors").exists()


def test_the_data_is_loaded_once_for_every_member_and_the_soup(tiny_base, tmp_path, monkeypatch, capsys):
    """Members and soup train on one load of the splits (it was loaded three times for a soup of
    two), which also makes them the same rows by construction."""
    import training.train as train_module

    calls = []
    real = train_module.load_splits
    monkeypatch.setattr(train_module, "load_splits", lambda *a, **k: calls.append(a) or real(*a, **k))
    capsys.readouterr()
    train(tiny(tiny_base, tmp_path / "soup", soup=2))
    assert len(calls) == 1
    assert capsys.readouterr().out.count("[fanzha] data: ") == 1  # and the log says so once
