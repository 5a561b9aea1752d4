"""POST /collections/{name}/query on the real app, on every backend: filters,
bounded pages and their cursors, counts, sorting by a value, and the 400s."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from aiohttp.web import Application, Request

from itemstore_service.app import create_app
from itemstore_service.config import Config
from itemstore_wire.contract import Limits

Client = TestClient[Request, Application]
SCAN = 7  # items one request may read, small to make many pages


@pytest.fixture
async def qclient(any_config: Config, aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    config = dataclasses.replace(any_config, limits=Limits(max_query_scan=SCAN))
    client = await aiohttp_client(create_app(config))
    people = {
        f"p{i:02}": {"age": 20 + i % 9, "city": ["Paris", "Lyon", "Nice"][i % 3]} for i in range(20)
    }
    people["p05"]["nick"] = "Zed"
    people["p07"] = {"city": "Paris"}  # no age
    response = await client.post(
        "/collections/people/batch",
        json={"ops": [{"op": "put", "key": k, "value": v} for k, v in people.items()]},
    )
    assert response.status == 200
    return client


async def query(client: Client, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    response = await client.post("/collections/people/query", json=body)
    answer: dict[str, Any] = await response.json()
    assert response.status == status, answer
    return answer


async def walk(client: Client, body: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """Every item over the cursors, and how many requests it took."""
    items: list[dict[str, Any]] = []
    cursor, requests = None, 0
    while True:
        answer = await query(client, {**body, "cursor": cursor})
        requests += 1
        assert answer["scanned"] <= SCAN
        assert len(answer["items"]) <= body.get("limit", 100)
        items += answer["items"]
        cursor = answer["next_cursor"]
        if cursor is None:
            return items, requests


async def test_filters_walk_every_match_once_in_bounded_pages(qclient: Client) -> None:
    items, requests = await walk(qclient, {"where": {"city": "Paris", "age?gte": 25}, "limit": 2})
    expected = [f"p{i:02}" for i in range(0, 20, 3) if 20 + i % 9 >= 25 and i != 7]
    assert [item["key"] for item in items] == expected
    assert items[0]["value"] == {"age": 26, "city": "Paris"}
    assert requests >= 20 // SCAN  # no request read more than its share


async def test_any_of_where_keys_only_and_key_conditions(qclient: Client) -> None:
    body = {"where": [{"nick": "Zed"}, {"age?exists": False}], "keys_only": True}
    items, _ = await walk(qclient, body)
    assert items == [{"key": "p05"}, {"key": "p07"}]
    items, _ = await walk(qclient, {"where": {"@key?gte": "p18"}})
    assert [item["key"] for item in items] == ["p18", "p19"]


async def test_count_adds_up_over_the_cursors(qclient: Client) -> None:
    total, cursor = 0, None
    while True:
        answer = await query(qclient, {"where": {"city": "Lyon"}, "count": True, "cursor": cursor})
        assert answer["items"] == [] and answer["scanned"] <= SCAN
        total += answer["count"]
        cursor = answer["next_cursor"]
        if cursor is None:
            break
    assert total == 6  # i % 3 == 1, but p07 lives in Paris


async def test_sort_by_a_value_in_a_small_collection(qclient: Client) -> None:
    response = await qclient.post(
        "/collections/small/batch",
        json={
            "ops": [
                {"op": "put", "key": "a", "value": {"n": 2}},
                {"op": "put", "key": "b", "value": {"n": 1.5}},
                {"op": "put", "key": "c", "value": {}},
                {"op": "put", "key": "d", "value": {"n": "x"}},
                {"op": "put", "key": "e", "value": {"n": 2}},
            ]
        },
    )
    assert response.status == 200

    async def keys(sort: str) -> list[str]:
        seen: list[str] = []
        cursor = None
        while True:
            response = await qclient.post(
                "/collections/small/query", json={"sort": sort, "limit": 2, "cursor": cursor}
            )
            answer = await response.json()
            seen += [item["key"] for item in answer["items"]]
            cursor = answer["next_cursor"]
            if cursor is None:
                return seen

    # Numbers, then strings; items without the path last, ties in key order.
    assert await keys("n") == ["b", "a", "e", "d", "c"]
    assert await keys("-n") == ["a", "e", "b", "d", "c"]
    assert await keys("-@key") == ["e", "d", "c", "b", "a"]


async def test_a_value_sort_over_more_than_one_scan_is_refused(qclient: Client) -> None:
    answer = await query(qclient, {"sort": "-age"}, 400)
    assert answer["code"] == "query-too-broad"
    assert "sort by key" in answer["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {"where": {"age?about": 3}},
        {"where": {"age?in": 3}},
        {"where": {"age?gt": True}},
        {"where": {"age?pfx": 1}},
        {"where": {"age": {"an": "object"}}},
        {"where": {"a..b": 1}},
        {"where": []},
        {"where": "age > 3"},
        {"sort": 3},
        {"limit": 0},
        {"limit": "10"},
        {"count": "yes"},
        {"select": ["age"]},
        [],
    ],
)
async def test_bad_queries_are_400_saying_what_to_fix(qclient: Client, body: object) -> None:
    response = await qclient.post("/collections/people/query", json=body)
    answer = await response.json()
    assert response.status == 400
    assert response.content_type == "application/problem+json"
    assert answer["code"] == "invalid-query"


async def test_a_cursor_of_another_query_is_refused(qclient: Client) -> None:
    first = await query(qclient, {"where": {"city": "Paris"}, "limit": 1})
    answer = await query(qclient, {"where": {"city": "Nice"}, "cursor": first["next_cursor"]}, 400)
    assert answer["code"] == "invalid-cursor"
    answer = await query(qclient, {"cursor": "not-a-cursor"}, 400)
    assert answer["code"] == "invalid-cursor"


async def test_the_scan_limit_is_published(qclient: Client) -> None:
    info = await (await qclient.get("/")).json()
    assert info["limits"]["max_query_scan"] == SCAN


async def test_numbers_past_64_bits_are_compared_not_refused(qclient: Client) -> None:
    answer = await query(qclient, {"where": {"age?lt": 10**30}, "count": True})
    assert answer["count"] >= 0
    answer = await query(qclient, {"where": {"age": -(10**25)}})
    assert answer["items"] == []


async def test_key_conditions_narrow_what_is_read(qclient: Client) -> None:
    scanned, cursor = 0, None
    while True:
        body = {"where": {"@key?pfx": "p1", "city": "Paris"}, "count": True, "cursor": cursor}
        answer = await query(qclient, body)
        scanned += answer["scanned"]
        cursor = answer["next_cursor"]
        if cursor is None:
            break
    assert scanned == 10  # p10 to p19, not the 20 items
    # Few enough items past "p15" for one request: they may be sorted by a value.
    answer = await query(qclient, {"where": {"@key?gt": "p15"}, "sort": "-age"})
    assert [item["key"] for item in answer["items"]] == ["p17", "p16", "p19", "p18"]
    assert answer["scanned"] == 4
