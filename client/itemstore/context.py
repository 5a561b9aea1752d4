"""``storage_context``: a per-request session as a web framework dependency.

* FastAPI: ``db: Session = Depends(storage_context("users"))`` - the context is a
  generator dependency (an async one when built on an ``AsyncClient``), so the
  session commits when the endpoint returns and sends nothing when it raises.
* aiohttp: ``@ctx.handler`` turns ``async def view(request, db)`` into a handler
  with the same rule.

Only the aiohttp handler path imports aiohttp: a sync FastAPI app never loads it.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from typing import TYPE_CHECKING, TypeAlias, overload

from ._protocol import DEFAULT_URL
from .client import Client, Session

if TYPE_CHECKING:  # for type checkers only: at run time aiohttp loads when used
    from aiohttp import web

    from .aio import AsyncClient, AsyncSession

_default: Client | None = None
_default_lock = threading.Lock()

Handler: TypeAlias = "Callable[[web.Request], Awaitable[web.StreamResponse]]"
SessionHandler: TypeAlias = "Callable[[web.Request, AsyncSession], Awaitable[web.StreamResponse]]"


def default_client() -> Client:
    """One process-wide sync client for ``ITEMSTORE_URL`` (default
    http://127.0.0.1:8080) with ``ITEMSTORE_TOKEN``, made on first use."""
    global _default
    with _default_lock:
        if _default is None:
            url = os.environ.get("ITEMSTORE_URL", DEFAULT_URL)
            _default = Client(url, os.environ.get("ITEMSTORE_TOKEN") or None)
        return _default


class StorageContext:
    """Calling it is a generator yielding a :class:`Session` that commits when
    resumed normally and sends nothing when an exception is thrown in."""

    def __init__(self, collection: str, client: Client) -> None:
        self.collection = collection
        self.client = client

    def __call__(self) -> Generator[Session, None, None]:
        with self.client.session(self.collection) as db:
            yield db

    def session(self) -> Session:
        return self.client.session(self.collection)


class AsyncStorageContext:
    """Calling it is an async generator yielding an :class:`AsyncSession`
    (a FastAPI dependency); ``handler`` wraps aiohttp views."""

    def __init__(self, collection: str, client: AsyncClient) -> None:
        self.collection = collection
        self.client = client

    async def __call__(self) -> AsyncGenerator[AsyncSession, None]:
        async with self.client.session(self.collection) as db:
            yield db

    def session(self) -> AsyncSession:
        return self.client.session(self.collection)

    def handler(self, view: SessionHandler) -> Handler:
        """An aiohttp handler running ``view(request, db)`` in a fresh session:
        committed when the view returns a response (web.HTTPException
        responses such as redirects included); nothing sent when it raises
        anything else."""
        from aiohttp import web

        @functools.wraps(view)
        async def handle(request: web.Request) -> web.StreamResponse:
            db = self.session()
            try:
                response = await view(request, db)
            except web.HTTPException:
                await db.commit()
                raise
            await db.commit()
            return response

        return handle


@overload
def storage_context(collection: str, client: AsyncClient) -> AsyncStorageContext: ...
@overload
def storage_context(collection: str, client: Client | None = None) -> StorageContext: ...
def storage_context(
    collection: str, client: Client | AsyncClient | None = None
) -> StorageContext | AsyncStorageContext:
    """A per-request session factory on ``collection``: sync on a :class:`Client`
    (the process default when None), async on an :class:`AsyncClient`."""
    if client is None:
        return StorageContext(collection, default_client())
    if isinstance(client, Client):
        return StorageContext(collection, client)
    return AsyncStorageContext(collection, client)
