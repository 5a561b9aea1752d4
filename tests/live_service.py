"""A real ``itemstore serve`` process on a free port, for tests that talk to
the service the way users do (curl, schema-driven fuzzing)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def itemstore_serve(data_dir: Path, log: Path | None = None) -> Iterator[str]:
    """Start the service on SQLite in ``data_dir``; yield its URL once ready;
    stop it with SIGTERM and check that it exited cleanly. Its log lines go to
    the file ``log`` when given."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "itemstore_service", "serve", "--port", str(port)]
    log_file = open(log, "wb") if log else None  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [*command, "--sqlite-path", str(data_dir / "items.sqlite3"), "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=log_file,
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
        yield url
    finally:
        process.terminate()
        assert process.wait(timeout=20) == 0
        if log_file:
            log_file.close()
