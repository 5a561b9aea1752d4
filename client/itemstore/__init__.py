"""itemstore SDK: a remote collection that behaves like a dict.

from itemstore import Client
users = Client("http://127.0.0.1:8080").collection("users")
users["ada"] = {"email": "ada@example.com"}
"""

from itemstore_wire.contract import Key, Limits

from ._protocol import Item
from ._retry import RetryPolicy
from .aio import AsyncClient, AsyncCollection
from .client import Client, Collection
from .context import AsyncStorageContext, StorageContext, storage_context
from .errors import (
    ItemstoreError,
    PreconditionFailed,
    Unauthorized,
    Unavailable,
    ValidationError,
)
from .session import AsyncSession, Session

__all__ = [
    "AsyncClient",
    "AsyncCollection",
    "AsyncSession",
    "AsyncStorageContext",
    "Client",
    "Collection",
    "Item",
    "ItemstoreError",
    "Key",
    "Limits",
    "PreconditionFailed",
    "RetryPolicy",
    "Session",
    "StorageContext",
    "Unauthorized",
    "Unavailable",
    "ValidationError",
    "storage_context",
]
