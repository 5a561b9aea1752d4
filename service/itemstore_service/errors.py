"""Domain errors. Each one knows its HTTP status and stable ``code``; the error
middleware turns any of them into one RFC 9457 problem+json answer."""

from __future__ import annotations

from typing import Any, ClassVar


class ItemstoreError(Exception):
    """Base of every error the service answers with a problem body."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class InvalidInput(ItemstoreError):
    status = 400
    code = "invalid-input"
    title = "Invalid input"


class InvalidJSON(InvalidInput):
    code = "invalid-json"
    title = "Body is not valid JSON"


class InvalidKey(InvalidInput):
    code = "invalid-key"
    title = "Invalid key"


class InvalidCollectionName(InvalidInput):
    code = "invalid-collection-name"
    title = "Invalid collection name"


class InvalidBatch(InvalidInput):
    code = "invalid-batch"
    title = "Invalid batch"


class InvalidCursor(InvalidInput):
    code = "invalid-cursor"
    title = "Invalid cursor"


class Unauthorized(ItemstoreError):
    status = 401
    code = "unauthorized"
    title = "Missing or wrong bearer token"


class ItemNotFound(ItemstoreError):
    status = 404
    code = "item-not-found"
    title = "No item with this key"


class RouteNotFound(ItemstoreError):
    status = 404
    code = "not-found"
    title = "No such route"


class MethodNotAllowed(ItemstoreError):
    status = 405
    code = "method-not-allowed"
    title = "Method not allowed on this route"


class PreconditionFailed(ItemstoreError):
    """A conditional write whose condition did not hold. ``current`` is the
    stored record (None when the item is absent)."""

    status = 412
    code = "precondition-failed"
    title = "Precondition failed"


class ValueTooLarge(ItemstoreError):
    status = 413
    code = "value-too-large"
    title = "Value or request too large"


class UnsupportedMediaType(ItemstoreError):
    status = 415
    code = "unsupported-media-type"
    title = "Unsupported media type"


class BackendUnavailable(ItemstoreError):
    status = 503
    code = "backend-unavailable"
    title = "Storage backend unavailable"


class ShuttingDown(BackendUnavailable):
    code = "shutting-down"
    title = "Service is shutting down"
