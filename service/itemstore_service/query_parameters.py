"""The query parameters each route accepts: one table, checked for every request.

A parameter a route does not take (a typo such as ``?prefx=a``) or one given
twice is refused with 400 naming it, rather than ignored. openapi.yaml
documents the same parameters (tests/test_openapi.py holds the two together).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from aiohttp import web

from .problems import UnexpectedQueryParameter

_ITEM: Final = "/collections/{name}/items/{key}"
_ITEMS: Final = "/collections/{name}/items"

ACCEPTED: Final[Mapping[tuple[str, str], frozenset[str]]] = {
    ("GET", "/"): frozenset(),
    ("GET", "/openapi.yaml"): frozenset(),
    ("GET", "/healthz"): frozenset(),
    ("GET", "/readyz"): frozenset(),
    ("GET", "/metrics"): frozenset(),
    ("GET", "/console"): frozenset(),
    ("GET", "/console/"): frozenset(),
    ("GET", "/console/{file}"): frozenset(),
    ("GET", _ITEM): frozenset({"key_type", "consistent"}),
    ("PUT", _ITEM): frozenset({"key_type", "expire_in", "expire_at"}),
    ("PATCH", _ITEM): frozenset({"key_type", "expire_in", "expire_at"}),
    ("DELETE", _ITEM): frozenset({"key_type"}),
    ("GET", _ITEMS): frozenset({"limit", "cursor", "prefix", "keys_only"}),
    ("POST", _ITEMS): frozenset({"expire_in", "expire_at"}),
    ("POST", "/collections/{name}/batch"): frozenset(),
    ("POST", "/collections/{name}/query"): frozenset(),
    ("POST", "/transactions"): frozenset(),
    ("GET", "/collections"): frozenset({"limit", "cursor"}),
    ("GET", "/collections/{name}"): frozenset(),
    ("DELETE", "/collections/{name}"): frozenset(),
    ("POST", "/keys"): frozenset(),
    ("GET", "/keys"): frozenset(),
    ("DELETE", "/keys/{id}"): frozenset(),
}
"""(method, route template) → the names of the query parameters it accepts.
HEAD accepts what GET does; a route missing here accepts none."""


def accepted_of(method: str, template: str) -> frozenset[str]:
    """The query parameters ``method`` on the route ``template`` accepts."""
    return ACCEPTED.get(("GET" if method == "HEAD" else method, template), frozenset())


def check_query(request: web.Request, template: str, accepted: frozenset[str]) -> None:
    """Raise UnexpectedQueryParameter for the first parameter of ``request``
    (to the route ``template``) that is not in ``accepted`` or that is given
    more than once."""
    names = list(request.query)
    for name in names:
        if name not in accepted:
            takes = ", ".join(sorted(accepted)) or "no query parameters"
            detail = f"unknown query parameter {name!r}: {request.method} {template} takes {takes}"
        elif names.count(name) > 1:
            detail = f"query parameter {name!r} is given {names.count(name)} times; give it once"
        else:
            continue
        raise UnexpectedQueryParameter(detail, parameter=name, accepted=sorted(accepted))
