"""Batch ops as typed values: what an op does (its kind) is known without
reading its bytes, and each op is encoded once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from itemstore_wire.contract import Key
from itemstore_wire.exactjson import dumps

from ._keys import check_key

BatchKind = Literal["get", "put", "delete", "patch"]

_BODY_FIELD = {"put": b"value", "patch": b"change"}


@dataclass(frozen=True, slots=True)
class BatchOp:
    """One op of a batch call: ``value`` is the already encoded JSON value of a
    put, or the update operations of a patch (``{"increment": {"n": 1}}``);
    ``encoded`` is the op as it goes on the wire (made once, here)."""

    kind: BatchKind
    key: Key
    value: bytes | None = None
    encoded: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        head = dumps({"op": self.kind, "key": check_key(self.key)})
        if self.value is None:
            encoded = head
        else:
            encoded = head[:-1] + b',"' + _BODY_FIELD[self.kind] + b'":' + self.value + b"}"
        object.__setattr__(self, "encoded", encoded)


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
