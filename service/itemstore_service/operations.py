"""The operations the store takes and what it answers for each, shared by
the store, its patch batches (``updates``) and the HTTP layer."""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass
from typing import Literal

from itemstore_wire.contract import Key

from .backends.base import Record
from .errors import ItemstoreError
from .patching import Change


def new_version() -> str:
    """A fresh random version (64 bits): what an ETag is made of. Unique, not
    secret: ``random`` (seeded by the OS in each worker process) spares a
    system call."""
    return random.randbytes(8).hex()


@dataclass(frozen=True, slots=True)
class Op:
    """One operation of a batch, with its key already typed and its value
    already validated (``value`` is the stored JSON bytes for a put;
    ``change`` what a patch does)."""

    kind: Literal["get", "put", "delete", "patch"]
    key: Key
    value: bytes = b""
    change: Change | None = None
    expires_at: int | None = None  # a put's or patch's expiry (Unix seconds)


class Outcome(enum.Enum):
    """What an operation found or did."""

    FOUND = "found"  # a get found the item
    MISSING = "missing"  # a get or a delete found no item
    CREATED = "created"  # a put stored an item that was absent
    REPLACED = "replaced"  # a put replaced an item
    WRITTEN = "written"  # a blind put stored an item, present before or not
    DELETED = "deleted"  # a delete removed the item
    PATCHED = "patched"  # a patch changed the item
    REFUSED = "refused"  # a patch did not apply: ``error`` says why


@dataclass(frozen=True, slots=True)
class OpResult:
    """One op's outcome; ``record`` is the value read, written or removed
    (None when the outcome is MISSING or REFUSED)."""

    outcome: Outcome
    record: Record | None = None
    error: ItemstoreError | None = None


@dataclass(frozen=True, slots=True)
class Stored:
    """A put's outcome (CREATED, REPLACED, or WRITTEN when blind) and the
    record it wrote."""

    outcome: Outcome
    record: Record
