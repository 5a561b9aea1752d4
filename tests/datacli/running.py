"""Running the data commands as users do: ``itemstore ...`` processes against
real ``itemstore serve`` processes (a SQLite file, or DynamoDB on moto)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from itemstore_wire.exactjson import loads
from tests.live_service import serve

Service = Callable[[], AbstractContextManager[str]]
"""Starts a service of its own per call; yields its URL."""


def itemstore(
    *args: str, url: str | None = None, stdin: bytes | Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[bytes]:
    """Run ``itemstore ARGS`` (``--url`` through ITEMSTORE_URL); ``stdin``
    is bytes, or a file given as stdin."""
    env = {k: v for k, v in os.environ.items() if k not in ("ITEMSTORE_URL", "ITEMSTORE_TOKEN")}
    if url:
        env["ITEMSTORE_URL"] = url
    command = [sys.executable, "-m", "itemstore_service", *args]
    if isinstance(stdin, Path):
        with stdin.open("rb") as file:
            return subprocess.run(
                command, stdin=file, capture_output=True, timeout=timeout, env=env
            )
    return subprocess.run(command, input=stdin, capture_output=True, timeout=timeout, env=env)


def json_lines(text: bytes) -> list[object]:
    return [loads(line) for line in text.splitlines() if line.strip()]


@contextmanager
def sqlite_service(data_dir: Path, *flags: str) -> Iterator[str]:
    with serve(data_dir, *flags) as served:
        yield served.url


@contextmanager
def moto_service(data_dir: Path, endpoint: str) -> Iterator[str]:
    table = f"itemstore-cli-{uuid.uuid4().hex}"
    flags = ["--backend", "dynamodb", "--dynamodb-endpoint", endpoint]
    flags += ["--dynamodb-table", table, "--dynamodb-create-table"]
    with serve(data_dir, *flags) as served:
        yield served.url
