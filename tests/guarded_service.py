"""A real ``itemstore serve`` process with chosen flags, for tests of what
only a real listening socket shows: timeouts, connection caps, memory."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Served:
    url: str
    port: int
    pid: int

    def rss_bytes(self) -> int:
        """The server's resident memory now."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS line")


@contextmanager
def serve(data_dir: Path, *flags: str) -> Iterator[Served]:
    """``itemstore serve`` on SQLite in ``data_dir`` on a free port of
    127.0.0.1 with ``flags``; stopped with SIGTERM, checked to exit cleanly."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "itemstore_service", "serve", "--port", str(port)]
    command += ["--sqlite-path", str(data_dir / "items.sqlite3"), "--log-level", "warning"]
    process = subprocess.Popen([*command, *flags], stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(url + "/healthz", timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("itemstore serve did not become ready")
        yield Served(url, port, process.pid)
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0


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
