"""The two thin shells that move the core's requests: urllib3 (sync) and aiohttp (async).

Both follow the same loop: send, ask the retry policy whether and when to send
again, and hand the final answer to the call's decoder.
"""

from __future__ import annotations

import asyncio
import time
from typing import TypeVar

import aiohttp
import urllib3
import yarl
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from ._protocol import Call, Request, Response, connection_error
from ._retry import FailureKind, RetryPolicy

T = TypeVar("T")


class SyncTransport:
    """Pooled keep-alive connections (urllib3 PoolManager); safe to share
    between threads."""

    def __init__(self, *, timeout: float, retry: RetryPolicy, pool_size: int) -> None:
        self.retry = retry
        self._timeout = urllib3.Timeout(connect=timeout, read=timeout)
        self._pool = urllib3.PoolManager(
            num_pools=4, maxsize=pool_size, block=False, retries=False, timeout=self._timeout
        )

    def send(self, request: Request) -> Response:
        attempt = 0
        while True:
            try:
                raw = self._pool.request(
                    request.method,
                    request.url,
                    body=request.body,
                    headers=dict(request.headers),
                    redirect=False,
                    retries=False,
                )
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                never_sent = isinstance(exc, NewConnectionError | ConnectTimeoutError)
                kind: FailureKind = "connect" if never_sent else "io"
                delay = self.retry.after_failure(request.replay, kind, attempt)
                if delay is None:
                    raise connection_error(request, exc) from exc
            else:
                response = Response(raw.status, raw.headers, raw.data)
                delay = self.retry.after_status(
                    request.replay, raw.status, raw.headers.get("Retry-After"), attempt
                )
                if delay is None:
                    return response
            time.sleep(delay)
            attempt += 1

    def run(self, call: Call[T]) -> T:
        return call.decode(self.send(call.request))

    def close(self) -> None:
        self._pool.clear()


class AsyncTransport:
    """One aiohttp ClientSession, opened on first use inside the running loop."""

    def __init__(self, *, timeout: float, retry: RetryPolicy, pool_size: int) -> None:
        self.retry = retry
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._pool_size = pool_size
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(limit=self._pool_size),
                auto_decompress=True,
            )
            # aiohttp sends PUT/DELETE/GET once more by itself when a connection
            # drops; the SDK's retry policy must be the only one deciding what
            # is replayed (a replayed DELETE could report a pop as KeyError).
            # aiohttp's own test client turns it off the same way.
            if hasattr(self._session, "_retry_connection"):
                self._session._retry_connection = False
        return self._session

    async def send(self, request: Request) -> Response:
        session = self._client()
        attempt = 0
        while True:
            try:
                async with session.request(
                    request.method,
                    yarl.URL(request.url, encoded=True),
                    data=request.body,
                    headers=request.headers,
                    allow_redirects=False,
                ) as raw:
                    body = await raw.read()
                    response = Response(raw.status, raw.headers, body)
            except (aiohttp.ClientError, TimeoutError) as exc:
                never_sent = isinstance(exc, aiohttp.ClientConnectorError)
                kind: FailureKind = "connect" if never_sent else "io"
                delay = self.retry.after_failure(request.replay, kind, attempt)
                if delay is None:
                    raise connection_error(request, exc) from exc
            else:
                delay = self.retry.after_status(
                    request.replay, response.status, response.headers.get("Retry-After"), attempt
                )
                if delay is None:
                    return response
            await asyncio.sleep(delay)
            attempt += 1

    async def run(self, call: Call[T]) -> T:
        return call.decode(await self.send(call.request))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
