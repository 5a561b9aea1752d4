"""Every operation of a collection, once, as flows (see ``_flows``): the sync
``Collection`` and the ``AsyncCollection`` only drive them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from itemstore_wire.contract import Key
from itemstore_wire.exactjson import dumps

from ._batch import MISSING, BatchOp, patch_body
from ._flows import Emit, Flow, Stream, batch, collect, limits, mapped, pages
from ._keys import check_key, lookup_key
from ._protocol import Core, Expiry, Item, ListedItem, check_collection_name


def pairs_of(other: Any, kwargs: Mapping[str, Any]) -> Iterator[tuple[Key, Any]]:
    """The ``(key, value)`` pairs of ``dict.update``'s arguments, by dict's rules."""
    if isinstance(other, Mapping):
        yield from other.items()
    elif hasattr(other, "keys"):
        for k in other.keys():  # noqa: SIM118 - dict.update's own rule
            yield k, other[k]
    else:
        for pair in other:
            k, v = pair
            yield k, v
    yield from kwargs.items()


class CollectionFlows:
    """The flows of collection ``name``. Each method is one operation of the
    SDK's collections, with the semantics (and exceptions) of dict's."""

    def __init__(self, core: Core, name: str) -> None:
        self.core = core
        self.name = check_collection_name(name)

    # -- one item ------------------------------------------------------------------
    def getitem(self, key: Key) -> Flow[Any]:
        item = yield self.core.get(self.name, key)
        if item is None:
            raise KeyError(key)
        return item.value

    def get(self, key: Key, default: Any) -> Flow[Any]:
        item = yield self.core.get(self.name, key)
        return default if item is None else item.value

    def get_item(self, key: Key, consistent: bool) -> Flow[Item | None]:
        item: Item | None = yield self.core.get(self.name, key, consistent=consistent)
        return item

    def set(
        self, key: Key, value: Any, if_match: str | None, if_absent: bool, expires: Expiry = ()
    ) -> Flow[str]:
        """The new ETag. A blind write: created-vs-replaced is not asked for."""
        put = self.core.put(
            self.name,
            key,
            dumps(value),
            if_match=if_match,
            if_absent=if_absent,
            minimal=True,
            expires=expires,
        )
        etag: str = (yield put)[1]
        return etag

    def delete(self, key: Key, if_match: str | None = None) -> Flow[Item]:
        item: Item | None = yield self.core.delete(self.name, key, if_match=if_match)
        if item is None:
            raise KeyError(key)
        return item

    def patch(
        self,
        key: Key,
        change: Mapping[str, Any],
        merge: Any,
        if_match: str | None,
        expires: Expiry,
    ) -> Flow[Any]:
        """The new value after update operations ``change``, or after the JSON
        Merge Patch ``merge`` when it is not MISSING; KeyError when absent."""
        body, is_merge = patch_body(change, merge)
        item: Item | None = yield self.core.patch(
            self.name, key, body, merge=is_merge, if_match=if_match, expires=expires
        )
        if item is None:
            raise KeyError(key)
        return item.value

    def contains(self, key: object) -> Flow[bool]:
        found = lookup_key(key)
        if found is None:
            return False
        present: bool = yield self.core.contains(self.name, found)
        return present

    def setdefault(self, key: Key, default: Any) -> Flow[Any]:
        """Atomic: creates the item only if absent (one conditional PUT)."""
        return (yield self.core.setdefault(self.name, key, default))

    def pop(self, key: Key, default: Any) -> Flow[Any]:
        """Remove and return the value in one round trip."""
        item = yield self.core.delete(self.name, key)
        if item is not None:
            return item.value
        if default is MISSING:
            raise KeyError(key)
        return default

    def add(self, value: Any, expires: Expiry) -> Flow[str]:
        key: str = (yield self.core.add(self.name, dumps(value), expires))[0]
        return key

    # -- whole collection ----------------------------------------------------------
    def count(self) -> Flow[int]:
        count: int = yield self.core.count(self.name)
        return count

    def count_matching(self, where: Any) -> Flow[int]:
        """How many items match ``where``: one count request per
        ``max_query_scan`` items of the collection, added up."""
        counts = yield from collect(pages(lambda c: self.core.count_page(self.name, where, c)))
        return sum(counts)

    def query(
        self,
        where: Any,
        sort: str | None,
        limit: int | None,
        page_size: int | None,
        keys_only: bool,
    ) -> Stream[tuple[Key, Any]]:
        """The ``(key, value)`` pairs that match ``where``, in ``sort`` order,
        at most ``limit`` of them; one request per page (a page may be empty:
        each request reads at most ``max_query_scan`` items)."""
        body: dict[str, Any] = {"where": where, "keys_only": keys_only}
        if sort is not None:
            body["sort"] = sort
        most = page_size or (yield from limits(self.core)).max_page_size
        left = limit
        cursor: str | None = None
        while left is None or left > 0:
            size = most if left is None else min(left, most)
            page = yield self.core.query(self.name, {**body, "limit": size}, cursor)
            entries = page.entries if left is None else page.entries[:left]
            if left is not None:
                left -= len(entries)
            yield Emit(entries)
            cursor = page.next_cursor
            if cursor is None:
                return

    def is_empty(self) -> Flow[bool]:
        page = yield self.core.page(self.name, None, limit=1, keys_only=True)
        return not page.entries

    def popitem(self) -> Flow[tuple[Key, Any]]:
        """Remove and return the first item in key order; KeyError when empty."""
        while True:
            page = yield self.core.page(self.name, None, limit=1, keys_only=True)
            if not page.entries:
                raise KeyError("popitem(): collection is empty")
            key = page.entries[0].key
            item = yield self.core.delete(self.name, key)
            if item is not None:  # else another client took it first: try the next one
                return key, item.value

    def update(self, pairs: Iterator[tuple[Key, Any]]) -> Flow[None]:
        """Store many items: one batch call per ``max_batch_ops`` (not atomic),
        blind writes."""
        ops = [BatchOp("put", check_key(k), dumps(v)) for k, v in pairs]
        if ops:
            yield from batch(self.core, self.name, ops, minimal=True)

    def clear(self) -> Flow[None]:
        yield self.core.clear(self.name)

    # -- listings ------------------------------------------------------------------
    def listed(
        self, prefix: str | None, page_size: int | None, keys_only: bool = False
    ) -> Stream[ListedItem]:
        """Every item with its expiry in key order, one page per call;
        ``prefix`` selects str keys starting with it; ``keys_only`` leaves
        values None."""
        return pages(
            lambda cursor: self.core.page(
                self.name, cursor, limit=page_size, prefix=prefix, keys_only=keys_only
            )
        )

    def items(
        self, prefix: str | None, page_size: int | None, keys_only: bool = False
    ) -> Stream[tuple[Key, Any]]:
        """Every ``(key, value)`` in key order (see ``listed``)."""
        return mapped(self.listed(prefix, page_size, keys_only), _pairs_of)

    def keys(self, prefix: str | None, page_size: int | None) -> Stream[Key]:
        """Every key in key order, in pages of ``max_page_size`` unless told."""
        size = page_size or (yield from limits(self.core)).max_page_size
        yield from mapped(self.items(prefix, size, keys_only=True), _keys_of)

    def values(self, prefix: str | None, page_size: int | None) -> Stream[Any]:
        return mapped(self.items(prefix, page_size), _values_of)


def _pairs_of(page: list[ListedItem]) -> list[tuple[Key, Any]]:
    return [(item.key, item.value) for item in page]


def _keys_of(page: list[tuple[Key, Any]]) -> list[Key]:
    return [k for k, _ in page]


def _values_of(page: list[tuple[Key, Any]]) -> list[Any]:
    return [v for _, v in page]
