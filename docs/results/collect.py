"""Collect one benchmark or evaluation run into docs/results/NAME/, for the documentation site.

    .venv/bin/python docs/results/collect.py artifacts/bench --name sms-bench --kind bench \
        --command "make bench MODEL=artifacts/sms/model SERVING=artifacts/sms/serving"
    .venv/bin/python docs/results/collect.py artifacts/sms/model/eval --name sms-eval --kind evaluate \
        --command "fanzha evaluate artifacts/sms/model artifacts/data/all --obfuscate --probes"
    .venv/bin/python docs/results/collect.py artifacts/sms/gate --name sms-gate --kind gate \
        --command "python -m serving.lifecycle.gate --candidate ... --golden artifacts/golden --out artifacts/sms/gate"

Copies only the small summary files and writes `meta.json` (when it was measured, the machine,
the exact command, the source folder, the git commit, each copied file's sha256):

- bench (`python -m bench.run --out SRC_DIR`, what `make bench` runs): `results.json`, `results.md`.
  The exported serving artifacts, generated files and campaign stores under SRC_DIR stay behind.
- gate (`python -m serving.lifecycle.gate ... --out SRC_DIR`, what `fanzha promote` runs): `gate.json`
  with its verdict, gates, figures, slices and latency; the negative flips' detail (golden ids
  and the start of each message) is cut to the ids, and no other text is kept.
- evaluate (`fanzha evaluate ... --out SRC_DIR`, default MODEL/eval; a model folder, or the
  FILE.json of `--out FILE.json`, works too):
  `report.json` without any message text (the most confident mistakes and the disguised examples
  are removed: they are rows of ../shared/data), and the report's plots as PNG files, taken out of
  `report.html` (the HTML itself lists messages, so it is not copied).

The pages benchmarks.md and evaluation.md render every folder collected here at build time.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
KINDS = ("bench", "evaluate", "bench-train", "gate")
MAX_BYTES = 2 << 20  # a summary file larger than this is not a summary
TEXT_KEYS = {"text", "texts", "example", "examples", "confident_errors"}  # message texts, never committed
PLOT = re.compile(r"<h2>([^<]*)</h2>\s*<img[^>]*src=\"data:image/png;base64,([A-Za-z0-9+/=]+)\"")
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


ISA = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def cpu_isa() -> list[str]:
    """The vector extensions the engines' speed depends on (int8 VNNI, bf16): "AMD EPYC" alone names
    machines from AVX2-only to AVX-512-BF16, whose figures differ by 2x."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return [f for f in ISA if f in flags]
    except OSError:
        pass
    return []


def machine() -> dict:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    out = {"cpu_model": cpu_model(), "cpu_isa": cpu_isa(), "cores": os.cpu_count(), "cores_usable": usable,
           "platform": platform.platform(), "python": platform.python_version()}
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        out["memory_gib"] = round(pages * size / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    return out


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=HERE, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def without_texts(node, removed: set, where: str = ""):
    """A copy of a JSON value with every message-text field left out (their paths go into `removed`)."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in TEXT_KEYS:
                removed.add(f"{where}.{key}".lstrip("."))
                continue
            out[key] = without_texts(value, removed, f"{where}.{key}")
        return out
    if isinstance(node, list):
        return [without_texts(v, removed, where) for v in node]
    return node


def slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "plot"


def copy_without_texts(src: Path, dest: Path, name: str, what: str, mend=None) -> tuple[dict, set]:
    """SRC/NAME (JSON) written to DEST/NAME without message texts (`mend` may change it further);
    (the copy, the fields removed). A folder without NAME is refused, saying which run writes it."""
    path = src / name
    if not path.is_file():
        raise SystemExit(f"collect: {src} has no {name} — is it the --out folder of {what}?")
    removed: set = set()
    data = without_texts(json.loads(path.read_text(encoding="utf-8")), removed)
    if mend is not None:
        mend(data)
    (dest / name).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return data, removed


def collect_bench(src: Path, dest: Path) -> tuple[dict, list[str]]:
    data, removed = copy_without_texts(src, dest, "results.json", "`make bench` / python -m bench.run")
    files = ["results.json"]
    if (src / "results.md").is_file() and (src / "results.md").stat().st_size <= MAX_BYTES:
        shutil.copyfile(src / "results.md", dest / "results.md")
        files.append("results.md")
    before = data.get("machine_before") or {}
    about = {"measured": before.get("time"), "bench_cores": before.get("cores"),
             "load_avg_before": before.get("load_avg_1_5_15"),
             "load_avg_after": (data.get("machine_after") or {}).get("load_avg_1_5_15"),
             "quick": data.get("quick"), "model": data.get("model"), "serving": data.get("serving")}
    return {**about, "removed_fields": sorted(removed)}, files


def collect_bench_train(src: Path, dest: Path) -> tuple[dict, list[str]]:
    """`make bench-train` (python -m bench.train_step --out SRC): train_step.json and .md, timings only."""
    results = src / "train_step.json"
    if not results.is_file():
        raise SystemExit(f"collect: {src} has no train_step.json — is it the --out folder of `make bench-train`?")
    data = json.loads(results.read_text(encoding="utf-8"))
    shutil.copyfile(results, dest / "train_step.json")
    files = ["train_step.json"]
    if (src / "train_step.md").is_file():
        shutil.copyfile(src / "train_step.md", dest / "train_step.md")
        files.append("train_step.md")
    return {"measured": data.get("time"), "load_avg_before": data.get("load_avg_before"),
            "load_avg_after": data.get("load_avg_after"), "removed_fields": []}, files


def collect_gate(src: Path, dest: Path) -> tuple[dict, list[str]]:
    """The gate's report (gate.json), its message texts left out: the negative flips' detail keeps ids only."""
    def flips_as_ids(data: dict) -> None:
        for gate in data.get("gates", []):
            if gate.get("name") == "negative_flips" and gate.get("detail"):
                gate["detail"] = "; ".join(part.split(":", 1)[0].strip() for part in gate["detail"].split("; "))

    data, removed = copy_without_texts(src, dest, "gate.json", "python -m serving.lifecycle.gate", flips_as_ids)
    if any(g.get("name") == "negative_flips" and g.get("detail") for g in data.get("gates", [])):
        removed.add("gates.negative_flips.detail (message starts)")
    about = {"measured": data.get("created"), "passed": data.get("passed"), "failed": data.get("failed"),
             "candidate": (data.get("candidate") or {}).get("folder"), "champion": (data.get("champion") or {}).get("folder")}
    return {**about, "removed_fields": sorted(removed)}, ["gate.json"]


def collect_evaluate(src: Path, dest: Path) -> tuple[dict, list[str]]:
    if src.suffix == ".json" and src.is_file():  # `fanzha evaluate ... --out FILE.json`: FILE.html beside it
        report = src
    else:
        if not (src / "report.json").is_file() and (src / "eval" / "report.json").is_file():
            src = src / "eval"  # a model folder: its default report folder
        report = src / "report.json"
    if not report.is_file():
        raise SystemExit(f"collect: {src} has no report.json — is it the report folder of `fanzha evaluate` (MODEL/eval)?")
    data = json.loads(report.read_text(encoding="utf-8"))
    removed: set = set()
    (dest / "report.json").write_text(json.dumps(without_texts(data, removed), indent=2, ensure_ascii=False) + "\n",
                                      encoding="utf-8")
    files, plots = ["report.json"], []
    html = report.with_suffix(".html")
    if html.is_file():
        for title, payload in PLOT.findall(html.read_text(encoding="utf-8")):
            png = base64.b64decode(payload)
            name = f"{slug(title)}.png"
            if len(png) > MAX_BYTES or name in files:
                continue
            (dest / name).write_bytes(png)
            files.append(name)
            plots.append({"file": name, "title": title})
    describes = (data.get("model") or {}).get("describes") or {}
    about = {"measured": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(report.stat().st_mtime)),
             "model": describes.get("model"), "weights_sha256": describes.get("weights_sha256"), "plots": plots}
    return {**about, "removed_fields": sorted(removed)}, files


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="docs/results/collect.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("src", type=Path, help="what the run wrote: bench: its --out folder; evaluate: the report folder (MODEL/eval), a model folder, or the report .json")
    parser.add_argument("--name", required=True, help="folder name under docs/results/ (lower case, e.g. sms-bench)")
    parser.add_argument("--kind", required=True, choices=KINDS)
    parser.add_argument("--command", required=True, help="the exact command that produced SRC")
    parser.add_argument("--note", default="", help="one line shown with the results (e.g. the load on the machine)")
    parser.add_argument("--results-dir", type=Path, default=HERE, help=argparse.SUPPRESS)  # tests
    args = parser.parse_args(argv)
    if not NAME.match(args.name):
        parser.error(f"--name {args.name!r}: use lower-case letters, digits, '.', '_' and '-'")
    if not (args.src.is_dir() or (args.kind == "evaluate" and args.src.suffix == ".json" and args.src.is_file())):
        parser.error(f"{args.src} is not a folder (or, for --kind evaluate, a report .json file)")
    dest = args.results_dir / args.name
    work = args.results_dir / f".{args.name}.partial"  # a failed collect leaves an earlier run as it was
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        about, files = {"bench": collect_bench, "bench-train": collect_bench_train, "gate": collect_gate,
                        "evaluate": collect_evaluate}[args.kind](args.src, work)
        meta = {"name": args.name, "kind": args.kind, "command": args.command, "note": args.note,
                "collected": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine(), "source": str(args.src),
                "git_commit": git_commit(), **about,
                "files": {f: sha256(work / f) for f in files}}
        (work / "meta.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    if dest.exists():
        shutil.rmtree(dest)  # a name is one run: collecting again replaces it
    work.rename(dest)
    print(f"collected {len(files)} file(s) into {dest}: {', '.join(files)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
