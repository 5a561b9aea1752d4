"""The outermost middleware: request id, request metrics and the access log.

It takes the request id from ``X-Request-ID`` (or makes one), returns it in the
response header, counts and times every request by route template and final
status, and writes one access-log line per request when asked to.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import time
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import Counter, Gauge, Histogram

from .logs import KEY_ID, REQUEST_ID
from .metrics import IN_FLIGHT, KEY_REQUESTS, REQUEST_LATENCY, REQUESTS

REQUEST_ID_HEADER: Final = "X-Request-ID"
UNMATCHED_ROUTE: Final = "unmatched"
ACCESS_LOGGER: Final = logging.getLogger("itemstore.access")
_METHODS: Final = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"})
_CLIENT_CLOSED: Final = 499  # the client went away before the answer (nginx's convention)
_REQUEST_ID_OK: Final = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")


def request_id_from(header: str | None) -> str:
    """The caller's request id when it is a short token, else a fresh one
    (an id is echoed in headers and logs, so nothing else is accepted)."""
    if header is not None and _REQUEST_ID_OK.fullmatch(header):
        return header
    return os.urandom(16).hex()


def route_label(request: web.Request) -> str:
    """The matched route's template (``/collections/{name}/items/{key}``),
    never the raw path, so the label set stays small."""
    resource = request.match_info.route.resource
    return UNMATCHED_ROUTE if resource is None else resource.canonical


# labels() costs a lock and a few allocations per call: look each child up once.
@functools.cache
def _route_metrics(method: str, route: str) -> tuple[Gauge, Histogram]:
    return IN_FLIGHT.labels(route=route), REQUEST_LATENCY.labels(method=method, route=route)


@functools.cache
def _request_counter(method: str, route: str, status: int) -> Counter:
    return REQUESTS.labels(method=method, route=route, status=str(status))


def observability_middleware(*, access_log: bool = False) -> Middleware:
    """The outermost middleware: request id, metrics and (when ``access_log``)
    one ``itemstore.access`` log line per request with method, route, path,
    status, duration and access key id; never headers, query strings or bodies."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        token = REQUEST_ID.set(request_id)
        key_token = KEY_ID.set(None)  # the access middleware names the key
        method = request.method if request.method in _METHODS else "other"
        route = route_label(request)
        in_flight, latency = _route_metrics(method, route)
        in_flight.inc()
        status = 500
        start = time.perf_counter()
        try:
            response = await handler(request)
            status = response.status
            if not response.prepared:
                response.headers[REQUEST_ID_HEADER] = request_id
            return response
        except web.HTTPException as exc:
            status = exc.status
            exc.headers[REQUEST_ID_HEADER] = request_id
            raise
        except asyncio.CancelledError:
            status = _CLIENT_CLOSED
            raise
        finally:
            elapsed = time.perf_counter() - start
            in_flight.dec()
            _request_counter(method, route, status).inc()
            latency.observe(elapsed)
            key_id = KEY_ID.get()
            if key_id is not None:
                KEY_REQUESTS.labels(key=key_id, status=f"{status // 100}xx").inc()
            if access_log:
                ACCESS_LOGGER.info(
                    "%s %s %d",
                    request.method,
                    request.path,
                    status,
                    extra={
                        "method": request.method,
                        "route": route,
                        "path": request.path,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 3),
                        "remote": request.remote,
                    },
                )
            KEY_ID.reset(key_token)
            REQUEST_ID.reset(token)

    return middleware
