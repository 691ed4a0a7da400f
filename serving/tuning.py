"""Serving speed settings, chosen by measurement (`make bench`, README "Benchmarks") and defined
once here; every one is also an environment variable.

    python -m serving.tuning          # prints the settings as resolved in this environment

Read by `serving.predictor` (threads, spinning, variant) and `serving/service.py` (batching,
workers). Values are for the 2-core machines we deploy on; re-measure on other hardware.
"""
from __future__ import annotations

import json
import os
import sys


def cpu_cores() -> int:
    """Cores this process may run on (affinity/cgroup view), not the host's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    try:
        return int(raw) if raw else default
    except ValueError:
        raise ValueError(f"{name}={raw!r}: expected an integer") from None


CORES = cpu_cores()
# Largest batch the service's batcher hands to the model. Under load the batch grows by itself
# with the requests that arrived during the previous one.
MAX_BATCH_SIZE = _int("FANZHA_MAX_BATCH_SIZE", 64)
# Server processes, each with its own model copy and batch loop.
WORKERS = _int("FANZHA_WORKERS", 1)
# ONNX Runtime intra-op threads per worker (0: the cores this process may use, split among workers).
THREADS = _int("FANZHA_THREADS", 0) or max(1, CORES // max(1, WORKERS))
# Whether ONNX Runtime's idle threads spin-wait for the next call. Spinning shaves microseconds
# off a lone call but burns the core the HTTP event loop needs between batches.
SPIN = os.environ.get("FANZHA_SPIN", "0").strip().lower() in ("1", "true", "yes")
# Model variant to serve (fp32 | opt | int8 | a file name); empty: the artifact's default_variant.
VARIANT = os.environ.get("FANZHA_VARIANT", "").strip() or None


def settings() -> dict:
    return {"cores": CORES, "max_batch_size": MAX_BATCH_SIZE, "workers": WORKERS,
            "threads": THREADS, "spin": SPIN, "variant": VARIANT}


def main(argv=None) -> int:
    print(json.dumps(settings()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
