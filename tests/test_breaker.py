"""The circuit breaker around the backend: it opens after breaker_failures
failed calls in a row, refuses data requests at once while open (and makes
/readyz 503), probes with a ping when its interval ends, and closes by itself.

``Flaky`` wraps the real SQLite backend and fails while told to: a fake on
purpose, as a real SQLite file cannot be made to fail and then recover on
demand (a deleted or damaged file fails for good). The timeout test needs no
fake: it holds the real SQLite write lock.
"""

from __future__ import annotations

import asyncio
import fcntl
import multiprocessing
import os
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from itemstore_service.app import create_app
from itemstore_service.appkeys import STORE
from itemstore_service.backends.base import Backend, ItemKey, Puts, Record, Records
from itemstore_service.breaker import BREAKER, Breaker, GuardedBackend, HostBreaker
from itemstore_service.config import Config
from itemstore_service.errors import BackendUnavailable
from itemstore_service.observability.metrics import render_metrics

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]
URL = "/collections/c/items"


class Flaky:
    """Delegates to the real backend, counting calls; every call raises
    BackendUnavailable while ``down`` is set."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name = inner.name
        self.down = False
        self.calls = 0

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.inner, attr)

    def _enter(self) -> None:
        self.calls += 1
        if self.down:
            raise BackendUnavailable("the sqlite backend is unreachable (injected)")

    async def get_many(self, keys: Sequence[ItemKey], *, consistent: bool) -> dict[ItemKey, Record]:
        self._enter()
        return await self.inner.get_many(keys, consistent=consistent)

    async def write_many(
        self, puts: Puts, deletes: Sequence[ItemKey], *, previous: Collection[ItemKey]
    ) -> Records:
        self._enter()
        return await self.inner.write_many(puts, deletes, previous=previous)

    async def put_if(self, key: ItemKey, record: Record, *, expected: str | None) -> Record | None:
        self._enter()
        return await self.inner.put_if(key, record, expected=expected)

    async def ping(self) -> None:
        self._enter()
        await self.inner.ping()


@pytest.fixture
async def client(sqlite_config: Config, aiohttp_client: MakeClient) -> Client:
    return await aiohttp_client(create_app(replace(sqlite_config, request_timeout=0.5)))


def flaky(client: Client) -> Flaky:
    guarded = client.app[STORE].backend
    assert isinstance(guarded, GuardedBackend)
    guarded.inner = wrapped = Flaky(guarded.inner)
    return wrapped


async def test_opens_after_five_failures_refuses_at_once_and_recovers_by_itself(
    client: Client,
) -> None:
    backend = flaky(client)
    backend.down = True
    for i in range(5):  # the default breaker_failures
        response = await client.get(f"{URL}/{i}")
        assert response.status == 503
        assert "injected" in (await response.json())["detail"]
    assert client.app[BREAKER].is_open
    calls = backend.calls

    start = time.perf_counter()
    refused = await client.put(f"{URL}/x", json=1)
    assert time.perf_counter() - start < 0.1  # at once, not at a deadline
    assert refused.status == 503 and refused.headers["Retry-After"] == "1"
    body = await refused.json()
    assert body["code"] == "backend-unavailable"
    assert body["detail"].endswith("the request was not applied")
    assert (await client.get("/readyz")).status == 503
    assert (await client.get("/healthz")).status == 200
    assert backend.calls == calls  # nothing reached the backend while open
    assert 'itemstore_breaker_open{backend="sqlite"} 1.0' in render_metrics().decode()

    backend.down = False  # storage is back; no one tells the service
    await asyncio.sleep(1.3)  # the first interval, and its probe
    assert not client.app[BREAKER].is_open
    assert (await client.put(f"{URL}/x", json=1)).status == 201
    assert (await client.get("/readyz")).status == 200
    assert 'itemstore_breaker_open{backend="sqlite"} 0.0' in render_metrics().decode()


async def test_failed_conditions_and_successes_are_not_failures(client: Client) -> None:
    backend = flaky(client)
    assert (await client.put(f"{URL}/a", json=1)).status == 201
    for _ in range(10):
        created = await client.put(f"{URL}/a", json=2, headers={"If-None-Match": "*"})
        assert created.status == 412
    backend.down = True
    for _ in range(4):
        assert (await client.get(f"{URL}/a")).status == 503
    backend.down = False
    assert (await client.get(f"{URL}/a")).status == 200  # the count starts again
    backend.down = True
    for _ in range(4):
        assert (await client.get(f"{URL}/a")).status == 503
    assert not client.app[BREAKER].is_open


async def test_calls_stuck_past_their_deadline_open_it(
    sqlite_config: Config, aiohttp_client: MakeClient
) -> None:
    config = replace(sqlite_config, request_timeout=0.3, breaker_failures=2)
    client = await aiohttp_client(create_app(config))
    fd = os.open(config.sqlite_path + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)  # the real writer thread blocks on it
    try:
        stuck = [client.put(f"{URL}/{i}", json=i, headers={"If-None-Match": "*"}) for i in range(2)]
        for response in await asyncio.gather(*stuck):
            assert response.status == 503
        assert client.app[BREAKER].is_open
        start = time.perf_counter()
        assert (await client.get(f"{URL}/0")).status == 503
        assert time.perf_counter() - start < 0.1
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    await asyncio.sleep(1.3)  # the probe (a ping, which reads) succeeds
    assert (await client.get(f"{URL}/0")).status == 200  # the stuck write went through


# -- the breaker alone ---------------------------------------------------------------


async def test_a_failed_probe_doubles_the_interval_up_to_the_cap() -> None:
    probes: list[float] = []
    healthy = False

    async def probe() -> None:
        probes.append(time.perf_counter())
        if not healthy:
            raise BackendUnavailable("still down")

    breaker = Breaker(
        "test", probe, failures=1, probe_timeout=1.0, first_interval=0.1, max_interval=0.3
    )
    breaker.failed()
    assert breaker.is_open and breaker.interval == 0.1
    with pytest.raises(BackendUnavailable) as refused:
        breaker.check()
    assert refused.value.retry_after == 1  # at least 1 s
    await asyncio.sleep(0.45)  # probes at 0.1 and 0.3: intervals 0.1, 0.2, then 0.3 (capped)
    assert len(probes) == 2 and breaker.interval == 0.3
    healthy = True
    await asyncio.sleep(0.4)
    assert not breaker.is_open and breaker.interval == 0.1
    breaker.check()  # closed: no error
    await breaker.stop()


async def test_a_probe_that_hangs_fails_at_its_timeout() -> None:
    async def probe() -> None:
        await asyncio.Event().wait()

    breaker = Breaker("test", probe, failures=1, probe_timeout=0.1, first_interval=0.05)
    breaker.failed()
    await asyncio.sleep(0.3)
    assert breaker.is_open and breaker.interval == 0.1  # one failed probe: doubled
    await breaker.stop()


async def test_retry_after_counts_the_seconds_to_the_next_probe() -> None:
    async def probe() -> None:
        raise BackendUnavailable("down")

    breaker = Breaker("test", probe, failures=1, probe_timeout=1.0, first_interval=2.5)
    breaker.failed()
    assert breaker.retry_after() == 3
    await breaker.stop()


async def test_an_open_breaker_stops_the_other_workers_of_its_host_until_its_probe_succeeds() -> (
    None
):
    host = HostBreaker()
    healthy = False
    probes = 0

    async def probe() -> None:
        nonlocal probes
        probes += 1
        if not healthy:
            raise BackendUnavailable("down")

    async def never() -> None:
        raise AssertionError("only the worker whose breaker opened probes")

    opener = Breaker("test", probe, failures=1, probe_timeout=1.0, first_interval=0.1, host=host)
    other = Breaker("test", never, failures=5, probe_timeout=1.0, first_interval=0.1, host=host)
    other.check()  # closed
    opener.failed()
    assert other.is_open
    with pytest.raises(BackendUnavailable) as refused:
        other.check()
    assert refused.value.detail.startswith("another worker of this host found the test backend")
    assert refused.value.retry_after == 1
    await asyncio.sleep(0.15)  # the first probe fails: open again, for 0.2 s
    assert probes == 1 and other.is_open
    healthy = True
    await asyncio.sleep(0.3)
    assert probes == 2 and not other.is_open
    other.check()  # closed for every worker
    await opener.stop()
    await other.stop()


def _open_for(host: HostBreaker, seconds: float) -> None:
    host.open_until(time.monotonic() + seconds)


def test_the_host_breaker_is_shared_with_the_worker_processes() -> None:
    host = HostBreaker(shared=True)
    worker = multiprocessing.get_context("spawn").Process(target=_open_for, args=(host, 30.0))
    worker.start()
    worker.join(60)
    assert worker.exitcode == 0
    assert 20 < host.seconds_open() <= 30  # opened in the worker, seen here

    async def probe() -> None:
        raise AssertionError("not this worker's to probe")

    breaker = Breaker("test", probe, failures=5, probe_timeout=1.0, host=host)
    with pytest.raises(BackendUnavailable) as refused:
        breaker.check()
    assert 20 < (refused.value.retry_after or 0) <= 30
    host.close()
    breaker.check()


async def test_the_other_workers_keep_refusing_while_the_probe_runs() -> None:
    host = HostBreaker()
    answered = asyncio.Event()

    async def slow_probe() -> None:
        await answered.wait()

    opener = Breaker(
        "test", slow_probe, failures=1, probe_timeout=2.0, first_interval=0.05, host=host
    )
    other = Breaker("test", slow_probe, failures=5, probe_timeout=2.0, host=host)
    opener.failed()
    await asyncio.sleep(0.2)  # the interval is over: the probe runs, unanswered
    assert other.is_open and 1.5 < host.seconds_open() <= 2.0
    answered.set()
    await asyncio.sleep(0.05)
    assert not other.is_open and not opener.is_open
    await opener.stop()
