"""A lean DynamoDB client for the hot calls: JSON bodies built and read with
orjson, signed with our own SigV4, sent on a pool of keep-alive connections
(``dynamodb_http``), with the retries of botocore's standard mode.

Every attempt, and every pause between attempts, fits inside the deadline of
the request it serves (``deadlines.time_left()``): an attempt's timeouts are
cut to the time left, and no attempt is begun or waited for past it.

Values stay in DynamoDB's JSON shape: a binary attribute is base64 text both
ways (``{"B": "AAEC"}``), decoded only where the backend reads a value.
Credentials come from botocore's resolver chain (environment, profile, web
identity, container and instance roles) and are re-read for each request, so
temporary ones are refreshed before they expire.
"""

from __future__ import annotations

import asyncio
import random
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from .. import deadlines
from .dynamodb_errors import DynamoDBError, Unreachable, error_of
from .dynamodb_http import ConnectFailed, HTTPPool
from .dynamodb_sigv4 import Credentials, amz_date, sign


class NotConnected(Unreachable):
    """No connection could be made: the request was not sent, any call may be retried."""

    retryable = True


class LostAnswer(Unreachable):
    """The connection failed or timed out after sending: the request may have
    been carried out, so only idempotent calls are retried."""

    retryable = True


class OutOfTime(Unreachable):
    """The deadline of the request passed before this attempt was sent."""


TARGET_PREFIX = "DynamoDB_20120810."
CONTENT_TYPE = "application/x-amz-json-1.0"
CredentialSource = Callable[[], Awaitable[Credentials]]


@dataclass(frozen=True, slots=True)
class WirePolicy:
    """Attempts, backoff and timeouts. Like botocore's standard mode: at most
    ``attempts`` calls, full-jitter exponential backoff (``base`` doubling up to
    ``cap`` seconds); retried are throttling, 5xx and transient errors, and
    connection errors or timeouts of calls safe to send twice.
    ``connect_timeout`` bounds opening a connection, ``read_timeout`` a whole
    attempt, answer read to its end (botocore's bounds each read: an answer
    here is at most 16 MB, in the same region). Under a request deadline,
    both are cut to the time left and a retry whose pause would end past it
    is not made."""

    attempts: int = 3
    base: float = 0.05
    cap: float = 1.0
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    pool: int = 64

    def delay(self, attempt: int) -> float:
        """The pause after failed attempt number ``attempt`` (1-based)."""
        return random.uniform(0, min(self.cap, self.base * 2.0 ** (attempt - 1)))


def endpoint_of(endpoint: str | None, region: str) -> str:
    """The URL of DynamoDB: ``endpoint`` when given, else AWS's for ``region``."""
    return (endpoint or f"https://dynamodb.{region}.amazonaws.com").rstrip("/") + "/"


def _host(url: str) -> str:
    # Like botocore: the port only when it is not the scheme's default.
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname or ""
    return host if parts.port in (None, default) else f"{host}:{parts.port}"


async def botocore_credentials(session: Any) -> CredentialSource:
    """A source of current credentials from the resolver of an aioboto3 (or
    aiobotocore) session; raises Unreachable when none is configured."""
    resolved = await session.get_credentials()
    if resolved is None:
        raise Unreachable("no AWS credentials found (environment, profile, or role)")

    async def current() -> Credentials:
        # Refreshable credentials renew themselves here, shortly before expiry.
        frozen = await resolved.get_frozen_credentials()
        return Credentials(frozen.access_key, frozen.secret_key, frozen.token)

    return current


class DynamoDBWire:
    """Signed JSON requests to one DynamoDB endpoint. ``request`` returns the
    parsed answer or raises a ``DynamoDBError`` (``Unreachable`` when no
    answer came)."""

    def __init__(
        self,
        endpoint: str,
        region: str,
        credentials: CredentialSource,
        policy: WirePolicy | None = None,
    ) -> None:
        self.url, self.region = endpoint, region
        self.host = _host(endpoint)
        self.credentials = credentials
        self.policy = policy or WirePolicy()
        self._pool = HTTPPool(endpoint, self.policy.pool)

    async def __aenter__(self) -> DynamoDBWire:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._pool.close()

    async def request(
        self, operation: str, body: dict[str, Any], *, idempotent: bool = True
    ) -> dict[str, Any]:
        """Call ``operation`` (e.g. "GetItem") with ``body``. ``idempotent``:
        the call may be sent again after a connection error or timeout (a
        conditional write may not: a lost answer could hide its own success)."""
        payload = orjson.dumps(body)
        headers = {"content-type": CONTENT_TYPE, "x-amz-target": TARGET_PREFIX + operation}
        attempt = 1
        while True:
            left = deadlines.time_left()
            if left is not None and left <= 0:
                raise OutOfTime(f"{operation} not sent: the request's deadline has passed")
            try:
                return await self._send(headers, payload, left)
            except DynamoDBError as exc:
                retry = exc.retryable and (idempotent or not isinstance(exc, LostAnswer))
                if not retry or attempt >= self.policy.attempts:
                    raise
                delay = self.policy.delay(attempt)
                left = deadlines.time_left()
                if left is not None and delay >= left:
                    raise
            await asyncio.sleep(delay)
            attempt += 1

    async def _send(
        self, headers: dict[str, str], payload: bytes, left: float | None = None
    ) -> dict[str, Any]:
        signed = sign(
            await self.credentials(),
            region=self.region,
            service="dynamodb",
            host=self.host,
            headers=headers,
            body=payload,
            timestamp=amz_date(),
        )
        head = "".join(
            ["POST / HTTP/1.1\r\n", *(f"{name}: {value}\r\n" for name, value in signed.items())]
        )
        policy = self.policy
        try:
            answer = await self._pool.post(
                f"{head}content-length: {len(payload)}\r\n\r\n".encode(),
                payload,
                connect_timeout=policy.connect_timeout,
                within=policy.read_timeout if left is None else min(policy.read_timeout, left),
            )
        except ConnectFailed as exc:
            raise NotConnected(f"cannot connect to {self.url}: {exc}") from exc
        except (TimeoutError, OSError) as exc:
            raise LostAnswer(f"no answer from {self.url}: {exc!r}") from exc
        status, data = answer.status, answer.body
        crc = answer.headers.get("x-amz-crc32")
        if crc is not None and crc.isdigit() and int(crc) != zlib.crc32(data):
            raise LostAnswer("answer damaged in transit (CRC32 mismatch)")
        try:
            parsed = orjson.loads(data) if data else {}
        except orjson.JSONDecodeError:
            parsed = {"message": data[:200].decode("utf-8", "replace")}
        if status != 200:
            raise error_of(status, parsed)
        result: dict[str, Any] = parsed
        return result
