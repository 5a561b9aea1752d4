"""Queries on the SQLite backend: a ``Where`` as SQL over its rows, and the
bounded scan that runs it. JSON1's ``json_type`` and ``json_extract`` read the
stored value (a BLOB of JSON text, so it is CAST to TEXT first), and conditions
on the key compare sort keys, whose byte order is the keys' order within each
key type. Every fragment keeps the types apart as ``conditions.holds`` does:
``json_type`` tells a JSON ``true`` from the number 1, which ``json_extract``
would not."""

from __future__ import annotations

import sqlite3
import time
from typing import Any, Final

from ..conditions import Condition, Where, kind
from ..keys import BOOL_TAG, NUMBER_TAG, STR_TAG, encode_key
from .base import Listed, Record, Scanned

_VALUE: Final = "CAST(value AS TEXT)"
_JSON_TYPES: Final = {
    "number": "IN ('integer','real')",
    "string": "= 'text'",
    "null": "= 'null'",
}
_KEY_TAGS: Final = {"string": STR_TAG, "number": NUMBER_TAG, "bool": BOOL_TAG}
_ORDER: Final = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}

Fragment = tuple[str, list[Any]]


def _bound(value: Any) -> Any:
    """``value`` as SQLite can bind it: an int past 64 bits as the nearest
    double (SQLite reads such numbers in the stored JSON as doubles too)."""
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        return float(value)
    return value


def where_sql(where: Where) -> Fragment:
    """An SQL expression over an ``items`` row, and its parameters."""
    if not where:
        return "1", []
    alternatives: list[str] = []
    params: list[Any] = []
    for all_of in where:
        parts = []
        for condition in all_of:
            sql, more = _key(condition) if not condition.path else _value(condition)
            parts.append(f"({sql})")
            params += [_bound(param) for param in more]
        alternatives.append(" AND ".join(parts) or "1")
    return " OR ".join(f"({one})" for one in alternatives), params


def _json_path(names: tuple[str, ...]) -> str:
    return "$" + "".join(f'."{name}"' for name in names)


def _typed(type_sql: str, value: Any) -> str:
    """``type_sql`` (a json_type) is the JSON type of ``value``."""
    value_kind = kind(value)
    if value_kind == "bool":
        return f"{type_sql} = '{'true' if value else 'false'}'"
    return f"{type_sql} {_JSON_TYPES[str(value_kind)]}"


def _equal(type_sql: str, value_sql: str, value: Any) -> Fragment:
    if kind(value) in ("bool", "null"):
        return _typed(type_sql, value), []
    return f"{_typed(type_sql, value)} AND {value_sql} = ?", [value]


def _value(condition: Condition) -> Fragment:
    path = _json_path(condition.path)
    op, value = condition.op, condition.value
    params: list[Any]
    type_sql, value_sql = "json_type(j, p)", "json_extract(j, p)"
    if op == "exists":
        sql, params = f"{type_sql} IS {'NOT ' if value else ''}NULL", []
    elif op == "eq":
        sql, params = _equal(type_sql, value_sql, value)
    elif op == "in":
        equals = [_equal(type_sql, value_sql, one) for one in value]
        sql = " OR ".join(f"({one})" for one, _ in equals)
        params = [p for _, more in equals for p in more]
    elif op == "ne":
        if kind(value) == "null":
            sql, params = "0", []
        elif kind(value) == "bool":
            sql, params = _typed(type_sql, not value), []
        else:
            sql, params = f"{_typed(type_sql, value)} AND {value_sql} != ?", [value]
    elif op in _ORDER:
        sql, params = f"{_typed(type_sql, value)} AND {value_sql} {_ORDER[op]} ?", [value]
    elif op == "pfx":
        sql, params = f"{type_sql} = 'text' AND substr({value_sql}, 1, ?) = ?", [len(value), value]
    else:  # contains: a substring of a string, or a member of an array
        member, member_params = _equal("type", "value", value)
        sql = f"{type_sql} = 'array' AND EXISTS (SELECT 1 FROM json_each(j, p) WHERE {member})"
        params = member_params
        if isinstance(value, str):
            sql = f"({type_sql} = 'text' AND instr({value_sql}, ?) > 0) OR ({sql})"
            params = [value, *params]
    # One JSON text and one path for the whole fragment, named once.
    return f"SELECT {sql} FROM (SELECT {_VALUE} AS j, ? AS p)", [*params, path]


def _sk(value: Any) -> bytes:
    return encode_key(value).encode("utf-8", "surrogatepass")


def _key_kind(value: Any) -> str:
    """The sort keys of keys of ``value``'s type: from its tag to the next."""
    tag = _KEY_TAGS[str(kind(value))]
    return f"sk >= CAST('{tag}' AS BLOB) AND sk < CAST('{chr(ord(tag) + 1)}' AS BLOB)"


def _key(condition: Condition) -> Fragment:
    op, value = condition.op, condition.value
    if op == "exists":
        return ("1" if value else "0"), []
    if op == "in":
        keys = [_sk(one) for one in value if kind(one) != "null"]
        return (f"sk IN ({','.join('?' * len(keys))})" if keys else "0"), list(keys)
    if kind(value) == "null":
        return "0", []
    if op == "eq":
        return "sk = ?", [_sk(value)]
    if op == "ne":
        return f"{_key_kind(value)} AND sk != ?", [_sk(value)]
    if op in _ORDER:
        return f"{_key_kind(value)} AND sk {_ORDER[op]} ?", [_sk(value)]
    if op == "pfx":
        prefix = _sk(value)
        return "sk >= ? AND sk < ?", [prefix, prefix + b"\xff"]
    if isinstance(value, str):  # contains: a substring of a str key
        return f"{_key_kind(value)} AND instr(substr(sk, 2), ?) > 0", [value.encode()]
    return "0", []  # a key is never a list


def scan_rows(
    conn: sqlite3.Connection,
    collection: str,
    after: str | None,
    prefix: str,
    where: Where,
    limit: int,
    budget: int,
    keys_only: bool,
) -> Scanned:
    """``Backend.scan`` on one connection: the conditions run in SQL over the
    next ``budget`` rows of the collection (the inner LIMIT), which SQLite
    reads one at a time, stopping at ``limit`` matches."""
    condition, params = where_sql(where)
    lower = prefix.encode("utf-8", "surrogatepass")
    # The rows after ``after`` that start with ``prefix`` (no UTF-8 holds 0xFF).
    rows_in = "collection=? AND sk > ? AND sk >= ? AND sk < ?"
    bounds = [
        collection,
        after.encode("utf-8", "surrogatepass") if after is not None else b"",
        lower,
        lower + b"\xff",
    ]
    value = "x''" if keys_only else "value"
    # Expired rows are read (they count in the budget) but never match.
    sql = (
        f"SELECT sk, {value}, version, float_key, expires_at FROM (SELECT sk, value, version,"
        f" float_key, expires_at FROM items WHERE {rows_in} ORDER BY sk LIMIT ?)"
        f" WHERE (expires_at IS NULL OR expires_at > ?) AND ({condition}) ORDER BY sk LIMIT ?"
    )
    rows = conn.execute(sql, [*bounds, budget, time.time(), *params, limit]).fetchall()
    matches = [
        Listed(sk.decode("utf-8", "surrogatepass"), Record(v, version, bool(fk), exp))
        for sk, v, version, fk, exp in rows
    ]
    # Where the scan stopped: at the last match when the page is full, else at
    # the end of the rows it read.
    upper = "AND sk <= ?" if len(rows) == limit else ""
    bound = [rows[-1][0]] if upper else []
    scanned, last = conn.execute(
        f"SELECT count(*), max(sk) FROM (SELECT sk FROM items WHERE {rows_in} {upper}"
        " ORDER BY sk LIMIT ?)",
        [*bounds, *bound, budget],
    ).fetchone()
    done = (
        last is None
        or not conn.execute(
            f"SELECT 1 FROM items WHERE {rows_in} LIMIT 1", [collection, last, *bounds[2:]]
        ).fetchone()
    )
    last_sk = None if last is None else last.decode("utf-8", "surrogatepass")
    return Scanned(matches, scanned, last_sk, done)
