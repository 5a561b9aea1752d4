"""CORS for browser clients on other origins: off unless origins are given.

With ``--cors-origin`` (repeatable) the service answers preflight requests
and marks its answers readable by those origins. ``*`` allows any origin but
never with credentials; a listed origin is echoed back, with credentials
allowed (the bearer token is sent by the page's script either way).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from .problems import Forbidden, from_error

ANY: Final = "*"
METHODS: Final = "GET, HEAD, PUT, POST, DELETE, PATCH"
REQUEST_HEADERS: Final = (
    "Authorization, Content-Type, If-Match, If-None-Match, Prefer, X-Request-ID"
)
EXPOSED_HEADERS: Final = (
    "ETag, Location, Retry-After, RateLimit, RateLimit-Policy, X-Request-ID, Allow"
)
MAX_AGE: Final = "600"


def _allow(origin: str, any_origin: bool) -> dict[str, str]:
    if any_origin:
        return {"Access-Control-Allow-Origin": ANY}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        "Vary": "Origin",
    }


def cors_middleware(origins: Collection[str]) -> Middleware:
    any_origin = ANY in origins

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        allowed = origin is not None and (any_origin or origin in origins)
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            if origin is None or not allowed:
                return from_error(Forbidden(f"origin {origin!r} may not call this service"))
            headers = {
                **_allow(origin, any_origin),
                "Access-Control-Allow-Methods": METHODS,
                "Access-Control-Allow-Headers": REQUEST_HEADERS,
                "Access-Control-Max-Age": MAX_AGE,
            }
            return web.Response(status=204, headers=headers)
        response = await handler(request)
        if origin is not None and allowed and not response.prepared:
            response.headers.update(_allow(origin, any_origin))
            response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        return response

    return cors
