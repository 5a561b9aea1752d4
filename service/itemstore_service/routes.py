"""HTTP handlers: parse and validate input, call the store, shape the answer.

Nothing else happens here: semantics live in the store, errors become
problem+json in one middleware (problems.py).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from email.utils import formatdate
from importlib import resources
from typing import Any, Final

import orjson
from aiohttp import web

from itemstore_wire.contract import Key
from itemstore_wire.exactjson import exact

from . import __version__
from .access.check import GRANT, OPEN, require
from .access.scopes import Scope
from .appkeys import CONFIG, STORE
from .backends.base import Record
from .errors import InvalidInput
from .etags import etag, if_match, if_none_match_any, none_match
from .operations import Op, OpResult, Outcome
from .problems import error_members, problem_for
from .transactions import TransactionOp
from .validation import (
    batch_ops,
    collection_name,
    expiry,
    flag,
    idempotency_key,
    json_value,
    page_size,
    patch_change,
    path_key,
    prefers_minimal,
    query_body,
    transaction_ops,
)

routes = web.RouteTableDef()

# aiohttp's plain ``{var}`` matches no '{' or '}': these match any text of one
# path segment, so every key and name reaches the handler (which checks it).
NAME: Final = "{name:[^/]+}"
KEY: Final = "{key:[^/]+}"

_JSON = "application/json"


STATUS: Final[Mapping[Outcome, int]] = {
    Outcome.FOUND: 200,
    Outcome.MISSING: 404,
    Outcome.CREATED: 201,
    Outcome.REPLACED: 200,
    Outcome.WRITTEN: 204,
    Outcome.DELETED: 200,
    Outcome.PATCHED: 200,
}
"""The HTTP status of each store outcome (also each batch op's ``status``)."""

MINIMAL: Final = {"Preference-Applied": "return=minimal"}
"""Sent with every answer to ``Prefer: return=minimal`` (RFC 7240)."""


def json_response(document: Any, status: int = 200, **headers: str) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(document), headers={"Content-Type": _JSON, **headers}
    )


@routes.get("/")
async def service_info(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    return json_response(
        {
            "service": "itemstore",
            "version": __version__,
            "backend": config.backend,
            "limits": config.limits,
        }
    )


@functools.cache
def openapi_document() -> bytes:
    """The contract, openapi.yaml, as shipped inside this package."""
    return resources.files(__package__).joinpath("openapi.yaml").read_bytes()


@routes.get("/openapi.yaml")
async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=openapi_document(), content_type="application/yaml")


# -- items -------------------------------------------------------------------


@routes.get(f"/collections/{NAME}/items/{KEY}")
async def get_item(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    name = collection_name(request)
    key = path_key(request, config.limits)
    record = await request.app[STORE].get(name, key, consistent=flag(request, "consistent"))
    tag = etag(record)
    if none_match(request, tag):
        return web.Response(status=304, headers={"ETag": tag})
    headers = {"Content-Type": _JSON, "ETag": tag}
    if record.expires_at is not None:
        headers["Expires"] = formatdate(record.expires_at, usegmt=True)
    return web.Response(body=record.value, headers=headers)


@routes.put(f"/collections/{NAME}/items/{KEY}")
async def put_item(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    name = collection_name(request)
    key = path_key(request, config.limits)
    expected, absent = if_match(request), if_none_match_any(request)
    minimal = prefers_minimal(request)
    expires_at = expiry(request, config.limits)
    value = await json_value(request, config.limits)
    stored = await request.app[STORE].put(
        name,
        key,
        value,
        if_match=expected,
        if_none_match=absent,
        blind=minimal,
        expires_at=expires_at,
    )
    tag = etag(stored.record)
    if minimal:  # no body, and no created-vs-replaced: a blind write reads nothing
        return web.Response(status=204, headers={"ETag": tag, **MINIMAL})
    return json_response({"key": exact(key), "etag": tag}, STATUS[stored.outcome], ETag=tag)


@routes.delete(f"/collections/{NAME}/items/{KEY}")
async def delete_item(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    name = collection_name(request)
    key = path_key(request, config.limits)
    if "If-None-Match" in request.headers:
        raise InvalidInput("DELETE takes If-Match only, not If-None-Match")
    record = await request.app[STORE].delete(name, key, if_match=if_match(request))
    return web.Response(body=record.value, headers={"Content-Type": _JSON, "ETag": etag(record)})


@routes.patch(f"/collections/{NAME}/items/{KEY}")
async def patch_item(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    name = collection_name(request)
    key = path_key(request, config.limits)
    if "If-None-Match" in request.headers:
        raise InvalidInput("PATCH takes If-Match only: it changes an item that exists")
    expected = if_match(request)
    expires_at = expiry(request, config.limits)
    change = await patch_change(request)
    record = await request.app[STORE].patch(
        name, key, change, if_match=expected, expires_at=expires_at
    )
    return web.Response(body=record.value, headers={"Content-Type": _JSON, "ETag": etag(record)})


@routes.post(f"/collections/{NAME}/items")
async def create_item(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    name = collection_name(request)
    expires_at = expiry(request, config.limits)
    value = await json_value(request, config.limits)
    key, record = await request.app[STORE].create(name, value, expires_at=expires_at)
    tag = etag(record)
    location = f"/collections/{name}/items/{key}"
    return json_response({"key": key, "etag": tag}, 201, ETag=tag, Location=location)


@routes.get(f"/collections/{NAME}/items")
async def list_items(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    name = collection_name(request)
    keys_only = flag(request, "keys_only")
    page = await request.app[STORE].list_items(
        name,
        limit=page_size(request, config.limits),
        cursor=request.query.get("cursor") or None,
        prefix=request.query.get("prefix"),
        keys_only=keys_only,
    )
    items = [_entry(key, record, keys_only) for key, record in page.items]
    return json_response({"items": items, "next_cursor": page.next_cursor})


def _entry(key: Key, record: Record, keys_only: bool) -> dict[str, Any]:
    """One item of a listing page."""
    entry: dict[str, Any] = {"key": exact(key)}
    if not keys_only:
        entry["value"] = orjson.Fragment(record.value)
    if record.expires_at is not None:
        entry["expires_at"] = record.expires_at
    return entry


@routes.post("/collections/{name}/query")
async def query_items(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    name = collection_name(request)
    query = await query_body(request, config.limits)
    page = await request.app[STORE].query(name, query, budget=config.limits.max_query_scan)
    answer: dict[str, Any] = {
        "items": [
            {"key": exact(key)}
            if query.keys_only
            else {"key": exact(key), "value": orjson.Fragment(record.value)}
            for key, record in page.items
        ],
        "next_cursor": page.next_cursor,
        "scanned": page.scanned,
    }
    if page.count is not None:
        answer["count"] = page.count
    return json_response(answer)


def _op_answer(op: Op, result: OpResult) -> dict[str, Any]:
    if result.error is not None:  # a patch that did not apply: its problem, inline
        problem = problem_for(type(result.error))
        return {
            "status": problem.status,
            "code": problem.code,
            "detail": result.error.detail,
            **error_members(result.error),
        }
    answer: dict[str, Any] = {"status": STATUS[result.outcome]}
    if result.record is not None:
        if op.kind != "put":
            answer["value"] = orjson.Fragment(result.record.value)
        answer["etag"] = etag(result.record)
    return answer


@routes.post(f"/collections/{NAME}/batch")
async def batch(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    name = collection_name(request)
    ops = await batch_ops(request, config.limits)
    if any(op.kind != "get" for op in ops):  # refused whole: nothing is applied
        require(request, Scope.WRITE)
    minimal = prefers_minimal(request)
    results = await request.app[STORE].batch(name, ops, blind=minimal)
    answers = [_op_answer(op, result) for op, result in zip(ops, results, strict=True)]
    response = json_response({"results": answers})
    if minimal:
        response.headers.update(MINIMAL)
    return response


@routes.post("/transactions")
async def transaction(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    token = idempotency_key(request)
    ops = await transaction_ops(request, config.limits)
    for op in ops:  # one forbidden op refuses the whole transaction: nothing is written
        require(request, Scope.READ if op.kind == "check" else Scope.WRITE, op.collection)
    written = await request.app[STORE].transact(ops, token=token)
    return json_response(
        {"results": [_tx_answer(op, record) for op, record in zip(ops, written, strict=True)]}
    )


def _tx_answer(op: TransactionOp, record: Record | None) -> dict[str, Any]:
    """A put's new ETag; a patch's, with the value it made."""
    if record is None:
        return {}
    if op.kind == "patch":
        return {"value": orjson.Fragment(record.value), "etag": etag(record)}
    return {"etag": etag(record)}


# -- collections -------------------------------------------------------------


@routes.get("/collections")
async def list_collections(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    names, next_cursor = await request.app[STORE].list_collections(
        limit=page_size(request, config.limits),
        cursor=request.query.get("cursor") or None,
        visible=request.get(GRANT, OPEN).sees,
    )
    return json_response(
        {"collections": [{"name": name} for name in names], "next_cursor": next_cursor}
    )


@routes.get(f"/collections/{NAME}")
async def get_collection(request: web.Request) -> web.Response:
    name = collection_name(request)
    return json_response({"name": name, "count": await request.app[STORE].count(name)})


@routes.delete(f"/collections/{NAME}")
async def clear_collection(request: web.Request) -> web.Response:
    name = collection_name(request)
    return json_response({"name": name, "deleted": await request.app[STORE].clear(name)})
