"""Errors and retries: problem bodies as exceptions, auth, an unreachable
service, and bounded retries that only replay what is safe to replay."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import orjson
import pytest
from aiohttp import web

from itemstore import (
    AsyncClient,
    Client,
    Collection,
    ItemstoreError,
    RetryPolicy,
    Unauthorized,
    Unavailable,
    ValidationError,
)

ServeApp = Callable[[web.Application], AbstractContextManager[str]]

FAST = RetryPolicy(retries=2, backoff=0.01, max_backoff=0.02, max_retry_after=1)


def test_value_errors(coll: Collection) -> None:
    big = "x" * (coll.client.limits().max_value_bytes + 1)
    with pytest.raises(ValidationError) as info:
        coll["big"] = big
    assert info.value.status == 413 and info.value.code == "value-too-large"
    assert info.value.detail and info.value.title
    with pytest.raises(TypeError):
        coll["obj"] = object()
    with pytest.raises(TypeError):
        coll["set"] = {1, 2}
    assert "big" not in coll and "obj" not in coll


def test_token_required(token_service_url: str) -> None:
    with Client(token_service_url) as anonymous:
        with pytest.raises(Unauthorized) as info:
            anonymous.collection("c")["k"] = 1
        assert info.value.status == 401 and info.value.code == "unauthorized"
        assert anonymous.info()["service"] == "itemstore"  # GET / is open
    with Client(token_service_url, token="wrong") as wrong, pytest.raises(Unauthorized):
        wrong.collection("c").get("k")
    with Client(token_service_url) as anonymous, pytest.raises(Unauthorized) as head:
        "k" in anonymous.collection("c")  # noqa: B015 - a HEAD: no problem body
    assert head.value.detail.startswith("HTTP 401 Unauthorized from http://")
    with Client(token_service_url, token="s3cret") as client:
        client.collection("c")["k"] = 1
        assert client.collection("c")["k"] == 1


async def test_token_required_async(token_service_url: str) -> None:
    async with AsyncClient(token_service_url) as anonymous:
        with pytest.raises(Unauthorized):
            await anonymous.collection("c").get("k")
    async with AsyncClient(token_service_url, token="s3cret") as client:
        await client.collection("c").set("k", 2)
        assert await client.collection("c").getitem("k") == 2


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_unreachable_service_names_the_url() -> None:
    url = closed_port_url()
    with Client(url, retry=FAST, timeout=2) as client, pytest.raises(Unavailable) as info:
        client.collection("users")["k"]
    assert f"cannot reach itemstore at {url}" in str(info.value)
    assert "GET /collections/users/items/k" in str(info.value)


async def test_unreachable_service_names_the_url_async() -> None:
    url = closed_port_url()
    async with AsyncClient(url, retry=FAST, timeout=2) as client:
        with pytest.raises(Unavailable) as info:
            await client.collection("users").set("k", 1)
    assert f"cannot reach itemstore at {url}" in str(info.value)


class Faults:
    """A stand-in service that injects faults the real one cannot produce on
    demand: it answers the first ``failures`` requests of each method with
    ``status`` (or drops the connection when status is 0), then succeeds."""

    def __init__(self, status: int, failures: int, retry_after: str | None = None) -> None:
        self.status, self.failures, self.retry_after = status, failures, retry_after
        self.seen: list[str] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(request.method)
        if self.seen.count(request.method) <= self.failures:
            if self.status == 0:
                assert request.transport is not None
                request.transport.close()  # the request arrived; its answer never leaves
                return web.Response()
            body = {"title": "busy", "status": self.status, "detail": "try later", "code": "busy"}
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            return web.Response(status=self.status, body=orjson.dumps(body), headers=headers)
        if request.method == "POST":
            return web.json_response({"key": "k" * 26, "etag": '"1"'}, status=201)
        return web.Response(body=b'{"ok":true}', headers={"ETag": '"1"'})


@pytest.fixture
def faults(serve_fake: ServeApp) -> Iterator[tuple[Faults, str]]:
    fake = Faults(503, 2, retry_after="0")
    with serve_fake(fake.app()) as url:
        yield fake, url


@pytest.mark.parametrize("status", [429, 503])
def test_retries_after_busy_answers(status: int, serve_fake: ServeApp) -> None:
    fake = Faults(status, 2, retry_after="0")
    with serve_fake(fake.app()) as url, Client(url, retry=FAST) as client:
        coll = client.collection("c")
        assert coll["k"] == {"ok": True}
        assert fake.seen == ["GET"] * 3
        coll["k"] = 1  # a plain PUT is retried too
        assert fake.seen.count("PUT") == 3
        with pytest.raises(Unavailable) as info:
            coll.add({"new": 1})  # POST .../items is never replayed after an answer
        assert fake.seen.count("POST") == 1
        assert info.value.status == status and info.value.detail == "try later"


def test_retries_are_bounded_and_honour_retry_after(serve_fake: ServeApp) -> None:
    fake = Faults(503, 10, retry_after="0")
    with serve_fake(fake.app()) as url, Client(url, retry=FAST) as client:
        with pytest.raises(Unavailable) as info:
            client.collection("c")["k"]
        assert fake.seen == ["GET"] * 3  # first try + 2 retries
        assert info.value.retry_after == 0.0
    patient = Faults(503, 1, retry_after="3600")
    with serve_fake(patient.app()) as url, Client(url, retry=FAST) as client:
        with pytest.raises(Unavailable) as info:
            client.collection("c")["k"]
        assert patient.seen == ["GET"]  # asked to wait longer than max_retry_after
        assert info.value.retry_after == 3600.0


def test_broken_answers_replay_only_safe_requests(serve_fake: ServeApp) -> None:
    fake = Faults(0, 1)
    with serve_fake(fake.app()) as url, Client(url, retry=FAST) as client:
        coll = client.collection("c")
        assert coll["k"] == {"ok": True}
        assert fake.seen == ["GET", "GET"]
        with pytest.raises(Unavailable) as info:
            coll.pop("k")  # maybe applied: a replay could report KeyError wrongly
        assert fake.seen.count("DELETE") == 1
        assert "cannot reach itemstore" in str(info.value)


async def test_async_retries(faults: tuple[Faults, str], serve_fake: ServeApp) -> None:
    fake, url = faults
    async with AsyncClient(url, retry=FAST) as client:
        assert await client.collection("c").get("k") == {"ok": True}
        assert fake.seen == ["GET"] * 3
        with pytest.raises(Unavailable):
            await client.collection("c").add(1)
        assert fake.seen.count("POST") == 1
    broken = Faults(0, 1)
    with serve_fake(broken.app()) as url2:
        async with AsyncClient(url2, retry=FAST) as client:
            assert await client.collection("c").get("k") == {"ok": True}
            with pytest.raises(Unavailable):
                await client.collection("c").delete("k")
    assert broken.seen == ["GET", "GET", "DELETE"]


def test_a_wrong_base_path_is_an_error_not_an_empty_collection(service_url: str) -> None:
    with Client(service_url + "/prefix") as wrong:
        with pytest.raises(ItemstoreError) as info:
            len(wrong.collection("c"))
        assert info.value.status == 404 and info.value.code == "not-found"
        with pytest.raises(ItemstoreError):
            wrong.collection("c").clear()


def test_collection_names_checked_locally(sync_client: Client) -> None:
    with pytest.raises(ValidationError) as info:
        sync_client.collection("no/slash")
    assert info.value.code == "invalid-collection-name"
    assert sync_client.collection(f"ok.-_{uuid.uuid4().hex[:4]}").get("k") is None
