"""The asyncio SDK: :class:`AsyncClient` and :class:`AsyncCollection`, the
same operations as the sync collection, as coroutines and async iterators."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from itemstore_wire.contract import Key, Limits
from itemstore_wire.exactjson import dumps

from ._protocol import Call, Core, Item, OpResult, applied_before, check_collection_name, split_ops
from ._retry import RetryPolicy
from ._transport import AsyncTransport
from .client import DEFAULT_URL, lookup_key, pairs_of, put_ops
from .errors import ItemstoreError

if TYPE_CHECKING:
    from .session import AsyncSession

T = TypeVar("T")
_MISSING: Any = object()


class AsyncClient:
    """A connection to one itemstore service for asyncio code. Its aiohttp
    session opens on first use; close it with ``await client.close()`` or
    ``async with AsyncClient(...) as client``."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        pool_size: int = 100,
    ) -> None:
        self._core = Core(url, token)
        self._transport = AsyncTransport(
            timeout=timeout, retry=retry or RetryPolicy(), pool_size=pool_size
        )
        self._limits: Limits | None = None

    @property
    def url(self) -> str:
        return self._core.base_url

    async def run(self, call: Call[T]) -> T:
        """Send one core call and decode its answer."""
        return await self._transport.run(call)

    async def info(self) -> dict[str, Any]:
        return await self.run(self._core.info())

    async def limits(self) -> Limits:
        """The service's limits, asked once and then remembered."""
        if self._limits is None:
            self._limits = Limits.from_info(await self.info())
        return self._limits

    def collection(self, name: str) -> AsyncCollection:
        return AsyncCollection(self, name)

    def session(self, name: str) -> AsyncSession:
        """A unit of work on one collection: cached reads, one batch of writes."""
        from .session import AsyncSession

        return AsyncSession(self, name)

    async def collections(self) -> AsyncIterator[str]:
        cursor: str | None = None
        while True:
            page = await self.run(self._core.collections_page(cursor, None))
            for name in page.entries:
                yield name
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def batch(self, collection: str, ops: list[bytes]) -> list[OpResult]:
        """Send encoded ops in order, one call per ``max_batch_ops``; the
        results of every op, in order."""
        results: list[OpResult] = []
        limits = await self.limits()
        for chunk in split_ops(ops, limits.max_batch_ops, limits.max_request_bytes):
            try:
                chunk_results = await self.run(self._core.batch(collection, chunk))
            except ItemstoreError as error:
                raise applied_before(error, len(results), len(ops)) from None
            results.extend(chunk_results)
        return results

    async def close(self) -> None:
        await self._transport.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncClient({self.url!r})"


class AsyncCollection:
    """A remote collection for asyncio: ``await c.get(k)``, ``await c.set(k, v)``,
    ``await c.delete(k)``, ``async for k in c`` ... Semantics and exceptions are
    those of the sync :class:`~itemstore.Collection` (and of dict)."""

    def __init__(self, client: AsyncClient, name: str) -> None:
        self.client = client
        self.name = check_collection_name(name)
        self._core = client._core

    async def getitem(self, key: Key) -> Any:
        """``c[key]``: the value, KeyError when absent."""
        item = await self.client.run(self._core.get(self.name, key))
        if item is None:
            raise KeyError(key)
        return item.value

    async def get(self, key: Key, default: Any = None) -> Any:
        item = await self.client.run(self._core.get(self.name, key))
        return default if item is None else item.value

    async def get_item(self, key: Key, *, consistent: bool = False) -> Item | None:
        """The value with its ETag, None when absent."""
        return await self.client.run(self._core.get(self.name, key, consistent=consistent))

    async def set(
        self, key: Key, value: Any, *, if_match: str | None = None, if_absent: bool = False
    ) -> str:
        """``c[key] = value``; returns the new ETag (conditions as in the sync ``set``)."""
        call = self._core.put(self.name, key, dumps(value), if_match=if_match, if_absent=if_absent)
        return (await self.client.run(call))[1]

    async def delete(self, key: Key, *, if_match: str | None = None) -> Item:
        """``del c[key]``: returns the removed item; KeyError when absent."""
        item = await self.client.run(self._core.delete(self.name, key, if_match=if_match))
        if item is None:
            raise KeyError(key)
        return item

    async def contains(self, key: object) -> bool:
        """``key in c``."""
        found = lookup_key(key)
        return found is not None and await self.client.run(self._core.contains(self.name, found))

    async def count(self) -> int:
        """``len(c)``."""
        return await self.client.run(self._core.count(self.name))

    async def is_empty(self) -> bool:
        """``not c``."""
        page = await self.client.run(self._core.page(self.name, None, limit=1, keys_only=True))
        return not page.entries

    async def setdefault(self, key: Key, default: Any = None) -> Any:
        """Atomic setdefault in one conditional PUT."""
        return await self.client.run(self._core.setdefault(self.name, key, default))

    async def pop(self, key: Key, default: Any = _MISSING) -> Any:
        item = await self.client.run(self._core.delete(self.name, key))
        if item is not None:
            return item.value
        if default is _MISSING:
            raise KeyError(key)
        return default

    async def popitem(self) -> tuple[Key, Any]:
        while True:
            page = await self.client.run(self._core.page(self.name, None, limit=1, keys_only=True))
            if not page.entries:
                raise KeyError("popitem(): collection is empty")
            key = page.entries[0][0]
            item = await self.client.run(self._core.delete(self.name, key))
            if item is not None:
                return key, item.value

    async def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """One batch call per ``max_batch_ops``. ``other`` may be a mapping,
        pairs, or another AsyncCollection."""
        if isinstance(other, AsyncCollection):
            other = [pair async for pair in other.items()]
        ops = put_ops(pairs_of(other, kwargs))
        if ops:
            await self.client.batch(self.name, ops)

    async def clear(self) -> None:
        await self.client.run(self._core.clear(self.name))

    async def add(self, value: Any) -> str:
        """Store under a new service-made key; return the key."""
        return (await self.client.run(self._core.add(self.name, dumps(value))))[0]

    def __aiter__(self) -> AsyncIterator[Key]:
        return self.keys()

    async def keys(
        self, prefix: str | None = None, page_size: int | None = None
    ) -> AsyncIterator[Key]:
        size = page_size or (await self.client.limits()).max_page_size
        async for key, _ in self._walk(prefix, size, True):
            yield key

    async def values(
        self, prefix: str | None = None, page_size: int | None = None
    ) -> AsyncIterator[Any]:
        async for _, value in self._walk(prefix, page_size, False):
            yield value

    def items(
        self, prefix: str | None = None, page_size: int | None = None, *, keys_only: bool = False
    ) -> AsyncIterator[tuple[Key, Any]]:
        """Every ``(key, value)`` in key order; ``keys_only`` leaves values None."""
        return self._walk(prefix, page_size, keys_only)

    async def to_dict(self) -> dict[Key, Any]:
        return {k: v async for k, v in self.items()}

    async def equals(self, other: Mapping[Key, Any] | AsyncCollection) -> bool:
        """``c == other`` for a mapping or another async collection."""
        if isinstance(other, AsyncCollection):
            return await self.to_dict() == await other.to_dict()
        return await self.to_dict() == dict(other.items())

    async def _walk(
        self, prefix: str | None, page_size: int | None, keys_only: bool
    ) -> AsyncIterator[tuple[Key, Any]]:
        cursor: str | None = None
        while True:
            call = self._core.page(
                self.name, cursor, limit=page_size, prefix=prefix, keys_only=keys_only
            )
            page = await self.client.run(call)
            for entry in page.entries:
                yield entry
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def __repr__(self) -> str:
        return f"<itemstore.AsyncCollection {self.name!r} at {self.client.url}>"
