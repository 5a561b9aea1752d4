"""/healthz, /readyz and /metrics on the real app."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable

import aioboto3
from aiohttp.test_utils import TestClient
from aiohttp.web import Application, Request
from prometheus_client import REGISTRY

from itemstore_service.app import create_app
from itemstore_service.appkeys import STORE
from itemstore_service.config import Config
from itemstore_service.health import HEALTH
from itemstore_service.observability.instrumented import InstrumentedBackend

AiohttpClient = Callable[[Application], Awaitable[TestClient[Request, Application]]]


class HangingPing(InstrumentedBackend):
    """Fault injection: a backend whose ping never answers, which a real
    SQLite file cannot be made to do. Everything else is the real backend."""

    async def ping(self) -> None:
        await asyncio.Event().wait()


def requests_total(route: str, status: int) -> float:
    labels = {"method": "GET", "route": route, "status": str(status)}
    return REGISTRY.get_sample_value("itemstore_http_requests_total", labels) or 0.0


async def test_probes_need_no_token_and_metrics_an_admin_when_data_routes_do(
    sqlite_config: Config, aiohttp_client: AiohttpClient
) -> None:
    client = await aiohttp_client(create_app(dataclasses.replace(sqlite_config, token="s3cret")))
    healthz = await client.get("/healthz")
    assert (healthz.status, await healthz.json()) == (200, {"status": "ok"})
    readyz = await client.get("/readyz")
    assert (readyz.status, await readyz.json()) == (200, {"status": "ready", "backend": "sqlite"})
    assert (await client.get("/metrics")).status == 401  # open on --metrics-port only
    metrics = await client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
    assert metrics.status == 200
    assert metrics.headers["Content-Type"].startswith("text/plain")
    assert "# TYPE itemstore_http_requests_total counter" in await metrics.text()
    assert (await client.get("/collections/c/items/k")).status == 401


async def test_readyz_is_503_when_the_backend_does_not_answer_in_time(
    sqlite_config: Config, aiohttp_client: AiohttpClient
) -> None:
    client = await aiohttp_client(create_app(sqlite_config))
    store = client.app[STORE]
    store.backend = HangingPing(store.backend)
    client.app[HEALTH].ping_timeout = 0.2
    before = requests_total("/readyz", 503)

    answer = await client.get("/readyz")
    assert answer.status == 503
    assert answer.headers["Content-Type"] == "application/problem+json"
    problem = await answer.json()
    assert problem["code"] == "backend-unavailable"
    assert "did not answer within 0.2 s" in problem["detail"]
    assert requests_total("/readyz", 503) == before + 1
    # Liveness does not depend on the backend.
    assert (await client.get("/healthz")).status == 200


async def test_readyz_is_503_when_the_dynamodb_table_is_gone(
    dynamodb_config: Config, aiohttp_client: AiohttpClient
) -> None:
    client = await aiohttp_client(create_app(dynamodb_config))
    assert (await client.get("/readyz")).status == 200
    async with aioboto3.Session().client(
        "dynamodb", endpoint_url=dynamodb_config.dynamodb_endpoint, region_name="us-east-1"
    ) as dynamodb:
        await dynamodb.delete_table(TableName=dynamodb_config.dynamodb_table)
    errors_before = REGISTRY.get_sample_value(
        "itemstore_backend_errors_total",
        {"backend": "dynamodb", "op": "ping", "error": "BackendUnavailable"},
    )

    answer = await client.get("/readyz")
    assert answer.status == 503
    assert (await answer.json())["code"] == "backend-unavailable"
    errors_after = REGISTRY.get_sample_value(
        "itemstore_backend_errors_total",
        {"backend": "dynamodb", "op": "ping", "error": "BackendUnavailable"},
    )
    assert errors_after == (errors_before or 0.0) + 1


async def test_readyz_is_503_from_the_start_of_shutdown(
    sqlite_config: Config, aiohttp_client: AiohttpClient
) -> None:
    client = await aiohttp_client(create_app(sqlite_config))
    assert (await client.get("/readyz")).status == 200
    await client.app.shutdown()  # what SIGTERM does first, while connections still drain

    answer = await client.get("/readyz")
    assert answer.status == 503
    assert (await answer.json())["code"] == "shutting-down"
    assert (await client.get("/healthz")).status == 200
