"""Admission control for the endpoints that score on a worker thread, outside the SMS batcher
(`/chat`, `/explain`): at most `concurrency` calls are scored at once; up to `queue` more wait
their turn, first come first served; only a call beyond both is answered 503 at once.

Before, a call beyond `concurrency` was refused at once: eight chat clients on a service that
scores four at a time got 1,437 answers 503 out of 1,691 in ten seconds (make bench, /chat at
concurrency 8, docs/results/sms-bench-2026-12-02), though nothing was overloaded, only busy. As
the SMS batcher does, the refusal is kept for a real overload: more calls waiting than `queue`.

Runs on the event loop only (no locks): the counters change between awaits.
"""
from __future__ import annotations

import asyncio
import contextlib

from bentoml.exceptions import ServiceUnavailable


class Admission:
    def __init__(self, name: str, concurrency: int, queue: int, setting: str = ""):
        if concurrency < 1 or queue < 0:
            raise ValueError(f"{name}: concurrency must be >= 1 and queue >= 0, got {concurrency} and {queue}")
        self.name, self.concurrency, self.queue, self.setting = name, concurrency, queue, setting
        self.running = 0
        self.waiting = 0
        self._turn = asyncio.Semaphore(concurrency)

    @contextlib.asynccontextmanager
    async def slot(self):
        """Hold one of the `concurrency` places for the body of an `async with`; 503 when all are
        taken and `queue` calls already wait."""
        if self.running >= self.concurrency and self.waiting >= self.queue:
            raise ServiceUnavailable(f"overloaded: {self.running} {self.name} requests being scored and {self.waiting} "
                                     f"waiting (limits {self.concurrency} and {self.queue}{self.setting}); retry later")
        self.waiting += 1
        try:
            await self._turn.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            self._turn.release()

    def summary(self) -> dict:
        return {"max_concurrency": self.concurrency, "max_waiting": self.queue}
