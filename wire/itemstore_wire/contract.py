"""What both sides of the HTTP API agree on: key types, collection names and
the limits the service publishes at ``GET /``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

Key = str | int | float | bool
"""An item key. Numbers are one key space (``1`` and ``1.0`` are one key);
str, number and bool keys never meet."""

KeyType = Literal["str", "int", "float", "bool"]
KEY_TYPES: Final[tuple[KeyType, ...]] = ("str", "int", "float", "bool")

COLLECTION_NAME: Final = re.compile(r"[A-Za-z0-9_.-]{1,128}")
COLLECTION_NAME_RULE: Final = "1 to 128 characters of A-Z, a-z, 0-9, '_', '.', '-'"


def key_type(key: Key) -> KeyType:
    """The ``key_type`` query value that names ``key``'s type."""
    if isinstance(key, bool):
        return "bool"
    if isinstance(key, str):
        return "str"
    if isinstance(key, int):
        return "int"
    return "float"


@dataclass(frozen=True, slots=True)
class Limits:
    """Every limit the service enforces, as published at ``GET /``."""

    max_key_bytes: int = 1000
    max_value_bytes: int = 350 * 1024
    max_batch_ops: int = 100
    max_page_size: int = 1000
    default_page_size: int = 100
    max_request_bytes: int = 16 * 1024 * 1024
    max_batch_bytes: int = 4 * 1024 * 1024
    """Largest batch body: parsing it takes a bounded time (about 0.2 s at
    worst) and memory. Batches of large values hold fewer ops."""
    max_expire_in: int = 10 * 365 * 24 * 3600
    """Longest life of an expiring item, in seconds from its write (10 years)."""
    max_transaction_ops: int = 100
    """Most ops in one transaction (DynamoDB's TransactWriteItems limit)."""
    max_query_scan: int = 10_000
    """Items one query request reads at most; a page may then hold fewer
    matches than its limit, and still a next_cursor."""

    @classmethod
    def from_info(cls, info: Mapping[str, Any]) -> Limits:
        """The limits of a ``GET /`` answer; fields it lacks keep their defaults."""
        given = info.get("limits") or {}
        known = {k: int(v) for k, v in given.items() if k in cls.__dataclass_fields__}
        return cls(**known)
