"""A ``Backend`` around another one: every call goes through ``_call``, the
one place where a wrapper (metrics, the circuit breaker) adds what it does."""

from __future__ import annotations

from collections.abc import Awaitable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

from .base import Backend, ItemKey, Listed, Puts, Record, Records, Scanned, TxOp, Update

if TYPE_CHECKING:
    from ..conditions import Where

T = TypeVar("T")


class BackendWrapper:
    """Forwards every call to ``inner`` through ``_call(op, call)``, which
    awaits ``call`` (the coroutine of ``inner``'s method named ``op``)."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name = inner.name

    async def _call(self, op: str, call: Awaitable[T]) -> T:
        return await call

    async def get_many(self, keys: Sequence[ItemKey], *, consistent: bool) -> Records:
        return await self._call("get_many", self.inner.get_many(keys, consistent=consistent))

    async def write_many(
        self, puts: Puts, deletes: Sequence[ItemKey], *, previous: Collection[ItemKey]
    ) -> Records:
        return await self._call(
            "write_many", self.inner.write_many(puts, deletes, previous=previous)
        )

    async def put_if(self, key: ItemKey, record: Record, *, expected: str | None) -> Record | None:
        return await self._call("put_if", self.inner.put_if(key, record, expected=expected))

    async def update_many(self, updates: Mapping[ItemKey, Update]) -> list[ItemKey]:
        return await self._call("update_many", self.inner.update_many(updates))

    async def delete_if(self, key: ItemKey, *, expected: str) -> Record:
        return await self._call("delete_if", self.inner.delete_if(key, expected=expected))

    async def transact(self, ops: Sequence[TxOp], *, token: str | None) -> Records:
        return await self._call("transact", self.inner.transact(ops, token=token))

    async def query(
        self, collection: str, *, after: str | None, prefix: str, limit: int, keys_only: bool
    ) -> list[Listed]:
        listed = self.inner.query(
            collection, after=after, prefix=prefix, limit=limit, keys_only=keys_only
        )
        return await self._call("query", listed)

    async def scan(
        self,
        collection: str,
        *,
        after: str | None,
        prefix: str = "",
        where: Where,
        limit: int,
        budget: int,
        keys_only: bool,
    ) -> Scanned:
        scanned = self.inner.scan(
            collection,
            after=after,
            prefix=prefix,
            where=where,
            limit=limit,
            budget=budget,
            keys_only=keys_only,
        )
        return await self._call("scan", scanned)

    async def count(self, collection: str) -> int:
        return await self._call("count", self.inner.count(collection))

    async def delete_collection(self, collection: str) -> int:
        return await self._call("delete_collection", self.inner.delete_collection(collection))

    async def list_collections(self, *, after: str | None, limit: int) -> list[str]:
        return await self._call(
            "list_collections", self.inner.list_collections(after=after, limit=limit)
        )

    async def ping(self) -> None:
        await self._call("ping", self.inner.ping())
