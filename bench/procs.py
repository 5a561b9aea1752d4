"""Child processes of the benchmark: start, wait until ready, measure memory, stop.

Every child runs in its own session (process group), so stopping it also stops the
workers it forked. ``Children`` remembers what it started and stops all of it on
exit, on an exception and on Ctrl-C; it never signals a process it did not start.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _parent_pids() -> dict[int, int]:
    """pid -> parent pid for every process visible in /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces: split after it.
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry.name)] = int(fields[1])
    return parents


def process_tree(root: int) -> list[int]:
    """``root`` and all its live descendants, root first."""
    parents = _parent_pids()
    tree = [root] if root in parents else []
    frontier = list(tree)
    while frontier:
        pid = frontier.pop()
        children = [child for child, parent in parents.items() if parent == pid]
        tree.extend(children)
        frontier.extend(children)
    return tree


def peak_rss_mib(pid: int) -> float | None:
    """Peak resident set size (VmHWM) of one process in MiB; None once it has gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def _is_helper(pid: int) -> bool:
    """True for multiprocessing's resource tracker, which serves no requests."""
    try:
        return b"resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True


def worker_peak_rss(root: int) -> dict[int, float]:
    """VmHWM per worker process of a server started as ``root``.

    A server that forks workers is a supervisor plus workers: the supervisor is left
    out. A server without children is its own single worker.
    """
    tree = process_tree(root)
    workers = [pid for pid in tree[1:] if not _is_helper(pid)] or tree[:1]
    peaks = {pid: peak_rss_mib(pid) for pid in workers}
    return {pid: rss for pid, rss in peaks.items() if rss is not None}


def http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """One GET to 127.0.0.1:port; returns (status, body)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@dataclass
class Child:
    """One started process (and its process group)."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Children:
    """The processes this benchmark started; a context manager that stops them all."""

    log_dir: Path
    started: list[Child] = field(default_factory=list)

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> Child:
        """Start ``argv`` in a new session, output to ``<log_dir>/<name>.log``."""
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                start_new_session=True,
            )
        child = Child(name, proc, log_path)
        self.started.append(child)
        return child

    def wait_http(self, child: Child, port: int, path: str, timeout: float = 60.0) -> None:
        """Wait until GET ``path`` answers 200; raise if the child dies or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if child.proc.poll() is not None:
                raise RuntimeError(
                    f"{child.name} exited with code {child.proc.returncode} before it was "
                    f"ready:\n{child.log_tail()}"
                )
            try:
                status, _ = http_get(port, path, timeout=1.0)
            except OSError:
                status = 0
            if status == 200:
                return
            time.sleep(0.1)
        raise RuntimeError(f"{child.name} not ready after {timeout:.0f}s:\n{child.log_tail()}")

    def stop(self, child: Child, grace: float = 15.0) -> None:
        """SIGTERM the child's process group, SIGKILL it after ``grace`` seconds."""
        if child in self.started:
            self.started.remove(child)
        if child.proc.poll() is None:
            self._signal_group(child, signal.SIGTERM)
            try:
                child.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self._signal_group(child, signal.SIGKILL)
                child.proc.wait(timeout=5)
        # Workers may outlive a supervisor that exited first: the group still names them.
        self._signal_group(child, signal.SIGKILL)

    @staticmethod
    def _signal_group(child: Child, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, sig)

    def stop_all(self) -> None:
        for child in reversed(list(self.started)):
            self.stop(child, grace=5.0)

    def __enter__(self) -> Children:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()
