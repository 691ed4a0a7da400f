"""The adaptive batcher: concurrent requests share model calls, each gets its own results back;
calls group items of similar length within a token budget (a recording fn sees every call)."""
import asyncio
import threading

import pytest

from serving.batcher import MAX_PADDING, PAD_SLACK, Batcher, Overloaded, sms_length


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


def test_a_lone_request_runs_at_once_and_a_big_one_is_split_in_order():
    calls = []
    batcher = Batcher(_squares(calls), max_batch_size=4)

    async def main():
        return await batcher.submit([3]), await asyncio.gather(batcher.submit(list(range(10))), batcher.submit([2]))

    single, (big, small) = asyncio.run(main())
    batcher.close()
    assert single == [9] and big == [x * x for x in range(10)] and small == [4]
    # oldest first, at most max_batch_size per call: the big request's tail shares a call with [2]
    assert [items for items, _ in calls] == [[3], [0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 2]]


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


SHORT = "您的验证码是482913，五分钟内有效"  # 18 characters
LONG = "【公安局】您涉嫌一起洗钱案件，名下账户已被冻结，请立即配合调查，" * 7  # 224 characters


def _recording(calls: list, gate: threading.Event | None = None):
    def fn(items):
        if gate is not None and items == ["gate"]:
            gate.wait(10)
        calls.append(list(items))
        return [f"r:{x}" for x in items]
    return fn


async def _while_busy(batcher: Batcher, gate: threading.Event, submit):
    """Hold the model with a "gate" call, queue the requests `submit()` starts, release the model:
    everything queued waits together for the next calls."""
    first = asyncio.ensure_future(batcher.submit(["gate"]))
    await asyncio.sleep(0)
    while batcher._waiting:  # until the loop took the gate into a (blocked) call
        await asyncio.sleep(0)
    queued = [asyncio.ensure_future(s) for s in submit()]
    await asyncio.sleep(0)
    gate.set()
    await first
    return await asyncio.gather(*queued)


def _padded_ok(call: list[str], length) -> bool:
    lengths = [length(x) for x in call]
    return max(lengths) <= max(MAX_PADDING * min(lengths), min(lengths) + PAD_SLACK)


def test_waiting_items_are_grouped_by_length_within_the_token_budget():
    calls, gate = [], threading.Event()
    length = sms_length(256)
    batcher = Batcher(_recording(calls, gate), max_batch_size=64, max_batch_tokens=1024, length=length)
    shorts = [f"{SHORT}{i:03d}" for i in range(24)]
    longs = [f"{LONG}{i:03d}" for i in range(8)]
    mixed = [x for pair in zip(shorts[:8], longs) for x in pair] + shorts[8:]  # a long script every other message

    answers = asyncio.run(_while_busy(batcher, gate, lambda: [batcher.submit([t]) for t in mixed]))
    batcher.close()
    assert answers == [[f"r:{t}"] for t in mixed]
    after = calls[1:]  # calls[0] is the gate
    assert sorted(x for c in after for x in c) == sorted(mixed)
    for call in after:
        assert _padded_ok(call, length), [length(x) for x in call]
        assert len(call) == 1 or len(call) * max(map(length, call)) <= 1024, "token budget"
        assert not (set(call) & set(shorts) and set(call) & set(longs)), "no SMS padded to a script's length"
    assert max(len(c) for c in after if set(c) <= set(shorts)) == 24, "the short ones ran together"
    assert max(len(c) for c in after if set(c) <= set(longs)) == 1024 // length(longs[0]), "longs fill the budget"


def test_a_request_split_across_calls_gets_its_results_in_order():
    calls, gate = [], threading.Event()
    batcher = Batcher(_recording(calls, gate), max_batch_size=4, max_batch_tokens=4096, length=sms_length(256))
    request = [f"{LONG}{i}" if i % 3 == 0 else f"{SHORT}{i}" for i in range(12)]

    answer, other = asyncio.run(_while_busy(batcher, gate, lambda: [batcher.submit(request), batcher.submit([SHORT])]))
    batcher.close()
    assert answer == [f"r:{t}" for t in request] and other == [f"r:{SHORT}"]
    after = calls[1:]
    assert len(after) >= 3 and all(len(c) <= 4 for c in after), "split over several calls of at most 4"
    assert all(set(c) <= {t for t in request if LONG in t} or not any(LONG in t for t in c) for c in after)


def test_a_long_text_is_not_starved_by_a_stream_of_short_ones():
    calls = []
    batcher = Batcher(_recording(calls), max_batch_size=8, max_batch_tokens=512, length=sms_length(256))

    async def main():
        older = [asyncio.ensure_future(batcher.submit([f"{SHORT}{i}"])) for i in range(10)]
        long = asyncio.ensure_future(batcher.submit([LONG]))
        stream = []
        while not long.done():  # short SMS keep coming while the calls run
            assert len(stream) < 5000, "the long script never ran"
            stream.append(asyncio.ensure_future(batcher.submit([f"{SHORT}n{len(stream)}"])))
            await asyncio.sleep(0)
        await asyncio.gather(*older, *stream)
        return await long, len(stream)

    answer, streamed = asyncio.run(main())
    batcher.close()
    assert answer == [f"r:{LONG}"]
    at = next(i for i, c in enumerate(calls) if LONG in c)
    assert at <= 10, "each call takes the oldest waiting item: ten older items, at most ten calls before it"
    assert calls[at] == [LONG] and len(calls) > at + 1, "it ran alone, while short ones kept coming"


def test_a_lone_sms_runs_alone_at_once_and_gone_callers_are_skipped():
    calls, gate = [], threading.Event()
    batcher = Batcher(_recording(calls, gate), max_batch_tokens=4096, length=sms_length(256))

    async def main():
        alone = await batcher.submit([SHORT])
        first = asyncio.ensure_future(batcher.submit(["gate"]))
        await asyncio.sleep(0)
        while batcher._waiting:
            await asyncio.sleep(0)
        gone = asyncio.ensure_future(batcher.submit(["gone-1", "gone-2"]))
        kept = asyncio.ensure_future(batcher.submit(["kept"]))
        await asyncio.sleep(0)
        gone.cancel()  # the caller went away (disconnect, timeout)
        gate.set()
        await first
        return alone, await kept

    alone, kept = asyncio.run(main())
    batcher.close()
    assert alone == [f"r:{SHORT}"] and kept == ["r:kept"]
    assert calls == [[SHORT], ["gate"], ["kept"]]


def test_sms_length_estimates_tokens_of_every_item_kind():
    from serving.api_models import Item, Message

    length = sms_length(64)
    assert length("验证码") == 5 and length({"text": "验证码", "sender": "95588"}) == 5
    assert length(Item(Message(text="验证码"))) == 5 and length("长" * 500) == 64 and length(None) == 2
