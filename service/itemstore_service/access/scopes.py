"""Scopes, collection patterns, and the one table of what each route needs.

A route joins the table with one line: its method and path template, and the
``Need`` to call it. A route the table does not name needs an admin key (an
access check that fails closed); tests check that every route is named.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from ..console import CONSOLE_PATHS


class Scope(enum.IntEnum):
    """What a key may do; each scope includes the ones below it."""

    READ = 1
    WRITE = 2
    ADMIN = 3


SCOPES: Final = {scope.name.lower(): scope for scope in Scope}

COLLECTION_PATTERN: Final = re.compile(r"[A-Za-z0-9_.*-]{1,128}")
COLLECTION_PATTERN_RULE: Final = (
    "a collection name, or a pattern where '*' stands for any run of characters"
)


def pattern_regex(patterns: Sequence[str]) -> re.Pattern[str]:
    """One regex matching every collection name one of ``patterns`` names."""
    alternatives = (".*".join(map(re.escape, p.split("*"))) for p in patterns)
    return re.compile("|".join(f"(?:{a})" for a in alternatives) or "(?!)")


@dataclass(frozen=True, slots=True)
class Grant:
    """Who sent a request and what they may do. ``key_id`` is what logs and
    metrics record: a key's id, ``bootstrap`` for the service token, or
    ``open`` when the service runs without auth. ``collections`` None: all."""

    key_id: str
    scope: Scope
    collections: re.Pattern[str] | None = None
    rate: float | None = None
    burst: int | None = None

    def allows(self, scope: Scope) -> bool:
        return self.scope >= scope

    def sees(self, collection: str) -> bool:
        """Whether the grant covers ``collection``."""
        return self.collections is None or self.collections.fullmatch(collection) is not None


@dataclass(frozen=True, slots=True)
class Need:
    """What a route needs: ``scope`` None means open to anyone;
    ``collection``: the request names a collection in ``{name}``."""

    scope: Scope | None
    collection: bool = False


PUBLIC: Final = Need(None)
READ: Final = Need(Scope.READ, collection=True)
WRITE: Final = Need(Scope.WRITE, collection=True)
ADMIN: Final = Need(Scope.ADMIN)
ADMIN_OF_COLLECTION: Final = Need(Scope.ADMIN, collection=True)

ITEM: Final = "/collections/{name}/items/{key}"
ITEMS: Final = "/collections/{name}/items"

ROUTE_NEEDS: Final[Mapping[tuple[str, str], Need]] = {
    ("GET", "/"): PUBLIC,
    ("GET", "/openapi.yaml"): PUBLIC,
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): ADMIN,  # open on --metrics-port
    # The console's static files (its calls to the API carry a token).
    **{("GET", path): PUBLIC for path in CONSOLE_PATHS},
    ("GET", ITEM): READ,
    ("PUT", ITEM): WRITE,
    ("PATCH", ITEM): WRITE,
    ("DELETE", ITEM): WRITE,
    ("GET", ITEMS): READ,
    ("POST", ITEMS): WRITE,
    # A batch of gets only needs read; one that writes needs write (checked
    # on its ops, before anything is applied).
    ("POST", "/collections/{name}/batch"): READ,
    ("POST", "/collections/{name}/query"): READ,
    # Each op of a transaction names its collection: checked per op, as a batch.
    ("POST", "/transactions"): Need(Scope.READ),
    ("GET", "/collections"): Need(Scope.READ),  # lists only what the key sees
    ("GET", "/collections/{name}"): READ,
    ("DELETE", "/collections/{name}"): ADMIN_OF_COLLECTION,
    ("POST", "/keys"): ADMIN,
    ("GET", "/keys"): ADMIN,
    ("DELETE", "/keys/{id}"): ADMIN,
}
"""``(method, path template) → Need``. HEAD is checked as GET."""

UNLISTED: Final = ADMIN


def need_of(method: str, template: str) -> Need:
    return ROUTE_NEEDS.get(("GET" if method == "HEAD" else method, template), UNLISTED)
