"""The SDK's queries, counts and transactions, on both clients, against a
real service (SQLite and DynamoDB on moto)."""

from __future__ import annotations

import urllib.request
import uuid

import pytest

from itemstore import AsyncClient, Client, Collection, PreconditionFailed, ValidationError


@pytest.fixture
def people(coll: Collection) -> Collection:
    coll.update({f"p{i:02}": {"age": 20 + i, "city": ["Paris", "Lyon"][i % 2]} for i in range(12)})
    return coll


def test_query_walks_the_pages_lazily(people: Collection) -> None:
    found = people.query({"city": "Lyon", "age?gte": 25}, page_size=2)
    assert next(found) == ("p05", {"age": 25, "city": "Lyon"})
    assert [k for k, _ in found] == ["p07", "p09", "p11"]
    assert [k for k, _ in people.query([{"age": 20}, {"age": 31}], keys_only=True)] == [
        "p00",
        "p11",
    ]
    by_age = people.query(sort="-age", limit=3)
    assert [(k, v["age"]) for k, v in by_age] == [("p11", 31), ("p10", 30), ("p09", 29)]


def test_count_with_and_without_where(people: Collection) -> None:
    assert people.count() == 12
    assert people.count({"city": "Paris"}) == 6
    assert people.count({"age?lt": 0}) == 0


def test_a_transaction_applies_all_or_none(sync_client: Client, coll: Collection) -> None:
    stats = sync_client.collection(f"s-{uuid.uuid4().hex[:12]}")
    etag = stats.set("users", 1)
    with sync_client.transaction() as tx:
        tx[coll.name]["ada"] = {"name": "Ada"}
        tx[stats.name].set("users", 2, if_match=etag)
    assert coll["ada"] == {"name": "Ada"} and stats["users"] == 2
    assert tx.etags[1] == stats.get_item("users").etag  # type: ignore[union-attr]

    with pytest.raises(PreconditionFailed) as failed, sync_client.transaction() as tx:
        tx[coll.name]["grace"] = {"name": "Grace"}
        tx[stats.name].set("users", 3, if_match=etag)  # stale
    assert failed.value.extras["index"] == 1 and failed.value.current == 2
    assert "grace" not in coll

    with pytest.raises(RuntimeError), sync_client.transaction() as tx:  # nothing is sent
        tx[coll.name]["alan"] = 1
        raise RuntimeError("changed my mind")
    assert "alan" not in coll
    with pytest.raises(ValueError, match="one op per item"):
        tx[coll.name]["x"] = 1
        del tx[coll.name]["x"]
    stats.clear()


def test_a_session_commits_atomically(sync_client: Client, coll: Collection) -> None:
    coll["old"] = 1
    with sync_client.session(coll.name) as session:
        session["new"] = 2
        del session["old"]
        assert session.commit(atomic=True) == 2
    assert coll.to_dict() == {"new": 2}


async def test_the_async_client_does_the_same(
    async_client: AsyncClient, sync_client: Client, coll: Collection
) -> None:
    coll.update({"a": {"n": 1}, "b": {"n": 2}, "c": {"n": 3}})
    acoll = async_client.collection(coll.name)
    found = [k async for k, _ in acoll.query({"n?gte": 2})]
    assert found == [k for k, _ in coll.query({"n?gte": 2})] == ["b", "c"]
    assert await acoll.count({"n?gte": 2}) == coll.count({"n?gte": 2}) == 2
    async with async_client.transaction() as tx:
        tx[coll.name].check("a", if_match=coll.get_item("a").etag)  # type: ignore[union-attr]
        del tx[coll.name]["b"]
    assert coll.to_dict() == {"a": {"n": 1}, "c": {"n": 3}}
    session = async_client.session(coll.name)
    await session.set("d", 4)
    assert await session.commit(atomic=True) == 1
    assert coll["d"] == 4


def test_a_transaction_patches_and_expires(
    sync_client: Client, coll: Collection, service_url: str
) -> None:
    stats = sync_client.collection(f"s-{uuid.uuid4().hex[:12]}")
    stats["n"] = {"users": 1}
    coll["ada"] = {"name": "Ada", "city": "Paris"}
    with sync_client.transaction() as tx:
        tx[stats.name].patch("n", increment={"users": 1})
        tx[coll.name].patch("ada", merge={"city": None}, expire_in=60)
        tx[coll.name].set("bob", 1, expire_in=60)
    assert stats["n"] == {"users": 2} and coll["ada"] == {"name": "Ada"}
    assert tx.etags[0] == stats.get_item("n").etag  # type: ignore[union-attr]
    for key in ("ada", "bob"):
        with urllib.request.urlopen(f"{service_url}/collections/{coll.name}/items/{key}") as got:
            assert got.headers["Expires"] is not None
    with pytest.raises(PreconditionFailed) as failed, sync_client.transaction() as tx:
        tx[coll.name]["carol"] = 1
        tx[stats.name].patch("absent", increment={"users": 1})
    assert failed.value.extras["index"] == 1 and "carol" not in coll
    with pytest.raises(ValidationError), sync_client.transaction() as tx:
        tx[stats.name].patch("n", increment={"users": "one"})  # type: ignore[dict-item]
    assert stats["n"] == {"users": 2}
    stats.clear()


def test_an_atomic_commit_sends_its_increments(sync_client: Client, coll: Collection) -> None:
    coll.update({"n": {"a": 1, "b": 1}, "m": {"a": 0}})
    with sync_client.session(coll.name) as session:
        session["new"] = 2
        session.increment("n", "a")
        session.increment("n", "a", 2)
        session.increment("n", "b", -1)
        session.increment("m", "a")
        assert session.commit(atomic=True) == 3  # one put, one patch per item
        assert session["n"] == {"a": 4, "b": 0}  # read again after the commit
    assert coll.to_dict() == {"m": {"a": 1}, "n": {"a": 4, "b": 0}, "new": 2}
    session = sync_client.session(coll.name)
    session["x"] = 1
    session.increment("absent", "a")
    with pytest.raises(PreconditionFailed):
        session.commit(atomic=True)
    assert "x" not in coll  # all or none
    session["n"] = {"a": 0}
    session.increment("n", "a")
    with pytest.raises(ValueError, match="one op per item"):
        session.commit(atomic=True)
    # Refused before anything was sent: the increment is still buffered
    # (the failed transaction's puts too; its increment was dropped).
    assert session.commit() == 3
    assert (coll["n"], coll["x"]) == ({"a": 1}, 1)
