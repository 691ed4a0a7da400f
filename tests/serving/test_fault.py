"""Fault and load tests against the real server: concurrent mixed traffic, a killed server, a drained shutdown.

Assertions are about answers, status codes and memory — never about time: a slow machine makes
these tests slower, not red.
"""
import collections
import json
import os
import random
import signal
import threading
import time

import httpx
import psutil
import pytest

from serving.policy import PolicyFile
from serving.predictor import Predictor
from serving.screening import Screener
from tests.serving.conftest import server_output, start_server, stop_server

pytestmark = pytest.mark.slow
SMS = ["【ETC服务】您的ETC认证已失效，请点击 http://etc-renz.cn 重新认证", "【招商银行】您的验证码为 482913，5分钟内有效",
       "周末一起吃饭吗？", "兼职刷单，日结300元，加微信 vx8899 了解", "长" * 3000, "\x00控制\x07字符"]
VALID = [{"texts": SMS[:2]}, {"texts": [SMS[2]]}, {"texts": SMS * 10},
         {"texts": [{"text": SMS[0], "sender": "95588"}, "", {"text": SMS[3]}]}]
JSON = {"content-type": "application/json"}
INVALID = [  # (body bytes, headers, expected status)
    (b'{"texts": []}', JSON, 400), (b'{"texts": [1, "a"]}', JSON, 400), (b'{"texts": [', JSON, 400),
    (json.dumps({"texts": ["x"] * 257}).encode(), JSON, 400), (b'{"texts": ["\xff\xfe"]}', JSON, 400),
    (b'{"texts": [{"text": "a", "extra": 1}]}', JSON, 400), (b"texts=a", {"content-type": "text/plain"}, 415),
    (json.dumps({"texts": ["长" * 400000]}).encode(), JSON, 413),
]


# fp32: a dynamically quantized (int8) model's scores depend on the other texts in its batch
# (activation ranges are per batch), so "equal to the predictor's" is only exact in fp32.
VARIANT = "fp32"


def _serve(artifact, tmp_path):
    proc, base = start_server(artifact, {"BENTOML_HOME": str(tmp_path / "bentoml"), "FANZHA_VARIANT": VARIANT})
    return proc, base


def _expected(artifact, bodies):
    screener = Screener(Predictor(artifact, variant=VARIANT), PolicyFile(artifact / "policy.yaml"))
    return [screener.screen(body["texts"]) for body in bodies]


def _same(got: list, want: list) -> bool:
    return len(got) == len(want) and all(
        (g["label"], g["action"], g["reason"], g["error"]) == (w["label"], w["action"], w["reason"], w["error"])
        and (g["fraud_score"] is None or abs(g["fraud_score"] - w["fraud_score"]) < 1e-4) for g, w in zip(got, want))


def _rss(proc) -> int:
    root = psutil.Process(proc.pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])


class Load:
    """Closed-loop clients sending a random mix of valid and invalid requests until stopped."""

    def __init__(self, base, expected, clients=6, seed=0):
        self.base, self.expected, self.clients, self.seed = base, expected, clients, seed
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.outcomes: list[tuple] = []  # (kind, index, status or exception name, sent at, correct)

    def _client(self, k):
        rng = random.Random(self.seed + k)
        with httpx.Client(base_url=self.base, timeout=60) as client:
            while not self.stop.is_set():
                if rng.random() < 0.6:
                    i = rng.randrange(len(VALID))
                    kind, request = "valid", dict(json=VALID[i])
                else:
                    i = rng.randrange(len(INVALID))
                    kind, request = "invalid", dict(content=INVALID[i][0], headers=INVALID[i][1])
                sent = time.monotonic()
                try:
                    r = client.post("/classify", **request)
                    ok = _same(r.json(), self.expected[i]) if kind == "valid" and r.status_code == 200 else None
                    outcome = (kind, i, r.status_code, sent, ok)
                except httpx.TransportError as e:
                    outcome = (kind, i, type(e).__name__, sent, None)
                with self.lock:
                    self.outcomes.append(outcome)

    def __enter__(self):
        self.threads = [threading.Thread(target=self._client, args=(k,)) for k in range(self.clients)]
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join()

    def count(self) -> int:
        with self.lock:
            return len(self.outcomes)


def _wait_for(predicate, what, limit=600):
    for _ in range(limit * 10):
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"never saw: {what}")


def test_concurrent_mixed_load_is_answered_correctly_in_stable_memory(tiny_serving, tmp_path):
    expected = _expected(tiny_serving, VALID)
    proc, base = _serve(tiny_serving, tmp_path)
    try:
        with Load(base, expected) as load:
            _wait_for(lambda: load.count() >= 300, "300 answers (warm-up: every request shape seen)")
            warm = _rss(proc)
            _wait_for(lambda: load.count() >= 3000, "3000 answers")
            end = _rss(proc)
    finally:
        stop_server(proc)
    statuses = collections.Counter((kind, status) for kind, _, status, _, _ in load.outcomes)
    assert not [s for s in statuses if not isinstance(s[1], int) or s[1] >= 500], (statuses, server_output(proc)[-3000:])
    assert all(status == 200 for (kind, status) in statuses if kind == "valid"), statuses
    for kind, i, status, _, _ in load.outcomes:
        if kind == "invalid":
            assert status == INVALID[i][2], (INVALID[i][0][:60], status)
    assert all(ok for kind, _, _, _, ok in load.outcomes if kind == "valid"), "every answer equals the predictor's"
    print(f"\n[fault] {len(load.outcomes)} requests {dict(statuses)}; server RSS {warm / 2**20:.0f} -> {end / 2**20:.0f} MiB")
    assert end - warm < 64 * 2**20, f"RSS grew {warm / 2**20:.0f} -> {end / 2**20:.0f} MiB"


def test_a_killed_server_gives_connection_errors_never_wrong_answers(tiny_serving, tmp_path):
    expected = _expected(tiny_serving, VALID)
    proc, base = _serve(tiny_serving, tmp_path)
    try:
        with Load(base, expected) as load:
            _wait_for(lambda: load.count() >= 200, "200 answers")
            # every server process: BentoML starts its workers in sessions of their own
            server = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
            for p in server:
                p.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            psutil.wait_procs(server, timeout=60)
            _wait_for(lambda: sum(t > killed for *_, t, _ in load.outcomes) >= 20, "20 requests sent after the kill")
    finally:
        stop_server(proc)
    after = [o for o in load.outcomes if o[3] > killed]  # sent once the server was dead
    assert all(not isinstance(status, int) for _, _, status, _, _ in after), "nothing answers once killed"
    assert {status for _, _, status, _, _ in after} <= {"ConnectError", "ReadError", "RemoteProtocolError", "WriteError"}
    answered = [o for o in load.outcomes if isinstance(o[2], int)]
    assert answered and all(o[2] < 500 for o in answered)
    assert all(ok for kind, _, status, _, ok in answered if kind == "valid"), "no wrong answer, before or during the kill"


def test_sigterm_drains_requests_in_flight(tiny_serving, tmp_path):
    heavy = {"texts": [(SMS[0] * 40)[:1000] + str(i) for i in range(256)]}  # ~650 kB: hundreds of ms of work each
    want = _expected(tiny_serving, [heavy])[0]
    proc, base = _serve(tiny_serving, tmp_path)
    results: dict[int, tuple] = {}

    def send(k):
        try:
            r = httpx.post(base + "/classify", json=heavy, timeout=120)
            results[k] = (r.status_code, _same(r.json(), want) if r.status_code == 200 else None, time.monotonic())
        except httpx.TransportError as e:
            results[k] = (type(e).__name__, None, time.monotonic())

    threads = [threading.Thread(target=send, args=(k,)) for k in range(12)]
    try:
        for t in threads:
            t.start()

        def in_flight() -> float:
            lines = httpx.get(base + "/metrics").text.splitlines()
            return sum(float(l.rsplit(" ", 1)[1]) for l in lines
                       if l.startswith("bentoml_service_request_in_progress{") and 'endpoint="/classify"' in l)

        _wait_for(lambda: in_flight() >= 2, "2 requests in flight")
        os.killpg(proc.pid, signal.SIGTERM)
        terminated = time.monotonic()
        for t in threads:
            t.join()
        assert proc.wait(timeout=120) == 0, server_output(proc)[-3000:]
    finally:
        stop_server(proc)
    # Every answer is a correct 200; a request still in the listen backlog when the listener closed
    # (not yet read by the server) is reset by the kernel: a transport error, never a wrong answer.
    answered = {k: v for k, v in results.items() if isinstance(v[0], int)}
    assert all(status == 200 and ok for status, ok, _ in answered.values()), results
    assert all(v[0] in ("ConnectError", "ReadError", "RemoteProtocolError") for k, v in results.items() if k not in answered), results
    assert sum(done > terminated for _, _, done in answered.values()) >= 2, "requests in flight at SIGTERM completed"
    with pytest.raises(httpx.ConnectError):
        httpx.post(base + "/classify", json={"texts": ["hi"]}, timeout=5)
