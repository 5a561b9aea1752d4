"""itemstore SDK: a remote collection that behaves like a dict.

from itemstore import Client
users = Client("http://127.0.0.1:8080").collection("users")
users["ada"] = {"email": "ada@example.com"}

The async client (``AsyncClient``, ``AsyncCollection``, ``AsyncSession``) and
the web framework glue (``storage_context``, ``StorageContext``,
``AsyncStorageContext``) are imported on first use (PEP 562), so that
``import itemstore`` in sync code does not load aiohttp.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from itemstore_wire.contract import Key, Limits

from ._protocol import AccessKey, Item, ListedItem
from ._retry import RetryPolicy
from .client import Client, Collection, Keys, Session, Transaction
from .errors import (
    Forbidden,
    ItemstoreError,
    PreconditionFailed,
    RateLimited,
    Unauthorized,
    Unavailable,
    ValidationError,
)

if TYPE_CHECKING:
    from .aio import AsyncClient, AsyncCollection, AsyncKeys, AsyncSession, AsyncTransaction
    from .context import AsyncStorageContext, StorageContext, storage_context

LAZY_EXPORTS = {
    "AsyncClient": "aio",
    "AsyncCollection": "aio",
    "AsyncKeys": "aio",
    "AsyncSession": "aio",
    "AsyncTransaction": "aio",
    "AsyncStorageContext": "context",
    "StorageContext": "context",
    "storage_context": "context",
}
"""Public names of the modules that are imported on first use only."""

__all__ = [
    "AccessKey",
    "AsyncClient",
    "AsyncCollection",
    "AsyncKeys",
    "AsyncSession",
    "AsyncStorageContext",
    "AsyncTransaction",
    "Client",
    "Collection",
    "Forbidden",
    "Item",
    "ItemstoreError",
    "Key",
    "Keys",
    "Limits",
    "ListedItem",
    "PreconditionFailed",
    "RateLimited",
    "RetryPolicy",
    "Session",
    "StorageContext",
    "Transaction",
    "Unauthorized",
    "Unavailable",
    "ValidationError",
    "storage_context",
]


def __getattr__(name: str) -> Any:
    module = LAZY_EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'itemstore' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
