"""POST /transactions on the real app, on every backend: all or nothing, the
412 naming the failing op, ops refused up front, and Idempotency-Key."""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from aiohttp.web import Application, Request

Client = TestClient[Request, Application]


@pytest.fixture
def tx_client(client: Client, request: pytest.FixtureRequest) -> Client:
    if request.node.callspec.params.get("any_config") == "dynalite":
        pytest.skip("dynalite implements no TransactWriteItems")
    return client


async def put(client: Client, collection: str, key: str, value: object) -> str:
    response = await client.put(f"/collections/{collection}/items/{key}", json=value)
    assert response.status in (200, 201)
    return response.headers["ETag"]


async def get(client: Client, collection: str, key: str, key_type: str = "str") -> Any:
    response = await client.get(
        f"/collections/{collection}/items/{key}",
        params={"consistent": "true", "key_type": key_type},
    )
    return (await response.json()) if response.status == 200 else None


async def transact(
    client: Client, ops: list[Any], status: int = 200, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    response = await client.post("/transactions", json={"ops": ops}, headers=headers or {})
    answer: dict[str, Any] = await response.json()
    assert response.status == status, answer
    return answer


async def test_ops_across_collections_apply_together(tx_client: Client) -> None:
    ada = await put(tx_client, "users", "ada", {"n": 1})
    await put(tx_client, "stats", "gone", 0)
    answer = await transact(
        tx_client,
        [
            {"op": "put", "collection": "users", "key": "ada", "value": {"n": 2}, "if_match": ada},
            {"op": "put", "collection": "stats", "key": 7, "value": "seven", "if_none_match": "*"},
            {"op": "delete", "collection": "stats", "key": "gone"},
            {"op": "put", "collection": "stats", "key": "1.5", "key_type": "float", "value": 1},
        ],
    )
    results = answer["results"]
    assert [sorted(r) for r in results] == [["etag"], ["etag"], [], ["etag"]]
    assert await get(tx_client, "users", "ada") == {"n": 2}
    response = await tx_client.get("/collections/users/items/ada")
    assert response.headers["ETag"] == results[0]["etag"]
    assert await get(tx_client, "stats", "7", "int") == "seven"
    assert await get(tx_client, "stats", "gone") is None
    assert await get(tx_client, "stats", "1.5", "float") == 1


async def test_a_failed_condition_writes_nothing_and_names_its_op(tx_client: Client) -> None:
    ada = await put(tx_client, "users", "ada", {"n": 1})
    await put(tx_client, "users", "bob", {"n": 1})
    bob_now = await put(tx_client, "users", "bob", {"n": 2})
    ops = [
        {"op": "put", "collection": "users", "key": "carol", "value": 3},
        {"op": "check", "collection": "users", "key": "ada", "if_match": ada},
        {"op": "delete", "collection": "users", "key": "bob", "if_match": '"stale"'},
    ]
    answer = await transact(tx_client, ops, 412)
    assert (answer["code"], answer["index"]) == ("precondition-failed", 2)
    assert (answer["current"], answer["etag"]) == ({"n": 2}, bob_now)
    assert await get(tx_client, "users", "carol") is None  # nothing written
    # A create-only op on an item that exists, and a check of one that does not.
    answer = await transact(
        tx_client,
        [{"op": "check", "collection": "users", "key": "nobody", "if_match": ada}],
        412,
    )
    assert (answer["index"], answer["current"], answer["etag"]) == (0, None, None)
    answer = await transact(
        tx_client,
        [{"op": "put", "collection": "users", "key": "ada", "value": 0, "if_none_match": "*"}],
        412,
    )
    assert (answer["index"], answer["current"]) == (0, {"n": 1})


async def test_a_retry_with_its_idempotency_key_writes_the_same_versions(tx_client: Client) -> None:
    """What lets DynamoDB's ClientRequestToken accept a retry: the retry's
    request is the first one's, versions included (it refuses other
    parameters). moto ignores the token and applies both; the answers and the
    stored ETag are the same either way."""
    ops = [{"op": "put", "collection": "log", "key": "e1", "value": "once"}]
    key = {"Idempotency-Key": "3d0f6c1a-same-request"}
    first = await transact(tx_client, ops, headers=key)
    assert await transact(tx_client, ops, headers=key) == first
    response = await tx_client.get("/collections/log/items/e1")
    assert response.headers["ETag"] == first["results"][0]["etag"]
    other = await transact(tx_client, ops, headers={"Idempotency-Key": "another"})
    assert other != first


async def test_idempotency_key_applies_a_retry_once(
    tx_client: Client, request: pytest.FixtureRequest
) -> None:
    if request.node.callspec.params["any_config"] == "dynamodb":
        pytest.skip("moto ignores ClientRequestToken, which DynamoDB honours for 10 minutes")
    counter = await put(tx_client, "stats", "n", 1)
    ops = [
        {"op": "put", "collection": "stats", "key": "n", "value": 2, "if_match": counter},
        {"op": "put", "collection": "log", "key": "e1", "value": "n is 2"},
    ]
    key = {"Idempotency-Key": "4b7c2e5e-retry-me"}
    first = await transact(tx_client, ops, headers=key)
    # Sent again (say after a 503): the if_match no longer holds, yet it
    # succeeds, as the first attempt did, and writes nothing more.
    again = await transact(tx_client, ops, headers=key)
    assert again == first
    response = await tx_client.get("/collections/stats/items/n")
    assert (await response.json(), response.headers["ETag"]) == (2, first["results"][0]["etag"])
    other = [{"op": "put", "collection": "log", "key": "e2", "value": "other"}]
    answer = await transact(tx_client, other, 422, headers=key)
    assert answer["code"] == "idempotency-key-reused"
    assert await get(tx_client, "log", "e2") is None
    # Without the key the same ops are a new transaction: the condition fails.
    assert (await transact(tx_client, ops, 412))["index"] == 0


@pytest.mark.parametrize(
    ("ops", "detail"),
    [
        ([{"op": "put", "collection": "c", "key": "a"}], "put op has no value"),
        ([{"op": "merge", "collection": "c", "key": "a"}], "op must be put, patch, delete, check"),
        ([{"op": "patch", "collection": "c", "key": "a"}], 'takes "change"'),
        ([{"op": "patch", "collection": "c", "key": "a", "change": {"add": {}}}], "add"),
        (
            [{"op": "patch", "collection": "c", "key": "a", "merge": {}, "if_none_match": "*"}],
            "if_match only",
        ),
        (
            [{"op": "put", "collection": "c", "key": "a", "value": 1, "merge": {}}],
            "takes no change",
        ),
        ([{"op": "delete", "collection": "c", "key": "a", "expire_in": 5}], "takes no expire_in"),
        ([{"op": "put", "collection": "c", "key": "a", "value": 1, "expire_in": 0}], "at least 1"),
        (
            [{"op": "patch", "collection": "c", "key": "a", "merge": {}, "expire_at": 1}],
            "in the future",
        ),
        ([{"op": "check", "collection": "c", "key": "a"}], "needs if_match or if_none_match"),
        ([{"op": "delete", "collection": "c", "key": "a", "if_none_match": "*"}], "if_match only"),
        ([{"op": "delete", "collection": "c/d", "key": "a"}], "collection must be"),
        ([{"op": "delete", "collection": "c", "key": "a", "if_match": "bare"}], "quotes included"),
        ([{"op": "delete", "collection": "c", "key": "x", "key_type": "int"}], "not an integer"),
        (
            [
                {"op": "delete", "collection": "c", "key": 1},
                {"op": "put", "collection": "c", "key": 1.0, "value": 0},
            ],
            "op 1 is on this item already",  # op 0 is the valid put before them
        ),
    ],
)
async def test_bad_ops_are_refused_before_anything_is_written(
    tx_client: Client, ops: list[dict[str, Any]], detail: str
) -> None:
    answer = await transact(
        tx_client, [{"op": "put", "collection": "c", "key": "first", "value": 1}, *ops], 400
    )
    assert answer["code"] == "invalid-transaction"
    assert answer["errors"][0]["index"] == len(ops)
    assert detail in answer["errors"][0]["detail"]
    assert await get(tx_client, "c", "first") is None


async def test_the_op_limit_is_published_and_enforced(tx_client: Client) -> None:
    limit = (await (await tx_client.get("/")).json())["limits"]["max_transaction_ops"]
    assert limit == 100
    ops = [{"op": "put", "collection": "c", "key": i, "value": i} for i in range(limit + 1)]
    assert "at most 100 ops" in (await transact(tx_client, ops, 400))["detail"]
    assert len((await transact(tx_client, ops[:limit]))["results"]) == limit


async def test_patch_ops_and_expiry_apply_with_the_rest(tx_client: Client) -> None:
    await put(tx_client, "stats", "n", {"users": 1, "tags": ["a"]})
    profile = await put(tx_client, "users", "ada", {"name": "Ada", "city": "Paris"})
    before = time.time()
    answer = await transact(
        tx_client,
        [
            {
                "op": "patch",
                "collection": "stats",
                "key": "n",
                "change": {"increment": {"users": 1}, "append": {"tags": ["b"]}},
            },
            {
                "op": "patch",
                "collection": "users",
                "key": "ada",
                "merge": {"city": None},
                "if_match": profile,
                "expire_in": 60,
            },
            {
                "op": "put",
                "collection": "users",
                "key": "bob",
                "value": 1,
                "expire_at": int(before) + 120,
            },
        ],
    )
    results = answer["results"]
    assert results[0]["value"] == {"users": 2, "tags": ["a", "b"]}
    assert results[1]["value"] == {"name": "Ada"}
    assert sorted(results[2]) == ["etag"]
    for collection, key, result in [("stats", "n", results[0]), ("users", "ada", results[1])]:
        response = await tx_client.get(f"/collections/{collection}/items/{key}")
        assert (await response.json(), response.headers["ETag"]) == (
            result["value"],
            result["etag"],
        )
    ada = await tx_client.get("/collections/users/items/ada")
    assert (
        before + 60 <= parsedate_to_datetime(ada.headers["Expires"]).timestamp() <= time.time() + 61
    )
    bob = await tx_client.get("/collections/users/items/bob")
    assert parsedate_to_datetime(bob.headers["Expires"]).timestamp() == int(before) + 120
    # A patch without an expiry keeps the item's.
    await transact(
        tx_client,
        [{"op": "patch", "collection": "users", "key": "ada", "change": {"set": {"n": 1}}}],
    )
    again = await tx_client.get("/collections/users/items/ada")
    assert again.headers["Expires"] == ada.headers["Expires"]


@pytest.mark.parametrize(
    ("op", "status", "code"),
    [
        ({"key": "absent", "change": {"increment": {"n": 1}}}, 412, "precondition-failed"),
        (
            {"key": "n", "change": {"increment": {"n": 1}}, "if_match": '"stale"'},
            412,
            "precondition-failed",
        ),
        ({"key": "n", "change": {"increment": {"name": 1}}}, 400, "patch-conflict"),
        ({"key": "n", "change": {"set": {"big": "x" * 500_000}}}, 413, "value-too-large"),
    ],
)
async def test_a_patch_that_does_not_apply_fails_the_whole_transaction(
    tx_client: Client, op: dict[str, Any], status: int, code: str
) -> None:
    """As a lone PATCH would fail, naming the op; an absent item fails the
    patch's own condition (it must exist), with no current value."""
    etag = await put(tx_client, "stats", "n", {"n": 1, "name": "x"})
    ops = [
        {"op": "put", "collection": "log", "key": "e", "value": 1},
        {"op": "patch", "collection": "stats", **op},
    ]
    answer = await transact(tx_client, ops, status)
    assert (answer["code"], answer["index"]) == (code, 1)
    assert "op 1 (patch of" in answer["detail"] and "nothing was written" in answer["detail"]
    if status == 412 and op["key"] == "n":
        assert (answer["current"], answer["etag"]) == ({"n": 1, "name": "x"}, etag)
    assert await get(tx_client, "log", "e") is None
    assert await get(tx_client, "stats", "n") == {"n": 1, "name": "x"}


async def test_a_retried_patch_transaction_counts_once(tx_client: Client) -> None:
    """A retry with its Idempotency-Key reads the item at the version the
    first attempt wrote (derived from the key and the transaction): it is
    answered as the first time and the increment is not applied again, on
    SQLite by the remembered key, on DynamoDB by that version."""
    await put(tx_client, "stats", "hits", {"n": 1})
    ops = [{"op": "patch", "collection": "stats", "key": "hits", "change": {"increment": {"n": 1}}}]
    key = {"Idempotency-Key": "9a1e-count-once"}
    first = await transact(tx_client, ops, headers=key)
    assert await transact(tx_client, ops, headers=key) == first
    assert await get(tx_client, "stats", "hits") == {"n": 2}
    assert (await transact(tx_client, ops))["results"][0]["value"] == {"n": 3}
