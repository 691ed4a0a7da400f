"""What a shadow model costs the answers: /classify at each concurrency without and with
`--shadow` (serving/lifecycle/live.py), the same service, model and messages.

    python -m bench.shadow --serving artifacts/sms/serving --shadow artifacts/demo/serving [--levels 1,8] [--seconds 10]

Part `shadow` of `make bench` when a shadow artifact is given (`--shadow-serving`). The shadow
scores every batch after the champion answered, on one lower-priority ORT thread
(FANZHA_SHADOW_THREADS=1) and drops batches when it falls behind; the figures are the latency
cost of that, the share of messages it scored and dropped, and its disagreements.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.request
from pathlib import Path


def _metrics(base: str) -> dict:
    with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {"scored": 0.0, "dropped": 0.0, "disagreements": 0.0}
    for line in text.splitlines():
        for key, name in (("scored", "fanzha_shadow_scored_total"), ("dropped", "fanzha_shadow_dropped_total"),
                          ("disagreements", "fanzha_shadow_disagreements_total")):
            if re.match(name + r"(\{| )", line):
                out[key] += float(line.rsplit(" ", 1)[1])
    return out


def _answers(base: str, payloads: list[bytes], n: int = 200) -> list[tuple]:
    """(label, action, fraud_score) of the first `n` requests' messages, in order."""
    out = []
    for body in payloads[:n]:
        request = urllib.request.Request(base + "/classify", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as r:
            out += [(x["label"], x["action"], round(x["fraud_score"], 4)) for x in json.loads(r.read())]
    return out


def run(serving: Path, shadow: Path, payloads: list[bytes], levels, seconds: float, requests: int, log=print,
        env: dict | None = None) -> dict:
    from bench import load
    from bench.servers import fanzha_service

    out: dict = {"shadow": str(shadow), "without": [], "with": []}
    answers = {}
    for key, extra in (("without", {}), ("with", {"FANZHA_SHADOW_TAG": str(Path(shadow).resolve())})):
        with fanzha_service(serving, {**(env or {}), **extra}) as base:
            for c in levels:
                row = load.run(base + "/classify", payloads, c, seconds, requests)
                out[key].append(row)
                log(f"[bench] shadow={key:7s} concurrency {c:3d}: p50 {row['p50_ms']:7.2f} ms p99 {row['p99_ms']:7.2f} ms "
                    f"{row['throughput_rps']:7.1f} req/s errors {row['errors']}")
            answers[key] = _answers(base, payloads)
            if key == "with":
                out["shadow_metrics"] = _metrics(base)
    out["answers_compared"] = len(answers["without"])
    out["answers_changed"] = sum(a != b for a, b in zip(answers["without"], answers["with"]))
    out["ratios"] = {f"c{a['concurrency']}": {"p50_with_vs_without": round(b["p50_ms"] / a["p50_ms"], 2),
                                              "p99_with_vs_without": round(b["p99_ms"] / a["p99_ms"], 2),
                                              "throughput_with_vs_without": round(b["throughput_rps"] / a["throughput_rps"], 2)}
                     for a, b in zip(out["without"], out["with"]) if a["p50_ms"] and a["throughput_rps"]}
    return out


def markdown(part: dict) -> list[str]:
    m = part.get("shadow_metrics", {})
    lines = [f"**Shadow** (`--shadow {part['shadow']}`): shadow scored {m.get('scored', 0):.0f} messages, dropped "
             f"{m.get('dropped', 0):.0f}, disagreed on {m.get('disagreements', 0):.0f}; answers changed by the "
             f"shadow: {part.get('answers_changed')} of {part.get('answers_compared')}", "",
             "| concurrency | p50 ms without / with | p99 ms without / with | req/s without / with |", "|---:|---:|---:|---:|"]
    for a, b in zip(part["without"], part["with"]):
        lines.append(f"| {a['concurrency']} | {a['p50_ms']} / {b['p50_ms']} | {a['p99_ms']} / {b['p99_ms']} | "
                     f"{a['throughput_rps']} / {b['throughput_rps']} |")
    return lines + [""]


def main(argv=None) -> int:
    from bench import load

    parser = argparse.ArgumentParser(prog="python -m bench.shadow", description=__doc__.split("\n\n")[0])
    parser.add_argument("--serving", type=Path, required=True)
    parser.add_argument("--shadow", type=Path, required=True)
    parser.add_argument("--levels", default="1,8")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    from data.synth import generate

    texts = [r["text"] for r in generate(2000, seed=7)]
    part = run(args.serving, args.shadow, load.bodies(texts), [int(x) for x in args.levels.split(",")], args.seconds,
               100_000, lambda s: print(s, file=sys.stderr))
    print("\n".join(markdown(part)))
    print(json.dumps(part["ratios"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
