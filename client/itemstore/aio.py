"""The asyncio SDK: :class:`AsyncClient`, :class:`AsyncCollection` and
:class:`AsyncSession`: the sync client's operations, under the same names, as
coroutines and async iterators (the dict spellings ``c[k]``, ``len(c)`` ... are
``getitem``, ``count`` ...). Every operation is a flow of ``_collection_flows``
/ ``_session_flows``, driven here with aiohttp."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, TypeVar

from itemstore_wire.contract import Key, Limits

from . import _flows as flows
from ._async_transport import AsyncTransport
from ._batch import MISSING, BatchOp, operations
from ._client_base import BaseClient
from ._collection_flows import CollectionFlows, pairs_of
from ._protocol import AccessKey, Call, Item, ListedItem, OpResult, expiry
from ._session_flows import SessionFlows
from ._transaction import TransactionCollection, TransactionOps

T = TypeVar("T")


class AsyncClient(BaseClient[AsyncTransport]):
    """A connection to one itemstore service for asyncio code. Its aiohttp
    session opens on first use; close it with ``await client.close()`` or
    ``async with AsyncClient(...) as client``."""

    default_pool_size = 100

    def _open_transport(self, **options: Any) -> AsyncTransport:
        return AsyncTransport(**options)

    async def run(self, call: Call[T]) -> T:
        """Send one core call and decode its answer."""
        return await self._transport.run(call)

    async def run_flow(self, flow: flows.Flow[T]) -> T:
        """Run a flow of calls to its result."""
        return await flows.run_flow(flow, self._transport.run)

    def stream(self, steps: flows.Stream[T]) -> AsyncIterator[T]:
        """Iterate a stream's results, sending its calls as they are needed."""
        return flows.stream(steps, self._transport.run)

    async def info(self) -> dict[str, Any]:
        """``GET /``: service name, version, backend and limits."""
        return await self.run(self._core.info())

    async def limits(self) -> Limits:
        """The service's limits, asked once and then remembered."""
        return await self.run_flow(flows.limits(self._core))

    def collection(self, name: str) -> AsyncCollection:
        return AsyncCollection(self, name)

    def session(self, name: str) -> AsyncSession:
        """A unit of work on one collection: cached reads, one batch of writes."""
        return AsyncSession(self, name)

    @property
    def keys(self) -> AsyncKeys:
        """The service's access keys: ``create``, ``list``, ``revoke``."""
        return AsyncKeys(self)

    def collections(self) -> AsyncIterator[str]:
        """Names of the collections that hold items, paged lazily."""
        return self.stream(flows.collection_names(self._core))

    async def batch(
        self, collection: str, ops: list[BatchOp], *, minimal: bool = False
    ) -> list[OpResult]:
        """Send ops in order, one call per ``max_batch_ops``; the results of
        every op, in order. ``minimal``: blind puts, each answered 204 with
        its ETag (no created-vs-replaced, no read before the write)."""
        return await self.run_flow(flows.batch(self._core, collection, ops, minimal=minimal))

    def transaction(self) -> AsyncTransaction:
        """Writes across collections sent as ONE transaction (all or none)
        when the ``async with`` block ends; nothing is sent after an exception."""
        return AsyncTransaction(self)

    async def close(self) -> None:
        await self._transport.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        await self.close()


class _AsyncFlowMapping:
    """The dict operations an :class:`AsyncCollection` and an
    :class:`AsyncSession` share, each one flow of theirs driven by the client."""

    client: AsyncClient
    _flows: flows.MappingFlows

    async def getitem(self, key: Key) -> Any:
        """``c[key]``: the value, KeyError when absent."""
        return await self.client.run_flow(self._flows.getitem(key))

    async def get(self, key: Key, default: Any = None) -> Any:
        return await self.client.run_flow(self._flows.get(key, default))

    async def contains(self, key: object) -> bool:
        """``key in c``."""
        return await self.client.run_flow(self._flows.contains(key))

    async def count(self) -> int:
        """``len(c)``."""
        return await self.client.run_flow(self._flows.count())

    async def setdefault(self, key: Key, default: Any = None) -> Any:
        return await self.client.run_flow(self._flows.setdefault(key, default))

    async def pop(self, key: Key, default: Any = MISSING) -> Any:
        return await self.client.run_flow(self._flows.pop(key, default))

    async def popitem(self) -> tuple[Key, Any]:
        return await self.client.run_flow(self._flows.popitem())

    async def clear(self) -> None:
        await self.client.run_flow(self._flows.clear())


class AsyncKeys:
    """``client.keys``: the service's access keys (an admin key's calls)."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def create(
        self,
        name: str,
        scope: str,
        *,
        collections: Sequence[str] | None = None,
        rate_limit: float | None = None,
        burst: int | None = None,
    ) -> AccessKey:
        """A new key (``scope``: read, write or admin) whose ``token`` is shown
        only here; ``collections``: names and ``*`` patterns (None: all);
        ``rate_limit``: requests per second, in bursts of up to ``burst``."""
        return await self._client.run(
            self._client._core.create_key(name, scope, collections, rate_limit, burst)
        )

    async def list(self) -> list[AccessKey]:
        """Every key, oldest first, without tokens."""
        return await self._client.run(self._client._core.list_keys())

    async def revoke(self, key_id: str) -> AccessKey:
        """Revoke the key: at once here, within seconds on every replica.
        Raises ``ItemstoreError`` (404 ``key-not-found``) for an unknown id."""
        return await self._client.run(self._client._core.revoke_key(key_id))


class AsyncCollection(_AsyncFlowMapping):
    """A remote collection for asyncio: ``await c.get(k)``, ``await c.set(k, v)``,
    ``await c.delete(k)``, ``async for k in c`` ... Semantics and exceptions are
    those of the sync :class:`~itemstore.Collection` (and of dict)."""

    _flows: CollectionFlows

    def __init__(self, client: AsyncClient, name: str) -> None:
        self.client = client
        self._flows = CollectionFlows(client._core, name)
        self.name = self._flows.name

    async def get_item(self, key: Key, *, consistent: bool = False) -> Item | None:
        """The value with its ETag, None when absent."""
        return await self.client.run_flow(self._flows.get_item(key, consistent))

    async def set(
        self,
        key: Key,
        value: Any,
        *,
        if_match: str | None = None,
        if_absent: bool = False,
        expire_in: int | None = None,
        expire_at: int | None = None,
    ) -> str:
        """``c[key] = value``; returns the new ETag (conditions and expiry as
        in the sync ``set``)."""
        expires = expiry(expire_in, expire_at)
        return await self.client.run_flow(self._flows.set(key, value, if_match, if_absent, expires))

    async def delete(self, key: Key, *, if_match: str | None = None) -> Item:
        """``del c[key]``: returns the removed item; KeyError when absent."""
        return await self.client.run_flow(self._flows.delete(key, if_match))

    async def patch(
        self,
        key: Key,
        *,
        set: Mapping[str, Any] | None = None,
        increment: Mapping[str, int | float] | None = None,
        append: Mapping[str, list[Any]] | None = None,
        prepend: Mapping[str, list[Any]] | None = None,
        delete: list[str] | None = None,
        merge: Any = MISSING,
        if_match: str | None = None,
        expire_in: int | None = None,
        expire_at: int | None = None,
    ) -> Any:
        """Change part of an item atomically; return its new value (as the sync ``patch``)."""
        change = operations(
            set=set, increment=increment, append=append, prepend=prepend, delete=delete
        )
        expires = expiry(expire_in, expire_at)
        return await self.client.run_flow(self._flows.patch(key, change, merge, if_match, expires))

    async def is_empty(self) -> bool:
        """``not c``."""
        return await self.client.run_flow(self._flows.is_empty())

    async def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """One batch call per ``max_batch_ops``. ``other`` may be a mapping,
        pairs, or another AsyncCollection."""
        if isinstance(other, AsyncCollection):
            other = [pair async for pair in other.items()]
        await self.client.run_flow(self._flows.update(pairs_of(other, kwargs)))

    async def add(
        self, value: Any, *, expire_in: int | None = None, expire_at: int | None = None
    ) -> str:
        """Store under a new service-made key; return the key (expiry as in ``set``)."""
        return await self.client.run_flow(self._flows.add(value, expiry(expire_in, expire_at)))

    def __aiter__(self) -> AsyncIterator[Key]:
        return self.iter_keys()

    def keys(self, prefix: str | None = None, page_size: int | None = None) -> AsyncIterator[Key]:
        return self.iter_keys(prefix, page_size)

    def values(self, prefix: str | None = None, page_size: int | None = None) -> AsyncIterator[Any]:
        return self.iter_values(prefix, page_size)

    def items(
        self, prefix: str | None = None, page_size: int | None = None, *, keys_only: bool = False
    ) -> AsyncIterator[tuple[Key, Any]]:
        return self.iter_items(prefix, page_size, keys_only=keys_only)

    def iter_keys(
        self, prefix: str | None = None, page_size: int | None = None
    ) -> AsyncIterator[Key]:
        """Every key in key order (``max_page_size`` keys per request unless told)."""
        return self.client.stream(self._flows.keys(prefix, page_size))

    def iter_values(
        self, prefix: str | None = None, page_size: int | None = None
    ) -> AsyncIterator[Any]:
        return self.client.stream(self._flows.values(prefix, page_size))

    def iter_items(
        self, prefix: str | None = None, page_size: int | None = None, *, keys_only: bool = False
    ) -> AsyncIterator[tuple[Key, Any]]:
        """Every ``(key, value)`` in key order; ``keys_only`` leaves values None."""
        return self.client.stream(self._flows.items(prefix, page_size, keys_only))

    def iter_listed(
        self, prefix: str | None = None, page_size: int | None = None
    ) -> AsyncIterator[ListedItem]:
        """Every item with its expiry, in key order (see ``Collection.iter_listed``)."""
        return self.client.stream(self._flows.listed(prefix, page_size))

    def query(
        self,
        where: Any = None,
        *,
        sort: str | None = None,
        limit: int | None = None,
        page_size: int | None = None,
        keys_only: bool = False,
    ) -> AsyncIterator[tuple[Key, Any]]:
        """The ``(key, value)`` pairs that match ``where``, in key order or by
        ``sort``, at most ``limit`` (see ``Collection.query``)."""
        return self.client.stream(self._flows.query(where, sort, limit, page_size, keys_only))

    async def count(self, where: Any = None) -> int:
        """``len(c)``; with ``where``, how many items match it."""
        if where is None:
            return await self.client.run_flow(self._flows.count())
        return await self.client.run_flow(self._flows.count_matching(where))

    async def to_dict(self) -> dict[Key, Any]:
        return {k: v async for k, v in self.iter_items()}

    async def equals(self, other: Mapping[Key, Any] | AsyncCollection) -> bool:
        """``c == other`` for a mapping or another async collection."""
        if isinstance(other, AsyncCollection):
            return await self.to_dict() == await other.to_dict()
        return await self.to_dict() == dict(other.items())

    def __repr__(self) -> str:
        return f"<itemstore.AsyncCollection {self.name!r} at {self.client.url}>"


class AsyncSession(_AsyncFlowMapping):
    """The asyncio session: the operations of the sync :class:`~itemstore.Session`
    under the same names, with its caching and buffering. Reads are coroutines;
    so are writes, for symmetry, though they only touch the buffer."""

    _flows: SessionFlows

    def __init__(self, client: AsyncClient, name: str) -> None:
        self.client = client
        self._flows = SessionFlows(client._core, name)
        self.name = self._flows.name

    async def set(self, key: Key, value: Any) -> None:
        self._flows.state.assign(key, value)

    async def increment(self, key: Key, path: str, by: int | float = 1) -> None:
        """Add ``by`` to the number at ``path`` at commit (as the sync ``increment``)."""
        self._flows.state.increment(key, path, by)

    async def delete(self, key: Key) -> None:
        await self.client.run_flow(self._flows.delete(key))

    async def update(self, other: Any = (), /, **kwargs: Any) -> None:
        self._flows.update(pairs_of(other, kwargs))

    def __aiter__(self) -> AsyncIterator[Key]:
        return self.keys()

    async def keys(self) -> AsyncIterator[Key]:
        async for key, _ in self.client.stream(self._flows.items(keys_only=True)):
            yield key

    async def values(self) -> AsyncIterator[Any]:
        async for _, value in self.items():
            yield value

    def items(self) -> AsyncIterator[tuple[Key, Any]]:
        return self.client.stream(self._flows.items(keys_only=False))

    async def to_dict(self) -> dict[Key, Any]:
        return {k: v async for k, v in self.items()}

    async def commit(self, *, atomic: bool = False) -> int:
        """Send every pending change now, as one batch call per ``max_batch_ops``
        (``atomic``: as one transaction, all or none)."""
        return await self.client.run_flow(self._flows.commit(atomic=atomic))

    def rollback(self) -> None:
        self._flows.state.reset()

    async def __aenter__(self) -> AsyncSession:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None:
            await self.commit()

    def __repr__(self) -> str:
        return f"<itemstore.AsyncSession {self.name!r} at {self.client.url}>"


class AsyncTransaction:
    """``async with client.transaction() as tx: tx["users"]["ada"] = {...}``:
    the ``Transaction`` of the sync client, sent when the block ends."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self._ops = TransactionOps()
        self.etags: list[str | None] = []

    def __getitem__(self, collection: str) -> TransactionCollection:
        return TransactionCollection(self._ops, collection)

    async def commit(self) -> list[str | None]:
        """Send the ops now; the ETag each put wrote (None for the others)."""
        self.etags = await self.client.run_flow(flows.transact(self.client._core, self._ops.ops))
        return self.etags

    async def __aenter__(self) -> AsyncTransaction:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None:
            await self.commit()
