"""HTTP/1.1 to DynamoDB: ``POST /`` on a pool of keep-alive connections.

DynamoDB's item calls are all one shape (a POST of a JSON body to ``/``,
answered with a body), so this is the few lines of HTTP that shape needs,
on asyncio protocols with ``httptools`` (the C parser uvicorn uses) reading
the answers. aiohttp's client, which it replaces, costs more per call than
the rest of the call together (docs/performance.md).

A connection serves one request at a time and goes back to the pool only
when its answer was read whole and the server keeps it open; after any
failure or timeout it is closed, since its answer may still arrive.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import deque
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools


class ConnectFailed(OSError):
    """No connection could be made: nothing was sent."""


class ConnectionBroken(OSError):
    """The connection failed after the request was sent (or while sending)."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: dict[str, str]  # names in lowercase
    body: bytes


class _Connection(asyncio.Protocol):
    """One connection; ``send()`` writes a request, its future is the answer."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Answer] | None = None
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.usable = True
        self.idle_since = 0.0

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionBroken(f"unreadable answer: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionBroken(f"connection closed by the server: {exc or 'EOF'}"))

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        answer = Answer(self.parser.get_status_code(), self.headers, b"".join(self.body))
        self.usable = self.parser.should_keep_alive()
        self.headers, self.body = {}, []
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(answer)
        else:  # an answer nobody asked for: the connection is out of step
            self.close()

    # the pool's side

    def _fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)
        self.close()

    def send(self, head: bytes, body: bytes) -> asyncio.Future[Answer]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        if len(body) < 65536:
            self.transport.write(head + body)  # one segment
        else:
            self.transport.write(head)
            self.transport.write(body)
        return self.waiter

    def close(self) -> None:
        self.usable = False
        if self.transport is not None:
            self.transport.close()


class HTTPPool:
    """Keep-alive connections to the origin of ``url`` (http or https), at
    most ``limit`` open at once; ``post`` sends ``POST /``. A connection idle
    for ``keep_alive`` seconds is closed rather than used (as aiohttp's
    client does after 15 s): a load balancer or NAT on the way may have
    dropped it without a word, and a request sent on it would wait for its
    timeout."""

    def __init__(
        self,
        url: str,
        limit: int,
        keep_alive: float = 15.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        # https: certificates checked against the system's CAs unless ``tls`` says otherwise.
        self.ssl = (tls or ssl.create_default_context()) if parts.scheme == "https" else None
        self.limit, self.keep_alive = limit, keep_alive
        self._idle: deque[_Connection] = deque()
        self._open: set[_Connection] = set()
        self._connecting = 0
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._closed = False

    async def post(
        self, head: bytes, body: bytes, *, connect_timeout: float, within: float
    ) -> Answer:
        """Send ``head`` (the request line and headers, ending in a blank
        line) and ``body``; the answer whole, within ``within`` seconds of
        this call (connecting, when needed, within ``connect_timeout``).
        Raises ``ConnectFailed`` (nothing was sent), or ``ConnectionBroken``
        or ``TimeoutError`` (it may have been)."""
        loop = asyncio.get_running_loop()
        until = loop.time() + within
        connection = await self._take(min(connect_timeout, within))
        try:
            async with asyncio.timeout_at(until):
                return await connection.send(head, body)
        except BaseException:
            connection.usable = False  # its answer may still come: never reused
            raise
        finally:
            self._give_back(connection)

    async def _take(self, connect_timeout: float) -> _Connection:
        if self._closed:
            raise ConnectFailed("the connection pool is closed")
        loop = asyncio.get_running_loop()
        stale = loop.time() - self.keep_alive
        while self._idle and self._idle[0].idle_since < stale:  # the oldest are first
            self._drop(self._idle.popleft())
        while True:
            while self._idle:
                connection = self._idle.pop()  # the latest used: least likely closed
                if connection.usable:
                    return connection
                self._drop(connection)
            if len(self._open) + self._connecting < self.limit:
                break
            waiter = loop.create_future()
            self._waiting.append(waiter)
            try:
                async with asyncio.timeout(connect_timeout):
                    await waiter
                if self._closed:
                    raise ConnectFailed("the connection pool was closed")
            except TimeoutError:
                raise ConnectFailed(f"no connection free within {connect_timeout} s") from None
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # pass on the turn this caller was given
                raise
        self._connecting += 1
        try:
            async with asyncio.timeout(connect_timeout):
                _, connection = await loop.create_connection(
                    _Connection, self.host, self.port, ssl=self.ssl
                )
        except BaseException as exc:
            self._wake()
            if isinstance(exc, TimeoutError):
                raise ConnectFailed(f"no connection within {connect_timeout} s") from exc
            if isinstance(exc, OSError):
                raise ConnectFailed(str(exc)) from exc
            raise
        finally:
            self._connecting -= 1
        self._open.add(connection)
        return connection

    def _give_back(self, connection: _Connection) -> None:
        if connection.usable:
            connection.idle_since = asyncio.get_running_loop().time()
            self._idle.append(connection)
        else:
            self._drop(connection)
        self._wake()

    def _drop(self, connection: _Connection) -> None:
        connection.close()
        self._open.discard(connection)

    def _wake(self) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def close(self) -> None:
        """Close every connection; calls still waiting on one, and calls
        made later, fail with ConnectFailed."""
        self._closed = True
        while self._waiting:  # each wakes to find the pool closed
            self._wake()
        for connection in self._open:
            connection.close()
        self._open.clear()
        self._idle.clear()
