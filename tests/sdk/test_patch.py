"""Partial updates from the SDK: ``patch`` on both clients, and a session's
``increment`` sent as a patch op at commit, against the real service."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import orjson
import pytest

from itemstore import (
    AsyncClient,
    Client,
    Collection,
    ListedItem,
    PreconditionFailed,
    ValidationError,
)
from itemstore._batch import BatchOp, TransactionOp


def test_patch_returns_the_new_value(coll: Collection) -> None:
    coll["ada"] = {"name": "A", "visits": 1, "tags": ["a"], "tmp": 0}
    new = coll.patch(
        "ada",
        set={"name": "Ada", "address.city": "London"},
        increment={"visits": 2},
        append={"tags": ["b"]},
        prepend={"log": ["first"]},
        delete=["tmp"],
    )
    expected = {
        "name": "Ada",
        "address": {"city": "London"},
        "visits": 3,
        "tags": ["a", "b"],
        "log": ["first"],
    }
    assert new == expected
    assert coll["ada"] == expected
    assert coll.patch("ada", merge={"address": None, "visits": 0}) == {
        "name": "Ada",
        "visits": 0,
        "tags": ["a", "b"],
        "log": ["first"],
    }


def test_patch_errors(coll: Collection) -> None:
    with pytest.raises(KeyError):
        coll.patch("absent", increment={"n": 1})
    etag = coll.set("k", {"n": "one"})
    with pytest.raises(ValidationError) as refused:
        coll.patch("k", increment={"n": 1})
    assert refused.value.code == "patch-conflict"
    coll["k"] = {"n": 1}
    with pytest.raises(PreconditionFailed) as stale:
        coll.patch("k", increment={"n": 1}, if_match=etag)
    assert stale.value.current == {"n": 1}
    assert coll["k"] == {"n": 1}


def test_threads_incrementing_one_counter_all_count(sync_client: Client) -> None:
    coll = sync_client.collection(f"c-{uuid.uuid4().hex[:12]}")
    coll["hits"] = {"n": 0}

    def work() -> None:
        for _ in range(10):
            coll.patch("hits", increment={"n": 1})

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert coll["hits"] == {"n": 80}


def test_session_increment_is_a_patch_at_commit(sync_client: Client) -> None:
    name = f"c-{uuid.uuid4().hex[:12]}"
    sync_client.collection(name)["page"] = {"visits": 1}
    first, second = sync_client.session(name), sync_client.session(name)
    assert first["page"] == second["page"] == {"visits": 1}  # both read before either commits
    first.increment("page", "visits")
    second.increment("page", "visits", 2)
    assert first.commit() == 1
    assert second.commit() == 1
    assert sync_client.collection(name)["page"] == {"visits": 4}
    assert second["page"] == {"visits": 4}  # the cache holds what the patch answered
    with sync_client.session(name) as session:
        session["new"] = {"n": 10}  # puts go first: the increment sees the new item
        session.increment("new", "n", -1)
    assert sync_client.collection(name)["new"] == {"n": 9}
    session = sync_client.session(name)
    session.increment("absent", "n")
    with pytest.raises(KeyError):
        session.commit()
    session.increment("page", "visits")
    session.increment("new", "n.x")  # "n" holds a number: the service refuses it
    with pytest.raises(ValidationError):
        session.commit()
    assert session.commit() == 0  # a failed commit's increments are not sent twice
    assert sync_client.collection(name)["page"] == {"visits": 5}
    with pytest.raises(TypeError):
        session.increment("page", "visits", "1")  # type: ignore[arg-type]


async def test_async_patch_and_session_increment(async_client: AsyncClient) -> None:
    name = f"a-{uuid.uuid4().hex[:12]}"
    coll = async_client.collection(name)
    await coll.set("k", {"n": 1, "tags": []})
    assert await coll.patch("k", increment={"n": 1}, append={"tags": [1]}) == {
        "n": 2,
        "tags": [1],
    }
    async with async_client.session(name) as session:
        await session.increment("k", "n", 3)
    assert await coll.getitem("k") == {"n": 5, "tags": [1]}


def test_expiring_writes(coll: Collection) -> None:
    coll.set("session", {"user": "ada"}, expire_in=1)
    coll.set("cache", {}, expire_at=int(time.time()) + 3600)
    key = coll.add({"event": "login"}, expire_in=1)
    assert coll.patch("cache", increment={"hits": 1}) == {"hits": 1}
    coll["plain"] = 0
    time.sleep(2.1)  # the expiry is rounded up to the next second
    assert "session" not in coll and key not in coll
    assert coll.get("session") is None
    assert sorted(coll) == ["cache", "plain"]
    assert len(coll) == 2
    with pytest.raises(KeyError):
        coll.patch("session", set={"user": "bob"})
    coll.patch("cache", increment={"hits": 1}, expire_in=1)
    time.sleep(2.1)
    assert "cache" not in coll
    with pytest.raises(ValidationError) as refused:
        coll.set("k", 1, expire_in=1, expire_at=int(time.time()) + 60)
    assert "not both" in refused.value.detail
    assert "k" not in coll


async def test_async_expiring_writes(async_client: AsyncClient) -> None:
    coll = async_client.collection(f"a-{uuid.uuid4().hex[:12]}")
    await coll.set("k", {"n": 1}, expire_in=1)
    key = await coll.add(2, expire_at=int(time.time()) + 1)
    assert await coll.patch("k", increment={"n": 1}, expire_in=3600) == {"n": 2}
    await asyncio.sleep(2.1)
    assert await coll.get(key) is None
    assert await coll.get("k") == {"n": 2}  # the patch moved its expiry an hour away


def test_listings_and_batch_puts_carry_expiry(coll: Collection) -> None:
    at = int(time.time()) + 3600
    coll.set("a", 1, expire_at=at)
    coll.set("b", 2)
    puts = [BatchOp("put", "c", b"3", expire_at=at + 60), BatchOp("put", "d", b"4")]
    coll.client.batch(coll.name, puts)
    listed = list(coll.iter_listed())
    assert listed == [
        ListedItem("a", 1, at),
        ListedItem("b", 2, None),
        ListedItem("c", 3, at + 60),
        ListedItem("d", 4, None),
    ]
    assert list(coll.iter_items()) == [(item.key, item.value) for item in listed]
    assert [item.value for item in coll.iter_listed(prefix="c")] == [3]
    # A transaction (an atomic commit) carries the expiry too.
    op = TransactionOp.of_batch(coll.name, puts[0])
    assert puts[0].expire_at is not None and op.expire_at == puts[0].expire_at
    assert orjson.loads(op.encoded)["expire_at"] == puts[0].expire_at


async def test_async_listings_carry_expiry(async_client: AsyncClient) -> None:
    coll = async_client.collection(f"a-{uuid.uuid4().hex[:12]}")
    at = int(time.time()) + 3600
    await coll.set("a", 1, expire_at=at)
    await coll.set("b", 2)
    assert [item async for item in coll.iter_listed()] == [
        ListedItem("a", 1, at),
        ListedItem("b", 2, None),
    ]
    await coll.clear()
