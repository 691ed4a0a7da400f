"""`make bench` runs end to end on the tiny model (a check that it works, not a measurement):
engines, the real BentoML service (/classify, and /chat alone and beside SMS), the same service
over a null model (the HTTP floor) and the FastAPI +
pipeline peer under the HTTP load generator,
normalization, batch scoring, the feedback campaigns (on the shared data) and a student beside
the model, written as JSON and Markdown with the ratios."""
import json
import subprocess
import sys

from tests.conftest import REPO


def test_bench_quick_runs_every_part_and_writes_ratios(tiny_model, tiny_serving, tiny_serving_better, tmp_path,
                                                       shared_data_dir):
    out = tmp_path / "bench"
    run = subprocess.run([sys.executable, "-m", "bench.run", "--model", str(tiny_model), "--serving", str(tiny_serving),
                          "--out", str(out), "--quick", "--levels", "1,4", "--chat-levels", "1,2",
                          "--shadow-serving", str(tiny_serving_better), "--shadow-levels", "1,4",
                          # the student part's wiring, with the better tiny model standing in for a student
                          "--student", str(tiny_serving_better.parent / "model"), "--student-serving", str(tiny_serving_better)],
                         cwd=REPO, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert set(results["engines"]) >= {"pipeline", "torch", "ort-fp32", "ort-opt", "ort-int8"}
    for kind in ("service", "floor", "peer"):
        levels = results[kind]["levels"]
        assert [x["concurrency"] for x in levels] == [1, 4]
        assert all(x["requests"] > 0 and x["errors"] == 0 for x in levels), levels
    chat = results["chat"]  # /chat alone at each level, and SMS with a /chat load beside it
    assert [x["concurrency"] for x in chat["levels"]] == [1, 2]
    for x in chat["levels"] + [chat["sms_alone"], chat["sms_with_chat"], chat["chat_background"]]:
        assert x["requests"] > 0 and x["errors"] == 0, chat
    assert results["ratios"]["sms_p99_with_chat_vs_alone"] > 0
    assert results["normalize_us_per_message"] > 0
    ratios = results["ratios"]
    assert ratios["service_vs_peer"] > 0 and ratios["service_vs_ort"] > 0 and ratios["int8_vs_fp32_batch32_throughput"] > 0
    assert ratios["floor_p50_ms"] > 0 and 0 < ratios["floor_share_of_service_p50"]
    assert set(ratios["service_vs_floor_throughput_by_level"]) == {"1", "4"}  # JSON keys
    shadow = results["shadow"]  # /classify without and with a shadow model beside it
    assert [x["concurrency"] for x in shadow["with"]] == [1, 4]
    assert all(x["errors"] == 0 for x in shadow["with"] + shadow["without"])
    assert shadow["shadow_metrics"]["scored"] + shadow["shadow_metrics"]["dropped"] > 0
    assert shadow["answers_compared"] > 0 and shadow["answers_changed"] == 0, "a shadow never changes an answer"
    assert results["mixed"]["service"]["levels"] and results["mixed"]["ort"]["sorted_msg_per_s"] > 0
    campaigns = results["campaigns"]  # the feedback campaigns on the shared data, small stores in --quick
    assert [x["stored"] for x in campaigns["sizes"]] == [500, 2000], campaigns
    assert all(x["lookup_us_per_msg"] > 0 and x["legit_messages"] > 0 and x["variant_recall"] > 0
               for x in campaigns["sizes"])
    assert [p["blocked"] for p in campaigns["post_to_block"]] == [True, True]
    student = results["student"]  # engines, service and peer of a second model, same messages and levels
    assert {"ort-fp32", "ort-opt"} <= set(student["engines"])
    for kind in ("service", "peer"):
        assert [x["concurrency"] for x in student[kind]["levels"]] == [1, 4]
        assert all(x["requests"] > 0 and x["errors"] == 0 for x in student[kind]["levels"])
    assert ratios["student_service_vs_peer"] > 0 and ratios["student_service_vs_ort"] > 0
    assert ratios["teacher_vs_student_http_p50"] > 0
    assert {"student_http_p50_ms", "student_http_p99_ms", "student_service_vs_peer"} <= set(ratios["targets"])
    table = (out / "results.md").read_text(encoding="utf-8")
    assert "**Teacher vs student**" in table and "| HTTP c=4: p50 / p99 ms, req/s |" in table
    assert "Feedback campaigns" in table
    assert "**Shadow**" in table and "Mixed lengths" in table
    assert "floor: the service over a null model" in table
    assert "| ort-int8 |" in table and "service_vs_peer" in table and "/classify with /chat beside it" in table


def test_train_step_bench_times_each_recipe_on_the_same_batches(tiny_base, tmp_path):
    """`make bench-train`: every recipe timed on the same batches, the ratios against `before`."""
    import json as _json

    from bench import train_step

    out = tmp_path / "bench-train"
    assert train_step.main(["--config", str(REPO / "configs/default.yaml"), "--set", f"base_model={tiny_base}",
                            "--set", "data.synthetic_n=300", "--set", "max_length=32", "--set", "batch_size=8",
                            "--batches", "3", "--rounds", "2", "--out", str(out)]) == 0
    result = _json.loads((out / "train_step.json").read_text(encoding="utf-8"))
    recipes = result["recipes"]
    assert {"before", "no_attention_dropout"} <= set(recipes)
    assert recipes["before"]["speedup_vs_before"] == 1.0
    for r in recipes.values():
        assert r["step"] > 0 and len(r["step_by_round"]) == 2
        assert abs(r["forward"] + r["backward"] + r["optimizer"] - r["step"]) < 0.5
    assert result["steps_per_epoch"] > 0 and "| before |" in (out / "train_step.md").read_text(encoding="utf-8")


def test_engines_skip_a_variant_the_artifact_does_not_ship(tmp_path):
    """An artifact exported with --int8-optional may hold no int8 file: its engines are skipped, said so."""
    from bench.engines import measure, missing_variant

    (tmp_path / "model.onnx").write_bytes(b"")
    assert missing_variant("ort-int8", tmp_path) == "model.int8.onnx"
    assert missing_variant("predictor-int8", tmp_path) == "model.int8.onnx"
    assert missing_variant("ort-fp32", tmp_path) is None and missing_variant("torch", tmp_path) is None
    said = []
    assert measure(tmp_path, tmp_path, ["短信"], 32, 1, 1, engines=("ort-int8", "predictor-int8"), log=said.append) == {}
    assert all("skipped: the serving artifact has no model.int8.onnx" in line for line in said) and len(said) == 2
