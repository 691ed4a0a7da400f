"""The README is a short front door that works, and the documentation site builds strictly.

    .venv/bin/python -m pytest -q tests/test_docs.py

The site test runs `mkdocs build --strict` (every link and anchor checked, the API reference and
the settings page generated from the code); it skips where mkdocs is not installed, except under
CI=true. docs/results/collect.py is tested on folders with the file names `make bench` and
`fanzha evaluate` write, and must never copy a message text.
"""
from __future__ import annotations

import base64
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
# a 1x1 PNG: what report.html embeds, in miniature
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fenced_lines(text: str) -> list[str]:
    """The non-empty lines inside fenced code blocks, in order, comments cut off."""
    out, inside = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            inside = not inside
            continue
        if inside and line.split("#", 1)[0].strip():
            out.append(line.split("#", 1)[0].strip())
    return out


def test_readme_is_short():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 160, "README.md: at most 160 lines; move detail into docs/"
    assert len(text.encode("utf-8")) <= 12 * 1024, "README.md: at most 12 kB; move detail into docs/"


def test_readme_starts_with_demo_then_test():
    assert fenced_lines(README.read_text(encoding="utf-8"))[:2] == ["make demo", "make test"]


def test_readme_relative_links_resolve():
    targets = [t for t in LINK.findall(README.read_text(encoding="utf-8"))
               if not re.match(r"^[a-z]+:", t) and not t.startswith("#")]
    assert targets, "the README links into docs/"
    missing = [t for t in targets if not (REPO / t.split("#", 1)[0]).is_file()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


@pytest.mark.slow
def test_mkdocs_build_strict(tmp_path):
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("mkdocs / mkdocs-material not installed under CI: make setup installs the docs extra")
        pytest.skip("mkdocs and mkdocs-material are not installed (pip install -e '.[docs]')")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                         cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    reference = (tmp_path / "site" / "api" / "reference.html").read_text(encoding="utf-8")
    assert "/classify" in reference and "ValidationError" in reference, "the API reference is generated"
    settings = (tmp_path / "site" / "operations" / "settings.html").read_text(encoding="utf-8")
    assert "FANZHA_API_KEY" in settings and "FANZHA_MAX_QUEUE" in settings, "the settings page is generated"
    site = "".join(p.read_text(encoding="utf-8") for p in (tmp_path / "site").rglob("*.html"))
    assert "fonts.googleapis.com" not in site and "cdn.jsdelivr" not in site, "the site loads nothing from a CDN"


def bench_output(folder: Path) -> Path:
    """What `python -m bench.run --quick --out FOLDER` writes, with bench.run's own Markdown."""
    from bench.run import markdown, ratios

    level = lambda c: {"concurrency": c, "p50_ms": 2.0, "p99_ms": 4.0, "throughput_rps": 400.0, "errors": 0}  # noqa: E731
    results = {"model": "artifacts/demo/model", "serving": "artifacts/demo/serving", "max_length": 64, "messages": 128,
               "median_chars": 40, "quick": True,
               "machine_before": {"load_avg_1_5_15": [0.1, 0.1, 0.1], "cores": 2, "time": "2026-12-02 12:00:00"},
               "machine_after": {"load_avg_1_5_15": [0.2, 0.1, 0.1], "cores": 2, "time": "2026-12-02 12:01:00"},
               "service": {"levels": [level(1), level(8)], "variant": "opt", "batching": None, "env": {}}}
    results["ratios"] = ratios(results)
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(results), encoding="utf-8")
    (folder / "results.md").write_text(markdown(results), encoding="utf-8")
    (folder / "serving").mkdir()
    (folder / "serving" / "model.onnx").write_bytes(b"\0" * 4096)  # an exported artifact: stays behind
    return folder


def evaluate_output(folder: Path) -> Path:
    """The report folder of `fanzha evaluate` (report.json, report.html), with message texts in it."""
    model = {"rows": 10, "macro_f1": 0.9, "fraud_vs_rest": {"roc_auc": 0.99},
             "describes": {"model": "artifacts/demo/model", "weights_sha256": "ab" * 32, "policy": {"fraud_block": 0.97}},
             "confident_errors": {"synthetic": [{"text": "SECRET-TEXT 您的验证码", "label": "normal"}]},
             "robustness": {"messages": 3, "kinds": {"emoji": {"clean_recall": 1.0, "obfuscated_recall": 0.9,
                                                               "retained": 0.9, "example": "SECRET-DISGUISE 加薇❤"}}},
             "probes": {"independent": {"rows": 5, "note": "written blind", "all": {"rows": 5, "fraud_recall": 0.8}}}}
    folder.mkdir(parents=True)
    (folder / "report.json").write_text(json.dumps({"model": model, "baseline": {"rows": 10, "macro_f1": 0.8}},
                                                   ensure_ascii=False), encoding="utf-8")
    plot = base64.b64encode(PNG).decode()
    (folder / "report.html").write_text(
        f'<html><body><h2>Headline</h2><table></table><h2>Most confident mistakes</h2><td>SECRET-TEXT</td>'
        f'<h2>Confusion matrices</h2><img alt="plot" src="data:image/png;base64,{plot}"></body></html>', encoding="utf-8")
    return folder


def test_collect_bench_and_evaluate(tmp_path):
    collect = load(REPO / "docs" / "results" / "collect.py")
    results_md = load(REPO / "docs" / "gen" / "results_md.py")
    results = tmp_path / "results"
    results.mkdir()
    assert "No results collected yet" in results_md.render("bench", results)

    bench = bench_output(tmp_path / "bench")
    assert collect.main([str(bench), "--name", "tiny-bench", "--kind", "bench", "--results-dir", str(results),
                         "--command", "python -m bench.run --model M --quick --out X"]) == 0
    assert sorted(p.name for p in (results / "tiny-bench").iterdir()) == ["meta.json", "results.json", "results.md"]
    meta = json.loads((results / "tiny-bench" / "meta.json").read_text(encoding="utf-8"))
    assert meta["command"] == "python -m bench.run --model M --quick --out X"
    assert meta["measured"] == "2026-12-02 12:00:00" and meta["machine"]["cores"] >= 1 and meta["machine"]["cpu_model"]

    evaluation = evaluate_output(tmp_path / "eval")
    assert collect.main([str(evaluation), "--name", "tiny-eval", "--kind", "evaluate", "--results-dir", str(results),
                         "--command", "fanzha evaluate M D"]) == 0
    copied = results / "tiny-eval"
    assert sorted(p.name for p in copied.iterdir()) == ["confusion-matrices.png", "meta.json", "report.json"]
    assert (copied / "confusion-matrices.png").read_bytes() == PNG
    for path in copied.iterdir():
        assert b"SECRET" not in path.read_bytes(), f"{path.name} holds a message text"
    report = json.loads((copied / "report.json").read_text(encoding="utf-8"))
    assert report["model"]["macro_f1"] == 0.9 and "confident_errors" not in report["model"]

    page = results_md.render("bench", results)
    assert "tiny-bench" in page and "2026-12-02 12:00:00" in page and "python -m bench.run --model M --quick --out X" in page
    assert "A --quick run" in page, "a quick run is labelled as measuring nothing"
    page = results_md.render("evaluate", results)
    assert "fanzha evaluate M D" in page and "results/tiny-eval/confusion-matrices.png" in page and "SECRET" not in page


def test_collect_refuses_a_folder_of_another_kind_and_keeps_the_earlier_run(tmp_path):
    collect = load(REPO / "docs" / "results" / "collect.py")
    results = tmp_path / "results"
    bench = bench_output(tmp_path / "bench")
    argv = ["--name", "run", "--command", "c", "--results-dir", str(results)]
    assert collect.main([str(bench), "--kind", "bench", *argv]) == 0
    with pytest.raises(SystemExit, match="no report.json"):
        collect.main([str(bench), "--kind", "evaluate", *argv])
    assert sorted(p.name for p in results.iterdir()) == ["run"], "no partial folder left behind"
    assert json.loads((results / "run" / "meta.json").read_text(encoding="utf-8"))["kind"] == "bench"


def test_collect_gate_keeps_the_verdict_and_no_message_text(tmp_path):
    """A gate report (serving.lifecycle.gate.write_report's gate.json) collected for lifecycle.md:
    the gates and slices stay, the negative flips' detail keeps the golden ids only."""
    from serving.lifecycle.gate import write_report

    collect = load(REPO / "docs" / "results" / "collect.py")
    results_md = load(REPO / "docs" / "gen" / "results_md.py")
    report = {"created": "2026-12-03T08:00:00Z", "passed": False, "failed": ["negative_flips"],
              "candidate": {"folder": "artifacts/sms-student/serving", "model_name": "fanzha-sms", "version": "s1"},
              "champion": {"folder": "artifacts/sms/serving", "model_name": "fanzha-sms", "version": "t1"},
              "golden": {"version": "1-abc", "rows": 8, "fingerprint": "f" * 12},
              "gates": [{"name": "false_block_ceiling", "candidate": 0.0004, "champion": 0.0005, "limit": 0.001,
                         "passed": True, "detail": "1 of 4940 legitimate rows blocked"},
                        {"name": "negative_flips", "candidate": 2, "champion": 0, "limit": 1, "passed": False,
                         "detail": "g-17: SECRET-TEXT 您的快递已签收; g-40: SECRET-TEXT 尊敬的客户"}],
              "slices": [{"field": "region", "value": "tw", "part": "fraud", "metric": "blocked_recall", "rows": 39,
                          "candidate": 0.7, "champion": 0.72, "limit": 0.67, "passed": True, "skipped": None,
                          "blocked_candidate": 0.7, "blocked_champion": 0.72}]}
    write_report(report, tmp_path / "gate")
    results = tmp_path / "results"
    assert collect.main([str(tmp_path / "gate"), "--name", "tiny-gate", "--kind", "gate", "--results-dir", str(results),
                         "--command", "python -m serving.lifecycle.gate --candidate C"]) == 0
    copied = results / "tiny-gate"
    assert sorted(p.name for p in copied.iterdir()) == ["gate.json", "meta.json"]
    for path in copied.iterdir():
        assert b"SECRET" not in path.read_bytes(), f"{path.name} holds a message text"
    kept = json.loads((copied / "gate.json").read_text(encoding="utf-8"))
    assert kept["gates"][1]["detail"] == "g-17; g-40" and kept["failed"] == ["negative_flips"]
    meta = json.loads((copied / "meta.json").read_text(encoding="utf-8"))
    assert meta["measured"] == "2026-12-03T08:00:00Z" and meta["passed"] is False
    page = results_md.render("gate", results)
    assert "REFUSED: negative_flips" in page and "artifacts/sms-student/serving" in page and "SECRET" not in page
    assert "| region | tw | fraud | blocked_recall | 39 |" in page
    with pytest.raises(SystemExit, match="no gate.json"):
        collect.main([str(tmp_path), "--name", "x", "--kind", "gate", "--results-dir", str(results), "--command", "c"])


def test_results_pages_escape_a_pipe_once(tmp_path):
    """A command or note holding `|` stays in its cell on the results pages: escaped once, by
    data/markdown.py, not again by the page's own formatter (which showed a stray backslash)."""
    results_md = load(REPO / "docs" / "gen" / "results_md.py")
    body = results_md.table(["figure", "value"], [["command", "a | b"]])
    assert body[2] == "| command | a \\| b |"
    meta = {"measured": "2026-12-04", "command": "fanzha score in.csv | head", "files": {}}
    about = "\n".join(results_md.about(tmp_path, meta))
    assert "`fanzha score in.csv \\| head`" in about and "\\\\|" not in about
