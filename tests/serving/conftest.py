"""A real `bentoml serve` subprocess for the tiny serving artifact, shared by the service tests."""
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from serving.server import stop_process_group

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(artifact: Path, env_extra: dict | None = None, timeout: float = 120):
    port = free_port()
    env = {**os.environ, "FANZHA_MODEL": str(artifact), **(env_extra or {})}
    # The server's output goes to a file, not a pipe nobody reads: a full pipe would block it.
    log = tempfile.NamedTemporaryFile(prefix="fanzha-server-", suffix=".log", delete=False)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bentoml", "serve", "serving.service:Fanzha", "--host", "127.0.0.1",
         "--port", str(port), "--working-dir", str(REPO)],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    proc.log_path = log.name
    log.close()
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {Path(proc.log_path).read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop_server(proc)
    raise RuntimeError(f"server not ready in time: {Path(proc.log_path).read_text(errors='replace')[-3000:]}")


def _use_bentoml_home(home: str) -> None:
    from bentoml._internal.bento import BentoStore
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.models import ModelStore

    BentoMLContainer.bentoml_home.set(home)
    for name, store in (("model_store", ModelStore), ("bento_store", BentoStore)):
        folder = os.path.join(home, name.replace("_store", "s"))
        getattr(BentoMLContainer, f"{name}_dir").set(folder)
        getattr(BentoMLContainer, name).set(store(folder))


def private_bentoml_home(tmp_path_factory):
    """Yield a fresh BENTOML_HOME for one test module, restored afterwards. BentoML reads the home
    once and caches its stores: set the environment (for servers) and the container's home and
    stores (for this process). Use with `yield from` in a fixture."""
    home = tmp_path_factory.mktemp("bentoml_home")
    old = os.environ.get("BENTOML_HOME")
    os.environ["BENTOML_HOME"] = str(home)
    _use_bentoml_home(str(home))
    yield home
    _use_bentoml_home(old or os.path.expanduser("~/bentoml"))
    if old is None:
        os.environ.pop("BENTOML_HOME")
    else:
        os.environ["BENTOML_HOME"] = old


def server_output(proc) -> str:
    """Everything the server has printed so far (its log file)."""
    return Path(proc.log_path).read_text(encoding="utf-8", errors="replace")


def stop_server(proc) -> None:
    stop_process_group(proc, timeout=20)


class ServerURL(str):
    """The base URL of a running server, with its process (`.proc`: `server_output(url.proc)`)."""
    proc: subprocess.Popen


@pytest.fixture(scope="session")
def server(tiny_serving):
    proc, base = start_server(tiny_serving)
    url = ServerURL(base)
    url.proc = proc
    yield url
    stop_server(proc)
