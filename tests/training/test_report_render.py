"""The HTML evaluation report renders in a real headless browser (Debian's chromium)."""
import subprocess

import numpy as np
import pytest

from data.taxonomy import load_taxonomy
from training import report
from training.scorecard import scorecard

pytestmark = pytest.mark.slow


def test_report_renders_in_headless_chromium(tmp_path, chromium_path):
    tax = load_taxonomy()
    rng = np.random.default_rng(0)
    labels = list(tax.classes) * 20 + ["not_fraud"] * 10
    probs = rng.dirichlet(np.ones(len(tax.classes)) * 0.3, size=len(labels))
    for i, label in enumerate(labels):  # a model that is mostly right
        if label in tax.label2id and rng.random() < 0.8:
            probs[i, tax.label2id[label]] += 2
    probs /= probs.sum(axis=1, keepdims=True)
    rows = [{"text": "x", "label": l, "source": "synthetic"} for l in labels]
    card = scorecard(probs, rows, tax, 0.9)
    fraud = probs[:, [i for i, c in enumerate(tax.classes) if c.startswith("fraud.")]].sum(1)
    is_fraud = np.array([l.startswith("fraud.") for l in labels])
    plots = [("Confusion", report.confusion_plot({"model": card})), ("PR", report.pr_plot({"model": (fraud, is_fraud)})),
             ("Reliability", report.reliability_plot({"model": card["reliability"]})),
             ("Histogram", report.histogram_plot(fraud, ["fraud" if f else "normal" for f in is_fraud], 0.9))]
    page = tmp_path / "report.html"
    page.write_text(report.render("test report", {"model": card}, plots, {}), encoding="utf-8")
    shot = tmp_path / "shot.png"
    result = subprocess.run(
        [chromium_path, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,3000", f"--screenshot={shot}",
         "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    assert "Headline" in dom and dom.count("<img") == 4 and "Per source" in dom
    assert shot.is_file() and shot.stat().st_size > 10_000, "the page rendered to a non-trivial screenshot"


def test_table_cells_text_left_and_cut_numbers_formatted():
    html = report._table(["text", "p", "none"], [["长" * 300, 0.51234, None], ["<b>", 3, 0.5]])
    assert '<td class="text">' + "长" * 160 + "…</td>" in html  # long example texts are cut in the page
    assert "<td>0.5123</td>" in html and "<td>–</td>" in html and "<td>3</td>" in html
    assert '<td class="text">&lt;b&gt;</td>' in html  # escaped
