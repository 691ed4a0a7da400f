"""The model lifecycle with real parts: a temporary BentoML store holding two tiny models of
different quality, the gate on a small golden set, aliases, and a real `bentoml serve` that
follows `@champion` through a promotion and a rollback under concurrent load, refuses a tampered
model, and scores a shadow."""
from __future__ import annotations

import html
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml

from fanzha.cli import main as cli
from tests.serving.conftest import REPO, private_bentoml_home, start_server, stop_server

pytestmark = pytest.mark.slow
TEXTS = ["【ETC服务】您的ETC认证已失效，请点击 http://etc-rz.top 重新认证", "您的验证码为 482913，5分钟内有效。",
         "双十一狂欢价！全场低至3折，回复TD退订", "妈，我手机掉水里了，这是新号，急需转账3000元",
         "明天下午三点开会，记得带材料"]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    yield from private_bentoml_home(tmp_path_factory)


@pytest.fixture(scope="module")
def tags(home, tiny_serving_better, tiny_serving):
    """(good, worse): the 300-step model blocks fraud, the 80-step one allows nearly everything."""
    from serving.lifecycle.registry import register

    good, worse = register(tiny_serving_better, "fanzha-tiny"), register(tiny_serving, "fanzha-tiny")
    assert good != worse
    return good, worse


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    """A small frozen golden set from the embedded synthetic corpus (no shared data needed)."""
    from data.golden import Sizes, build

    root = tmp_path_factory.mktemp("golden")
    assert cli(["corpus", "--out", str(root / "corpus"), "--n", "1200"]) == 0
    build(root / "golden", root / "corpus" / "test.jsonl",
          sizes=Sizes(legit=300, fraud=150, spam=60, min_per_stratum=5, disguised_per_kind=4, notices=60))
    return root / "golden"


@pytest.fixture(scope="module")
def gate_config(tmp_path_factory):
    """configs/gate.yaml with ceilings a 2-layer, 32-wide model trained for seconds can meet:
    the rules are the same, the real ceilings are tested on the real model (README)."""
    cfg = yaml.safe_load((REPO / "configs/gate.yaml").read_text(encoding="utf-8"))
    cfg["false_block"].update(max_rate=0.2, max_increase=0.02)
    cfg["recall"].update(min_blocked=0.0, min_flagged=0.0, max_drop_blocked=0.05, max_drop_flagged=0.05)
    cfg["latency"].update(max_p99_ms=500.0, calls=30, warmup=5)
    cfg["negative_flips"]["max"] = 50
    path = tmp_path_factory.mktemp("gate") / "gate.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def promote(*args) -> int:
    return cli(["promote", *args])


def test_unknown_tags_and_empty_aliases_are_one_line_errors(tags, capsys):
    assert promote("fanzha-tiny:0000-deadbeef") == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not in the BentoML model store" in err
    assert cli(["rollback", "fanzha-nothing"]) == 2
    assert "no holder" in capsys.readouterr().err
    assert promote(tags[1], "--force") == 2
    assert "--reason" in capsys.readouterr().err
    assert cli(["models", "fanzha-nothing"]) == 2


def test_gate_promotes_the_good_model_and_refuses_the_worse(tags, golden, gate_config, capsys):
    from serving.lifecycle.aliases import AliasStore

    good, worse = tags
    store = AliasStore()
    assert promote(good, "--golden", str(golden), "--gate-config", str(gate_config)) == 0, capsys.readouterr().err
    assert store.get("fanzha-tiny", "champion") == good
    err = capsys.readouterr().err
    assert "no champion (absolute ceilings only)" in err

    assert promote(worse, "--golden", str(golden), "--gate-config", str(gate_config)) == 1
    err = capsys.readouterr().err
    assert "the gate refused" in err and "recall" in err, err  # the failing gates are named
    assert store.get("fanzha-tiny", "champion") == good, "a refused candidate moves nothing"
    verdicts = store.read("fanzha-tiny")["verdicts"][worse]
    assert verdicts[-1]["passed"] is False and Path(verdicts[-1]["report"]).is_file()  # HTML stored with it
    gate = json.loads((Path(verdicts[-1]["report"]).parent / "gate.json").read_text(encoding="utf-8"))
    fraud_slices = [s for s in gate["slices"] if s["part"] == "fraud"]
    assert fraud_slices and all(0 <= s["blocked_candidate"] <= s["candidate"] <= 1 for s in fraud_slices)  # blocked ⊆ flagged
    assert all(s["blocked_champion"] is not None for s in fraud_slices)
    # the rows behind the false-block figures are listed, both models' actions beside each
    listed = gate["false_blocks"]
    for role in ("candidate", "champion"):
        assert sum(r[role] == "block" for r in listed) == gate["figures"][role]["false_blocks"]
    assert all(r["category"] != "fraud" and "block" in (r["candidate"], r["champion"]) for r in listed)
    from data.golden import text_sha256
    assert all(r["text_sha256"] == text_sha256(r["text"]) for r in listed)  # what `fanzha golden --relabel` names
    # the ceiling says how likely a model at its own certificate's rate is to pass it on this golden set
    power = gate["ceiling_power"]
    assert power["legit_rows"] == gate["figures"]["candidate"]["legit_rows"] and 0 <= power["pass_probability"] <= 1
    ceiling = next(g for g in gate["gates"] if g["name"] == "false_block_ceiling")
    assert f"with probability {power['pass_probability']:.2f}" in ceiling["detail"]
    page = Path(verdicts[-1]["report"]).read_text(encoding="utf-8")
    assert "Legitimate rows blocked" in page and all(html.escape(r["text"][:20]) in page for r in listed[:5])

    assert cli(["models", "fanzha-tiny"]) == 0
    listing = capsys.readouterr().out
    assert good in listing and "champion" in listing and "FAILED" in listing


def test_challenger_needs_no_gate_and_force_records_the_reason(tags, golden, gate_config, capsys):
    from serving.lifecycle.aliases import AliasStore

    good, worse = tags
    store = AliasStore()
    assert promote(worse, "--alias", "challenger") == 0
    assert store.get("fanzha-tiny", "challenger") == worse
    assert promote(worse, "--force", "--reason", "test: override a failed gate",
                   "--golden", str(golden), "--gate-config", str(gate_config)) == 0
    state = store.read("fanzha-tiny")
    assert state["aliases"]["champion"] == worse and state["aliases"]["previous"] == good
    last = state["history"][-1]
    assert last["forced"] is True and last["reason"] == "test: override a failed gate" and last["from"] == good
    assert cli(["rollback", "fanzha-tiny", "--reason", "test"]) == 0
    state = store.read("fanzha-tiny")
    assert state["aliases"]["champion"] == good and state["aliases"]["previous"] == worse
    capsys.readouterr()


def test_a_changed_golden_set_stops_the_gate(tags, golden, gate_config, tmp_path, capsys):
    from serving.lifecycle.aliases import AliasStore

    changed = tmp_path / "golden"
    shutil.copytree(golden, changed)
    with open(changed / "notices.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"text": "追加的一行", "label": "normal"}, ensure_ascii=False) + "\n")
    before = AliasStore().read("fanzha-tiny")["aliases"]
    assert promote(tags[1], "--golden", str(changed), "--gate-config", str(gate_config)) == 2
    assert "sha256 differs" in capsys.readouterr().err
    assert AliasStore().read("fanzha-tiny")["aliases"] == before


def _flip(home: str, tags: list[str], n: int) -> None:
    from bentoml._internal.configuration.containers import BentoMLContainer

    BentoMLContainer.bentoml_home.set(home)
    from serving.lifecycle.aliases import AliasStore

    store = AliasStore(home)
    for i in range(n):
        store.set("fanzha-race", "canary", tags[i % 2], reason=f"{os.getpid()}:{i}")
        store.record_verdict("fanzha-race", tags[0], {"passed": True, "failed": [], "by": f"{os.getpid()}:{i}"})


def test_alias_updates_survive_concurrent_callers(home, tags):
    from serving.lifecycle.aliases import AliasStore

    procs = [multiprocessing.get_context("spawn").Process(target=_flip, args=(str(home), list(tags), 25))
             for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    state = AliasStore(home).read("fanzha-race")  # valid JSON, no update lost
    assert len(state["verdicts"][tags[0]]) == 100
    moves = state["history"]
    assert all(m["from"] != m["tag"] for m in moves)  # a move to the holder it already has is no move
    assert all(b["from"] == a["tag"] for a, b in zip(moves, moves[1:])), "each move starts where the last ended"
    assert state["generation"] == 100 + len(moves)


def test_a_tampered_candidate_is_refused(home, tags, capsys):
    import bentoml

    from serving.lifecycle.registry import artifact_dir

    broken = "fanzha-tiny:broken-00000000"
    with bentoml.models.create(broken, labels={"project": "fanzha"}) as model:
        for path in artifact_dir(tags[1]).iterdir():
            if path.is_file():
                shutil.copy2(path, Path(model.path) / path.name)
    onnx = next(Path(artifact_dir(broken)).glob("model.opt.onnx"))
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx.write_bytes(bytes(data))
    assert promote(broken, "--alias", "challenger") == 2
    assert "integrity" in capsys.readouterr().err


AUTH = {"Authorization": "Bearer k"}


def metric(base: str, name: str, **labels) -> float:
    total = 0.0
    for line in httpx.get(base + "/metrics", headers=AUTH, timeout=5).text.splitlines():
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_a_service_follows_champion_under_load_and_keeps_serving_through_a_bad_swap(home, tags, golden, gate_config):
    from serving.lifecycle.aliases import AliasStore

    good, worse = tags
    store = AliasStore()
    assert store.get("fanzha-tiny", "champion") == good
    proc, base = start_server(Path("/nonexistent"), {"FANZHA_MODEL": "", "FANZHA_MODEL_TAG": "fanzha-tiny@champion",
                                                     "BENTOML_HOME": str(home), "FANZHA_MODEL_CHECK_S": "0.5",
                                                     "FANZHA_API_KEY": "k"})
    failures, answers, stop = [], [], threading.Event()

    def client():
        with httpx.Client(timeout=30, headers=AUTH) as http:
            while not stop.is_set():
                r = http.post(base + "/classify", json={"texts": TEXTS})
                if r.status_code != 200 or len(r.json()) != len(TEXTS):
                    failures.append((r.status_code, r.text[:200]))
                answers.append(1)

    def wait_for(tag: str, timeout: float = 30) -> float:
        started = time.time()
        while time.time() - started < timeout:
            if httpx.get(base + "/info", headers=AUTH, timeout=5).json()["model_tag"] == tag:
                return time.time() - started
            time.sleep(0.1)
        raise AssertionError(f"the service did not swap to {tag} in {timeout}s")

    try:
        assert httpx.get(base + "/info", headers=AUTH, timeout=5).json()["model_tag"] == good
        assert metric(base, "fanzha_model_info", tag=good) == 1
        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(1)
        store.set("fanzha-tiny", "champion", worse, reason="test: swap under load", forced=True)
        wait_for(worse)
        time.sleep(1)
        assert cli(["rollback", "fanzha-tiny"]) == 0
        wait_for(good)
        time.sleep(1)
        # a tampered holder (the alias moved by hand onto a broken copy) is refused; the old model keeps serving
        store.set("fanzha-tiny", "champion", "fanzha-tiny:broken-00000000", reason="test: broken")
        deadline = time.time() + 20
        while metric(base, "fanzha_model_swaps_total", result="failed") < 1 and time.time() < deadline:
            time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join(30)
        assert metric(base, "fanzha_model_swaps_total", result="failed") >= 1
        info = httpx.get(base + "/info", headers=AUTH, timeout=5).json()
        assert info["model_tag"] == good and info["last_swap"]["result"] == "failed"
        assert metric(base, "fanzha_model_swaps_total", result="ok") >= 2
        assert not failures, failures[:3]
        assert len(answers) > 20
        # the admin endpoint checks now; it needs the key
        assert httpx.post(base + "/admin/reload-model", timeout=10).status_code == 401
        store.set("fanzha-tiny", "champion", good, reason="test: back")
        r = httpx.post(base + "/admin/reload-model", headers=AUTH, timeout=30)
        assert r.status_code == 200 and r.json()["tag"] == good
    finally:
        stop.set()
        stop_server(proc)


def test_shadow_counts_disagreements_and_changes_no_answer(home, tags, tiny_serving_better, tmp_path):
    from serving.lifecycle.registry import artifact_dir
    from serving.predictor import Predictor

    good, worse = tags
    shadow_log = tmp_path / "shadow.jsonl"
    proc, base = start_server(tiny_serving_better, {"FANZHA_SHADOW_TAG": worse, "BENTOML_HOME": str(home),
                                             "FANZHA_SHADOW_LOG": str(shadow_log)})
    try:
        texts = TEXTS * 8
        got = [r for i in range(0, len(texts), 5)
               for r in httpx.post(base + "/classify", json={"texts": texts[i:i + 5]}, timeout=30).json()]
        deadline = time.time() + 20
        while metric(base, "fanzha_shadow_scored_total") < len(texts) and time.time() < deadline:
            time.sleep(0.2)
        assert metric(base, "fanzha_shadow_scored_total") == len(texts)
        mine = Predictor(tiny_serving_better).classify(texts)
        assert [r["action"] for r in got] == [r["action"] for r in mine], "the shadow changes no answer"
        challenger = Predictor(artifact_dir(worse)).classify(texts, with_scores=False)
        differ = sum(a["action"] != b["action"] for a, b in zip(mine, challenger))
        assert differ > 0, "the two models must disagree somewhere for this test to mean anything"
        assert metric(base, "fanzha_shadow_disagreements_total") == differ
        info = httpx.get(base + "/info", timeout=5).json()["shadow"]
        assert info["tag"] == worse and info["scored"] == len(texts)
    finally:
        stop_server(proc)
    lines = [json.loads(line) for line in shadow_log.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == len(texts) and all("text" not in line for line in lines)
    assert sum(line["champion"]["action"] != line["challenger"]["action"] for line in lines) == differ
    out = subprocess.run([sys.executable, "-m", "fanzha", "diff", "--shadow", str(shadow_log)], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"{differ} of {len(texts)}" in out.stdout


def test_a_golden_set_too_small_for_the_ceiling_says_so(tiny_serving):
    """At the SMS certificate's rate, 4,940 legitimate golden rows refuse most models that meet
    their certificate: the ceiling's detail says so and names the fix; 17,957 rows do not."""
    from serving.lifecycle.gate import ceiling_power
    from serving.predictor import Predictor

    pred = Predictor(tiny_serving)
    pred.certified = {**pred.certified, "validation": {**pred.certified["validation"], "false_block_rate": 5 / 11453}}
    fb = {"max_rate": 0.001, "confidence": 0.95}
    small, large = ceiling_power(pred, 4940, fb), ceiling_power(pred, 17957, fb)
    assert small["pass_probability"] < 0.5 and "too small" in small["detail"] and "--legit" in small["detail"]
    assert large["pass_probability"] > 0.8 and "too small" not in large["detail"]
