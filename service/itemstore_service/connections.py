"""Per-connection bounds, so that slow or hostile clients hold a connection, not the service.

* **Request heads** must arrive within ``read_timeout`` of their first byte
  (of the connection's start, for the first one): a client trickling header
  bytes (slowloris) or connecting and sending nothing is closed. Bodies are
  bounded where they are read (``validation``).
* **Output** that a client does not read stays in the transport (at most one
  answer: aiohttp writes the next only once this one drained below the
  high-water mark). A connection whose output makes no progress for
  ``write_timeout`` seconds is aborted, which frees it.
* **Connections** are capped at ``max_connections`` per worker. One past the
  cap closes the connection that has been idle between requests the longest,
  or, when none is idle, is answered 503 ``overloaded`` and closed at once.

``ConnectionGuard`` wraps the protocol aiohttp makes for each connection and
forwards every event to it; ``connection_middleware`` tells the guard when a
request's head has arrived and when its handler is done.
"""

from __future__ import annotations

import asyncio
import resource
import socket
import struct
from collections.abc import Callable
from typing import Final, cast

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from .errors import Overloaded
from .problems import PROBLEM_JSON, problem_for

FD_RESERVE: Final = 64
"""File descriptors kept for everything but client connections: the listening
socket, SQLite's files, the DynamoDB connection pool, metrics files, logs, and
the connection accepted only to be refused."""

WRITE_HIGH_WATER: Final = 64 * 1024
"""Output buffered in user space before a handler waits for the client to read."""


_LINGER_RESET: Final = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a reset


def default_max_connections() -> int:
    """The soft RLIMIT_NOFILE minus ``FD_RESERVE`` (at least 1); 65536 minus it
    when the limit is infinite."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 65536
    return max(1, soft - FD_RESERVE)


def _overloaded_answer(max_connections: int) -> bytes:
    """The whole HTTP answer to a connection past the cap, made once."""
    problem = problem_for(Overloaded)
    body = orjson.dumps(
        {
            "type": f"urn:itemstore:problem:{problem.code}",
            "title": problem.title,
            "status": problem.status,
            "detail": f"this worker holds its {max_connections} connections; retry shortly",
            "code": problem.code,
        }
    )
    head = (
        f"HTTP/1.1 {problem.status} Service Unavailable\r\n"
        f"Content-Type: {PROBLEM_JSON}\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Retry-After: {problem.retry_after}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


class ConnectionLimits:
    """The bounds of one worker and the guards of its open connections."""

    def __init__(self, *, max_connections: int, read_timeout: float, write_timeout: float) -> None:
        self.max_connections = max_connections
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        self.refused = 0
        """Connections answered 503 ``overloaded`` (for tests and diagnosis)."""
        self.evicted = 0
        """Idle connections closed to make room for a new one."""
        self._open: dict[ConnectionGuard, None] = {}
        self._idle: dict[ConnectionGuard, None] = {}  # insertion order: idle the longest first
        self._by_protocol: dict[asyncio.BaseProtocol, ConnectionGuard] = {}
        self._overloaded = _overloaded_answer(max_connections)

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def protocol_factory(self, make_protocol: Callable[[], asyncio.Protocol]) -> ConnectionGuard:
        """A guard around ``make_protocol()``: pass to ``loop.create_server``."""
        return ConnectionGuard(self, make_protocol)

    def guard_of(self, protocol: asyncio.BaseProtocol | None) -> ConnectionGuard | None:
        return None if protocol is None else self._by_protocol.get(protocol)

    def _admit(self, guard: ConnectionGuard, transport: asyncio.Transport) -> bool:
        if len(self._open) >= self.max_connections:
            if self._idle:
                oldest = next(iter(self._idle))
                self.evicted += 1
                oldest.close()
            else:
                self.refused += 1
                transport.write(self._overloaded)
                transport.close()
                return False
        self._open[guard] = None
        return True

    def _register(self, guard: ConnectionGuard, protocol: asyncio.BaseProtocol) -> None:
        self._by_protocol[protocol] = guard

    def _forget(self, guard: ConnectionGuard, protocol: asyncio.BaseProtocol | None) -> None:
        self._open.pop(guard, None)
        self._idle.pop(guard, None)
        if protocol is not None:
            self._by_protocol.pop(protocol, None)

    def _set_idle(self, guard: ConnectionGuard, idle: bool) -> None:
        if idle:
            self._idle[guard] = None
        else:
            self._idle.pop(guard, None)


class ConnectionGuard(asyncio.Protocol):
    """One connection: forwards every event to the protocol aiohttp made for
    it, and enforces the head read timeout and the write timeout on the way."""

    def __init__(
        self, limits: ConnectionLimits, make_protocol: Callable[[], asyncio.Protocol]
    ) -> None:
        self._limits = limits
        self._make_protocol = make_protocol
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        # The loop time by which the next head must have arrived (None: no
        # head awaited). One timer checks it and re-arms itself while the
        # deadline moves on, instead of a timer made and cancelled per request.
        self._read_deadline: float | None = None
        self._read_timer: asyncio.TimerHandle | None = None
        self._write_check: asyncio.TimerHandle | None = None
        self._unsent_at_check = 0
        self._requests = 0  # handlers running (one at a time: aiohttp answers in order)
        self._bytes_during_request = False
        self._served = False

    # -- asyncio.Protocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass of it
        if not self._limits._admit(self, transport):
            return
        self._transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self._inner = self._make_protocol()
        self._limits._register(self, self._inner)
        self._arm_read_deadline()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._inner is None:
            return  # refused: its bytes are dropped
        if self._requests:
            self._bytes_during_request = True
        elif self._read_deadline is None:
            self._arm_read_deadline()
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return None if self._inner is None else self._inner.eof_received()

    def pause_writing(self) -> None:
        if self._inner is None:
            return
        self._limits._set_idle(self, False)
        self._schedule_write_check()
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is None:
            return
        self._cancel_write_check()
        self._update_idle()
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_read_deadline()
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None
        self._cancel_write_check()
        self._limits._forget(self, self._inner)
        inner, self._inner, self._transport = self._inner, None, None
        if inner is not None:
            inner.connection_lost(exc)

    # -- told by connection_middleware -----------------------------------------

    def request_started(self) -> None:
        """A request's head has arrived: its handler runs now."""
        self._requests += 1
        self._bytes_during_request = False
        self._cancel_read_deadline()
        self._limits._set_idle(self, False)

    def request_finished(self) -> None:
        """The handler returned. Bytes that came meanwhile begin the next head."""
        self._requests -= 1
        self._served = True
        if self._requests == 0 and self._bytes_during_request and self._read_deadline is None:
            self._arm_read_deadline()
        self._update_idle()

    # -- the bounds ------------------------------------------------------------

    def close(self, *, reset: bool = False) -> None:
        """Close the connection now; pending output is dropped. With ``reset``
        the kernel drops what it still holds too and the client sees a reset:
        a plain close would keep that output queued ahead of the FIN, for a
        client that reads none of it, for minutes."""
        transport = self._transport
        if transport is None:
            return
        self._limits._set_idle(self, False)
        if reset:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        transport.abort()

    def _reset(self) -> None:
        self.close(reset=True)

    def _update_idle(self) -> None:
        idle = (
            self._served
            and self._requests == 0
            and self._read_deadline is None
            and self._write_check is None
        )
        self._limits._set_idle(self, idle)

    def _arm_read_deadline(self) -> None:
        self._limits._set_idle(self, False)
        self._read_deadline = self._loop.time() + self._limits.read_timeout
        if self._read_timer is None:
            self._read_timer = self._loop.call_at(self._read_deadline, self._check_read)

    def _cancel_read_deadline(self) -> None:
        self._read_deadline = None  # the timer, when it fires, finds nothing to do

    def _check_read(self) -> None:
        """The read timer fired: reset the connection if its head is late."""
        self._read_timer = None
        deadline = self._read_deadline
        if deadline is None:
            return
        if self._loop.time() < deadline:  # re-armed since: wait for the new deadline
            self._read_timer = self._loop.call_at(deadline, self._check_read)
        else:
            self._reset()

    def _schedule_write_check(self) -> None:
        self._cancel_write_check()
        if self._transport is not None:
            self._unsent_at_check = self._transport.get_write_buffer_size()
        self._write_check = self._loop.call_later(self._limits.write_timeout, self._check_write)

    def _check_write(self) -> None:
        """Still above the high-water mark: abort unless the client read some."""
        self._write_check = None
        transport = self._transport
        if transport is None:
            return
        if transport.get_write_buffer_size() < self._unsent_at_check:
            self._schedule_write_check()  # slow, but reading
        else:
            self._reset()

    def _cancel_write_check(self) -> None:
        if self._write_check is not None:
            self._write_check.cancel()
            self._write_check = None


CONNECTIONS = web.AppKey("connections", ConnectionLimits)


@web.middleware
async def connection_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Tell the connection's guard, when it has one, that a request runs."""
    guard = request.app[CONNECTIONS].guard_of(request.protocol)
    if guard is None:  # served without a guard (aiohttp's test server)
        return await handler(request)
    guard.request_started()
    try:
        return await handler(request)
    finally:
        guard.request_finished()
