"""Read coalescing and group commit through the real store and backends.

``CountingBackend`` wraps a real backend and only counts and delegates; where a
test needs a backend failure it injects one there, because neither SQLite nor
moto can be made to fail one chosen batch on demand.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import replace
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from aiohttp.web import Application, Request

from itemstore_service.app import create_app
from itemstore_service.appkeys import STORE
from itemstore_service.backends import backend_module, open_backend
from itemstore_service.backends.base import Backend, ItemKey, Puts, Record, Records
from itemstore_service.config import Config
from itemstore_service.errors import BackendUnavailable, ItemNotFound
from itemstore_service.keys import encode_key
from itemstore_service.operations import Op, Outcome
from itemstore_service.store import Store

Client = TestClient[Request, Application]


class CountingBackend:
    """Delegates to a real backend, counting calls and the keys whose previous
    records each write asks for; can fail the next write."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name = inner.name
        self.calls: dict[str, int] = {}
        self.asked_previous: list[set[ItemKey]] = []
        self.fail_writes = 0

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.inner, attr)

    async def get_many(self, keys: Sequence[ItemKey], *, consistent: bool) -> dict[ItemKey, Record]:
        self.calls["get_many"] = self.calls.get("get_many", 0) + 1
        return await self.inner.get_many(keys, consistent=consistent)

    async def write_many(
        self, puts: Puts, deletes: Sequence[ItemKey], *, previous: Collection[ItemKey]
    ) -> Records:
        self.calls["write_many"] = self.calls.get("write_many", 0) + 1
        self.asked_previous.append(set(previous))
        if self.fail_writes:
            self.fail_writes -= 1
            await asyncio.sleep(0.01)
            raise BackendUnavailable("injected failure")
        return await self.inner.write_many(puts, deletes, previous=previous)


@pytest.fixture
async def counting(any_config: Config) -> AsyncIterator[CountingBackend]:
    async with open_backend(any_config) as backend:
        yield CountingBackend(backend)


@pytest.fixture
async def store(counting: CountingBackend, any_config: Config) -> AsyncIterator[Store]:
    store = Store(counting, backend_module(any_config.backend).TUNING)
    yield store
    await store.drain()


async def test_concurrent_writers_and_readers_all_get_their_answers(
    store: Store, counting: CountingBackend
) -> None:
    n = 300
    values = {f"k{i}": orjson.dumps({"i": i, "pad": "x" * (i % 50)}) for i in range(n)}
    puts = await asyncio.gather(*(store.put("c", k, v) for k, v in values.items()))
    assert [p.outcome for p in puts] == [Outcome.CREATED] * n
    records = await asyncio.gather(*(store.get("c", k) for k in values))
    assert [r.value for r in records] == list(values.values())
    assert [r.version for r in records] == [p.record.version for p in puts]
    # far fewer backend calls than requests
    assert counting.calls["write_many"] < n / 4
    assert counting.calls["get_many"] < n / 4

    mixed = await asyncio.gather(
        *(store.put("c", k, b"0") for k in list(values)[:100]),
        *(store.get("c", k) for k in list(values)[100:]),
        *(store.delete("c", f"absent{i}") for i in range(20)),
        return_exceptions=True,
    )
    assert [r for r in mixed[:300] if isinstance(r, BaseException)] == []
    assert [type(r).__name__ for r in mixed[300:]] == ["ItemNotFound"] * 20


async def test_a_key_asked_for_twice_at_once_is_fetched_once(
    store: Store, counting: CountingBackend
) -> None:
    await store.put("c", "hot", b'"v"')
    counting.calls.clear()
    got = await asyncio.gather(*(store.get("c", "hot") for _ in range(50)))
    assert {r.value for r in got} == {b'"v"'}
    assert counting.calls["get_many"] <= 2


async def test_same_key_twice_in_one_batch_keeps_the_later_and_answers_both(
    store: Store, counting: CountingBackend
) -> None:
    first, second, third = await asyncio.gather(
        store.put("c", "k", b"1"), store.put("c", "k", b"2"), store.put("c", 1, b"3")
    )
    assert (first.outcome, second.outcome, third.outcome) == (
        Outcome.CREATED,
        Outcome.REPLACED,
        Outcome.CREATED,
    )
    assert counting.calls["write_many"] == 1
    assert (await store.get("c", "k", consistent=True)).value == b"2"
    put, deleted = await asyncio.gather(store.put("c", "k", b"4"), store.delete("c", "k"))
    assert put.outcome is Outcome.REPLACED
    assert deleted.value == b"4"
    with pytest.raises(ItemNotFound):
        await store.get("c", "k", consistent=True)


async def test_a_delete_then_a_put_in_one_batch_answers_the_removed_value(
    store: Store, counting: CountingBackend
) -> None:
    await store.put("c", "k", b'{"old": 1}')
    counting.calls.clear()
    deleted, put = await asyncio.gather(store.delete("c", "k"), store.put("c", "k", b"2"))
    assert counting.calls["write_many"] == 1
    assert deleted.value == b'{"old": 1}'
    assert put.outcome is Outcome.CREATED  # it came after the delete
    assert (await store.get("c", "k", consistent=True)).value == b"2"


async def test_blind_puts_read_nothing_and_later_ops_see_them(
    store: Store, counting: CountingBackend
) -> None:
    await store.put("c", "old", b"1")
    counting.calls.clear()
    counting.asked_previous.clear()
    ops = [
        Op("put", "a", b"1"),
        Op("put", "a", b"2"),
        Op("get", "a"),
        Op("delete", "old"),  # a delete first answers the value it removed...
        Op("put", "old", b"3"),  # ...read before the write, as the key is put again
        Op("put", "b", b"4"),
        Op("delete", "b"),  # removes what the blind put wrote: nothing to read
        Op("get", "none"),
    ]
    results = await store.batch("c", ops, blind=True)
    assert [r.outcome for r in results] == [
        Outcome.WRITTEN,
        Outcome.WRITTEN,
        Outcome.FOUND,
        Outcome.DELETED,
        Outcome.WRITTEN,
        Outcome.WRITTEN,
        Outcome.DELETED,
        Outcome.MISSING,
    ]
    assert results[2].record == results[1].record
    assert [r.record.value for r in results[3:7] if r.record] == [b"1", b"3", b"4", b"4"]
    assert counting.calls == {"get_many": 1, "write_many": 1}  # the get_many: "old", "none"
    assert counting.asked_previous == [set()]
    assert (await store.get("c", "old", consistent=True)).value == b"3"
    with pytest.raises(ItemNotFound):
        await store.get("c", "b", consistent=True)


async def test_blind_and_plain_puts_of_one_key_in_one_batch(
    store: Store, counting: CountingBackend
) -> None:
    await store.put("c", "k", b"0")
    counting.asked_previous.clear()
    outcomes = [
        stored.outcome
        for stored in await asyncio.gather(
            store.put("c", "k", b"1", blind=True),
            store.put("c", "k", b"2"),  # sees the blind put's item
            store.put("c", "j", b"3"),
            store.put("c", "j", b"4", blind=True),
        )
    ]
    assert outcomes == [Outcome.WRITTEN, Outcome.REPLACED, Outcome.CREATED, Outcome.WRITTEN]
    assert counting.asked_previous == [{("c", encode_key("j"))}]
    assert (await store.get("c", "j", consistent=True)).value == b"4"


async def test_a_failed_batch_fails_exactly_its_own_requests(
    store: Store, counting: CountingBackend
) -> None:
    counting.fail_writes = 1
    first = asyncio.create_task(store.put("c", "a", b"1"))
    await asyncio.sleep(0.001)  # the first batch (to fail) is in flight
    later = [asyncio.create_task(store.put("c", f"b{i}", b"2")) for i in range(5)]
    with pytest.raises(BackendUnavailable):
        await first
    assert [r.outcome for r in await asyncio.gather(*later)] == [Outcome.CREATED] * 5
    with pytest.raises(ItemNotFound):
        await store.get("c", "a", consistent=True)


async def test_cancelled_waiters_do_not_break_the_batch(store: Store) -> None:
    await store.put("c", "k", b"1")
    tasks: list[asyncio.Task[Any]] = [asyncio.create_task(store.get("c", "k")) for _ in range(20)]
    writes: list[asyncio.Task[Any]] = [
        asyncio.create_task(store.put("c", f"w{i}", b"1")) for i in range(20)
    ]
    await asyncio.sleep(0)
    for task in tasks[::2] + writes[::3]:
        task.cancel()
    results = await asyncio.gather(*tasks, *writes, return_exceptions=True)
    for task, result in zip(tasks + writes, results, strict=True):
        if task.cancelled():
            assert isinstance(result, asyncio.CancelledError)
        else:
            assert not isinstance(result, BaseException)
    for i, write in enumerate(writes):
        if not write.cancelled():
            assert (await store.get("c", f"w{i}", consistent=True)).value == b"1"


async def test_coalescing_off_is_one_backend_call_per_request(
    counting: CountingBackend, any_config: Config
) -> None:
    store = Store(counting, backend_module(any_config.backend).TUNING, coalesce=False)
    await asyncio.gather(*(store.put("c", i, b"1") for i in range(10)))
    await asyncio.gather(*(store.get("c", i) for i in range(10)))
    assert counting.calls == {"write_many": 10, "get_many": 10}


async def test_http_backend_failure_is_503_problem(any_config: Config, aiohttp_client: Any) -> None:
    app = create_app(any_config)
    client: Client = await aiohttp_client(app)
    counting = CountingBackend(app[STORE].backend)
    app[STORE].backend = counting
    counting.fail_writes = 1
    response = await client.put("/collections/c/items/k", json=1)
    assert response.status == 503
    assert response.content_type == "application/problem+json"
    assert response.headers["Retry-After"]
    assert (await response.json())["code"] == "backend-unavailable"
    assert (await client.put("/collections/c/items/k", json=1)).status == 201


async def test_http_many_concurrent_clients(client: Client) -> None:
    async def writer(i: int) -> None:
        response = await client.put(f"/collections/c/items/{i}?key_type=int", json={"i": i})
        assert response.status == 201

    async def reader(i: int) -> None:
        response = await client.get(f"/collections/c/items/{i}?key_type=int")
        assert response.status == 200
        assert await response.json() == {"i": i}

    await asyncio.gather(*(writer(i) for i in range(100)))
    await asyncio.gather(*(reader(i) for i in range(100)))


async def test_sqlite_data_survives_a_restart(sqlite_config: Config, aiohttp_client: Any) -> None:
    first: Client = await aiohttp_client(create_app(sqlite_config))
    await asyncio.gather(*(first.put(f"/collections/c/items/k{i}", json=i) for i in range(50)))
    await first.close()
    second: Client = await aiohttp_client(create_app(replace(sqlite_config)))
    listing = await (await second.get("/collections/c/items")).json()
    assert sorted(item["value"] for item in listing["items"]) == list(range(50))
