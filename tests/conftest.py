"""Shared fixtures: real DynamoDB servers (moto, dynalite) and configs for each backend.

``moto_endpoint`` (session): URL of a moto server on a free local port.
``dynalite_endpoint`` (session): URL of a dynalite server on a free local port
(skipped, with the reason, when node or the npm package is missing).
``moto_config`` (alias ``dynamodb_config``): a Config on the moto server with a
table of its own per test; ``dynalite_config``: the same on the dynalite server;
``any_dynamodb_config``: each of the two in turn.
``sqlite_config``: a Config on a fresh SQLite file in the test's tmp_path.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from aiohttp.web import Application, Request
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.server import ThreadedMotoServer
from werkzeug.serving import make_server

from bench import dynamodb_local
from bench.moto_keepalive import OneAtATime
from itemstore_service.app import create_app
from itemstore_service.config import Config

# Fake credentials for the whole test run, so that no test can read (or spend)
# real ones: set before any client is made.
for _name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
    os.environ.pop(_name, None)
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_CONFIG_FILE=os.devnull,
    AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    AWS_EC2_METADATA_DISABLED="true",
)


class SerialMotoServer(ThreadedMotoServer):
    """moto's threaded server, running one request at a time: DynamoDB applies
    each conditional write atomically, moto checks the condition and then
    stores the item without a lock (``bench.moto_keepalive.OneAtATime``)."""

    def _server_entry(self) -> None:
        app = OneAtATime(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(
            self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto server (DynamoDB and the rest) on a free port of 127.0.0.1."""
    server = SerialMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def dynalite_endpoint() -> Iterator[str]:
    """A dynalite server (in memory) on a free port of 127.0.0.1."""
    reason = dynamodb_local.missing_reason("dynalite")
    if reason:
        pytest.skip(reason)
    with dynamodb_local.running("dynalite") as (url, _pid):
        yield url


def table_config(endpoint: str) -> Config:
    """A DynamoDB Config on ``endpoint`` with a table name no other test uses
    (of 3 to 255 characters, as DynamoDB and dynalite want)."""
    return Config(
        backend="dynamodb",
        dynamodb_endpoint=endpoint,
        dynamodb_table=f"itemstore-{uuid.uuid4().hex}",
        dynamodb_create_table=True,
    )


@pytest.fixture
def moto_config(moto_endpoint: str) -> Config:
    """A DynamoDB Config on the moto server, with a table name no other test uses."""
    return table_config(moto_endpoint)


@pytest.fixture
def dynamodb_config(moto_config: Config) -> Config:
    """The DynamoDB Config of tests that run on one implementation: moto."""
    return moto_config


@pytest.fixture
def dynalite_config(dynalite_endpoint: str) -> Config:
    """A DynamoDB Config on the dynalite server, with a table name no other test uses."""
    return table_config(dynalite_endpoint)


@pytest.fixture
def sqlite_config(tmp_path: Path) -> Config:
    """A SQLite Config on a new file in the test's own directory."""
    return Config(backend="sqlite", sqlite_path=str(tmp_path / "items.sqlite3"))


@pytest.fixture(params=["moto", "dynalite"])
def any_dynamodb_config(request: pytest.FixtureRequest) -> Config:
    """A table of its own on each DynamoDB implementation in turn."""
    config: Config = request.getfixturevalue(f"{request.param}_config")
    return config


@pytest.fixture(params=["sqlite", "dynamodb", "dynalite"])
def any_config(request: pytest.FixtureRequest) -> Config:
    """The Config of each backend in turn: SQLite, DynamoDB on moto, DynamoDB
    on dynalite (skipped without node)."""
    config: Config = request.getfixturevalue(f"{request.param}_config")
    return config


@pytest.fixture
async def client(
    any_config: Config, aiohttp_client: Callable[..., Awaitable[TestClient[Request, Application]]]
) -> TestClient[Request, Application]:
    """A client of the real app, on each backend in turn."""
    return await aiohttp_client(create_app(any_config))
