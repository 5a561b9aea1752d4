"""The DynamoDB client's HTTP/1.1 pool, against a scripted TCP server on a
real socket: it answers each request with the bytes a test gives, so the
shapes a real endpoint may send (chunked bodies, ``Connection: close``, a
connection dropped halfway) can be produced on purpose."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from itemstore_service.backends.dynamodb_http import (
    ConnectFailed,
    ConnectionBroken,
    HTTPPool,
)

HEAD = b"POST / HTTP/1.1\r\nhost: test\r\ncontent-length: 2\r\n\r\n"


class HangUp(bytes):
    """Bytes to send before closing the connection."""


Reply = Callable[[int], bytes | None]  # request number -> bytes to send (None: hang up)


def ok(body: bytes, *extra: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n" % len(body)
    return head + b"".join(line + b"\r\n" for line in extra) + b"\r\n" + body


class Scripted:
    """Counts connections and requests; answers request n with ``reply(n)``."""

    def __init__(self, reply: Reply) -> None:
        self.reply, self.requests, self.connections = reply, 0, 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                await reader.readexactly(2)
                self.requests += 1
                answer = self.reply(self.requests)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                if isinstance(answer, HangUp):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


Serve = Callable[[Reply], Awaitable[tuple[Scripted, str]]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[asyncio.Server] = []

    async def start(reply: Reply) -> tuple[Scripted, str]:
        script = Scripted(reply)
        server = await asyncio.start_server(script.handle, "127.0.0.1", 0)
        servers.append(server)
        return script, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


MakePool = Callable[..., HTTPPool]


@pytest.fixture
async def make_pool() -> AsyncIterator[MakePool]:
    """``HTTPPool(...)``, each one closed after the test."""
    pools: list[HTTPPool] = []

    def make(url: str, **options: Any) -> HTTPPool:
        pools.append(HTTPPool(url, **options))
        return pools[-1]

    yield make
    for pool in pools:
        await pool.close()


async def post(pool: HTTPPool, within: float = 2.0) -> tuple[int, bytes]:
    answer = await pool.post(HEAD, b"{}", connect_timeout=1.0, within=within)
    return answer.status, answer.body


async def test_one_connection_serves_calls_in_turn(serve: Serve, make_pool: MakePool) -> None:
    script, url = await serve(lambda n: ok(b'{"n":%d}' % n, b"x-amz-crc32: 7"))
    pool = make_pool(url, limit=4)
    assert [await post(pool) for _ in range(3)] == [(200, b'{"n":%d}' % n) for n in (1, 2, 3)]
    assert script.connections == 1
    answer = await pool.post(HEAD, b"{}", connect_timeout=1, within=1)
    assert answer.headers["x-amz-crc32"] == "7"


async def test_chunked_answer_is_read_whole(serve: Serve, make_pool: MakePool) -> None:
    chunked = b"HTTP/1.1 400 Bad\r\ntransfer-encoding: chunked\r\n\r\n"
    chunked += b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    script, url = await serve(lambda n: chunked)
    pool = make_pool(url, limit=1)
    assert await post(pool) == (400, b"abcde")
    assert await post(pool) == (400, b"abcde")
    assert script.connections == 1


async def test_connection_close_is_honoured(serve: Serve, make_pool: MakePool) -> None:
    script, url = await serve(lambda n: ok(b"{}", b"connection: close"))
    pool = make_pool(url, limit=1)
    for _ in range(3):
        assert await post(pool) == (200, b"{}")
    assert script.connections == 3
    script.reply = lambda n: HangUp(ok(b"{}"))  # closes an idle keep-alive connection
    assert await post(pool) == (200, b"{}")
    await asyncio.sleep(0.05)
    assert await post(pool) == (200, b"{}")  # on a new connection, not the closed one
    assert script.connections == 5


async def test_dropped_connection_fails_the_call_and_is_not_reused(
    serve: Serve, make_pool: MakePool
) -> None:
    half = HangUp(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{}")
    script, url = await serve(lambda n: {1: None, 2: half}.get(n, ok(b"{}")))
    pool = make_pool(url, limit=1)
    with pytest.raises(ConnectionBroken, match="closed by the server"):
        await post(pool)  # hung up before answering
    with pytest.raises(ConnectionBroken, match="closed by the server"):
        await post(pool)  # hung up halfway through the body
    assert await post(pool) == (200, b"{}")
    assert script.connections == 3


async def test_unreadable_answer_fails_the_call(serve: Serve, make_pool: MakePool) -> None:
    _, url = await serve(lambda n: b"SMTP ready\r\n\r\n")
    pool = make_pool(url, limit=1)
    with pytest.raises(ConnectionBroken, match="unreadable answer"):
        await post(pool)


async def test_timeout_closes_the_connection(serve: Serve, make_pool: MakePool) -> None:
    late: list[bytes] = []
    script, url = await serve(lambda n: late.pop() if late else b"")  # request 1: no answer
    pool = make_pool(url, limit=1)
    with pytest.raises(TimeoutError):
        await post(pool, within=0.1)
    late.append(ok(b"{}"))
    assert await post(pool) == (200, b"{}")
    assert script.connections == 2  # the first one's answer may still come: not reused


async def test_at_most_limit_connections_and_the_rest_wait(
    serve: Serve, make_pool: MakePool
) -> None:
    script, url = await serve(lambda n: ok(b"{}"))
    pool = make_pool(url, limit=2)
    answers = await asyncio.gather(*(post(pool) for _ in range(10)))
    assert answers == [(200, b"{}")] * 10
    assert script.connections == 2


async def test_nothing_listening_is_connect_failed(make_pool: MakePool) -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    pool = make_pool(f"http://127.0.0.1:{port}/", limit=1)
    with pytest.raises(ConnectFailed):
        await post(pool)
    with pytest.raises(ConnectFailed):  # the failed attempt gave its place back
        await post(pool)


async def test_a_connection_idle_too_long_is_not_used(serve: Serve, make_pool: MakePool) -> None:
    """A connection a NAT or load balancer may have dropped silently (idle
    past ``keep_alive``) is closed, and the call goes out on a new one."""
    script, url = await serve(lambda n: ok(b"{}"))
    pool = make_pool(url, limit=1, keep_alive=0.05)
    assert await post(pool) == (200, b"{}")
    assert await post(pool) == (200, b"{}")
    assert script.connections == 1
    await asyncio.sleep(0.1)
    assert await post(pool) == (200, b"{}")
    assert script.connections == 2


def self_signed(tmp: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for localhost, and a client
    context that trusts it (and only it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (tmp / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
    return server, ssl.create_default_context(cafile=tmp / "cert.pem")


async def test_https_checks_the_certificate_and_keeps_the_connection(
    tmp_path: Path, make_pool: MakePool
) -> None:
    server_tls, client_tls = self_signed(tmp_path)
    script = Scripted(lambda n: ok(b'{"n":%d}' % n))
    server = await asyncio.start_server(script.handle, "127.0.0.1", 0, ssl=server_tls)
    port = server.sockets[0].getsockname()[1]
    try:
        pool = make_pool(f"https://localhost:{port}/", limit=1, tls=client_tls)
        assert await post(pool) == (200, b'{"n":1}')
        assert await post(pool) == (200, b'{"n":2}')
        assert script.connections == 1
        untrusting = make_pool(f"https://localhost:{port}/", limit=1)  # the system's CAs
        with pytest.raises(ConnectFailed, match="CERTIFICATE_VERIFY_FAILED"):
            await post(untrusting)
    finally:
        server.close()
        await server.wait_closed()


async def test_a_caller_that_gives_up_waiting_leaves_its_turn_to_the_next(
    serve: Serve, make_pool: MakePool
) -> None:
    """With the one connection busy, two callers wait; the first is cancelled
    (its request's deadline passed): the second gets the connection."""
    release = asyncio.Event()
    script, url = await serve(lambda n: ok(b'{"n":%d}' % n))
    pool = make_pool(url, limit=1)

    async def slow_first() -> tuple[int, bytes]:
        connection = await pool._take(1.0)  # hold the one connection until released
        await release.wait()
        pool._give_back(connection)
        return 0, b""

    holder = asyncio.create_task(slow_first())
    await asyncio.sleep(0.05)
    first, second = asyncio.create_task(post(pool)), asyncio.create_task(post(pool))
    await asyncio.sleep(0.05)
    assert len(pool._waiting) == 2
    first.cancel()
    release.set()
    await holder
    assert await second == (200, b'{"n":1}')
    assert first.cancelled() and script.connections == 1


async def test_closing_the_pool_fails_the_callers_waiting_for_a_connection(
    serve: Serve, make_pool: MakePool
) -> None:
    """With the one connection busy and a caller waiting for it, close():
    the call in flight fails (its connection is closed), the waiting one at
    once (not at its connect timeout), and so does any call made later."""
    _, url = await serve(lambda n: b"")  # never answers
    pool = make_pool(url, limit=1)
    in_flight = asyncio.create_task(post(pool, within=30))
    await asyncio.sleep(0.05)
    waiting = asyncio.create_task(pool.post(HEAD, b"{}", connect_timeout=30, within=30))
    await asyncio.sleep(0.05)
    assert len(pool._waiting) == 1
    await pool.close()
    async with asyncio.timeout(1):
        with pytest.raises(ConnectionBroken):
            await in_flight
        with pytest.raises(ConnectFailed, match="pool was closed"):
            await waiting
    with pytest.raises(ConnectFailed, match="pool is closed"):
        await post(pool)
