"""Queries: the items of a collection that match a ``where``, in key order or
sorted by a value, a bounded page at a time (store semantics, no HTTP).

Every request reads at most ``Limits.max_query_scan`` items. In key order a
page ends where its scan ended, so it may hold fewer matches than ``limit``
and still carry a cursor (as DynamoDB's pages do); the cursor names the last
item read. A sort by a value (or by ``-@key``) must read every candidate to
order them: it is refused (QueryTooBroad) when the collection holds more than
one request may read, and its cursor is a position in that order. A cursor
carries a fingerprint of its query, so it is refused by any other query.

While nobody writes, walking the cursors returns every match exactly once.
Writes in between may be seen or not: in key order an item written behind
the cursor is missed, one ahead of it is seen; in a value order, a write
before the cursor's position shifts the positions after it (an item may be
skipped or seen twice).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Any, Final

import orjson

from itemstore_wire import exactjson
from itemstore_wire.contract import Key, Limits

from .backends.base import Backend, Listed, Record
from .conditions import MISSING, Where, at_path, kind, parse_path, parse_where
from .errors import InvalidCursor, InvalidQuery, QueryTooBroad
from .keys import MAX_SORT_KEY_BYTES, decode_key, encode_key, is_sort_key, str_prefix

MEMBERS: Final = frozenset({"where", "sort", "limit", "cursor", "keys_only", "count"})
_SORT_RANK: Final = {"number": 0, "string": 1, "bool": 2}
"""Sorted by a value: numbers, then strings, then false and true; items
without the path, or with null, an object or an array there, come last."""


@dataclass(frozen=True, slots=True)
class Query:
    where: Where
    sort: tuple[str, ...] | None
    """The path sorted by (``()``: the key, descending); None: key order."""
    descending: bool
    limit: int
    cursor: str | None
    keys_only: bool
    count: bool
    fingerprint: str


@dataclass(frozen=True, slots=True)
class QueryPage:
    items: list[tuple[Key, Record]]
    next_cursor: str | None
    scanned: int
    count: int | None
    """With ``Query.count``: the matches among the items this request read."""


def parse_query(document: object, limits: Limits) -> Query:
    """The Query a request body states; InvalidQuery says what to fix."""
    if not isinstance(document, dict):
        raise InvalidQuery('the body must be a JSON object like {"where": {"age?gte": 30}}')
    unknown = sorted(set(document) - MEMBERS)
    if unknown:
        raise InvalidQuery(
            f"unknown member(s) {', '.join(unknown)}; known: {', '.join(sorted(MEMBERS))}"
        )
    where = parse_where(document.get("where"))
    sort_text = document.get("sort")
    sort: tuple[str, ...] | None = None
    descending = False
    if sort_text is not None:
        if not isinstance(sort_text, str):
            raise InvalidQuery(f"sort must be a path or -path, not {sort_text!r}")
        descending = sort_text.startswith("-")
        sort = parse_path(sort_text[1:] if descending else sort_text)
        if sort == () and not descending:
            sort = None  # the key, ascending: key order
    limit = document.get("limit", limits.default_page_size)
    if (
        isinstance(limit, bool)
        or not isinstance(limit, int)
        or not 1 <= limit <= limits.max_page_size
    ):
        raise InvalidQuery(f"limit must be an integer from 1 to {limits.max_page_size}")
    cursor = document.get("cursor")
    if cursor is not None and not isinstance(cursor, str):
        raise InvalidQuery("cursor must be a next_cursor string given by this query, or null")
    flags = {}
    for name in ("keys_only", "count"):
        flags[name] = document.get(name, False)
        if not isinstance(flags[name], bool):
            raise InvalidQuery(f"{name} must be true or false")
    if flags["count"]:
        sort, descending = None, False  # a count is the same in any order
    fingerprint = hashlib.sha256(
        repr((where, sort, descending, flags["count"])).encode()
    ).hexdigest()[:16]
    return Query(
        where,
        sort,
        descending,
        limit,
        cursor or None,
        flags["keys_only"],
        flags["count"],
        fingerprint,
    )


# -- cursors ---------------------------------------------------------------


def _encode_cursor(query: Query, **position: Any) -> str:
    raw = orjson.dumps({"q": query.fingerprint, **position})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(query: Query) -> dict[str, Any]:
    if query.cursor is None:
        return {}
    try:
        text = query.cursor
        position = orjson.loads(
            base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
        )
    except (binascii.Error, ValueError):
        position = None
    if not isinstance(position, dict) or position.get("q") != query.fingerprint:
        raise InvalidCursor(
            "cursor is not one this query gave out: pass next_cursor back with the same"
            " where, sort and count"
        )
    after, offset = position.get("a"), position.get("o")
    if (query.sort is None and not (isinstance(after, str) and is_sort_key(after))) or (
        query.sort is not None and not (isinstance(offset, int) and offset >= 0)
    ):
        raise InvalidCursor("cursor is damaged: pass next_cursor back unchanged")
    return position


# -- running ---------------------------------------------------------------


def _key(entry: Listed) -> Key:
    return decode_key(entry.sk, entry.record.float_key)


async def run_query(backend: Backend, collection: str, query: Query, budget: int) -> QueryPage:
    """One page of ``query`` over ``collection``, reading at most ``budget`` items."""
    position = _decode_cursor(query)
    prefix, after = _key_range(query.where)
    if query.sort is None:
        scanned = await backend.scan(
            collection,
            after=_later(after, position.get("a")),
            prefix=prefix,
            where=query.where,
            limit=budget if query.count else query.limit,
            budget=budget,
            keys_only=query.keys_only or query.count,
        )
        cursor = None if scanned.done else _encode_cursor(query, a=scanned.last_sk)
        if query.count:
            return QueryPage([], cursor, scanned.scanned, len(scanned.matches))
        items = [(_key(entry), entry.record) for entry in scanned.matches]
        return QueryPage(items, cursor, scanned.scanned, None)

    everything = await backend.scan(
        collection,
        after=after,
        prefix=prefix,
        where=query.where,
        limit=budget,
        budget=budget,
        keys_only=False,
    )
    if not everything.done:
        raise QueryTooBroad(
            f"collection {collection!r} holds more than {budget} items in the key range of"
            " this query, more than one request may read to sort by a value: narrow the"
            ' keys with "@key?pfx" or "@key?gt", sort by key (leave sort out), or keep the'
            " items to sort in a collection of their own"
        )
    ordered = _sorted(everything.matches, query)
    offset = position.get("o", 0)
    page = ordered[offset : offset + query.limit]
    more = offset + query.limit < len(ordered)
    cursor = _encode_cursor(query, o=offset + query.limit) if more else None
    if query.keys_only:
        page = [Listed(e.sk, Record(b"", e.record.version, e.record.float_key)) for e in page]
    return QueryPage([(_key(e), e.record) for e in page], cursor, everything.scanned, None)


def _key_range(where: Where) -> tuple[str, str | None]:
    """The sort-key prefix and the exclusive lower bound that every match of
    ``where`` lies within, from its conditions on ``@key`` (``pfx``, ``eq``,
    ``gt``), so that a scan reads only that part of the collection."""
    if len(where) != 1:
        return "", None
    prefix, after = "", None
    for condition in where[0]:
        if condition.path or kind(condition.value) not in ("string", "number", "bool"):
            continue
        op, value = condition.op, condition.value
        sk = str_prefix(value) if op == "pfx" else encode_key(value)
        if len(sk.encode()) > MAX_SORT_KEY_BYTES:  # no key is that long: leave it to the filter
            continue
        if op in ("pfx", "eq"):  # an equal key has its own sk as prefix
            prefix = max(prefix, sk, key=len)
        elif op == "gt":
            after = _later(after, sk)
    return prefix, after


def _later(one: str | None, other: str | None) -> str | None:
    """The later of two positions (None: the start)."""
    if one is None or other is None:
        return one or other
    return max(one, other)


def _sorted(entries: list[Listed], query: Query) -> list[Listed]:
    """``entries`` (in key order) by the sort path; ties and the items
    without a sortable value there stay in key order, the latter last."""
    path = query.sort or ()
    ranked: dict[int, list[tuple[Any, Listed]]] = {rank: [] for rank in (0, 1, 2, 3)}
    for entry in entries:
        found = at_path(exactjson.loads(entry.record.value), path) if path else _key(entry)
        rank = _SORT_RANK.get(str(kind(found)), 3) if found is not MISSING else 3
        ranked[rank].append((found, entry))
    ordered: list[Listed] = []
    for rank in (0, 1, 2):
        group = sorted(ranked[rank], key=lambda pair: pair[0], reverse=query.descending)
        ordered += [entry for _, entry in group]
    return ordered + [entry for _, entry in ranked[3]]
