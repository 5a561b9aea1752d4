"""Typed item keys and their storage encoding.

A key is a ``str``, ``int``, ``float`` or ``bool``. As in a Python dict, numbers
are one key space (``1`` and ``1.0`` are the same key), while ``"1"`` and ``True``
are keys of their own: nothing is coerced between str, number and bool.

Backends store a key as its *sort key* (``sk``): a one-letter type tag and the
key's canonical text (``"s" + text``, ``"n" + number``, ``"b" + "true"``). Equal
keys have equal sort keys, so storage needs no notion of key types. Whether a
number key was given as a float is kept beside the record (``Record.float_key``)
so that it comes back with the type it was written with.
"""

from __future__ import annotations

import math
import re
from typing import Final

from itemstore_wire.contract import KEY_TYPES, Key

from .errors import InvalidKey

STR_TAG: Final = "s"
NUMBER_TAG: Final = "n"
BOOL_TAG: Final = "b"

_INT_TEXT = re.compile(r"-?(0|[1-9][0-9]*)")
_FLOAT_TEXT = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
MAX_INT_DIGITS: Final = 309  # 10**309 is past the largest double
MAX_SORT_KEY_BYTES: Final = 1024  # DynamoDB's limit, above any key's sort key


def parse_path_key(text: str, key_type: str) -> Key:
    """Turn a URL path segment (already percent-decoded) into a typed key."""
    if key_type == "str":
        return text
    if key_type == "int":
        if not _INT_TEXT.fullmatch(text):
            raise InvalidKey(f"key {_short(text)} is not an integer (key_type=int)")
        # Within a double's range, as every number in a JSON body must be.
        if len(text) > MAX_INT_DIGITS + 1 or not math.isfinite(float(text)):
            raise InvalidKey(f"key {_short(text)} is out of the number range (key_type=int)")
        return int(text)
    if key_type == "float":
        match = _FLOAT_TEXT.fullmatch(text)
        if not match:
            raise InvalidKey(f"key {_short(text)} is not a finite decimal number (key_type=float)")
        value = float(text)
        underflow = value == 0 and any(c in "123456789" for c in match[1] + (match[2] or ""))
        if not math.isfinite(value) or underflow:
            raise InvalidKey(f"key {_short(text)} is out of the float range (key_type=float)")
        return value
    if key_type == "bool":
        if text not in ("true", "false"):
            raise InvalidKey(f"key {text!r} is not a bool: use true or false (key_type=bool)")
        return text == "true"
    raise InvalidKey(f"key_type must be one of {', '.join(KEY_TYPES)}, not {key_type!r}")


def _short(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "...")


def is_sort_key(sk: str) -> bool:
    """Whether ``sk`` is what :func:`encode_key` makes of some key."""
    tag, text = sk[:1], sk[1:]
    if len(sk.encode()) > MAX_SORT_KEY_BYTES:
        return False
    if tag == STR_TAG:
        return bool(text)
    if tag == BOOL_TAG:
        return text in ("true", "false")
    if tag != NUMBER_TAG or not _FLOAT_TEXT.fullmatch(text):
        return False
    number = decode_key(sk)
    return encode_key(number) == sk  # canonical: not "n1.0", "n-0" or "n1e999"


def check_json_key(value: object) -> Key:
    """Check a key taken from a JSON body: a string, a number or a bool."""
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidKey("a float key must be finite")
        return value
    raise InvalidKey(f"a key must be a string, number or bool, not {type(value).__name__}")


def _number_text(number: int | float) -> str:
    if isinstance(number, float) and not number.is_integer():
        return repr(number)
    return str(int(number))


def encode_key(key: Key) -> str:
    """The sort key of ``key``: equal keys (``1 == 1.0``) encode equally."""
    if isinstance(key, bool):
        return BOOL_TAG + ("true" if key else "false")
    if isinstance(key, str):
        return STR_TAG + key
    return NUMBER_TAG + _number_text(key)


def decode_key(sk: str, float_key: bool = False) -> Key:
    """Inverse of :func:`encode_key`; ``float_key`` restores a number given as float."""
    tag, text = sk[0], sk[1:]
    if tag == STR_TAG:
        return text
    if tag == BOOL_TAG:
        return text == "true"
    if float_key or "." in text or "e" in text:
        return float(text)
    return int(text)


def key_bytes(key: Key) -> int:
    """How many bytes a key counts against the key size limit."""
    if isinstance(key, str):
        return len(key.encode("utf-8", "surrogatepass"))
    return len(encode_key(key)) - 1


def str_prefix(prefix: str) -> str:
    """The sort-key prefix shared by every str key that starts with ``prefix``."""
    return STR_TAG + prefix
