"""Batch calls that DynamoDB answers only in part: what it leaves in
``UnprocessedItems`` / ``UnprocessedKeys`` is sent again, with bounded backoff."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from .. import deadlines
from ..errors import BackendUnavailable
from .base import RetryHook

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded exponential backoff with jitter for UnprocessedItems/Keys: give up
    after ``attempts`` calls in a row that made no progress."""

    attempts: int = 6
    base: float = 0.02
    cap: float = 0.5

    def delay(self, stalls: int) -> float:
        ceiling = min(self.cap, self.base * 2.0**stalls)
        return ceiling / 2 + random.uniform(0, ceiling / 2)


async def until_done(
    what: str,
    pending: list[T],
    send: Callable[[list[T]], Awaitable[list[T]]],
    policy: RetryPolicy,
    on_retry: RetryHook | None = None,
) -> None:
    """Call ``send`` (which returns what was left unprocessed) until nothing is
    left, backing off; BackendUnavailable after ``policy.attempts`` calls in a
    row that made no progress. ``on_retry(kind, n)`` is told of every re-send
    (kind "write" for BatchWriteItem, else "read"). A pause that would end
    past the request's deadline is not made: BackendUnavailable at once."""
    kind = "write" if what == "BatchWriteItem" else "read"
    stalls = 0
    while True:
        left = await send(pending)
        if not left:
            return
        stalls = 0 if len(left) < len(pending) else stalls + 1
        if stalls >= policy.attempts:
            raise BackendUnavailable(
                f"DynamoDB {what}: {len(left)} requests still unprocessed after"
                f" {stalls} attempts (throughput exceeded); retry later"
            )
        delay = policy.delay(stalls)
        time_left = deadlines.time_left()
        if time_left is not None and delay >= time_left:
            raise BackendUnavailable(
                f"DynamoDB {what}: {len(left)} requests still unprocessed at the"
                " request's deadline (throughput exceeded); retry later"
            )
        await asyncio.sleep(delay)
        if on_retry is not None:
            on_retry(kind, len(left))
        pending = left
