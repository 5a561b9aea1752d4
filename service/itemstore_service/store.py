"""The semantics of itemstore, between the HTTP handlers and a backend.

The store turns typed keys into storage keys, gives every write a new version
(the HTTP layer sends it as the ETag), checks conditions, and sends plain
reads and writes through batchers: concurrent reads become one ``get_many``,
concurrent puts and deletes one ``write_many`` (group commit). A write is
answered only after the batch that carries it is durable. Conditional writes
go straight to the backend's single-item conditional calls: they cannot share
a batch. Patches are batched apart (``updates``). A blind put (its caller
does not ask whether it created or replaced the item) needs no read of the
record it replaces.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from itemstore_wire.contract import COLLECTION_NAME, Key, Limits

from . import deadlines
from .backends.base import Backend, ConditionFailed, ItemKey, Record
from .batching import Batcher, Tuning
from .errors import InvalidCursor, ItemNotFound, PreconditionFailed
from .keys import MAX_SORT_KEY_BYTES, decode_key, encode_key, is_sort_key, str_prefix
from .operations import Op, OpResult, Outcome, Stored, new_version
from .patching import Change
from .queries import Query, QueryPage, run_query
from .transactions import TransactionOp, run_transaction
from .updates import Patch, apply_patches


@dataclass(frozen=True, slots=True)
class Page:
    items: list[tuple[Key, Record]]
    next_cursor: str | None


# Operations queued for group commit, on storage keys.


@dataclass(frozen=True, slots=True)
class _Get:
    key: ItemKey


@dataclass(frozen=True, slots=True)
class _Put:
    key: ItemKey
    record: Record
    blind: bool = False  # answered WRITTEN: the record it replaces is not needed


@dataclass(frozen=True, slots=True)
class _Delete:
    key: ItemKey


_Queued = _Get | _Put | _Delete


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_key() -> str:
    """A 26-character key that sorts by creation time (ULID layout:
    48 bits of milliseconds, 80 random bits, Crockford base32)."""
    n = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(n >> shift) & 31] for shift in range(125, -1, -5))


def encode_cursor(position: str) -> str:
    return base64.urlsafe_b64encode(position.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, valid: Callable[[str], object]) -> str:
    """The position a cursor names, if ``valid`` accepts it (a sort key, a
    collection name): a cursor is opaque, but never taken on trust."""
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        position = raw.decode()
    except (binascii.Error, ValueError):
        position = ""
    if not valid(position):
        raise InvalidCursor(
            "cursor is not one this server gave out: pass next_cursor back unchanged"
        )
    return position


def _is_float(key: Key) -> bool:
    return isinstance(key, float)


class Store:
    """Item semantics over one backend. Not tied to HTTP. ``max_queued``
    bounds the operations each batcher holds waiting (None: no bound);
    past it a request is refused with Overloaded."""

    def __init__(
        self,
        backend: Backend,
        tuning: Tuning,
        *,
        coalesce: bool = True,
        max_queued: int | None = None,
        max_value_bytes: int = Limits().max_value_bytes,
    ) -> None:
        self.backend = backend
        self.max_value_bytes = max_value_bytes
        if not coalesce:  # one backend call per request: only for measuring what batching buys
            tuning = Tuning(1, 1 << 30, 1, 1 << 30)
        self._reads = {
            consistent: Batcher[ItemKey, Record | None](
                self._read_batch_fn(consistent),
                max_batch=tuning.read_batch,
                max_in_flight=tuning.read_in_flight,
                max_queued=max_queued,
                name="read",
            )
            for consistent in (False, True)
        }
        self._writes = Batcher[_Queued, OpResult](
            self._write_batch,
            max_batch=tuning.write_batch,
            max_in_flight=tuning.write_in_flight,
            max_queued=max_queued,
            name="write",
            writes=True,
        )
        self._updates = Batcher[Patch, OpResult](
            lambda patches: apply_patches(self.backend, patches, self.max_value_bytes),
            max_batch=tuning.write_batch,
            max_in_flight=tuning.write_in_flight,
            max_queued=max_queued,
            name="update",
            writes=True,
        )
        self._batchers: tuple[Batcher[Any, Any], ...] = (
            *self._reads.values(),
            self._writes,
            self._updates,
        )

    def queue_delay(self) -> float:
        """Seconds a new operation would wait for a batch, at the longest
        (see ``Batcher.behind``)."""
        # Asked before every request: a loop, not max() over a generator.
        delay = 0.0
        for batcher in self._batchers:
            behind = batcher.behind()
            if behind > delay:
                delay = behind
        return delay

    async def drain(self) -> None:
        """Wait for every queued read and write to finish (before closing the backend)."""
        await self._writes.drain()
        await self._updates.drain()
        for batcher in self._reads.values():
            await batcher.drain()

    # -- batch functions --------------------------------------------------

    def _read_batch_fn(
        self, consistent: bool
    ) -> Callable[[list[ItemKey]], Awaitable[list[Record | None]]]:
        async def read_batch(keys: list[ItemKey]) -> list[Record | None]:
            found = await self.backend.get_many(list(dict.fromkeys(keys)), consistent=consistent)
            return [found.get(key) for key in keys]

        return read_batch

    async def _write_batch(self, ops: list[_Queued]) -> list[OpResult]:
        """Apply ``ops`` in order, as if one after another, with one backend
        write: the last write to a key is what gets stored; every op is
        answered from the state it would have seen. A key's stored record is
        read only when its first op needs it: not when that is a blind put."""
        first: dict[ItemKey, _Queued] = {}
        final: dict[ItemKey, Record | None] = {}
        for op in ops:
            first.setdefault(op.key, op)
            if isinstance(op, _Put):
                final[op.key] = op.record
            elif isinstance(op, _Delete):
                final[op.key] = None
        # A get first, or a delete first of a key put again later (write_many
        # returns values only for the keys it deletes): read before writing.
        read_first: list[ItemKey] = []
        # A non-blind put first (created or replaced?), or a delete first of a
        # key deleted in the end: write_many returns what it replaced.
        previous: list[ItemKey] = []
        for key, op in first.items():
            if isinstance(op, _Get) or (isinstance(op, _Delete) and final[key] is not None):
                read_first.append(key)
            elif isinstance(op, _Delete) or not op.blind:
                previous.append(key)
        puts = {key: record for key, record in final.items() if record is not None}
        deletes = [key for key, record in final.items() if record is None]
        state: dict[ItemKey, Record] = {}
        if read_first:
            state = await self.backend.get_many(read_first, consistent=True)
        if final:
            state |= await self.backend.write_many(puts, deletes, previous=previous)

        results: list[OpResult] = []
        for op in ops:
            current = state.get(op.key)
            if isinstance(op, _Get):
                results.append(_read_result(current))
            elif isinstance(op, _Put):
                outcome = Outcome.WRITTEN if op.blind else _put_outcome(current)
                results.append(OpResult(outcome, op.record))
                state[op.key] = op.record
            else:
                results.append(_delete_result(current))
                state.pop(op.key, None)
        return results

    # -- items ------------------------------------------------------------

    async def get(self, collection: str, key: Key, *, consistent: bool = False) -> Record:
        """The item's record; ItemNotFound when absent."""
        record = await self._reads[consistent].submit((collection, encode_key(key)))
        if record is None:
            raise ItemNotFound(f"collection {collection!r} has no item with key {key!r}")
        return record

    async def put(
        self,
        collection: str,
        key: Key,
        value: bytes,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
        blind: bool = False,
        expires_at: int | None = None,
    ) -> Stored:
        """Store ``value`` (JSON bytes): CREATED when it was absent, REPLACED
        otherwise. ``if_none_match``: only when absent; ``if_match``: only when
        the stored version is that one. PreconditionFailed otherwise.
        ``blind``: the caller does not need CREATED vs REPLACED, so an
        unconditional put reads nothing and is WRITTEN (a conditional put
        reads its item anyway and tells). ``expires_at``: when the item
        expires (Unix seconds); None: never, whatever it had before."""
        item_key = (collection, encode_key(key))
        record = Record(value, new_version(), _is_float(key), expires_at)
        if if_match is None and not if_none_match:
            result = await self._writes.submit(_Put(item_key, record, blind))
            return Stored(result.outcome, record)
        deadlines.hand_over_write()
        try:
            previous = await self.backend.put_if(
                item_key, record, expected=None if if_none_match else if_match
            )
        except ConditionFailed as failed:
            raise _precondition_failed(key, failed.current) from None
        return Stored(_put_outcome(previous), record)

    async def delete(self, collection: str, key: Key, *, if_match: str | None = None) -> Record:
        """Remove the item and return what it held; ItemNotFound when absent."""
        item_key = (collection, encode_key(key))
        if if_match is None:
            result = await self._writes.submit(_Delete(item_key))
            if result.record is None:
                raise ItemNotFound(f"collection {collection!r} has no item with key {key!r}")
            return result.record
        deadlines.hand_over_write()
        try:
            return await self.backend.delete_if(item_key, expected=if_match)
        except ConditionFailed as failed:
            if failed.current is None:
                raise ItemNotFound(
                    f"collection {collection!r} has no item with key {key!r}"
                ) from None
            raise _precondition_failed(key, failed.current) from None

    async def patch(
        self,
        collection: str,
        key: Key,
        change: Change,
        *,
        if_match: str | None = None,
        expires_at: int | None = None,
    ) -> Record:
        """Apply ``change`` to the item's value, atomically; return the new
        record. ItemNotFound when absent; with ``if_match``, PreconditionFailed
        unless the stored version is that one; PatchConflict when the value
        does not fit the change; ValueTooLarge when the result is over the
        limit; Contended when other writers kept it from applying.
        ``expires_at``: the item's new expiry; None: it keeps the one it has."""
        item_key = (collection, encode_key(key))
        result = await self._updates.submit(Patch(item_key, change, if_match, expires_at))
        if result.outcome is Outcome.MISSING:
            raise ItemNotFound(f"collection {collection!r} has no item with key {key!r}")
        if result.error is not None:
            raise result.error
        assert result.record is not None
        return result.record

    async def create(
        self, collection: str, value: bytes, *, expires_at: int | None = None
    ) -> tuple[str, Record]:
        """Store ``value`` under a new time-ordered key; return the key and
        the record written."""
        key = new_key()
        # A new key: nothing to read.
        stored = await self.put(collection, key, value, blind=True, expires_at=expires_at)
        return key, stored.record

    async def batch(
        self, collection: str, ops: Sequence[Op], *, blind: bool = False
    ) -> list[OpResult]:
        """Apply ``ops`` in order, as if one after another (not atomically).
        Batches of gets only are served by the read coalescer. ``blind``: every
        put is blind (WRITTEN, see ``put``). Patches go to the update batcher,
        each run of them after the ops before it."""
        if all(op.kind == "get" for op in ops):
            keys = [(collection, encode_key(op.key)) for op in ops]
            records = await self._reads[False].submit_group(keys)
            return [_read_result(record) for record in records]
        results: list[OpResult] = []
        for patches, run in itertools.groupby(ops, key=lambda op: op.kind == "patch"):
            if patches:
                results += await self._updates.submit_group(
                    [
                        Patch((collection, encode_key(op.key)), _change(op), None, op.expires_at)
                        for op in run
                    ]
                )
            else:
                results += await self._writes.submit_group(
                    [_queued(collection, op, blind) for op in run]
                )
        return results

    # -- listings ---------------------------------------------------------

    async def list_items(
        self,
        collection: str,
        *,
        limit: int,
        cursor: str | None = None,
        prefix: str | None = None,
        keys_only: bool = False,
    ) -> Page:
        """One page of the collection in key order; ``prefix`` selects str keys."""
        after = decode_cursor(cursor, is_sort_key) if cursor else None
        sk_prefix = "" if prefix is None else str_prefix(prefix)
        if len(sk_prefix.encode()) > MAX_SORT_KEY_BYTES:  # longer than any key
            return Page([], None)
        listed = await self.backend.query(
            collection,
            after=after,
            prefix=sk_prefix,
            limit=limit + 1,
            keys_only=keys_only,
        )
        more = len(listed) > limit
        listed = listed[:limit]
        items = [(decode_key(entry.sk, entry.record.float_key), entry.record) for entry in listed]
        return Page(items, encode_cursor(listed[-1].sk) if more else None)

    async def query(self, collection: str, query: Query, *, budget: int) -> QueryPage:
        """One page of ``query`` (see ``queries``), reading at most ``budget`` items."""
        return await run_query(self.backend, collection, query, budget)

    async def transact(
        self, ops: Sequence[TransactionOp], *, token: str | None = None
    ) -> list[Record | None]:
        """Apply ``ops`` all or none (see ``transactions``); the record each
        put and patch wrote."""
        return await run_transaction(
            self.backend, ops, token=token, max_value_bytes=self.max_value_bytes
        )

    async def count(self, collection: str) -> int:
        return await self.backend.count(collection)

    async def clear(self, collection: str) -> int:
        """Remove every item of the collection; return how many there were."""
        deadlines.hand_over_write()
        return await self.backend.delete_collection(collection)

    async def list_collections(
        self,
        *,
        limit: int,
        cursor: str | None = None,
        visible: Callable[[str], bool] = lambda name: True,
    ) -> tuple[list[str], str | None]:
        """Names of collections that hold items and that ``visible`` accepts,
        and the cursor of the next page. Collections whose names the public
        pattern cannot address (the service's own) are never listed."""
        after = decode_cursor(cursor, COLLECTION_NAME.fullmatch) if cursor else None
        names: list[str] = []
        while True:
            batch = await self.backend.list_collections(after=after, limit=limit + 1)
            names += [n for n in batch if COLLECTION_NAME.fullmatch(n) and visible(n)]
            if len(names) > limit:
                return names[:limit], encode_cursor(names[limit - 1])
            if len(batch) <= limit:
                return names, None
            after = batch[-1]


def _queued(collection: str, op: Op, blind: bool) -> _Queued:
    item_key = (collection, encode_key(op.key))
    if op.kind == "get":
        return _Get(item_key)
    if op.kind == "put":
        record = Record(op.value, new_version(), _is_float(op.key), op.expires_at)
        return _Put(item_key, record, blind)
    return _Delete(item_key)


def _change(op: Op) -> Change:
    assert op.change is not None, "a patch op carries its change"
    return op.change


def _read_result(record: Record | None) -> OpResult:
    return OpResult(Outcome.MISSING) if record is None else OpResult(Outcome.FOUND, record)


def _delete_result(removed: Record | None) -> OpResult:
    return OpResult(Outcome.MISSING) if removed is None else OpResult(Outcome.DELETED, removed)


def _put_outcome(previous: Record | None) -> Outcome:
    return Outcome.CREATED if previous is None else Outcome.REPLACED


def _precondition_failed(key: Key, current: Record | None) -> PreconditionFailed:
    if current is None:
        return PreconditionFailed(f"item {key!r} does not exist", current=None)
    return PreconditionFailed(
        f"item {key!r} is not in the expected state; its current value and etag are attached",
        current=current,
    )
