"""Batch ops as typed values: what an op does (its kind) is known without
reading its bytes, and each op is encoded once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from itemstore_wire.contract import Key
from itemstore_wire.exactjson import dumps

from ._keys import check_key

BatchKind = Literal["get", "put", "delete", "patch"]

MISSING: Any = object()
"""The default of ``pop`` when none is given."""


def operations(**by_operator: Any) -> dict[str, Any]:
    """The update operations of a PATCH body: the operators given (not None)."""
    return {name: value for name, value in by_operator.items() if value is not None}


def patch_body(change: Any, merge: Any) -> tuple[bytes, bool]:
    """A PATCH body and whether it is a JSON Merge Patch: ``merge`` when it
    is not MISSING, else the update operations ``change``."""
    return (dumps(change), False) if merge is MISSING else (dumps(merge), True)


_BODY_FIELD = {"put": b"value", "patch": b"change"}


@dataclass(frozen=True, slots=True)
class BatchOp:
    """One op of a batch call: ``value`` is the already encoded JSON value of a
    put, or the update operations of a patch (``{"increment": {"n": 1}}``);
    ``expire_at``: when a put's or patch's item expires (Unix seconds);
    ``encoded`` is the op as it goes on the wire (made once, here)."""

    kind: BatchKind
    key: Key
    value: bytes | None = None
    expire_at: int | None = None
    encoded: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fields: dict[str, object] = {"op": self.kind, "key": check_key(self.key)}
        if self.expire_at is not None:
            fields["expire_at"] = self.expire_at
        head = dumps(fields)
        if self.value is None:
            encoded = head
        else:
            encoded = head[:-1] + b',"' + _BODY_FIELD[self.kind] + b'":' + self.value + b"}"
        object.__setattr__(self, "encoded", encoded)


TransactionKind = Literal["put", "patch", "delete", "check"]


@dataclass(frozen=True, slots=True)
class TransactionOp:
    """One op of a transaction, on any collection; ``encoded`` as for
    ``BatchOp``: ``value`` is a put's value or a patch's update operations
    (its JSON Merge Patch when ``merge``). ``if_match``: an ETag;
    ``if_absent``: only when absent; ``expire_in`` / ``expire_at``: a put's
    or patch's expiry."""

    kind: TransactionKind
    collection: str
    key: Key
    value: bytes | None = None
    if_match: str | None = None
    if_absent: bool = False
    merge: bool = False
    expire_in: int | None = None
    expire_at: int | None = None
    encoded: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        head: dict[str, object] = {
            "op": self.kind,
            "collection": self.collection,
            "key": check_key(self.key),
        }
        if self.if_match is not None:
            head["if_match"] = self.if_match
        if self.if_absent:
            head["if_none_match"] = "*"
        for name in ("expire_in", "expire_at"):
            if getattr(self, name) is not None:
                head[name] = getattr(self, name)
        encoded = dumps(head)
        if self.value is not None:
            member = b"merge" if self.merge else _BODY_FIELD[self.kind]
            encoded = encoded[:-1] + b',"' + member + b'":' + self.value + b"}"
        object.__setattr__(self, "encoded", encoded)

    @classmethod
    def of_batch(cls, collection: str, op: BatchOp) -> TransactionOp:
        """The transaction op of a batch put, delete or patch, with its expiry."""
        if op.kind == "get":
            raise ValueError("a transaction puts, patches, deletes and checks; it has no get")
        return cls(op.kind, collection, op.key, op.value, expire_at=op.expire_at)


def split_ops(ops: Sequence[BatchOp], max_ops: int, max_bytes: int) -> list[list[BatchOp]]:
    """Consecutive chunks of at most ``max_ops`` ops and (when possible)
    ``max_bytes`` bytes of body; order is kept."""
    chunks: list[list[BatchOp]] = []
    current: list[BatchOp] = []
    size = 0
    for op in ops:
        if current and (len(current) >= max_ops or size + len(op.encoded) + 16 > max_bytes):
            chunks.append(current)
            current, size = [], 0
        current.append(op)
        size += len(op.encoded) + 1
    if current:
        chunks.append(current)
    return chunks
