"""Query conditions: what a ``where`` says, checked, and how it is evaluated.

A ``where`` is an object (all its conditions hold) or a list of objects (any
of them holds). A condition is ``"path?op": value``: ``path`` is dot-separated
member names (``profile.country``), or ``@key`` for the item's key; ``op`` is
one of ``OPS`` (``eq`` when there is no ``?op``). Comparisons never mix types:
a number condition matches numbers only (bools are not numbers), a string
condition strings only; ``ne`` too holds only for a value of the condition's
type. Backends evaluate a ``Where`` their own way (SQLite in SQL); ``matches``
is the reference every backend agrees with, and what DynamoDB runs.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from .errors import InvalidQuery

KEY_PATH: Final = "@key"
OPS: Final = ("eq", "ne", "lt", "lte", "gt", "gte", "pfx", "contains", "in", "exists")
ORDERED_OPS: Final = frozenset({"lt", "lte", "gt", "gte"})

Kind = Literal["number", "string", "bool", "null"]


@dataclass(frozen=True, slots=True)
class Condition:
    """One condition; ``path`` is ``()`` for the item key."""

    path: tuple[str, ...]
    op: str
    value: Any


AllOf = tuple[Condition, ...]
Where = tuple[AllOf, ...]
"""Any of (all of): ``()`` is no filter at all; ``((),)`` matches everything too."""

_ORDER: Final = {"lt": operator.lt, "lte": operator.le, "gt": operator.gt, "gte": operator.ge}

MISSING: Final = object()
"""What a path names in a value that does not have it."""


def kind(value: object) -> Kind | None:
    """The comparison type of a JSON value; None for objects and arrays."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return None


# -- parsing ---------------------------------------------------------------


def parse_where(where: object) -> Where:
    """The ``Where`` of a query body's ``where``; InvalidQuery says what to fix."""
    if where is None:
        return ()
    if isinstance(where, dict):
        return (_all_of(where),)
    if isinstance(where, list) and where and all(isinstance(one, dict) for one in where):
        return tuple(_all_of(one) for one in where)
    raise InvalidQuery(
        "where must be an object of conditions (all hold) or a non-empty list of such"
        ' objects (any holds), e.g. {"age?gte": 30}'
    )


def _all_of(conditions: dict[str, Any]) -> AllOf:
    return tuple(parse_condition(name, value) for name, value in conditions.items())


def parse_path(text: object) -> tuple[str, ...]:
    """The member names of a dot-separated path; ``()`` for ``@key``."""
    if not isinstance(text, str) or not text:
        raise InvalidQuery(f"a path must be a non-empty string, not {text!r}")
    if text == KEY_PATH:
        return ()
    names = tuple(text.split("."))
    if any(not name or '"' in name or "\\" in name for name in names):
        raise InvalidQuery(
            f"path {text!r}: member names are separated by single dots and hold no"
            ' double quote or backslash ("@key" names the item key)'
        )
    return names


def parse_condition(name: str, value: object) -> Condition:
    path_text, _, op = name.partition("?")
    op = op or "eq"
    if op not in OPS:
        raise InvalidQuery(f"condition {name!r}: unknown op {op!r}; ops are {', '.join(OPS)}")
    path = parse_path(path_text)
    value_kind = kind(value)
    if op == "exists":
        if not isinstance(value, bool):
            raise InvalidQuery(f"condition {name!r}: exists takes true or false")
    elif op == "in":
        if not isinstance(value, list) or not value or any(kind(v) is None for v in value):
            raise InvalidQuery(f"condition {name!r}: in takes a non-empty list of scalars")
        value = tuple(value)
    elif op in ORDERED_OPS:
        if value_kind not in ("number", "string"):
            raise InvalidQuery(f"condition {name!r}: {op} compares a number or a string")
    elif op == "pfx":
        if value_kind != "string":
            raise InvalidQuery(f"condition {name!r}: pfx takes a string")
    elif value_kind is None:
        raise InvalidQuery(
            f"condition {name!r}: {op} compares a scalar (string, number, bool or null),"
            " not an object or array"
        )
    return Condition(path, op, value)


# -- evaluation ------------------------------------------------------------


def at_path(document: object, path: Sequence[str]) -> object:
    for name in path:
        if not isinstance(document, dict) or name not in document:
            return MISSING
        document = document[name]
    return document


def _same(a: object, b: object) -> bool:
    """Equal and of one comparison type (``True`` is not ``1``)."""
    return kind(a) == kind(b) and a == b


def holds(condition: Condition, found: object) -> bool:
    """Whether ``found`` (what the path names, or MISSING) meets ``condition``."""
    op, value = condition.op, condition.value
    if op == "exists":
        return (found is not MISSING) is value
    if found is MISSING:
        return False
    if op == "eq":
        return _same(found, value)
    if op == "in":
        return any(_same(found, one) for one in value)
    if op == "contains":
        if isinstance(found, str) and isinstance(value, str):
            return value in found
        return isinstance(found, list) and any(_same(item, value) for item in found)
    if kind(found) != kind(value):
        return False
    if op == "ne":
        return bool(found != value)
    if op == "pfx":
        return isinstance(found, str) and found.startswith(value)
    return bool(_ORDER[op](found, value))  # type: ignore[arg-type]


def matches(where: Where, key: object, value: object) -> bool:
    """Whether the item ``key`` holding ``value`` (parsed JSON) is selected."""
    if not where:
        return True
    return any(
        all(holds(c, at_path(value, c.path) if c.path else key) for c in all_of) for all_of in where
    )


def needs_values(where: Where) -> bool:
    """Whether evaluating ``where`` reads values, not keys only."""
    return any(c.path for all_of in where for c in all_of)
