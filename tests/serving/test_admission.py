"""serving/admission.py: a busy endpoint queues its calls, first come first served; only a call
beyond `concurrency` running and `queue` waiting is refused, at once, with 503."""
from __future__ import annotations

import asyncio

import pytest
from bentoml.exceptions import ServiceUnavailable

from serving.admission import Admission


def test_busy_calls_wait_their_turn_and_only_an_overload_is_refused():
    async def scenario():
        gate, order, release = Admission("/chat", concurrency=1, queue=2), [], asyncio.Event()

        async def call(k):
            async with gate.slot():
                order.append(k)
                await release.wait()

        tasks = [asyncio.create_task(call(k)) for k in range(3)]
        await asyncio.sleep(0.01)
        assert (gate.running, gate.waiting, order) == (1, 2, [0])
        with pytest.raises(ServiceUnavailable, match="1 /chat requests being scored and 2 waiting"):
            await call(3)
        release.set()
        await asyncio.gather(*tasks)
        assert order == [0, 1, 2] and (gate.running, gate.waiting) == (0, 0)

    asyncio.run(scenario())


def test_a_failing_call_gives_its_place_back():
    async def scenario():
        gate = Admission("/explain", concurrency=1, queue=0)
        with pytest.raises(RuntimeError):
            async with gate.slot():
                raise RuntimeError("scoring failed")
        async with gate.slot():  # the place is free again
            assert gate.running == 1
        assert gate.running == 0

    asyncio.run(scenario())


def test_limits_are_checked():
    with pytest.raises(ValueError, match="concurrency must be >= 1"):
        Admission("/chat", concurrency=0, queue=4)
