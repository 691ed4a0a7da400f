"""The adaptive batcher: concurrent requests share model calls, each gets its own results back."""
import asyncio
import threading

import pytest

from serving.batcher import Batcher, Overloaded


def _squares(calls: list):
    def fn(items):
        calls.append((list(items), threading.current_thread().name))
        return [x * x for x in items]
    return fn


def test_concurrent_requests_are_batched_and_answered_in_order():
    calls = []
    batcher = Batcher(_squares(calls), max_batch_size=64)

    async def main():
        requests = [list(range(i, i + 3)) for i in range(0, 60, 3)]
        return requests, await asyncio.gather(*(batcher.submit(r) for r in requests))

    requests, answers = asyncio.run(main())
    batcher.close()
    assert answers == [[x * x for x in r] for r in requests]
    assert len(calls) < len(requests), "requests that waited together ran together"
    assert all(len(items) <= 64 for items, _ in calls)
    assert {name for _, name in calls} == {"fanzha-infer_0"}, "one inference thread"


def test_a_lone_request_runs_at_once_and_a_big_one_alone():
    calls = []
    batcher = Batcher(_squares(calls), max_batch_size=4)

    async def main():
        return await batcher.submit([3]), await asyncio.gather(batcher.submit(list(range(10))), batcher.submit([2]))

    single, (big, small) = asyncio.run(main())
    batcher.close()
    assert single == [9] and big == [x * x for x in range(10)] and small == [4]
    assert [items for items, _ in calls] == [[3], list(range(10)), [2]]


def test_a_failing_batch_fails_its_callers_and_the_loop_goes_on():
    def fn(items):
        if "boom" in items:
            raise ValueError("boom")
        return items

    batcher = Batcher(fn)

    async def main():
        with pytest.raises(ValueError):
            await batcher.submit(["boom"])
        return await batcher.submit(["ok"])

    assert asyncio.run(main()) == ["ok"]
    batcher.close()


def test_overload_is_refused_at_once():
    release = threading.Event()

    def slow(items):
        release.wait(10)
        return items

    batcher = Batcher(slow, max_batch_size=2, max_queue=4)

    async def main():
        first = asyncio.ensure_future(batcher.submit([1, 2]))
        await asyncio.sleep(0)
        while batcher._waiting:  # until the loop took it into a (blocked) batch
            await asyncio.sleep(0)
        queued = asyncio.ensure_future(batcher.submit([3, 4, 5, 6]))  # fills the queue
        await asyncio.sleep(0)
        with pytest.raises(Overloaded, match="already waiting"):
            await batcher.submit([7])
        release.set()
        return await first, await queued

    assert asyncio.run(main()) == ([1, 2], [3, 4, 5, 6])
    batcher.close()
