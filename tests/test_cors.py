"""CORS: off by default; with --cors-origin, preflights answered and answers
readable by the listed origins, never with credentials for '*'."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from itemstore_service.app import create_app
from itemstore_service.config import Config, ConfigError

Client = TestClient[web.Request, web.Application]
APP = "https://app.example.com"
PREFLIGHT = {
    "Origin": APP,
    "Access-Control-Request-Method": "PUT",
    "Access-Control-Request-Headers": "authorization, content-type",
}


async def client_for(
    config: Config, aiohttp_client: Callable[..., Awaitable[Client]], *origins: str
) -> Client:
    return await aiohttp_client(
        create_app(dataclasses.replace(config, cors_origins=origins, token="t0ken"))
    )


async def test_cors_is_off_by_default(
    sqlite_config: Config, aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    client = await client_for(sqlite_config, aiohttp_client)
    answer = await client.options("/collections/c/items/k", headers=PREFLIGHT)
    assert answer.status in (401, 405)
    assert "Access-Control-Allow-Origin" not in answer.headers
    answer = await client.get("/", headers={"Origin": APP})
    assert "Access-Control-Allow-Origin" not in answer.headers


async def test_a_listed_origin_gets_preflights_and_readable_answers(
    sqlite_config: Config, aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    client = await client_for(sqlite_config, aiohttp_client, APP, "http://localhost:3000")
    answer = await client.options("/collections/c/items/k", headers=PREFLIGHT)  # no token
    assert answer.status == 204
    assert answer.headers["Access-Control-Allow-Origin"] == APP
    assert "PUT" in answer.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in answer.headers["Access-Control-Allow-Headers"]
    assert answer.headers["Access-Control-Allow-Credentials"] == "true"
    # An error answer is readable too (the page can show the problem).
    answer = await client.get("/collections", headers={"Origin": APP})
    assert answer.status == 401
    assert answer.headers["Access-Control-Allow-Origin"] == APP
    assert "ETag" in answer.headers["Access-Control-Expose-Headers"]
    assert answer.headers["Vary"] == "Origin"
    other = {**PREFLIGHT, "Origin": "https://evil.example.com"}
    answer = await client.options("/collections/c/items/k", headers=other)
    assert answer.status == 403
    assert "Access-Control-Allow-Origin" not in answer.headers
    answer = await client.get("/", headers={"Origin": "https://evil.example.com"})
    assert "Access-Control-Allow-Origin" not in answer.headers


async def test_any_origin_never_allows_credentials(
    sqlite_config: Config, aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    client = await client_for(sqlite_config, aiohttp_client, "*")
    answer = await client.options("/collections/c/items/k", headers=PREFLIGHT)
    assert answer.status == 204
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in answer.headers
    answer = await client.get("/", headers={"Origin": APP})
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in answer.headers


@pytest.mark.parametrize("origin", ["app.example.com", "https://app.example.com/", "", "null"])
def test_an_origin_that_is_not_one_is_refused(origin: str) -> None:
    with pytest.raises(ConfigError, match="--cors-origin"):
        Config(cors_origins=(origin,))
