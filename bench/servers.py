"""HTTP servers as subprocesses for the benchmark: the fanzha BentoML service and the peer.

    python -m bench.servers artifacts/demo/serving      # starts the service, prints its URL, stops on Enter

Each server runs in its own process group on a free loopback port and is stopped (SIGTERM,
then SIGKILL) when the `with` block ends, so a benchmark leaves nothing running.
"""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from serving.server import stop_process_group

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def running(command: list[str], ready_path: str, port: int, env: dict | None = None, timeout: float = 180):
    """Start `command` (listening on `port`), wait until GET ready_path answers 200, yield the base URL."""
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(command, cwd=REPO, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while not _ready(base + ready_path):
            if proc.poll() is not None or time.time() > deadline:
                log.seek(0)
                raise RuntimeError(f"{command[2:5]} did not become ready: {log.read().decode(errors='replace')[-3000:]}")
            time.sleep(0.3)
        yield base
    finally:
        stop_process_group(proc, timeout=30)
        log.close()


def fanzha_service(serving: Path, env: dict | None = None):
    """`bentoml serve serving.service:Fanzha` for a serving artifact (settings from FANZHA_* in env)."""
    port = free_port()
    command = [sys.executable, "-m", "bentoml", "serve", "serving.service:Fanzha", "--host", "127.0.0.1",
               "--port", str(port), "--working-dir", str(REPO)]
    return running(command, "/readyz", port, {"FANZHA_MODEL": str(Path(serving).resolve()), **(env or {})})


def peer_service(model: Path, max_length: int, env: dict | None = None):
    """bench/peer_service.py: FastAPI + transformers pipeline on the PyTorch model."""
    port = free_port()
    command = [sys.executable, "-m", "bench.peer_service", "--model", str(Path(model).resolve()), "--port", str(port),
               "--max-length", str(max_length)]
    return running(command, "/readyz", port, env)


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bench.servers SERVING_ARTIFACT", file=sys.stderr)
        return 2
    with fanzha_service(Path(args[0])) as base:
        print(base, flush=True)
        input("Enter stops the service ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
