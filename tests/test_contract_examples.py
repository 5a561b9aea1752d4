"""Every documented operation, driven through the real app to every status
openapi.yaml documents for it; each answer is held against the document by
``check_answer`` (status documented, content type, schema, headers).

The app runs on a real SQLite file, once as `itemstore serve` runs by default
and once started with a token. Only a backend outage is injected (``Outage``).
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from aiohttp.web import Application, Request

from itemstore_service import errors
from itemstore_service.admission import ADMISSION
from itemstore_service.app import create_app
from itemstore_service.appkeys import STORE
from itemstore_service.backends.base import (
    Backend,
    ItemKey,
    Listed,
    Puts,
    Record,
    Records,
    Scanned,
    TxOp,
    Update,
)
from itemstore_service.conditions import Where
from itemstore_service.config import Config
from itemstore_service.health import HEALTH
from itemstore_wire.contract import Limits
from tests.test_openapi import (
    SPEC,
    SPEC_FILE,
    Answer,
    check_answer,
    check_schema,
    deref,
    documented_operations,
    escape,
)

Client = TestClient[Request, Application]
Driver = Callable[["Api", "Api"], Awaitable[None]]

TOKEN = "contract-token"
LIMITS = Limits()
ROOT, COLLECTIONS, COLLECTION = "/", "/collections", "/collections/{name}"
ITEMS, ITEM = "/collections/{name}/items", "/collections/{name}/items/{key}"
BATCH = "/collections/{name}/batch"
QUERY = "/collections/{name}/query"
TRANSACT = "/transactions"
TOO_LARGE = "x" * LIMITS.max_value_bytes  # as JSON, two bytes over the limit


class Api:
    """A client of one real app that checks every answer against the spec and
    remembers which (METHOD, template, status) it has seen."""

    def __init__(self, client: Client, token: str | None = None) -> None:
        self.client = client
        self.app: Application = client.app
        self.token = token
        self.seen: set[tuple[str, str, int]] = set()

    async def call(
        self,
        method: str,
        template: str,
        path: str,
        status: int,
        *,
        json: Any = ...,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        token: bool | str = True,
        follow_redirects: bool = True,
    ) -> Answer:
        """``token``: send the app's token (True), none (False), or this one."""
        sent = dict(headers or {})
        if isinstance(token, str):
            sent["Authorization"] = f"Bearer {token}"
        elif token and self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        if json is not ...:
            data = orjson.dumps(json)
            sent.setdefault("Content-Type", "application/json")
            if 200 <= status < 300:
                self.check_request_body(method, template, json)
        payload = None if data is None else io.BytesIO(data)  # aiohttp warns on large raw bytes
        response = await self.client.request(
            method, path, data=payload, headers=sent, allow_redirects=follow_redirects
        )
        answer = Answer(response.status, response.headers, await response.read())
        assert answer.status == status, f"{method} {path}: {answer.status} {answer.body[:300]!r}"
        check_answer(method, template, answer)
        self.seen.add((method, template, status))
        return answer

    @staticmethod
    def check_request_body(method: str, template: str, body: Any) -> None:
        """A body the server accepts must fit the documented request schema."""
        pointer, request_body = deref(f"/paths/{escape(template)}/{method.lower()}/requestBody")
        assert "application/json" in request_body["content"]
        check_schema(body, f"{pointer}/content/application~1json/schema")

    async def new_key(self, **settings: Any) -> str:
        """The token of a new access key with ``settings`` (made with the app's token)."""
        sent = {"Authorization": f"Bearer {self.token}"}
        response = await self.client.post("/keys", json=settings, headers=sent)
        assert response.status == 201, await response.text()
        token: str = (await response.json())["token"]
        return token

    def backend_down(self) -> None:
        store = self.app[STORE]
        store.backend = Outage(store.backend)


class Outage:
    """A backend that cannot be reached: every call raises BackendUnavailable.
    A fake on purpose: a real SQLite file cannot be made unreachable on demand."""

    def __init__(self, inner: Backend) -> None:
        self.name = inner.name

    def _fail(self) -> errors.BackendUnavailable:
        return errors.BackendUnavailable(f"the {self.name} backend is unreachable (injected)")

    async def get_many(self, keys: Sequence[ItemKey], *, consistent: bool) -> dict[ItemKey, Record]:
        raise self._fail()

    async def write_many(
        self, puts: Puts, deletes: Sequence[ItemKey], *, previous: Collection[ItemKey]
    ) -> Records:
        raise self._fail()

    async def put_if(self, key: ItemKey, record: Record, *, expected: str | None) -> Record | None:
        raise self._fail()

    async def delete_if(self, key: ItemKey, *, expected: str) -> Record:
        raise self._fail()

    async def update_many(self, updates: Mapping[ItemKey, Update]) -> list[ItemKey]:
        raise self._fail()

    async def query(
        self, collection: str, *, after: str | None, prefix: str, limit: int, keys_only: bool
    ) -> list[Listed]:
        raise self._fail()

    async def scan(
        self,
        collection: str,
        *,
        after: str | None,
        prefix: str = "",
        where: Where,
        limit: int,
        budget: int,
        keys_only: bool,
    ) -> Scanned:
        raise self._fail()

    async def transact(self, ops: Sequence[TxOp], *, token: str | None) -> Records:
        raise self._fail()

    async def count(self, collection: str) -> int:
        raise self._fail()

    async def delete_collection(self, collection: str) -> int:
        raise self._fail()

    async def list_collections(self, *, after: str | None, limit: int) -> list[str]:
        raise self._fail()

    async def ping(self) -> None:
        raise self._fail()


@pytest.fixture
async def plain(sqlite_config: Config, aiohttp_client: Callable[..., Awaitable[Client]]) -> Api:
    """The app as `itemstore serve` runs it by default: no token."""
    return Api(await aiohttp_client(create_app(sqlite_config)))


@pytest.fixture
async def secured(
    sqlite_config: Config, tmp_path: Path, aiohttp_client: Callable[..., Awaitable[Client]]
) -> Api:
    """The app started with a token, on a SQLite file of its own."""
    config = replace(sqlite_config, token=TOKEN, sqlite_path=str(tmp_path / "secured.sqlite3"))
    return Api(await aiohttp_client(create_app(config)), token=TOKEN)


# -- one driver per operation ------------------------------------------------------

DRIVERS: dict[str, Driver] = {}


def driver(operation_id: str) -> Callable[[Driver], Driver]:
    def register(fn: Driver) -> Driver:
        DRIVERS[operation_id] = fn
        return fn

    return register


def code(answer: Answer) -> str:
    found: str = answer.json()["code"]
    return found


async def put(api: Api, path: str, value: Any, status: int = 201) -> str:
    """PUT ``value`` at ``path``; the new ETag."""
    return (await api.call("PUT", ITEM, path, status, json=value)).headers["ETag"]


async def unauthorized_and_unavailable(
    plain: Api,
    secured: Api,
    method: str,
    template: str,
    path: str,
    *,
    forbidden: bool = True,
    unavailable: bool = True,
    **body: Any,
) -> None:
    """The refusals of the secured app: 401 without a token, 403 to a read key
    of another collection (unless ``forbidden`` is False: a route every key
    may call), 429 to a key past its rate limit; and the 503 of a backend that
    is down (when ``unavailable``)."""
    answer = await secured.call(method, template, path, 401, token=False, **body)
    assert method == "HEAD" or code(answer) == "unauthorized"
    if forbidden:
        reader = await secured.new_key(name="reader", scope="read", collections=["elsewhere"])
        answer = await secured.call(method, template, path, 403, token=reader, **body)
        assert method == "HEAD" or code(answer) == "forbidden"
    slow = await secured.new_key(name="slow", scope="admin", rate_limit=0.001, burst=1)
    sent = {"Authorization": f"Bearer {slow}"}
    await secured.client.request(method, path, headers=sent)  # takes the one request of its burst
    answer = await secured.call(method, template, path, 429, token=slow, **body)
    assert int(answer.headers["Retry-After"]) >= 1
    assert method == "HEAD" or code(answer) == "rate-limited"
    if unavailable:
        plain.backend_down()
        answer = await plain.call(method, template, path, 503, **body)
        if method != "HEAD":
            assert code(answer) == "backend-unavailable"


@driver("getServiceInfo")
async def drive_service_info(plain: Api, secured: Api) -> None:
    info = (await plain.call("GET", ROOT, "/", 200)).json()
    assert (info["backend"], info["limits"]) == ("sqlite", dataclasses.asdict(LIMITS))
    await secured.call("GET", ROOT, "/", 200, token=False)
    assert code(await plain.call("GET", ROOT, "/?limit=1", 400)) == "unexpected-parameter"
    refuse_all(plain)
    assert code(await plain.call("GET", ROOT, "/", 503)) == "overloaded"


@driver("getOpenApi")
async def drive_openapi(plain: Api, secured: Api) -> None:
    served = await plain.call("GET", "/openapi.yaml", "/openapi.yaml", 200)
    assert served.body == SPEC_FILE.read_bytes()
    await secured.call("GET", "/openapi.yaml", "/openapi.yaml", 200, token=False)
    answer = await plain.call("GET", "/openapi.yaml", "/openapi.yaml?format=json", 400)
    assert code(answer) == "unexpected-parameter"
    plain.app[ADMISSION].max_inflight = 0
    assert code(await plain.call("GET", "/openapi.yaml", "/openapi.yaml", 503)) == "overloaded"


@driver("getLiveness")
async def drive_liveness(plain: Api, secured: Api) -> None:
    await plain.call("GET", "/healthz", "/healthz", 200)
    await secured.call("GET", "/healthz", "/healthz", 200, token=False)
    answer = await plain.call("GET", "/healthz", "/healthz?verbose=1", 400)
    assert code(answer) == "unexpected-parameter"


@driver("getReadiness")
async def drive_readiness(plain: Api, secured: Api) -> None:
    assert (await secured.call("GET", "/readyz", "/readyz", 200, token=False)).json() == {
        "status": "ready",
        "backend": "sqlite",
    }
    answer = await plain.call("GET", "/readyz", "/readyz?verbose=1", 400)
    assert code(answer) == "unexpected-parameter"
    # A real setting, not a fake: with a zero ping timeout no backend answers in time.
    plain.app[HEALTH].ping_timeout = 0.0
    assert code(await plain.call("GET", "/readyz", "/readyz", 503)) == "backend-unavailable"
    await secured.app.shutdown()  # what the server does first when it is told to stop
    answer = await secured.call("GET", "/readyz", "/readyz", 503, token=False)
    assert code(answer) == "shutting-down"


@driver("getMetrics")
async def drive_metrics(plain: Api, secured: Api) -> None:
    await plain.call("GET", ROOT, "/", 200)
    text = (await plain.call("GET", "/metrics", "/metrics", 200)).body.decode()
    assert 'itemstore_http_requests_total{method="GET",route="/",status="200"}' in text
    await secured.call("GET", "/metrics", "/metrics", 200)  # the bootstrap admin token
    answer = await plain.call("GET", "/metrics", "/metrics?name=x", 400)
    assert code(answer) == "unexpected-parameter"
    await unauthorized_and_unavailable(
        plain, secured, "GET", "/metrics", "/metrics", unavailable=False
    )


def refuse_all(api: Api) -> None:
    """A real setting, not a fake: with room for no request in flight, every one is refused."""
    api.app[ADMISSION].max_inflight = 0


@driver("getConsoleRedirect")
async def drive_console_redirect(plain: Api, secured: Api) -> None:
    answer = await secured.call("GET", "/console", "/console", 308, follow_redirects=False)
    assert answer.headers["Location"] == "/console/"
    answer = await plain.call("GET", "/console", "/console?v=2", 400, follow_redirects=False)
    assert code(answer) == "unexpected-parameter"
    refuse_all(plain)
    await plain.call("GET", "/console", "/console", 503, follow_redirects=False)


@driver("getConsole")
async def drive_console(plain: Api, secured: Api) -> None:
    answer = await secured.call("GET", "/console/", "/console/", 200, token=False)
    assert b'<script type="module" src="console.js">' in answer.body
    answer = await plain.call("GET", "/console/", "/console/?v=2", 400)
    assert code(answer) == "unexpected-parameter"
    refuse_all(plain)
    await plain.call("GET", "/console/", "/console/", 503)


@driver("getConsoleFile")
async def drive_console_file(plain: Api, secured: Api) -> None:
    template = "/console/{file}"
    for name in ("console.js", "console.css", "codemirror-LICENSES.txt", "favicon.svg"):
        await secured.call("GET", template, f"/console/{name}", 200, token=False)
    answer = await secured.call("GET", template, "/console/nothing.js", 404, token=False)
    assert code(answer) == "not-found"
    answer = await plain.call("GET", template, "/console/console.js?v=2", 400)
    assert code(answer) == "unexpected-parameter"
    refuse_all(plain)
    await plain.call("GET", template, "/console/console.js", 503)


@driver("listCollections")
async def drive_list_collections(plain: Api, secured: Api) -> None:
    for name in ("beta", "alpha"):
        await put(plain, f"/collections/{name}/items/k", 1)
    first = (await plain.call("GET", COLLECTIONS, "/collections?limit=1", 200)).json()
    assert first["collections"] == [{"name": "alpha"}]
    path = f"/collections?limit=1&cursor={first['next_cursor']}"
    second = (await plain.call("GET", COLLECTIONS, path, 200)).json()
    assert second == {"collections": [{"name": "beta"}], "next_cursor": None}
    assert code(await plain.call("GET", COLLECTIONS, "/collections?cursor=a", 400)) == (
        "invalid-cursor"
    )
    assert code(await plain.call("GET", COLLECTIONS, "/collections?limit=0", 400)) == (
        "invalid-input"
    )
    await secured.call("GET", COLLECTIONS, "/collections", 200)
    await unauthorized_and_unavailable(
        plain, secured, "GET", COLLECTIONS, "/collections", forbidden=False
    )


@driver("getCollection")
async def drive_get_collection(plain: Api, secured: Api) -> None:
    await put(plain, "/collections/c/items/a", 1)
    await put(plain, "/collections/c/items/1?key_type=int", 2)
    answer = await plain.call("GET", COLLECTION, "/collections/c", 200)
    assert answer.json() == {"name": "c", "count": 2}
    answer = await plain.call("GET", COLLECTION, "/collections/empty", 200)
    assert answer.json() == {"name": "empty", "count": 0}
    answer = await plain.call("GET", COLLECTION, "/collections/bad!name", 400)
    assert code(answer) == "invalid-collection-name"
    await unauthorized_and_unavailable(plain, secured, "GET", COLLECTION, "/collections/c")


@driver("clearCollection")
async def drive_clear_collection(plain: Api, secured: Api) -> None:
    for key in ("a", "b"):
        await put(plain, f"/collections/c/items/{key}", key)
    answer = await plain.call("DELETE", COLLECTION, "/collections/c", 200)
    assert answer.json() == {"name": "c", "deleted": 2}
    assert (await plain.call("GET", COLLECTION, "/collections/c", 200)).json()["count"] == 0
    await plain.call("DELETE", COLLECTION, "/collections/bad!name", 400)
    await unauthorized_and_unavailable(plain, secured, "DELETE", COLLECTION, "/collections/c")


@driver("listItems")
async def drive_list_items(plain: Api, secured: Api) -> None:
    stored = {"alice": {"age": 31}, "alpha": [1], "bob": None}
    for key, value in stored.items():
        await put(plain, f"/collections/c/items/{key}", value)
    await put(plain, "/collections/c/items/7?key_type=int", "seven")
    await put(plain, "/collections/c/items/true?key_type=bool", "yes")
    page = (await plain.call("GET", ITEMS, "/collections/c/items", 200)).json()
    listed = [(item["key"], item["value"]) for item in page["items"]]
    assert sorted(listed, key=repr) == sorted(
        [*stored.items(), (7, "seven"), (True, "yes")], key=repr
    )
    page = await plain.call("GET", ITEMS, "/collections/c/items?prefix=al&keys_only=true", 200)
    assert page.json() == {"items": [{"key": "alice"}, {"key": "alpha"}], "next_cursor": None}
    keys: list[Any] = []
    path: str | None = "/collections/c/items?limit=2&keys_only=true"
    while path is not None:
        page_doc = (await plain.call("GET", ITEMS, path, 200)).json()
        keys += [item["key"] for item in page_doc["items"]]
        cursor = page_doc["next_cursor"]
        path = None if cursor is None else f"/collections/c/items?limit=2&cursor={cursor}"
    assert sorted(keys, key=repr) == sorted(["alice", "alpha", "bob", 7, True], key=repr)
    assert code(await plain.call("GET", ITEMS, "/collections/c/items?cursor=a", 400)) == (
        "invalid-cursor"
    )
    await plain.call("GET", ITEMS, "/collections/c/items?keys_only=maybe", 400)
    answer = await plain.call("GET", ITEMS, "/collections/c/items?prefx=al", 400)
    assert (code(answer), answer.json()["parameter"]) == ("unexpected-parameter", "prefx")
    await unauthorized_and_unavailable(plain, secured, "GET", ITEMS, "/collections/c/items")


@driver("createItem")
async def drive_create_item(plain: Api, secured: Api) -> None:
    created = await plain.call("POST", ITEMS, "/collections/c/items", 201, json={"n": 1})
    assert created.json()["etag"] == created.headers["ETag"]
    location = created.headers["Location"]
    assert location == f"/collections/c/items/{created.json()['key']}"
    assert (await plain.call("GET", ITEM, location, 200)).json() == {"n": 1}
    json_type = {"Content-Type": "application/json"}
    for bad in (b"{", b"NaN"):
        answer = await plain.call(
            "POST", ITEMS, "/collections/c/items", 400, data=bad, headers=json_type
        )
        assert code(answer) == "invalid-json"
    await plain.call("POST", ITEMS, "/collections/c/items", 415, data=b"1")
    await plain.call("POST", ITEMS, "/collections/c/items", 413, json=TOO_LARGE)
    await unauthorized_and_unavailable(
        plain, secured, "POST", ITEMS, "/collections/c/items", json=1
    )


async def drive_read(plain: Api, secured: Api, method: str) -> None:
    """GET and HEAD answer alike (HEAD without a body)."""
    etag = await put(plain, "/collections/c/items/alice", {"age": 31})
    answer = await plain.call(method, ITEM, "/collections/c/items/alice?consistent=true", 200)
    assert answer.headers["ETag"] == etag and "Expires" not in answer.headers
    assert method == "HEAD" or answer.json() == {"age": 31}
    await put(plain, "/collections/c/items/temp?expire_in=60", 1)
    answer = await plain.call(method, ITEM, "/collections/c/items/temp", 200)
    assert answer.headers["Expires"].endswith(" GMT")
    fresh = {"If-None-Match": etag}
    await plain.call(method, ITEM, "/collections/c/items/alice", 304, headers=fresh)
    # Typed keys: 1 and 1.0 are one key; "1" and true are others.
    await put(plain, "/collections/c/items/1?key_type=int", "one")
    answer = await plain.call(method, ITEM, "/collections/c/items/1.0?key_type=float", 200)
    assert method == "HEAD" or answer.json() == "one"
    await plain.call(method, ITEM, "/collections/c/items/1", 404)
    answer = await plain.call(method, ITEM, "/collections/c/items/true?key_type=bool", 404)
    assert method == "HEAD" or code(answer) == "item-not-found"
    answer = await plain.call(method, ITEM, "/collections/c/items/abc?key_type=int", 400)
    assert method == "HEAD" or code(answer) == "invalid-key"
    await plain.call(method, ITEM, "/collections/c/items/alice?consistent=maybe", 400)
    await unauthorized_and_unavailable(plain, secured, method, ITEM, "/collections/c/items/alice")


@driver("getItem")
async def drive_get_item(plain: Api, secured: Api) -> None:
    await drive_read(plain, secured, "GET")


@driver("headItem")
async def drive_head_item(plain: Api, secured: Api) -> None:
    await drive_read(plain, secured, "HEAD")


@driver("putItem")
async def drive_put_item(plain: Api, secured: Api) -> None:
    path = "/collections/c/items/alice"
    first = await put(plain, path, {"age": 31})
    second = await put(plain, path, {"age": 32}, status=200)
    assert first != second
    slash = await plain.call("PUT", ITEM, "/collections/c/items/a%2Fb", 201, json=[])
    assert slash.json()["key"] == "a/b"
    typed = await plain.call("PUT", ITEM, "/collections/c/items/42?key_type=int", 201, json=0)
    assert typed.json()["key"] == 42
    create_only = {"If-None-Match": "*"}
    failed = await plain.call("PUT", ITEM, path, 412, json=0, headers=create_only)
    assert failed.json()["current"] == {"age": 32}
    assert failed.json()["etag"] == second
    failed = await plain.call("PUT", ITEM, path, 412, json=0, headers={"If-Match": first})
    assert (failed.json()["current"], failed.json()["etag"]) == ({"age": 32}, second)
    await plain.call("PUT", ITEM, path, 200, json={"age": 33}, headers={"If-Match": second})
    absent = "/collections/c/items/carol"
    failed = await plain.call("PUT", ITEM, absent, 412, json=0, headers={"If-Match": first})
    assert (failed.json()["current"], failed.json()["etag"]) == (None, None)
    await plain.call("PUT", ITEM, absent, 201, json=0, headers=create_only)
    minimal = {"Prefer": "return=minimal"}
    blind = await plain.call("PUT", ITEM, path, 204, json={"age": 34}, headers=minimal)
    assert blind.headers["Preference-Applied"] == "return=minimal"
    swapped = {"If-Match": blind.headers["ETag"], **minimal}
    assert (await plain.call("PUT", ITEM, path, 204, json=35, headers=swapped)).body == b""
    await plain.call("PUT", ITEM, path, 412, json=36, headers=swapped)
    await plain.call("PUT", ITEM, path, 400, json=0, headers={"If-Match": "unquoted"})
    json_type = {"Content-Type": "application/json"}
    answer = await plain.call("PUT", ITEM, path, 400, data=b"Infinity", headers=json_type)
    assert code(answer) == "invalid-json"
    await plain.call("PUT", ITEM, path, 415, data=b"1", headers={"Content-Type": "text/plain"})
    await plain.call("PUT", ITEM, path, 413, json=TOO_LARGE)
    await unauthorized_and_unavailable(plain, secured, "PUT", ITEM, path, json=1)


@driver("deleteItem")
async def drive_delete_item(plain: Api, secured: Api) -> None:
    path = "/collections/c/items/alice"
    etag = await put(plain, path, {"age": 31})
    removed = await plain.call("DELETE", ITEM, path, 200)
    assert (removed.json(), removed.headers["ETag"]) == ({"age": 31}, etag)
    assert code(await plain.call("DELETE", ITEM, path, 404)) == "item-not-found"
    etag = await put(plain, path, "again")
    stale = {"If-Match": '"not-the-version"'}
    failed = await plain.call("DELETE", ITEM, path, 412, headers=stale)
    assert (failed.json()["current"], failed.json()["etag"]) == ("again", etag)
    assert (await plain.call("DELETE", ITEM, path, 200, headers={"If-Match": etag})).json() == (
        "again"
    )
    await plain.call("DELETE", ITEM, "/collections/c/items/x?key_type=int", 400)
    await unauthorized_and_unavailable(plain, secured, "DELETE", ITEM, path)


@driver("patchItem")
async def drive_patch_item(plain: Api, secured: Api) -> None:
    path = "/collections/c/items/alice"
    await plain.call("PATCH", ITEM, path, 404, json={"increment": {"age": 1}})
    etag = await put(plain, path, {"age": 31, "tags": []})
    change = {"increment": {"age": 1}, "append": {"tags": ["x"]}, "set": {"a\\.b.c": 0}}
    patched = await plain.call("PATCH", ITEM, path, 200, json=change)
    assert patched.json() == {"age": 32, "tags": ["x"], "a.b": {"c": 0}}
    merge = {"Content-Type": "application/merge-patch+json"}
    merged = await plain.call("PATCH", ITEM, path, 200, data=b'{"a.b": null}', headers=merge)
    assert merged.json() == {"age": 32, "tags": ["x"]}
    stale = await plain.call("PATCH", ITEM, path, 412, json=change, headers={"If-Match": etag})
    assert (stale.json()["current"], stale.json()["etag"]) == (
        {"age": 32, "tags": ["x"]},
        merged.headers["ETag"],
    )
    assert code(await plain.call("PATCH", ITEM, path, 400, json={"add": {"a": 1}})) == (
        "invalid-patch"
    )
    answer = await plain.call("PATCH", ITEM, path, 400, json={"increment": {"tags": 1}})
    assert code(answer) == "patch-conflict"
    await plain.call("PATCH", ITEM, path, 413, json={"set": {"big": TOO_LARGE}})
    await plain.call("PATCH", ITEM, path, 415, data=b"{}", headers={"Content-Type": "text/plain"})
    await unauthorized_and_unavailable(plain, secured, "PATCH", ITEM, path, json=change)


@driver("batch")
async def drive_batch(plain: Api, secured: Api) -> None:
    path = "/collections/c/batch"
    ops = [
        {"op": "put", "key": "alice", "value": {"age": 31}},
        {"op": "put", "key": 1, "value": "one"},
        {"op": "get", "key": 1.0},
        {"op": "put", "key": "alice", "value": {"age": 32}},
        {"op": "delete", "key": "alice"},
        {"op": "get", "key": "alice"},
        {"op": "delete", "key": "bob"},
        {"op": "patch", "key": 1, "merge": {"n": 1}},
        {"op": "patch", "key": 1, "change": {"increment": {"n": 1}}},
        {"op": "patch", "key": 1, "change": {"append": {"n": [1]}}},
    ]
    results = (await plain.call("POST", BATCH, path, 200, json={"ops": ops})).json()["results"]
    assert [r["status"] for r in results] == [201, 201, 200, 200, 200, 404, 404, 200, 200, 400]
    assert results[2]["value"] == "one" and results[2]["etag"] == results[1]["etag"]
    assert results[4]["value"] == {"age": 32}
    assert results[8]["value"] == {"n": 2}
    assert results[9]["code"] == "patch-conflict"
    minimal = {"Prefer": "return=minimal"}
    answer = await plain.call("POST", BATCH, path, 200, json={"ops": ops}, headers=minimal)
    assert answer.headers["Preference-Applied"] == "return=minimal"
    statuses = [r["status"] for r in answer.json()["results"]]
    assert statuses == [204, 204, 200, 204, 200, 404, 404, 200, 200, 400]
    bad_ops = [{"op": "get", "key": "a"}, {"op": "patch", "key": "b"}, {"op": "put", "key": []}]
    answer = await plain.call("POST", BATCH, path, 400, json={"ops": bad_ops})
    assert code(answer) == "invalid-batch"
    assert [e["index"] for e in answer.json()["errors"]] == [1, 2]
    assert code(await plain.call("POST", BATCH, path, 400, json={"ops": []})) == "invalid-batch"
    await plain.call("POST", BATCH, path, 415, data=b'{"ops": []}')
    body = b" " * (LIMITS.max_request_bytes + 1)
    json_type = {"Content-Type": "application/json"}
    answer = await plain.call("POST", BATCH, path, 413, data=body, headers=json_type)
    assert code(answer) == "value-too-large"
    get_only = {"ops": [{"op": "get", "key": "a"}]}
    await unauthorized_and_unavailable(plain, secured, "POST", BATCH, path, json=get_only)


@driver("queryItems")
async def drive_query_items(plain: Api, secured: Api) -> None:
    path = "/collections/q/query"
    for key, age in (("ada", 36), ("alan", 41), ("kid", 12)):
        await put(plain, f"/collections/q/items/{key}", {"age": age, "city": "FR"})
    body = {"where": {"age?gte": 30, "city": "FR"}, "sort": "-age", "limit": 1}
    first = (await plain.call("POST", QUERY, path, 200, json=body)).json()
    assert [item["key"] for item in first["items"]] == ["alan"]
    rest = {**body, "cursor": first["next_cursor"]}
    assert (await plain.call("POST", QUERY, path, 200, json=rest)).json()["items"] == [
        {"key": "ada", "value": {"age": 36, "city": "FR"}}
    ]
    counted = (await plain.call("POST", QUERY, path, 200, json={"count": True})).json()
    assert (counted["count"], counted["scanned"], counted["next_cursor"]) == (3, 3, None)
    answer = await plain.call("POST", QUERY, path, 400, json={"where": {"age?near": 3}})
    assert code(answer) == "invalid-query"
    await plain.call("POST", QUERY, path, 415, data=b"{}")
    body_too_large = b" " * (LIMITS.max_request_bytes + 1)
    json_type = {"Content-Type": "application/json"}
    await plain.call("POST", QUERY, path, 413, data=body_too_large, headers=json_type)
    await unauthorized_and_unavailable(plain, secured, "POST", QUERY, path, json={})


@driver("transact")
async def drive_transact(plain: Api, secured: Api) -> None:
    path = "/transactions"
    etag = await put(plain, "/collections/stats/items/users", 12)
    ops = [
        {"op": "put", "collection": "users", "key": "ada", "value": {}, "if_none_match": "*"},
        {"op": "put", "collection": "stats", "key": "users", "value": 13, "if_match": etag},
        {"op": "check", "collection": "stats", "key": "users", "if_match": etag},
    ]
    answer = await plain.call("POST", TRANSACT, path, 400, json={"ops": ops})
    assert code(answer) == "invalid-transaction"
    key = {"Idempotency-Key": "contract-1"}
    done = await plain.call("POST", TRANSACT, path, 200, json={"ops": ops[:2]}, headers=key)
    assert [sorted(result) for result in done.json()["results"]] == [["etag"], ["etag"]]
    failed = await plain.call("POST", TRANSACT, path, 412, json={"ops": ops[1:2]})
    assert (failed.json()["index"], failed.json()["current"]) == (0, 13)
    reused = await plain.call("POST", TRANSACT, path, 422, json={"ops": ops[2:]}, headers=key)
    assert code(reused) == "idempotency-key-reused"
    await plain.call("POST", TRANSACT, path, 415, data=b'{"ops": []}')
    body = b" " * (LIMITS.max_request_bytes + 1)
    json_type = {"Content-Type": "application/json"}
    await plain.call("POST", TRANSACT, path, 413, data=body, headers=json_type)
    check = {"ops": [{"op": "check", "collection": "c", "key": "k", "if_none_match": "*"}]}
    await unauthorized_and_unavailable(plain, secured, "POST", TRANSACT, path, json=check)


KEYS, KEY = "/keys", "/keys/{id}"


@driver("createKey")
async def drive_create_key(plain: Api, secured: Api) -> None:
    settings = {"name": "app", "scope": "write", "collections": ["users", "orders-*"]}
    created = (await secured.call("POST", KEYS, KEYS, 201, json=settings)).json()
    assert created["token"].startswith(f"isk_{created['id']}_")
    limited = {"name": "app", "scope": "read", "rate_limit": 2.5}
    assert (await secured.call("POST", KEYS, KEYS, 201, json=limited)).json()["burst"] == 3
    wrong = [{"name": "x", "scope": "owner"}, {"name": "x", "scope": {}}, {"scope": "read"}]
    for bad in [*wrong, {**settings, "extra": 1}, {**settings, "collections": ["a/b"]}]:
        assert code(await secured.call("POST", KEYS, KEYS, 400, json=bad)) == "invalid-input"
    await secured.call("POST", KEYS, KEYS, 415, data=b"{}")
    await secured.call("POST", KEYS, KEYS, 413, json={"name": "x" * 70_000, "scope": "read"})
    # Without auth there is no admin to manage keys: refused, not a key that locks everyone out.
    answer = await plain.call("POST", KEYS, KEYS, 403, json=settings)
    assert "token" in answer.json()["detail"]
    await unauthorized_and_unavailable(
        plain, secured, "POST", KEYS, KEYS, json=settings, unavailable=False
    )
    secured.backend_down()
    await secured.call("POST", KEYS, KEYS, 503, json=settings)


@driver("listKeys")
async def drive_list_keys(plain: Api, secured: Api) -> None:
    settings = {"name": "app", "scope": "read", "collections": ["users"]}
    created = (await secured.call("POST", KEYS, KEYS, 201, json=settings)).json()
    listed = (await secured.call("GET", KEYS, KEYS, 200)).json()["keys"]
    assert listed == [{k: v for k, v in created.items() if k != "token"}]
    await unauthorized_and_unavailable(plain, secured, "GET", KEYS, KEYS, unavailable=False)
    secured.backend_down()
    await secured.call("GET", KEYS, KEYS, 503)


@driver("revokeKey")
async def drive_revoke_key(plain: Api, secured: Api) -> None:
    created = (
        await secured.call("POST", KEYS, KEYS, 201, json={"name": "a", "scope": "read"})
    ).json()
    path = f"/keys/{created['id']}"
    await secured.call("GET", COLLECTIONS, "/collections", 200, token=created["token"])
    revoked = (await secured.call("DELETE", KEY, path, 200)).json()
    assert revoked["id"] == created["id"]
    answer = await secured.call("GET", COLLECTIONS, "/collections", 401, token=created["token"])
    assert "not valid" in answer.json()["detail"]
    assert code(await secured.call("DELETE", KEY, path, 404)) == "key-not-found"
    await unauthorized_and_unavailable(plain, secured, "DELETE", KEY, path, unavailable=False)
    secured.backend_down()
    await secured.call("DELETE", KEY, path, 503)


# -- the tests ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "method"),
    [(path, method) for path, method, _ in documented_operations()],
    ids=[operation_id for _, _, operation_id in documented_operations()],
)
async def test_operation_answers_every_documented_status(
    template: str, method: str, plain: Api, secured: Api
) -> None:
    operation = SPEC["paths"][template][method.lower()]
    drive = DRIVERS.get(operation["operationId"])
    assert drive is not None, f"no driver for {operation['operationId']}: add one"
    await drive(plain, secured)
    seen = {s for m, t, s in plain.seen | secured.seen if (m, t) == (method, template)}
    assert seen == {int(status) for status in operation["responses"]}


async def test_unknown_routes_and_methods_answer_the_documented_problems(plain: Api) -> None:
    for method, path, status, name in [
        ("GET", "/nowhere", 404, "RouteNotFound"),
        ("PATCH", "/collections/c/items", 405, "MethodNotAllowed"),
        ("POST", "/collections", 405, "MethodNotAllowed"),
    ]:
        response = await plain.client.request(method, path)
        body = await response.read()
        assert response.status == status
        assert response.content_type == "application/problem+json"
        pointer, documented = deref(f"/components/responses/{name}")
        check_schema(orjson.loads(body), f"{pointer}/content/application~1problem+json/schema")
        if status == 405:
            allow, _ = deref(f"{pointer}/headers/Allow")
            check_schema(response.headers["Allow"], f"{allow}/schema")
            assert set(orjson.loads(body)["allowed"]) == set(response.headers["Allow"].split(","))
        assert set(documented["headers"]) >= {"X-Request-ID"}


def test_every_operation_has_a_driver() -> None:
    documented = {operation_id for _, _, operation_id in documented_operations()}
    assert set(DRIVERS) == documented
