"""The asyncio collection against the real service, on both backends."""

from __future__ import annotations

import uuid

import pytest

from itemstore import (
    AsyncClient,
    AsyncCollection,
    AsyncSession,
    Client,
    Collection,
    Limits,
    PreconditionFailed,
    Session,
)


@pytest.fixture
def acoll(async_client: AsyncClient) -> AsyncCollection:
    return async_client.collection(f"a-{uuid.uuid4().hex[:12]}")


async def test_item_operations(acoll: AsyncCollection) -> None:
    assert await acoll.is_empty()
    with pytest.raises(KeyError):
        await acoll.getitem("k")
    assert await acoll.get("k", 0) == 0
    etag = await acoll.set("k", {"v": 1})
    assert await acoll.getitem("k") == {"v": 1}
    item = await acoll.get_item("k", consistent=True)
    assert item is not None and item.etag == etag
    assert await acoll.contains("k") and not await acoll.contains("other")
    assert await acoll.count() == 1
    assert (await acoll.delete("k")).value == {"v": 1}
    with pytest.raises(KeyError):
        await acoll.delete("k")
    with pytest.raises(PreconditionFailed):
        await acoll.set("k", 1, if_match=etag)


async def test_dict_semantics_as_coroutines(acoll: AsyncCollection) -> None:
    assert await acoll.setdefault(True, []) == []
    assert await acoll.setdefault(True, [1]) == []
    await acoll.update({"a": 1, 2: "two"}, b=[3])
    assert await acoll.count() == 4
    assert await acoll.pop("a") == 1
    assert await acoll.pop("a", None) is None
    with pytest.raises(KeyError):
        await acoll.pop("a")
    assert await acoll.equals({True: [], 2: "two", "b": [3]})
    assert not await acoll.equals({True: [], 2: "two"})
    first = await acoll.popitem()
    assert first == (True, [])  # bools list first: key order is by type, then value
    await acoll.clear()
    assert await acoll.is_empty()
    with pytest.raises(KeyError):
        await acoll.popitem()


async def test_async_iteration_pages(acoll: AsyncCollection, async_client: AsyncClient) -> None:
    data = {i: f"v{i}" for i in range(150)}
    await acoll.update(data)
    assert sorted([k async for k in acoll]) == list(range(150))
    assert sorted([v async for v in acoll.values()]) == sorted(data.values())
    assert {k: v async for k, v in acoll.items(page_size=60)} == data
    assert await acoll.to_dict() == data
    other = async_client.collection(acoll.name + "-copy")
    await other.update(acoll)
    assert await other.equals(acoll)
    assert acoll.name in [n async for n in async_client.collections()]
    assert len(await other.add({"x": 1})) == 26


def test_sync_and_async_surfaces_have_the_same_names() -> None:
    def public(cls: type) -> set[str]:
        return {name for name in dir(cls) if not name.startswith("_")}

    assert public(AsyncClient) == public(Client)
    assert public(AsyncCollection) == public(Collection) - {"copy"}  # copy: dict's own
    assert public(AsyncSession) == public(Session)


async def test_same_names_answer_alike(acoll: AsyncCollection, sync_client: Client) -> None:
    coll = sync_client.collection(acoll.name)
    await acoll.update({"a": 1, "b": 2, "c": 3})
    assert [k async for k in acoll.iter_keys(page_size=2)] == list(coll.iter_keys(page_size=2))
    assert [v async for v in acoll.iter_values()] == list(coll.iter_values()) == [1, 2, 3]
    assert await acoll.count() == coll.count() == 3
    assert await acoll.contains("a") and coll.contains("a") and coll.getitem("a") == 1
    assert not await acoll.is_empty() and not coll.is_empty()
    assert await acoll.equals(coll) and coll.equals(await acoll.to_dict())
    limits: Limits = await acoll.client.limits()
    assert limits == sync_client.limits()
