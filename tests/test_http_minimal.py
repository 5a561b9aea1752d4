"""Blind writes: ``Prefer: return=minimal`` on PUT and batch, against the real
app on each backend; on DynamoDB, the wire calls such a write saves."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from aiohttp.web import Application, Request

from itemstore_service.app import create_app
from itemstore_service.appkeys import STORE
from itemstore_service.backends.dynamodb import DynamoDBBackend
from itemstore_service.backends.dynamodb_wire import DynamoDBWire
from itemstore_service.breaker import GuardedBackend
from itemstore_service.config import Config
from itemstore_service.observability.instrumented import InstrumentedBackend

Client = TestClient[Request, Application]
MakeClient = Callable[[Application], Awaitable[Client]]

MINIMAL = {"Prefer": "return=minimal"}
URL = "/collections/c/items/k"


async def test_minimal_put_is_204_with_etag_and_no_body(client: Client) -> None:
    for _ in range(2):  # absent, then present: the same answer
        written = await client.put(URL, json={"n": 1}, headers=MINIMAL)
        assert written.status == 204
        assert await written.read() == b""
        assert written.headers["Preference-Applied"] == "return=minimal"
        got = await client.get(URL)
        assert await got.json() == {"n": 1}
        assert got.headers["ETag"] == written.headers["ETag"]


async def test_plain_put_still_tells_created_from_replaced(client: Client) -> None:
    await client.put(URL, json=0, headers=MINIMAL)
    replaced = await client.put(URL, json=1)
    assert replaced.status == 200
    assert (await replaced.json())["etag"] == replaced.headers["ETag"]
    assert "Preference-Applied" not in replaced.headers
    created = await client.put("/collections/c/items/new", json=1)
    assert created.status == 201


@pytest.mark.parametrize(
    "prefer",
    [
        "return=minimal",
        "RETURN=Minimal",
        'return="minimal"',
        "respond-async, wait=10, return = minimal; foo=bar",
    ],
)
async def test_prefer_header_is_read_tolerantly(client: Client, prefer: str) -> None:
    assert (await client.put(URL, json=1, headers={"Prefer": prefer})).status == 204


@pytest.mark.parametrize(
    "prefer", ["return=representation", "respond-async", "return=representation, return=minimal"]
)
async def test_other_preferences_keep_the_full_answer(client: Client, prefer: str) -> None:
    answer = await client.put(URL, json=1, headers={"Prefer": prefer})
    assert answer.status == 201
    assert (await answer.json())["key"] == "k"


async def test_conditional_minimal_put(client: Client) -> None:
    created = await client.put(URL, json=1, headers={"If-None-Match": "*", **MINIMAL})
    assert created.status == 204
    tag = created.headers["ETag"]
    again = await client.put(URL, json=2, headers={"If-None-Match": "*", **MINIMAL})
    assert again.status == 412
    assert (await again.json())["etag"] == tag
    swapped = await client.put(URL, json=3, headers={"If-Match": tag, **MINIMAL})
    assert swapped.status == 204 and swapped.headers["ETag"] != tag
    stale = await client.put(URL, json=4, headers={"If-Match": tag, **MINIMAL})
    assert stale.status == 412
    got = await client.get(URL)
    assert await got.json() == 3
    assert got.headers["ETag"] == swapped.headers["ETag"]


async def test_minimal_batch_answers_puts_204(client: Client) -> None:
    await client.put("/collections/c/items/old", json="old")
    ops: list[dict[str, Any]] = [
        {"op": "put", "key": "k", "value": 1},
        {"op": "get", "key": "k"},
        {"op": "put", "key": "k", "value": 2},
        {"op": "delete", "key": "old"},
        {"op": "put", "key": "old", "value": "new"},
        {"op": "get", "key": "missing"},
    ]
    answer = await client.post("/collections/c/batch", json={"ops": ops}, headers=MINIMAL)
    assert answer.status == 200
    assert answer.headers["Preference-Applied"] == "return=minimal"
    results = (await answer.json())["results"]
    assert [r["status"] for r in results] == [204, 200, 204, 200, 204, 404]
    assert results[1] == {"status": 200, "value": 1, "etag": results[0]["etag"]}
    assert results[3]["value"] == "old"
    assert all(set(results[i]) == {"status", "etag"} for i in (0, 2, 4))
    got = await client.get(URL)
    assert await got.json() == 2
    assert got.headers["ETag"] == results[2]["etag"]
    assert await (await client.get("/collections/c/items/old")).json() == "new"


async def test_plain_batch_still_tells_created_from_replaced(client: Client) -> None:
    ops = [{"op": "put", "key": "k", "value": 1}, {"op": "put", "key": "k", "value": 2}]
    answer = await client.post("/collections/c/batch", json={"ops": ops})
    assert [r["status"] for r in (await answer.json())["results"]] == [201, 200]
    assert "Preference-Applied" not in answer.headers


class CountingWire:
    """The real wire client, counting the calls of each DynamoDB operation."""

    def __init__(self, real: DynamoDBWire) -> None:
        self.real = real
        self.calls: Counter[str] = Counter()

    async def request(
        self, operation: str, body: dict[str, Any], *, idempotent: bool = True
    ) -> dict[str, Any]:
        self.calls[operation] += 1
        return await self.real.request(operation, body, idempotent=idempotent)


async def test_blind_writes_read_nothing_on_dynamodb(
    any_dynamodb_config: Config, aiohttp_client: MakeClient
) -> None:
    app = create_app(any_dynamodb_config)
    client = await aiohttp_client(app)
    guarded = app[STORE].backend
    assert isinstance(guarded, GuardedBackend)
    instrumented = guarded.inner
    assert isinstance(instrumented, InstrumentedBackend)
    backend = instrumented.inner
    assert isinstance(backend, DynamoDBBackend)
    wire = CountingWire(backend.wire)
    backend.wire = wire  # type: ignore[assignment]  # same request(), counted

    await client.put(URL, json=0)  # the collection is registered: a write of its own
    wire.calls.clear()
    assert (await client.put(URL, json=1, headers=MINIMAL)).status == 204
    ops = [{"op": "put", "key": i, "value": i} for i in range(30)]
    assert (await client.post("/collections/c/batch", json={"ops": ops}, headers=MINIMAL)).ok
    assert (await client.post("/collections/c/items", json="new")).status == 201
    assert wire.calls == {"BatchWriteItem": 4}  # 1 + 2 (25 a call) + 1, and nothing read

    assert (await client.put(URL, json=2)).status == 200  # a plain PUT still reads first
    assert wire.calls["BatchGetItem"] == 1
