"""Typed keys: parsing, the one number key space, and the storage encoding."""

from __future__ import annotations

import itertools
import random

import pytest

from itemstore_service.errors import InvalidKey
from itemstore_service.keys import (
    convert_legacy_sk,
    decode_key,
    encode_key,
    is_legacy_number_sk,
    is_sort_key,
    key_bytes,
    parse_path_key,
)


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


def test_number_sort_keys_sort_as_the_numbers_do() -> None:
    rng = random.Random(12)
    numbers: list[int | float] = [0, 1, -1, 9, 10, -5, 3, 0.1, 0.15, -0.15, 5e-324, -5e-324]
    numbers += [1.7976931348623157e308, 10**308, -(10**308), 10**17 + 1, 1e17, 2**53 + 1]
    for _ in range(5000):
        numbers.append(rng.randint(-(10**20), 10**20))
        numbers.append(rng.uniform(-1, 1) * 10 ** rng.randint(-300, 300))
    by_sort_key = sorted(numbers, key=lambda n: encode_key(n).encode())
    assert all(a <= b for a, b in itertools.pairwise(by_sort_key))
    for n in numbers:
        assert decode_key(encode_key(n), isinstance(n, float)) == n
        assert is_sort_key(encode_key(n))


def test_legacy_number_sort_keys_convert() -> None:
    assert [is_legacy_number_sk(sk) for sk in ("n10", "n-2.5", "np4011", "no", "s10")] == [
        True, True, False, False, False,
    ]  # fmt: skip
    assert convert_legacy_sk("n-2.5") == encode_key(-2.5)
    assert convert_legacy_sk("n1e+20") == encode_key(10**20)
