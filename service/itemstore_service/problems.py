"""The one place where errors become HTTP answers: RFC 9457 problem+json."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from .errors import (
    BackendUnavailable,
    ItemstoreError,
    MethodNotAllowed,
    RouteNotFound,
    ValueTooLarge,
)

log = logging.getLogger("itemstore.errors")

PROBLEM_JSON = "application/problem+json"


def problem_response(status: int, code: str, title: str, detail: str, **extra: Any) -> web.Response:
    body = {
        "type": f"urn:itemstore:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    headers = {"Content-Type": PROBLEM_JSON}
    if status == 503:
        headers["Retry-After"] = "1"
    return web.Response(status=status, body=orjson.dumps(body), headers=headers)


def from_error(error: ItemstoreError) -> web.Response:
    return problem_response(error.status, error.code, error.title, error.detail, **error.extra)


def _from_http_exception(exc: web.HTTPException) -> web.Response:
    status = exc.status
    if status == 404:
        return from_error(RouteNotFound("no route for this path: see GET / and openapi.yaml"))
    if status == 405:
        allowed = sorted(getattr(exc, "allowed_methods", ()))
        response = from_error(
            MethodNotAllowed(f"this route allows {', '.join(allowed)}", allowed=allowed)
        )
        response.headers["Allow"] = ",".join(allowed)
        return response
    if status == 413:
        return from_error(ValueTooLarge(f"request body is too large: {exc.text}"))
    if 400 <= status < 500:
        return problem_response(status, "invalid-input", exc.reason, exc.text or exc.reason)
    return problem_response(status, "http-error", exc.reason, exc.text or exc.reason)


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every domain error and HTTP error as problem+json; anything
    unexpected is logged and answered 500 (never a dropped connection)."""
    try:
        return await handler(request)
    except ItemstoreError as error:
        if isinstance(error, BackendUnavailable):
            log.warning("backend unavailable: %s", error.detail)
        return from_error(error)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _from_http_exception(exc)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem_response(
            500, "internal-error", "Internal error", "unexpected error; see the server log"
        )
