"""The processes of the fault tests, each in its own process so that it can be
stopped and continued: an ``itemstore serve`` (the DynamoDB servers come from
``bench.dynamodb_local``); and
``paused``, which stops a process (SIGSTOP) and always continues it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_for(url: str, process: subprocess.Popen[bytes], what: str, seconds: float = 20) -> None:
    """Wait until ``url`` answers 200."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode} before it was ready")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} was not ready within {seconds} s")


def _stop(process: subprocess.Popen[bytes], seconds: float = 20) -> int:
    """SIGTERM (after SIGCONT, in case it is stopped), then SIGKILL if it lingers."""
    if process.poll() is None:
        process.send_signal(signal.SIGCONT)
        process.terminate()
    try:
        return process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise


@contextmanager
def paused(pid: int) -> Iterator[None]:
    """The process ``pid`` stopped (SIGSTOP) for the block, continued
    (SIGCONT) after it whatever happens."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


@cache
def serve_flags() -> frozenset[str]:
    """The flags ``itemstore serve`` knows, read from its --help."""
    text = subprocess.run(
        [sys.executable, "-m", "itemstore_service", "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return frozenset(word.rstrip(",") for word in text.split() if word.startswith("--"))


@contextmanager
def running_itemstore(flags: Sequence[str], log: Path) -> Iterator[str]:
    """``itemstore serve`` with ``flags`` on a free port; yields its URL once
    every worker listens (the start-up line, printed then) and /readyz answers
    200; stops it with SIGTERM and checks it exited cleanly. Its log goes to
    ``log``."""
    port = free_port()
    command = [sys.executable, "-m", "itemstore_service", "serve", "--port", str(port)]
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            [*command, "--log-level", "warning", *flags],
            stdout=subprocess.PIPE,  # the start-up line only
            stderr=log_file,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            assert process.stdout is not None
            started = process.stdout.readline()  # once every worker listens
            assert started.startswith(b"itemstore "), (started, log.read_text())
            _wait_for(url + "/readyz", process, "itemstore serve")
            yield url
        finally:
            code = _stop(process)
            if process.stdout is not None:
                process.stdout.close()
            assert code == 0, log.read_text()
