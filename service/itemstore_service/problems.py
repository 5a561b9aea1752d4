"""The one place where errors become HTTP answers: RFC 9457 problem+json.

``PROBLEMS`` is the one table from error class to status, ``code`` and title.
A class without its own row answers as its nearest ancestor that has one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

import orjson
from aiohttp import web

from .errors import (
    BackendUnavailable,
    Contended,
    IdempotencyKeyReused,
    InvalidBatch,
    InvalidCollectionName,
    InvalidCursor,
    InvalidInput,
    InvalidJSON,
    InvalidKey,
    InvalidPatch,
    InvalidQuery,
    InvalidTransaction,
    ItemNotFound,
    ItemstoreError,
    KeyNotFound,
    Overloaded,
    PatchConflict,
    PreconditionFailed,
    QueryTooBroad,
    ShuttingDown,
    ValueTooLarge,
)
from .etags import etag

log = logging.getLogger("itemstore.errors")

PROBLEM_JSON = "application/problem+json"


# -- errors of the HTTP layer itself -------------------------------------------


class Unauthorized(ItemstoreError):
    """The request carries no token, or one that is not valid."""


class Forbidden(ItemstoreError):
    """A valid key asked for what its scope or collections do not allow."""


class RateLimited(ItemstoreError):
    """The key sent more requests than its rate limit allows."""


class RouteNotFound(ItemstoreError):
    pass


class MalformedRequest(ItemstoreError):
    """A request aiohttp's parser refused (answered before any handler runs)."""


class MethodNotAllowed(ItemstoreError):
    """``extra["allowed"]`` lists the methods the route serves."""


class UnsupportedMediaType(ItemstoreError):
    pass


class UnexpectedQueryParameter(InvalidInput):
    """A query parameter the route does not take, or one given twice.
    ``extra``: ``parameter`` (its name) and ``accepted`` (the route's names)."""


# -- the table -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    """How an error is answered. ``retry_after``: seconds to send in a
    ``Retry-After`` header, for errors a client should simply retry."""

    status: int
    code: str
    title: str
    retry_after: int | None = None


PROBLEMS: Final[Mapping[type[ItemstoreError], Problem]] = {
    ItemstoreError: Problem(500, "internal-error", "Internal error"),
    InvalidInput: Problem(400, "invalid-input", "Invalid input"),
    InvalidJSON: Problem(400, "invalid-json", "Body is not valid JSON"),
    InvalidKey: Problem(400, "invalid-key", "Invalid key"),
    InvalidCollectionName: Problem(400, "invalid-collection-name", "Invalid collection name"),
    InvalidBatch: Problem(400, "invalid-batch", "Invalid batch"),
    InvalidTransaction: Problem(400, "invalid-transaction", "Invalid transaction"),
    InvalidCursor: Problem(400, "invalid-cursor", "Invalid cursor"),
    InvalidPatch: Problem(400, "invalid-patch", "Invalid patch"),
    PatchConflict: Problem(400, "patch-conflict", "Patch does not fit the stored value"),
    UnexpectedQueryParameter: Problem(400, "unexpected-parameter", "Unexpected query parameter"),
    InvalidQuery: Problem(400, "invalid-query", "Invalid query"),
    QueryTooBroad: Problem(400, "query-too-broad", "Query scans too many items"),
    MalformedRequest: Problem(400, "malformed-request", "Malformed HTTP request"),
    Unauthorized: Problem(401, "unauthorized", "Missing or invalid bearer token"),
    Forbidden: Problem(403, "forbidden", "Not allowed for this key"),
    ItemNotFound: Problem(404, "item-not-found", "No item with this key"),
    KeyNotFound: Problem(404, "key-not-found", "No access key with this id"),
    RouteNotFound: Problem(404, "not-found", "No such route"),
    MethodNotAllowed: Problem(405, "method-not-allowed", "Method not allowed on this route"),
    PreconditionFailed: Problem(412, "precondition-failed", "Precondition failed"),
    IdempotencyKeyReused: Problem(
        422, "idempotency-key-reused", "Idempotency-Key already used for another request"
    ),
    ValueTooLarge: Problem(413, "value-too-large", "Value or request too large"),
    UnsupportedMediaType: Problem(415, "unsupported-media-type", "Unsupported media type"),
    RateLimited: Problem(429, "rate-limited", "Rate limit exceeded", retry_after=1),
    BackendUnavailable: Problem(
        503, "backend-unavailable", "Storage backend unavailable", retry_after=1
    ),
    Contended: Problem(503, "contended", "Item too contended to update", retry_after=1),
    ShuttingDown: Problem(503, "shutting-down", "Service is shutting down", retry_after=1),
    Overloaded: Problem(503, "overloaded", "Service overloaded", retry_after=1),
}


def problem_for(error_class: type[ItemstoreError]) -> Problem:
    """The row of ``error_class``, or of its nearest ancestor that has one."""
    for cls in error_class.__mro__:
        if issubclass(cls, ItemstoreError) and cls in PROBLEMS:
            return PROBLEMS[cls]
    return PROBLEMS[ItemstoreError]


# -- answers -------------------------------------------------------------------


def problem_response(problem: Problem, detail: str, **members: Any) -> web.Response:
    body = {
        "type": f"urn:itemstore:problem:{problem.code}",
        "title": problem.title,
        "status": problem.status,
        "detail": detail,
        "code": problem.code,
        **members,
    }
    headers = {"Content-Type": PROBLEM_JSON}
    if problem.retry_after is not None:
        headers["Retry-After"] = str(problem.retry_after)
    return web.Response(status=problem.status, body=orjson.dumps(body), headers=headers)


def error_members(error: ItemstoreError) -> dict[str, Any]:
    """The extension members of ``error``'s problem body."""
    if isinstance(error, PreconditionFailed):
        current = error.current
        return {
            "current": None if current is None else orjson.Fragment(current.value),
            "etag": None if current is None else etag(current),
            **error.extra,
        }
    return error.extra


def from_error(error: ItemstoreError) -> web.Response:
    problem = problem_for(type(error))
    if error.retry_after is not None:
        problem = replace(problem, retry_after=error.retry_after)
    return problem_response(problem, error.detail, **error_members(error))


def _from_http_exception(exc: web.HTTPException) -> web.Response:
    status = exc.status
    if status == 404:
        return from_error(RouteNotFound("no route for this path: see GET /openapi.yaml"))
    if status == 405:
        allowed = sorted(getattr(exc, "allowed_methods", ()))
        response = from_error(
            MethodNotAllowed(f"this route allows {', '.join(allowed)}", allowed=allowed)
        )
        response.headers["Allow"] = ",".join(allowed)
        return response
    if status == 413:
        return from_error(ValueTooLarge(f"request body is too large: {exc.text}"))
    # Any other HTTP error aiohttp raises keeps its own status.
    code = "invalid-input" if 400 <= status < 500 else "http-error"
    return problem_response(Problem(status, code, exc.reason), exc.text or exc.reason)


def answer_for(request: web.Request, error: Exception) -> web.Response | None:
    """The problem+json answer to ``error``, raised while serving ``request``:
    a domain error's own, an HTTP error's, else 500 (logged: never a dropped
    connection). None for an HTTP exception that is no error (a redirect):
    the caller raises it on."""
    if isinstance(error, ItemstoreError):
        if isinstance(error, BackendUnavailable):
            log.warning("backend unavailable: %s", error.detail)
        return from_error(error)
    if isinstance(error, web.HTTPException):
        return None if error.status < 400 else _from_http_exception(error)
    log.error("unhandled error on %s %s", request.method, request.path, exc_info=error)
    return from_error(ItemstoreError("unexpected error; see the server log"))
