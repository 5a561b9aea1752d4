"""The local DynamoDB implementations the benchmarks and the test suite run against,
each a process of its own.

* ``moto``: moto's server application with HTTP keep-alive (``bench/moto_keepalive.py``).
* ``dynalite``: dynalite (Node + LevelDB, in memory), the npm package installed in
  ``tests/dynalite/`` (``npm ci`` there; ``scripts/test`` does it when node is present),
  started by its ``serve.js``, which listens on a free port of 127.0.0.1 and prints it.

Both take any credentials: the benchmark hands them fake ones only.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from bench.procs import HOST, Child, Children, free_port

IMPLEMENTATIONS: Final = ("moto", "dynalite")
DYNALITE_DIR: Final = Path(__file__).resolve().parent.parent / "tests" / "dynalite"


def missing_reason(impl: str) -> str | None:
    """Why ``impl`` cannot run here, or None when it can."""
    if impl not in IMPLEMENTATIONS:
        return f"the DynamoDB implementation must be one of {', '.join(IMPLEMENTATIONS)}"
    if impl == "moto":
        return None
    if shutil.which("node") is None:
        return "dynalite needs node, which is not installed"
    if not (DYNALITE_DIR / "node_modules" / "dynalite").is_dir():
        return "dynalite is not installed: run `npm ci` in tests/dynalite (scripts/test does)"
    return None


def moto_command(port: int) -> list[str]:
    """moto with keep-alive on 127.0.0.1:``port`` (``bench`` must be importable)."""
    return [sys.executable, "-m", "bench.moto_keepalive", "--host", HOST, "--port", str(port)]


def _wait_for_port_line(child: Child, timeout: float) -> int:
    """The port dynalite's serve.js prints on its first line, once it listens."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = child.log_path.read_text(errors="replace")
        first = text.split("\n", 1)[0].strip()
        if "\n" in text and first.isdigit():
            return int(first)
        if child.proc.poll() is not None:
            raise RuntimeError(
                f"{child.name} exited with code {child.proc.returncode} before it listened:\n"
                f"{child.log_tail()}"
            )
        time.sleep(0.05)
    raise RuntimeError(f"{child.name} printed no port after {timeout:.0f}s:\n{child.log_tail()}")


def start(
    children: Children,
    impl: str,
    name: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> tuple[Child, str]:
    """Start ``impl`` as ``name`` (``env``: the whole environment, None for this one's)
    and wait until it answers; returns it and its endpoint URL."""
    reason = missing_reason(impl)
    if reason:
        raise RuntimeError(reason)
    if impl == "moto":
        port = free_port()
        child = children.start(name, moto_command(port), env)
        children.wait_http(child, port, "/moto-api/data.json", timeout=timeout)
    else:
        child = children.start(name, ["node", str(DYNALITE_DIR / "serve.js")], env)
        port = _wait_for_port_line(child, timeout)
    return child, f"http://{HOST}:{port}"


@contextmanager
def running(impl: str, env: Mapping[str, str] | None = None) -> Iterator[tuple[str, int]]:
    """``impl`` for the length of a ``with`` block: yields its endpoint URL and pid."""
    with (
        tempfile.TemporaryDirectory(prefix="itemstore-dynamodb-") as tmp,
        Children(Path(tmp)) as children,
    ):
        child, url = start(children, impl, impl, env)
        yield url, child.pid
