"""Partial updates of a JSON value: update operations and JSON Merge Patch.

A ``Change`` is parsed and checked whole from a PATCH body before anything is
read (``parse_operations``, ``parse_merge_patch``); ``apply`` then computes the
new value from the stored one, and raises ``PatchConflict`` when the stored
value does not fit an operation (an increment of a string). Both are pure:
no I/O, so a backend may apply a change inside its write transaction, and
again after a concurrent write.

Paths are field names joined by ``.``; a ``\\.`` in a segment is a dot of the
name and ``\\\\`` a backslash. A segment of digits indexes a list (on an
object it is a field name).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from .errors import InvalidPatch, PatchConflict

Operator = Literal["set", "increment", "append", "prepend", "delete"]
OPERATORS: Final[tuple[Operator, ...]] = ("set", "increment", "append", "prepend", "delete")

Path = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Operation:
    operator: Operator
    path: Path
    argument: Any = None  # the value to set, the number to add, the items to insert

    @property
    def text(self) -> str:
        return f"{self.operator} {format_path(self.path)!r}"


@dataclass(frozen=True, slots=True)
class Operations:
    """Update operations, applied in the order of ``OPERATORS``; no two touch
    the same or nested paths."""

    operations: tuple[Operation, ...]


@dataclass(frozen=True, slots=True)
class MergePatch:
    """An RFC 7396 JSON Merge Patch document."""

    document: Any


Change = Operations | MergePatch


def parse_path(text: str) -> Path:
    """The segments of a dotted path; InvalidPatch when one is empty or a
    backslash escapes anything but ``.`` or ``\\``."""
    segments: list[str] = []
    current: list[str] = []
    chars = iter(text)
    for char in chars:
        if char == "\\":
            escaped = next(chars, "")
            if escaped not in (".", "\\"):
                raise InvalidPatch(
                    f"path {text!r}: a backslash escapes only '.' or '\\' (write a dot of a"
                    " field name as '\\.')"
                )
            current.append(escaped)
        elif char == ".":
            segments.append("".join(current))
            current = []
        else:
            current.append(char)
    segments.append("".join(current))
    if any(not segment for segment in segments):
        raise InvalidPatch(f"path {text!r} has an empty segment: join field names with single dots")
    return tuple(segments)


def format_path(path: Path) -> str:
    return ".".join(s.replace("\\", "\\\\").replace(".", "\\.") for s in path)


def parse_operations(document: Any) -> Operations:
    """The operations of an ``application/json`` PATCH body such as
    ``{"set": {"a.b": 1}, "increment": {"n": 1}, "delete": ["c"]}``."""
    if not isinstance(document, dict) or not document:
        raise InvalidPatch(
            'body must be an object of operations, like {"set": {"name": "Ada"}}; operators: '
            + ", ".join(OPERATORS)
        )
    unknown = [name for name in document if name not in OPERATORS]
    if unknown:
        raise InvalidPatch(
            f"unknown operator {unknown[0]!r}: use {', '.join(OPERATORS)}"
            " (or send a JSON Merge Patch as application/merge-patch+json)"
        )
    operations: list[Operation] = []
    for operator in OPERATORS:
        if operator not in document:
            continue
        argument = document[operator]
        if operator == "delete":
            if not isinstance(argument, list) or not all(isinstance(p, str) for p in argument):
                raise InvalidPatch('delete takes a list of paths, like {"delete": ["a.b"]}')
            operations += [Operation("delete", parse_path(p)) for p in argument]
            continue
        if not isinstance(argument, dict):
            raise InvalidPatch(
                f'{operator} takes an object of paths, like {{"{operator}": {{"a.b": ...}}}}'
            )
        for text, value in argument.items():
            operations.append(_operation(operator, parse_path(text), value))
    _check_disjoint(operations)
    return Operations(tuple(operations))


def _operation(operator: Operator, path: Path, value: Any) -> Operation:
    where = f"{operator} {format_path(path)!r}"
    if operator == "increment" and not _is_number(value):
        raise InvalidPatch(f"{where}: increment takes a number, not {_kind(value)}")
    if operator in ("append", "prepend") and not isinstance(value, list):
        raise InvalidPatch(f"{where}: {operator} takes a list of the items to add")
    return Operation(operator, path, value)


def _check_disjoint(operations: list[Operation]) -> None:
    for i, a in enumerate(operations):
        for b in operations[i + 1 :]:
            shorter = min(len(a.path), len(b.path))
            if a.path[:shorter] == b.path[:shorter]:
                raise InvalidPatch(
                    f"{a.text} and {b.text} touch the same or nested paths:"
                    " send them in two requests"
                )


def parse_merge_patch(document: Any) -> MergePatch:
    """An ``application/merge-patch+json`` body: any JSON value (RFC 7396)."""
    return MergePatch(document)


def apply(value: Any, change: Change) -> Any:
    """The value after ``change``: PatchConflict when ``value`` does not fit."""
    if isinstance(change, MergePatch):
        return merge(value, change.document)
    for operation in change.operations:
        value = _apply(value, operation)
    return value


def merge(target: Any, patch: Any) -> Any:
    """RFC 7396 section 2, MergePatch(Target, Patch)."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge(result.get(name), value)
    return result


_MISSING: Final = object()


def _apply(root: Any, operation: Operation) -> Any:
    """``root`` with one operation applied, copying only the containers on its path."""
    path = operation.path

    def descend(node: Any, depth: int) -> Any:
        segment = path[depth]
        if isinstance(node, dict):
            child = node.get(segment, _MISSING)
            copy: dict[str, Any] | list[Any] = dict(node)
        elif isinstance(node, list):
            index = _index(node, segment, operation, depth)
            child = node[index]
            copy = list(node)
        else:
            raise _conflict(operation, depth, f"is {_kind(node)}, not an object")
        if depth + 1 == len(path):
            new = _leaf(child, operation)
        elif child is _MISSING:
            if operation.operator == "delete":
                return node  # nothing to delete
            new = descend({}, depth + 1)  # set, increment, append: create the parents
        else:
            new = descend(child, depth + 1)
        if isinstance(copy, dict):
            if new is _MISSING:
                copy.pop(segment, None)
            else:
                copy[segment] = new
        elif new is _MISSING:
            del copy[int(segment)]
        else:
            copy[int(segment)] = new
        return copy

    return descend(root, 0)


def _index(node: list[Any], segment: str, operation: Operation, depth: int) -> int:
    if not segment.isdigit() or not segment.isascii():
        raise _conflict(operation, depth, f"is a list: {segment!r} is not an index")
    index = int(segment)
    if index >= len(node):
        raise _conflict(operation, depth, f"is a list of {len(node)}: no index {index}")
    return index


def _leaf(current: Any, operation: Operation) -> Any:
    operator, argument = operation.operator, operation.argument
    if operator == "set":
        return argument
    if operator == "delete":
        return _MISSING
    where = format_path(operation.path)
    if operator == "increment":
        if current is _MISSING:
            return argument
        if not _is_number(current):
            raise PatchConflict(
                f"increment {where!r}: the field holds {_kind(current)}, not a number"
            )
        total = current + argument
        if isinstance(total, float) and not math.isfinite(total):
            raise PatchConflict(f"increment {where!r}: the sum is beyond the range of a double")
        return total
    if current is _MISSING:
        return list(argument)
    if not isinstance(current, list):
        raise PatchConflict(f"{operator} {where!r}: the field holds {_kind(current)}, not a list")
    return current + argument if operator == "append" else argument + current


def _conflict(operation: Operation, depth: int, what: str) -> PatchConflict:
    at = repr(format_path(operation.path[:depth])) if depth else "the value"
    return PatchConflict(f"{operation.text}: {at} {what}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_KINDS: Final[Mapping[type, str]] = {
    dict: "an object",
    list: "a list",
    str: "a string",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    type(None): "null",
}


def _kind(value: Any) -> str:
    return _KINDS.get(type(value), type(value).__name__)
