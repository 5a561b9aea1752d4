"""storage_context: a per-request session for aiohttp handlers (for real) and as
a FastAPI dependency (when FastAPI is installed; it is not a dependency)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from itemstore import AsyncClient, AsyncSession, Client, Session, StorageContext, storage_context

AiohttpClient = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]


async def test_aiohttp_handler_commits_on_return_only(
    async_client: AsyncClient, aiohttp_client: AiohttpClient
) -> None:
    name = f"ctx-{uuid.uuid4().hex[:12]}"
    users = storage_context(name, client=async_client)

    @users.handler
    async def rename(request: web.Request, db: AsyncSession) -> web.Response:
        user = await db.setdefault(request.match_info["uid"], {"visits": 0})
        user["visits"] += 1  # in-place change, saved at the end of the request
        if request.query.get("fail"):
            raise RuntimeError("handler failed after changing the user")
        return web.json_response(user)

    app = web.Application()
    app.router.add_post("/users/{uid}", rename)
    http = await aiohttp_client(app)
    for expected in (1, 2):
        answer = await http.post("/users/ada")
        assert answer.status == 200 and (await answer.json())["visits"] == expected
    failed = await http.post("/users/ada", params={"fail": "1"})
    assert failed.status == 500
    assert await async_client.collection(name).getitem("ada") == {"visits": 2}


def test_sync_context_is_a_generator_dependency(sync_client: Client) -> None:
    name = f"ctx-{uuid.uuid4().hex[:12]}"
    ctx = storage_context(name, client=sync_client)
    assert isinstance(ctx, StorageContext)
    # what FastAPI does with a generator dependency: next(), then close() or throw()
    gen = ctx()
    db = next(gen)
    assert isinstance(db, Session)
    db["k"] = 1
    with pytest.raises(StopIteration):
        next(gen)
    assert sync_client.collection(name)["k"] == 1
    gen = ctx()
    next(gen)["k"] = 2
    with pytest.raises(ValueError):
        gen.throw(ValueError("endpoint failed"))
    assert sync_client.collection(name)["k"] == 1


def test_default_client_from_environment(monkeypatch: pytest.MonkeyPatch, service_url: str) -> None:
    import itemstore.context as context

    monkeypatch.setattr(context, "_default", None)
    monkeypatch.setenv("ITEMSTORE_URL", service_url)
    ctx = storage_context("users")
    assert ctx.client.url == service_url
    assert storage_context("other").client is ctx.client
    ctx.client.close()


def test_fastapi_dependency(sync_client: Client) -> None:
    fastapi = pytest.importorskip("fastapi")
    testclient = pytest.importorskip("fastapi.testclient")
    name = f"ctx-{uuid.uuid4().hex[:12]}"
    app = fastapi.FastAPI()
    users = storage_context(name, client=sync_client)

    @app.post("/users/{uid}")  # type: ignore[untyped-decorator]  # optional, untyped here
    def visit(uid: str, fail: bool = False, db: Session = fastapi.Depends(users)) -> object:  # noqa: B008
        user = db.setdefault(uid, {"visits": 0})
        user["visits"] += 1
        if fail:
            raise fastapi.HTTPException(409, "refused")
        return user

    with testclient.TestClient(app) as http:
        assert http.post("/users/ada").json() == {"visits": 1}
        assert http.post("/users/ada").json() == {"visits": 2}
        assert http.post("/users/ada", params={"fail": True}).status_code == 409
    assert sync_client.collection(name)["ada"] == {"visits": 2}
