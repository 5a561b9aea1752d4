"""What the benchmark runs for each target: settings, command lines, environments, start-up.

Targets:

* ``dict``: the ceiling, ``bench/dict_server.py``.
* ``itemstore``: ``itemstore serve`` from this checkout, or from ``--itemstore-src``.
* ``nocoalesce``: the same with ``--no-coalesce``.
* ``compare``: ``itemstore serve`` from another source tree (``--compare-src``), run in
  the same way and the same conditions as ``itemstore``, to compare two versions.

With the DynamoDB backend each itemstore target gets a DynamoDB implementation of its
own (moto or dynalite, ``bench/dynamodb_local.py``), started fresh with it.
"""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson

from bench import dynamodb_local
from bench.payload import COLLECTION, preload_batches
from bench.procs import HOST, Child, Children, free_port

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ("dict", "itemstore", "nocoalesce", "compare")
ITEMSTORE_TARGETS = ("itemstore", "nocoalesce", "compare")


@dataclass(frozen=True, slots=True)
class Settings:
    """One benchmark run's settings (``python -m bench.run --help`` tells each)."""

    backend: str
    workloads: tuple[str, ...]
    targets: tuple[str, ...]
    duration: int
    warmup: int
    connections: int
    threads: int
    workers: int
    keys: int
    value_bytes: int
    dynamodb_impl: str = "moto"
    itemstore_src: Path | None = None
    compare_src: Path | None = None
    prefer_minimal: bool = False
    rounds: int = 1

    def source_of(self, target: str) -> Path | None:
        """The source tree ``target`` runs from; None for this checkout."""
        return self.compare_src if target == "compare" else self.itemstore_src


def source_paths(src: Path) -> list[Path]:
    """The import roots of an itemstore source tree: service, client, and wire when present."""
    return [src / "service", src / "client", *([src / "wire"] if (src / "wire").is_dir() else [])]


def check_source(src: Path) -> str | None:
    """What makes ``src`` unusable as an itemstore source tree, or None."""
    if not (src / "service" / "itemstore_service" / "__init__.py").is_file():
        return f"{src} holds no service/itemstore_service package"
    return None


def describe_source(src: Path) -> str:
    """``src``'s git commit (short) and its folder name, for the report."""
    try:
        done = subprocess.run(
            ["git", "-C", str(src), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return src.name
    commit = done.stdout.strip()
    return f"{commit} ({src.name})" if done.returncode == 0 and commit else src.name


def child_env(src: Path | None = None) -> dict[str, str]:
    """Environment for children: itemstore importable from ``src`` (default: this
    checkout) before anything else, this checkout's ``bench`` importable, fake AWS
    credentials for the local DynamoDB."""
    env = dict(os.environ)
    paths = [str(p) for p in (*source_paths(src or ROOT), ROOT)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    # The DynamoDB endpoint is always a local server: never hand it real credentials.
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    env.pop("AWS_PROFILE", None)
    return env


def itemstore_command(
    settings: Settings, port: int, work_dir: Path, target: str, dynamodb_url: str | None
) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "itemstore_service",
        "serve",
        "--host",
        HOST,
        "--port",
        str(port),
        "--backend",
        settings.backend,
        "--workers",
        str(settings.workers),
        "--log-level",
        "warning",
    ]
    if settings.backend == "sqlite":
        argv += ["--sqlite-path", str(work_dir / f"{target}.sqlite3")]
    else:
        assert dynamodb_url is not None
        argv += [
            "--dynamodb-endpoint",
            dynamodb_url,
            "--dynamodb-table",
            f"bench-{target}",
            "--dynamodb-create-table",
        ]
    if target == "nocoalesce":
        argv.append("--no-coalesce")
    return argv


def dict_server_command(settings: Settings, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bench.dict_server",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(settings.workers),
        "--preload",
        str(settings.keys),
        "--value-bytes",
        str(settings.value_bytes),
    ]


def preload(port: int, keys: int, value_bytes: int, attempts: int = 5) -> None:
    """Put ``keys`` items through the batch endpoint, 100 ops per call; raise on any failure."""
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    path = f"/collections/{COLLECTION}/batch"
    headers = {"Content-Type": "application/json"}
    try:
        for body in preload_batches(keys, value_bytes):
            for attempt in range(attempts):
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                answer = response.read()
                # A backend still warming up may say 503: retry a few times.
                if response.status == 503 and attempt + 1 < attempts:
                    time.sleep(0.5 * (attempt + 1))
                    continue
                break
            if response.status != 200:
                raise RuntimeError(f"preload batch answered {response.status}: {answer[:500]!r}")
            statuses = {r["status"] for r in orjson.loads(answer)["results"]}
            if not statuses <= {200, 201}:
                raise RuntimeError(f"preload batch had item statuses {sorted(statuses)}")
    finally:
        conn.close()


@dataclass(frozen=True, slots=True)
class Running:
    """A started, preloaded target: its server, its port, its DynamoDB process if any."""

    server: Child
    port: int
    backend: Child | None


@contextmanager
def started_target(
    children: Children, settings: Settings, target: str, work_dir: Path
) -> Iterator[Running]:
    """Start one target (and its DynamoDB implementation), preload it; stop both afterwards."""
    env = child_env(settings.source_of(target) if target in ITEMSTORE_TARGETS else None)
    backend = None
    dynamodb_url = None
    try:
        if target != "dict" and settings.backend == "dynamodb":
            impl = settings.dynamodb_impl
            backend, dynamodb_url = dynamodb_local.start(children, impl, f"{impl}-{target}", env)
        port = free_port()
        if target == "dict":
            server = children.start(target, dict_server_command(settings, port), env)
        else:
            argv = itemstore_command(settings, port, work_dir, target, dynamodb_url)
            server = children.start(target, argv, env)
        try:
            children.wait_http(server, port, "/")
            preload(port, settings.keys, settings.value_bytes)
            yield Running(server, port, backend)
        finally:
            children.stop(server)
    finally:
        if backend is not None:
            children.stop(backend)
