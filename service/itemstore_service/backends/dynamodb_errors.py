"""DynamoDB's errors, by the ``__type`` of an error response: one exception
class per kind the backend treats differently, and whether a retry may help."""

from __future__ import annotations

from typing import Any, ClassVar


class DynamoDBError(Exception):
    """An error answer of DynamoDB: its code (``__type`` past the ``#``), its
    message and HTTP status. ``retryable``: another attempt may succeed."""

    retryable: ClassVar[bool] = False

    def __init__(self, code: str, message: str, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code, self.message, self.status, self.body = code, message, status, body


class ConditionalCheckFailed(DynamoDBError):
    """The condition of a write did not hold. ``item``: the stored item when the
    request asked for it (ReturnValuesOnConditionCheckFailure) and the server
    sent it; not every implementation does."""

    @property
    def item(self) -> dict[str, Any] | None:
        item = self.body.get("Item")
        return item if isinstance(item, dict) and item else None


class TransactionCanceled(DynamoDBError):
    """A TransactWriteItems refused whole; ``reasons`` holds one entry per
    item (``{"Code": "None" | "ConditionalCheckFailed" | ..., "Item": ...}``)."""

    @property
    def reasons(self) -> list[dict[str, Any]]:
        reasons = self.body.get("CancellationReasons")
        return reasons if isinstance(reasons, list) else []


class IdempotentParameterMismatch(DynamoDBError):
    """A ClientRequestToken reused, within 10 minutes, with other parameters."""


class Throttled(DynamoDBError):
    """Throughput or request rate exceeded: retried with backoff."""

    retryable = True


class TransientError(DynamoDBError):
    """A server-side failure (5xx, request timeout): retried with backoff."""

    retryable = True


class ResourceNotFound(DynamoDBError):
    """The table does not exist (or is not ACTIVE yet)."""


class ValidationError(DynamoDBError):
    """The request was refused as malformed or too large."""


class AccessDenied(DynamoDBError):
    """The credentials were refused or lack a permission."""


class Unreachable(DynamoDBError):
    """No answer: connection refused or reset, or a timeout."""

    def __init__(self, message: str) -> None:
        super().__init__("Unreachable", message, 0, {})


# The codes botocore's standard retry mode treats as throttling or transient.
ERRORS: dict[str, type[DynamoDBError]] = {
    "ConditionalCheckFailedException": ConditionalCheckFailed,
    "TransactionCanceledException": TransactionCanceled,
    "IdempotentParameterMismatchException": IdempotentParameterMismatch,
    "ResourceNotFoundException": ResourceNotFound,
    "ValidationException": ValidationError,
    "SerializationException": ValidationError,
    "AccessDeniedException": AccessDenied,
    "UnrecognizedClientException": AccessDenied,
    "InvalidSignatureException": AccessDenied,
    "MissingAuthenticationTokenException": AccessDenied,
    "ExpiredTokenException": AccessDenied,
    **dict.fromkeys(
        [
            "Throttling",
            "ThrottlingException",
            "ThrottledException",
            "RequestThrottledException",
            "TooManyRequestsException",
            "ProvisionedThroughputExceededException",
            "TransactionInProgressException",
            "RequestLimitExceeded",
            "BandwidthLimitExceeded",
            "LimitExceededException",
            "RequestThrottled",
            "SlowDown",
            "EC2ThrottledException",
        ],
        Throttled,
    ),
    **dict.fromkeys(
        ["RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete"], TransientError
    ),
}
TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})


def error_of(status: int, body: dict[str, Any]) -> DynamoDBError:
    """The exception for one error answer (``body``: its parsed JSON)."""
    code = str(body.get("__type", "")).rpartition("#")[2] or f"HTTP{status}"
    message = str(body.get("message", body.get("Message", "")))
    kind = ERRORS.get(code)
    if kind is None:
        kind = TransientError if status in TRANSIENT_STATUSES else DynamoDBError
    return kind(code, message, status, body)
