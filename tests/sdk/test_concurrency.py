"""One client shared by many threads, and by many asyncio tasks; every answer checked."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor

from itemstore import AsyncClient, Client, Collection

THREADS = 8
PER_WORKER = 15


def test_threads_share_one_client(coll: Collection, sync_client: Client) -> None:
    def work(worker: int) -> list[object]:
        mine = sync_client.collection(coll.name)  # a new view on the same pooled client
        winners = []
        for i in range(PER_WORKER):
            key = f"w{worker}-{i}"
            mine[key] = {"worker": worker, "i": i}
            assert mine[key] == {"worker": worker, "i": i}
            assert key in mine
            winners.append(mine.setdefault("shared", worker))
        assert mine.pop(f"w{worker}-0") == {"worker": worker, "i": 0}
        return winners

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(work, range(THREADS)))
    first = coll["shared"]
    assert first in range(THREADS)
    assert all(w == first for winners in results for w in winners)  # setdefault is atomic
    assert len(coll) == THREADS * (PER_WORKER - 1) + 1
    assert coll.get("w3-0") is None and coll["w3-1"] == {"worker": 3, "i": 1}


async def test_tasks_share_one_async_client(async_client: AsyncClient) -> None:
    coll = async_client.collection(f"t-{uuid.uuid4().hex[:12]}")

    async def work(worker: int) -> object:
        key = ("k", worker)
        text = f"{key[0]}{key[1]}"
        await coll.set(worker, text)
        await coll.set(text, [worker])
        assert await coll.getitem(worker) == text
        assert await coll.getitem(text) == [worker]
        winner = await coll.setdefault("shared", worker)
        assert await coll.pop(worker) == text
        return winner

    winners = await asyncio.gather(*(work(n) for n in range(40)))
    assert len(set(winners)) == 1 and winners[0] == await coll.getitem("shared")
    assert await coll.count() == 41
    assert await coll.to_dict() == {"shared": winners[0], **{f"k{n}": [n] for n in range(40)}}
