"""Make the repository's ``bench`` package importable (it is not part of the distribution),
and start a real service for the benchmark tests that drive one."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture
def service_port(tmp_path: Path) -> Iterator[int]:
    """``itemstore serve`` on a free port with a fresh SQLite file."""
    # Imported here: ``bench`` is importable only once the path above is set.
    from bench.procs import Children, free_port
    from bench.targets import child_env

    port = free_port()
    argv = [
        sys.executable, "-m", "itemstore_service", "serve", "--host", "127.0.0.1",
        "--port", str(port), "--sqlite-path", str(tmp_path / "items.sqlite3"),
        "--log-level", "warning",
    ]  # fmt: skip
    with Children(tmp_path) as children:
        server = children.start("itemstore", argv, child_env())
        children.wait_http(server, port, "/", timeout=30)
        yield port
