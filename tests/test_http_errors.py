"""Bad input always gets a 4xx problem+json that says what to fix, and
nothing of a rejected request is stored."""

from __future__ import annotations

import io
import json
import socket
import time
import urllib.request
from base64 import urlsafe_b64encode
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from aiohttp.web import Application, Request

from itemstore_service.app import create_app
from itemstore_service.config import Config
from itemstore_service.query_parameters import ACCEPTED
from tests.live_service import itemstore_serve

Client = TestClient[Request, Application]
JSON = {"Content-Type": "application/json"}


async def problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    body: dict[str, Any] = await response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"urn:itemstore:problem:{code}"
    assert body["title"]
    assert body["detail"]
    return body


@pytest.mark.parametrize(
    ("body", "detail_has"),
    [
        (b"{", "not JSON"),
        (b"NaN", "NaN"),
        (b"[Infinity]", "NaN"),
        (b"", "not JSON"),
        (b"\x0c1\x0b", "not JSON"),  # form feed and vertical tab are not JSON white space
        (b"1e400", "range of a double"),
    ],
)
async def test_invalid_json_is_400(client: Client, body: bytes, detail_has: str) -> None:
    response = await client.put("/collections/c/items/k", data=body, headers=JSON)
    assert detail_has in (await problem(response, 400, "invalid-json"))["detail"]
    assert (await client.get("/collections/c/items/k")).status == 404


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"],
)
async def test_wrong_content_type_is_415(client: Client, content_type: str) -> None:
    response = await client.put(
        "/collections/c/items/k", data=b"1", headers={"Content-Type": content_type}
    )
    body = await problem(response, 415, "unsupported-media-type")
    assert "application/json" in body["detail"] or "UTF-8" in body["detail"]


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/collections/c/items/" + "x" * 1001, "invalid-key"),
        ("/collections/c/items/%C3%A9" * 1 + "e" * 999, "invalid-key"),
        ("/collections/c/items/1.5?key_type=int", "invalid-key"),
        ("/collections/c/items/abc?key_type=float", "invalid-key"),
        ("/collections/c/items/nan?key_type=float", "invalid-key"),
        ("/collections/c/items/yes?key_type=bool", "invalid-key"),
        ("/collections/c/items/k?key_type=bytes", "invalid-key"),
        ("/collections/c/items/" + "1" * 4301 + "?key_type=int", "invalid-key"),
        ("/collections/c/items/1" + "0" * 309 + "?key_type=int", "invalid-key"),
        ("/collections/c/items/1e-400?key_type=float", "invalid-key"),
        # Escapes are decoded strictly: otherwise '%FF' would name the item of '%25FF'.
        ("/collections/c/items/%FF", "invalid-key"),
        ("/collections/c/items/%ED%A0%80", "invalid-key"),
        ("/collections/c/items/%C0%AF", "invalid-key"),
        ("/collections/c/items/%zz", "invalid-key"),
        ("/collections/c/items/100%", "invalid-key"),
        ("/collections/bad%20name/items/k", "invalid-collection-name"),
        ("/collections/" + "n" * 129 + "/items/k", "invalid-collection-name"),
        ("/collections/a%2Fb/items/k", "invalid-collection-name"),
    ],
)
async def test_bad_keys_and_names_are_400(client: Client, path: str, code: str) -> None:
    from yarl import URL

    response = await client.put(URL(path, encoded=True), data=b"1", headers=JSON)
    await problem(response, 400, code)
    assert (await client.get(URL(path, encoded=True))).status == 400


async def test_empty_key_is_not_a_route(client: Client) -> None:
    # An empty key segment does not match the item route at all.
    response = await client.put("/collections/c/items/", data=b"1", headers=JSON)
    assert response.status in (404, 405)
    assert response.content_type == "application/problem+json"


async def test_value_over_the_limit_is_413(client: Client) -> None:
    big = b'"' + b"x" * (350 * 1024) + b'"'
    response = await client.put("/collections/c/items/k", data=big, headers=JSON)
    assert "limit" in (await problem(response, 413, "value-too-large"))["detail"]
    just_fits = b'"' + b"x" * (350 * 1024 - 2) + b'"'
    assert (await client.put("/collections/c/items/k", data=just_fits, headers=JSON)).status == 201


async def test_request_over_max_request_bytes_is_413(client: Client) -> None:
    huge = io.BytesIO(b"[" + b"1," * (8 * 1024 * 1024) + b"1]")
    response = await client.put("/collections/c/items/k", data=huge, headers=JSON)
    await problem(response, 413, "value-too-large")


async def test_unknown_route_is_404_and_wrong_method_is_405(client: Client) -> None:
    await problem(await client.get("/nowhere"), 404, "not-found")
    wrong = await client.patch("/collections/c/items", data=b"1", headers=JSON)
    body = await problem(wrong, 405, "method-not-allowed")
    assert "POST" in body["allowed"]
    assert "POST" in wrong.headers["Allow"]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"limit": "0"}, "invalid-input"),
        ({"limit": "1001"}, "invalid-input"),
        ({"limit": "ten"}, "invalid-input"),
        ({"keys_only": "maybe"}, "invalid-input"),
        ({"keys_only": "1"}, "invalid-input"),
        ({"keys_only": "True"}, "invalid-input"),
        ({"keys_only": ""}, "invalid-input"),
        ({"cursor": "!!!not-base64!!!"}, "invalid-cursor"),
        ({"cursor": "!!!"}, "invalid-cursor"),
        ({"cursor": "a"}, "invalid-cursor"),
        ({"cursor": "YQ"}, "invalid-cursor"),  # base64 of "a": not a position
        ({"cursor": "bjEuMA"}, "invalid-cursor"),  # "n1.0": not how 1 is written
        ({"cursor": "bi0w"}, "invalid-cursor"),  # "n-0"
        ({"cursor": urlsafe_b64encode(b"s" + b"a" * 1100).decode()}, "invalid-cursor"),
        ({"cursor": "7aCA"}, "invalid-cursor"),  # a lone surrogate
        ({"limit": "\u00b2"}, "invalid-input"),  # str.isdigit() says yes, int() says no
        ({"limit": "\uff15"}, "invalid-input"),
        ({"limit": "1" * 4301}, "invalid-input"),
    ],
)
async def test_bad_listing_parameters_are_400(
    client: Client, query: dict[str, str], code: str
) -> None:
    await problem(await client.get("/collections/c/items", params=query), 400, code)


@pytest.mark.parametrize("query", [{"cursor": "7aCA"}, {"cursor": "AA"}, {"limit": "\u00b2"}])
async def test_bad_collection_listing_parameters_are_400(
    client: Client, query: dict[str, str]
) -> None:
    response = await client.get("/collections", params=query)
    await problem(response, 400, "invalid-cursor" if "cursor" in query else "invalid-input")


@pytest.mark.parametrize(
    ("path", "query", "accepted"),
    [
        ("/collections/c/items", "prefx=a", ["cursor", "keys_only", "limit", "prefix"]),
        ("/collections/c", "prefix=a", []),
        ("/collections/c/items/k", "key_typ=int", ["consistent", "key_type"]),
        ("/collections/c/items", "limit=1&limit=2", ["cursor", "keys_only", "limit", "prefix"]),
    ],
)
async def test_an_unexpected_query_parameter_is_400_naming_it(
    client: Client, path: str, query: str, accepted: list[str]
) -> None:
    await client.put("/collections/c/items/k", data=b"1", headers=JSON)
    response = await client.get(f"{path}?{query}")
    body = await problem(response, 400, "unexpected-parameter")
    name = query.partition("=")[0]
    assert (body["parameter"], body["accepted"]) == (name, accepted)
    assert repr(name) in body["detail"]


async def test_every_route_refuses_a_query_parameter_it_does_not_take(client: Client) -> None:
    # The check runs before a body is read or storage is touched: no body needed.
    for method, template in ACCEPTED:
        path = template.replace("{name}", "c").replace("{key}", "k").replace("{id}", "k")
        path = path.replace("{file}", "console.js")
        response = await client.request(method, path, params={"bogus": "1"})
        body = await problem(response, 400, "unexpected-parameter")
        assert body["parameter"] == "bogus", (method, template)
    assert await (await client.get("/collections/c/items")).json() == {
        "items": [],
        "next_cursor": None,
    }


async def test_an_unknown_route_is_404_whatever_its_query(client: Client) -> None:
    await problem(await client.get("/nowhere?bogus=1"), 404, "not-found")


async def test_a_prefix_longer_than_any_key_matches_nothing(client: Client) -> None:
    await client.put("/collections/c/items/k", data=b"1", headers=JSON)
    response = await client.get("/collections/c/items", params={"prefix": "k" * 1100})
    assert await response.json() == {"items": [], "next_cursor": None}


async def test_bad_conditional_headers_are_400(client: Client) -> None:
    for headers in (
        {"If-Match": "no-quotes"},
        {"If-None-Match": '"abc"'},
        {"If-Match": '"0000000000000000"', "If-None-Match": "*"},  # could never both hold
    ):
        response = await client.put("/collections/c/items/k", data=b"1", headers=JSON | headers)
        await problem(response, 400, "invalid-input")
    assert (await client.get("/collections/c/items/k")).status == 404
    assert (await client.put("/collections/c/items/k", data=b"1", headers=JSON)).status == 201
    delete = await client.delete("/collections/c/items/k", headers={"If-None-Match": "*"})
    await problem(delete, 400, "invalid-input")
    assert (await client.get("/collections/c/items/k")).status == 200


async def test_invalid_batch_writes_nothing_and_names_each_bad_op(client: Client) -> None:
    ops = [
        {"op": "put", "key": "fine", "value": 1},
        {"op": "put", "key": "", "value": 1},
        {"op": "frobnicate", "key": "k"},
        {"op": "put", "key": "no-value"},
        {"op": "get", "key": [1]},
        {"op": "put", "key": "big", "value": "x" * (350 * 1024)},
        "not an object",
        {"op": "delete"},
    ]
    response = await client.post("/collections/c/batch", json={"ops": ops})
    body = await problem(response, 400, "invalid-batch")
    assert [error["index"] for error in body["errors"]] == [1, 2, 3, 4, 5, 6, 7]
    assert all(error["detail"] for error in body["errors"])
    assert (await client.get("/collections/c/items/fine")).status == 404


@pytest.mark.parametrize(
    "document",
    [{}, {"ops": []}, {"ops": "x"}, [1], {"ops": [{"op": "get", "key": n} for n in range(101)]}],
)
async def test_batch_shape_errors(client: Client, document: Any) -> None:
    await problem(await client.post("/collections/c/batch", json=document), 400, "invalid-batch")


async def test_token_protects_data_routes_but_not_probes(
    sqlite_config: Config, aiohttp_client: Any
) -> None:
    from dataclasses import replace

    client = await aiohttp_client(create_app(replace(sqlite_config, token="s3cret")))
    await problem(await client.get("/collections/c/items/k"), 401, "unauthorized")
    wrong = await client.get("/collections", headers={"Authorization": "Bearer nope"})
    await problem(wrong, 401, "unauthorized")
    assert (await client.get("/")).status == 200
    good = {"Authorization": "Bearer s3cret"}
    assert (await client.get("/collections/c/items/k", headers=good)).status == 404
    # The scheme is case-insensitive (RFC 9110), the token is not.
    lower = {"Authorization": "bearer s3cret"}
    assert (await client.get("/collections/c/items/k", headers=lower)).status == 404
    for header in ("bearer S3CRET", "Basic s3cret", "s3cret", "Bearer"):
        response = await client.get("/collections", headers={"Authorization": header})
        await problem(response, 401, "unauthorized")


def test_a_client_gone_mid_body_is_no_server_error(tmp_path: Path) -> None:
    log = tmp_path / "service.log"
    with itemstore_serve(tmp_path, log) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(
                b"PUT /collections/c/items/k HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
            )
            time.sleep(0.2)  # the handler is waiting for the rest of the body
        time.sleep(0.3)  # the server notices the closed connection
        with urllib.request.urlopen(url + "/collections/c") as answer:
            assert json.load(answer)["count"] == 0
    assert '"level":"error"' not in log.read_text()
