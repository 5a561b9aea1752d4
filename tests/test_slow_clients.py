"""Slow and hostile clients hold a connection for a bounded time, never the
service: a real ``itemstore serve`` process and raw sockets on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.guarded_service import connect, seconds_until_closed
from tests.live_service import Served, serve

READ_TIMEOUT = 1.0
WRITE_TIMEOUT = 1.0
SLACK = 1.5  # the timers' own resolution plus a busy shared machine


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    flags = ("--read-timeout", str(READ_TIMEOUT), "--write-timeout", str(WRITE_TIMEOUT))
    with serve(tmp_path_factory.mktemp("slow"), *flags) as served:
        yield served


def healthy(url: str) -> float:
    """Seconds a GET /healthz took (it must answer 200)."""
    start = time.monotonic()
    with urllib.request.urlopen(url + "/healthz", timeout=5) as answer:
        assert answer.status == 200
    return time.monotonic() - start


def test_a_head_sent_a_byte_at_a_time_is_closed_within_the_read_timeout(service: Served) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 100
    with connect(service.port) as sock:
        start = time.monotonic()
        with pytest.raises(OSError):  # the peer closed: a reset or a broken pipe
            for byte in head:
                sock.sendall(bytes([byte]))
                time.sleep(0.1)  # ten bytes a second: never a whole head in time
                assert time.monotonic() - start < READ_TIMEOUT + SLACK, "still open"
            sock.sendall(b"\r\n\r\n")
            assert sock.recv(1) == b"", "answered a head that took 10 s"  # closed: EOF
        assert time.monotonic() - start < READ_TIMEOUT + SLACK
    assert healthy(service.url) < 1


def test_a_connection_that_sends_nothing_is_closed_within_the_read_timeout(
    service: Served,
) -> None:
    with connect(service.port) as sock:
        assert seconds_until_closed(sock, READ_TIMEOUT + SLACK) < READ_TIMEOUT + SLACK


def test_a_body_that_trickles_is_closed_within_the_read_timeout(service: Served) -> None:
    head = (
        b"PUT /collections/slow/items/k HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    )
    with connect(service.port) as sock:
        sock.sendall(head + b'"')
        start = time.monotonic()
        with pytest.raises(OSError):
            for _ in range(99):
                time.sleep(0.1)
                sock.sendall(b"a")
                if time.monotonic() - start > READ_TIMEOUT + SLACK:
                    break
        assert time.monotonic() - start < READ_TIMEOUT + SLACK


def test_a_keep_alive_connection_between_requests_stays_open(service: Served) -> None:
    """The read timeout bounds a head once it has begun, not the idle time
    between requests (aiohttp's keep-alive timeout does that)."""
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    with connect(service.port) as sock:
        for _ in range(2):
            sock.sendall(request)
            assert b"200 OK" in sock.recv(4096)
            time.sleep(READ_TIMEOUT + 0.5)


def test_a_client_that_never_reads_is_closed_and_frees_its_memory(service: Served) -> None:
    value = "x" * (350 * 1024 - 2)
    put = urllib.request.Request(
        service.url + "/collections/big/items/v",
        data=json.dumps(value).encode(),
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(put, timeout=10).close()
    get = b"GET /collections/big/items/v HTTP/1.1\r\nHost: x\r\n\r\n"
    pipelined = 40
    before = service.rss_bytes()
    sockets = [connect(service.port) for _ in range(50)]
    try:
        for sock in sockets:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(get * pipelined)
        time.sleep(0.5)
        during = service.rss_bytes()
        assert healthy(service.url) < 1, "another client waited for the stuck ones"
        time.sleep(WRITE_TIMEOUT + SLACK)
        for sock in sockets:
            received = 0
            sock.settimeout(5)
            try:
                while chunk := sock.recv(1 << 20):
                    received += len(chunk)
            except ConnectionResetError:
                pass
            except TimeoutError:
                pytest.fail(f"still open after the write timeout, {received} bytes read")
            assert received < pipelined * len(value) / 2
    finally:
        for sock in sockets:
            sock.close()
    assert during - before < 100 * 1024 * 1024
    assert healthy(service.url) < 1


def test_connections_past_the_cap_are_answered_overloaded(tmp_path: Path) -> None:
    cap = 8
    flags = ("--max-connections", str(cap), "--read-timeout", "30")
    with serve(tmp_path, *flags) as served:
        waiting = [connect(served.port) for _ in range(cap)]  # each owes a head
        try:
            time.sleep(0.3)
            with connect(served.port) as extra:
                answer = extra.makefile("rb").read()
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 503 ")
            assert b"Retry-After: 1" in head
            assert json.loads(body)["code"] == "overloaded"
        finally:
            for sock in waiting:
                sock.close()
        time.sleep(0.3)
        assert healthy(served.url) < 1  # the cap counts open connections only


def test_an_idle_keep_alive_connection_makes_room_for_a_new_client(tmp_path: Path) -> None:
    cap = 4
    flags = ("--max-connections", str(cap), "--read-timeout", "30")
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    with serve(tmp_path, *flags) as served:
        idle = [connect(served.port) for _ in range(cap)]
        try:
            for sock in idle:
                sock.sendall(request)
                assert b"200 OK" in sock.recv(4096)
            assert healthy(served.url) < 1  # one idle connection was closed for it
            closed = 0
            for sock in idle:
                sock.settimeout(0.5)
                try:
                    closed += sock.recv(1) == b""
                except TimeoutError:
                    pass
                except ConnectionResetError:
                    closed += 1
            assert closed == 1
        finally:
            for sock in idle:
                sock.close()
