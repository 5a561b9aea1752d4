"""Backend instrumentation: ``InstrumentedBackend`` times every backend call
and counts its errors and batch sizes, and ``count_unprocessed_retries`` is the
``on_retry`` hook a backend is opened with. Backends know nothing of metrics."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Collection, Sequence
from typing import TypeVar

from prometheus_client import Histogram

from ..backends.base import ConditionFailed, ItemKey, Puts, Records
from ..backends.wrapper import BackendWrapper
from .metrics import BACKEND_ERRORS, BACKEND_LATENCY, BATCH_SIZE, UNPROCESSED_RETRIES

T = TypeVar("T")


# labels() costs a lock and a few allocations per call: look each child up once.
@functools.cache
def _latency_of(backend: str, op: str) -> Histogram:
    return BACKEND_LATENCY.labels(backend=backend, op=op)


@functools.cache
def _batch_size_of(kind: str) -> Histogram:
    return BATCH_SIZE.labels(kind=kind)


def count_unprocessed_retries(kind: str, n: int) -> None:
    """A backend's ``on_retry`` hook: ``n`` unprocessed requests re-sent."""
    UNPROCESSED_RETRIES.labels(kind=kind).inc(n)


class InstrumentedBackend(BackendWrapper):
    """A ``Backend`` that forwards every call to ``inner`` and records its
    latency, errors and (for get_many / write_many) batch size."""

    async def _call(self, op: str, call: Awaitable[T]) -> T:
        """Time the call, and count it as an error when it raises (a failed
        condition is an answer, not an error)."""
        start = time.perf_counter()
        try:
            return await call
        except ConditionFailed:
            raise
        except Exception as exc:
            BACKEND_ERRORS.labels(backend=self.name, op=op, error=type(exc).__name__).inc()
            raise
        finally:
            _latency_of(self.name, op).observe(time.perf_counter() - start)

    async def get_many(self, keys: Sequence[ItemKey], *, consistent: bool) -> Records:
        _batch_size_of("read").observe(len(keys))
        return await super().get_many(keys, consistent=consistent)

    async def write_many(
        self, puts: Puts, deletes: Sequence[ItemKey], *, previous: Collection[ItemKey]
    ) -> Records:
        _batch_size_of("write").observe(len(puts) + len(deletes))
        return await super().write_many(puts, deletes, previous=previous)
