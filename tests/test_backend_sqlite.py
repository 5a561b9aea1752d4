"""The backend conformance suite on the SQLite backend (a real file per test)."""

from __future__ import annotations

import asyncio
import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from itemstore_service.backends import sqlite
from itemstore_service.config import Config
from tests.backend_conformance import BackendConformance, Opener


class TestSQLiteBackend(BackendConformance):
    @pytest.fixture
    def open_backend(self, sqlite_config: Config) -> Opener:
        return lambda: sqlite.open(sqlite_config)


def _open_when_released(path: str, barrier: Any) -> None:
    async def open_once() -> None:
        async with sqlite.open(Config(sqlite_path=path)):
            pass

    barrier.wait()
    asyncio.run(open_once())


def test_workers_starting_together_on_a_new_file_all_open_it(tmp_path: Path) -> None:
    # Switching a new file to WAL from several processes at once could fail
    # with "database is locked"; the flock makes them take turns.
    context = multiprocessing.get_context("fork")
    for round_ in range(100):
        barrier = context.Barrier(8)
        path = str(tmp_path / f"new{round_}.sqlite3")
        workers = [
            context.Process(target=_open_when_released, args=(path, barrier)) for _ in range(8)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
        assert [worker.exitcode for worker in workers] == [0] * 8
