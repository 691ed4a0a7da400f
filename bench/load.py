"""A small closed-loop HTTP/1.1 load generator (asyncio, keep-alive, loopback only).

    python -m bench.load http://127.0.0.1:3000/classify --concurrency 8 --seconds 10 [--requests 5000]

`concurrency` connections each send one request, wait for its answer, and send the next, until
`seconds` have passed or `requests` answers came back (both bound every run). Each request is
`{"texts": [one message]}`, cycling through the messages given — one SMS per call, as an
operator's filter sends them. A short warm-up on every connection is not counted. Written on raw
sockets rather than an HTTP client library because the generator shares the 2 CPU cores with
the server it measures: this costs ~50 µs of CPU per request.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from urllib.parse import urlsplit

import numpy as np


def bodies(texts: list[str], per_request: int = 1) -> list[bytes]:
    return [json.dumps({"texts": texts[i:i + per_request]}, ensure_ascii=False).encode()
            for i in range(0, len(texts) - per_request + 1, per_request)]


class _Conn:
    def __init__(self, host: str, port: int, path: str):
        self.host, self.port = host, port
        self.head = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\nContent-Length: "
        self.reader = self.writer = None

    async def request(self, body: bytes) -> int:
        """Send one request, read the whole answer; returns the status (0: connection failed)."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(f"{self.head}{len(body)}\r\n\r\n".encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        if b"transfer-encoding: chunked" in lower:
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        else:
            at = lower.find(b"content-length:")
            length = int(lower[at + 15:lower.index(b"\r\n", at)]) if at >= 0 else 0
            await self.reader.readexactly(length)
        if b"connection: close" in lower:
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _load(url: str, payloads: list[bytes], concurrency: int, seconds: float, requests: int, warmup: int,
                start: "_Start") -> dict:
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"{url}: the load generator only targets loopback")
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    state = {"next": 0, "answered": 0}
    conns = [_Conn(parts.hostname, parts.port or 80, parts.path or "/") for _ in range(concurrency)]

    def take() -> bytes:
        state["next"] += 1
        return payloads[state["next"] % len(payloads)]

    async def warm(conn: _Conn) -> None:
        for _ in range(warmup):
            await conn.request(take())

    async def worker(conn: _Conn, stop: float) -> None:
        while time.perf_counter() < stop and state["answered"] < requests:
            t0 = time.perf_counter()
            try:
                status = await conn.request(take())
            except (OSError, asyncio.IncompleteReadError, ValueError):
                conn.close()
                status = 0
            latencies.append(time.perf_counter() - t0)
            statuses[status] = statuses.get(status, 0) + 1
            state["answered"] += 1

    # every connection warms up first (TCP setup, first-call allocations), then all start together
    await asyncio.gather(*(warm(c) for c in conns))
    await start.wait()  # loads run together start together
    begin = time.perf_counter()
    await asyncio.gather(*(worker(c, begin + seconds) for c in conns))
    elapsed = time.perf_counter() - begin
    for c in conns:
        c.close()
    lat = np.array(latencies) * 1e3
    ok = statuses.get(200, 0)
    return {"concurrency": concurrency, "requests": len(latencies), "seconds": round(elapsed, 2),
            "throughput_rps": round(ok / elapsed, 1),
            "p50_ms": round(float(np.percentile(lat, 50)), 2) if len(lat) else None,
            "p99_ms": round(float(np.percentile(lat, 99)), 2) if len(lat) else None,
            "errors": len(latencies) - ok, "statuses": {str(k): v for k, v in sorted(statuses.items())}}


def run(url: str, payloads: list[bytes], concurrency: int, seconds: float = 10.0, requests: int = 100_000,
        warmup: int = 3) -> dict:
    """Closed-loop load at `concurrency`; p50/p99 latency (ms), throughput (ok answers/s), errors."""
    return run_together([(url, payloads, concurrency)], seconds, requests, warmup)[0]


class _Start:
    """All parties wait until every one has arrived (asyncio.Barrier is Python 3.11+)."""

    def __init__(self, parties: int):
        self.left, self.event = parties, asyncio.Event()

    async def wait(self) -> None:
        self.left -= 1
        if self.left <= 0:
            self.event.set()
        await self.event.wait()


def run_together(loads: list[tuple[str, list[bytes], int]], seconds: float = 10.0, requests: int = 100_000,
                 warmup: int = 3) -> list[dict]:
    """Several closed loops at once, e.g. SMS on /classify while conversations hit /chat:
    (url, payloads, concurrency) each; one result per load, as `run` gives."""
    async def together():
        start = _Start(len(loads))
        return await asyncio.gather(*(_load(url, payloads, c, seconds, requests, warmup, start)
                                      for url, payloads, c in loads))

    return list(asyncio.run(together()))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="e.g. http://127.0.0.1:3000/classify")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=500, help="messages from data.synth.generate")
    args = parser.parse_args(argv)
    from data.synth import generate

    payloads = bodies([r["text"] for r in generate(args.messages, seed=2024)])
    print(json.dumps(run(args.url, payloads, args.concurrency, args.seconds, args.requests)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
