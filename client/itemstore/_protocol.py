"""The sans-I/O core: every request the SDK sends and how its answer is read.

Each operation is a :class:`Call`: a :class:`Request` (method, URL, headers,
body, replay class) plus a ``decode`` function turning the :class:`Response`
into a Python result or an exception. The sync and async transports only move
bytes; all protocol knowledge lives here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode, urlsplit

from itemstore_wire.contract import COLLECTION_NAME, COLLECTION_NAME_RULE, Key, Limits, key_type
from itemstore_wire.exactjson import dumps, loads

from ._batch import BatchOp, TransactionOp
from ._keys import check_key, path_segment
from ._retry import Replay, parse_retry_after
from .errors import (
    Forbidden,
    ItemstoreError,
    PreconditionFailed,
    RateLimited,
    Unauthorized,
    Unavailable,
    ValidationError,
)

T = TypeVar("T")
JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
DEFAULT_URL = "http://127.0.0.1:8080"
MINIMAL = {"Prefer": "return=minimal"}
"""Asks for a blind write (RFC 7240): puts answer 204 with the ETag and no
created-vs-replaced, which spares the service a read before the write."""


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None = None
    replay: Replay = Replay.SAFE


@dataclass(frozen=True, slots=True)
class Response:
    """An answer; ``headers`` must look names up case-insensitively."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    request: Request
    decode: Callable[[Response], T]


@dataclass(frozen=True, slots=True)
class Item:
    """A stored value and its ETag (quoted, ready for ``If-Match``)."""

    value: Any
    etag: str


@dataclass(frozen=True, slots=True)
class ListedItem:
    """One entry of a listing: a key, its value (None when keys only) and
    when the item expires (Unix seconds; None: never)."""

    key: Key
    value: Any
    expires_at: int | None = None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    entries: list[T]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class AccessKey:
    """An access key as the service lists it. ``token`` is set only on the
    key ``keys.create`` returns: the service shows it once, and keeps only a
    hash of it."""

    id: str
    name: str
    scope: str
    collections: list[str] | None
    rate_limit: float | None
    burst: int | None
    created_at: int
    token: str | None = None

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> AccessKey:
        return cls(
            id=doc["id"],
            name=doc["name"],
            scope=doc["scope"],
            collections=doc["collections"],
            rate_limit=doc["rate_limit"],
            burst=doc["burst"],
            created_at=doc["created_at"],
            token=doc.get("token"),
        )


@dataclass(frozen=True, slots=True)
class OpResult:
    """One result of a batch call: ``value``/``etag`` are None when absent."""

    status: int
    value: Any = None
    etag: str | None = None
    problem: Mapping[str, Any] = field(default_factory=dict)


Expiry = Sequence[tuple[str, str]]
"""The ``expire_in`` / ``expire_at`` query of a write (empty: none)."""


def expiry(expire_in: int | None, expire_at: int | None) -> Expiry:
    """The query that asks a write's item to expire ``expire_in`` seconds
    from now or at Unix time ``expire_at`` (the service checks them)."""
    query = [("expire_in", expire_in), ("expire_at", expire_at)]
    return [(name, str(seconds)) for name, seconds in query if seconds is not None]


def check_collection_name(name: str) -> str:
    if not isinstance(name, str) or not COLLECTION_NAME.fullmatch(name):
        raise ValidationError(
            f"collection name {name!r} must be {COLLECTION_NAME_RULE}",
            status=400,
            code="invalid-collection-name",
            title="Invalid collection name",
        )
    return name


def problem_error(response: Response, url: str) -> ItemstoreError:
    """The exception for an error answer, built from its problem body."""
    status = response.status
    body: Any = None
    try:
        body = loads(response.body) if response.body else None
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("detail", body.get("title")), str):
        detail = str(body.get("detail") or body.get("title"))
        code = str(body.get("code", ""))
        title = str(body.get("title", ""))
        extras = {k: v for k, v in body.items() if k not in ("detail", "code", "title", "status")}
    else:
        text = response.body[:200].decode("utf-8", "replace")
        short = url if len(url) <= 120 else url[:117] + "..."
        title = _phrase(status)
        detail = f"HTTP {status} {title} from {short}" + (f": {text}" if text else "")
        code, extras = "", {}
    kwargs: dict[str, Any] = {"status": status, "code": code, "title": title, "extras": extras}
    if status in (400, 413, 415):
        return ValidationError(detail, **kwargs)
    if status == 401:
        return Unauthorized(detail, **kwargs)
    if status == 403:
        return Forbidden(detail, **kwargs)
    if status == 412:
        return PreconditionFailed(detail, **kwargs)
    if status in (429, 502, 503, 504):
        after = parse_retry_after(response.headers.get("Retry-After"))
        unavailable = RateLimited if status == 429 else Unavailable
        return unavailable(detail, retry_after=after, **kwargs)
    return ItemstoreError(detail, **kwargs)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def applied_before(error: ItemstoreError, applied: int, total: int) -> ItemstoreError:
    """``error`` of a batch call that came after ``applied`` of ``total`` ops
    were already applied by earlier calls: its detail says so, and the
    indexes of ``extras["errors"]`` count from the first op of all."""
    if applied:
        error.detail = f"{applied} of {total} ops were applied before this failed: {error.detail}"
        error.args = (error.detail,)
        for entry in error.extras.get("errors") or []:
            if isinstance(entry, dict) and isinstance(entry.get("index"), int):
                entry["index"] += applied
    return error


def connection_error(request: Request, reason: object) -> Unavailable:
    parts = urlsplit(request.url)
    return Unavailable(
        f"cannot reach itemstore at {parts.scheme}://{parts.netloc}"
        f" ({request.method} {parts.path}): {str(reason) or type(reason).__name__}",
        code="connection-failed",
    )


def _is_item_missing(response: Response) -> bool:
    """A 404 about the item (not an unknown route, which is an error)."""
    if response.status != 404:
        return False
    try:
        body = loads(response.body) if response.body else None
    except ValueError:
        return False
    return not isinstance(body, dict) or body.get("code", "item-not-found") == "item-not-found"


def _etag(response: Response) -> str:
    return response.headers.get("ETag", "")


class Core:
    """Builds the calls of one service at ``base_url`` (with an optional token)."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"itemstore url must be http(s)://host[:port], not {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.limits: Limits | None = None
        """The service's limits once asked for (see ``_flows.limits``)."""
        self._headers: dict[str, str] = {"Accept": JSON}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"

    # -- building --------------------------------------------------------------------
    def _request(
        self,
        method: str,
        path: str,
        query: Iterable[tuple[str, str]] = (),
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        replay: Replay = Replay.SAFE,
    ) -> Request:
        url = self.base_url + path
        q = urlencode(list(query))
        if q:
            url += "?" + q
        all_headers = dict(self._headers)
        if body is not None:
            all_headers["Content-Type"] = JSON
        all_headers.update(headers or {})
        return Request(method, url, all_headers, body, replay)

    def _item(self, collection: str, key: Key) -> tuple[str, list[tuple[str, str]]]:
        key = check_key(key)
        path = f"/collections/{check_collection_name(collection)}/items/{path_segment(key)}"
        return path, [("key_type", key_type(key))]

    def _fail(self, request: Request, response: Response) -> ItemstoreError:
        return problem_error(response, request.url)

    def _json(self, request: Request, response: Response, *ok: int) -> Any:
        if response.status not in ok:
            raise self._fail(request, response)
        return loads(response.body)

    # -- service -----------------------------------------------------------------------
    def info(self) -> Call[dict[str, Any]]:
        req = self._request("GET", "/")
        return Call(req, lambda r: dict(self._json(req, r, 200)))

    def collections_page(self, cursor: str | None, limit: int | None) -> Call[Page[str]]:
        req = self._request("GET", "/collections", _paging(cursor, limit))

        def decode(r: Response) -> Page[str]:
            body = self._json(req, r, 200)
            return Page([c["name"] for c in body["collections"]], body.get("next_cursor"))

        return Call(req, decode)

    # -- access keys -------------------------------------------------------------------
    def create_key(
        self,
        name: str,
        scope: str,
        collections: Sequence[str] | None,
        rate_limit: float | None,
        burst: int | None,
    ) -> Call[AccessKey]:
        settings: dict[str, Any] = {"name": name, "scope": scope}
        if collections is not None:
            settings["collections"] = list(collections)
        if rate_limit is not None:
            settings["rate_limit"] = rate_limit
        if burst is not None:
            settings["burst"] = burst
        # Never replayed: a first run that took effect would leave a second key.
        req = self._request("POST", "/keys", body=dumps(settings), replay=Replay.NEVER)
        return Call(req, lambda r: AccessKey.from_json(self._json(req, r, 201)))

    def list_keys(self) -> Call[list[AccessKey]]:
        req = self._request("GET", "/keys")
        return Call(
            req, lambda r: [AccessKey.from_json(k) for k in self._json(req, r, 200)["keys"]]
        )

    def revoke_key(self, key_id: str) -> Call[AccessKey]:
        path = "/keys/" + path_segment(key_id)
        req = self._request("DELETE", path, replay=Replay.IF_NOT_APPLIED)
        return Call(req, lambda r: AccessKey.from_json(self._json(req, r, 200)))

    # -- one item ----------------------------------------------------------------------
    def get(self, collection: str, key: Key, *, consistent: bool = False) -> Call[Item | None]:
        path, query = self._item(collection, key)
        if consistent:
            query.append(("consistent", "true"))
        req = self._request("GET", path, query)

        def decode(r: Response) -> Item | None:
            if _is_item_missing(r):
                return None
            return Item(self._json(req, r, 200), _etag(r))

        return Call(req, decode)

    def contains(self, collection: str, key: Key) -> Call[bool]:
        path, query = self._item(collection, key)
        req = self._request("HEAD", path, query)

        def decode(r: Response) -> bool:
            # HEAD answers carry no body to tell item from route; a 400 is a key
            # the service refuses, which no collection holds (a dict says False).
            if r.status in (400, 404):
                return False
            if r.status != 200:
                raise self._fail(req, r)
            return True

        return Call(req, decode)

    def put(
        self,
        collection: str,
        key: Key,
        value: bytes,
        *,
        if_match: str | None = None,
        if_absent: bool = False,
        minimal: bool = False,
        expires: Expiry = (),
    ) -> Call[tuple[bool | None, str]]:
        """Store encoded ``value``: decodes to ``(created, etag)``; 412 raises
        PreconditionFailed carrying the current value and ETag. ``minimal``:
        a blind write (``Prefer: return=minimal``), whose ``created`` is None
        when the service answers 204 (the ETag comes in its header)."""
        path, query = self._item(collection, key)
        query += expires
        headers: dict[str, str] = {}
        if if_match is not None:
            headers["If-Match"] = if_match
        if if_absent:
            headers["If-None-Match"] = "*"
        replay = Replay.IF_NOT_APPLIED if headers else Replay.SAFE
        if minimal:
            headers |= MINIMAL
        req = self._request("PUT", path, query, body=value, headers=headers, replay=replay)

        def decode(r: Response) -> tuple[bool | None, str]:
            if r.status == 204:
                return None, _etag(r)
            self._json(req, r, 200, 201)
            return r.status == 201, _etag(r)

        return Call(req, decode)

    def setdefault(self, collection: str, key: Key, default: Any) -> Call[Any]:
        """Atomic setdefault in one round trip: the stored value after the call."""
        put = self.put(collection, key, dumps(default), if_absent=True)

        def decode(r: Response) -> Any:
            try:
                put.decode(r)
            except PreconditionFailed as exc:
                return exc.current
            return default

        return Call(put.request, decode)

    def delete(
        self, collection: str, key: Key, *, if_match: str | None = None
    ) -> Call[Item | None]:
        """Remove an item: decodes to the removed value, None when absent."""
        path, query = self._item(collection, key)
        headers = {"If-Match": if_match} if if_match is not None else {}
        req = self._request("DELETE", path, query, headers=headers, replay=Replay.IF_NOT_APPLIED)

        def decode(r: Response) -> Item | None:
            if _is_item_missing(r):
                return None
            return Item(self._json(req, r, 200), _etag(r))

        return Call(req, decode)

    def patch(
        self,
        collection: str,
        key: Key,
        change: bytes,
        *,
        merge: bool = False,
        if_match: str | None = None,
        expires: Expiry = (),
    ) -> Call[Item | None]:
        """Apply encoded update operations (or, with ``merge``, a JSON Merge
        Patch) to an item: decodes to the new value and ETag, None when absent.
        Never replayed once it may have applied: an increment would count twice."""
        path, query = self._item(collection, key)
        query += expires
        headers = {"Content-Type": MERGE_PATCH} if merge else {}
        if if_match is not None:
            headers["If-Match"] = if_match
        req = self._request(
            "PATCH", path, query, body=change, headers=headers, replay=Replay.IF_NOT_APPLIED
        )

        def decode(r: Response) -> Item | None:
            if _is_item_missing(r):
                return None
            return Item(self._json(req, r, 200), _etag(r))

        return Call(req, decode)

    def add(self, collection: str, value: bytes, expires: Expiry = ()) -> Call[tuple[str, str]]:
        """Store under a new server-made key: decodes to ``(key, etag)``."""
        path = f"/collections/{check_collection_name(collection)}/items"
        req = self._request("POST", path, expires, body=value, replay=Replay.NEVER)

        def decode(r: Response) -> tuple[str, str]:
            body = self._json(req, r, 201)
            return body["key"], body["etag"]

        return Call(req, decode)

    # -- whole collection -----------------------------------------------------------
    def page(
        self,
        collection: str,
        cursor: str | None,
        *,
        limit: int | None = None,
        prefix: str | None = None,
        keys_only: bool = False,
    ) -> Call[Page[ListedItem]]:
        """One listing page (values None when keys_only)."""
        query = _paging(cursor, limit)
        if prefix:
            query.append(("prefix", prefix))
        if keys_only:
            query.append(("keys_only", "true"))
        path = f"/collections/{check_collection_name(collection)}/items"
        req = self._request("GET", path, query)

        def decode(r: Response) -> Page[ListedItem]:
            body = self._json(req, r, 200)
            entries = [
                ListedItem(e["key"], e.get("value"), e.get("expires_at")) for e in body["items"]
            ]
            return Page(entries, body.get("next_cursor"))

        return Call(req, decode)

    def count(self, collection: str) -> Call[int]:
        req = self._request("GET", f"/collections/{check_collection_name(collection)}")

        def decode(r: Response) -> int:
            return int(self._json(req, r, 200)["count"])

        return Call(req, decode)

    def query(
        self, collection: str, query: dict[str, Any], cursor: str | None
    ) -> Call[Page[tuple[Key, Any]]]:
        """One page of ``POST /collections/{name}/query``; ``query`` is its
        body but the cursor."""
        req = self._query_request(collection, {**query, "cursor": cursor})

        def decode(r: Response) -> Page[tuple[Key, Any]]:
            body = self._json(req, r, 200)
            entries = [(e["key"], e.get("value")) for e in body["items"]]
            return Page(entries, body.get("next_cursor"))

        return Call(req, decode)

    def count_page(self, collection: str, where: Any, cursor: str | None) -> Call[Page[int]]:
        """One counting query: a page of one entry, the matches among the
        items that request read."""
        req = self._query_request(collection, {"where": where, "count": True, "cursor": cursor})

        def decode(r: Response) -> Page[int]:
            body = self._json(req, r, 200)
            return Page([int(body["count"])], body.get("next_cursor"))

        return Call(req, decode)

    def _query_request(self, collection: str, body: dict[str, Any]) -> Request:
        path = f"/collections/{check_collection_name(collection)}/query"
        return self._request("POST", path, body=dumps(body))

    def transact(
        self, ops: Sequence[TransactionOp], idempotency_key: str
    ) -> Call[list[str | None]]:
        """One transaction: the ETag each put wrote (None for other ops). Safe
        to send again: the service applies one ``idempotency_key`` once."""
        body = b'{"ops":[' + b",".join(op.encoded for op in ops) + b"]}"
        headers = {"Idempotency-Key": idempotency_key}
        req = self._request("POST", "/transactions", body=body, headers=headers)

        def decode(r: Response) -> list[str | None]:
            return [result.get("etag") for result in self._json(req, r, 200)["results"]]

        return Call(req, decode)

    def clear(self, collection: str) -> Call[int]:
        path = f"/collections/{check_collection_name(collection)}"
        req = self._request("DELETE", path, replay=Replay.IF_NOT_APPLIED)

        def decode(r: Response) -> int:
            return int(self._json(req, r, 200).get("deleted", 0))

        return Call(req, decode)

    def batch(
        self, collection: str, ops: Sequence[BatchOp], *, minimal: bool = False
    ) -> Call[list[OpResult]]:
        """One batch call of ``ops``; results in op order. A result that is
        neither a success nor a 404 raises its problem. Gets and puts are safe
        to replay; a delete is not (a replay would report it as not found),
        nor a patch (an increment would count twice).
        ``minimal``: blind puts, each answered 204 with its ETag."""
        body = b'{"ops":[' + b",".join(op.encoded for op in ops) + b"]}"
        once = any(op.kind in ("delete", "patch") for op in ops)
        replay = Replay.IF_NOT_APPLIED if once else Replay.SAFE
        path = f"/collections/{check_collection_name(collection)}/batch"
        headers = MINIMAL if minimal else None
        req = self._request("POST", path, body=body, headers=headers, replay=replay)

        def decode(r: Response) -> list[OpResult]:
            results = []
            for res in self._json(req, r, 200)["results"]:
                status = int(res["status"])
                if status >= 400 and status != 404:
                    raise problem_error(Response(status, {}, dumps(res)), req.url)
                results.append(OpResult(status, res.get("value"), res.get("etag"), res))
            return results

        return Call(req, decode)


def _paging(cursor: str | None, limit: int | None) -> list[tuple[str, str]]:
    query: list[tuple[str, str]] = []
    if limit is not None:
        query.append(("limit", str(limit)))
    if cursor is not None:
        query.append(("cursor", cursor))
    return query
