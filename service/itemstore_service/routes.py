"""HTTP handlers: parse and validate input, call the store, shape the answer.

Nothing else happens here: semantics live in the store, errors become
problem+json in one middleware (problems.py).
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from itemstore_wire.exactjson import exact

from . import __version__
from .appkeys import CONFIG, STORE
from .errors import InvalidInput
from .store import Op, OpResult, etag
from .validation import batch_ops, collection_name, flag, json_value, page_size, path_key

routes = web.RouteTableDef()

_JSON = "application/json"


def json_response(document: Any, status: int = 200, **headers: str) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(document), headers={"Content-Type": _JSON, **headers}
    )


def _if_match(request: web.Request) -> str | None:
    """The version named by ``If-Match: "<etag>"``, if the header is there."""
    header = request.headers.get("If-Match")
    if header is None:
        return None
    value = header.strip().removeprefix("W/")
    if len(value) < 2 or value[0] != '"' or value[-1] != '"' or "," in value:
        raise InvalidInput('If-Match must be one quoted ETag, like If-Match: "3f2a..."')
    return value[1:-1]


def _if_none_match_any(request: web.Request) -> bool:
    header = request.headers.get("If-None-Match")
    if header is None:
        return False
    if header.strip() != "*":
        raise InvalidInput("on PUT, If-None-Match only takes '*' (create only when absent)")
    if "If-Match" in request.headers:  # together they could never both hold
        raise InvalidInput("send If-Match or If-None-Match: *, not both")
    return True


def _none_match(request: web.Request, tag: str) -> bool:
    """Whether a GET's ``If-None-Match`` names the current ETag (weak
    comparison, as RFC 9110 asks): then the answer is 304."""
    header = request.headers.get("If-None-Match")
    if header is None:
        return False
    if header.strip() == "*":
        return True
    return any(t.strip().removeprefix("W/") == tag for t in header.split(","))


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


# -- items -------------------------------------------------------------------


@routes.get("/collections/{name}/items/{key}")
async def get_item(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    name = collection_name(request)
    key = path_key(request, config.limits)
    record = await request.app[STORE].get(name, key, consistent=flag(request, "consistent"))
    tag = etag(record)
    if _none_match(request, tag):
        return web.Response(status=304, headers={"ETag": tag})
    return web.Response(body=record.value, headers={"Content-Type": _JSON, "ETag": tag})


@routes.put("/collections/{name}/items/{key}")
async def put_item(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    name = collection_name(request)
    key = path_key(request, config.limits)
    if_match, if_none_match = _if_match(request), _if_none_match_any(request)
    value = await json_value(request, config.limits)
    result = await request.app[STORE].put(
        name, key, value, if_match=if_match, if_none_match=if_none_match
    )
    assert result.record is not None
    tag = etag(result.record)
    return json_response({"key": exact(key), "etag": tag}, result.status, ETag=tag)


@routes.delete("/collections/{name}/items/{key}")
async def delete_item(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    name = collection_name(request)
    key = path_key(request, config.limits)
    if "If-None-Match" in request.headers:
        raise InvalidInput("DELETE takes If-Match only, not If-None-Match")
    record = await request.app[STORE].delete(name, key, if_match=_if_match(request))
    return web.Response(body=record.value, headers={"Content-Type": _JSON, "ETag": etag(record)})


@routes.post("/collections/{name}/items")
async def create_item(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    name = collection_name(request)
    value = await json_value(request, config.limits)
    key, record = await request.app[STORE].create(name, value)
    tag = etag(record)
    location = f"/collections/{name}/items/{key}"
    return json_response({"key": key, "etag": tag}, 201, ETag=tag, Location=location)


@routes.get("/collections/{name}/items")
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
    items = (
        [{"key": exact(key)} for key, _ in page.items]
        if keys_only
        else [{"key": exact(key), "value": orjson.Fragment(r.value)} for key, r in page.items]
    )
    return json_response({"items": items, "next_cursor": page.next_cursor})


def _op_answer(op: Op, result: OpResult) -> dict[str, Any]:
    answer: dict[str, Any] = {"status": result.status}
    if result.record is not None:
        if op.kind != "put":
            answer["value"] = orjson.Fragment(result.record.value)
        answer["etag"] = etag(result.record)
    return answer


@routes.post("/collections/{name}/batch")
async def batch(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    name = collection_name(request)
    ops = await batch_ops(request, config.limits)
    results = await request.app[STORE].batch(name, ops)
    answers = [_op_answer(op, result) for op, result in zip(ops, results, strict=True)]
    return json_response({"results": answers})


# -- collections -------------------------------------------------------------


@routes.get("/collections")
async def list_collections(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    names, next_cursor = await request.app[STORE].list_collections(
        limit=page_size(request, config.limits), cursor=request.query.get("cursor") or None
    )
    return json_response(
        {"collections": [{"name": name} for name in names], "next_cursor": next_cursor}
    )


@routes.get("/collections/{name}")
async def get_collection(request: web.Request) -> web.Response:
    name = collection_name(request)
    return json_response({"name": name, "count": await request.app[STORE].count(name)})


@routes.delete("/collections/{name}")
async def clear_collection(request: web.Request) -> web.Response:
    name = collection_name(request)
    return json_response({"name": name, "deleted": await request.app[STORE].clear(name)})
