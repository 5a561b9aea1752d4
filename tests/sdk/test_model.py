"""Model test: random sequences of dict operations on a remote collection and
on a plain dict must always agree. The dict is keyed by type-tagged keys,
because in a dict ``True == 1`` while in itemstore they are different keys.
The same rules run on the sync ``Collection`` (with the dict spellings) and on
the ``AsyncCollection`` (with its named coroutines, on an event loop of the
test's own)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from itemstore import AsyncClient, AsyncCollection, Client, Collection
from itemstore._keys import KeyTag, key_tag
from itemstore_wire.contract import Key

# Few keys, so that operations often meet the same key; the traps are all here.
KEYS: list[Key] = ["a", "b/.", "{c}", "1", 1, 1.0, 2.5, 0, True, False]
keys = st.sampled_from(KEYS)
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)
MISSING = object()
T = TypeVar("T")


class SyncSubject:
    """A remote collection under test, spoken to with the named operations
    both clients share; the sync one answers with its dict spellings."""

    def __init__(self, coll: Collection) -> None:
        self.coll = coll

    def getitem(self, key: Key) -> Any:
        return self.coll[key]

    def set(self, key: Key, value: Any) -> None:
        self.coll[key] = value

    def delete(self, key: Key) -> None:
        del self.coll[key]

    def contains(self, key: Key) -> bool:
        return key in self.coll

    def count(self) -> int:
        return len(self.coll)

    def is_empty(self) -> bool:
        return not self.coll

    def items(self) -> list[tuple[Key, Any]]:
        return list(self.coll.items())

    def get(self, key: Key, default: Any) -> Any:
        return self.coll.get(key, default)

    def pop(self, key: Key, default: Any) -> Any:
        return self.coll.pop(key, default)

    def setdefault(self, key: Key, default: Any) -> Any:
        return self.coll.setdefault(key, default)

    def update(self, pairs: list[tuple[Key, Any]]) -> None:
        self.coll.update(pairs)

    def popitem(self) -> tuple[Key, Any]:
        return self.coll.popitem()

    def clear(self) -> None:
        self.coll.clear()


class AsyncSubject:
    """The same operations on an AsyncCollection, each run to its end on ``loop``."""

    def __init__(self, coll: AsyncCollection, loop: asyncio.Runner) -> None:
        self.acoll = coll
        self.loop = loop

    def run(self, operation: Callable[..., Awaitable[T]], *args: Any) -> T:
        return self.loop.run(_awaited(operation, *args))

    def getitem(self, key: Key) -> Any:
        return self.run(self.acoll.getitem, key)

    def set(self, key: Key, value: Any) -> None:
        self.run(self.acoll.set, key, value)

    def delete(self, key: Key) -> None:
        self.run(self.acoll.delete, key)

    def contains(self, key: Key) -> bool:
        return self.run(self.acoll.contains, key)

    def count(self) -> int:
        return self.run(self.acoll.count)

    def is_empty(self) -> bool:
        return self.run(self.acoll.is_empty)

    def items(self) -> list[tuple[Key, Any]]:
        async def listed() -> list[tuple[Key, Any]]:
            return [pair async for pair in self.acoll.items()]

        return self.run(listed)

    def get(self, key: Key, default: Any) -> Any:
        return self.run(self.acoll.get, key, default)

    def pop(self, key: Key, default: Any) -> Any:
        return self.run(self.acoll.pop, key, default)

    def setdefault(self, key: Key, default: Any) -> Any:
        return self.run(self.acoll.setdefault, key, default)

    def update(self, pairs: list[tuple[Key, Any]]) -> None:
        self.run(self.acoll.update, pairs)

    def popitem(self) -> tuple[Key, Any]:
        return self.run(self.acoll.popitem)

    def clear(self) -> None:
        self.run(self.acoll.clear)


async def _awaited(operation: Callable[..., Awaitable[T]], *args: Any) -> T:
    return await operation(*args)


class DictModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.model: dict[KeyTag, tuple[Key, Any]] = {}
        self.coll = self.subject(f"m-{uuid.uuid4().hex[:12]}")

    def subject(self, name: str) -> SyncSubject | AsyncSubject:
        """The collection ``name`` of the client under test."""
        raise NotImplementedError

    @initialize()
    def start_empty(self) -> None:
        assert self.coll.count() == 0

    @rule(key=keys, value=values)
    def setitem(self, key: Key, value: Any) -> None:
        self.coll.set(key, value)
        self.model[key_tag(key)] = (key, value)

    @rule(key=keys)
    def getitem(self, key: Key) -> None:
        expected = self.model.get(key_tag(key), (key, MISSING))[1]
        if expected is MISSING:
            with pytest.raises(KeyError):
                self.coll.getitem(key)
        else:
            assert self.coll.getitem(key) == expected

    @rule(key=keys, default=values)
    def get(self, key: Key, default: Any) -> None:
        assert self.coll.get(key, default) == self.model.get(key_tag(key), (key, default))[1]

    @rule(key=keys)
    def contains(self, key: Key) -> None:
        assert self.coll.contains(key) == (key_tag(key) in self.model)

    @rule(key=keys)
    def delitem(self, key: Key) -> None:
        if key_tag(key) in self.model:
            self.coll.delete(key)
            del self.model[key_tag(key)]
        else:
            with pytest.raises(KeyError):
                self.coll.delete(key)

    @rule(key=keys, default=values)
    def pop(self, key: Key, default: Any) -> None:
        expected = self.model.pop(key_tag(key), (key, default))[1]
        assert self.coll.pop(key, default) == expected

    @rule(key=keys, default=values)
    def setdefault(self, key: Key, default: Any) -> None:
        stored = self.model.setdefault(key_tag(key), (key, default))[1]
        assert self.coll.setdefault(key, default) == stored

    @rule(pairs=st.lists(st.tuples(keys, values), max_size=6))
    def update(self, pairs: list[tuple[Key, Any]]) -> None:
        self.coll.update(pairs)
        for key, value in pairs:
            self.model[key_tag(key)] = (key, value)

    @rule()
    def popitem(self) -> None:
        if not self.model:
            with pytest.raises(KeyError):
                self.coll.popitem()
            return
        key, value = self.coll.popitem()
        assert self.model.pop(key_tag(key))[1] == value

    @rule()
    def clear(self) -> None:
        self.coll.clear()
        self.model.clear()

    @rule()
    def compare_everything(self) -> None:
        listed = self.coll.items()
        assert {key_tag(k): v for k, v in listed} == {t: v for t, (_, v) in self.model.items()}
        assert len(listed) == len(self.model) == self.coll.count()
        for key, _ in listed:  # keys come back with their type
            tag = key_tag(key)[0]
            assert isinstance(key, {"b": bool, "s": str, "n": int | float}[tag])
            assert tag != "n" or not isinstance(key, bool)

    @invariant()
    def truthiness(self) -> None:
        assert self.coll.is_empty() == (not self.model)

    def teardown(self) -> None:
        self.coll.clear()  # keeps the shared table small: moto slows down as it grows


def run_model(backend: str, machine: type[DictModel]) -> None:
    bounded = settings(
        max_examples=20 if backend == "sqlite" else 4,  # moto is slower per call
        stateful_step_count=20,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    run_state_machine_as_test(machine, settings=bounded)


def test_collection_behaves_like_a_dict(sync_client: Client) -> None:
    class SyncModel(DictModel):
        def subject(self, name: str) -> SyncSubject:
            return SyncSubject(sync_client.collection(name))

    run_model(sync_client.info()["backend"], SyncModel)


def test_async_collection_behaves_like_a_dict(service_url: str) -> None:
    with asyncio.Runner() as loop:  # the test's own loop, driven from sync code
        client = AsyncClient(service_url, timeout=10)

        class AsyncModel(DictModel):
            def subject(self, name: str) -> AsyncSubject:
                return AsyncSubject(client.collection(name), loop)

        try:
            run_model(loop.run(client.info())["backend"], AsyncModel)
        finally:
            loop.run(client.close())
