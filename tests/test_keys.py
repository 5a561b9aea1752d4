"""Typed keys: parsing, the one number key space, and the storage encoding."""

from __future__ import annotations

import pytest

from itemstore_service.errors import InvalidKey
from itemstore_service.keys import decode_key, encode_key, key_bytes, parse_path_key


@pytest.mark.parametrize(
    ("text", "key_type", "expected"),
    [
        ("ada", "str", "ada"),
        ("1", "str", "1"),
        ("42", "int", 42),
        ("-7", "int", -7),
        ("1.5", "float", 1.5),
        ("1", "float", 1.0),
        ("2e3", "float", 2000.0),
        ("true", "bool", True),
        ("false", "bool", False),
    ],
)
def test_parse_path_key(text: str, key_type: str, expected: object) -> None:
    key = parse_path_key(text, key_type)
    assert key == expected
    assert type(key) is type(expected)


@pytest.mark.parametrize(
    ("text", "key_type"),
    [
        ("1.5", "int"),
        ("01", "int"),
        ("abc", "int"),
        ("nan", "float"),
        ("inf", "float"),
        ("1e999", "float"),
        ("True", "bool"),
        ("1", "bool"),
        ("x", "bytes"),
    ],
)
def test_parse_path_key_rejects(text: str, key_type: str) -> None:
    with pytest.raises(InvalidKey):
        parse_path_key(text, key_type)


def test_numbers_are_one_key_space_and_types_stay_apart() -> None:
    assert encode_key(1) == encode_key(1.0)
    assert encode_key(10**20) == encode_key(1e20)
    assert encode_key("1") != encode_key(1)
    assert encode_key(True) != encode_key(1)
    assert encode_key(False) != encode_key(0)


@pytest.mark.parametrize("key", ["", "a/b", "ü", 0, -3, 1.5, -0.25, 1e-7, 1e300, True, False])
def test_encode_decode_round_trip(key: str | int | float | bool) -> None:
    sk = encode_key(key)
    back = decode_key(sk, isinstance(key, float))
    assert back == key
    assert type(back) is type(key)


def test_key_bytes_counts_utf8() -> None:
    assert key_bytes("é") == 2
    assert key_bytes(1234) == 4
