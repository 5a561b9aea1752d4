"""The sync transport: moves the core's requests with urllib3.

Its loop (as the async transport's): send, ask the retry policy whether and
when to send again, and hand the final answer to the call's decoder.
"""

from __future__ import annotations

import time
from typing import TypeVar

import urllib3
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
        started = time.monotonic()
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
                delay = self.retry.after_failure(
                    request.replay, kind, attempt, elapsed=time.monotonic() - started
                )
                if delay is None:
                    raise connection_error(request, exc) from exc
            else:
                response = Response(raw.status, raw.headers, raw.data)
                delay = self.retry.after_status(
                    request.replay,
                    raw.status,
                    raw.headers.get("Retry-After"),
                    attempt,
                    body=response.body,
                    elapsed=time.monotonic() - started,
                )
                if delay is None:
                    return response
            time.sleep(delay)
            attempt += 1

    def run(self, call: Call[T]) -> T:
        return call.decode(self.send(call.request))

    def close(self) -> None:
        self._pool.clear()
