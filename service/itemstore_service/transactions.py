"""Transactions: puts, patches, deletes and checks across collections, applied
all or none (store semantics, no HTTP).

An op holds when its condition does (``if_match``: the item is at that
version; ``if_none_match``: it is absent) and, for a patch, when its item
exists and the patch fits it; the first op that does not hold fails the
whole transaction with the error a lone write would answer, naming its
``index`` (PreconditionFailed, PatchConflict, ValueTooLarge), and nothing is
written. A patch is applied to the item as the backend reads it within the
transaction; when another writer changes the item between that read and
the write (DynamoDB), the transaction fails whole with Contended: retry it.

With an idempotency token, the same transaction sent again
within ``TX_WINDOW_SECONDS`` is applied once: the new versions are derived
from the token and the transaction's content, so a retry answers the ETags
the first attempt wrote; the token sent with another transaction is refused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from itemstore_wire.contract import Key

from . import deadlines
from .backends.base import Backend, Record, TokenReused, TransactionFailed, TxOp
from .errors import Contended, IdempotencyKeyReused, ItemstoreError, PreconditionFailed
from .keys import encode_key
from .operations import Outcome
from .patching import Change
from .updates import Patch, patched

OP_KINDS: Final = ("put", "patch", "delete", "check")


@dataclass(frozen=True, slots=True)
class TransactionOp:
    """One op as asked: ``value`` is the JSON bytes a put stores, ``change``
    what a patch does; ``if_match`` a version (the ETag without its quotes);
    ``expires_at`` a put's or patch's expiry (Unix seconds; None: a put's
    item never expires, a patched item keeps its expiry)."""

    kind: Literal["put", "patch", "delete", "check"]
    collection: str
    key: Key
    value: bytes | None = None
    if_match: str | None = None
    if_none_match: bool = False
    change: Change | None = None
    expires_at: int | None = None

    @property
    def conditional(self) -> bool:
        return self.if_match is not None or self.if_none_match


@dataclass(frozen=True, slots=True)
class PatchUpdate:
    """A patch op's update: the patched record, with the version this
    transaction writes, or None when the patch does not apply (the item is
    absent or not at ``if_match``, or the patch does not fit it). An item
    already at that version holds this very transaction's write (a version
    derived from an idempotency token names one transaction): the update
    answers it unchanged. Its repr is its content, as a transaction's
    fingerprint needs."""

    patch: Patch
    version: str
    max_value_bytes: int

    def __call__(self, current: Record | None) -> Record | None:
        if current is not None and current.version == self.version:
            return current
        result = patched(self.patch, current, self.max_value_bytes)
        if result.outcome is not Outcome.PATCHED or result.record is None:
            return None
        return dataclasses.replace(result.record, version=self.version)

    def refusal(self, current: Record | None) -> ItemstoreError | None:
        """Why the patch does not apply to ``current`` (None: it does)."""
        result = patched(self.patch, current, self.max_value_bytes)
        if result.outcome is Outcome.PATCHED:
            return None
        return result.error or PreconditionFailed("", current)


async def run_transaction(
    backend: Backend, ops: Sequence[TransactionOp], *, token: str | None, max_value_bytes: int
) -> list[Record | None]:
    """Apply ``ops`` (on distinct items) all or none; the record each put
    and patch wrote (None for deletes and checks)."""
    content = hashlib.sha256(repr((token, ops)).encode()).hexdigest()
    writes = [_write(op, _version(token, content, i), max_value_bytes) for i, op in enumerate(ops)]
    deadlines.hand_over_write()
    try:
        written = await backend.transact(writes, token=token)
    except TransactionFailed as failed:
        raise _failure(ops[failed.index], writes[failed.index], failed) from None
    except TokenReused:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was used for another transaction in the last 10 minutes:"
            " send a new key with a new transaction"
        ) from None
    return [written.get(write.key) if write.update else write.record for write in writes]


def _write(op: TransactionOp, version: str, max_value_bytes: int) -> TxOp:
    key = (op.collection, encode_key(op.key))
    if op.kind == "patch":
        assert op.change is not None
        patch = Patch(key, op.change, op.if_match, op.expires_at)
        return TxOp(key, "patch", update=PatchUpdate(patch, version, max_value_bytes))
    record = None
    if op.value is not None:
        record = Record(op.value, version, isinstance(op.key, float), op.expires_at)
    return TxOp(key, op.kind, record, op.conditional, op.if_match)


def _failure(op: TransactionOp, write: TxOp, failed: TransactionFailed) -> ItemstoreError:
    """The error op ``failed.index`` answers: what a lone write of it would,
    naming the op; Contended when its patch fits the item now (another
    writer changed the item after the transaction read it)."""
    where = f"op {failed.index} ({op.kind} of {op.key!r} in {op.collection!r})"
    if isinstance(write.update, PatchUpdate):
        refusal = write.update.refusal(failed.current)
        if refusal is None:
            return Contended(
                f"{where}: another writer changed the item while the transaction was applied;"
                " nothing was written: retry",
                index=failed.index,
            )
        if not isinstance(refusal, PreconditionFailed):
            return type(refusal)(
                f"{where}: {refusal.detail}; nothing was written",
                **refusal.extra,
                index=failed.index,
            )
    state = "does not exist" if failed.current is None else "is not in the expected state"
    return PreconditionFailed(
        f"{where}: the item {state}; nothing was written", failed.current, index=failed.index
    )


def _version(token: str | None, content: str, index: int) -> str:
    """A new version: random, or with a token derived from it and the
    transaction, so that a retry writes (and answers) the same ones."""
    if token is None:
        return os.urandom(8).hex()  # as every write's version (operations.new_version)
    return hashlib.sha256(f"{content}:{index}".encode()).hexdigest()[:16]
