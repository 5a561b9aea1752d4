"""Expiring items over HTTP (``expire_in`` / ``expire_at``), against the real
app on each backend: an expired item is gone at once for every reader and
every condition, whenever storage removes it."""

from __future__ import annotations

import asyncio
import time
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from aiohttp.web import Application, Request

Client = TestClient[Request, Application]

JSON = {"Content-Type": "application/json"}


async def put(
    client: Client, path: str, value: Any, status: int = 201, headers: dict[str, str] | None = None
) -> Any:
    response = await client.put(path, json=value, headers=headers or {})
    assert response.status == status, await response.text()
    return response


async def listing(client: Client, collection: str, **query: str) -> list[dict[str, Any]]:
    response = await client.get(f"/collections/{collection}/items", params=query)
    assert response.status == 200
    items: list[dict[str, Any]] = (await response.json())["items"]
    return items


async def test_expiry_is_shown_kept_and_cleared(client: Client) -> None:
    before = time.time()
    await put(client, "/collections/c/items/a?expire_in=60", {"n": 1})
    got = await client.get("/collections/c/items/a")
    expires = parsedate_to_datetime(got.headers["Expires"]).timestamp()
    assert before + 60 <= expires <= time.time() + 61
    head = await client.head("/collections/c/items/a")
    assert head.headers["Expires"] == got.headers["Expires"]
    (entry,) = await listing(client, "c")
    assert entry == {"key": "a", "value": {"n": 1}, "expires_at": int(expires)}
    assert await listing(client, "c", keys_only="true") == [
        {"key": "a", "expires_at": int(expires)}
    ]

    # PATCH keeps the expiry unless told; PUT without one clears it.
    patched = await client.patch("/collections/c/items/a", json={"increment": {"n": 1}})
    assert patched.status == 200
    assert (await listing(client, "c"))[0]["expires_at"] == int(expires)
    later = int(time.time()) + 3600
    patched = await client.patch(
        f"/collections/c/items/a?expire_at={later}", json={"set": {"x": 0}}
    )
    assert patched.status == 200
    assert (await listing(client, "c"))[0]["expires_at"] == later
    await put(client, "/collections/c/items/a", {"n": 3}, status=200)
    assert "Expires" not in (await client.get("/collections/c/items/a")).headers
    assert await listing(client, "c") == [{"key": "a", "value": {"n": 3}}]

    created = await client.post("/collections/c/items?expire_in=30", json=1)
    assert created.status == 201
    assert "Expires" in (await client.get(created.headers["Location"])).headers
    ops = [
        {"op": "put", "key": "b", "value": 2, "expire_in": 30},
        {"op": "patch", "key": "a", "change": {"set": {"y": 1}}, "expire_at": later},
    ]
    response = await client.post("/collections/c/batch", json={"ops": ops})
    assert [r["status"] for r in (await response.json())["results"]] == [201, 200]
    expiries = {entry["key"]: entry.get("expires_at") for entry in await listing(client, "c")}
    assert expiries["a"] == later and expiries["b"] is not None


async def test_an_expired_item_is_gone_for_every_reader_and_condition(client: Client) -> None:
    first = await put(client, "/collections/short/items/a?expire_in=1", {"n": 1})
    await put(client, "/collections/short/items/b?expire_in=1", {"n": 2})
    await put(client, "/collections/short/items/c?expire_in=1", {"n": 3})
    await put(client, "/collections/keep/items/k", 0)
    expires = parsedate_to_datetime(
        (await client.get("/collections/short/items/a")).headers["Expires"]
    ).timestamp()
    await asyncio.sleep(max(0.0, expires - time.time()) + 0.1)

    assert (await client.get("/collections/short/items/a")).status == 404
    assert (await client.head("/collections/short/items/a")).status == 404
    batch = await client.post("/collections/short/batch", json={"ops": [{"op": "get", "key": "a"}]})
    assert (await batch.json())["results"] == [{"status": 404}]
    assert await listing(client, "short") == []
    assert await listing(client, "short", keys_only="true") == []
    assert (await (await client.get("/collections/short")).json())["count"] == 0
    names = [c["name"] for c in (await (await client.get("/collections")).json())["collections"]]
    assert names == ["keep"]
    patched = await client.patch("/collections/short/items/a", json={"set": {"n": 0}})
    assert patched.status == 404
    assert (await client.delete("/collections/short/items/b")).status == 404
    stale = await put(
        client,
        "/collections/short/items/b",
        1,
        status=412,
        headers={"If-Match": first.headers["ETag"]},
    )
    assert (await stale.json())["current"] is None
    await put(client, "/collections/short/items/a", {"new": True}, headers={"If-None-Match": "*"})
    await put(client, "/collections/short/items/c", {"again": True})  # 201: created, not replaced
    assert {e["key"] for e in await listing(client, "short")} == {"a", "c"}


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("expire_in=-1", "whole number of seconds"),
        ("expire_in=ten", "whole number of seconds"),
        ("expire_in=1.5", "whole number of seconds"),
        ("expire_in=", "whole number of seconds"),
        ("expire_in=0", "at least 1 second"),
        ("expire_at=1000", "in the future"),
        ("expire_in=999999999999", "at most 315360000 seconds"),
        ("expire_in=60&expire_at=4000000000", "not both"),
    ],
)
async def test_bad_expiry_is_400_and_writes_nothing(client: Client, query: str, words: str) -> None:
    for method, path, body in [
        ("PUT", "/collections/c/items/k", 1),
        ("POST", "/collections/c/items", 1),
        ("PATCH", "/collections/c/items/k", {"set": {"a": 1}}),
    ]:
        response = await client.request(method, f"{path}?{query}", json=body)
        assert response.status == 400, method
        assert words in (await response.json())["detail"]
    assert (await (await client.get("/collections/c")).json())["count"] == 0


async def test_bad_expiry_in_a_batch_writes_nothing(client: Client) -> None:
    ops = [
        {"op": "put", "key": "a", "value": 1, "expire_in": 60},
        {"op": "put", "key": "b", "value": 1, "expire_in": "60"},
        {"op": "put", "key": "c", "value": 1, "expire_in": 60, "expire_at": 4_000_000_000},
        {"op": "get", "key": "d", "expire_in": 60},
        {"op": "patch", "key": "e", "change": {"set": {"a": 1}}, "expire_at": -1},
    ]
    response = await client.post("/collections/c/batch", json={"ops": ops})
    assert response.status == 400
    assert [e["index"] for e in (await response.json())["errors"]] == [1, 2, 3, 4]
    assert (await (await client.get("/collections/c")).json())["count"] == 0
