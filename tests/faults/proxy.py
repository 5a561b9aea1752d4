"""A TCP proxy that injects network faults between itemstore and its backend.

``FaultProxy`` listens on 127.0.0.1 (a free port) and forwards every
connection to an upstream ``host:port``. Its event loop runs in a thread of
its own, so sync and async tests drive it alike; the mode is switched at run
time and applies to new and open connections:

* ``pass_through()``: bytes flow unchanged (the start state).
* ``latency(seconds)``: each chunk from upstream reaches the client that much later.
* ``drop()``: nothing listens (new connections are refused) and open ones
  are reset.
* ``reset_after(n_bytes)``: a connection is reset (RST: ``SO_LINGER`` 0, then
  close) once ``n_bytes`` went upstream -> client on it since the switch,
  after those bytes, i.e. in the middle of an answer.
* ``reset_every(n_bytes)``: the same, counting the bytes of all connections
  together: after each ``n_bytes`` the connection carrying the next one is
  reset. Faults spread evenly whether the backend keeps connections open or
  closes them after each answer.
* ``blackhole()``: connections are accepted and read, and never answered;
  one blackholed stays so for its life, as a connection whose peer vanished.

``stats`` counts what the proxy did, so that a test can show its fault happened.
"""

from __future__ import annotations

import asyncio
import enum
import socket
import struct
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
CHUNK = 65536
RESET_PAUSE = 0.01  # lets the client read the bytes sent before the RST


class Mode(enum.Enum):
    PASS = "pass"
    LATENCY = "latency"
    DROP = "drop"
    RESET_AFTER = "reset_after"
    RESET_EVERY = "reset_every"
    BLACKHOLE = "blackhole"


@dataclass(frozen=True, slots=True)
class Setting:
    """A mode and its argument; ``generation`` tells one switch from the next."""

    mode: Mode
    argument: float = 0.0
    generation: int = 0


@dataclass(slots=True)
class ProxyStats:
    accepted: int = 0
    refused: int = 0
    resets: int = 0
    blackholed: int = 0
    bytes_to_client: int = 0


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST instead of FIN: the peer reads ECONNRESET."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Connection:
    """One client connection and its upstream connection."""

    def __init__(self, proxy: FaultProxy, client: asyncio.StreamWriter) -> None:
        self.proxy, self.client = proxy, client
        self.upstream: asyncio.StreamWriter | None = None
        self.blackholed = False
        self.generation = -1  # of the setting the byte count below belongs to
        self.sent_since_switch = 0

    def reset(self) -> None:
        _reset(self.client)
        if self.upstream is not None:
            _reset(self.upstream)

    async def client_to_upstream(self, reader: asyncio.StreamReader) -> None:
        assert self.upstream is not None
        while data := await reader.read(CHUNK):
            if self.blackholed or self.proxy.setting.mode is Mode.BLACKHOLE:
                self._blackhole()
                continue  # read and thrown away
            self.upstream.write(data)
            await self.upstream.drain()
        if not self.blackholed:
            self.upstream.write_eof()

    async def upstream_to_client(self, reader: asyncio.StreamReader) -> None:
        while data := await reader.read(CHUNK):
            setting = self.proxy.setting
            if self.blackholed or setting.mode is Mode.BLACKHOLE:
                self._blackhole()
                continue
            if setting.mode is Mode.LATENCY:
                await asyncio.sleep(setting.argument)
            if setting.mode is Mode.RESET_AFTER:
                if self.generation != setting.generation:
                    self.generation, self.sent_since_switch = setting.generation, 0
                room = int(setting.argument) - self.sent_since_switch
                self.sent_since_switch += len(data)
            elif setting.mode is Mode.RESET_EVERY:
                room = self.proxy.until_reset
                self.proxy.until_reset -= len(data)
                if self.proxy.until_reset < 0:
                    self.proxy.until_reset = int(setting.argument)
            else:
                room = len(data)
            if len(data) > room:
                await self._send(data[: max(room, 0)])
                await asyncio.sleep(RESET_PAUSE)
                self.proxy.stats.resets += 1
                self.reset()
                return
            await self._send(data)
        if not self.blackholed:
            self.client.write_eof()

    async def _send(self, data: bytes) -> None:
        if data:
            self.proxy.stats.bytes_to_client += len(data)  # counted before the client can see it
            self.client.write(data)
            await self.client.drain()

    def _blackhole(self) -> None:
        if not self.blackholed:
            self.blackholed = True
            self.proxy.stats.blackholed += 1


class FaultProxy:
    """A fault-injecting TCP proxy to ``upstream_host:upstream_port``; use
    ``running_proxy`` (or ``start``/``stop``). ``port`` and ``url`` are where
    it listens. The control methods may be called from any thread."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.setting = Setting(Mode.PASS)
        self.stats = ProxyStats()
        self.port = 0
        self.until_reset = 0  # bytes to pass before the next reset (reset_every)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()
        self._call(self._listen())

    def stop(self) -> None:
        """Reset every connection, stop listening, end the thread."""
        self._call(self._shut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    # -- the modes ------------------------------------------------------------

    def pass_through(self) -> None:
        self._switch(Mode.PASS)

    def latency(self, seconds: float) -> None:
        self._switch(Mode.LATENCY, seconds)

    def drop(self) -> None:
        self._switch(Mode.DROP)

    def reset_after(self, n_bytes: int) -> None:
        self._switch(Mode.RESET_AFTER, n_bytes)

    def reset_every(self, n_bytes: int) -> None:
        self._switch(Mode.RESET_EVERY, n_bytes)

    def blackhole(self) -> None:
        self._switch(Mode.BLACKHOLE)

    # -- inside the proxy's loop ----------------------------------------------

    def _switch(self, mode: Mode, argument: float = 0.0) -> None:
        async def switch() -> None:
            self.setting = Setting(mode, argument, self.setting.generation + 1)
            self.until_reset = int(argument)
            if mode is Mode.DROP:
                await self._unlisten()
                for connection in list(self._connections):
                    connection.reset()
            elif self._server is None:
                await self._listen()

        self._call(switch())

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    async def _listen(self) -> None:
        # The same port again after a drop: SO_REUSEADDR is on (asyncio's default).
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _unlisten(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _shut(self) -> None:
        await self._unlisten()
        for connection in list(self._connections):
            connection.reset()
        # Reset connections end their tasks, but for one that waits out a
        # latency: cancel those (``_serve`` ends quietly when cancelled).
        if self._tasks:
            _, waiting = await asyncio.wait(list(self._tasks), timeout=0.5)
            for task in waiting:
                task.cancel()
            if waiting:
                await asyncio.wait(waiting, timeout=5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.stats.accepted += 1
        connection = _Connection(self, writer)
        self._connections.add(connection)
        try:
            if self.setting.mode is Mode.BLACKHOLE:
                connection._blackhole()
                while await reader.read(CHUNK):
                    pass
                return
            try:
                upstream_reader, connection.upstream = await asyncio.open_connection(*self.upstream)
            except OSError:
                self.stats.refused += 1
                _reset(writer)
                return
            await asyncio.gather(
                connection.client_to_upstream(reader),
                connection.upstream_to_client(upstream_reader),
            )
        except (OSError, asyncio.IncompleteReadError):
            connection.reset()
        except asyncio.CancelledError:
            # Stopped by ``_shut``: end as a reset connection would, since a
            # cancelled task here is logged as an error by asyncio's streams.
            connection.reset()
        finally:
            self._connections.discard(connection)
            self._tasks.discard(task)
            if not writer.is_closing():
                writer.close()
            if connection.upstream is not None and not connection.upstream.is_closing():
                connection.upstream.close()


@contextmanager
def running_proxy(upstream_host: str, upstream_port: int) -> Iterator[FaultProxy]:
    """A started ``FaultProxy``, stopped on exit."""
    proxy = FaultProxy(upstream_host, upstream_port)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
