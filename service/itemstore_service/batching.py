"""Batch while busy: turn many concurrent single requests into few backend calls.

A :class:`Batcher` has no timer. The first submission goes out on the next
turn of the event loop (so everything submitted in the same turn rides along);
while ``max_in_flight`` calls are running, new submissions queue and ride the
next call, up to ``max_batch`` operations. Low load keeps low latency; high
load gets big batches.

Each batch runs in a task of its own, so cancelling one waiting caller never
cancels the call the others wait on; a caller cancelled before its batch is
taken is dropped from it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar


@dataclass(frozen=True, slots=True)
class Tuning:
    """How big the batchers' backend calls are, and how many run at once."""

    read_batch: int
    read_in_flight: int
    write_batch: int
    write_in_flight: int


Op = TypeVar("Op")
Result = TypeVar("Result")

RunBatch = Callable[[list[Op]], Awaitable[Sequence[Result]]]


class Batcher(Generic[Op, Result]):
    """Runs ``run(ops) -> results`` (one result per op, in order) over queued
    groups of operations. A group (one caller's ops) is never split across
    batches, so it sees its own operations applied together and in order.
    If ``run`` raises, every caller in that batch gets the exception."""

    def __init__(self, run: RunBatch[Op, Result], *, max_batch: int, max_in_flight: int) -> None:
        self._run = run
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self._queue: deque[tuple[list[Op], asyncio.Future[list[Result]]]] = deque()
        self._queued_ops = 0
        self._in_flight: set[asyncio.Task[None]] = set()
        self._dispatch_scheduled = False
        self._idle = asyncio.Event()
        self._idle.set()

    async def submit(self, op: Op) -> Result:
        """Run one operation in the next batch; return its result."""
        return (await self.submit_group([op]))[0]

    async def submit_group(self, ops: list[Op]) -> list[Result]:
        """Run ``ops`` together in one batch (``len(ops)`` may exceed max_batch)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Result]] = loop.create_future()
        self._queue.append((ops, future))
        self._queued_ops += len(ops)
        self._idle.clear()
        if not self._dispatch_scheduled and len(self._in_flight) < self.max_in_flight:
            self._dispatch_scheduled = True
            loop.call_soon(self._dispatch)
        return await future

    @property
    def queued(self) -> int:
        """Operations waiting for a batch."""
        return self._queued_ops

    def _take_batch(self) -> list[tuple[list[Op], asyncio.Future[list[Result]]]]:
        batch: list[tuple[list[Op], asyncio.Future[list[Result]]]] = []
        size = 0
        while self._queue:
            ops, future = self._queue[0]
            if batch and size + len(ops) > self.max_batch:
                break
            self._queue.popleft()
            self._queued_ops -= len(ops)
            if future.done():  # cancelled while waiting: never sent
                continue
            batch.append((ops, future))
            size += len(ops)
        return batch

    def _dispatch(self) -> None:
        self._dispatch_scheduled = False
        while self._queue and len(self._in_flight) < self.max_in_flight:
            batch = self._take_batch()
            if batch:
                task = asyncio.create_task(self._run_batch(batch))
                self._in_flight.add(task)
        if not self._queue and not self._in_flight:
            self._idle.set()

    async def _run_batch(self, batch: list[tuple[list[Op], asyncio.Future[list[Result]]]]) -> None:
        ops = [op for group, _ in batch for op in group]
        try:
            results = await self._run(ops)
        except BaseException as exc:
            error = exc if isinstance(exc, Exception) else RuntimeError("batch was cancelled")
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            if not isinstance(exc, Exception):
                raise
        else:
            start = 0
            for group, future in batch:
                if not future.done():
                    future.set_result(list(results[start : start + len(group)]))
                start += len(group)
        finally:
            task = asyncio.current_task()
            assert task is not None
            self._in_flight.discard(task)
            self._dispatch()

    async def drain(self) -> None:
        """Wait until every submitted operation has been run (graceful shutdown)."""
        await self._idle.wait()
