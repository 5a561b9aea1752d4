"""exactjson: orjson's output where orjson can, every digit where it cannot."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from itemstore_wire import exactjson

integers = st.integers() | st.integers(min_value=-(2**200), max_value=2**200)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | integers
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(json_values)
def test_round_trip_is_exact(value: Any) -> None:
    text = exactjson.dumps(value)
    assert exactjson.loads(text) == value
    assert json.loads(text) == value  # plain JSON that any parser reads


@pytest.mark.parametrize("number", [2**63, 2**64 - 1, -(2**63)])
def test_what_orjson_holds_goes_through_orjson(number: int) -> None:
    assert exactjson.dumps(number) == orjson.dumps(number)
    assert type(exactjson.loads(orjson.dumps(number))) is int


@pytest.mark.parametrize("number", [2**64, -(2**63) - 1, 10**40, -(10**40)])
def test_longer_integers_keep_every_digit(number: int) -> None:
    assert exactjson.dumps(number) == str(number).encode()
    assert exactjson.loads(str(number).encode()) == number
    assert orjson.dumps({"k": exactjson.exact(number)}) == b'{"k":%d}' % number


def test_what_is_not_json_is_refused() -> None:
    with pytest.raises(orjson.JSONDecodeError):
        exactjson.loads(b"[NaN, 123456789012345678901234567890]")
    with pytest.raises(TypeError):
        exactjson.dumps({1, 2})
    with pytest.raises(TypeError):
        exactjson.dumps([2**70, {1, 2}])
    for value in ({1: "a"}, [2**70, {1: "a"}], [2**70, {"a": ({None: 1},)}]):
        with pytest.raises(TypeError):
            exactjson.dumps(value)  # the standard library would write {"1": "a"}
