"""Parsing and checking of request input, before anything reaches the store.

Every function raises an error whose detail says what to fix (answered 4xx).
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import web

from itemstore_wire import exactjson
from itemstore_wire.contract import COLLECTION_NAME, COLLECTION_NAME_RULE, Key, Limits

from .appkeys import CONFIG
from .errors import (
    InvalidBatch,
    InvalidCollectionName,
    InvalidInput,
    InvalidJSON,
    InvalidKey,
    InvalidTransaction,
    ValueTooLarge,
)
from .keys import check_json_key, encode_key, key_bytes, parse_path_key
from .operations import Op
from .patching import Change, parse_merge_patch, parse_operations
from .problems import UnsupportedMediaType
from .queries import Query, parse_query
from .transactions import OP_KINDS, TransactionOp

_JSON_WHITESPACE = b" \t\n\r"
_PAGE_SIZE = re.compile(r"[0-9]{1,9}")
_SECONDS = re.compile(r"[0-9]{1,12}")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")  # a '%' that starts no escape


def collection_name(request: web.Request) -> str:
    name = request.match_info["name"]
    if not COLLECTION_NAME.fullmatch(name):
        raise InvalidCollectionName(f"collection name {name!r} must be {COLLECTION_NAME_RULE}")
    return name


def check_key(key: Key, limits: Limits) -> Key:
    if isinstance(key, str) and not key:
        raise InvalidKey("key must not be empty")
    size = key_bytes(key)
    if size > limits.max_key_bytes:
        raise InvalidKey(f"key is {size} bytes of UTF-8; the limit is {limits.max_key_bytes}")
    return key


def path_key(request: web.Request, limits: Limits) -> Key:
    """The typed key of an item route: the path segment and ``?key_type=``.
    The segment is decoded here, strictly: a stray '%' or escapes that are not
    UTF-8 would otherwise be kept as literal text, naming another key's item."""
    raw = request.rel_url.raw_parts[-1]
    key_type = request.query.get("key_type", "str") if request.query_string else "str"
    if "%" not in raw and raw.isascii():  # most keys: nothing to decode
        return check_key(parse_path_key(raw, key_type), limits)
    if _BAD_ESCAPE.search(raw):
        raise InvalidKey("a '%' in a key must be sent as %25")
    try:
        text = unquote(raw, errors="strict")
        text.encode()  # no lone surrogates either
    except UnicodeError:
        raise InvalidKey("the key's %-escapes must spell UTF-8 text") from None
    return check_key(parse_path_key(text, key_type), limits)


def flag(request: web.Request, name: str) -> bool:
    if not request.query_string:
        return False
    text = request.query.get(name, "false")
    if text not in ("true", "false"):
        raise InvalidInput(f"query parameter {name} must be true or false, not {text!r}")
    return text == "true"


def prefers_minimal(request: web.Request) -> bool:
    """Whether the request's ``Prefer`` headers (RFC 7240) ask for
    ``return=minimal``: preferences are separated by commas, their names and
    this value compared case-insensitively, parameters after ``;`` and other
    preferences ignored; only the first ``return`` preference counts."""
    headers = request.headers.getall("Prefer", ())
    if headers == ["return=minimal"]:  # as the SDK sends it
        return True
    for header in headers:
        for preference in header.split(","):
            name, _, value = preference.partition(";")[0].partition("=")
            if name.strip().lower() == "return":
                return value.strip().strip('"').lower() == "minimal"
    return False


def expiry(request: web.Request, limits: Limits) -> int | None:
    """When the item written expires (Unix seconds), from ``?expire_in=``
    (seconds from now) or ``?expire_at=`` (Unix seconds); None without them."""
    if not request.query_string:
        return None
    given = {
        name: request.query[name] for name in ("expire_in", "expire_at") if name in request.query
    }
    for name, text in given.items():
        if not _SECONDS.fullmatch(text):
            raise InvalidInput(f"{name} must be a whole number of seconds, not {text!r}")
    return expires_at({name: int(text) for name, text in given.items()}, limits)


def expires_at(given: dict[str, Any], limits: Limits) -> int | None:
    """The expiry that ``expire_in`` or ``expire_at`` in ``given`` ask for
    (see ``expiry``), checked: one of them, in the future, within
    ``max_expire_in`` seconds of now."""
    if len(given) > 1:
        raise InvalidInput("send expire_in or expire_at, not both")
    if not given:
        return None
    ((name, seconds),) = given.items()
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        raise InvalidInput(f"{name} must be a whole number of seconds, not {seconds!r}")
    if name == "expire_in" and seconds < 1:
        raise InvalidInput("expire_in must be at least 1 second")
    now = time.time()
    # Rounded up: an item never expires before it was asked to.
    at = math.ceil(now) + seconds if name == "expire_in" else seconds
    if at <= now:
        raise InvalidInput(f"{name} must be in the future (delete an item to remove it now)")
    if at > now + limits.max_expire_in + 1:
        raise InvalidInput(
            f"{name} is too far: an item lives at most {limits.max_expire_in} seconds"
            " (max_expire_in)"
        )
    return at


def page_size(request: web.Request, limits: Limits) -> int:
    text = request.query.get("limit")
    if text is None:
        return limits.default_page_size
    if not _PAGE_SIZE.fullmatch(text) or not 1 <= int(text) <= limits.max_page_size:
        raise InvalidInput(f"limit must be an integer from 1 to {limits.max_page_size}")
    return int(text)


def _check_json_content_type(request: web.Request) -> None:
    content_type = request.content_type
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise UnsupportedMediaType(
            f"send the body as JSON with 'Content-Type: application/json', not {content_type!r}"
        )
    charset = request.charset
    if charset is not None and charset.lower() not in ("utf-8", "utf8"):
        raise UnsupportedMediaType(f"JSON is UTF-8; charset={charset} is not supported")


def _check_value_size(size: int, limits: Limits, what: str = "value") -> None:
    if size > limits.max_value_bytes:
        raise ValueTooLarge(
            f"{what} is {size} bytes of JSON; the limit is {limits.max_value_bytes} bytes"
        )


async def _body(request: web.Request, cap: int | None = None, what: str = "body") -> bytes:
    """The whole body, arrived within the read timeout. With ``cap``, a body
    over ``cap`` bytes is refused (ValueTooLarge) as soon as that is known:
    from its Content-Length before any of it is read, else once that many
    bytes came; nothing more of it is kept. A body that does not arrive in
    time closes the connection (a client sending a byte at a time holds it
    no longer)."""
    if cap is not None and request.content_length is not None and request.content_length > cap:
        raise ValueTooLarge(f"{what} is {request.content_length} bytes; the limit is {cap} bytes")
    if request.content.is_eof():  # all of it arrived with the head: nothing to wait for
        return await _read_body(request, cap, what)
    read_timeout = request.app[CONFIG].read_timeout
    try:
        async with asyncio.timeout(read_timeout):
            return await _read_body(request, cap, what)
    except ConnectionResetError:  # nobody will read the answer; no error to log either
        raise InvalidInput("the connection closed before the whole body arrived") from None
    except TimeoutError:
        request.protocol.force_close()
        raise InvalidInput(
            f"the body did not arrive within {read_timeout:g} s; the connection is closed"
        ) from None


async def _read_body(request: web.Request, cap: int | None, what: str) -> bytes:
    if cap is None:
        return await request.read()
    body = bytearray()
    async for chunk in request.content.iter_any():
        body += chunk
        if len(body) > cap:
            raise ValueTooLarge(f"{what} is over {cap} bytes; the limit is {cap} bytes")
    return bytes(body)


def _loads(body: bytes, parse: Callable[[bytes], Any] = exactjson.loads) -> Any:
    try:
        return parse(body)
    except orjson.JSONDecodeError as exc:
        if "infinity" in str(exc):
            raise InvalidJSON(
                f"a number is beyond the range of a double (about 1.8e308): {exc}"
            ) from None
        raise InvalidJSON(f"body is not JSON (NaN and Infinity are not JSON): {exc}") from None
    except ValueError as exc:  # exactjson: too deep to read with every digit
        raise InvalidJSON(f"{exc}: store such a value with PUT, which keeps it as sent") from None


async def json_value(request: web.Request, limits: Limits) -> bytes:
    """The request body, checked to be one JSON value within the size limit,
    as the bytes to store (exactly as sent, without surrounding white space)."""
    _check_json_content_type(request)
    body = (await _body(request)).strip(_JSON_WHITESPACE)
    _check_value_size(len(body), limits)
    _loads(body, orjson.loads)  # only checked: the bytes are stored, every digit kept
    return body


MERGE_PATCH = "application/merge-patch+json"


async def patch_change(request: web.Request) -> Change:
    """The change a PATCH body asks: update operations (application/json)
    or a JSON Merge Patch (application/merge-patch+json), checked whole."""
    _check_json_content_type(request)
    if request.content_type not in ("application/json", MERGE_PATCH):
        raise UnsupportedMediaType(
            f"PATCH takes application/json (update operations) or {MERGE_PATCH},"
            f" not {request.content_type!r}"
        )
    document = _loads(await _body(request))
    if request.content_type == MERGE_PATCH:
        return parse_merge_patch(document)
    return parse_operations(document)


async def query_body(request: web.Request, limits: Limits) -> Query:
    """The query a request body states (see ``queries.parse_query``)."""
    _check_json_content_type(request)
    return parse_query(_loads(await _body(request, limits.max_batch_bytes, "query body")), limits)


_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")


def idempotency_key(request: web.Request) -> str | None:
    """The ``Idempotency-Key`` header: 1 to 255 visible ASCII characters."""
    key = request.headers.get("Idempotency-Key")
    if key is not None and not _IDEMPOTENCY_KEY.fullmatch(key):
        raise InvalidInput("Idempotency-Key must be 1 to 255 visible ASCII characters, like a UUID")
    return key


async def transaction_ops(request: web.Request, limits: Limits) -> list[TransactionOp]:
    """The ops of a transaction body, or InvalidTransaction listing each bad
    op; two ops on one item are refused."""
    _check_json_content_type(request)
    return parse_transaction(
        _loads(await _body(request, limits.max_batch_bytes, "transaction body")), limits
    )


def parse_transaction(document: object, limits: Limits) -> list[TransactionOp]:
    ops = document.get("ops") if isinstance(document, dict) and len(document) == 1 else None
    if not isinstance(ops, list) or not ops:
        raise InvalidTransaction('body must be {"ops": [...]} with at least one op')
    if len(ops) > limits.max_transaction_ops:
        raise InvalidTransaction(
            f"a transaction holds at most {limits.max_transaction_ops} ops, not {len(ops)}"
        )
    parsed: list[TransactionOp] = []
    errors: list[dict[str, Any]] = []
    first_of: dict[tuple[str, str], int] = {}
    for index, raw in enumerate(ops):
        try:
            op = _transaction_op(raw, limits)
        except (InvalidInput, ValueTooLarge) as exc:
            errors.append({"index": index, "detail": exc.detail})
            continue
        item = (op.collection, encode_key(op.key))
        if item in first_of:
            detail = f"op {first_of[item]} is on this item already: one op per item"
            errors.append({"index": index, "detail": detail})
        first_of.setdefault(item, index)
        parsed.append(op)
    if errors:
        raise InvalidTransaction(
            f"{len(errors)} of {len(ops)} ops are invalid; nothing was written", errors=errors
        )
    return parsed


_TRANSACTION_MEMBERS = frozenset(
    {
        "op",
        "collection",
        "key",
        "key_type",
        "value",
        "change",
        "merge",
        "if_match",
        "if_none_match",
        "expire_in",
        "expire_at",
    }
)


def _transaction_op(raw: object, limits: Limits) -> TransactionOp:
    """One op: its target and condition, read alike for every kind, then
    what its kind takes (a new kind, or a new member such as an expiry, is
    one more rule here)."""
    if not isinstance(raw, dict):
        raise InvalidInput('each op must be an object like {"op": "put", "collection": ...}')
    unknown = sorted(set(raw) - _TRANSACTION_MEMBERS)
    if unknown:
        raise InvalidInput(f"unknown member(s) {', '.join(unknown)}")
    kind = raw.get("op")
    if kind not in OP_KINDS:
        raise InvalidInput(f"op must be {', '.join(OP_KINDS)}, not {kind!r}")
    collection, key = _op_target(raw, limits)
    version, absent = _op_condition(raw)
    given = {name: raw[name] for name in ("expire_in", "expire_at") if name in raw}
    if given and kind not in ("put", "patch"):
        raise InvalidInput(f"a {kind} op takes no expire_in or expire_at")
    expires = expires_at(given, limits)
    value = None
    if kind == "put":
        if "value" not in raw:
            raise InvalidInput("put op has no value")
        value = _stored_value(raw["value"], limits)
    elif "value" in raw:
        raise InvalidInput(f"a {kind} op takes no value")
    if kind != "patch" and ("change" in raw or "merge" in raw):
        raise InvalidInput(f"a {kind} op takes no change or merge (a patch op does)")
    if kind == "check" and version is None and not absent:
        raise InvalidInput("a check op needs if_match or if_none_match")
    if kind in ("delete", "patch") and absent:
        raise InvalidInput(f"a {kind} op takes if_match only")
    if kind == "patch":
        change = _patch_change(raw)
        return TransactionOp(
            "patch", collection, key, None, version, change=change, expires_at=expires
        )
    return TransactionOp(kind, collection, key, value, version, absent, expires_at=expires)


def _patch_change(raw: dict[str, Any]) -> Change:
    """What a patch op does: update operations in ``change`` or a JSON Merge
    Patch in ``merge`` (one of the two), as the body of a PATCH."""
    if ("change" in raw) == ("merge" in raw):
        raise InvalidInput(
            'patch op takes "change" (update operations) or "merge" (a JSON Merge Patch)'
        )
    return parse_merge_patch(raw["merge"]) if "merge" in raw else parse_operations(raw["change"])


def _op_target(raw: dict[str, Any], limits: Limits) -> tuple[str, Key]:
    """The collection and typed key an op names (``key_type``: the key as
    its text, as in an item's URL)."""
    collection = raw.get("collection")
    if not isinstance(collection, str) or not COLLECTION_NAME.fullmatch(collection):
        raise InvalidInput(f"collection must be {COLLECTION_NAME_RULE}")
    if "key" not in raw:
        raise InvalidInput("op has no key")
    key_type = raw.get("key_type")
    if key_type is None:
        return collection, check_key(check_json_key(raw["key"]), limits)
    if not isinstance(raw["key"], str):
        raise InvalidInput("with key_type, key is the key's text, as in an item's URL")
    return collection, check_key(parse_path_key(raw["key"], key_type), limits)


def _op_condition(raw: dict[str, Any]) -> tuple[str | None, bool]:
    """The version ``if_match`` names (its ETag unquoted), and whether
    ``if_none_match: "*"`` asks for the item to be absent."""
    expected, absent = raw.get("if_match"), raw.get("if_none_match")
    if absent not in (None, "*"):
        raise InvalidInput('if_none_match only takes "*" (only when the item is absent)')
    if expected is None:
        return None, absent is not None
    if absent is not None:
        raise InvalidInput("send if_match or if_none_match, not both")
    text = expected.removeprefix("W/") if isinstance(expected, str) else ""
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise InvalidInput("if_match is an ETag as sent by the service, quotes included")
    return text[1:-1], False


def _stored_value(value: object, limits: Limits) -> bytes:
    try:
        stored = exactjson.dumps(value)
    except TypeError:  # parsed JSON always has a JSON form, unless it nests too deeply
        raise InvalidInput("value nests too deeply to store; flatten it") from None
    _check_value_size(len(stored), limits)
    return stored


async def json_document(request: web.Request, cap: int) -> Any:
    """A small JSON body of at most ``cap`` bytes (settings, not a value), parsed."""
    _check_json_content_type(request)
    return _loads(await _body(request, cap), orjson.loads)


async def batch_ops(request: web.Request, limits: Limits) -> list[Op]:
    """Every op of a batch body, or InvalidBatch listing each bad op: nothing
    of a batch is written unless all of it is valid. A body over
    ``max_batch_bytes`` is refused before it is read whole."""
    _check_json_content_type(request)
    # Parsed on the event loop: a thread holds the GIL as long (orjson does not
    # release it) and, measured, made other clients wait longer, not less.
    # The cap bounds the time: about 40 ms per MiB of the worst JSON.
    return parse_batch(await _body(request, limits.max_batch_bytes, "batch body"), limits)


def parse_batch(body: bytes, limits: Limits) -> list[Op]:
    """The ops of a batch body (see ``batch_ops``); CPU only, no I/O."""
    document = _loads(body)
    ops = document.get("ops") if isinstance(document, dict) else None
    if not isinstance(ops, list) or not ops:
        raise InvalidBatch('body must be {"ops": [...]} with at least one op')
    if len(ops) > limits.max_batch_ops:
        raise InvalidBatch(f"a batch holds at most {limits.max_batch_ops} ops, not {len(ops)}")
    parsed: list[Op] = []
    errors: list[dict[str, Any]] = []
    for index, raw in enumerate(ops):
        try:
            parsed.append(_batch_op(raw, limits))
        except (InvalidInput, ValueTooLarge) as exc:
            errors.append({"index": index, "detail": exc.detail})
    if errors:
        raise InvalidBatch(
            f"{len(errors)} of {len(ops)} ops are invalid; nothing was written", errors=errors
        )
    return parsed


def _batch_op(raw: object, limits: Limits) -> Op:
    if not isinstance(raw, dict):
        raise InvalidInput('each op must be an object like {"op": "get", "key": "k"}')
    kind = raw.get("op")
    if kind not in ("get", "put", "delete", "patch"):
        raise InvalidInput(f"op must be get, put, delete or patch, not {kind!r}")
    if "key" not in raw:
        raise InvalidInput("op has no key")
    key = check_key(check_json_key(raw["key"]), limits)
    given = {name: raw[name] for name in ("expire_in", "expire_at") if name in raw}
    if given and kind not in ("put", "patch"):
        raise InvalidInput(f"a {kind} op takes no expire_in or expire_at")
    expires = expires_at(given, limits)
    if kind == "patch":
        return Op("patch", key, change=_patch_change(raw), expires_at=expires)
    if kind != "put":
        return Op(kind, key)
    if "value" not in raw:
        raise InvalidInput("put op has no value")
    return Op("put", key, _stored_value(raw["value"], limits), expires_at=expires)
