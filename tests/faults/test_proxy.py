"""The fault proxy itself, against a tiny local upstream: each mode does what it says."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.faults.proxy import FaultProxy, running_proxy

ANSWER = b"x" * 10_000


class Upstream:
    """Echoes each line back, and answers ``big\\n`` with ``ANSWER``; counts
    the bytes it received."""

    def __init__(self) -> None:
        self.received = 0
        self.port = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                self.received += len(line)
                writer.write(ANSWER if line == b"big\n" else line)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    server = Upstream()
    listener = await asyncio.start_server(server.serve, "127.0.0.1", 0)
    server.port = listener.sockets[0].getsockname()[1]
    async with listener:
        yield server


@pytest.fixture
def proxy(upstream: Upstream) -> Iterator[FaultProxy]:
    with running_proxy("127.0.0.1", upstream.port) as proxy:
        yield proxy


async def connect(proxy: FaultProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", proxy.port)


async def echo(proxy: FaultProxy, line: bytes = b"hello\n") -> bytes:
    reader, writer = await connect(proxy)
    try:
        writer.write(line)
        return await asyncio.wait_for(reader.readline(), 2)
    finally:
        writer.close()


async def test_pass_forwards_both_ways(proxy: FaultProxy, upstream: Upstream) -> None:
    assert await echo(proxy) == b"hello\n"
    assert upstream.received == 6
    assert proxy.stats.accepted == 1 and proxy.stats.bytes_to_client == 6


async def test_latency_delays_each_answer(proxy: FaultProxy) -> None:
    proxy.latency(0.3)
    started = time.monotonic()
    assert await echo(proxy) == b"hello\n"
    assert time.monotonic() - started >= 0.3
    proxy.pass_through()
    started = time.monotonic()
    assert await echo(proxy) == b"hello\n"
    assert time.monotonic() - started < 0.3


async def test_drop_refuses_new_and_resets_open_connections(proxy: FaultProxy) -> None:
    reader, writer = await connect(proxy)
    writer.write(b"one\n")
    assert await asyncio.wait_for(reader.readline(), 2) == b"one\n"
    proxy.drop()
    with pytest.raises(ConnectionError):  # reset: no clean end of stream
        writer.write(b"two\n")
        await writer.drain()
        if not await asyncio.wait_for(reader.read(100), 2):
            raise ConnectionResetError("closed")
    writer.close()
    with pytest.raises(ConnectionRefusedError):
        await connect(proxy)
    proxy.pass_through()  # listens again, on the same port
    assert await echo(proxy) == b"hello\n"


async def test_reset_after_cuts_an_answer_with_rst(proxy: FaultProxy) -> None:
    proxy.reset_after(1000)
    reader, writer = await connect(proxy)
    writer.write(b"big\n")
    received = b""
    with pytest.raises(ConnectionResetError):
        while chunk := await asyncio.wait_for(reader.read(65536), 2):
            received += chunk
    writer.close()
    assert len(received) <= 1000  # never more than allowed (the RST may drop some)
    assert proxy.stats.resets == 1
    # An answer that fits passes; the count is per connection and per switch.
    assert await echo(proxy) == b"hello\n"
    proxy.pass_through()
    reader, writer = await connect(proxy)
    writer.write(b"big\n")
    assert await asyncio.wait_for(reader.readexactly(len(ANSWER)), 2) == ANSWER
    writer.close()


async def test_reset_every_counts_the_bytes_of_all_connections(proxy: FaultProxy) -> None:
    proxy.reset_every(10)
    assert await echo(proxy, b"four\n") == b"four\n"  # 5 bytes, 5 left
    with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
        await echo(proxy, b"seven!\n")  # on another connection: cut after 5
    assert proxy.stats.resets == 1
    assert await echo(proxy, b"ten chars\n") == b"ten chars\n"  # a new count of 10
    with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
        await echo(proxy, b"x\n")


async def test_blackhole_accepts_reads_and_never_answers(
    proxy: FaultProxy, upstream: Upstream
) -> None:
    reader, writer = await connect(proxy)
    writer.write(b"before\n")
    assert await asyncio.wait_for(reader.readline(), 2) == b"before\n"
    proxy.blackhole()
    writer.write(b"lost\n")  # on an open connection
    await writer.drain()
    fresh_reader, fresh_writer = await connect(proxy)  # a new one is accepted
    fresh_writer.write(b"lost too\n")
    await fresh_writer.drain()
    for silent in (reader, fresh_reader):
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(silent.read(100), 0.5)
    assert upstream.received == len(b"before\n")  # nothing went through
    assert proxy.stats.blackholed == 2
    proxy.pass_through()
    assert await echo(proxy) == b"hello\n"  # new connections flow again
    with pytest.raises(TimeoutError):  # the blackholed ones stay silent
        await asyncio.wait_for(reader.read(100), 0.3)
    writer.close()
    fresh_writer.close()
