"""data/golden.py: frozen golden sets built by one command, with fingerprints that refuse a change."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from data.golden import SETS, SLICE_FIELDS, GoldenError, Sizes, build, load_golden, main
from data.synth import generate

SMALL = Sizes(legit=120, fraud=60, spam=20, min_per_stratum=5, disguised_per_kind=3, notices=20)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A held-out split in the corpus format (text, label, source, split), from the generator."""
    path = tmp_path_factory.mktemp("corpus") / "test.jsonl"
    rows = [{**r, "source": "synthetic", "split": "test"} for r in generate(600, seed=11)]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_built_by_one_command_deterministic_with_slices(corpus, tmp_path):
    a = build(tmp_path / "a", corpus, sizes=SMALL)
    b = build(tmp_path / "b", corpus, sizes=SMALL)
    assert a["fingerprint"] == b["fingerprint"], "same inputs, same golden set"
    golden = load_golden(tmp_path / "a")
    assert {r["set"] for r in golden.rows} <= set(SETS) and {"heldout", "probes", "disguised"} <= {r["set"] for r in golden.rows}
    assert all(all(f in r for f in SLICE_FIELDS) for r in golden.rows)
    assert {r["disguise"] for r in golden.rows if r["set"] == "disguised"} - {"none"}, "disguised copies name their kind"
    assert sum(r["category"] != "fraud" for r in golden.rows) >= SMALL.legit // 2


def test_a_changed_file_or_manifest_is_refused(corpus, tmp_path):
    build(tmp_path / "g", corpus, sizes=SMALL)
    heldout = tmp_path / "g" / "heldout.jsonl"
    lines = heldout.read_text(encoding="utf-8").splitlines()
    heldout.write_text("\n".join(lines[1:]) + "\n", encoding="utf-8")  # one row dropped
    with pytest.raises(GoldenError, match="sha256 differs"):
        load_golden(tmp_path / "g")
    with pytest.raises(GoldenError, match="no golden.json"):
        load_golden(tmp_path / "nothing")


def test_cli_refuses_to_overwrite_a_frozen_set_and_a_missing_corpus(corpus, tmp_path, capsys):
    args = ["--out", str(tmp_path / "g"), "--data", str(corpus), "--legit", "50", "--fraud", "20", "--spam", "5",
            "--min-per-stratum", "2", "--disguised-per-kind", "2", "--notices", "5"]
    assert main(args) == 0
    assert main(args) == 2 and "frozen" in capsys.readouterr().err
    assert main(["--out", str(tmp_path / "h"), "--data", str(tmp_path / "none.jsonl")]) == 2
    assert "not found" in capsys.readouterr().err


def test_the_independent_probes_are_golden_rows_sliced_by_region(corpus, tmp_path):
    """Both probe sets reach the gate, which decides through the served engine: the independent
    set (data/probes/independent/, written blind to the templates) with `source` per region."""
    from data.golden import PROBES

    build(tmp_path / "g", corpus, sizes=SMALL)
    probes = [r for r in load_golden(tmp_path / "g").rows if r["set"] == "probes"]
    independent = [json.loads(line) for line in (PROBES / "independent" / "probes.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    template_adjacent = (PROBES / "ood_sms.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(probes) == len(independent) + len([line for line in template_adjacent if line.strip()])
    by_source = {}
    for r in probes:
        by_source[r["source"]] = by_source.get(r["source"], 0) + 1
    assert {f"independent:{region}" for region in ("cn", "tw", "hk", "mo")} <= set(by_source)
    assert sum(n for s, n in by_source.items() if s.startswith("independent:")) == len(independent)


def test_reviewed_relabels_change_the_rows_they_name_and_are_recorded(corpus, tmp_path, capsys):
    """A legitimate golden row that is really an ad (80万's ham holds some) is relabelled by review:
    the row, its category and the manifest say so, the version changes, and bad files are refused."""
    import yaml

    from data.golden import text_sha256

    plain = build(tmp_path / "plain", corpus, sizes=SMALL)
    rows = load_golden(tmp_path / "plain").rows
    target = next(r for r in rows if r["set"] == "heldout" and r["label"] == "normal")
    fix = tmp_path / "relabel.yaml"
    fix.write_text(yaml.safe_dump([{"text_sha256": text_sha256(target["text"]), "label": "spam",
                                    "reason": "an advertisement, reviewed 2026-12-03"}], allow_unicode=True), encoding="utf-8")
    assert main(["--out", str(tmp_path / "fixed"), "--data", str(corpus), "--legit", "120", "--fraud", "60", "--spam", "20",
                 "--min-per-stratum", "5", "--disguised-per-kind", "3", "--notices", "20", "--relabel", str(fix)]) == 0
    assert '"label": "spam"' in capsys.readouterr().out
    fixed = load_golden(tmp_path / "fixed")
    assert fixed.fingerprint != plain["fingerprint"]
    changed = [r for r in fixed.rows if r["text"] == target["text"]]
    assert changed and all(r["label"] == "spam" and r["category"] == "spam" and r["label_was"] == "normal"
                           and r["relabelled"].startswith("an advertisement") for r in changed)
    assert sum(r["category"] != "fraud" and r["category"] != "spam" for r in fixed.rows) == \
        sum(r["category"] != "fraud" and r["category"] != "spam" for r in rows) - len(changed)
    applied = fixed.manifest["relabels"]["applied"]
    assert [(a["label_was"], a["label"], a["rows"]) for a in applied] == [(["normal"], "spam", len(changed))]

    for bad, message in (([{"text_sha256": "0" * 64, "label": "spam", "reason": "x"}], "match no golden row"),
                         ([{"text_sha256": text_sha256(target["text"]), "label": "nonsense", "reason": "x"}], "not a taxonomy label"),
                         ([{"text_sha256": text_sha256(target["text"]), "label": "spam", "reason": " "}], "needs its reason"),
                         ([{"text_sha256": "abc", "label": "spam", "reason": "x"}], "64 lower-case hex"),
                         ({"not": "a list"}, "expected a YAML list")):
        fix.write_text(yaml.safe_dump(bad), encoding="utf-8")
        with pytest.raises(GoldenError, match=message):
            build(tmp_path / "bad", corpus, sizes=SMALL, relabel=fix)
    fix.write_bytes(b"- {text_sha256: \xff\xfe")
    with pytest.raises(GoldenError, match="cannot read the relabel file"):
        build(tmp_path / "bad", corpus, sizes=SMALL, relabel=fix)
