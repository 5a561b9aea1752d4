"""Transactions: puts, deletes and checks across collections, applied all or
none (store semantics, no HTTP).

An op holds when its condition does (``if_match``: the item is at that
version; ``if_none_match``: it is absent); the first op that does not hold
fails the whole transaction with PreconditionFailed naming its ``index``, and
nothing is written. With an idempotency token, the same transaction sent again
within ``TX_WINDOW_SECONDS`` is applied once: the new versions are derived
from the token and the transaction's content, so a retry answers the ETags
the first attempt wrote; the token sent with another transaction is refused.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from itemstore_wire.contract import Key

from . import deadlines
from .backends.base import Backend, Record, TokenReused, TransactionFailed, TxOp
from .errors import IdempotencyKeyReused, PreconditionFailed
from .keys import encode_key

OP_KINDS: Final = ("put", "delete", "check")


@dataclass(frozen=True, slots=True)
class TransactionOp:
    """One op as asked: ``value`` is the JSON bytes a put stores;
    ``if_match`` a version (the ETag without its quotes)."""

    kind: Literal["put", "delete", "check"]
    collection: str
    key: Key
    value: bytes | None = None
    if_match: str | None = None
    if_none_match: bool = False

    @property
    def conditional(self) -> bool:
        return self.if_match is not None or self.if_none_match


async def run_transaction(
    backend: Backend, ops: Sequence[TransactionOp], *, token: str | None
) -> list[Record | None]:
    """Apply ``ops`` (on distinct items) all or none; the record each put
    wrote (None for deletes and checks)."""
    content = hashlib.sha256(repr((token, ops)).encode()).hexdigest()
    writes = [
        TxOp(
            (op.collection, encode_key(op.key)),
            op.kind,
            None if op.value is None else Record(op.value, _version(token, content, i), _float(op)),
            op.conditional,
            op.if_match,
        )
        for i, op in enumerate(ops)
    ]
    deadlines.hand_over_write()
    try:
        await backend.transact(writes, token=token)
    except TransactionFailed as failed:
        op = ops[failed.index]
        where = f"op {failed.index} ({op.kind} of {op.key!r} in {op.collection!r})"
        state = "does not exist" if failed.current is None else "is not in the expected state"
        raise PreconditionFailed(
            f"{where}: the item {state}; nothing was written", failed.current, index=failed.index
        ) from None
    except TokenReused:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was used for another transaction in the last 10 minutes:"
            " send a new key with a new transaction"
        ) from None
    return [write.record for write in writes]


def _version(token: str | None, content: str, index: int) -> str:
    """A new version: random, or with a token derived from it and the
    transaction, so that a retry writes (and answers) the same ones."""
    if token is None:
        return os.urandom(8).hex()  # as every write's version (operations.new_version)
    return hashlib.sha256(f"{content}:{index}".encode()).hexdigest()[:16]


def _float(op: TransactionOp) -> bool:
    return isinstance(op.key, float)
