"""Helpers of the deployment tests: the deployment files as parsed data, and
real ``itemstore serve`` processes started the way those files start them.

Nothing here repeats what the files say: the image's environment, command and
health check come from the Dockerfile, the compose service's from
docker-compose.yml. Only what a container runtime itself would change is
translated: the image's virtualenv is this interpreter's, its working
directory is a temporary one, and its port is a free local one.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
IMAGE_VENV = "/opt/venv"  # where the Dockerfile's builder stage puts the virtualenv


@dataclass
class Stage:
    """What the final stage of the Dockerfile sets up."""

    env: dict[str, str] = field(default_factory=dict)
    cmd: list[str] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)
    workdir: str = "/"
    user: str = ""
    expose: list[int] = field(default_factory=list)
    copies: list[list[str]] = field(default_factory=list)


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def _expand(value: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), ""), value)


def parse_dockerfile(path: Path) -> list[Stage]:
    """Every stage of the Dockerfile (the last one is the image)."""
    stages: list[Stage] = []
    for word, args in _instructions(path.read_text()):
        if word == "FROM":
            stages.append(Stage())
            continue
        stage = stages[-1]
        if word == "ENV":
            for pair in shlex.split(args):
                name, _, value = pair.partition("=")
                stage.env[name] = _expand(value, {**stage.env, "PATH": "$PATH"})
        elif word == "CMD":
            stage.cmd = json.loads(args)
        elif word == "HEALTHCHECK":
            _, _, command = args.partition("CMD ")
            stage.healthcheck = json.loads(command)
        elif word == "WORKDIR":
            stage.workdir = args
        elif word == "USER":
            stage.user = args
        elif word == "EXPOSE":
            stage.expose = [int(port.split("/")[0]) for port in args.split()]
        elif word == "COPY":
            stage.copies.append(shlex.split(args))
    return stages


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def native_env(image_env: dict[str, str], workdir: str, cwd: Path) -> dict[str, str]:
    """The image's variables as they apply on this machine: its virtualenv is
    this interpreter's and its working directory is ``cwd``."""
    env = dict(os.environ)
    venv = str(Path(sys.executable).parent.parent)
    for name, value in image_env.items():
        value = value.replace(IMAGE_VENV, venv).replace("$PATH", os.environ.get("PATH", ""))
        if workdir != "/" and value.startswith(workdir + "/"):
            value = str(cwd / value[len(workdir) + 1 :])
        env[name] = value
    return env


def native_command(argv: list[str], env: dict[str, str]) -> list[str]:
    """``argv`` with its program found on ``env``'s PATH (``python`` is this
    interpreter, which is the one the image's virtualenv stands for)."""
    if argv[0] == "python":
        return [sys.executable, *argv[1:]]
    import shutil

    found = shutil.which(argv[0], path=env["PATH"])
    assert found, f"{argv[0]} is not installed on PATH={env['PATH']}"
    return [found, *argv[1:]]


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            status: int = answer.status
            return status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@dataclass
class Service:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def wait_until_healthy(service: Service, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise AssertionError(f"itemstore exited early:\n{service.output()}")
        try:
            if http_get(service.url + "/healthz", timeout=1.0)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"itemstore did not answer /healthz in {timeout} s:\n{service.output()}")


def stop(service: Service, timeout: float = 30.0) -> int:
    """SIGTERM, then wait for the exit code (killed if it does not exit)."""
    if service.process.poll() is None:
        service.process.send_signal(signal.SIGTERM)
    try:
        return service.process.wait(timeout)
    except subprocess.TimeoutExpired:
        service.process.kill()
        service.process.wait()
        raise AssertionError(
            f"itemstore ignored SIGTERM for {timeout} s:\n{service.output()}"
        ) from None


StartService = Callable[[list[str], dict[str, str], Path], Service]
