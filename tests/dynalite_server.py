"""dynalite, a second DynamoDB implementation (Node + LevelDB, in memory), for
the suite and the benchmarks: ``tests/dynalite/`` holds its npm package, which
``scripts/test`` installs there with ``npm ci`` when node is present."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PACKAGE_DIR = Path(__file__).parent / "dynalite"


def missing_reason() -> str | None:
    """Why dynalite cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "dynalite needs node, which is not installed"
    if not (PACKAGE_DIR / "node_modules" / "dynalite").is_dir():
        return "dynalite is not installed: run `npm ci` in tests/dynalite (scripts/test does)"
    return None


@contextmanager
def running_dynalite() -> Iterator[tuple[str, int]]:
    """A dynalite server on 127.0.0.1 and a free port: yields its URL and pid."""
    reason = missing_reason()
    if reason:
        raise RuntimeError(reason)
    process = subprocess.Popen(
        ["node", str(PACKAGE_DIR / "serve.js")],
        cwd=PACKAGE_DIR,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the port, once it listens
        if not line.strip().isdigit():
            raise RuntimeError(f"dynalite did not start (exit code {process.poll()})")
        yield f"http://127.0.0.1:{int(line)}", process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
