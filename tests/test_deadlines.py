"""Request deadlines: every data request is answered within request_timeout,
and a write's 503 says truly whether it was applied.

The hangs are real: the test holds the SQLite write lock (the flock every
writer of the file takes, as another worker process would), so the real
writer thread blocks inside the real backend. Only where SQLite cannot be made
to hang on demand (its reads) does a test wrap the backend with a fake, and
says so.
"""

from __future__ import annotations

import asyncio
import contextvars
import fcntl
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from itemstore_service import deadlines
from itemstore_service.app import create_app
from itemstore_service.appkeys import STORE
from itemstore_service.backends.base import Backend, ItemKey, Record
from itemstore_service.backends.dynamodb_errors import Unreachable
from itemstore_service.backends.dynamodb_sigv4 import Credentials
from itemstore_service.backends.dynamodb_wire import DynamoDBWire, WirePolicy
from itemstore_service.batching import Batcher
from itemstore_service.breaker import GuardedBackend
from itemstore_service.config import Config
from itemstore_service.errors import BackendUnavailable

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]

TIMEOUT = 0.5
SLACK = 0.4  # the contract's 0.25 s, and room for a busy shared machine
URL = "/collections/c/items"


@contextmanager
def write_lock_held(config: Config) -> Iterator[None]:
    """Hold the SQLite file's write lock, as a worker busy writing would."""
    fd = os.open(config.sqlite_path + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@pytest.fixture
def config(sqlite_config: Config) -> Config:
    return replace(sqlite_config, request_timeout=TIMEOUT, breaker_failures=1000)


@pytest.fixture
async def client(config: Config, aiohttp_client: MakeClient) -> Client:
    return await aiohttp_client(create_app(config))


async def timed(call: Awaitable[Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = await call
    return result, time.perf_counter() - start


async def problem(response: Any) -> dict[str, Any]:
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    assert response.content_type == "application/problem+json"
    body: dict[str, Any] = await response.json()
    assert body["code"] == "backend-unavailable"
    return body


async def test_a_write_stuck_in_storage_is_answered_at_the_deadline_may_have_been_applied(
    client: Client, config: Config
) -> None:
    with write_lock_held(config):
        response, elapsed = await timed(client.put(f"{URL}/a", json=1))
        body = await problem(response)
        assert TIMEOUT <= elapsed < TIMEOUT + SLACK
        assert body["detail"].endswith("the write may have been applied")
    # And so it was: the writer thread went on once the lock was free.
    await client.app[STORE].drain()
    assert await (await client.get(f"{URL}/a")).json() == 1


async def test_a_write_still_queued_at_its_deadline_is_withdrawn_and_never_applied(
    client: Client, config: Config
) -> None:
    with write_lock_held(config):
        first = asyncio.create_task(client.put(f"{URL}/first", json=1))
        await asyncio.sleep(0.1)  # the first batch is in the writer thread, stuck
        second, elapsed = await timed(client.put(f"{URL}/second", json=2))
        body = await problem(second)
        assert TIMEOUT <= elapsed < TIMEOUT + SLACK
        assert body["detail"].endswith("the write was not applied")
        assert "may have been applied" in (await problem(await first))["detail"]
    await client.app[STORE].drain()
    assert (await client.get(f"{URL}/first")).status == 200
    assert (await client.get(f"{URL}/second")).status == 404  # and never will be


async def test_a_conditional_write_and_a_batch_stuck_in_storage_may_have_been_applied(
    client: Client, config: Config
) -> None:
    with write_lock_held(config):
        created = client.put(f"{URL}/a", json=1, headers={"If-None-Match": "*"})
        assert "may have been applied" in (await problem(await created))["detail"]
    await client.app[STORE].drain()
    with write_lock_held(config):
        ops = {"ops": [{"op": "delete", "key": "a"}]}
        batch = await client.post("/collections/c/batch", json=ops)
        assert "may have been applied" in (await problem(batch))["detail"]


async def test_reads_go_on_while_writes_are_stuck(client: Client, config: Config) -> None:
    assert (await client.put(f"{URL}/a", json=1)).status == 201
    with write_lock_held(config):
        stuck = asyncio.create_task(client.put(f"{URL}/b", json=2))
        response, elapsed = await timed(client.get(f"{URL}/a"))
        assert response.status == 200 and elapsed < TIMEOUT
        await problem(await stuck)


class HangingReads:
    """Delegates to the real backend, but its reads never answer while
    ``hang`` is set. A fake on purpose: SQLite's reads cannot be made to hang
    on demand (WAL readers take no lock)."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name = inner.name
        self.released = asyncio.Event()

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.inner, attr)

    async def get_many(self, keys: Sequence[ItemKey], *, consistent: bool) -> dict[ItemKey, Record]:
        await self.released.wait()
        return await self.inner.get_many(keys, consistent=consistent)


async def test_a_read_that_hangs_is_answered_at_the_deadline(client: Client) -> None:
    guarded = client.app[STORE].backend
    assert isinstance(guarded, GuardedBackend)
    guarded.inner = hanging = HangingReads(guarded.inner)
    response, elapsed = await timed(client.get(f"{URL}/a"))
    hanging.released.set()  # the read goes on, so that the app can drain and stop
    body = await problem(response)
    assert TIMEOUT <= elapsed < TIMEOUT + SLACK
    assert "applied" not in body["detail"]  # a read applies nothing
    assert "within the request timeout of 0.5 s" in body["detail"]


async def test_probes_and_the_service_root_have_no_deadline(client: Client) -> None:
    guarded = client.app[STORE].backend
    assert isinstance(guarded, GuardedBackend)
    guarded.inner = HangingReads(guarded.inner)
    assert (await client.get("/")).status == 200
    assert (await client.get("/healthz")).status == 200


# -- the batcher and the deadline --------------------------------------------------


async def test_the_batcher_marks_a_taken_write_handed_over_and_a_withdrawn_one_not() -> None:
    release = asyncio.Event()
    sent: list[list[int]] = []

    async def run(ops: list[int]) -> list[int]:
        sent.append(ops)
        await release.wait()
        return ops

    batcher = Batcher[int, int](run, max_batch=10, max_in_flight=1, writes=True)
    loop = asyncio.get_running_loop()

    async def submit(op: int) -> deadlines.Deadline:
        deadline = deadlines.Deadline(loop.time() + 0.2)
        context = contextvars.copy_context()
        context.run(deadlines.set_current, deadline)  # as the request's middleware does
        task = loop.create_task(_until(batcher.submit(op), deadline), context=context)
        await asyncio.sleep(0.01)
        tasks.append(task)
        return deadline

    tasks: list[asyncio.Task[Any]] = []
    first = await submit(1)  # taken at once
    second = await submit(2)  # queued behind it
    await asyncio.sleep(0.3)  # both deadlines pass
    assert [task.done() for task in tasks] == [True, True]
    assert (first.write_handed_over, second.write_handed_over) == (True, False)
    assert batcher.queued == 0
    release.set()
    await batcher.drain()
    assert sent == [[1]]  # the second op was never sent


async def _until(call: Awaitable[Any], deadline: deadlines.Deadline) -> Any:
    with pytest.raises(TimeoutError):
        async with asyncio.timeout_at(deadline.at):
            await call


async def test_a_batch_runs_until_the_latest_deadline_of_its_callers() -> None:
    seen: list[float | None] = []

    async def run(ops: list[int]) -> list[int]:
        seen.append(deadlines.time_left())
        return ops

    batcher = Batcher[int, int](run, max_batch=10, max_in_flight=1)
    loop = asyncio.get_running_loop()

    async def submit(op: int, seconds: float) -> int:
        deadlines.set_current(deadlines.Deadline(loop.time() + seconds))
        return await batcher.submit(op)

    assert list(await asyncio.gather(submit(1, 1.0), submit(2, 3.0))) == [1, 2]
    assert len(seen) == 1 and seen[0] is not None and 2.5 < seen[0] <= 3.0
    assert await batcher.submit(3) == 3  # no deadline: none for the batch
    assert seen[1] is None


# -- the one timer that watches every request's deadline ------------------------


class _Request:
    """What ``DeadlineWatch.answer`` reads of a request: its method."""

    def __init__(self, method: str) -> None:
        self.method = method


async def test_the_watch_expires_requests_in_order_with_one_timer() -> None:
    watch = deadlines.DeadlineWatch(0.1)
    loop = asyncio.get_running_loop()
    finished: dict[str, float] = {}
    start = loop.time()

    async def hang(name: str) -> web.StreamResponse:
        try:
            await asyncio.sleep(10)
        finally:
            finished[name] = loop.time() - start
        return web.Response()

    async def quick(request: web.Request) -> web.StreamResponse:
        return web.Response(text="fast")

    async def answer(name: str, method: str) -> str:
        request: Any = _Request(method)
        try:
            await watch.answer(request, lambda _: hang(name))
        except BackendUnavailable as error:
            return error.detail
        return "answered"

    first = asyncio.create_task(answer("first", "GET"))
    await asyncio.sleep(0.03)
    second = asyncio.create_task(answer("second", "PUT"))
    response = await watch.answer(_Request("GET"), quick)  # type: ignore[arg-type]
    assert isinstance(response, web.Response) and response.text == "fast"
    read, write = await asyncio.gather(first, second)
    assert read == "no answer from storage within the request timeout of 0.1 s"
    assert write.endswith("the write was not applied")
    assert 0.09 <= finished["first"] < finished["second"] and 0.12 <= finished["second"] < 0.5
    assert first.cancelling() == 0 and second.cancelling() == 0  # the cancel is taken back
    assert watch._timer is None and not watch._watched  # nothing left to watch


async def test_a_request_also_cancelled_from_outside_stays_cancelled() -> None:
    watch = deadlines.DeadlineWatch(0.05)

    async def hang(request: web.Request) -> web.StreamResponse:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            asyncio.current_task().cancel()  # type: ignore[union-attr]  # a second cancel
            raise
        return web.Response()

    task = asyncio.create_task(watch.answer(_Request("GET"), hang))  # type: ignore[arg-type]
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_handler_that_swallows_the_cancel_is_answered_and_uncancelled() -> None:
    watch = deadlines.DeadlineWatch(0.05)

    async def stubborn(request: web.Request) -> web.StreamResponse:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            return web.Response(text="late")
        return web.Response()

    async def run() -> tuple[web.StreamResponse, int]:
        response = await watch.answer(_Request("GET"), stubborn)  # type: ignore[arg-type]
        return response, asyncio.current_task().cancelling()  # type: ignore[union-attr]

    response, cancelling = await asyncio.create_task(run())
    assert isinstance(response, web.Response) and response.text == "late"
    assert cancelling == 0


# -- the DynamoDB wire client under a deadline -------------------------------------


@pytest.fixture
async def silent_endpoint() -> AsyncIterator[str]:
    """A real TCP server that accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_the_wire_client_cuts_its_timeouts_and_retries_to_the_deadline(
    silent_endpoint: str,
) -> None:
    async def credentials() -> Credentials:
        return Credentials("testing", "testing", None)

    policy = WirePolicy(attempts=5, read_timeout=10.0)
    async with DynamoDBWire(silent_endpoint, "us-east-1", credentials, policy) as wire:
        deadlines.set_current(deadlines.Deadline(asyncio.get_running_loop().time() + 0.3))
        start = time.perf_counter()
        with pytest.raises(Unreachable):
            await wire.request("GetItem", {"TableName": "t", "Key": {}})
        assert time.perf_counter() - start < 0.3 + SLACK  # not 10 s, not 5 attempts
