"""A real ``itemstore serve`` process on a free port, for tests that talk to
the service the way users do (curl, schema-driven fuzzing) and for what only a
real listening socket shows (timeouts, connection caps, memory)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
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
def serve(
    data_dir: Path, *flags: str, log: Path | None = None, env: Mapping[str, str] | None = None
) -> Iterator[Served]:
    """``itemstore serve`` on SQLite in ``data_dir`` on a free port of
    127.0.0.1 with ``flags`` (and ``env`` added to the environment), once
    /readyz answers; stopped with SIGTERM and checked to exit cleanly. Its log
    lines go to the file ``log`` when given."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "itemstore_service", "serve", "--port", str(port)]
    command += ["--sqlite-path", str(data_dir / "items.sqlite3"), "--log-level", "warning"]
    log_file = open(log, "wb") if log else None  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [*command, *flags],
        stdout=subprocess.DEVNULL,
        stderr=log_file,
        env={**os.environ, **(env or {})},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(url + "/readyz", timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("itemstore serve did not become ready")
        yield Served(url, port, process.pid)
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0
        if log_file:
            log_file.close()


@contextmanager
def itemstore_serve(data_dir: Path, log: Path | None = None) -> Iterator[str]:
    """:func:`serve` with no flags; yields the URL."""
    with serve(data_dir, log=log) as served:
        yield served.url
