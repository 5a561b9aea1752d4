"""``/keys``: create, list and revoke access keys (admin keys only)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..errors import InvalidInput
from ..problems import Forbidden
from ..validation import json_document
from .check import GRANT, KEYRING, OPEN
from .keyring import AccessKey
from .scopes import COLLECTION_PATTERN, COLLECTION_PATTERN_RULE, SCOPES

routes = web.RouteTableDef()

MAX_NAME_CHARS = 200
MAX_PATTERNS = 100
MAX_RATE = 1_000_000
MAX_BODY_BYTES = 64 * 1024
FIELDS = ("name", "scope", "collections", "rate_limit", "burst")


def _manageable(request: web.Request) -> None:
    if request.get(GRANT) is OPEN:
        raise Forbidden(
            "access keys need auth: start the service with a token (ITEMSTORE_TOKEN or"
            " --token-file) and manage keys with it as the admin key"
        )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _key_spec(doc: Any) -> dict[str, Any]:
    """The arguments of ``KeyRing.create`` in a ``POST /keys`` body, checked."""
    if not isinstance(doc, dict):
        raise InvalidInput('the body must be an object, such as {"name": "app", "scope": "read"}')
    unknown = sorted(set(doc) - set(FIELDS))
    if unknown:
        raise InvalidInput(f"unknown field(s) {', '.join(unknown)}: use {', '.join(FIELDS)}")
    name = doc.get("name")
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME_CHARS:
        raise InvalidInput(f"name must be a string of 1 to {MAX_NAME_CHARS} characters")
    scope = doc.get("scope")
    if not isinstance(scope, str) or scope not in SCOPES:
        raise InvalidInput(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
    collections = doc.get("collections")
    if collections is not None:
        if not isinstance(collections, list) or not 0 < len(collections) <= MAX_PATTERNS:
            raise InvalidInput(
                f"collections must be a list of 1 to {MAX_PATTERNS} names or patterns"
                " (leave it out for every collection)"
            )
        for pattern in collections:
            if not isinstance(pattern, str) or not COLLECTION_PATTERN.fullmatch(pattern):
                raise InvalidInput(
                    f"collections entry {pattern!r} must be {COLLECTION_PATTERN_RULE}"
                )
    rate = doc.get("rate_limit")
    if rate is not None and not (_is_number(rate) and 0 < rate <= MAX_RATE):
        raise InvalidInput(
            f"rate_limit must be requests per second: a number over 0, at most {MAX_RATE}"
        )
    burst = doc.get("burst")
    if burst is not None:
        if rate is None:
            raise InvalidInput("burst needs a rate_limit")
        if not (_is_number(burst) and isinstance(burst, int) and 0 < burst <= MAX_RATE):
            raise InvalidInput(f"burst must be a whole number of requests, 1 to {MAX_RATE}")
    return {
        "name": name,
        "scope": SCOPES[scope],
        "collections": collections,
        "rate_limit": rate,
        "burst": burst,
    }


def _sorted(keys: list[AccessKey]) -> list[dict[str, Any]]:
    return [key.public() for key in sorted(keys, key=lambda k: (k.created_at, k.id))]


@routes.post("/keys")
async def create_key(request: web.Request) -> web.Response:
    _manageable(request)
    spec = _key_spec(await json_document(request, MAX_BODY_BYTES))
    key, token = await request.app[KEYRING].create(**spec)
    headers = {"Location": f"/keys/{key.id}"}
    return web.json_response({**key.public(), "token": token}, status=201, headers=headers)


@routes.get("/keys")
async def list_keys(request: web.Request) -> web.Response:
    _manageable(request)
    keys = await request.app[KEYRING].reload()
    return web.json_response({"keys": _sorted(keys)})


@routes.delete("/keys/{id}")
async def revoke_key(request: web.Request) -> web.Response:
    _manageable(request)
    key = await request.app[KEYRING].revoke(request.match_info["id"])
    return web.json_response(key.public())
