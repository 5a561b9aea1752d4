"""Typed item keys and their storage encoding.

A key is a ``str``, ``int``, ``float`` or ``bool``. As in a Python dict, numbers
are one key space (``1`` and ``1.0`` are the same key), while ``"1"`` and ``True``
are keys of their own: nothing is coerced between str, number and bool.

Backends store a key as its *sort key* (``sk``): a one-letter type tag and
the key's text (``"s" + text``, ``"b" + "true"``), or for a number an
order-preserving encoding, so that the UTF-8 byte order of sort keys lists
numbers in numeric order (ints and floats in one order, as Python compares
them). Equal keys have equal sort keys, so storage needs no notion of key
types. Whether a number key was given as a float is kept beside the record
(``Record.float_key``) so that it comes back with the type it was written with.

A number is written as its shortest decimal text (``repr`` of a float, the
digits of an int), ``0.DIGITS x 10**E`` with no trailing zero digit, and
encoded as ``"n"`` then a sign class, ``m`` (minus) < ``o`` (zero) < ``p``
(plus), then for a positive number ``E + 400`` in three digits and the digits
(``1`` is ``"np4011"``, ``10`` is ``"np4021"``, ``2.5`` is ``"np40125"``); a
negative number has both complemented (``999 - (E + 400)``, each digit ``9 -
d``) and ends with ``~``, so that a longer mantissa sorts first (``-1`` is
``"nm5988~"``, ``-10`` is ``"nm5978~"``). The shortest text of a float orders
as the float does against every int and float, so these byte strings sort as
the numbers do.

``STORAGE_FORMAT`` versions this encoding: format 1 wrote numbers as their
plain text (``"n10"`` listed before ``"n9"``); storage written by it is
converted by ``itemstore migrate`` (``migration.py``).
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Final

from itemstore_wire.contract import KEY_TYPES, Key

from .errors import BackendUnavailable, InvalidKey

STR_TAG: Final = "s"
NUMBER_TAG: Final = "n"
BOOL_TAG: Final = "b"

STORAGE_FORMAT: Final = 2
"""The version of the sort-key encoding that storage is written in."""


class StorageFormatOutdated(BackendUnavailable):
    """Storage written in another storage format than this service's, found
    when a backend opens; the detail says how to convert it."""


_NEGATIVE, _ZERO, _POSITIVE = "m", "o", "p"
_EXPONENT_BIAS = 400  # exponents run from -323 (5e-324) to 310 (ints of 309 digits)
_COMPLEMENT = str.maketrans("0123456789", "9876543210")
_ENCODED_NUMBER = re.compile(r"[mp][0-9]{4}|o$")
_LEGACY_NUMBER = re.compile(r"n-?[0-9].*", re.DOTALL)

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
    if tag != NUMBER_TAG or not _ENCODED_NUMBER.match(text):
        return False
    try:
        number = _decode_number(text, float_key=False)
    except ValueError:
        return False
    if isinstance(number, int) and len(str(number)) > MAX_INT_DIGITS + 1:
        return False
    return math.isfinite(number) and encode_key(number) == sk  # canonical only


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


def _mantissa(number: int | float) -> tuple[str, int]:
    """``(digits, exponent)`` with ``abs(number) == 0.digits * 10**exponent``
    (for a float: of its shortest text), with no trailing zero digit."""
    exact = Decimal(_number_text(abs(number)))
    digits = "".join(map(str, exact.as_tuple().digits)).rstrip("0")
    return digits, exact.adjusted() + 1


def _encode_number(number: int | float) -> str:
    if number == 0:
        return NUMBER_TAG + _ZERO
    digits, exponent = _mantissa(number)
    if number > 0:
        return f"{NUMBER_TAG}{_POSITIVE}{exponent + _EXPONENT_BIAS:03d}{digits}"
    complemented = digits.translate(_COMPLEMENT)
    return f"{NUMBER_TAG}{_NEGATIVE}{999 - exponent - _EXPONENT_BIAS:03d}{complemented}~"


def _decode_number(text: str, float_key: bool) -> int | float:
    sign, body = text[:1], text[1:]
    if sign == _ZERO:
        return 0.0 if float_key else 0
    if sign == _NEGATIVE:
        exponent = 999 - int(body[:3]) - _EXPONENT_BIAS
        digits = body[3:].rstrip("~").translate(_COMPLEMENT)
    else:
        exponent = int(body[:3]) - _EXPONENT_BIAS
        digits = body[3:]
    negative = sign == _NEGATIVE
    if not float_key and exponent >= len(digits):  # a whole number: exact as an int
        whole = int(digits + "0" * (exponent - len(digits)))
        return -whole if negative else whole
    return float(f"{'-' if negative else ''}0.{digits}e{exponent}")


def encode_key(key: Key) -> str:
    """The sort key of ``key``: equal keys (``1 == 1.0``) encode equally."""
    if isinstance(key, bool):
        return BOOL_TAG + ("true" if key else "false")
    if isinstance(key, str):
        return STR_TAG + key
    return _encode_number(key)


def decode_key(sk: str, float_key: bool = False) -> Key:
    """Inverse of :func:`encode_key`; ``float_key`` restores a number given as float."""
    tag, text = sk[0], sk[1:]
    if tag == STR_TAG:
        return text
    if tag == BOOL_TAG:
        return text == "true"
    return _decode_number(text, float_key)


def is_legacy_number_sk(sk: str) -> bool:
    """Whether ``sk`` is a number key as storage format 1 wrote it (``"n10"``)."""
    return _LEGACY_NUMBER.fullmatch(sk) is not None


def convert_legacy_sk(sk: str) -> str:
    """The format-2 sort key of a format-1 number sort key."""
    text = sk[1:]
    number = float(text) if "." in text or "e" in text else int(text)
    return encode_key(number)


def key_bytes(key: Key) -> int:
    """How many bytes a key counts against the key size limit."""
    if isinstance(key, str):
        return len(key.encode("utf-8", "surrogatepass"))
    if isinstance(key, bool):
        return len(encode_key(key)) - 1
    return len(_number_text(key))


def str_prefix(prefix: str) -> str:
    """The sort-key prefix shared by every str key that starts with ``prefix``."""
    return STR_TAG + prefix
