"""The backend conformance suite on the SQLite backend (a real file per test)."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from itemstore_service.backends import sqlite
from itemstore_service.backends.base import (
    TX_WINDOW_SECONDS,
    Record,
    TokenReused,
    TransactionFailed,
    TxOp,
)
from itemstore_service.config import Config
from itemstore_service.keys import encode_key
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


async def test_sweep_removes_expired_rows_in_short_transactions(sqlite_config: Config) -> None:
    past, future = int(time.time()) - 1, int(time.time()) + 3600
    async with sqlite.open(sqlite_config) as backend:
        expired = {("c", f"e{i}"): Record(b"1", "v", expires_at=past) for i in range(25)}
        live = {("c", "live"): Record(b"2", "v", expires_at=future), ("c", "n"): Record(b"3", "v")}
        await backend.write_many(expired | live, [], previous=())
        transactions = 0
        transaction = backend._transaction

        def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal transactions
            transactions += 1
            return transaction(*args, **kwargs)

        backend._transaction = counted  # type: ignore[method-assign]
        assert await backend.sweep(chunk=10) == 25
        assert transactions == 3  # 10 + 10 + 5 rows: no transaction holds the lock for all
        assert await backend.count("c") == 2
    with sqlite3.connect(sqlite_config.sqlite_path) as conn:
        rows = conn.execute("SELECT sk FROM items ORDER BY sk").fetchall()
    assert rows == [(b"live",), (b"n",)]


async def test_a_file_from_before_expiry_gets_the_column(sqlite_config: Config) -> None:
    with sqlite3.connect(sqlite_config.sqlite_path) as conn:
        conn.execute(
            "CREATE TABLE items (collection TEXT NOT NULL, sk BLOB NOT NULL, value BLOB NOT NULL,"
            " version TEXT NOT NULL, float_key INTEGER NOT NULL DEFAULT 0,"
            " PRIMARY KEY (collection, sk))"
        )
        conn.execute("INSERT INTO items VALUES ('c', x'6b', x'31', 'v', 0)")
    conn.close()
    async with sqlite.open(sqlite_config) as backend:
        assert await backend.get_many([("c", "k")], consistent=True) == {
            ("c", "k"): Record(b"1", "v")
        }
        await backend.write_many({("c", "k"): Record(b"2", "v2", expires_at=1)}, [], previous=())
        assert await backend.count("c") == 0


async def test_a_transaction_token_applies_once_and_expires(sqlite_config: Config) -> None:
    item = ("c", encode_key("n"))
    put = [TxOp(item, "put", Record(b"1", "v1"), conditional=True, expected=None)]
    async with sqlite.open(sqlite_config) as backend:
        await backend.transact(put, token="t1")
        await backend.transact(put, token="t1")  # the condition fails now, but it was applied
        with pytest.raises(TokenReused):
            await backend.transact([TxOp(item, "delete")], token="t1")
        with pytest.raises(TransactionFailed):
            await backend.transact(put, token="t2")
        # Past the window the token is forgotten: the same ops are a new transaction.
        with sqlite3.connect(sqlite_config.sqlite_path) as conn:
            conn.execute("UPDATE tx_tokens SET expires = expires - ?", (TX_WINDOW_SECONDS + 1,))
        with pytest.raises(TransactionFailed):
            await backend.transact(put, token="t1")
        assert await backend.get_many([item], consistent=True) == {item: Record(b"1", "v1")}
