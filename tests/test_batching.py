"""The batcher on its own: batch while busy, groups, failures, cancellation.

The batch function here records its calls; it stands in for a backend call
so that the batching rules can be observed exactly.
"""

from __future__ import annotations

import asyncio

import pytest

from itemstore_service.batching import Batcher


class Recorder:
    def __init__(self, delay: float = 0.01) -> None:
        self.calls: list[list[int]] = []
        self.delay = delay
        self.fail_next = False

    async def __call__(self, ops: list[int]) -> list[int]:
        self.calls.append(list(ops))
        await asyncio.sleep(self.delay)
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("backend down")
        return [op * 10 for op in ops]


async def test_first_request_goes_out_alone_and_the_rest_ride_the_next_call() -> None:
    run = Recorder()
    batcher = Batcher[int, int](run, max_batch=100, max_in_flight=1)
    first = asyncio.create_task(batcher.submit(1))
    await asyncio.sleep(0.001)  # the first call is now in flight
    rest = [asyncio.create_task(batcher.submit(n)) for n in range(2, 12)]
    assert await first == 10
    assert await asyncio.gather(*rest) == [n * 10 for n in range(2, 12)]
    assert run.calls == [[1], list(range(2, 12))]


async def test_max_batch_and_in_flight_are_respected() -> None:
    run = Recorder()
    batcher = Batcher[int, int](run, max_batch=4, max_in_flight=2)
    results = await asyncio.gather(*(batcher.submit(n) for n in range(10)))
    assert results == [n * 10 for n in range(10)]
    assert all(len(call) <= 4 for call in run.calls)
    assert sorted(op for call in run.calls for op in call) == list(range(10))


async def test_a_group_is_never_split_even_past_max_batch() -> None:
    run = Recorder()
    batcher = Batcher[int, int](run, max_batch=3, max_in_flight=1)
    group = asyncio.create_task(batcher.submit_group([1, 2, 3, 4, 5]))
    single = asyncio.create_task(batcher.submit(6))
    assert await group == [10, 20, 30, 40, 50]
    assert await single == 60
    assert [1, 2, 3, 4, 5] in run.calls


async def test_a_failed_batch_fails_exactly_its_own_callers() -> None:
    run = Recorder()
    batcher = Batcher[int, int](run, max_batch=100, max_in_flight=1)
    run.fail_next = True
    first = asyncio.create_task(batcher.submit(1))
    await asyncio.sleep(0.001)
    later = [asyncio.create_task(batcher.submit(n)) for n in (2, 3)]
    with pytest.raises(RuntimeError, match="backend down"):
        await first
    assert await asyncio.gather(*later) == [20, 30]


async def test_cancelling_one_waiter_leaves_the_others_answered() -> None:
    run = Recorder(delay=0.05)
    batcher = Batcher[int, int](run, max_batch=100, max_in_flight=1)
    in_flight = asyncio.create_task(batcher.submit(1))
    await asyncio.sleep(0.001)
    queued = [asyncio.create_task(batcher.submit(n)) for n in (2, 3, 4)]
    await asyncio.sleep(0.001)
    in_flight.cancel()  # its call is already running: the call goes on for others
    queued[1].cancel()  # still queued: it is dropped from the next call
    results = await asyncio.gather(*queued, return_exceptions=True)
    assert results[0] == 20
    assert isinstance(results[1], asyncio.CancelledError)
    assert results[2] == 40
    assert run.calls == [[1], [2, 4]]
    await batcher.drain()


async def test_drain_waits_for_queued_and_running_batches() -> None:
    run = Recorder(delay=0.02)
    batcher = Batcher[int, int](run, max_batch=2, max_in_flight=1)
    tasks = [asyncio.create_task(batcher.submit(n)) for n in range(6)]
    await asyncio.sleep(0)
    await batcher.drain()
    assert all(task.done() for task in tasks)
    assert sorted(op for call in run.calls for op in call) == list(range(6))


async def test_an_empty_group_is_answered_and_the_queue_goes_on() -> None:
    async def run(ops: list[int]) -> list[int]:
        return ops

    batcher = Batcher[int, int](run, max_batch=2, max_in_flight=1)
    assert await asyncio.wait_for(batcher.submit_group([]), 2) == []
    assert await batcher.submit(1) == 1
    assert batcher.behind() == 0.0
