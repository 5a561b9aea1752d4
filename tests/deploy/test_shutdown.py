"""Graceful shutdown of a real ``itemstore serve`` process: SIGTERM while
writes are in flight loses no acknowledged write."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from tests.deploy.deploy_support import Service, StartService, free_port

WRITERS = 16
ACKED_BEFORE_SIGTERM = 300


def serve_env(tmp_path: Path, workers: int) -> dict[str, str]:
    return dict(
        os.environ,
        ITEMSTORE_PORT=str(free_port()),
        ITEMSTORE_SQLITE_PATH=str(tmp_path / "items.sqlite3"),
        ITEMSTORE_WORKERS=str(workers),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )


async def write_until_refused(
    service: Service,
    acked: dict[str, dict[str, int]],
    after_sigterm: list[str],
    sigterm_sent: asyncio.Event,
) -> None:
    """WRITERS loops, each PUTting new keys one after another until the
    server stops answering; records every write it acknowledged."""

    async def writer(session: aiohttp.ClientSession, number: int) -> None:
        for n in range(1_000_000):
            key, value = f"w{number}-{n}", {"writer": number, "n": n}
            try:
                async with session.put(
                    f"{service.url}/collections/s/items/{key}", json=value
                ) as answer:
                    await answer.read()
                    if answer.status not in (200, 201):
                        return
            except (TimeoutError, aiohttp.ClientError):
                return  # the server has gone: stop writing
            acked[key] = value
            if sigterm_sent.is_set():
                after_sigterm.append(key)

    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(writer(session, number) for number in range(WRITERS)))


async def read_back(service: Service, keys: list[str]) -> dict[str, object]:
    found: dict[str, object] = {}
    limit = asyncio.Semaphore(WRITERS)

    async def get(session: aiohttp.ClientSession, key: str) -> None:
        async with limit, session.get(f"{service.url}/collections/s/items/{key}") as answer:
            if answer.status == 200:
                found[key] = await answer.json()

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(get(session, key) for key in keys))
    return found


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_during_writes_keeps_every_acknowledged_write(
    workers: int, start_service: StartService, tmp_path: Path
) -> None:
    command = ["itemstore", "serve"]
    env = serve_env(tmp_path, workers)
    service = await asyncio.to_thread(start_service, command, env, tmp_path)

    acked: dict[str, dict[str, int]] = {}
    after_sigterm: list[str] = []
    sigterm_sent = asyncio.Event()
    writing = asyncio.create_task(write_until_refused(service, acked, after_sigterm, sigterm_sent))
    async with asyncio.timeout(30):
        while len(acked) < ACKED_BEFORE_SIGTERM:
            assert not writing.done(), service.output()
            await asyncio.sleep(0.01)
    service.process.send_signal(signal.SIGTERM)
    sigterm_sent.set()
    await asyncio.wait_for(writing, 40)
    exit_code = await asyncio.to_thread(service.process.wait, 40)
    assert exit_code == 0, service.output()
    # Writes were still being sent when the signal came; the ones the server
    # had taken in were finished and answered before it exited.
    assert after_sigterm, "no write was answered after SIGTERM: nothing was in flight"

    # Same file, new process: every acknowledged write is there, as written.
    restarted = await asyncio.to_thread(start_service, command, serve_env(tmp_path, 1), tmp_path)
    found = await read_back(restarted, list(acked))
    missing = sorted(set(acked) - set(found))
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged writes lost: {missing[:10]}"
    assert found == acked


def _worker_pids(parent: int) -> list[int]:
    """The server workers among a process's children (not multiprocessing's
    resource tracker)."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    pids = []
    for pid in children:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:  # ended since the list was read
            continue
        if b"resource_tracker" not in cmdline:
            pids.append(int(pid))
    return pids


def _sigterm_in(pid: int, mask: str) -> bool:
    """Whether SIGTERM is in the process's signal ``mask`` now: ``SigCgt``
    (a handler is installed) or ``SigBlk`` (held back)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{mask}:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc (Linux)")
@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_while_starting_stops_cleanly(workers: int, tmp_path: Path) -> None:
    # The signal comes while the server process (one worker) or the workers
    # (two, once the parent handles SIGTERM and forwards it) are still
    # starting: importing, opening the file, before their own handlers are in
    # place. It must stop the service as cleanly as a later one, not kill a
    # process outright (exit 143).
    log = tmp_path / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            ["itemstore", "serve"], env=serve_env(tmp_path, workers), stdout=sink, stderr=sink
        )
    started: list[int] = []
    spawned = workers if workers > 1 else 0  # worker processes besides this one
    try:
        deadline = time.monotonic() + 20
        # One worker: once the process holds SIGTERM back. Two: once the
        # parent handles it and both workers are spawned.
        while True:
            assert time.monotonic() < deadline and process.poll() is None, log.read_text()
            if workers == 1 and _sigterm_in(process.pid, "SigBlk"):
                break
            if workers > 1 and _sigterm_in(process.pid, "SigCgt"):
                started = _worker_pids(process.pid)
                if len(started) == spawned:
                    break
            time.sleep(0.001)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text()
    finally:
        for pid in [process.pid, *started]:
            if Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGKILL)
        process.wait()


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc (Linux)")
def test_a_dead_worker_stops_the_service_with_a_failure(
    start_service: StartService, tmp_path: Path
) -> None:
    service = start_service(["itemstore", "serve"], serve_env(tmp_path, 2), tmp_path)
    workers = _worker_pids(service.process.pid)
    assert len(workers) == 2, service.output()
    os.kill(workers[0], signal.SIGKILL)
    assert service.process.wait(timeout=30) == 128 + signal.SIGKILL, service.output()
    assert f"worker {workers[0]} ended" in service.output()
    assert all(not Path(f"/proc/{pid}").exists() for pid in workers)
