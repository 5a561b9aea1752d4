"""The item routes over HTTP, against the real app on each backend."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson
import pytest
from aiohttp.test_utils import TestClient
from aiohttp.web import Application, Request
from yarl import URL

Client = TestClient[Request, Application]


def item_url(key: str, collection: str = "users", **query: str) -> URL:
    """The URL of an item with ``key`` percent-encoded as one path segment
    ('.' too, so that '.' and '..' survive URL normalisation)."""
    path = f"/collections/{collection}/items/" + quote(key, safe="").replace(".", "%2E")
    return URL(path, encoded=True).with_query(query)


JSON = {"Content-Type": "application/json"}


async def put(client: Client, url: URL | str, value: Any, **headers: str) -> Any:
    return await put_bytes(client, url, orjson.dumps(value), **headers)


async def put_bytes(client: Client, url: URL | str, body: bytes, **headers: str) -> Any:
    return await client.put(url, data=body, headers=JSON | headers)


async def test_put_get_replace_delete(client: Client) -> None:
    created = await put(client, "/collections/users/items/ada", {"name": "Ada"})
    assert created.status == 201
    body = await created.json()
    assert body["key"] == "ada"
    assert body["etag"] == created.headers["ETag"]

    got = await client.get("/collections/users/items/ada")
    assert got.status == 200
    assert got.content_type == "application/json"
    assert await got.json() == {"name": "Ada"}
    assert got.headers["ETag"] == created.headers["ETag"]

    replaced = await put(client, "/collections/users/items/ada", {"name": "Ada L."})
    assert replaced.status == 200
    assert replaced.headers["ETag"] != created.headers["ETag"]

    head = await client.head("/collections/users/items/ada")
    assert head.status == 200
    assert head.headers["ETag"] == replaced.headers["ETag"]

    deleted = await client.delete("/collections/users/items/ada")
    assert deleted.status == 200
    assert await deleted.json() == {"name": "Ada L."}
    assert (await client.get("/collections/users/items/ada")).status == 404
    missing = await client.delete("/collections/users/items/ada")
    assert missing.status == 404
    assert (await missing.json())["code"] == "item-not-found"


@pytest.mark.parametrize(
    "value", [None, True, 0, -1.5, "text", [], [1, "two", None], {"nested": {"deep": [1, 2]}}]
)
async def test_any_json_value_round_trips(client: Client, value: Any) -> None:
    assert (await put(client, "/collections/c/items/k", value)).status == 201
    got = await client.get("/collections/c/items/k", params={"consistent": "true"})
    assert await got.json() == value


@pytest.mark.parametrize(
    "key",
    [
        "a/b",
        "what?",
        "#hash",
        "100%",
        "with space",
        ".",
        "..",
        "é",
        "日本",
        "🙂",
        "a+b",
        "{id}",
        "}{",
        "%7B",
        "x" * 1000,
    ],
)
async def test_keys_with_any_characters_round_trip(client: Client, key: str) -> None:
    response = await put(client, item_url(key), {"k": key})
    assert response.status == 201, await response.text()
    assert (await response.json())["key"] == key
    assert await (await client.get(item_url(key))).json() == {"k": key}
    listing = await (await client.get("/collections/users/items")).json()
    assert [item["key"] for item in listing["items"]] == [key]


async def test_every_ascii_character_round_trips_alone_and_inside_a_key(client: Client) -> None:
    keys = [text for code in range(128) for text in (chr(code), f"a{chr(code)}b")]
    for key in keys:
        response = await put(client, item_url(key), key)
        assert response.status == 201, (key, await response.text())
        assert await (await client.get(item_url(key))).json() == key
    listing = await (await client.get("/collections/users/items", params={"limit": "1000"})).json()
    assert sorted(item["key"] for item in listing["items"]) == sorted(keys)


async def test_braces_in_a_key_reach_every_item_route(client: Client) -> None:
    # '{' and '}' once answered 404 "no route": sent escaped and sent raw.
    for path in ("/collections/users/items/%7Bid%7D", "/collections/users/items/{id}"):
        url = URL(path, encoded=True)
        assert (await put(client, url, "braces")).status in (200, 201)
        assert await (await client.get(url)).json() == "braces"
        assert (await client.head(url)).status == 200
        assert await (await client.delete(url)).json() == "braces"
        assert (await client.get(url)).status == 404


async def test_braces_in_a_collection_name_are_an_invalid_name(client: Client) -> None:
    response = await client.get(URL("/collections/%7Bname%7D/items", encoded=True))
    assert response.status == 400
    assert (await response.json())["code"] == "invalid-collection-name"


async def test_a_percent_sign_is_sent_as_25(client: Client) -> None:
    literal = URL("/collections/c/items/100%25FF", encoded=True)
    assert (await put(client, literal, "literal")).status == 201
    assert await (await client.get(literal)).json() == "literal"
    listing = await (await client.get("/collections/c/items", params={"keys_only": "true"})).json()
    assert listing["items"] == [{"key": "100%FF"}]


async def test_typed_keys(client: Client) -> None:
    await put(client, item_url("1", key_type="int"), "int one")
    # 1.0 is the same key as 1, as in a dict
    same = await client.get(item_url("1.0", key_type="float"))
    assert await same.json() == "int one"
    # "1" (str) and true (bool) are keys of their own
    assert (await client.get(item_url("1"))).status == 404
    assert (await client.get(item_url("true", key_type="bool"))).status == 404
    await put(client, item_url("1"), "str one")
    await put(client, item_url("true", key_type="bool"), "bool true")
    await put(client, item_url("2.5", key_type="float"), "two and a half")
    listing = await (await client.get("/collections/users/items")).json()
    keys = {(type(item["key"]).__name__, item["key"]) for item in listing["items"]}
    assert keys == {("int", 1), ("str", "1"), ("bool", True), ("float", 2.5)}
    assert await (await client.get(item_url("1", key_type="int"))).json() == "int one"


async def test_if_none_match_creates_only_when_absent(client: Client) -> None:
    first = await put(client, item_url("k"), "first", **{"If-None-Match": "*"})
    assert first.status == 201
    second = await put(client, item_url("k"), "second", **{"If-None-Match": "*"})
    assert second.status == 412
    assert second.content_type == "application/problem+json"
    problem = await second.json()
    assert problem["code"] == "precondition-failed"
    assert problem["current"] == "first"
    assert problem["etag"] == first.headers["ETag"]
    assert await (await client.get(item_url("k"))).json() == "first"


async def test_if_match_is_compare_and_set(client: Client) -> None:
    first = await put(client, item_url("k"), 1)
    tag = first.headers["ETag"]
    swapped = await put(client, item_url("k"), 2, **{"If-Match": tag})
    assert swapped.status == 200
    stale = await put(client, item_url("k"), 3, **{"If-Match": tag})
    assert stale.status == 412
    problem = await stale.json()
    assert problem["current"] == 2
    assert problem["etag"] == swapped.headers["ETag"]
    absent = await put(client, item_url("nothing"), 1, **{"If-Match": tag})
    assert absent.status == 412
    assert (await absent.json())["current"] is None

    wrong_delete = await client.delete(item_url("k"), headers={"If-Match": tag})
    assert wrong_delete.status == 412
    deleted = await client.delete(item_url("k"), headers={"If-Match": swapped.headers["ETag"]})
    assert deleted.status == 200
    assert await deleted.json() == 2


async def test_get_with_matching_if_none_match_is_not_modified(client: Client) -> None:
    tag = (await put(client, item_url("k"), {"big": "value"})).headers["ETag"]
    for header in (tag, f"W/{tag}", f'"other", {tag}', "*"):
        cached = await client.get(item_url("k"), headers={"If-None-Match": header})
        assert cached.status == 304, header
        assert cached.headers["ETag"] == tag
    changed = await client.get(item_url("k"), headers={"If-None-Match": '"other", W/"x"'})
    assert changed.status == 200
    assert await changed.json() == {"big": "value"}


async def test_post_creates_time_ordered_keys(client: Client) -> None:
    keys = []
    for n in range(3):
        response = await client.post("/collections/log/items", json={"n": n})
        assert response.status == 201
        body = await response.json()
        assert response.headers["Location"] == f"/collections/log/items/{body['key']}"
        assert len(body["key"]) == 26
        keys.append(body["key"])
        got = await client.get(response.headers["Location"])
        assert await got.json() == {"n": n}
    assert keys == sorted(keys)


async def test_listing_pages_return_every_item_exactly_once(client: Client) -> None:
    batch = [{"op": "put", "key": f"k{n:03}", "value": n} for n in range(57)]
    assert (await client.post("/collections/c/batch", json={"ops": batch})).status == 200
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "10", **({"cursor": cursor} if cursor else {})}
        page = await (await client.get("/collections/c/items", params=params)).json()
        for item in page["items"]:
            if item["key"].endswith("x"):  # added during the walk
                seen.append(item["key"])
                continue
            assert item["value"] == int(item["key"][1:])
            seen.append(item["key"])
            # writes while walking do not disturb the walk: replacing a key,
            # adding keys behind and ahead of the cursor
            await put(client, item_url(item["key"], "c"), item["value"])
            await put(client, item_url(item["key"] + "x", "c"), -1)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    original = [key for key in seen if not key.endswith("x")]
    assert original == [f"k{n:03}" for n in range(57)]  # each exactly once, in order
    assert len(seen) == len(set(seen))  # nothing twice, added keys included


async def test_listing_prefix_and_keys_only(client: Client) -> None:
    ops: list[dict[str, Any]] = [
        {"op": "put", "key": k, "value": k} for k in ["a1", "a2", "b1", "ab"]
    ]
    ops.append({"op": "put", "key": 5, "value": 5})
    await client.post("/collections/c/batch", json={"ops": ops})
    page = await (await client.get("/collections/c/items", params={"prefix": "a"})).json()
    assert [item["key"] for item in page["items"]] == ["a1", "a2", "ab"]
    keys_only = await (
        await client.get("/collections/c/items", params={"prefix": "a", "keys_only": "true"})
    ).json()
    assert keys_only["items"] == [{"key": "a1"}, {"key": "a2"}, {"key": "ab"}]


async def test_batch_applies_ops_in_order(client: Client) -> None:
    await put(client, item_url("old"), "old value")
    ops = [
        {"op": "get", "key": "x"},
        {"op": "put", "key": "x", "value": 1},
        {"op": "get", "key": "x"},
        {"op": "put", "key": "x", "value": 2},
        {"op": "delete", "key": "x"},
        {"op": "get", "key": "x"},
        {"op": "delete", "key": "old"},
        {"op": "put", "key": 7, "value": "seven"},
        {"op": "get", "key": 7.0},
    ]
    response = await client.post("/collections/users/batch", json={"ops": ops})
    assert response.status == 200
    results = (await response.json())["results"]
    assert [r["status"] for r in results] == [404, 201, 200, 200, 200, 404, 200, 201, 200]
    assert results[2]["value"] == 1
    assert results[4]["value"] == 2
    assert results[6]["value"] == "old value"
    assert results[8]["value"] == "seven"
    assert "value" not in results[1]
    assert (await client.get(item_url("x"))).status == 404
    assert (await client.get(item_url("old"))).status == 404
    assert await (await client.get(item_url("7", key_type="int"))).json() == "seven"


async def test_batch_delete_then_put_answers_the_removed_value(client: Client) -> None:
    await put(client, item_url("x"), {"a": 1})
    ops = [{"op": "delete", "key": "x"}, {"op": "put", "key": "x", "value": 2}]
    response = await client.post("/collections/users/batch", json={"ops": ops})
    results = orjson.loads(await response.read())["results"]
    assert [r["status"] for r in results] == [200, 201]
    assert results[0]["value"] == {"a": 1}
    assert await (await client.get(item_url("x"))).json() == 2


async def test_batch_of_gets(client: Client) -> None:
    await put(client, item_url("a"), "A")
    ops = [{"op": "get", "key": "a"}, {"op": "get", "key": "b"}, {"op": "get", "key": "a"}]
    results = (await (await client.post("/collections/users/batch", json={"ops": ops})).json())[
        "results"
    ]
    assert [r["status"] for r in results] == [200, 404, 200]
    assert results[0]["value"] == results[2]["value"] == "A"


BIG = 123456789012345678901234567890  # beyond 64 bits: orjson alone would make it a float


async def test_integers_beyond_64_bits_keep_every_digit(client: Client) -> None:
    ops = b'{"ops": [{"op": "put", "key": "v", "value": [%d, -%d]}, ' % (BIG, BIG)
    ops += b'{"op": "put", "key": %d, "value": 1}]}' % BIG
    assert (await client.post("/collections/big/batch", data=ops, headers=JSON)).status == 200
    assert await (await client.get(item_url("v", "big"))).read() == b"[%d,-%d]" % (BIG, BIG)

    # The batch key and the path key name the same item.
    by_path = item_url(str(BIG), "big", key_type="int")
    assert await (await client.get(by_path)).read() == b"1"
    replaced = await client.put(by_path, data=b"2", headers=JSON)
    assert replaced.status == 200
    assert b'"key":%d,' % BIG in await replaced.read()

    listing = await (
        await client.get("/collections/big/items", params={"keys_only": "true"})
    ).read()
    assert b'{"key":%d}' % BIG in listing
    assert b'{"key":"v"}' in listing


async def test_values_nested_deeply_are_stored_or_refused_clearly(client: Client) -> None:
    def nested(depth: int, inner: bytes = b"") -> bytes:
        return b"[" * depth + inner + b"]" * depth

    # A PUT stores the bytes as sent, whatever they hold.
    deepest = nested(1000, b"%d" % BIG)
    assert (await put_bytes(client, item_url("p", "c"), deepest)).status == 201
    assert await (await client.get(item_url("p", "c"))).read() == deepest
    # A batch has to read its values: past ~980 levels, with integers beyond
    # 64 bits, it says so instead of losing their digits.
    body = b'{"ops": [{"op": "put", "key": "p", "value": %s}]}' % deepest
    refused = await client.post("/collections/c/batch", data=body, headers=JSON)
    assert refused.status == 400
    assert "nests too deeply" in (await refused.json())["detail"]

    deep = b'{"ops": [{"op": "put", "key": "d", "value": %s}]}' % nested(300)
    ok = await client.post("/collections/c/batch", data=deep, headers=JSON)
    assert ok.status == 200
    assert await (await client.get(item_url("d", "c"))).read() == nested(300)

    too_deep = b'{"ops": [{"op": "put", "key": "d", "value": %s}]}' % nested(1020)
    refused = await client.post("/collections/c/batch", data=too_deep, headers=JSON)
    assert refused.status == 400
    problem = await refused.json()
    assert problem["errors"] == [
        {"index": 0, "detail": "value nests too deeply to store; flatten it"}
    ]
    assert await (await client.get(item_url("d", "c"))).read() == nested(300)


async def test_collections_count_list_and_clear(client: Client) -> None:
    for name, n in (("alpha", 3), ("beta", 2)):
        ops = [{"op": "put", "key": i, "value": i} for i in range(n)]
        await client.post(f"/collections/{name}/batch", json={"ops": ops})
    listing = await (await client.get("/collections")).json()
    assert listing == {"collections": [{"name": "alpha"}, {"name": "beta"}], "next_cursor": None}
    first = await (await client.get("/collections", params={"limit": "1"})).json()
    assert first["collections"] == [{"name": "alpha"}]
    rest = await (await client.get("/collections", params={"cursor": first["next_cursor"]})).json()
    assert rest["collections"] == [{"name": "beta"}]

    assert await (await client.get("/collections/alpha")).json() == {"name": "alpha", "count": 3}
    cleared = await client.delete("/collections/alpha")
    assert await cleared.json() == {"name": "alpha", "deleted": 3}
    assert await (await client.get("/collections/alpha")).json() == {"name": "alpha", "count": 0}
    listing = await (await client.get("/collections")).json()
    assert listing["collections"] == [{"name": "beta"}]


async def test_service_info_publishes_limits(client: Client, any_config: Any) -> None:
    info = await (await client.get("/")).json()
    assert info["service"] == "itemstore"
    assert info["backend"] == any_config.backend
    assert info["limits"]["max_key_bytes"] == 1000
    assert info["limits"]["max_value_bytes"] == 350 * 1024
    assert info["limits"]["max_batch_ops"] == 100
