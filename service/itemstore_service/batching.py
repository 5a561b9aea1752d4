"""Batch while busy: turn many concurrent single requests into few backend calls.

A :class:`Batcher` has no timer. The first submission goes out on the next
turn of the event loop (so everything submitted in the same turn rides along);
while ``max_in_flight`` calls are running, new submissions queue and ride the
next call, up to ``max_batch`` operations. Low load keeps low latency; high
load gets big batches.

Each batch runs in a task of its own, so cancelling one waiting caller never
cancels the call the others wait on; a caller cancelled before its batch is
taken is withdrawn: its operations are never sent. A batch runs until the
latest deadline of the callers it carries (see ``deadlines``). The queue is
bounded: past ``max_queued`` operations a submission is refused with
``Overloaded`` before it is queued.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from . import deadlines
from .errors import Overloaded
from .observability.metrics import REQUESTS_REFUSED

PACE_WEIGHT = 0.2
"""Weight of the latest batch in a queue's moving average pace."""


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


@dataclass(slots=True, eq=False)
class _Group(Generic[Op, Result]):
    """One caller's operations, waiting in the queue until taken into a batch."""

    ops: list[Op]
    future: asyncio.Future[list[Result]]
    deadline: deadlines.Deadline | None
    taken: bool = field(default=False)
    withdrawn: bool = field(default=False)


class Batcher(Generic[Op, Result]):
    """Runs ``run(ops) -> results`` (one result per op, in order) over queued
    groups of operations. A group (one caller's ops) is never split across
    batches, so it sees its own operations applied together and in order.
    If ``run`` raises, every caller in that batch gets the exception.

    ``name`` says which queue refused a submission (metrics, messages);
    ``writes``: taking a caller's group into a batch marks the caller's write
    as handed over to storage (see ``deadlines``)."""

    def __init__(
        self,
        run: RunBatch[Op, Result],
        *,
        max_batch: int,
        max_in_flight: int,
        max_queued: int | None = None,
        name: str = "batch",
        writes: bool = False,
    ) -> None:
        self._run = run
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self.max_queued = max_queued
        self.name = name
        self._writes = writes
        self._queue: deque[_Group[Op, Result]] = deque()
        self._queued_ops = 0
        self._in_flight: dict[asyncio.Task[None], tuple[float, int]] = {}
        """Running batches: when each started, how many operations it carries."""
        self._dispatch_scheduled = False
        self._op_seconds = 0.0
        self._idle = asyncio.Event()
        self._idle.set()

    async def submit(self, op: Op) -> Result:
        """Run one operation in the next batch; return its result."""
        return (await self.submit_group([op]))[0]

    async def submit_group(self, ops: list[Op]) -> list[Result]:
        """Run ``ops`` together in one batch (``len(ops)`` may exceed max_batch).
        Overloaded when the queue holds ``max_queued`` operations already
        (a group is taken alone into an empty queue, whatever its size)."""
        limit = self.max_queued
        if limit is not None and self._queued_ops and self._queued_ops + len(ops) > limit:
            REQUESTS_REFUSED.labels(reason=f"{self.name}-queue").inc()
            raise Overloaded(
                f"the {self.name} queue of this worker is full ({limit} operations);"
                " retry after a second; the request was not applied"
            )
        loop = asyncio.get_running_loop()
        group: _Group[Op, Result] = _Group(ops, loop.create_future(), deadlines.current())
        self._queue.append(group)
        self._queued_ops += len(ops)
        self._idle.clear()
        if not self._dispatch_scheduled and len(self._in_flight) < self.max_in_flight:
            self._dispatch_scheduled = True
            loop.call_soon(self._dispatch)
        try:
            return await group.future
        except asyncio.CancelledError:
            if not group.taken and not group.withdrawn:
                self._withdraw(group)
            raise

    def _withdraw(self, group: _Group[Op, Result]) -> None:
        """Take a cancelled caller's group out of the queue count; it stays
        in the deque until the next take skips it."""
        group.withdrawn = True
        self._queued_ops -= len(group.ops)

    @property
    def queued(self) -> int:
        """Operations waiting for a batch."""
        return self._queued_ops

    def behind(self) -> float:
        """Seconds a new operation would wait beyond the next round of batches:
        the operations queued past what ``max_in_flight`` batches take, at the
        queue's pace (the moving average of its recent batches, or the pace of
        a batch still running, when that is slower). Zero while the next round
        takes everything queued: waiting for it is not falling behind."""
        beyond = self._queued_ops - self.max_batch * self.max_in_flight
        if beyond <= 0:
            return 0.0
        now = asyncio.get_running_loop().time()
        pace = self._op_seconds
        for started, ops in self._in_flight.values():
            pace = max(pace, (now - started) / max(ops, 1) / self.max_in_flight)
        return beyond * pace

    def _take_batch(self) -> list[_Group[Op, Result]]:
        batch: list[_Group[Op, Result]] = []
        size = 0
        while self._queue:
            group = self._queue[0]
            if group.withdrawn or group.future.done():  # its caller gave up: never sent
                self._queue.popleft()
                if not group.withdrawn:
                    self._withdraw(group)
                continue
            if batch and size + len(group.ops) > self.max_batch:
                break
            self._queue.popleft()
            self._queued_ops -= len(group.ops)
            group.taken = True
            if self._writes and group.deadline is not None:
                group.deadline.write_handed_over = True
            batch.append(group)
            size += len(group.ops)
        return batch

    def _dispatch(self) -> None:
        self._dispatch_scheduled = False
        while self._queue and len(self._in_flight) < self.max_in_flight:
            batch = self._take_batch()
            if batch:
                context = deadlines.context_until(group.deadline for group in batch)
                task = asyncio.create_task(self._run_batch(batch), context=context)
                ops = sum(len(group.ops) for group in batch)
                self._in_flight[task] = (asyncio.get_running_loop().time(), ops)
        if not self._queue and not self._in_flight:
            self._idle.set()

    async def _run_batch(self, batch: list[_Group[Op, Result]]) -> None:
        ops = [op for group in batch for op in group.ops]
        try:
            results = await self._run(ops)
        except BaseException as exc:
            error = exc if isinstance(exc, Exception) else RuntimeError("batch was cancelled")
            for group in batch:
                if not group.future.done():
                    group.future.set_exception(error)
            if not isinstance(exc, Exception):
                raise
        else:
            # The pace of the queue, per operation, as a moving average over
            # successful batches (a failing backend is the breaker's business).
            started, _ = self._in_flight[self._current()]
            elapsed = asyncio.get_running_loop().time() - started
            pace = elapsed / max(len(ops), 1) / self.max_in_flight
            self._op_seconds += PACE_WEIGHT * (pace - self._op_seconds)
            start = 0
            for group in batch:
                if not group.future.done():
                    group.future.set_result(list(results[start : start + len(group.ops)]))
                start += len(group.ops)
        finally:
            del self._in_flight[self._current()]
            self._dispatch()

    @staticmethod
    def _current() -> asyncio.Task[None]:
        task = asyncio.current_task()
        assert task is not None
        return task

    async def drain(self) -> None:
        """Wait until every submitted operation has been run (graceful shutdown)."""
        await self._idle.wait()
