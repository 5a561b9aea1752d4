"""Faults of the SQLite file and its disk answer 503 and fail readiness: never
a silent loss, a wrong answer, a traceback or a process killed without a word.

Every fault here is real: a real file deleted, replaced, truncated or
overwritten, a real full file system (a small tmpfs), a real service process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import sqlite3
import subprocess
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from aiohttp.web import Application, Request

from itemstore_service.app import create_app
from itemstore_service.backends import sqlite
from itemstore_service.backends.sqlite import SQLiteBackend
from itemstore_service.config import Config
from itemstore_service.errors import BackendUnavailable
from tests.backend_conformance import key, rec
from tests.live_service import itemstore_serve

AiohttpClient = Callable[[Application], Awaitable[TestClient[Request, Application]]]

ITEMS = 3000


def fatal_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.CRITICAL]


def overwrite(path: str, offset: int, data: bytes) -> None:
    with open(path, "r+b") as file:
        file.seek(offset)
        file.write(data)


async def fill(config: Config, n: int = ITEMS) -> None:
    """``n`` items ``k0000`` ... in collection ``c``, written and closed."""
    async with sqlite.open(config) as backend:
        for start in range(0, n, 500):
            batch = {
                key("c", f"k{i:04}"): rec({"i": i, "pad": "x" * 200})
                for i in range(start, start + 500)
            }
            await backend.write_many(batch, [], previous=())


async def assert_unavailable(
    client: TestClient[Request, Application], method: str, path: str
) -> str:
    answer = await client.request(method, path, json={"v": 1})
    body = await answer.json()
    assert (answer.status, body["code"]) == (503, "backend-unavailable"), body
    assert answer.headers["Retry-After"] == "1"
    detail: str = body["detail"]
    return detail


# -- the file deleted or replaced while serving ------------------------------------


async def test_a_put_after_the_file_is_deleted_is_503_never_201(
    sqlite_config: Config, aiohttp_client: AiohttpClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = await aiohttp_client(create_app(sqlite_config))
    assert (await client.put("/collections/c/items/a", json=1)).status == 201
    assert (await client.get("/readyz")).status == 200

    os.remove(sqlite_config.sqlite_path)

    detail = await assert_unavailable(client, "PUT", "/collections/c/items/b")
    assert "was deleted while serving" in detail
    await assert_unavailable(client, "GET", "/collections/c/items/a")
    await assert_unavailable(client, "DELETE", "/collections/c/items/a")
    await assert_unavailable(client, "GET", "/readyz")
    assert len(fatal_lines(caplog)) == 1


async def test_a_write_after_the_file_is_replaced_fails(
    sqlite_config: Config, tmp_path: Path
) -> None:
    other = tmp_path / "other.sqlite3"
    sqlite3.connect(other).close()
    async with sqlite.open(sqlite_config) as backend:
        await backend.write_many({key("c", "a"): rec(1)}, [], previous=())
        os.replace(other, sqlite_config.sqlite_path)
        with pytest.raises(BackendUnavailable, match="was replaced while serving"):
            await backend.write_many({key("c", "b"): rec(2)}, [], previous=())
        with pytest.raises(BackendUnavailable, match="was replaced while serving"):
            await backend.ping()


# -- a corrupt file -------------------------------------------------------------------


def index_leaf_pages(path: str) -> list[int]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT pageno FROM dbstat WHERE name LIKE 'sqlite_autoindex%' AND pagetype='leaf'"
        ).fetchall()
    conn.close()
    return [page for (page,) in rows]


async def test_a_damaged_index_page_never_answers_a_short_count(
    sqlite_config: Config, aiohttp_client: AiohttpClient, caplog: pytest.LogCaptureFixture
) -> None:
    # The cell count of one index page set to 1: every page still parses, and
    # a plain count(*) answers short (no error), which only a check of the
    # whole file notices.
    await fill(sqlite_config)
    path = sqlite_config.sqlite_path
    page = index_leaf_pages(path)[2]
    overwrite(path, (page - 1) * 4096 + 3, (1).to_bytes(2, "big"))
    with sqlite3.connect(path) as conn:
        short = conn.execute("SELECT count(*) FROM items WHERE collection='c'").fetchone()[0]
    conn.close()
    assert short < ITEMS  # the fault is real

    client = await aiohttp_client(create_app(sqlite_config))
    detail = await assert_unavailable(client, "GET", "/readyz")
    assert "failed its check" in detail and path not in detail  # the cause is in the log
    assert any("is damaged" in record.getMessage() for record in caplog.records)
    await assert_unavailable(client, "GET", "/collections/c")
    await assert_unavailable(client, "PUT", "/collections/c/items/new")
    assert len(fatal_lines(caplog)) == 1


async def test_garbage_in_the_middle_of_the_file_is_503_never_500(
    sqlite_config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    await fill(sqlite_config)
    path = sqlite_config.sqlite_path
    overwrite(path, os.stat(path).st_size // 2, random.Random(7).randbytes(16384))
    # The backend alone, without the check of the whole file at open: the
    # damage is found by the reads themselves.
    backend = await asyncio.to_thread(SQLiteBackend, path)
    try:
        with pytest.raises(BackendUnavailable, match="is damaged or unreadable"):
            await backend.query("c", after=None, prefix="", limit=ITEMS, keys_only=False)
        for call in (
            backend.ping(),
            backend.count("c"),
            backend.get_many([key("c", "k0001")], consistent=True),
        ):
            with pytest.raises(BackendUnavailable, match="is damaged or unreadable"):
                await call
    finally:
        backend.close()
    assert len(fatal_lines(caplog)) == 1


# -- a full disk ------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs: a real file system that fills up."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs (needs root): {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


async def test_a_full_disk_is_503_and_not_ready_and_deletes_free_space(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = str(small_disk / "items.sqlite3")
    backend = await asyncio.to_thread(SQLiteBackend, path, spare_bytes=256 * 1024)
    try:
        stored = 0
        with pytest.raises(BackendUnavailable, match="is full"):
            while True:
                await backend.write_many(
                    {key("c", f"k{stored:05}"): rec("x" * 1000)}, [], previous=()
                )
                stored += 1
        assert stored > 100
        with pytest.raises(BackendUnavailable, match="is full"):
            await backend.ping()  # /readyz answers 503
        with pytest.raises(BackendUnavailable, match="is full"):
            await backend.write_many({key("c", "more"): rec(1)}, [], previous=())

        # Deletes go through, and give the space back.
        for start in range(0, stored, 100):
            keys = [key("c", f"k{i:05}") for i in range(start, min(stored, start + 100))]
            removed = await backend.write_many({}, keys, previous=keys)
            assert set(removed) == set(keys)
        await backend.ping()  # ready again
        await backend.write_many({key("c", "more"): rec(1)}, [], previous=())
        assert await backend.count("c") == 1
    finally:
        backend.close()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "is full" in errors[0]


# -- the file truncated under a running service ------------------------------------------


def http(method: str, url: str) -> int:
    request = urllib.request.Request(
        url,
        method=method,
        data=b"1" if method == "PUT" else None,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return error.code


async def test_a_file_truncated_under_the_service_is_503_never_a_crash(tmp_path: Path) -> None:
    # With the file mapped in memory, reading a page past the new end killed
    # the process with SIGBUS, without a log line.
    config = Config(sqlite_path=str(tmp_path / "items.sqlite3"))
    await fill(config)
    log = tmp_path / "service.log"
    with itemstore_serve(tmp_path, log=log) as url:
        assert http("GET", f"{url}/collections/c/items/k0000") == 200
        os.truncate(config.sqlite_path, os.stat(config.sqlite_path).st_size // 4)
        statuses = {http("GET", f"{url}/collections/c/items/k{i:04}") for i in range(0, ITEMS, 7)}
        assert 503 in statuses and statuses <= {200, 503}
        assert http("GET", f"{url}/readyz") == 503
        assert http("PUT", f"{url}/collections/c/items/new") == 503
    assert "unusable, refusing every call" in log.read_text()
