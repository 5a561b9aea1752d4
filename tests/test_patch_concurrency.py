"""PATCH increments are atomic across workers and processes: N clients each
incrementing one counter at once end at exactly N. Real service processes
(``itemstore serve``), on SQLite with two workers, and two processes on one
DynamoDB table (moto)."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import aiohttp

from itemstore_service.config import Config
from tests.live_service import serve

CLIENTS = 200
ATTEMPTS = 5
COUNTER = "/collections/counters/items/hits"


async def increment_concurrently(urls: list[str]) -> Counter[int]:
    """CLIENTS increments at once, spread over ``urls``, each on a connection
    of its own; the statuses they got."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        created = await session.put(urls[0] + COUNTER, json={"n": 0})
        assert created.status == 201

        async def one(i: int) -> int:
            """One increment; sent again after a refusal that says it was not
            applied (503 overloaded), as a client does after its Retry-After."""
            url = urls[i % len(urls)] + COUNTER
            for _ in range(ATTEMPTS):
                async with session.patch(url, json={"increment": {"n": 1}}) as response:
                    body = await response.read()
                    if response.status != 503 or b'"overloaded"' not in body:
                        return response.status
                    pause = float(response.headers["Retry-After"])
                await asyncio.sleep(pause)
            return 503

        statuses = Counter(await asyncio.gather(*(one(i) for i in range(CLIENTS))))
        for url in urls:  # every process reads the same total
            async with session.get(url + COUNTER) as response:
                assert await response.json() == {"n": statuses[200]}
    return statuses


def test_sqlite_two_workers(tmp_path: Path) -> None:
    with serve(tmp_path, "--workers", "2") as served:
        statuses = asyncio.run(increment_concurrently([served.url]))
    assert statuses == {200: CLIENTS}


def test_dynamodb_two_processes_on_one_table(tmp_path: Path, moto_config: Config) -> None:
    assert moto_config.dynamodb_endpoint is not None
    flags = ["--backend", "dynamodb", "--dynamodb-endpoint", moto_config.dynamodb_endpoint]
    flags += ["--dynamodb-table", moto_config.dynamodb_table, "--dynamodb-create-table"]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with serve(tmp_path / "a", *flags) as first, serve(tmp_path / "b", *flags) as second:
        statuses = asyncio.run(increment_concurrently([first.url, second.url]))
    assert statuses == {200: CLIENTS}
