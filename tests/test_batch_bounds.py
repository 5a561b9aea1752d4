"""A batch body is capped at ``max_batch_bytes`` before it is read whole, and
a large one is parsed off the event loop: other clients keep their latency."""

from __future__ import annotations

import asyncio
import contextlib
import io
import statistics
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from itemstore_service.app import create_app
from itemstore_service.config import Config, ConfigError
from itemstore_wire.contract import Limits
from tests.guarded_service import connect
from tests.live_service import Served, serve

CAP = 64 * 1024


@pytest.fixture
async def client(
    tmp_path: Path,
) -> AsyncIterator[TestClient[aiohttp.web.Request, aiohttp.web.Application]]:
    config = Config(sqlite_path=str(tmp_path / "db.sqlite3"), limits=Limits(max_batch_bytes=CAP))
    async with TestClient(TestServer(create_app(config))) as test_client:
        yield test_client


def put_ops(count: int, value: object) -> bytes:
    return orjson.dumps(
        {"ops": [{"op": "put", "key": f"k{i}", "value": value} for i in range(count)]}
    )


async def test_the_limit_is_published(
    client: TestClient[aiohttp.web.Request, aiohttp.web.Application],
) -> None:
    info = await (await client.get("/")).json()
    assert info["limits"]["max_batch_bytes"] == CAP
    assert Limits().max_batch_bytes == 4 * 1024 * 1024 < Limits().max_request_bytes


async def test_a_batch_within_the_cap_is_written(
    client: TestClient[aiohttp.web.Request, aiohttp.web.Application],
) -> None:
    body = put_ops(10, "x" * 1000)
    assert len(body) < CAP
    answer = await client.post(
        "/collections/c/batch", data=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status == 200
    assert [r["status"] for r in (await answer.json())["results"]] == [201] * 10


async def test_a_body_over_the_cap_is_refused_from_its_content_length(
    client: TestClient[aiohttp.web.Request, aiohttp.web.Application],
) -> None:
    """Refused from the head alone: the client has sent no byte of the body."""
    assert client.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(
        b"POST /collections/c/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {CAP + 1}\r\n\r\n".encode()
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 413 ")
    writer.close()


async def test_a_chunked_body_is_refused_once_past_the_cap(
    client: TestClient[aiohttp.web.Request, aiohttp.web.Application],
) -> None:
    """A chunked body that goes on and on is refused once it passed the cap,
    without waiting for its end (there is none here)."""
    assert client.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(
        b"POST /collections/c/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b" " * 8192
    for _ in range(2 * CAP // len(chunk)):
        writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 413 ")
    writer.close()


def test_the_cap_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--max-batch-bytes"):
        Config(limits=Limits(max_batch_bytes=Limits().max_request_bytes + 1))
    with pytest.raises(ConfigError, match="--max-batch-bytes"):
        Config(limits=Limits(max_batch_bytes=0))


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve(tmp_path_factory.mktemp("batches")) as served:
        yield served


def test_a_body_of_16_mib_is_refused_without_growing_memory(service: Served) -> None:
    """16 MiB of empty objects once took the server from 70 to 613 MB."""
    body = orjson.dumps({"ops": [{}] * (16 * 1024 * 1024 // 3)})
    before = service.rss_bytes()
    with connect(service.port) as sock:
        head = (
            "POST /collections/c/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        sock.sendall(head.encode())
        with contextlib.suppress(OSError):  # the server may close before taking all of it
            sock.sendall(body)
        answer = sock.makefile("rb").readline()
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert service.rss_bytes() - before < 32 * 1024 * 1024


def batch_of_16_mib() -> bytes:
    """Once parsed whole on the event loop: 0.9 s each, other clients' p50 846 ms."""
    body = put_ops(100, [{}] * (16 * 1024 * 1024 // 310))
    assert Limits().max_batch_bytes < len(body) < Limits().max_request_bytes
    return body


async def test_large_batches_leave_other_clients_served(service: Served) -> None:
    """Small GETs sent during 8 concurrent batches of 16 MiB keep a p50 under
    100 ms (6.6 s when such bodies were read and parsed whole)."""
    body = batch_of_16_mib()
    url = service.url + "/collections/c/batch"
    latencies: list[float] = []
    async with aiohttp.ClientSession() as session:
        await session.put(service.url + "/collections/c/items/small", json=1)

        async def batch() -> int:
            async with session.post(
                url, data=io.BytesIO(body), headers={"Content-Type": "application/json"}
            ) as answer:
                return answer.status

        async def one_get() -> None:
            start = time.monotonic()
            async with session.get(service.url + "/collections/c/items/small") as answer:
                assert answer.status == 200
            latencies.append(time.monotonic() - start)

        async def small_gets() -> None:
            """One GET every 10 ms, not waiting for the last: a GET sent
            while the loop is blocked waits as long as the block lasts."""
            gets: list[asyncio.Future[None]] = []
            while pending and len(gets) < 1000:
                gets.append(asyncio.ensure_future(one_get()))
                await asyncio.sleep(0.01)
            await asyncio.gather(*gets)

        pending = [asyncio.ensure_future(batch()) for _ in range(8)]
        getter = asyncio.ensure_future(small_gets())
        statuses = await asyncio.gather(*pending)
        pending.clear()
        await getter
    assert statuses == [413] * 8
    assert latencies
    assert statistics.median(latencies) < 0.1, sorted(latencies)
