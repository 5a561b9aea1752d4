"""Raw-socket helpers for tests of what only a real listening socket shows
(timeouts, connection caps, memory), on :func:`tests.live_service.serve`."""

from __future__ import annotations

import socket
import time


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def seconds_until_closed(sock: socket.socket, limit: float) -> float:
    """Read (and drop) what ``sock`` receives until the server closes it;
    the seconds that took. Raises TimeoutError when it is still open after ``limit``."""
    start = time.monotonic()
    sock.settimeout(limit)
    try:
        while sock.recv(1 << 16):
            if time.monotonic() - start > limit:
                raise TimeoutError
    except ConnectionResetError:
        pass
    except TimeoutError:
        raise TimeoutError(f"still open after {limit} s") from None
    return time.monotonic() - start
