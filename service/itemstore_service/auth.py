"""Bearer-token authentication (on when the service is started with a token)."""

from __future__ import annotations

import hmac

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from .console import is_console_path
from .problems import Unauthorized

# Probes, metrics, the service description and its contract stay open; the
# console's static files too (its calls to the API carry the token).
PUBLIC_PATHS = frozenset({"/", "/openapi.yaml", "/healthz", "/readyz", "/metrics"})


def auth_middleware(token: str) -> Middleware:
    expected = token.encode()

    @web.middleware
    async def check_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in PUBLIC_PATHS and not is_console_path(request.path):
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            # The scheme is case-insensitive (RFC 9110); the token is not.
            valid = scheme.lower() == "bearer"
            if not hmac.compare_digest(given.strip().encode(), expected) or not valid:
                raise Unauthorized("send the service token as 'Authorization: Bearer <token>'")
        return await handler(request)

    return check_token
