"""Every operation of a session, once, as flows over its :class:`SessionState`
(see ``_flows``): the sync ``Session`` and the ``AsyncSession`` only drive them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from itemstore_wire.contract import Key

from ._batch import MISSING, BatchOp, TransactionOp
from ._collection_flows import CollectionFlows
from ._flows import Emit, Flow, Stream, batch, collect, first, limits, mapped, transact
from ._keys import KeyTag, lookup_key
from ._protocol import Core, Item, OpResult
from ._session_state import Entry, SessionState
from ._transaction import TransactionOps


class SessionFlows:
    """The flows of one session on collection ``name``: reads go through the
    cache, writes only change it until :meth:`commit`."""

    def __init__(self, core: Core, name: str) -> None:
        self.core = core
        self.collection = CollectionFlows(core, name)
        self.name = self.collection.name
        self.state = SessionState()

    def entry(self, key: Key) -> Flow[Entry]:
        """The cached entry of ``key``, read from the service the first time."""
        entry = self.state.lookup(key)
        if entry is None:
            item: Item | None = yield self.core.get(self.name, key)
            found = item is not None
            entry = self.state.loaded(key, found, item.value if item is not None else None)
        return entry

    def getitem(self, key: Key) -> Flow[Any]:
        entry = yield from self.entry(key)
        if not entry.present:
            raise KeyError(key)
        return entry.value

    def get(self, key: Key, default: Any) -> Flow[Any]:
        entry = yield from self.entry(key)
        return entry.value if entry.present else default

    def delete(self, key: Key) -> Flow[None]:
        entry = yield from self.entry(key)
        if not entry.present:
            raise KeyError(key)
        self.state.delete(entry)

    def contains(self, key: object) -> Flow[bool]:
        found = lookup_key(key)
        return found is not None and (yield from self.entry(found)).present

    def setdefault(self, key: Key, default: Any) -> Flow[Any]:
        """Not atomic (unlike the collection's): the write waits for commit."""
        entry = yield from self.entry(key)
        if not entry.present:
            self.state.assign(key, default)
        return entry.value

    def pop(self, key: Key, default: Any) -> Flow[Any]:
        entry = yield from self.entry(key)
        if not entry.present:
            if default is MISSING:
                raise KeyError(key)
            return default
        value = entry.value
        self.state.delete(entry)
        return value

    def popitem(self) -> Flow[tuple[Key, Any]]:
        """Remove and return the first item a walk meets; KeyError when empty."""
        item = yield from first(self.items(keys_only=False))
        if item is None:
            raise KeyError("popitem(): session is empty")
        self.state.removed(item[0])
        return item

    def update(self, pairs: Iterator[tuple[Key, Any]]) -> None:
        for key, value in pairs:
            self.state.assign(key, value)

    def clear(self) -> Flow[None]:
        for key, _ in (yield from collect(self.items(keys_only=True))):
            self.state.removed(key)

    def count(self) -> Flow[int]:
        """``len``: the service's count plus the session's pending changes; keys
        written without a read are looked up first, in one read-only batch."""
        unknown = self.state.unknown()
        if unknown:
            ops = [BatchOp("get", e.key) for e in unknown]
            results = yield from batch(self.core, self.name, ops)
            for entry, result in zip(unknown, results, strict=True):
                self.state.resolved(entry, result.status == 200)
        remote: int = yield self.core.count(self.name)
        return remote + self.state.len_delta()

    def items(self, *, keys_only: bool) -> Stream[tuple[Key, Any]]:
        """The service's items with the session's changes applied, then the
        items only this session added; values are the cached objects."""
        seen: set[KeyTag] = set()

        def with_changes(page: list[tuple[Key, Any]]) -> list[tuple[Key, Any]]:
            walked = (self.state.walked(k, v, seen, keys_only=keys_only) for k, v in page)
            return [item for item in walked if item is not None]

        size = (yield from limits(self.core)).max_page_size if keys_only else None
        yield from mapped(self.collection.items(None, size, keys_only), with_changes)
        yield Emit([(e.key, e.value) for e in self.state.unseen(seen)])

    def commit(self, *, atomic: bool = False) -> Flow[int]:
        """Send every pending change, one batch call per ``max_batch_ops``,
        puts as blind writes, increments last; the number of ops sent. The
        cache stays valid afterwards. KeyError (once all is sent) when an
        incremented item was absent. ``atomic``: as one transaction, all or
        none, with one patch op per incremented item; an absent one fails it
        whole (PreconditionFailed) and the cache forgets the incremented
        items (their new values are read again when asked for). A failed
        commit does not send its increments again.
        """
        plan = self.state.plan(atomic=atomic)
        tx = TransactionOps()
        for op in plan.ops if atomic else ():  # refused here, unsent, if two are on one item
            tx.add(TransactionOp.of_batch(self.name, op))
        self.state.increments_sent()
        results: list[OpResult] = []
        if plan.ops and atomic:
            yield from transact(self.core, tx.ops)
            first_patch = len(plan.ops) - plan.patches
            self.state.committed(plan, [])
            self.state.forget(op.key for op in plan.ops[first_patch:])
            return len(plan.ops)
        if plan.ops:
            results = yield from batch(self.core, self.name, plan.ops, minimal=True)
        first_patch = len(plan.ops) - plan.patches
        patched = [
            (op.key, result.value if result.status == 200 else None)
            for op, result in zip(plan.ops[first_patch:], results[first_patch:], strict=True)
        ]
        self.state.committed(plan, patched)
        absent = [key for key, value in patched if value is None]
        if absent:
            raise KeyError(absent[0])
        return len(plan.ops)
