"""The sync Collection against the real service, on both backends."""

from __future__ import annotations

import uuid
from collections.abc import ItemsView, KeysView, MutableMapping, ValuesView

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from itemstore import Client, Collection, PreconditionFailed, ValidationError

ODD_KEYS = [
    "a/b", "what?#x", "100%", "sp ace", ".", "..", "../etc", "é✓", "-", "~x", "{id}", "}{", "%7B",
]  # fmt: skip


def test_is_a_mutable_mapping_with_dict_exceptions(coll: Collection) -> None:
    assert isinstance(coll, MutableMapping)
    with pytest.raises(KeyError):
        coll["missing"]
    with pytest.raises(KeyError):
        del coll["missing"]
    with pytest.raises(KeyError):
        coll.pop("missing")
    with pytest.raises(KeyError):
        coll.popitem()
    with pytest.raises(TypeError):
        coll[[1]]  # type: ignore[index]
    assert coll.get("missing") is None
    assert coll.get("missing", 7) == 7
    assert coll.pop("missing", "d") == "d"
    assert "missing" not in coll
    other_type: object = (1, 2)
    assert other_type not in coll
    assert not coll and len(coll) == 0


def test_set_get_replace_delete(coll: Collection) -> None:
    value = {"name": "Ada", "tags": ["x", None, 1.5, True], "n": {"deep": [{}]}}
    coll["ada"] = value
    assert coll["ada"] == value
    coll["ada"] = "replaced"
    assert coll["ada"] == "replaced"
    assert "ada" in coll
    del coll["ada"]
    assert "ada" not in coll
    with pytest.raises(KeyError):
        coll["ada"]


@pytest.mark.parametrize("value", [None, 0, -1.25, "", "text", [], {}, [1, [2, [3]]], False])
def test_any_json_value_round_trips(coll: Collection, value: object) -> None:
    coll["v"] = value
    assert coll["v"] == value
    assert type(coll["v"]) is type(value)


def test_keys_keep_their_type(coll: Collection) -> None:
    coll["1"] = "str"
    coll[1] = "int"
    coll[True] = "bool"
    coll[2.5] = "float"
    assert coll["1"] == "str"
    assert coll[1] == "int" and coll[1.0] == "int"  # one number key space, as in a dict
    assert coll[True] == "bool"
    assert coll[2.5] == "float"
    keys = list(coll)
    assert len(keys) == 4
    assert {(type(k), k) for k in keys} == {(str, "1"), (int, 1), (bool, True), (float, 2.5)}
    assert len(coll) == 4


def test_dict_keys_in_values_must_be_strings(coll: Collection) -> None:
    for value in ({1: "a", "1": "b"}, {None: 1}, [2**70, {1: 2}]):
        with pytest.raises(TypeError):
            coll["v"] = value  # not rewritten to {"1": ...}: refused, as orjson does
    assert "v" not in coll


def test_integers_beyond_64_bits_keep_every_digit(coll: Collection) -> None:
    big = 2**70 + 1
    coll[big] = {"n": big, "negative": -big}
    coll.update({big + 1: [big]})
    assert coll[big] == {"n": big, "negative": -big}
    assert coll[big + 1] == [big]
    assert sorted(coll) == [big, big + 1]
    assert all(type(k) is int for k in coll)


def test_odd_str_keys_survive_the_url(coll: Collection) -> None:
    for i, key in enumerate(ODD_KEYS):
        coll[key] = i
    assert sorted(coll) == sorted(ODD_KEYS)
    for i, key in enumerate(ODD_KEYS):
        assert coll[key] == i
        assert key in coll
    assert coll.pop("..") == ODD_KEYS.index("..")
    assert ".." not in coll and "." in coll


# One collection serves every example: each empties it first. Keys are any
# text but surrogates (which no UTF-8 URL or JSON can carry).
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(key=st.text(min_size=1, max_size=8))
def test_every_str_key_round_trips(coll: Collection, key: str) -> None:
    coll.clear()
    coll[key] = key
    assert coll[key] == key and key in coll
    assert list(coll) == [key]
    assert coll.pop(key) == key and key not in coll


def test_invalid_keys_raise_validation_error(coll: Collection) -> None:
    for bad in ("", "k" * 1001, float("inf"), float("nan")):
        with pytest.raises(ValidationError) as info:
            coll[bad] = 1
        assert info.value.status == 400 and info.value.code == "invalid-key"
        with pytest.raises(ValidationError):
            coll.get(bad)
    with pytest.raises(ValidationError):
        coll["\ud800"] = 1  # a lone surrogate is no text the service can store
    # A key the service refuses is in no collection: `in` says False, as a dict does.
    for bad in ("", "k" * 1001, float("nan"), "\ud800", 10**400):
        assert bad not in coll


def test_a_split_update_says_what_was_applied(coll: Collection) -> None:
    items: dict[str, object] = {f"k{i:03}": i for i in range(150)}
    items["k149"] = "x" * (coll.client.limits().max_value_bytes + 1)
    with pytest.raises(ValidationError) as info:
        coll.update(items)  # two batch calls: 100 ops, then 50 with a bad one
    assert info.value.detail.startswith("100 of 150 ops were applied before this failed")
    assert [e["index"] for e in info.value.extras["errors"]] == [149]
    assert len(coll) == 100


def test_an_update_larger_than_a_batch_body_is_split_by_bytes(coll: Collection) -> None:
    limits = coll.client.limits()
    value = "x" * (limits.max_value_bytes - 100)
    count = limits.max_batch_bytes // len(value) + 3  # fewer ops than max_batch_ops
    assert count < limits.max_batch_ops
    coll.update({f"big{i}": value for i in range(count)})
    assert len(coll) == count
    assert coll[f"big{count - 1}"] == value


def test_setdefault_is_atomic_create(coll: Collection) -> None:
    assert coll.setdefault("tags", ["a"]) == ["a"]
    assert coll.setdefault("tags", ["other"]) == ["a"]
    assert coll["tags"] == ["a"]
    assert coll.setdefault("none") is None
    assert "none" in coll and coll["none"] is None
    assert coll.setdefault("none", 5) is None


def test_pop_and_popitem(coll: Collection) -> None:
    coll.update({"b": 2, "a": 1})
    assert coll.pop("a") == 1
    assert "a" not in coll
    assert coll.popitem() == ("b", 2)
    assert len(coll) == 0


def test_update_like_dict_and_in_chunks(coll: Collection) -> None:
    coll.update({"a": 1}, b=2)
    coll.update([("c", 3), (4, "four")])
    coll.update(coll.client.collection(coll.name))  # a Mapping: no-op copy onto itself
    coll |= {"d": 4}
    assert coll.to_dict() == {"a": 1, "b": 2, "c": 3, 4: "four", "d": 4}
    many = {f"k{i:04d}": i for i in range(coll.client.limits().max_batch_ops * 2 + 7)}
    coll.update(many)
    assert len(coll) == len(many) + 5
    assert coll["k0206"] == 206


def test_views_are_lazy_and_paged(coll: Collection) -> None:
    data = {f"k{i:03d}": {"i": i} for i in range(130)}  # more than one default page
    coll.update(data)
    keys, values, items = coll.keys(), coll.values(), coll.items()
    assert isinstance(keys, KeysView) and isinstance(values, ValuesView)
    assert isinstance(items, ItemsView)
    assert list(keys) == sorted(data)
    assert list(values) == [data[k] for k in sorted(data)]
    assert dict(items) == data
    assert len(keys) == len(items) == len(values) == 130
    assert "k001" in keys and "zzz" not in keys
    assert ("k002", {"i": 2}) in items and ("k002", {"i": 3}) not in items
    assert {"i": 5} in values
    assert keys & {"k001", "nope"} == {"k001"}
    walked = list(coll.iter_items(page_size=40))
    assert walked == sorted(data.items())
    assert [k for k, _ in coll.iter_items(prefix="k12")] == [f"k12{i}" for i in range(10)]


def test_equality_bool_repr_clear(coll: Collection, sync_client: Client) -> None:
    assert coll == {}
    coll.update({"a": 1, 2: [2]})
    assert coll == {"a": 1, 2: [2]}
    assert coll != {"a": 1}
    assert coll != {"a": 1, 2: [3]}
    assert coll == sync_client.collection(coll.name)
    assert coll != sync_client.collection(coll.name + "-other")
    assert bool(coll)
    assert coll.name in repr(coll) and sync_client.url in repr(coll)
    coll.clear()
    assert not coll and coll == {}


def test_etags_compare_and_set(coll: Collection) -> None:
    etag = coll.set("k", 1)
    item = coll.get_item("k", consistent=True)
    assert item is not None and item.value == 1 and item.etag == etag
    new = coll.set("k", 2, if_match=etag)
    assert new != etag
    with pytest.raises(PreconditionFailed) as info:
        coll.set("k", 3, if_match=etag)
    assert info.value.current == 2 and info.value.etag == new
    with pytest.raises(PreconditionFailed) as info:
        coll.set("k", 3, if_absent=True)
    assert info.value.current == 2
    with pytest.raises(PreconditionFailed):
        coll.delete("k", if_match=etag)
    assert coll.delete("k", if_match=new).value == 2
    with pytest.raises(KeyError):
        coll.delete("k")


def test_add_makes_time_ordered_keys(coll: Collection) -> None:
    keys = [coll.add({"n": n}) for n in range(3)]
    assert all(isinstance(k, str) and len(k) == 26 for k in keys)
    assert keys == sorted(keys) and len(set(keys)) == 3
    assert [coll[k] for k in keys] == [{"n": 0}, {"n": 1}, {"n": 2}]


def test_collections_listing(sync_client: Client) -> None:
    names = [f"list-{uuid.uuid4().hex[:8]}-{i}" for i in range(3)]
    for name in names:
        sync_client.collection(name)["k"] = 1
    listed = set(sync_client.collections())
    assert set(names) <= listed
    info = sync_client.info()
    assert info["service"] == "itemstore" and info["backend"] in ("sqlite", "dynamodb")
