"""Model test: random sequences of dict operations on a remote collection and
on a plain dict must always agree. The dict is keyed by type-tagged keys,
because in a dict ``True == 1`` while in itemstore they are different keys."""

from __future__ import annotations

import uuid
from typing import Any

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

from itemstore import Client, Collection
from itemstore._keys import KeyTag, key_tag
from itemstore_wire.contract import Key

# Few keys, so that operations often meet the same key; the traps are all here.
KEYS: list[Key] = ["a", "b/.", "1", 1, 1.0, 2.5, 0, True, False]
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


class DictModel(RuleBasedStateMachine):
    client: Client

    def __init__(self) -> None:
        super().__init__()
        self.model: dict[KeyTag, tuple[Key, Any]] = {}
        self.coll: Collection = self.client.collection(f"m-{uuid.uuid4().hex[:12]}")

    @initialize()
    def start_empty(self) -> None:
        assert len(self.coll) == 0

    @rule(key=keys, value=values)
    def setitem(self, key: Key, value: Any) -> None:
        self.coll[key] = value
        self.model[key_tag(key)] = (key, value)

    @rule(key=keys)
    def getitem(self, key: Key) -> None:
        expected = self.model.get(key_tag(key), (key, MISSING))[1]
        if expected is MISSING:
            with pytest.raises(KeyError):
                self.coll[key]
        else:
            assert self.coll[key] == expected

    @rule(key=keys, default=values)
    def get(self, key: Key, default: Any) -> None:
        assert self.coll.get(key, default) == self.model.get(key_tag(key), (key, default))[1]

    @rule(key=keys)
    def contains(self, key: Key) -> None:
        assert (key in self.coll) == (key_tag(key) in self.model)

    @rule(key=keys)
    def delitem(self, key: Key) -> None:
        if key_tag(key) in self.model:
            del self.coll[key]
            del self.model[key_tag(key)]
        else:
            with pytest.raises(KeyError):
                del self.coll[key]

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
        listed = list(self.coll.items())
        assert {key_tag(k): v for k, v in listed} == {t: v for t, (_, v) in self.model.items()}
        assert len(listed) == len(self.model) == len(self.coll)
        for key, _ in listed:  # keys come back with their type
            tag = key_tag(key)[0]
            assert isinstance(key, {"b": bool, "s": str, "n": int | float}[tag])
            assert tag != "n" or not isinstance(key, bool)

    @invariant()
    def truthiness(self) -> None:
        assert bool(self.coll) == bool(self.model)

    def teardown(self) -> None:
        self.coll.clear()  # keeps the shared table small: moto slows down as it grows


def test_collection_behaves_like_a_dict(sync_client: Client) -> None:
    backend = sync_client.info()["backend"]
    DictModel.client = sync_client
    bounded = settings(
        max_examples=20 if backend == "sqlite" else 4,  # moto is slower per call
        stateful_step_count=20,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    run_state_machine_as_test(DictModel, settings=bounded)
