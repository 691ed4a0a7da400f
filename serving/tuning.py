"""Serving speed settings, chosen by measurement (`make bench`, README "Benchmarks"), resolved
once here from environment variables (names and defaults: data/settings.py, area "batch").

    python -m serving.tuning          # prints the settings as resolved in this environment

`cores` is the CPU affinity capped by the container's cgroup CPU quota (cgroup v2 `cpu.max`,
v1 `cpu.cfs_quota_us`/`cpu.cfs_period_us`), so a 2-CPU pod on a 64-core host runs 2 threads.

Read by `serving.predictor` (threads, spinning, variant) and `serving/service.py` (batching,
workers). Values are for the 2-core machines we deploy on; re-measure on other hardware.
"""
from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import data.settings


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, ValueError):
        return None


def _quota(quota: str | None, period: str | None) -> int | None:
    """CPUs allowed by a CFS quota and period (rounded up), None when unlimited or unreadable."""
    try:
        q, p = int(quota), int(period)
    except (TypeError, ValueError):
        return None
    return max(1, math.ceil(q / p)) if q > 0 and p > 0 else None


def cgroup_cpu_limit(root: str | Path = "/") -> int | None:
    """CPUs the container's cgroup quota allows, None without a quota. Reads, under `root`: cgroup v2
    `sys/fs/cgroup/<group>/cpu.max` ("max 100000" or "200000 100000") of this process's group
    (/proc/self/cgroup) and of every parent, the smallest wins; else cgroup v1
    `sys/fs/cgroup/cpu[,cpuacct]/[<group>/]cpu.cfs_quota_us` / `cpu.cfs_period_us`."""
    root = Path(root)
    base = root / "sys/fs/cgroup"
    groups = {"v2": "/", "v1": "/"}
    for line in (_read(root / "proc/self/cgroup") or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3 and parts[0] == "0" and parts[1] == "":
            groups["v2"] = parts[2] or "/"
        elif len(parts) == 3 and "cpu" in parts[1].split(","):
            groups["v1"] = parts[2] or "/"
    limits = []
    group = Path(groups["v2"].lstrip("/"))
    for folder in [group, *group.parents]:
        raw = _read(base / folder / "cpu.max")
        if raw:
            limits.append(_quota(*(raw.split() + [None])[:2]) if not raw.startswith("max") else None)
    limits = [n for n in limits if n]
    if limits:
        return min(limits)
    for name in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        for folder in (base / name / groups["v1"].lstrip("/"), base / name):
            n = _quota(_read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us"))
            if n:
                return n
    return None


def cpu_cores(root: str | Path | None = None) -> int:
    """Cores this process may use: its CPU affinity, capped by the container's cgroup CPU quota
    (a 2-CPU pod on a 64-core host gets 2), not the host's count. `root` (default
    FANZHA_CGROUP_ROOT or /) is where the cgroup and proc files are read (tests use fake ones)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    limit = cgroup_cpu_limit(root if root is not None else data.settings.get("FANZHA_CGROUP_ROOT"))
    return max(1, min(cores, limit) if limit else cores)


def _int(name: str) -> int:
    raw = data.settings.get(name).strip() or data.settings.default(name)  # blank: the default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r}: expected an integer") from None


CORES = cpu_cores()
# Largest batch the service's batcher hands to the model. Under load the batch grows by itself
# with the requests that arrived during the previous one.
MAX_BATCH_SIZE = _int("FANZHA_MAX_BATCH_SIZE")
# Token budget of one model call, as text-embeddings-inference's --max-batch-tokens: items ×
# the longest item's tokens (estimated, capped at the artifact's max_length; serving/batcher.py
# groups waiting items of similar length). The model's time is linear in padded tokens, so the
# budget bounds how long one call holds the model (what a newly arrived SMS may wait) more than
# it changes throughput. 1024 (at most 4 scripts of 256 tokens, ~25 SMS of 40): on the SMS model,
# 2 shared cores, mixed set of bench/mixed.py at 32 clients, 20.8 req/s p99 2.6 s against 19.7
# req/s p99 4.1 s with 4096 (`make bench ... --service-env FANZHA_MAX_BATCH_TOKENS=N`); ORT alone
# runs 180-256-token texts no faster in batches of 4-64 than one by one (13-16 msg/s).
MAX_BATCH_TOKENS = _int("FANZHA_MAX_BATCH_TOKENS")
# Server processes, each with its own model copy and batch loop.
WORKERS = _int("FANZHA_WORKERS")
# ONNX Runtime intra-op threads per worker (0: the cores this process may use, split among workers).
THREADS = _int("FANZHA_THREADS") or max(1, CORES // max(1, WORKERS))
# Whether ONNX Runtime's threads spin-wait for work: `0` never (each of a call's ~100 parallel
# operators wakes its threads through the kernel), `1` always (ONNX Runtime's default, and ours:
# the threads also spin for a few ms after a call), `run` within a call only
# (session.force_spinning_stop). The 3-layer SMS student through HTTP on 2 cores, alternated
# services (2026-12-03, medians of 4 rounds): c=1 p50 3.6 ms with `1`, 4.6 with `run`, 5.3 with
# `0`; at c=32 (3 rounds) the same with `1` and `0`: 364 / 353 req/s short, 219 / 209 mixed.
SPIN_MODES = {"0": "0", "false": "0", "no": "0", "off": "0", "1": "1", "true": "1", "yes": "1", "on": "1", "run": "run"}


def spin_mode(raw: str) -> str:
    value = raw.strip().lower()
    if value not in SPIN_MODES:
        raise ValueError(f"FANZHA_SPIN={raw!r}: use 0, 1 or run")
    return SPIN_MODES[value]


SPIN = spin_mode(data.settings.get("FANZHA_SPIN"))
# ONNX Runtime threads of a shadow model (`--shadow`, serving/lifecycle/live.py): one, so that it
# takes at most one core from the answering model, on a thread of lower priority.
SHADOW_THREADS = _int("FANZHA_SHADOW_THREADS")
# Model variant to serve (fp32 | opt | int8 | a file name); empty: the artifact's default_variant.
VARIANT = data.settings.get("FANZHA_VARIANT").strip() or None


def settings() -> dict:
    return {"cores": CORES, "max_batch_size": MAX_BATCH_SIZE, "max_batch_tokens": MAX_BATCH_TOKENS, "workers": WORKERS,
            "threads": THREADS, "shadow_threads": SHADOW_THREADS, "spin": SPIN, "variant": VARIANT}


def main(argv=None) -> int:
    print(json.dumps(settings()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
