"""The ops of a transaction as a ``with client.transaction() as tx:`` block
adds them (sans-I/O: both clients send them with ``_flows.transact``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from itemstore_wire.contract import Key
from itemstore_wire.exactjson import dumps

from ._batch import MISSING, TransactionOp, operations, patch_body
from ._keys import KeyTag, key_tag
from ._protocol import check_collection_name


class TransactionOps:
    """Ops in the order they were added, one per item: a second op on an
    item is refused here, as the service would refuse it."""

    def __init__(self) -> None:
        self.ops: list[TransactionOp] = []
        self._items: set[tuple[str, KeyTag]] = set()

    def add(self, op: TransactionOp) -> None:
        item = (op.collection, key_tag(op.key))
        if item in self._items:
            raise ValueError(
                f"this transaction has an op on {op.key!r} in {op.collection!r} already:"
                " one op per item"
            )
        self._items.add(item)
        self.ops.append(op)


class TransactionCollection:
    """One collection's side of a transaction: ``tx["users"]["ada"] = value``,
    ``del tx["users"]["bob"]``, ``patch``, and the conditional ``set``,
    ``delete`` and ``check``. Nothing is sent until the transaction is."""

    def __init__(self, ops: TransactionOps, name: str) -> None:
        self._ops = ops
        self.name = check_collection_name(name)

    def __setitem__(self, key: Key, value: Any) -> None:
        self.set(key, value)

    def __delitem__(self, key: Key) -> None:
        self.delete(key)

    def set(
        self,
        key: Key,
        value: Any,
        *,
        if_match: str | None = None,
        if_absent: bool = False,
        expire_in: int | None = None,
        expire_at: int | None = None,
    ) -> None:
        """Store ``value``; ``if_match``: only if the item is at that ETag;
        ``if_absent``: only if there is no such item; ``expire_in`` /
        ``expire_at``: when it expires (seconds from now / Unix time)."""
        op = TransactionOp(
            "put", self.name, key, dumps(value), if_match, if_absent, False, expire_in, expire_at
        )
        self._ops.add(op)

    def patch(
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
    ) -> None:
        """Change part of the item, as the collection's ``patch`` does, within
        the transaction: it fails whole (``PreconditionFailed``) when the item
        is absent or not at ``if_match``, and (``ValidationError``) when the
        change does not fit the value. Its ETag is the transaction's answer."""
        change = operations(
            set=set, increment=increment, append=append, prepend=prepend, delete=delete
        )
        body, is_merge = patch_body(change, merge)
        op = TransactionOp(
            "patch", self.name, key, body, if_match, False, is_merge, expire_in, expire_at
        )
        self._ops.add(op)

    def delete(self, key: Key, *, if_match: str | None = None) -> None:
        """Remove the item (nothing happens if absent, unless ``if_match``)."""
        self._ops.add(TransactionOp("delete", self.name, key, None, if_match))

    def check(self, key: Key, *, if_match: str | None = None, if_absent: bool = False) -> None:
        """Write nothing, but hold the transaction to the item being at
        ``if_match`` (or absent, ``if_absent``)."""
        if (if_match is None) == (not if_absent):
            raise ValueError("check needs one of if_match or if_absent")
        self._ops.add(TransactionOp("check", self.name, key, None, if_match, if_absent))
