"""Admission control: past max_inflight requests a worker answers 503
overloaded at once, before reading the body; probes are never refused; the
batch queues are bounded too.

Requests are held in flight for real: their bodies are still being sent (a
raw socket sends the headers and part of the body, the rest later), so the
handler is inside ``await request.read()``. Nothing is faked.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from itemstore_service.admission import ADMISSION, queue_bound
from itemstore_service.app import create_app
from itemstore_service.batching import Batcher
from itemstore_service.config import Config, ConfigError
from itemstore_service.errors import Overloaded
from itemstore_service.observability.metrics import render_metrics

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]
URL = "/collections/c/items"


@pytest.fixture
async def client(sqlite_config: Config, aiohttp_client: MakeClient) -> Client:
    return await aiohttp_client(create_app(replace(sqlite_config, max_inflight=2)))


async def open_request(client: Client, path: str, length: int) -> asyncio.StreamWriter:
    """Send the headers of a PUT of ``length`` body bytes and one byte of it:
    the request is in flight until the rest comes."""
    assert client.port is not None
    _reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(
        f"PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n1".encode()
    )
    await writer.drain()
    return writer


@pytest.fixture
async def two_in_flight(client: Client) -> AsyncIterator[None]:
    writers = [await open_request(client, f"{URL}/held{i}", 1 << 20) for i in range(2)]
    for _ in range(100):  # until both handlers run
        if client.app[ADMISSION].inflight == 2:
            break
        await asyncio.sleep(0.01)
    assert client.app[ADMISSION].inflight == 2
    yield
    for writer in writers:
        writer.close()


@pytest.mark.usefixtures("two_in_flight")
async def test_past_max_inflight_a_request_is_refused_at_once(client: Client) -> None:
    start = time.perf_counter()
    response = await client.get(f"{URL}/a")
    assert time.perf_counter() - start < 0.5
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    assert response.content_type == "application/problem+json"
    body = await response.json()
    assert body["code"] == "overloaded"
    assert body["detail"].endswith("the request was not applied")
    assert 'itemstore_requests_refused_total{reason="in-flight"}' in render_metrics().decode()


@pytest.mark.usefixtures("two_in_flight")
async def test_a_large_body_is_refused_before_it_is_read(client: Client) -> None:
    # Only the headers and one byte of a 10 MB body are sent: the answer comes
    # anyway, so it was given without reading the body.
    assert client.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    try:
        writer.write(
            f"PUT {URL}/big HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {10 * 1024 * 1024}\r\n\r\n[".encode()
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout=2.0)
        assert status_line.startswith(b"HTTP/1.1 503")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=2.0)
        assert b"Retry-After: 1" in head
    finally:
        writer.close()


@pytest.mark.usefixtures("two_in_flight")
async def test_probes_are_never_refused(client: Client) -> None:
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200
    assert (await client.get("/metrics")).status == 200
    assert (await client.get("/")).status == 503  # not a probe


async def test_requests_are_taken_again_once_the_ones_in_flight_end(client: Client) -> None:
    writers = [await open_request(client, f"{URL}/held{i}", 2) for i in range(2)]
    await asyncio.sleep(0.1)
    assert (await client.get(f"{URL}/a")).status == 503
    for writer in writers:
        writer.write(b"]")  # the bodies are complete: "1]" is refused as JSON (400)
        await writer.drain()
    for _ in range(100):
        if client.app[ADMISSION].inflight == 0:
            break
        await asyncio.sleep(0.01)
    assert (await client.get(f"{URL}/a")).status == 404
    for writer in writers:
        writer.close()


async def test_a_full_batch_queue_refuses_a_submission() -> None:
    release = asyncio.Event()

    async def run(ops: list[int]) -> list[int]:
        await release.wait()
        return ops

    batcher = Batcher[int, int](run, max_batch=2, max_in_flight=1, max_queued=3, name="write")
    in_flight = asyncio.create_task(batcher.submit(0))
    await asyncio.sleep(0.01)  # taken: the queue is empty again
    queued = asyncio.create_task(batcher.submit_group([1, 2, 3]))
    await asyncio.sleep(0)
    with pytest.raises(Overloaded, match="write queue of this worker is full"):
        await batcher.submit(4)
    release.set()
    assert await in_flight == 0 and await queued == [1, 2, 3]
    assert await batcher.submit_group(list(range(10))) == list(range(10))  # alone: taken
    assert 'itemstore_requests_refused_total{reason="write-queue"}' in render_metrics().decode()


async def test_an_op_withdrawn_from_the_queue_frees_its_room() -> None:
    release = asyncio.Event()

    async def run(ops: list[int]) -> list[int]:
        await release.wait()
        return ops

    batcher = Batcher[int, int](run, max_batch=2, max_in_flight=1, max_queued=2)
    in_flight = asyncio.create_task(batcher.submit(0))
    await asyncio.sleep(0.01)
    given_up = asyncio.create_task(batcher.submit_group([1, 2]))
    await asyncio.sleep(0)
    assert batcher.queued == 2
    given_up.cancel()
    await asyncio.gather(given_up, return_exceptions=True)
    assert batcher.queued == 0
    later = asyncio.create_task(batcher.submit_group([3, 4]))
    release.set()
    assert await in_flight == 0 and await later == [3, 4]


async def test_a_queue_is_behind_by_what_the_next_round_of_batches_leaves() -> None:
    """The pace is learnt from the batches the queue ran (20 ms an operation
    here, for real). What the next batch takes is not behind; the ten
    operations queued past it are some 0.2 s of work, known at once, before
    the oldest of them has waited at all."""

    async def run(ops: list[int]) -> list[int]:
        await asyncio.sleep(0.02 * len(ops))
        return ops

    batcher = Batcher[int, int](run, max_batch=2, max_in_flight=1)
    for i in range(8):
        assert await batcher.submit(i) == i
    running = asyncio.create_task(batcher.submit(-1))
    await asyncio.sleep(0.001)  # taken into a batch: the queue is empty
    next_round = [asyncio.create_task(batcher.submit(i)) for i in range(2)]
    await asyncio.sleep(0)
    assert batcher.queued == 2 and batcher.behind() == 0.0
    past_it = [asyncio.create_task(batcher.submit(i)) for i in range(2, 12)]
    await asyncio.sleep(0)
    assert 0.1 < batcher.behind() < 0.5
    assert await running == -1
    assert await asyncio.gather(*next_round, *past_it) == list(range(12))
    assert batcher.behind() == 0.0


def test_the_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="--max-inflight"):
        Config(max_inflight=0)
    with pytest.raises(ConfigError, match="--request-timeout"):
        Config(request_timeout=0)
    with pytest.raises(ConfigError, match="--breaker-failures"):
        Config(breaker_failures=0)
    assert queue_bound(256, 100) == 25_600 and queue_bound(1, 100) == 1024


async def test_a_write_queue_behind_its_bound_refuses_new_requests(
    sqlite_config: Config, aiohttp_client: MakeClient
) -> None:
    """Writes wait for real behind the SQLite file's write lock. Once more
    operations are queued than the next batch takes, and the batch holding
    the lock has run long enough that they are more than max_queue_delay of
    work at its pace, a new request is refused."""
    from tests.test_deadlines import write_lock_held

    config = replace(sqlite_config, max_queue_delay=0.2, request_timeout=5)
    client = await aiohttp_client(create_app(config))
    ops = config.limits.max_batch_ops

    def batch(name: str) -> dict[str, object]:
        return {"ops": [{"op": "put", "key": f"{name}-{i}", "value": i} for i in range(ops)]}

    with write_lock_held(config):
        # The first write is taken into a batch that the lock holds; the
        # batches after it wait in the queue, more than one batch can take.
        stuck = [asyncio.create_task(client.put(f"{URL}/w0", json=0))]
        await asyncio.sleep(0.05)
        stuck += [
            asyncio.create_task(client.post("/collections/c/batch", json=batch(f"b{i}")))
            for i in range(3)
        ]
        await asyncio.sleep(0.05)
        refused = await client.get(f"{URL}/w0")
        assert refused.status == 503 and refused.headers["Retry-After"] == "1"
        body = await refused.json()
        assert body["code"] == "overloaded" and "behind" in body["detail"]
    assert [r.status for r in await asyncio.gather(*stuck)] == [201, 200, 200, 200]
    assert (await client.get(f"{URL}/w0")).status == 200  # caught up: taken again


async def test_a_lagging_event_loop_refuses_new_requests(
    sqlite_config: Config, aiohttp_client: MakeClient
) -> None:
    """The worker's own loop is kept busy for real (a blocking callback every
    turn), so every timer runs late: new requests are refused until it is not."""
    client = await aiohttp_client(create_app(replace(sqlite_config, max_loop_lag=0.05)))
    loop = asyncio.get_running_loop()
    busy_until = loop.time() + 1.2

    def hog() -> None:
        time.sleep(0.08)
        if loop.time() < busy_until:
            loop.call_later(0.001, hog)

    loop.call_soon(hog)
    await asyncio.sleep(0.8)  # every one of the last timers ran late
    refused = await client.get(f"{URL}/x")
    assert refused.status == 503 and (await refused.json())["code"] == "overloaded"
    await asyncio.sleep(0.5)
    for _ in range(100):  # the next timer after the hog ends reads no lag
        if client.app[ADMISSION].loop_lag < 0.05:
            break
        await asyncio.sleep(0.02)
    assert (await client.get(f"{URL}/x")).status == 404


async def test_a_stall_before_the_first_samples_is_no_lag(
    sqlite_config: Config, aiohttp_client: MakeClient
) -> None:
    """One long stall (as at start-up, before the worker's first timers) does
    not make a worker refuse: lag is judged on a full window of samples."""
    client = await aiohttp_client(create_app(replace(sqlite_config, max_loop_lag=0.05)))
    time.sleep(0.3)  # noqa: ASYNC251  # the loop is stalled once, right after start-up
    answer = await client.get(f"{URL}/x")
    assert answer.status == 404  # taken (no such item), not refused
    assert client.app[ADMISSION].loop_lag < 0.05
