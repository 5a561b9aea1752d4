"""PATCH of an item over HTTP (update operations and JSON Merge Patch), and
the batch ``patch`` op, against the real app on each backend."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from aiohttp.web import Application, Request

Client = TestClient[Request, Application]

URL = "/collections/users/items/ada"
JSON = {"Content-Type": "application/json"}
MERGE = {"Content-Type": "application/merge-patch+json"}


async def put(client: Client, value: Any) -> str:
    response = await client.put(URL, data=orjson.dumps(value), headers=JSON)
    assert response.status in (200, 201)
    return response.headers["ETag"]


async def patch(client: Client, body: Any, **headers: str) -> Any:
    return await client.patch(URL, data=orjson.dumps(body), headers=JSON | headers)


async def stored(client: Client) -> Any:
    response = await client.get(URL)
    assert response.status == 200
    return await response.json()


async def test_operations_change_the_named_fields_only(client: Client) -> None:
    etag = await put(client, {"profile": {"name": "A", "tmp": 1}, "visits": 1, "tags": ["a"]})
    response = await patch(
        client,
        {
            "set": {"profile.name": "Ada", "profile.address.city": "London"},
            "increment": {"visits": 2, "score": 1.5},
            "append": {"tags": ["b", "c"], "new": [1]},
            "prepend": {"log": ["first"]},
            "delete": ["profile.tmp", "absent.field"],
        },
    )
    assert response.status == 200
    expected = {
        "profile": {"name": "Ada", "address": {"city": "London"}},
        "visits": 3,
        "score": 1.5,
        "tags": ["a", "b", "c"],
        "new": [1],
        "log": ["first"],
    }
    assert await response.json() == expected
    assert response.headers["ETag"] != etag
    assert await stored(client) == expected
    assert (await client.get(URL)).headers["ETag"] == response.headers["ETag"]


async def test_list_indexes_and_escaped_dots(client: Client) -> None:
    await put(client, {"a.b": {"c": 1}, "rows": [{"n": 1}, {"n": 2}], "t": ["x", "y", "z"]})
    response = await patch(
        client,
        {"increment": {"a\\.b.c": 1, "rows.1.n": 10}, "delete": ["t.0"], "set": {"rows.0.m": 0}},
    )
    assert response.status == 200
    assert await response.json() == {
        "a.b": {"c": 2},
        "rows": [{"n": 1, "m": 0}, {"n": 12}],
        "t": ["y", "z"],
    }


async def test_merge_patch_follows_rfc_7396(client: Client) -> None:
    await put(client, {"a": "b", "c": {"d": "e", "f": "g"}})
    response = await client.patch(
        URL, data=orjson.dumps({"a": "z", "c": {"f": None}, "n": [1]}), headers=MERGE
    )
    assert response.status == 200
    assert await response.json() == {"a": "z", "c": {"d": "e"}, "n": [1]}
    assert await stored(client) == {"a": "z", "c": {"d": "e"}, "n": [1]}


async def test_absent_item_is_404_and_stays_absent(client: Client) -> None:
    response = await patch(client, {"increment": {"n": 1}})
    assert response.status == 404
    assert response.content_type == "application/problem+json"
    assert (await client.get(URL)).status == 404


async def test_if_match(client: Client) -> None:
    etag = await put(client, {"n": 1})
    ok = await patch(client, {"increment": {"n": 1}}, **{"If-Match": etag})
    assert ok.status == 200
    stale = await patch(client, {"increment": {"n": 1}}, **{"If-Match": etag})
    assert stale.status == 412
    problem = await stale.json()
    assert problem["current"] == {"n": 2}
    assert problem["etag"] == ok.headers["ETag"]
    assert await stored(client) == {"n": 2}


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"add": {"n": 1}}, "unknown operator 'add'"),
        ({}, "object of operations"),
        ([1], "object of operations"),
        ({"set": {"a": 1}, "increment": {"a.b": 1}}, "same or nested paths"),
        ({"set": {"a": 1, "a.b": 2}}, "same or nested paths"),
        ({"increment": {"n": "1"}}, "takes a number"),
        ({"increment": {"n": True}}, "takes a number"),
        ({"append": {"tags": "x"}}, "list of the items"),
        ({"delete": "tags"}, "list of paths"),
        ({"set": {"a..b": 1}}, "empty segment"),
        ({"set": {"a\\b": 1}}, "backslash"),
        ({"increment": {"name": 1}}, "holds a string, not a number"),
        ({"append": {"name": [1]}}, "holds a string, not a list"),
        ({"set": {"name.first": "A"}}, "is a string, not an object"),
        ({"set": {"tags.5": "A"}}, "no index 5"),
        ({"set": {"tags.x": "A"}}, "not an index"),
    ],
)
async def test_bad_operations_are_400_and_change_nothing(
    client: Client, body: Any, words: str
) -> None:
    etag = await put(client, {"name": "Ada", "tags": ["a"], "n": 1})
    response = await patch(client, body)
    assert response.status == 400
    assert response.content_type == "application/problem+json"
    assert words in (await response.json())["detail"]
    after = await client.get(URL)
    assert await after.json() == {"name": "Ada", "tags": ["a"], "n": 1}
    assert after.headers["ETag"] == etag


async def test_a_result_over_the_size_limit_is_413(client: Client) -> None:
    limit = (await (await client.get("/")).json())["limits"]["max_value_bytes"]
    await put(client, {"s": "x" * (limit - 100)})
    response = await patch(client, {"set": {"t": "y" * 200}})
    assert response.status == 413
    assert len((await stored(client))["s"]) == limit - 100


async def test_wrong_media_type_and_bad_json(client: Client) -> None:
    await put(client, {"n": 1})
    text = await client.patch(URL, data=b"{}", headers={"Content-Type": "text/plain"})
    assert text.status == 415
    other = await client.patch(URL, data=b"{}", headers={"Content-Type": "application/x+json"})
    assert other.status == 415
    broken = await client.patch(URL, data=b"{", headers=JSON)
    assert broken.status == 400
    none_match = await patch(client, {"set": {"a": 1}}, **{"If-None-Match": "*"})
    assert none_match.status == 400


async def test_batch_patch_op(client: Client) -> None:
    ops = [
        {"op": "put", "key": "c", "value": {"n": 1, "tags": []}},
        {"op": "patch", "key": "c", "change": {"increment": {"n": 1}}},
        {"op": "patch", "key": "c", "merge": {"tags": ["m"]}},
        {"op": "patch", "key": "missing", "change": {"increment": {"n": 1}}},
        {"op": "patch", "key": "c", "change": {"append": {"n": [1]}}},
        {"op": "get", "key": "c"},
    ]
    response = await client.post("/collections/users/batch", json={"ops": ops})
    assert response.status == 200
    results = (await response.json())["results"]
    assert [r["status"] for r in results] == [201, 200, 200, 404, 400, 200]
    assert results[1]["value"] == {"n": 2, "tags": []}
    assert results[2]["value"] == {"n": 2, "tags": ["m"]}
    assert results[4]["code"] == "patch-conflict"
    assert "not a list" in results[4]["detail"]
    assert results[5]["value"] == {"n": 2, "tags": ["m"]}
    assert results[5]["etag"] == results[2]["etag"]


async def test_batch_with_an_invalid_patch_op_writes_nothing(client: Client) -> None:
    ops = [
        {"op": "put", "key": "c", "value": 1},
        {"op": "patch", "key": "c", "change": {"bump": {"n": 1}}},
        {"op": "patch", "key": "c"},
    ]
    response = await client.post("/collections/users/batch", json={"ops": ops})
    assert response.status == 400
    errors = (await response.json())["errors"]
    assert [e["index"] for e in errors] == [1, 2]
    assert (await client.get("/collections/users/items/c")).status == 404
