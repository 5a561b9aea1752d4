"""Fixtures of the deployment tests (helpers live in deploy_support)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.deploy_support import (
    REPO,
    Service,
    Stage,
    StartService,
    native_command,
    parse_dockerfile,
    stop,
    wait_until_healthy,
)


@pytest.fixture(scope="session")
def image() -> Stage:
    """The final stage of the Dockerfile."""
    return parse_dockerfile(REPO / "Dockerfile")[-1]


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return loaded


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[StartService]:
    """Start a real server process (``argv`` with ``env``, ITEMSTORE_PORT
    telling where it listens) and wait until it answers; stopped at the end."""
    started: list[Service] = []

    def start(argv: list[str], env: dict[str, str], cwd: Path) -> Service:
        log = tmp_path / f"server-{len(started)}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                native_command(argv, env), env=env, cwd=cwd, stdout=sink, stderr=sink
            )
        service = Service(process, f"http://127.0.0.1:{env['ITEMSTORE_PORT']}", log)
        started.append(service)
        wait_until_healthy(service)
        return service

    yield start
    for service in started:
        if service.process.poll() is None:
            stop(service)
