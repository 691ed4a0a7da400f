"""The serving artifact's model card (training/model_card.py): written by `fanzha export`, covered
by the manifest, its figures taken from the artifact and from an evaluation of these weights only."""
from __future__ import annotations

import json

from fanzha.cli import main as cli
from training import model_card


def test_export_writes_a_model_card_covered_by_the_manifest(tiny_serving):
    from serving.integrity import verify_artifact

    card = (tiny_serving / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\n") and "pipeline_tag: text-classification" in card.split("---")[1]
    assert "README.md" in json.loads((tiny_serving / "manifest.json").read_text(encoding="utf-8"))["files"]
    verify_artifact(tiny_serving)
    meta = json.loads((tiny_serving / "fanzha.json").read_text(encoding="utf-8"))
    for variant, entry in meta["certified"].items():  # the decision policy as served, per shipped variant
        assert f"| {variant} |" in card and f"{entry['block_threshold']:.6f}" in card
    for section in ("## Model description", "## Intended use", "## Training data", "## Evaluation",
                    "## Decision policy", "## Limitations"):
        assert section in card
    assert "Not included: no evaluation report" in card  # the tiny model was never evaluated


def test_the_card_shows_an_evaluation_of_these_weights_and_no_other(tiny_model, tiny_serving, tmp_path):
    assert cli(["corpus", "--out", str(tmp_path / "corpus"), "--n", "400"]) == 0
    assert cli(["evaluate", str(tiny_model), str(tmp_path / "corpus"), "--out", str(tmp_path / "eval")]) == 0
    path = tmp_path / "eval" / "report.json"
    report = json.loads(path.read_text(encoding="utf-8"))
    meta = json.loads((tiny_serving / "fanzha.json").read_text(encoding="utf-8"))
    card = model_card.render(tiny_model, tiny_serving, meta, path)
    assert f"| macro-F1 | {report['model']['macro_f1']:.4f} |" in card
    assert f"{report['model']['rows']} held-out test rows" in card
    sms, spread = report["model"]["by_channel"]["sms"], report["model"]["certification_spread"]["sms"]
    low, _, high = spread["fraud_block_recall"]  # the blocked recall beside its range on other certificates
    assert f"| sms | {sms['rows']} | {sms['fraud_block_recall']:.3f} | {low:.3f}–{high:.3f} |" in card

    report["model"]["describes"]["weights_sha256"] = "0" * 64  # the same report, claimed for other weights
    other = tmp_path / "other.json"
    other.write_text(json.dumps(report), encoding="utf-8")
    card = model_card.render(tiny_model, tiny_serving, meta, other)
    assert "describes other weights" in card and "| macro-F1 |" not in card

    other.write_bytes(b"{\xff not json")  # a broken report is named, not shown and not a crash
    card = model_card.render(tiny_model, tiny_serving, meta, other)
    assert "is not a readable `fanzha evaluate` report" in card and "| macro-F1 |" not in card
