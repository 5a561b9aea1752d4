"""Sessions: cached reads, one batch of writes at the end, in-place changes saved."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from itemstore import AsyncClient, Client, Collection
from itemstore._async_transport import AsyncTransport
from itemstore._protocol import Request, Response
from itemstore._session_state import SessionState
from itemstore._sync_transport import SyncTransport


class Sent(list[str]):
    """The requests the SDK really sent ("METHOD /path"), observed on the wire."""

    def calls(self, method: str, suffix: str = "") -> int:
        return sum(1 for r in self if r.startswith(method + " ") and r.endswith(suffix))


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sent]:
    """Records each request; it is still sent to the real service unchanged."""
    log = Sent()
    sync_send, async_send = SyncTransport.send, AsyncTransport.send

    def record(request: Request) -> None:
        log.append(f"{request.method} {request.url.split('?')[0].split('/', 3)[3]}")

    def send(self: SyncTransport, request: Request) -> Response:
        record(request)
        return sync_send(self, request)

    async def asend(self: AsyncTransport, request: Request) -> Response:
        record(request)
        return await async_send(self, request)

    monkeypatch.setattr(SyncTransport, "send", send)
    monkeypatch.setattr(AsyncTransport, "send", asend)
    yield log


def test_session_state_plans_only_real_changes() -> None:
    state = SessionState()
    read = state.loaded("read", True, {"a": 1})
    changed = state.loaded("changed", True, {"a": 1})
    gone = state.loaded("gone", True, 1)
    state.loaded("absent", False)
    changed.value["a"] = 2
    state.delete(gone)
    state.assign("new", [1])
    plan = state.plan()
    assert sorted(op.encoded for op in plan.ops) == sorted(
        [
            b'{"op":"put","key":"changed","value":{"a":2}}',
            b'{"op":"delete","key":"gone"}',
            b'{"op":"put","key":"new","value":[1]}',
        ]
    )
    state.committed(plan, [])
    assert state.plan().ops == []
    read.value["a"] = 1  # same as before: nothing to send
    assert state.plan().ops == []


def test_reads_cached_writes_sent_as_one_batch(
    coll: Collection, sync_client: Client, sent: Sent
) -> None:
    coll.update({"ada": {"email": "a@x"}, "bob": {"email": "b@x"}, "old": 1})
    sent.clear()
    with sync_client.session(coll.name) as db:
        assert db["ada"] == {"email": "a@x"}
        assert db["ada"]["email"] == "a@x"
        assert "ada" in db and db.get("ada") is db["ada"]
        assert db.get("nobody") is None and "nobody" not in db
        db["ada"]["email"] = "ada@new"  # in-place change of a value handed out
        db.setdefault("tags", []).append("x")
        db["carl"] = {"email": "c@x"}
        del db["old"]
        assert db.pop("bob") == {"email": "b@x"}
        with pytest.raises(KeyError):
            del db["nobody"]
        assert sent.calls("POST", "/batch") == 0  # nothing written yet
    assert sent.calls("GET") == 5  # ada, nobody, tags, old, bob: each read once
    assert sent.calls("POST", "/batch") == 1
    assert len(sent) == 6
    assert coll.to_dict() == {"ada": {"email": "ada@new"}, "tags": ["x"], "carl": {"email": "c@x"}}


def test_exception_sends_nothing_and_commit_sends_early(
    coll: Collection, sync_client: Client
) -> None:
    coll["n"] = 1
    with pytest.raises(RuntimeError), sync_client.session(coll.name) as db:
        db["n"] = 2
        db["m"] = 3
        raise RuntimeError("handler failed")
    assert coll.to_dict() == {"n": 1}

    with pytest.raises(RuntimeError), sync_client.session(coll.name) as db:
        db["n"] = 2
        assert db.commit() == 1
        assert coll["n"] == 2
        db["n"] = 3
        raise RuntimeError("after the commit")
    assert coll["n"] == 2


def test_untouched_reads_send_nothing(coll: Collection, sync_client: Client, sent: Sent) -> None:
    coll.update({"a": {"x": [1]}, "b": 2})
    sent.clear()
    with sync_client.session(coll.name) as db:
        assert db["a"] == {"x": [1]} and db["b"] == 2
        db["a"]["x"].append(2)
        db["a"]["x"].pop()  # changed back: equal to what was read
    assert sent.calls("POST") == 0


def test_session_len_iteration_and_views_merge_pending(
    coll: Collection, sync_client: Client
) -> None:
    coll.update({"a": 1, "b": 2, "c": 3})
    with sync_client.session(coll.name) as db:
        del db["a"]
        db["d"] = 4
        db["b"] = 20  # assigned without a read: presence resolved for len
        db["e"] = 5
        del db["e"]
        assert sorted(db) == ["b", "c", "d"]
        assert len(db) == 3
        assert dict(db.items()) == {"b": 20, "c": 3, "d": 4}
        assert sorted(db.values()) == [3, 4, 20]
        items = dict(db.items())
        assert db == items
        db.update({"f": 6}, g=7)
        assert len(db) == 5
        db.clear()
        assert len(db) == 0 and list(db) == []
        db["z"] = 26
    assert coll.to_dict() == {"z": 26}


def test_listed_values_are_tracked_too(coll: Collection, sync_client: Client) -> None:
    coll.update({f"u{i}": {"seen": False} for i in range(5)})
    with sync_client.session(coll.name) as db:
        for _, user in db.items():
            user["seen"] = True
    assert all(v == {"seen": True} for v in coll.values())


def test_session_commit_splits_at_max_batch_ops(
    coll: Collection, sync_client: Client, sent: Sent
) -> None:
    n = sync_client.limits().max_batch_ops * 2 + 1
    sent.clear()
    with sync_client.session(coll.name) as db:
        for i in range(n):
            db[i] = i
    assert sent.calls("POST", "/batch") == 3
    assert len(coll) == n


async def test_async_session(async_client: AsyncClient, sent: Sent) -> None:
    name = f"s-{uuid.uuid4().hex[:12]}"
    coll = async_client.collection(name)
    await coll.update({"ada": {"email": "a@x"}, "old": 1})
    sent.clear()
    async with async_client.session(name) as db:
        (await db.getitem("ada"))["email"] = "ada@new"
        (await db.setdefault("tags", [])).append("x")
        assert await db.get("ada") == {"email": "ada@new"}
        await db.delete("old")
        with pytest.raises(KeyError):
            await db.delete("old")
        await db.set("n", 1)
        assert await db.contains("n") and not await db.contains("old")
        assert sent.calls("POST", "/batch") == 0
        # count() asks, in one read-only batch of gets, whether "n" exists already
        assert await db.count() == 3
        assert sent.calls("POST", "/batch") == 1
        assert sorted([k async for k in db]) == ["ada", "n", "tags"]
        assert await db.to_dict() == {"ada": {"email": "ada@new"}, "n": 1, "tags": ["x"]}
    assert sent.calls("POST", "/batch") == 2
    assert await coll.to_dict() == {"ada": {"email": "ada@new"}, "n": 1, "tags": ["x"]}

    with pytest.raises(ValueError):
        async with async_client.session(name) as db:
            await db.clear()
            raise ValueError("nothing is sent")
    assert await coll.count() == 3
    async with async_client.session(name) as db:
        assert await db.pop("n") == 1
        key, _ = await db.popitem()
        await db.update({"q": 1})
        assert await db.commit() == 3
    assert sorted(await coll.to_dict()) == sorted({"ada", "tags", "q"} - {key})
