"""Domain errors: what went wrong, in itemstore's terms, with no HTTP in them.

The HTTP layer (``problems.py``) holds the one table that turns each of these
into a status, a stable ``code`` and a title.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # no import at run time: backends import this module
    from .backends.base import Record


class ItemstoreError(Exception):
    """Base of every error the service answers with a problem body.
    ``detail`` says what to fix; ``extra`` holds members added to the body;
    ``retry_after``, when set, overrides the seconds of the ``Retry-After``
    header its problem row gives."""

    def __init__(self, detail: str, *, retry_after: int | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after
        self.extra = extra


class InvalidInput(ItemstoreError):
    """Input that can never succeed as sent (a parameter, a header, a body)."""


class InvalidJSON(InvalidInput):
    pass


class InvalidKey(InvalidInput):
    pass


class InvalidCollectionName(InvalidInput):
    pass


class InvalidBatch(InvalidInput):
    """``extra["errors"]``, when present, lists each invalid op by index."""


class InvalidCursor(InvalidInput):
    pass


class InvalidPatch(InvalidInput):
    """A PATCH body that no stored value could accept."""


class PatchConflict(InvalidInput):
    """A valid change that the stored value does not fit (an increment of a
    string); nothing was changed."""


class InvalidTransaction(InvalidInput):
    """``extra["errors"]``, when present, lists each invalid op by index."""


class InvalidQuery(InvalidInput):
    """A query body that cannot be run: an unknown op, a bad path or value."""


class QueryTooBroad(InvalidQuery):
    """A query that would scan more items than one request may."""


class ItemNotFound(ItemstoreError):
    pass


class KeyNotFound(ItemNotFound):
    """No access key has the id asked for."""


class PreconditionFailed(ItemstoreError):
    """A conditional write whose condition did not hold. ``current`` is the
    stored record (None when the item is absent)."""

    def __init__(self, detail: str, current: Record | None, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.current = current


class IdempotencyKeyReused(ItemstoreError):
    """An ``Idempotency-Key`` sent again, within its window, with another request."""


class ValueTooLarge(ItemstoreError):
    """A value or a whole request over its size limit."""


class BackendUnavailable(ItemstoreError):
    """Storage did not answer; a write may or may not have been applied."""


class Contended(ItemstoreError):
    """An update gave up: other writers changed its item before every one of
    its attempts to write. It was not applied."""


class ShuttingDown(BackendUnavailable):
    """This instance is stopping and takes no more work."""


class Overloaded(ItemstoreError):
    """This worker has as much work as it takes (requests in flight, operations
    queued for a batch, or connections): the request was refused unread and not
    applied."""
