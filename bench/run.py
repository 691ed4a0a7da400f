"""`make bench`: one command, one run, one model, one set of messages — engines, the HTTP
service under load, and the transformers-pipeline peer under the same load.

    python -m bench.run --model artifacts/demo/model [--serving artifacts/demo/serving] [--out artifacts/bench] [--quick]
    python -m bench.run --model M --serving S --skip engines,peer --service-env FANZHA_MAX_BATCH_SIZE=32   # tuning

Messages: `data.synth.generate` (a realistic SMS length mix), the same for every part. Parts:
engines (bench/engines.py), the BentoML service started as a subprocess and the same service over
a null model (part `floor`, bench/null_model.py: constant logits, so what remains is BentoML,
JSON, validation, policy and logging), (`bentoml serve`, the
settings of serving/tuning.py plus --service-env) and the peer (bench/peer_service.py), both
under bench/load.py at each --levels concurrency (one SMS per request), /chat (8-turn
conversations at each --chat-levels concurrency, and SMS latency with and without a /chat load
beside it: /chat does not go through the SMS batcher), text normalization
µs/message (`data.normalize.benchmark`) and, where bench/score_bench.py exists, its batch-scoring
run, and the mixed part (bench/mixed.py): a generated set with ~25 % long scripts through the
service at each --mixed-levels concurrency and through raw ORT on length-sorted batches of 64,
with --student (a distilled student, fanzha distill), the student part: its engines, its service
and its pipeline peer on the same messages and levels, with a teacher-vs-student table and the
student's ratios and targets (issue 21), and, with --shadow-serving, the shadow part (bench/shadow.py): /classify at --shadow-levels
without and with a shadow model beside the served one, and the campaigns part (bench/campaigns.py):
the feedback campaigns' lookup µs/message next to the model's, index memory, false matches on
held-out legitimate SMS and POST /feedback -> blocked, with 10k and 100k stored reports (needs
../shared/data; --campaign-sizes).
Writes OUT/results.json and OUT/results.md and prints the table with the ratios the product
brief sets targets for. The machine's load average before and after is part of the record: on
shared cores, other work changes every figure.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

PARTS = ("engines", "service", "floor", "chat", "peer", "normalize", "score", "mixed", "shadow", "campaigns", "student")
TARGETS = {"http_p50_ms": 5.0, "http_p99_ms": 15.0, "service_vs_ort": 0.8, "service_vs_peer": 5.0,
           "mixed_load_vs_one_client": 1.0, "mixed_service_vs_sorted_ort": 0.8,
           # the distilled student (issue 21): one SMS at concurrency 1
           "student_http_p50_ms": 3.0, "student_http_p99_ms": 8.0, "student_service_vs_ort": 0.8,
           "student_service_vs_peer": 5.0}


def machine() -> dict:
    from serving import tuning

    return {"load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()], "cores": tuning.CORES,
            "time": time.strftime("%Y-%m-%d %H:%M:%S")}


def serving_artifact(model: Path, serving: Path | None, out: Path, name: str = "serving") -> Path:
    if serving is not None:
        if not (serving / "fanzha.json").is_file():
            raise SystemExit(f"error: {serving} is not a serving artifact; run `fanzha export {model} {serving}`")
        return serving
    serving = out / name
    if not (serving / "fanzha.json").is_file() or (serving / "fanzha.json").stat().st_mtime < (model / "config.json").stat().st_mtime:
        from fanzha.exporting import export  # certified variants, as `fanzha export`

        export(model, serving)
    return serving


def http(kind: str, start, url_path: str, payloads, levels, seconds: float, requests: int, log) -> dict:
    from bench import load

    rows = []
    with start() as base:
        info = {}
        if kind in ("service", "floor", "student"):
            import urllib.request

            with urllib.request.urlopen(base + "/info", timeout=10) as r:
                info = json.loads(r.read())
        for c in levels:
            row = load.run(base + url_path, payloads, c, seconds, requests)
            rows.append(row)
            log(f"[bench] {kind:7s} concurrency {c:3d}: p50 {row['p50_ms']:7.2f} ms p99 {row['p99_ms']:7.2f} ms "
                f"{row['throughput_rps']:7.1f} req/s errors {row['errors']}")
    return {"levels": rows, "variant": info.get("variant"), "batching": info.get("batching")}


CHAT_TURNS = 8  # turns per /chat request: a conversation so far, every prefix scored


def chat_bodies(texts: list[str], turns: int = CHAT_TURNS) -> list[bytes]:
    """/chat requests: `turns` consecutive messages as a two-party conversation."""
    return [json.dumps({"turns": [{"speaker": j % 2, "text": t} for j, t in enumerate(texts[i:i + turns])]},
                       ensure_ascii=False).encode() for i in range(0, len(texts) - turns + 1, turns)]


def chat(start, sms_payloads, chat_payloads, levels, sms_concurrency: int, seconds: float, requests: int, log) -> dict:
    """/chat alone at each level, then SMS on /classify alone and while /chat is loaded: /chat
    runs the model in the request's own thread, beside the SMS batcher, so what a chat load does
    to SMS latency is the figure to watch."""
    from bench import load

    out: dict = {"turns_per_request": CHAT_TURNS, "levels": []}
    with start() as base:
        for c in levels:
            row = load.run(base + "/chat", chat_payloads, c, seconds, requests)
            out["levels"].append(row)
            log(f"[bench] chat    concurrency {c:3d}: p50 {row['p50_ms']:7.2f} ms p99 {row['p99_ms']:7.2f} ms "
                f"{row['throughput_rps']:7.1f} conv/s errors {row['errors']}")
        alone = load.run(base + "/classify", sms_payloads, sms_concurrency, seconds, requests)
        background = max(1, sms_concurrency // 4)
        mixed, chats = load.run_together([(base + "/classify", sms_payloads, sms_concurrency),
                                          (base + "/chat", chat_payloads, background)], seconds, requests)
    out["sms_alone"], out["sms_with_chat"], out["chat_background"] = alone, mixed, chats
    log(f"[bench] sms c={sms_concurrency} alone: p50 {alone['p50_ms']:.2f} p99 {alone['p99_ms']:.2f} ms "
        f"{alone['throughput_rps']:.1f} req/s; with /chat c={background} beside it: p50 {mixed['p50_ms']:.2f} "
        f"p99 {mixed['p99_ms']:.2f} ms {mixed['throughput_rps']:.1f} req/s (chat {chats['throughput_rps']:.1f} conv/s, "
        f"errors {mixed['errors']} + {chats['errors']})")
    return out


def model_ratios(service: dict | None, peer: dict | None, engines: dict) -> dict:
    """One model's ratios: its service against its pipeline peer and against raw ORT batched
    throughput of the variant it serves."""
    out = {}
    best = lambda part: max(x["throughput_rps"] for x in part["levels"])  # noqa: E731
    if service and peer and best(peer) > 0:
        out["service_vs_peer"] = round(best(service) / best(peer), 2)
        out["service_vs_peer_by_level"] = {x["concurrency"]: round(x["throughput_rps"] / y["throughput_rps"], 2)
                                           for x, y in zip(service["levels"], peer["levels"]) if y["throughput_rps"]}
    short = {"model.onnx": "fp32", "model.opt.onnx": "opt", "model.int8.onnx": "int8"}.get(service and service["variant"])
    engine = engines.get(f"ort-{short}")
    if service and engine:
        raw = max(engine["batch32_msg_per_s"], engine["batch64_msg_per_s"])
        out["service_vs_ort"] = round(best(service) / raw, 2)
        out["service_vs_ort_engine"] = f"ort-{short} (the served variant), best of batch 32/64: {raw} msg/s"
    return out


def one_client(service: dict | None) -> dict | None:
    return next((x for x in service["levels"] if x["concurrency"] == 1), None) if service else None


def ratios(r: dict) -> dict:
    service, engines = r.get("service"), r.get("engines", {})
    out = model_ratios(service, r.get("peer"), engines)
    floor = r.get("floor")
    if service and floor:
        by_level = {x["concurrency"]: x for x in floor["levels"]}
        one, null = one_client(service), by_level.get(1)
        if one and null and one["p50_ms"]:
            out["floor_p50_ms"] = null["p50_ms"]
            out["floor_share_of_service_p50"] = round(null["p50_ms"] / one["p50_ms"], 2)
        out["service_vs_floor_throughput_by_level"] = {
            x["concurrency"]: round(x["throughput_rps"] / by_level[x["concurrency"]]["throughput_rps"], 2)
            for x in service["levels"] if by_level.get(x["concurrency"], {}).get("throughput_rps")}
    mixed = r.get("chat")
    if mixed and mixed["sms_alone"]["p99_ms"]:
        out["sms_p99_with_chat_vs_alone"] = round(mixed["sms_with_chat"]["p99_ms"] / mixed["sms_alone"]["p99_ms"], 2)
    if "ort-int8" in engines and "ort-fp32" in engines:
        i8, f32 = engines["ort-int8"], engines["ort-fp32"]
        out["int8_vs_fp32_batch32_throughput"] = round(i8["batch32_msg_per_s"] / f32["batch32_msg_per_s"], 2)
        out["int8_vs_fp32_batch1_speedup"] = round(f32["batch1"]["p50_ms"] / i8["batch1"]["p50_ms"], 2)
    if service:
        one = one_client(service)
        if one:
            out["targets"] = {"http_p50_ms": [one["p50_ms"], one["p50_ms"] <= TARGETS["http_p50_ms"]],
                              "http_p99_ms": [one["p99_ms"], one["p99_ms"] <= TARGETS["http_p99_ms"]]}
            for key in ("service_vs_ort", "service_vs_peer"):
                if key in out:
                    out["targets"][key] = [out[key], out[key] >= TARGETS[key]]
    if r.get("mixed"):
        out.update(r["mixed"]["ratios"])
        for key, value in r["mixed"]["ratios"].items():
            out.setdefault("targets", {})[key] = [value, value >= TARGETS[key]]
    student = r.get("student")
    if student:
        own = model_ratios(student.get("service"), student.get("peer"), student.get("engines", {}))
        out.update({f"student_{k}": v for k, v in own.items()})
        one = one_client(student.get("service"))
        targets = out.setdefault("targets", {})
        if one:
            targets["student_http_p50_ms"] = [one["p50_ms"], one["p50_ms"] <= TARGETS["student_http_p50_ms"]]
            targets["student_http_p99_ms"] = [one["p99_ms"], one["p99_ms"] <= TARGETS["student_http_p99_ms"]]
            teacher = one_client(service)
            if teacher and one["p50_ms"]:
                out["teacher_vs_student_http_p50"] = round(teacher["p50_ms"] / one["p50_ms"], 2)
        for key in ("service_vs_ort", "service_vs_peer"):
            if key in own:
                targets[f"student_{key}"] = [own[key], own[key] >= TARGETS[f"student_{key}"]]
    return out


def teacher_vs_student(r: dict) -> list[str]:
    """The side-by-side table of `--student`: engine batch-1 and batch-64, HTTP at each level, the
    pipeline peer on each model, and each model's ratios."""
    teacher = {"engines": r.get("engines", {}), "service": r.get("service"), "peer": r.get("peer")}
    student = r["student"]
    rows: list[tuple[str, object, object]] = []
    for engine in sorted(set(teacher["engines"]) & set(student.get("engines", {}))):
        t, s = teacher["engines"][engine], student["engines"][engine]
        rows += [(f"{engine} batch-1 p50 / p99 ms", f"{t['batch1']['p50_ms']} / {t['batch1']['p99_ms']}",
                  f"{s['batch1']['p50_ms']} / {s['batch1']['p99_ms']}"),
                 (f"{engine} batch-64 msg/s", t["batch64_msg_per_s"], s["batch64_msg_per_s"])]
    for kind in ("service", "peer"):
        if teacher[kind] and student.get(kind):
            by_level = {x["concurrency"]: x for x in student[kind]["levels"]}
            for x in teacher[kind]["levels"]:
                y = by_level.get(x["concurrency"])
                if y:
                    rows.append((f"{'HTTP' if kind == 'service' else 'pipeline peer'} c={x['concurrency']}: p50 / p99 ms, req/s",
                                 f"{x['p50_ms']} / {x['p99_ms']}, {x['throughput_rps']}",
                                 f"{y['p50_ms']} / {y['p99_ms']}, {y['throughput_rps']}"))
    ratio = r.get("ratios", {})
    for key in ("service_vs_peer", "service_vs_ort"):
        if key in ratio or f"student_{key}" in ratio:
            rows.append((key, ratio.get(key), ratio.get(f"student_{key}")))
    lines = [f"**Teacher vs student** (teacher {r['model']}, student {student['model']}; served variants "
             f"{(r.get('service') or {}).get('variant')} / {(student.get('service') or {}).get('variant')})", "",
             "| figure | teacher | student |", "|---|---:|---:|"]
    lines += [f"| {name} | {t} | {s} |" for name, t, s in rows]
    return lines + [""]


def markdown(r: dict) -> str:
    lines = [f"# fanzha bench — {r['model']} (served: {r['serving']})", "",
             f"Machine: {r['machine_before']['cores']} cores; load average before {r['machine_before']['load_avg_1_5_15']}, "
             f"after {r['machine_after']['load_avg_1_5_15']}; {r['messages']} messages from data.synth.generate "
             f"(median {r['median_chars']} chars), max_length {r['max_length']}.", ""]
    if r.get("engines"):
        lines += ["| engine | batch-1 p50 ms | batch-1 p99 ms | batch-32 msg/s | batch-64 msg/s |", "|---|---:|---:|---:|---:|"]
        lines += [f"| {k} | {v['batch1']['p50_ms']} | {v['batch1']['p99_ms']} | {v['batch32_msg_per_s']} | {v['batch64_msg_per_s']} |"
                  for k, v in r["engines"].items()]
        lines.append("")
    names = {"floor": "floor: the service over a null model (constant logits)"}
    for kind in ("service", "floor", "peer"):
        if r.get(kind):
            lines += [f"**{names.get(kind, kind)}** ({r[kind].get('variant') or 'PyTorch pipeline'}; {r[kind].get('env') or ''}) — one SMS per request",
                      "", "| concurrency | p50 ms | p99 ms | req/s | errors |", "|---:|---:|---:|---:|---:|"]
            lines += [f"| {x['concurrency']} | {x['p50_ms']} | {x['p99_ms']} | {x['throughput_rps']} | {x['errors']} |"
                      for x in r[kind]["levels"]]
            lines.append("")
    if r.get("chat"):
        c = r["chat"]
        lines += [f"**/chat** ({c['turns_per_request']} turns per request, every prefix scored)", "",
                  "| load | p50 ms | p99 ms | req/s | errors |", "|---|---:|---:|---:|---:|"]
        lines += [f"| /chat alone, concurrency {x['concurrency']} | {x['p50_ms']} | {x['p99_ms']} | {x['throughput_rps']} | {x['errors']} |"
                  for x in c["levels"]]
        for name, x in (("/classify alone", c["sms_alone"]), ("/classify with /chat beside it", c["sms_with_chat"]),
                        ("/chat beside /classify", c["chat_background"])):
            lines.append(f"| {name}, concurrency {x['concurrency']} | {x['p50_ms']} | {x['p99_ms']} | {x['throughput_rps']} | {x['errors']} |")
        lines.append("")
    if r.get("mixed"):
        m = r["mixed"]
        lines += [f"**Mixed lengths** (bench/mixed.py: {m['set']['messages']} generated messages, median "
                  f"{m['set']['median_chars']} chars, {100 * m['set']['over_150_chars']:.0f} % over 150; "
                  f"{m['service'].get('batching')}) — one message per request", "",
                  "| concurrency | p50 ms | p99 ms | req/s | errors |", "|---:|---:|---:|---:|---:|"]
        lines += [f"| {x['concurrency']} | {x['p50_ms']} | {x['p99_ms']} | {x['throughput_rps']} | {x['errors']} |"
                  for x in m["service"]["levels"]]
        lines += ["", f"Raw ORT ({m['ort']['variant']}), batches of {m['ort']['batch']}: length-sorted "
                  f"{m['ort']['sorted_msg_per_s']} msg/s, arrival order {m['ort']['arrival_order_msg_per_s']} msg/s.", ""]
    if r.get("student"):
        lines += teacher_vs_student(r)
    if r.get("shadow"):
        from bench.shadow import markdown as shadow_markdown

        lines += shadow_markdown(r["shadow"])
    if r.get("campaigns") and "sizes" in r["campaigns"]:
        from bench.campaigns import markdown as campaigns_markdown

        lines += campaigns_markdown(r["campaigns"])
    if r.get("normalize_us_per_message") is not None:
        lines += [f"Normalization: {r['normalize_us_per_message']:.1f} µs/message.", ""]
    if r.get("score"):
        lines += [f"Batch scoring (bench/score_bench.py): `{json.dumps(r['score'], ensure_ascii=False)[:400]}`", ""]
    lines += ["Ratios: " + ", ".join(f"{k} = {v}" for k, v in r["ratios"].items() if not isinstance(v, dict)), ""]
    for k, (value, met) in r["ratios"].get("targets", {}).items():
        lines.append(f"- target {k}: {value} ({'met' if met else 'NOT met'}; needs {'≤' if 'ms' in k else '≥'} {TARGETS[k]})")
    return "\n".join(lines) + "\n"


def concurrency_levels(parser, option: str, raw: str) -> list[int]:
    try:
        levels = [int(x) for x in raw.split(",")]
    except ValueError:
        levels = []
    if not levels or min(levels) < 1:
        parser.error(f"{option}: expected comma-separated positive integers, got {raw!r}")
    return levels


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="model artifact (fanzha train)")
    parser.add_argument("--serving", type=Path, help="serving artifact (default: exported into OUT/serving)")
    parser.add_argument("--out", type=Path, default=Path("artifacts/bench"))
    parser.add_argument("--quick", action="store_true", help="tiny counts: checks that everything runs, measures nothing")
    parser.add_argument("--levels", default="1,8,32,64", help="HTTP concurrency levels")
    parser.add_argument("--chat-levels", default="1,8", help="/chat concurrency levels (the chat part)")
    parser.add_argument("--mixed-levels", default="1,8,32", help="HTTP concurrency levels of the mixed-length part")
    parser.add_argument("--shadow-serving", type=Path, help="a second serving artifact: the shadow part measures "
                        "/classify without and with it as --shadow (default: part skipped)")
    parser.add_argument("--shadow-levels", default="1,8", help="HTTP concurrency levels of the shadow part")
    parser.add_argument("--student", type=Path, help="a distilled student's model artifact (fanzha distill): the "
                        "student part measures its engines, its service and its pipeline peer beside the model's, "
                        "on the same messages and levels (default: part skipped)")
    parser.add_argument("--student-serving", type=Path, help="the student's serving artifact (default: exported "
                        "into OUT/student-serving)")
    parser.add_argument("--campaign-sizes", default="10000,100000", help="stored reports of the campaigns part")
    parser.add_argument("--seconds", type=float, help="per HTTP level (default 10, quick 0.5)")
    parser.add_argument("--skip", default="", help=f"comma-separated parts to skip: {','.join(PARTS)}")
    parser.add_argument("--service-env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra environment of the service (FANZHA_MAX_BATCH_SIZE=32, FANZHA_THREADS=1, ...)")
    args = parser.parse_args(argv)
    skip = {s for s in args.skip.split(",") if s}
    if skip - set(PARTS):
        parser.error(f"--skip: unknown parts {sorted(skip - set(PARTS))}; known: {PARTS}")
    if not (args.model / "config.json").is_file():
        parser.error(f"{args.model} is not a model artifact; train one first (make train, or make demo)")
    args.out.mkdir(parents=True, exist_ok=True)
    from bench import engines, load, servers
    from data.synth import generate

    log = lambda line: print(line, flush=True)  # noqa: E731
    before = machine()
    serving = serving_artifact(args.model, args.serving, args.out)
    meta = json.loads((serving / "fanzha.json").read_text(encoding="utf-8"))
    max_length = meta["max_length"]
    texts = [r["text"] for r in generate(128 if args.quick else 1000, seed=2024)]
    seconds = args.seconds or (0.5 if args.quick else 10.0)
    levels = concurrency_levels(parser, "--levels", args.levels)
    chat_levels = concurrency_levels(parser, "--chat-levels", args.chat_levels)
    mixed_levels = concurrency_levels(parser, "--mixed-levels", args.mixed_levels)
    requests = 200 if args.quick else 100_000
    payloads = load.bodies(texts)
    env = dict(kv.split("=", 1) for kv in args.service_env)
    log(f"[bench] {args.model} / {serving} ({meta['default_variant']}); load average {before['load_avg_1_5_15']}")
    results: dict = {"model": str(args.model), "serving": str(serving), "max_length": max_length, "messages": len(texts),
                     "median_chars": int(sorted(map(len, texts))[len(texts) // 2]), "machine_before": before,
                     "quick": args.quick}
    if "normalize" not in skip:
        import data.normalize as normalize

        if hasattr(normalize, "benchmark"):
            results["normalize_us_per_message"] = normalize.benchmark(texts[:100], 2 if args.quick else 20)
    if "engines" not in skip:
        results["engines"] = engines.measure(args.model, serving, texts, max_length, 5 if args.quick else 300,
                                             64 if args.quick else 384, log=log)
    if "service" not in skip:
        results["service"] = http("service", lambda: servers.fanzha_service(serving, env), "/classify", payloads,
                                  levels, seconds, requests, log)
        results["service"]["env"] = env
    if "floor" not in skip:  # the same service over constant logits: what is not the model (bench/null_model.py)
        from bench.null_model import null_artifact

        null = null_artifact(serving, args.out / "null-serving")
        results["floor"] = http("floor", lambda: servers.fanzha_service(null, env), "/classify", payloads,
                                levels, seconds, requests, log)
    if "chat" not in skip:
        results["chat"] = chat(lambda: servers.fanzha_service(serving, env), payloads, chat_bodies(texts),
                               chat_levels, 8, seconds, requests, log)
    if "peer" not in skip:
        results["peer"] = http("peer", lambda: servers.peer_service(args.model, max_length), "/classify", payloads,
                               levels, seconds, requests, log)
    if "score" not in skip and importlib.util.find_spec("bench.score_bench") is not None:
        from bench import score_bench

        try:
            results["score"] = score_bench.run(serving, 200 if args.quick else 20_000, args.out / "score")
        except Exception as e:  # noqa: BLE001 — another engineer's part; record, do not lose the rest
            results["score"] = {"error": f"{type(e).__name__}: {e}"}
    if "mixed" not in skip:
        from bench import mixed

        mixed_texts = mixed.messages(128 if args.quick else 1000)
        part = {"set": mixed.summary(mixed_texts)}
        part["service"] = http("service", lambda: servers.fanzha_service(serving, env), "/classify",
                               load.bodies(mixed_texts), mixed_levels, seconds, requests, log)
        part["ort"] = mixed.sorted_ort(serving, mixed_texts, part["service"]["variant"], rounds=1)
        part["ratios"] = mixed.ratios(part)
        log(f"[bench] mixed   raw ORT sorted batches of 64: {part['ort']['sorted_msg_per_s']} msg/s "
            f"(arrival order {part['ort']['arrival_order_msg_per_s']}); {part['ratios']}")
        results["mixed"] = part
    if "student" not in skip and args.student:
        if not (args.student / "config.json").is_file():
            parser.error(f"--student: {args.student} is not a model artifact (fanzha distill writes one)")
        student = serving_artifact(args.student, args.student_serving, args.out, "student-serving")
        part = {"model": str(args.student), "serving": str(student)}
        if "engines" not in skip:
            part["engines"] = engines.measure(args.student, student, texts, max_length, 5 if args.quick else 300,
                                              64 if args.quick else 384, log=log)
        part["service"] = http("student", lambda: servers.fanzha_service(student, env), "/classify", payloads,
                               levels, seconds, requests, log)
        if "peer" not in skip:
            part["peer"] = http("s-peer", lambda: servers.peer_service(args.student, max_length), "/classify",
                                payloads, levels, seconds, requests, log)
        results["student"] = part
    if "shadow" not in skip and args.shadow_serving:
        from bench import shadow

        results["shadow"] = shadow.run(serving, args.shadow_serving, payloads,
                                       concurrency_levels(parser, "--shadow-levels", args.shadow_levels),
                                       seconds, requests, log, env)
    if "campaigns" not in skip:
        from bench import campaigns
        from data.sources import DataError

        sizes = (500, 2000) if args.quick else tuple(int(x) for x in args.campaign_sizes.split(","))
        try:
            results["campaigns"] = campaigns.run(serving, args.out / "campaigns", sizes, log, quick=args.quick)
        except (DataError, FileNotFoundError) as e:  # the shared data is not on this machine
            results["campaigns"] = {"error": f"{type(e).__name__}: {e}"}
            log(f"[bench] campaigns skipped: {e}")
    results["machine_after"] = machine()
    results["ratios"] = ratios(results)
    (args.out / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    table = markdown(results)
    (args.out / "results.md").write_text(table, encoding="utf-8")
    print(table)
    print(f"[bench] written {args.out / 'results.json'} and {args.out / 'results.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
