"""The serving artifact carries its whole input contract (issue 15, part 4): the normalization
table, the taxonomy and the settings that shape a model's input, under its sha256 manifest; serving
reads them only from the artifact, so a non-editable install run from another folder on a copied
artifact answers exactly as the checkout does.

    .venv/bin/python -m pytest -q tests/test_artifact_contract.py      # builds the tiny fixtures
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent

# Texts that go through every normalization step: full-width, Traditional characters, symbols
# split inside words, emoji, 加薇 / v.x / V信 disguises, digit variants, a URL, a legitimate notice.
TEXTS = [
    "兼职刷单，日结３００－５００元，加★薇★信：ＡＢＣ８８６６，穩賺不賠！",
    "【中國銀行】您的賬戶異常，請點擊 http://boc-kf.top/a8 重新認證",
    "加薇信领取福利🎁，v.x: ab12，回🔥覆T退订",
    "私q 123，转 账到yhk号①②③④，zhuan zhang给我",
    "您好😀，加 微 信 日 结，❤️❤️贷kuan秒批",
    "【顺丰速运】您的快件已到达菜鸟驿站，取件码8-3-1204，请于18:00前领取。",
    "Your verification code is 483920. Do not share it.",
    "ＥＴＣ認證已失效，請點擊鏈接：etc-renz.cn",
]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_export_writes_the_input_contract_under_the_manifest(tiny_model, tiny_serving):
    from data.conversations import ANCHOR, WINDOW
    from data.normalize import NORMALIZATION_VERSION

    meta = json.loads((tiny_serving / "fanzha.json").read_text(encoding="utf-8"))
    manifest = json.loads((tiny_serving / "manifest.json").read_text(encoding="utf-8"))["files"]
    assert meta["input"] == {
        "max_length": 48, "truncation": "head_tail",
        "normalization": {"version": NORMALIZATION_VERSION, "table": "variants.yaml",
                          "table_sha256": _sha256(tiny_serving / "variants.yaml")},
        "taxonomy": "taxonomy.yaml", "chat": {"window": WINDOW, "anchor": ANCHOR},
    }
    for name in ("variants.yaml", "taxonomy.yaml", "fanzha.json"):
        assert manifest[name] == _sha256(tiny_serving / name), name
    # the tables are those the model was trained with, kept in the training artifact too
    assert (tiny_serving / "variants.yaml").read_bytes() == (REPO / "configs/variants.yaml").read_bytes()
    assert (tiny_model / "variants.yaml").read_bytes() == (REPO / "configs/variants.yaml").read_bytes()
    assert (tiny_serving / "taxonomy.yaml").read_bytes() == (REPO / "configs/taxonomy.yaml").read_bytes()
    assert (tiny_model / "taxonomy.yaml").read_bytes() == (REPO / "configs/taxonomy.yaml").read_bytes()


def _reset_default_table():
    import data.normalize as norm

    for name in ("_compiled", "_default"):  # the cached default table (before / after issue 15)
        cached = getattr(norm, name, None)
        if hasattr(cached, "cache_clear"):
            cached.cache_clear()


def test_editing_the_source_table_after_export_changes_nothing_served(tiny_serving, tmp_path, monkeypatch):
    import data.normalize as norm
    from serving.predictor import Predictor

    text = "【顺丰速运】取件码8-3-1204，请于18:00前领取。"
    before = Predictor(tiny_serving, threads=1).classify([text] + TEXTS)
    # An edit to the source tree's table (on a copy: the real file is never touched): "取件码" now
    # reads as "验证码". Training code sees it; the exported model must not.
    edited = tmp_path / "variants.yaml"
    raw = yaml.safe_load((REPO / "configs/variants.yaml").read_text(encoding="utf-8"))
    raw["variants"].setdefault("验证码", []).append("取件码")
    edited.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("FANZHA_VARIANTS", str(edited))  # how training code names another table
    real_load = norm.load_variants  # (and, for code from before FANZHA_VARIANTS, its default argument)
    monkeypatch.setattr(norm, "load_variants", lambda path=None: real_load(edited if path is None else path))
    _reset_default_table()
    try:
        assert "验证码8-3-1204" in norm.normalize(text)  # the edit is live for training code
        predictor = Predictor(tiny_serving, threads=1)
        assert predictor.classify([text] + TEXTS) == before
        assert predictor.normalize(text) == "【顺丰速运】取件码8-3-1204,请于18:00前领取。"
    finally:
        monkeypatch.undo()
        _reset_default_table()


def test_an_artifact_without_its_table_is_refused(tiny_serving, tmp_path):
    from serving.predictor import ArtifactError, Predictor

    old = tmp_path / "old"
    shutil.copytree(tiny_serving, old)
    (old / "variants.yaml").unlink()
    with pytest.raises(ArtifactError, match="re-export"):
        Predictor(old)
    meta = json.loads((old / "fanzha.json").read_text(encoding="utf-8"))
    meta.pop("input")  # an export from before the input contract
    (old / "fanzha.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(ArtifactError, match="re-export"):
        Predictor(old)


@pytest.mark.slow
def test_chat_window_written_at_export_is_what_the_chat_scorer_reads(tiny_model, tmp_path):
    """A chat model (trained on a data.conversations corpus) carries that corpus's window and anchor."""
    from serving.chat.conversation import ConversationScorer
    from serving.predictor import Predictor
    from training.export import export

    corpus = tmp_path / "chat_corpus"
    corpus.mkdir()
    (corpus / "card.json").write_text(json.dumps({"conversations": {"window": 3, "anchor": 12, "max_length": 48}}),
                                      encoding="utf-8")
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    cfg = yaml.safe_load((model / "train_config.yaml").read_text(encoding="utf-8"))
    cfg["data"]["corpus_dirs"] = [str(corpus)]
    (model / "train_config.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    out = tmp_path / "serving"
    export(model, out, int8=False, default_variant="fp32")
    assert json.loads((out / "fanzha.json").read_text(encoding="utf-8"))["input"]["chat"] == {"window": 3, "anchor": 12}
    scorer = ConversationScorer(Predictor(out))
    assert (scorer.window, scorer.anchor) == (3, 12)


_INSTALLED = r"""
import json, sys
import data, fanzha, serving
from serving.predictor import Predictor
where = {m.__name__: m.__file__ for m in (data, fanzha, serving)}
p = Predictor(sys.argv[1], threads=1)
texts = json.loads(sys.argv[2])
from serving.batch.score import main as score  # `fanzha score`, from the installed copy
code = score(["--model", sys.argv[1], "--input", sys.argv[3], "--output", "scored.jsonl", "--threads", "1"])
print(json.dumps({"where": where, "results": p.classify(texts), "normalized": [p.normalize(t) for t in texts],
                  "score_exit": code}, ensure_ascii=False))
"""


@pytest.mark.slow
def test_a_non_editable_install_answers_exactly_as_the_checkout(tiny_serving, tmp_path):
    from serving.predictor import Predictor

    # Build the wheel from a copy of the sources (nothing is written into the checkout).
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".venv", "artifacts", "tests", ".git", "__pycache__", "*.egg-info", "build", "dist", ".pytest_cache", "runs",
        ".cache", "bench"))
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(wheels), str(src)], check=True, capture_output=True, text=True, cwd=tmp_path)
    (wheel,) = wheels.glob("fanzha-*.whl")
    target = tmp_path / "installed"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile", "-q", "--target",
                    str(target), str(wheel)], check=True, capture_output=True, text=True, cwd=tmp_path)
    assert not (target / "configs").exists()  # the source tree's tables are not shipped: the artifact's are used

    artifact = tmp_path / "elsewhere" / "model"
    shutil.copytree(tiny_serving, artifact)
    work = tmp_path / "work"
    work.mkdir()
    # -S: no site-packages .pth files, so the checkout's editable finder is not installed; the
    # dependencies come from the venv's site-packages, fanzha from the installed copy only.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FANZHA_", "PYTHON"))}
    env["PYTHONPATH"] = os.pathsep.join([str(target), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    rows = tmp_path / "in.jsonl"
    rows.write_text("".join(json.dumps({"id": i, "text": t}, ensure_ascii=False) + "\n" for i, t in enumerate(TEXTS)),
                    encoding="utf-8")
    done = subprocess.run([sys.executable, "-S", "-c", _INSTALLED, str(artifact), json.dumps(TEXTS), str(rows)],
                          cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["score_exit"] == 0, done.stderr[-3000:]
    for name, file in got["where"].items():
        assert Path(file).resolve().is_relative_to(target.resolve()), (name, file)

    checkout = Predictor(tiny_serving, threads=1)
    assert got["results"] == json.loads(json.dumps(checkout.classify(TEXTS), ensure_ascii=False))
    from data.normalize import normalize

    assert got["normalized"] == [normalize(t) for t in TEXTS]
    from serving.batch.score import main as score

    assert score(["--model", str(tiny_serving), "--input", str(rows), "--output", str(tmp_path / "here.jsonl"),
                  "--threads", "1"]) == 0
    assert (work / "scored.jsonl").read_text(encoding="utf-8") == (tmp_path / "here.jsonl").read_text(encoding="utf-8")
