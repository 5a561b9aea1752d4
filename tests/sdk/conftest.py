"""The SDK runs against the real service: the aiohttp app from ``create_app``
served on a free port of 127.0.0.1 by a background thread with its own event
loop (so sync SDK calls from the test thread never block the server), once per
backend (a SQLite file; DynamoDB on the shared ``moto_endpoint`` server).
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest
from aiohttp import web

from itemstore import AsyncClient, Client, Collection
from itemstore_service.app import create_app
from itemstore_service.config import Config


@contextmanager
def serve_app(app: web.Application) -> Iterator[str]:
    """Run an aiohttp app in a thread with its own loop; yield its base URL."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="itemstore-test-server", daemon=True)
    thread.start()
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=5)

    async def start() -> str:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        return f"http://{host}:{port}"

    try:
        yield asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def serve(config: Config) -> AbstractContextManager[str]:
    """Run the real service for ``config``; yield its base URL."""
    return serve_app(create_app(config))


@pytest.fixture(scope="session", params=["sqlite", "dynamodb"])
def service_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Base URL of a running service, on each backend in turn. One server per
    backend for the whole run (each test uses collections of its own): a
    DynamoDB table costs about half a second to make on moto."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("sdk") / "items.sqlite3"
        config = Config(backend="sqlite", sqlite_path=str(path))
    else:
        config = Config(
            backend="dynamodb",
            dynamodb_endpoint=request.getfixturevalue("moto_endpoint"),
            dynamodb_table=f"itemstore-sdk-{uuid.uuid4().hex}",
            dynamodb_create_table=True,
        )
    with serve(config) as url:
        yield url


@pytest.fixture
def token_service_url(sqlite_config: Config) -> Iterator[str]:
    """A running service (SQLite) that requires the bearer token "s3cret"."""
    with serve(dataclasses.replace(sqlite_config, token="s3cret")) as url:
        yield url


ServeApp = Callable[[web.Application], AbstractContextManager[str]]


@pytest.fixture
def serve_fake() -> ServeApp:
    """``with serve_fake(app) as url``: run a stand-in app (for fault injection)."""
    return serve_app


@pytest.fixture
def sync_client(service_url: str) -> Iterator[Client]:
    with Client(service_url, timeout=10) as client:
        yield client


@pytest.fixture
async def async_client(service_url: str) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(service_url, timeout=10) as client:
        yield client


@pytest.fixture
def coll(sync_client: Client) -> Iterator[Collection]:
    """An empty collection with a name of its own, emptied again afterwards
    (moto's queries slow down as the shared table grows)."""
    collection = sync_client.collection(f"c-{uuid.uuid4().hex[:12]}")
    yield collection
    collection.clear()
