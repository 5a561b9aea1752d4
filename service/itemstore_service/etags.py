"""ETags on the wire: the header text naming a record's version, and the
conditional request headers (``If-Match``, ``If-None-Match``) read from it."""

from __future__ import annotations

from aiohttp import web

from .backends.base import Record
from .errors import InvalidInput


def etag(record: Record) -> str:
    """The ETag (a quoted string, as in the header) naming a record's version."""
    return f'"{record.version}"'


def if_match(request: web.Request) -> str | None:
    """The version named by ``If-Match: "<etag>"``, if the header is there."""
    header = request.headers.get("If-Match")
    if header is None:
        return None
    value = header.strip().removeprefix("W/")
    if len(value) < 2 or value[0] != '"' or value[-1] != '"' or "," in value:
        raise InvalidInput('If-Match must be one quoted ETag, like If-Match: "3f2a..."')
    return value[1:-1]


def if_none_match_any(request: web.Request) -> bool:
    """Whether a PUT asks ``If-None-Match: *`` (write only when absent)."""
    header = request.headers.get("If-None-Match")
    if header is None:
        return False
    if header.strip() != "*":
        raise InvalidInput("on PUT, If-None-Match only takes '*' (create only when absent)")
    if "If-Match" in request.headers:  # together they could never both hold
        raise InvalidInput("send If-Match or If-None-Match: *, not both")
    return True


def none_match(request: web.Request, tag: str) -> bool:
    """Whether a GET's ``If-None-Match`` names the current ETag (weak
    comparison, as RFC 9110 asks): then the answer is 304."""
    header = request.headers.get("If-None-Match")
    if header is None:
        return False
    if header.strip() == "*":
        return True
    return any(t.strip().removeprefix("W/") == tag for t in header.split(","))
