"""Backend instrumentation: ``InstrumentedBackend`` times every backend call
and counts its errors and batch sizes, and ``count_unprocessed_retries`` is the
``on_retry`` hook a backend is opened with. Backends know nothing of metrics."""

from __future__ import annotations

import functools
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager

from prometheus_client import Histogram

from ..backends.base import Backend, ConditionFailed, ItemKey, Listed, Puts, Record, Records
from .metrics import BACKEND_ERRORS, BACKEND_LATENCY, BATCH_SIZE, UNPROCESSED_RETRIES


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


@contextmanager
def backend_call(backend: str, op: str) -> Iterator[None]:
    """Time one backend call and count it as an error when it raises
    (a failed condition is an answer, not an error)."""
    start = time.perf_counter()
    try:
        yield
    except ConditionFailed:
        raise
    except Exception as exc:
        BACKEND_ERRORS.labels(backend=backend, op=op, error=type(exc).__name__).inc()
        raise
    finally:
        _latency_of(backend, op).observe(time.perf_counter() - start)


class InstrumentedBackend:
    """A ``Backend`` that forwards every call to ``inner`` and records its
    latency, errors and (for get_many / write_many) batch size."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name = inner.name

    async def get_many(self, keys: Sequence[ItemKey], *, consistent: bool) -> dict[ItemKey, Record]:
        _batch_size_of("read").observe(len(keys))
        with backend_call(self.name, "get_many"):
            return await self.inner.get_many(keys, consistent=consistent)

    async def write_many(
        self, puts: Puts, deletes: Sequence[ItemKey], *, previous: Collection[ItemKey]
    ) -> Records:
        _batch_size_of("write").observe(len(puts) + len(deletes))
        with backend_call(self.name, "write_many"):
            return await self.inner.write_many(puts, deletes, previous=previous)

    async def put_if(self, key: ItemKey, record: Record, *, expected: str | None) -> Record | None:
        with backend_call(self.name, "put_if"):
            return await self.inner.put_if(key, record, expected=expected)

    async def delete_if(self, key: ItemKey, *, expected: str) -> Record:
        with backend_call(self.name, "delete_if"):
            return await self.inner.delete_if(key, expected=expected)

    async def query(
        self, collection: str, *, after: str | None, prefix: str, limit: int, keys_only: bool
    ) -> list[Listed]:
        with backend_call(self.name, "query"):
            return await self.inner.query(
                collection, after=after, prefix=prefix, limit=limit, keys_only=keys_only
            )

    async def count(self, collection: str) -> int:
        with backend_call(self.name, "count"):
            return await self.inner.count(collection)

    async def delete_collection(self, collection: str) -> int:
        with backend_call(self.name, "delete_collection"):
            return await self.inner.delete_collection(collection)

    async def list_collections(self, *, after: str | None, limit: int) -> list[str]:
        with backend_call(self.name, "list_collections"):
            return await self.inner.list_collections(after=after, limit=limit)

    async def ping(self) -> None:
        with backend_call(self.name, "ping"):
            await self.inner.ping()
