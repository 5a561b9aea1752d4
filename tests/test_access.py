"""Access keys against the real app: who may call which route, on which
collections, how fast; revocation across workers and replicas."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from itemstore_service.access.check import KEYRING
from itemstore_service.access.scopes import ROUTE_NEEDS, Scope
from itemstore_service.app import create_app
from itemstore_service.appkeys import STORE
from itemstore_service.config import Config
from itemstore_service.store import Store

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]
BOOTSTRAP = "bootstrap-admin-token"
REFRESH = 0.2  # seconds between key reloads in these tests: the revocation bound


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def new_key(client: Client, **settings: Any) -> dict[str, Any]:
    response = await client.post("/keys", json=settings, headers=bearer(BOOTSTRAP))
    assert response.status == 201, await response.text()
    key: dict[str, Any] = await response.json()
    return key


def secured(config: Config) -> Config:
    return dataclasses.replace(config, token=BOOTSTRAP, key_refresh=REFRESH)


@pytest.fixture
async def app_client(any_config: Config, aiohttp_client: MakeClient) -> Client:
    return await aiohttp_client(create_app(secured(any_config)))


@pytest.fixture
def has_transactions(request: pytest.FixtureRequest) -> bool:
    """Whether the backend runs transactions: dynalite implements no
    TransactWriteItems (it answers 503 once access is granted)."""
    return bool(request.node.callspec.params.get("any_config") != "dynalite")


# -- every route, every kind of caller ------------------------------------------------

WHO = ("none", "read", "write_outside", "revoked", "admin")
Call = tuple[str, str, Any]  # method, path, JSON body (None: no body)
ROUTES: list[tuple[Call, tuple[int, int, int, int, int]]] = [
    (("GET", "/", None), (200, 200, 200, 200, 200)),
    (("GET", "/openapi.yaml", None), (200, 200, 200, 200, 200)),
    (("GET", "/console", None), (308, 308, 308, 308, 308)),
    (("GET", "/console/", None), (200, 200, 200, 200, 200)),
    (("GET", "/console/console.js", None), (200, 200, 200, 200, 200)),
    (("GET", "/healthz", None), (200, 200, 200, 200, 200)),
    (("GET", "/readyz", None), (200, 200, 200, 200, 200)),
    (("GET", "/metrics", None), (401, 403, 403, 401, 200)),
    (("GET", "/collections/users/items/k", None), (401, 200, 403, 401, 200)),
    (("HEAD", "/collections/users/items/k", None), (401, 200, 403, 401, 200)),
    (("PUT", "/collections/users/items/k", 1), (401, 403, 403, 401, 200)),
    (("PATCH", "/collections/users/items/k", {"set": {}}), (401, 403, 403, 401, 200)),
    (("DELETE", "/collections/users/items/k", None), (401, 403, 403, 401, 200)),
    (("GET", "/collections/users/items", None), (401, 200, 403, 401, 200)),
    (("POST", "/collections/users/items", 1), (401, 403, 403, 401, 201)),
    (("POST", "/collections/users/batch", {"ops": [{"op": "get", "key": "k"}]}),
     (401, 200, 403, 401, 200)),
    (("POST", "/collections/users/batch", {"ops": [{"op": "put", "key": "k", "value": 2}]}),
     (401, 403, 403, 401, 200)),
    (("POST", "/collections/users/query", {"where": {"n?gte": 0}}), (401, 200, 403, 401, 200)),
    (("POST", "/transactions", {"ops": [{"op": "check", "collection": "users", "key": "k",
                                         "if_none_match": "*"}]}),
     (401, 412, 403, 401, 412)),
    (("POST", "/transactions", {"ops": [{"op": "delete", "collection": "users", "key": "k"}]}),
     (401, 403, 403, 401, 200)),
    (("GET", "/collections", None), (401, 200, 200, 401, 200)),
    (("GET", "/collections/users", None), (401, 200, 403, 401, 200)),
    (("DELETE", "/collections/users", None), (401, 403, 403, 401, 200)),
    (("POST", "/keys", {"name": "n", "scope": "read"}), (401, 403, 403, 401, 201)),
    (("GET", "/keys", None), (401, 403, 403, 401, 200)),
    (("DELETE", "/keys/{id}", None), (401, 403, 403, 401, 200)),
]  # fmt: skip


def template(path: str) -> str:
    """The route template of one of the paths above."""
    path = re.sub(r"^/collections/users(?=/|$)", "/collections/{name}", path)
    path = re.sub(r"^/console/.+$", "/console/{file}", path)
    return re.sub(r"/items/k$", "/items/{key}", path)


def test_the_table_and_the_matrix_cover_every_route_of_the_app(sqlite_config: Config) -> None:
    served = {
        (route.method, route.resource.canonical)
        for route in create_app(sqlite_config).router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    assert served == set(ROUTE_NEEDS)
    assert served == {(m, template(p)) for (m, p, _), _ in ROUTES if m != "HEAD"}


async def test_every_route_answers_each_kind_of_caller(
    app_client: Client, has_transactions: bool
) -> None:
    read = await new_key(app_client, name="r", scope="read", collections=["users"])
    write = await new_key(app_client, name="w", scope="write", collections=["orders-*"])
    admin = await new_key(app_client, name="a", scope="admin")
    revoked = await new_key(app_client, name="x", scope="admin")
    response = await app_client.delete(f"/keys/{revoked['id']}", headers=bearer(BOOTSTRAP))
    assert response.status == 200
    tokens = {
        "read": read["token"],
        "write_outside": write["token"],
        "revoked": revoked["token"],
        "admin": admin["token"],
    }
    for (method, path, body), expected in ROUTES:
        for who, status in zip(WHO, expected, strict=True):
            if path == "/transactions" and status not in (401, 403) and not has_transactions:
                continue
            # The item exists before every call; a key to revoke is fresh.
            stored = await app_client.put(
                "/collections/users/items/k", json=0, headers=bearer(BOOTSTRAP)
            )
            assert stored.status in (200, 201)
            if path == "/keys/{id}":
                path_now = f"/keys/{(await new_key(app_client, name='t', scope='read'))['id']}"
            else:
                path_now = path
            headers = bearer(tokens[who]) if who in tokens else {}
            data = None if body is None else orjson.dumps(body)
            if data is not None:
                headers["Content-Type"] = "application/json"
            answer = await app_client.request(
                method, path_now, data=data, headers=headers, allow_redirects=False
            )
            assert answer.status == status, (method, path, who, await answer.text())
            if status in (401, 403) and method != "HEAD":
                problem = await answer.json()
                assert problem["code"] == {401: "unauthorized", 403: "forbidden"}[status]


async def test_a_write_key_writes_in_its_collections_only(app_client: Client) -> None:
    write = bearer(
        (await new_key(app_client, name="w", scope="write", collections=["orders-*"]))["token"]
    )
    assert (
        await app_client.put("/collections/orders-2024/items/a", json=1, headers=write)
    ).status == 201
    assert (
        await app_client.put("/collections/orders/items/a", json=1, headers=write)
    ).status == 403
    assert (
        await app_client.delete("/collections/orders-2024", headers=write)
    ).status == 403  # admin


async def test_collections_lists_only_what_the_key_sees(app_client: Client) -> None:
    for name in ("users", "orders-1", "orders-2", "secrets"):
        await app_client.put(f"/collections/{name}/items/k", json=1, headers=bearer(BOOTSTRAP))
    orders = await new_key(app_client, name="o", scope="read", collections=["orders-*", "users"])
    names: list[str] = []
    path: str | None = "/collections?limit=1"
    while path is not None:  # a page of one at a time: the filter keeps the paging whole
        page = await (await app_client.get(path, headers=bearer(orders["token"]))).json()
        names += [c["name"] for c in page["collections"]]
        path = page["next_cursor"] and f"/collections?limit=1&cursor={page['next_cursor']}"
    assert names == ["orders-1", "orders-2", "users"]
    everything = await (await app_client.get("/collections", headers=bearer(BOOTSTRAP))).json()
    # The keys' own collection is never listed, even to the admin.
    assert [c["name"] for c in everything["collections"]] == [
        "orders-1",
        "orders-2",
        "secrets",
        "users",
    ]


async def test_a_batch_with_one_forbidden_op_writes_nothing(app_client: Client) -> None:
    read = bearer(
        (await new_key(app_client, name="r", scope="read", collections=["users"]))["token"]
    )
    ops = [{"op": "get", "key": "a"}, {"op": "put", "key": "new", "value": 1}]
    answer = await app_client.post("/collections/users/batch", json={"ops": ops}, headers=read)
    assert answer.status == 403
    assert (await answer.json())["code"] == "forbidden"
    absent = await app_client.get("/collections/users/items/new", headers=bearer(BOOTSTRAP))
    assert absent.status == 404
    count = await app_client.get("/collections/users", headers=bearer(BOOTSTRAP))
    assert (await count.json())["count"] == 0


async def test_a_transaction_with_one_forbidden_op_writes_nothing(
    app_client: Client, has_transactions: bool
) -> None:
    write = await new_key(app_client, name="w", scope="write", collections=["orders-*"])
    ops = [
        {"op": "put", "collection": "orders-1", "key": "a", "value": 1},
        {"op": "put", "collection": "users", "key": "a", "value": 1},  # not its collection
    ]
    headers = bearer(write["token"])
    answer = await app_client.post("/transactions", json={"ops": ops}, headers=headers)
    assert answer.status == 403
    assert "'users'" in (await answer.json())["detail"]
    for name in ("orders-1", "users"):
        absent = await app_client.get(f"/collections/{name}/items/a", headers=bearer(BOOTSTRAP))
        assert absent.status == 404
    if has_transactions:
        answer = await app_client.post("/transactions", json={"ops": ops[:1]}, headers=headers)
        assert answer.status == 200


async def test_missing_unknown_and_malformed_tokens_say_what_is_wrong(app_client: Client) -> None:
    details = []
    for headers in (
        {},
        bearer("not-a-key"),
        bearer("isk_0123456789abcdef_" + "A" * 43),  # the form of a key, but none stored
        {"Authorization": f"Bearer {BOOTSTRAP}\u00a0"},  # a trailing non-breaking space
        {"Authorization": f"Basic {BOOTSTRAP}"},
        {"Authorization": f"Bearer  {BOOTSTRAP}"},
    ):
        answer = await app_client.get("/collections", headers=headers)
        assert answer.status == 401
        details.append((await answer.json())["detail"])
    assert "needs a token" in details[0]
    assert "not valid" in details[1] and details[1] == details[2]
    assert all("Bearer <token>" in d for d in details[3:])
    assert len({details[0], details[1], details[3]}) == 3


async def test_two_authorization_headers_are_refused(app_client: Client) -> None:
    headers = [("Authorization", f"Bearer {BOOTSTRAP}"), ("Authorization", "Bearer other")]
    answer = await app_client.get("/collections", headers=headers)
    assert answer.status == 401
    assert "one Authorization header" in (await answer.json())["detail"]


# -- rate limits --------------------------------------------------------------------------


async def test_a_burst_over_the_rate_limit_gets_429s_then_recovers(app_client: Client) -> None:
    key = await new_key(app_client, name="r", scope="read", rate_limit=1, burst=3)
    headers = bearer(key["token"])
    started = time.monotonic()
    answers = [await app_client.get("/collections", headers=headers) for _ in range(5)]
    assert time.monotonic() - started < 1  # else a request came back meanwhile
    assert [a.status for a in answers] == [200, 200, 200, 429, 429]
    assert answers[0].headers["RateLimit-Policy"] == '"key";q=3;w=3'
    assert answers[2].headers["RateLimit"].startswith('"key";r=0;')
    refused = answers[3]
    assert refused.headers["Retry-After"] == "1"
    assert (await refused.json())["code"] == "rate-limited"
    await asyncio.sleep(1.05)  # 1 per second: one request back
    assert (await app_client.get("/collections", headers=headers)).status == 200
    assert (await app_client.get("/collections", headers=headers)).status == 429
    # Other keys and the bootstrap token are not held back by it.
    assert (await app_client.get("/collections", headers=bearer(BOOTSTRAP))).status == 200


# -- revocation across workers and replicas -----------------------------------------------


async def revoked_within_bound(first: Client, second: Client) -> float:
    """Make a key on ``first``, see it work on ``second``, revoke it on
    ``first``; return how long ``second`` still took it."""
    key = await new_key(first, name="k", scope="read")
    headers = bearer(key["token"])
    deadline = time.monotonic() + 5
    while (await second.get("/collections", headers=headers)).status != 200:
        assert time.monotonic() < deadline, "the second instance never saw the key"
        await asyncio.sleep(0.05)
    assert (await first.delete(f"/keys/{key['id']}", headers=bearer(BOOTSTRAP))).status == 200
    assert (await first.get("/collections", headers=headers)).status == 401  # at once here
    revoked = time.monotonic()
    while (await second.get("/collections", headers=headers)).status != 401:
        assert time.monotonic() - revoked < 5, "the second instance still takes a revoked key"
        await asyncio.sleep(0.05)
    return time.monotonic() - revoked


async def test_a_revocation_is_seen_by_a_second_worker(
    sqlite_config: Config, aiohttp_client: MakeClient
) -> None:
    # Two workers of one host: two apps on one SQLite file, as --workers 2 runs them.
    config = secured(sqlite_config)
    first = await aiohttp_client(create_app(config))
    second = await aiohttp_client(create_app(config))
    assert await revoked_within_bound(first, second) < REFRESH + 1


async def test_a_revocation_is_seen_by_a_second_replica_on_one_table(
    moto_config: Config, aiohttp_client: MakeClient
) -> None:
    config = secured(moto_config)
    first = await aiohttp_client(create_app(config))
    second = await aiohttp_client(create_app(config))
    assert await revoked_within_bound(first, second) < REFRESH + 1


async def test_keys_turn_auth_on_for_a_replica_started_without_a_token(
    sqlite_config: Config, aiohttp_client: MakeClient
) -> None:
    with_token = await aiohttp_client(create_app(secured(sqlite_config)))
    key = await new_key(with_token, name="k", scope="read")
    tokenless = await aiohttp_client(
        create_app(dataclasses.replace(sqlite_config, key_refresh=REFRESH))
    )
    assert (await tokenless.get("/collections")).status == 401
    assert (await tokenless.get("/collections", headers=bearer(key["token"]))).status == 200
    answer = await tokenless.put("/collections/c/items/k", json=1, headers=bearer(key["token"]))
    assert answer.status == 403


async def test_without_token_or_keys_the_service_is_open_but_manages_no_keys(
    sqlite_config: Config, aiohttp_client: MakeClient
) -> None:
    client = await aiohttp_client(create_app(sqlite_config))
    assert (await client.put("/collections/c/items/k", json=1)).status == 201
    assert (await client.get("/metrics")).status == 200
    answer = await client.post("/keys", json={"name": "k", "scope": "admin"})
    assert answer.status == 403
    assert "--token-file" in (await answer.json())["detail"]


class HeldListing:
    """The real store, except that a listing's answer is held until ``release``
    is set: a fake on purpose, for a timing the real store gives only by chance
    (a listing read before a revocation, answered after it)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.release = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def list_items(self, collection: str, **options: Any) -> Any:
        page = await self.store.list_items(collection, **options)
        await self.release.wait()
        return page


async def test_a_reload_under_way_never_undoes_a_change_made_here(
    sqlite_config: Config, aiohttp_client: MakeClient
) -> None:
    config = dataclasses.replace(secured(sqlite_config), key_refresh=60)  # this reload only
    client = await aiohttp_client(create_app(config))
    ring = client.app[KEYRING]
    revoked = await new_key(client, name="revoked", scope="read")
    held = HeldListing(client.app[STORE])
    ring._store = held  # type: ignore[assignment]
    reloading = asyncio.create_task(ring.reload())
    await asyncio.sleep(0.1)  # the listing has read the key
    await ring.revoke(revoked["id"])
    made, _ = await ring.create(
        name="made", scope=Scope.READ, collections=None, rate_limit=None, burst=None
    )
    held.release.set()
    assert [key.id for key in await reloading] == [made.id]
    assert ring.authenticate(revoked["token"]) is None
