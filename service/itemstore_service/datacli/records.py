"""The dump format: JSON Lines, one item per line.

``{"collection": "users", "key": 42, "key_type": "int", "value": {...}}``,
plus ``"expires_at"`` (Unix seconds, an integer) when the item expires.
``key_type`` names the key's type even where a JSON tool loses it (jq writes
the float key ``1.0`` as ``1``): on import it decides. Numbers keep every
digit (``exactjson``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from itemstore_wire.contract import COLLECTION_NAME, COLLECTION_NAME_RULE, KEY_TYPES, Key, key_type
from itemstore_wire.exactjson import dumps, loads

FIELDS: Final = ("collection", "key", "key_type", "value", "expires_at")
_REQUIRED: Final = ("collection", "key", "value")


class BadRecord(ValueError):
    """A line that is not an item record; the message says what to fix."""


@dataclass(frozen=True, slots=True)
class Record:
    collection: str
    key: Key
    value: Any
    expires_at: int | None = None

    def encode(self) -> bytes:
        """The record's line, newline included."""
        fields: dict[str, Any] = {
            "collection": self.collection,
            "key": self.key,
            "key_type": key_type(self.key),
            "value": self.value,
        }
        if self.expires_at is not None:
            fields["expires_at"] = self.expires_at
        return dumps(fields) + b"\n"


def decode(line: bytes) -> Record:
    """The record of one line; BadRecord saying what is wrong otherwise."""
    try:
        fields = loads(line)
    except ValueError as exc:
        raise BadRecord(f"not JSON ({exc})") from None
    if not isinstance(fields, dict):
        raise BadRecord("not a JSON object")
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise BadRecord(f"unknown field {unknown[0]!r}: a record has {', '.join(FIELDS)}")
    missing = [name for name in _REQUIRED if name not in fields]
    if missing:
        raise BadRecord(f"no {missing[0]!r} field")
    collection = fields["collection"]
    if not isinstance(collection, str) or not COLLECTION_NAME.fullmatch(collection):
        raise BadRecord(f"collection {collection!r} must be {COLLECTION_NAME_RULE}")
    return Record(
        collection,
        _typed_key(fields["key"], fields.get("key_type")),
        fields["value"],
        _expiry(fields.get("expires_at")),
    )


def _typed_key(key: Any, kind: Any) -> Key:
    """``key`` as ``kind`` says (its JSON type when no key_type is given)."""
    if kind is None:
        if isinstance(key, str | int | float):  # bool is an int
            return key
        raise BadRecord(f"key {key!r} must be a string, number or boolean")
    if kind not in KEY_TYPES:
        raise BadRecord(f"key_type must be one of {', '.join(KEY_TYPES)}, not {kind!r}")
    number = isinstance(key, int | float) and not isinstance(key, bool)
    if kind == "float" and number:
        try:
            return float(key)
        except OverflowError:
            raise BadRecord(f"key {key} is out of the float range") from None
    if kind == "int" and isinstance(key, float) and key.is_integer():
        return int(key)
    if key_type(key) != kind:
        raise BadRecord(f"key {key!r} is not of key_type {kind}")
    return key  # type: ignore[no-any-return]  # checked: str, int or bool


def _expiry(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRecord(f"expires_at must be Unix seconds (an integer), not {value!r}")
    if value < 0:
        raise BadRecord(f"expires_at must be 0 or more, not {value!r}")
    return value
