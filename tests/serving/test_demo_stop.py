"""`fanzha demo` serves until stopped; a SIGTERM (kill, timeout, a supervisor) stops its server too."""
import os
import shutil
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.serving.conftest import REPO, free_port

pytestmark = pytest.mark.slow


def test_sigterm_stops_the_demo_and_its_server(tiny_model, tiny_serving, tmp_path):
    root = tmp_path / "demo"
    shutil.copytree(tiny_serving, root / "serving")
    (root / "model").mkdir()
    shutil.copy(tiny_model / "metrics.json", root / "model" / "metrics.json")
    port = free_port()
    log = open(tmp_path / "demo.log", "w")
    demo = subprocess.Popen([sys.executable, "-m", "fanzha", "demo", "--root", str(root), "--port", str(port)],
                            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 180
        while "Serving until Ctrl-C" not in (tmp_path / "demo.log").read_text(errors="replace"):
            assert demo.poll() is None, (tmp_path / "demo.log").read_text(errors="replace")[-3000:]
            assert time.time() < deadline, "the demo did not come up"
            time.sleep(0.5)
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10).status_code == 200
        demo.send_signal(signal.SIGTERM)  # to the demo alone, not its group: as `kill PID` does
        assert demo.wait(timeout=60) == 128 + signal.SIGTERM
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/livez", timeout=2)
            except httpx.TransportError:
                break  # nobody listens any more
            time.sleep(0.5)
        else:
            pytest.fail("the demo's server still answers after the demo was terminated")
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
        log.close()
