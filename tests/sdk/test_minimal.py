"""The SDK's blind writes: ``c[k] = v``, ``set``, ``update`` and a session's
commit send ``Prefer: return=minimal``; the calls that need what a plain
write answers do not. Against the real service (SQLite), with a middleware
that records the ``Prefer`` header of every request."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiohttp import web
from aiohttp.typedefs import Handler

from itemstore import AsyncClient, Client, PreconditionFailed
from itemstore._protocol import Core, Response
from itemstore_service.app import create_app
from itemstore_service.config import Config
from tests.sdk.conftest import ServeApp

Seen = list[tuple[str, str, str | None]]
"""(method, path, Prefer header) of every request the service got."""


@pytest.fixture
def recorded(sqlite_config: Config, serve_fake: ServeApp) -> Iterator[tuple[str, Seen]]:
    """The real service's URL, and what each request asked for in ``Prefer``."""
    seen: Seen = []

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        seen.append((request.method, request.path, request.headers.get("Prefer")))
        return await handler(request)

    app = create_app(sqlite_config)
    app.middlewares.append(record)
    with serve_fake(app) as url:
        yield url, seen


def prefer_of(seen: Seen, method: str) -> list[str | None]:
    return [prefer for m, _, prefer in seen if m == method]


def test_dict_writes_are_blind(recorded: tuple[str, Seen]) -> None:
    url, seen = recorded
    with Client(url) as client:
        coll = client.collection("c")
        coll["k"] = {"v": 1}
        etag = coll.set("k", {"v": 2})
        item = coll.get_item("k", consistent=True)
        assert item is not None and (item.value, item.etag) == ({"v": 2}, etag)
        assert coll.set("k", 3, if_match=etag) != etag  # compare-and-set, 204 too
        with pytest.raises(PreconditionFailed) as failed:
            coll.set("k", 4, if_match=etag)
        assert failed.value.current == 3
        coll.update({"a": 1, "b": 2})
        assert coll.to_dict() == {"a": 1, "b": 2, "k": 3}
        assert prefer_of(seen, "PUT") == ["return=minimal"] * 4
        assert prefer_of(seen, "POST") == ["return=minimal"]  # the update's batch
        seen.clear()
        assert coll.setdefault("new", 0) == 0  # a conditional PUT that needs no body either,
        assert prefer_of(seen, "PUT") == [None]  # but stays a plain one


def test_session_commit_is_blind(recorded: tuple[str, Seen]) -> None:
    url, seen = recorded
    with Client(url) as client:
        client.collection("s").update({"gone": 0, "kept": 1})
        seen.clear()
        with client.session("s") as session:
            session["new"] = [1]
            session["kept"] = 2
            del session["gone"]
        assert [(m, p) for m, p, prefer in seen if prefer] == [("POST", "/collections/s/batch")]
        assert client.collection("s").to_dict() == {"kept": 2, "new": [1]}


async def test_async_writes_are_blind(recorded: tuple[str, Seen]) -> None:
    url, seen = recorded
    async with AsyncClient(url) as client:
        coll = client.collection("c")
        etag = await coll.set("k", "v")
        item = await coll.get_item("k", consistent=True)
        assert item is not None and (item.value, item.etag) == ("v", etag)
        await coll.update({"a": 1})
        async with client.session("c") as session:
            await session.set("b", 2)
        assert await coll.count() == 3
    assert [(m, prefer) for m, _, prefer in seen if prefer] == [
        ("PUT", "return=minimal"),
        ("POST", "return=minimal"),
        ("POST", "return=minimal"),
    ]


def test_core_reads_both_answers_of_a_minimal_put() -> None:
    core = Core("http://example.test")
    call = core.put("c", "k", b"1", minimal=True)
    assert call.request.headers["Prefer"] == "return=minimal"
    assert call.decode(Response(204, {"ETag": '"e"'}, b"")) == (None, '"e"')
    # A service that does not honour the preference answers as to a plain PUT.
    assert call.decode(Response(201, {"ETag": '"e"'}, b'{"key":"k","etag":"\\"e\\""}')) == (
        True,
        '"e"',
    )
    assert "Prefer" not in core.put("c", "k", b"1").request.headers
    assert core.batch("c", [], minimal=True).request.headers["Prefer"] == "return=minimal"
    assert "Prefer" not in core.batch("c", []).request.headers
