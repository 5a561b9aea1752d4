"""The SDK against a service that fails fast: it retries what was not applied
(an overloaded worker), within its time budget, and never replays a delete
that may have been applied (a write stuck past the service's deadline).

The service is the real app on SQLite. Overload is a real setting (room for
no request in flight); the stuck write is real too: the test holds the SQLite
file's write lock, as a worker busy writing would.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import threading
import time
from collections.abc import Iterator

import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from itemstore import AsyncClient, Client, RetryPolicy, Unavailable
from itemstore_service.admission import ADMISSION
from itemstore_service.app import create_app
from itemstore_service.config import Config
from tests.sdk.conftest import ServeApp


def refused() -> float:
    value = REGISTRY.get_sample_value("itemstore_requests_refused_total", {"reason": "in-flight"})
    return value or 0.0


def expired(kind: str) -> float:
    return REGISTRY.get_sample_value("itemstore_deadlines_expired_total", {"kind": kind}) or 0.0


@dataclasses.dataclass(frozen=True)
class Served:
    url: str
    config: Config
    app: web.Application


@pytest.fixture
def served(sqlite_config: Config, serve_fake: ServeApp) -> Iterator[Served]:
    """A real service on SQLite with a request timeout of 0.3 s."""
    config = dataclasses.replace(sqlite_config, request_timeout=0.3)
    app = create_app(config)
    with serve_fake(app) as url:
        yield Served(url, config, app)


def test_an_overloaded_answer_is_retried_even_for_a_delete(served: Served) -> None:
    app = served.app
    with Client(served.url) as client:
        coll = client.collection("c")
        coll["k"] = 1
        app[ADMISSION].max_inflight = 0  # every request is refused, before it is read
        before = refused()
        timer = threading.Timer(0.5, lambda: setattr(app[ADMISSION], "max_inflight", 8))
        timer.start()
        try:
            assert coll.pop("k") == 1  # refused once, then retried after Retry-After: 1
        finally:
            timer.cancel()
        assert refused() - before == 1


def test_retries_stop_at_the_total_budget(served: Served) -> None:
    served.app[ADMISSION].max_inflight = 0
    before = refused()
    policy = RetryPolicy(retries=10, total=1.5)
    with Client(served.url, retry=policy) as client:
        start = time.monotonic()
        with pytest.raises(Unavailable) as info:
            client.collection("c")["k"]
        elapsed = time.monotonic() - start
    assert info.value.code == "overloaded" and info.value.retry_after == 1.0
    assert refused() - before == 2  # at 0 s and 1 s; one more would end past 1.5 s
    assert 1.0 <= elapsed < 1.5


async def test_a_delete_that_may_have_been_applied_is_not_replayed(served: Served) -> None:
    async with AsyncClient(served.url) as client:
        coll = client.collection("c")
        await coll.set("k", 1)
        before = expired("write-maybe-applied")
        fd = os.open(served.config.sqlite_path + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)  # the real writer thread blocks on it
        try:
            with pytest.raises(Unavailable) as info:
                await coll.pop("k")
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        assert "may have been applied" in info.value.detail
        assert expired("write-maybe-applied") - before == 1  # sent once, not replayed
