"""JSON that keeps every digit: orjson's speed, the standard library's range.

orjson reads an integer beyond 64 bits as a float (losing digits) and refuses
to write one, or to write arrays and objects nested 255 levels deep or more.
The standard library has neither limit. These functions take orjson's path
and fall back to the standard library only when a text or a value needs it,
so a stored number comes back exactly as it went in. The SDK and the service
share them.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

import orjson

T = TypeVar("T")

# An integer orjson cannot hold (below -2**63 or above 2**64 - 1) has at least
# 19 digits after a minus sign or 20 without one. Digits inside strings and
# long fractions match too: harmless, they only take the slower exact path.
_LONG_DIGITS = re.compile(rb"-\d{19}|\d{20}")


def loads(text: bytes) -> Any:
    """Parse JSON; integers of any size stay integers. Raises ValueError when
    ``text`` is not JSON (orjson.JSONDecodeError), or when it holds such an
    integer nested too deeply for the standard library (about 980 levels)."""
    value = orjson.loads(text)  # also the validation: it accepts no NaN or Infinity
    if _LONG_DIGITS.search(text):
        try:
            return json.loads(text)
        except RecursionError:
            raise ValueError("JSON with integers beyond 64 bits nests too deeply") from None
    return value


def dumps(value: Any) -> bytes:
    """Compact JSON bytes of ``value``; orjson.JSONEncodeError (a TypeError)
    when it is not JSON-compatible."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        # Only these two: the standard library would also write what orjson
        # rightly refuses, such as dict keys that are not strings.
        if not str(exc).startswith(("Integer exceeds", "Recursion limit")):
            raise
        refused = exc
    if not _str_keys_only(value):
        raise orjson.JSONEncodeError("Dict key must be str") from None
    try:
        return json.dumps(
            value, ensure_ascii=False, separators=(",", ":"), allow_nan=False
        ).encode()
    except (TypeError, ValueError, RecursionError):
        raise refused from None


def _str_keys_only(value: Any) -> bool:
    """Whether every dict inside ``value`` has str keys only, as orjson demands
    (the standard library would write ``{1: 0}`` as ``{"1": 0}``)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if not all(isinstance(k, str) for k in item):
                return False
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return True


def exact(value: T) -> T | orjson.Fragment:
    """``value``, ready for orjson.dumps: an integer beyond 64 bits becomes a
    Fragment holding its digits (the same JSON number); the rest is unchanged."""
    if isinstance(value, int) and not -(2**63) <= value < 2**64:
        return orjson.Fragment(str(value).encode())
    return value
