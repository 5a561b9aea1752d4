"""Errors raised by the SDK.

A missing key is Python's own ``KeyError`` (as for a dict). Everything else the
service answers with an RFC 9457 problem body becomes an :class:`ItemstoreError`
subclass carrying that body; connection failures become :class:`Unavailable`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ItemstoreError(Exception):
    """A problem answered by the service (or found before sending a request).

    ``status``, ``code``, ``title`` and ``detail`` are the problem fields;
    ``extras`` holds every other field of the body (``errors``, ``current`` ...).
    """

    def __init__(
        self,
        detail: str,
        *,
        status: int = 0,
        code: str = "",
        title: str = "",
        extras: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.extras: dict[str, Any] = dict(extras or {})

    def __str__(self) -> str:
        if self.status:
            return f"{self.status} {self.code or self.title}: {self.detail}"
        return self.detail

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(status={self.status}, code={self.code!r}, detail={self.detail!r})"


class ValidationError(ItemstoreError):
    """The request was refused as invalid: 400 (bad key, name, JSON, batch,
    cursor), 413 (value or request too large) or 415 (wrong content type).
    ``extras["errors"]`` lists per-op problems of a refused batch."""


class Unauthorized(ItemstoreError):
    """401: the token is missing or wrong."""


class Forbidden(ItemstoreError):
    """403: the key is valid but its scope or collections do not allow this."""


class PreconditionFailed(ItemstoreError):
    """412: a conditional write found the item in another state.

    ``current`` is the stored value (None when absent) and ``etag`` its ETag
    (None when absent), taken from the problem body: no second round trip.
    """

    @property
    def current(self) -> Any:
        return self.extras.get("current")

    @property
    def etag(self) -> str | None:
        etag = self.extras.get("etag")
        return etag if isinstance(etag, str) else None


class Unavailable(ItemstoreError):
    """The service could not be reached or could not serve the request now:
    503 (backend unavailable, shutting down), 429, or a connection failure.
    Raised once the SDK's bounded retries are used up. ``retry_after`` is the
    delay the server asked for, when it gave one."""

    def __init__(self, detail: str, *, retry_after: float | None = None, **problem: Any) -> None:
        super().__init__(detail, **problem)
        self.retry_after = retry_after


class RateLimited(Unavailable):
    """429: the key sent more requests than its rate limit allows (raised once
    the SDK's retries, which wait ``retry_after`` seconds, are used up)."""
