"""Per-request sessions: a unit of work on one collection.

Reads are cached for the life of the session; writes are buffered and sent as
ONE batch call (split only at the service's limits) by ``commit()`` or when a
``with`` / ``async with`` block ends normally. A block that ends with an
exception sends nothing. Values handed out are the cached objects themselves:
changing one in place (``db[uid]["email"] = x``) is saved at commit too, because
the session keeps a snapshot of each value it read and sends only those that
really changed. A session is for one task or thread at a time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, ItemsView, Iterator, KeysView, MutableMapping, ValuesView
from types import TracebackType
from typing import Any

from itemstore_wire.contract import Key
from itemstore_wire.exactjson import dumps

from ._keys import KeyTag, check_key
from ._protocol import check_collection_name, encode_op
from ._session_state import Entry, SessionState
from .aio import AsyncClient
from .client import Client, lookup_key, pairs_of

_MISSING: Any = object()


class Session(MutableMapping[Key, Any]):
    """A dict view of one collection with cached reads and buffered writes
    (see the module docs). ``len`` and iteration merge the service's items with
    the session's pending changes."""

    def __init__(self, client: Client, name: str) -> None:
        self.client = client
        self.name = check_collection_name(name)
        self._core = client._core
        self._state = SessionState()

    def _entry(self, key: Key) -> Entry:
        entry = self._state.lookup(key)
        if entry is None:
            item = self.client.run(self._core.get(self.name, key))
            found = item is not None
            entry = self._state.loaded(key, found, item.value if item is not None else None)
        return entry

    def __getitem__(self, key: Key) -> Any:
        entry = self._entry(key)
        if not entry.present:
            raise KeyError(key)
        return entry.value

    def __setitem__(self, key: Key, value: Any) -> None:
        dumps(value)  # a value that is not JSON fails here, not at commit
        self._state.assign(key, value)

    def __delitem__(self, key: Key) -> None:
        entry = self._entry(key)
        if not entry.present:
            raise KeyError(key)
        self._state.delete(entry)

    def __contains__(self, key: object) -> bool:
        found = lookup_key(key)
        return found is not None and self._entry(found).present

    def get(self, key: Key, default: Any = None) -> Any:
        entry = self._entry(key)
        return entry.value if entry.present else default

    def setdefault(self, key: Key, default: Any = None) -> Any:
        entry = self._entry(key)
        if not entry.present:
            self[key] = default
        return entry.value

    def pop(self, key: Key, default: Any = _MISSING) -> Any:
        entry = self._entry(key)
        if not entry.present:
            if default is _MISSING:
                raise KeyError(key)
            return default
        value = entry.value
        self._state.delete(entry)
        return value

    def __iter__(self) -> Iterator[Key]:
        for key, _ in self._walk(keys_only=True):
            yield key

    def _walk(self, *, keys_only: bool) -> Iterator[tuple[Key, Any]]:
        """The service's items with the session's changes applied, then the
        items only this session added; values are the cached objects."""
        seen: set[KeyTag] = set()
        for key, value in self._remote(keys_only):
            item = self._state.walked(key, value, seen, keys_only=keys_only)
            if item is not None:
                yield item
        for entry in self._state.unseen(seen):
            yield entry.key, entry.value

    def _remote(self, keys_only: bool) -> Iterator[tuple[Key, Any]]:
        collection = self.client.collection(self.name)
        size = self.client.limits.max_page_size if keys_only else None
        return collection.iter_items(page_size=size, keys_only=keys_only)

    def __len__(self) -> int:
        unknown = self._state.unknown()
        if unknown:
            ops = [encode_op("get", e.key) for e in unknown]
            for entry, result in zip(unknown, self.client.batch(self.name, ops), strict=True):
                self._state.resolved(entry, result.status == 200)
        return self.client.run(self._core.count(self.name)) + self._state.len_delta()

    def clear(self) -> None:
        for key in list(self):
            self._state.removed(key)

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        for key, value in pairs_of(other, kwargs):
            self[key] = value

    def keys(self) -> KeysView[Key]:
        return KeysView(self)

    def values(self) -> ValuesView[Any]:
        return _SessionValues(self)

    def items(self) -> ItemsView[Key, Any]:
        return _SessionItems(self)

    def commit(self) -> int:
        """Send every pending change now, as one batch call per ``max_batch_ops``;
        return how many ops were sent. The cache stays valid afterwards."""
        plan = self._state.plan()
        if plan.ops:
            self.client.batch(self.name, plan.ops)
        self._state.committed(plan)
        return len(plan.ops)

    def rollback(self) -> None:
        """Forget pending changes and cached reads."""
        self._state.reset()

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.commit()

    def __repr__(self) -> str:
        return f"<itemstore.Session {self.name!r} at {self.client.url}>"


class _SessionValues(ValuesView[Any]):
    _mapping: Session

    def __iter__(self) -> Iterator[Any]:
        for _, value in self._mapping._walk(keys_only=False):
            yield value


class _SessionItems(ItemsView[Key, Any]):
    _mapping: Session

    def __iter__(self) -> Iterator[tuple[Key, Any]]:
        return self._mapping._walk(keys_only=False)


class AsyncSession:
    """The asyncio session: the operations of :class:`~itemstore.AsyncCollection`
    with the caching and buffering of :class:`Session`. Reads are coroutines;
    so are writes, for symmetry, though they only touch the buffer."""

    def __init__(self, client: AsyncClient, name: str) -> None:
        self.client = client
        self.name = check_collection_name(name)
        self._core = client._core
        self._state = SessionState()

    async def _entry(self, key: Key) -> Entry:
        entry = self._state.lookup(key)
        if entry is None:
            item = await self.client.run(self._core.get(self.name, key))
            found = item is not None
            entry = self._state.loaded(key, found, item.value if item is not None else None)
        return entry

    async def getitem(self, key: Key) -> Any:
        entry = await self._entry(key)
        if not entry.present:
            raise KeyError(key)
        return entry.value

    async def get(self, key: Key, default: Any = None) -> Any:
        entry = await self._entry(key)
        return entry.value if entry.present else default

    async def set(self, key: Key, value: Any) -> None:
        check_key(key)
        dumps(value)
        self._state.assign(key, value)

    async def delete(self, key: Key) -> None:
        entry = await self._entry(key)
        if not entry.present:
            raise KeyError(key)
        self._state.delete(entry)

    async def contains(self, key: object) -> bool:
        found = lookup_key(key)
        return found is not None and (await self._entry(found)).present

    async def setdefault(self, key: Key, default: Any = None) -> Any:
        entry = await self._entry(key)
        if not entry.present:
            await self.set(key, default)
        return entry.value

    async def pop(self, key: Key, default: Any = _MISSING) -> Any:
        entry = await self._entry(key)
        if not entry.present:
            if default is _MISSING:
                raise KeyError(key)
            return default
        value = entry.value
        self._state.delete(entry)
        return value

    async def popitem(self) -> tuple[Key, Any]:
        async for key, value in self._walk(keys_only=False):
            self._state.removed(key)
            return key, value
        raise KeyError("popitem(): session is empty")

    async def update(self, other: Any = (), /, **kwargs: Any) -> None:
        for key, value in pairs_of(other, kwargs):
            await self.set(key, value)

    async def clear(self) -> None:
        for key in [k async for k in self.keys()]:
            self._state.removed(key)

    async def count(self) -> int:
        unknown = self._state.unknown()
        if unknown:
            ops = [encode_op("get", e.key) for e in unknown]
            results = await self.client.batch(self.name, ops)
            for entry, result in zip(unknown, results, strict=True):
                self._state.resolved(entry, result.status == 200)
        return await self.client.run(self._core.count(self.name)) + self._state.len_delta()

    def __aiter__(self) -> AsyncIterator[Key]:
        return self.keys()

    async def keys(self) -> AsyncIterator[Key]:
        async for key, _ in self._walk(keys_only=True):
            yield key

    async def values(self) -> AsyncIterator[Any]:
        async for _, value in self._walk(keys_only=False):
            yield value

    def items(self) -> AsyncIterator[tuple[Key, Any]]:
        return self._walk(keys_only=False)

    async def to_dict(self) -> dict[Key, Any]:
        return {k: v async for k, v in self.items()}

    async def _walk(self, *, keys_only: bool) -> AsyncIterator[tuple[Key, Any]]:
        seen: set[KeyTag] = set()
        collection = self.client.collection(self.name)
        size = (await self.client.limits()).max_page_size if keys_only else None
        async for key, value in collection.items(page_size=size, keys_only=keys_only):
            item = self._state.walked(key, value, seen, keys_only=keys_only)
            if item is not None:
                yield item
        for entry in self._state.unseen(seen):
            yield entry.key, entry.value

    async def commit(self) -> int:
        """Send every pending change now, as one batch call per ``max_batch_ops``."""
        plan = self._state.plan()
        if plan.ops:
            await self.client.batch(self.name, plan.ops)
        self._state.committed(plan)
        return len(plan.ops)

    def rollback(self) -> None:
        self._state.reset()

    async def __aenter__(self) -> AsyncSession:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            await self.commit()

    def __repr__(self) -> str:
        return f"<itemstore.AsyncSession {self.name!r} at {self.client.url}>"
