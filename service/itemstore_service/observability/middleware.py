"""The outermost middleware: request id, metrics, answer headers, access log.

It takes the request id from ``X-Request-ID`` (or makes one) and returns it
with the other headers every answer carries, counts and times every request
by route template and final status, and writes one access-log line per
request when asked to. Headers are set here, on the answer a handler
returned, rather than in an ``on_response_prepare`` signal: no handler
prepares its own answer, and the signal costs every answer a coroutine.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Callable
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from multidict import CIMultiDict

from .logs import KEY_ID, REQUEST_ID
from .request_metrics import RequestMetrics, RouteMetrics

REQUEST_ID_HEADER: Final = "X-Request-ID"
UNMATCHED_ROUTE: Final = "unmatched"
ACCESS_LOGGER: Final = logging.getLogger("itemstore.access")
_METHODS: Final = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"})
_CLIENT_CLOSED: Final = 499  # the client went away before the answer (nginx's convention)
_REQUEST_ID_OK: Final = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")

AnswerHeaders = Callable[[web.Request, CIMultiDict[str]], None]
"""Sets headers of an answer that is about to be sent."""


def request_id_from(header: str | None) -> str:
    """The caller's request id when it is a short token, else a fresh one
    (an id is echoed in headers and logs, so nothing else is accepted)."""
    if header is not None and _REQUEST_ID_OK.fullmatch(header):
        return header
    # Unique, not secret: no system call per request (random is seeded by
    # the OS in each worker process, and reseeded in a forked child).
    return random.randbytes(16).hex()


def route_label(request: web.Request) -> str:
    """The matched route's template (``/collections/{name}/items/{key}``),
    never the raw path, so the label set stays small."""
    resource = request.match_info.route.resource
    return UNMATCHED_ROUTE if resource is None else resource.canonical


def observability_middleware(
    request_metrics: RequestMetrics,
    *,
    access_log: bool = False,
    answer_headers: AnswerHeaders | None = None,
) -> Middleware:
    """The outermost middleware: request id, metrics, the headers every answer
    carries (``X-Request-ID``, and what ``answer_headers`` adds), and (when
    ``access_log``) one ``itemstore.access`` log line per request with method,
    route, path, status, duration and access key id; never headers, query
    strings or bodies."""
    by_route: dict[object, RouteMetrics] = {}

    def metrics_of(request: web.Request) -> RouteMetrics:
        route = request.match_info.route
        method = request.method if request.method in _METHODS else "other"
        index = route if route.resource is not None else (UNMATCHED_ROUTE, method)
        metrics = by_route.get(index)
        if metrics is None:
            metrics = by_route[index] = request_metrics.route(method, route_label(request))
        return metrics

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        token = REQUEST_ID.set(request_id)
        key_token = KEY_ID.set(None)  # the access check names the key
        metrics = metrics_of(request)
        metrics.started()
        status = 500
        start = time.perf_counter()
        try:
            response = await handler(request)
            status = response.status
            if not response.prepared:
                response.headers[REQUEST_ID_HEADER] = request_id
                if answer_headers is not None:
                    answer_headers(request, response.headers)
            return response
        except web.HTTPException as exc:
            status = exc.status
            exc.headers[REQUEST_ID_HEADER] = request_id
            if answer_headers is not None:
                answer_headers(request, exc.headers)
            raise
        except asyncio.CancelledError:
            status = _CLIENT_CLOSED
            raise
        finally:
            elapsed = time.perf_counter() - start
            metrics.finished(status, elapsed)
            key_id = KEY_ID.get()
            if key_id is not None:
                request_metrics.key_answered(key_id, status)
            if access_log:
                ACCESS_LOGGER.info(
                    "%s %s %d",
                    request.method,
                    request.path,
                    status,
                    extra={
                        "method": request.method,
                        "route": metrics.route,
                        "path": request.path,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 3),
                        "remote": request.remote,
                    },
                )
            KEY_ID.reset(key_token)
            REQUEST_ID.reset(token)

    return middleware
