"""Who may call what: authentication, scopes, collections and rate limits.

The service is open (as for the local quick start) only while it has neither
a bootstrap token (``--token``) nor any stored access key. Otherwise every
route but the public ones (``scopes.ROUTE_NEEDS``) needs
``Authorization: Bearer <token>``:

* no header → 401 saying a token is needed; a header that is not one
  ``Bearer <token>`` → 401 saying how to write it; a token that is neither
  the bootstrap token nor a stored key's → 401 saying it is not valid;
* a valid key outside its scope or collections → 403;
* a key over its rate limit → 429 with ``Retry-After``.

An unknown token and a valid key that is refused cost the same work: both
are compared with the bootstrap token and checked against one stored digest.
"""

from __future__ import annotations

import hmac
import math
import re
from typing import Final

from aiohttp import web
from multidict import CIMultiDict

from ..errors import BackendUnavailable
from ..observability.logs import KEY_ID
from ..problems import Forbidden, RateLimited, RouteNotFound, Unauthorized
from .keyring import KeyRing
from .ratelimit import RateLimiter, Verdict
from .scopes import Grant, Need, Scope
from .tokens import TOKEN68

KEYRING = web.AppKey("keyring", KeyRing)
LIMITER = web.AppKey("rate_limiter", RateLimiter)
GRANT = web.RequestKey("grant", Grant)
VERDICT = web.RequestKey("rate_verdict", Verdict)

OPEN: Final = Grant("open", Scope.ADMIN)
"""Everything but key management, while the service runs without auth."""
BOOTSTRAP: Final = Grant("bootstrap", Scope.ADMIN)
NOBODY: Final = Grant("unknown", Scope.READ, re.compile("(?!)"))
"""What an unknown token is judged as: a key that may use no collection."""
METRICS_PATH: Final = "/metrics"
_UNMATCHED: Final = Need(Scope.READ)  # 404/405 only to a caller who may ask


def _token(request: web.Request) -> str:
    """The bearer token of the request's one Authorization header."""
    values = request.headers.getall("Authorization", [])
    if not values:
        raise Unauthorized("this route needs a token: send 'Authorization: Bearer <token>'")
    if len(values) > 1:
        raise Unauthorized("send one Authorization header, not several")
    scheme, _, token = values[0].partition(" ")
    # The scheme is case-insensitive (RFC 9110); the token is exactly as issued.
    if scheme.lower() != "bearer" or not TOKEN68.fullmatch(token):
        raise Unauthorized(
            "the Authorization header must be 'Bearer <token>': one space, and a token of"
            " letters, digits and -._~+/ (no other spaces or characters)"
        )
    return token


def _authenticate(request: web.Request, ring: KeyRing, bootstrap: bytes | None) -> Grant | None:
    """The grant of the request's token; None when it is not valid."""
    token = _token(request)
    is_bootstrap = bootstrap is not None and hmac.compare_digest(token.encode(), bootstrap)
    grant = ring.authenticate(token)  # checked even for the bootstrap token: same time
    return BOOTSTRAP if is_bootstrap else grant


def _refusal(
    request: web.Request, grant: Grant, need: Need, collection: str | None = None
) -> str | None:
    """Why ``grant`` may not do what ``need`` says (on ``collection``, by
    default the one the path names), or None."""
    if need.scope is not None and not grant.allows(need.scope):
        return (
            f"key {grant.key_id} has the {grant.scope.name.lower()} scope;"
            f" this needs {need.scope.name.lower()}"
        )
    name = request.match_info.get("name", "") if collection is None else collection
    if need.collection and not grant.sees(name):
        return f"key {grant.key_id} may not use collection {name!r}"
    return None


def require(request: web.Request, scope: Scope, collection: str | None = None) -> None:
    """Refuse with 403 unless the request's grant has ``scope``, and may use
    ``collection`` when one is given: for what a route needs beyond its row
    of ``ROUTE_NEEDS`` (a batch that writes, a transaction's ops)."""
    need = Need(scope, collection=collection is not None)
    refusal = _refusal(request, request.get(GRANT, OPEN), need, collection)
    if refusal is not None:
        raise Forbidden(refusal)


def _rate_limit(request: web.Request, grant: Grant) -> None:
    if grant.rate is None or grant.burst is None:
        return
    verdict = request.app[LIMITER].take(grant.key_id, grant.rate, grant.burst)
    request[VERDICT] = verdict
    if not verdict.allowed:
        wait = max(1, math.ceil(verdict.retry_after))
        raise RateLimited(
            f"key {grant.key_id} may send {grant.rate:g} requests per second"
            f" (bursts of {grant.burst}); the request was not applied: retry in {wait} s",
            retry_after=wait,
        )


def rate_limit_headers(request: web.Request, headers: CIMultiDict[str]) -> None:
    """The IETF RateLimit headers (draft-ietf-httpapi-ratelimit-headers) of a
    rate-limited key's answer: its policy, and what remains of it now."""
    grant = request.get(GRANT)
    if grant is None or grant.rate is None or grant.burst is None:
        return  # most answers: no need to look for a verdict
    verdict = request.get(VERDICT)
    if verdict is None:
        return
    window = max(1, math.ceil(grant.burst / grant.rate))
    headers["RateLimit-Policy"] = f'"key";q={grant.burst};w={window}'
    headers["RateLimit"] = f'"key";r={verdict.remaining};t={math.ceil(verdict.reset)}'


class AccessCheck:
    """Refuse a request its caller may not make (``__call__``); let the rest
    through, with the caller's grant in ``request[GRANT]``."""

    def __init__(self, bootstrap_token: str | None, metrics_port: int | None) -> None:
        self._bootstrap = None if bootstrap_token is None else bootstrap_token.encode()
        self._metrics_port = metrics_port

    def __call__(self, request: web.Request, need: Need | None) -> None:
        """``need``: what the request's route needs (None: no route matched)."""
        if self._metrics_port is not None and _local_port(request) == self._metrics_port:
            if request.path != METRICS_PATH:  # the cluster network sees metrics only
                raise RouteNotFound(f"port {self._metrics_port} serves {METRICS_PATH} only")
            return
        if need is None:
            need = _UNMATCHED
        if need.scope is None:
            return
        ring = request.app[KEYRING]
        bootstrap = self._bootstrap
        if bootstrap is None and not ring:
            if not ring.loaded:  # keys may exist: never open by mistake
                raise BackendUnavailable("the access keys are not loaded yet; retry shortly")
            request[GRANT] = OPEN
            return
        grant = _authenticate(request, ring, bootstrap)
        # Judged for an unknown token too (as a key that may do nothing): a
        # 401 and a 403 cost the same work.
        refusal = _refusal(request, grant or NOBODY, need)
        if grant is None:
            raise Unauthorized("the token is not valid: it is unknown, revoked or mistyped")
        request[GRANT] = grant
        KEY_ID.set(grant.key_id)
        _rate_limit(request, grant)  # refused requests count too
        if refusal is not None:
            raise Forbidden(refusal)


def _local_port(request: web.Request) -> int | None:
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport else None
    return sockname[1] if isinstance(sockname, tuple) else None
