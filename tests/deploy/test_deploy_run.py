"""The image's and the compose service's exact command and environment start
a real service here, natively, and it answers /readyz; their health checks
pass against it. Everything is read from the Dockerfile and
docker-compose.yml (see deploy_support for the few translations a container
runtime makes)."""

from __future__ import annotations

import json
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tests.deploy.deploy_support import (
    Stage,
    StartService,
    free_port,
    http_get,
    native_command,
    native_env,
)


def run_healthcheck(argv: list[str], env: dict[str, str]) -> int:
    return subprocess.run(native_command(argv, env), env=env, timeout=10).returncode


def test_the_image_command_serves_and_its_healthcheck_passes(
    image: Stage, start_service: StartService, tmp_path: Path
) -> None:
    env = native_env(image.env, image.workdir, tmp_path)
    env["ITEMSTORE_PORT"] = str(free_port())  # as `docker run -p <port>:...` would
    assert env["ITEMSTORE_HOST"] == "0.0.0.0"

    # Nothing listens yet: the health check must be able to fail.
    assert run_healthcheck(image.healthcheck, env) != 0

    service = start_service(image.cmd, env, tmp_path)
    status, body = http_get(service.url + "/readyz")
    assert status == 200, body
    assert json.loads(body)["backend"] == "sqlite"
    assert run_healthcheck(image.healthcheck, env) == 0
    # The SQLite file is where the image says, under its working directory.
    assert Path(env["ITEMSTORE_SQLITE_PATH"]).is_file()
    assert Path(env["ITEMSTORE_SQLITE_PATH"]).parent == tmp_path


def put(url: str, value: Any) -> int:
    request = urllib.request.Request(
        url, data=json.dumps(value).encode(), method="PUT",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=5) as answer:
        status: int = answer.status
        return status


def metric(text: str, prefix: str) -> float:
    (line,) = [line for line in text.splitlines() if line.startswith(prefix)]
    return float(line.rsplit(" ", 1)[1])


def test_the_compose_service_serves_on_dynamodb(
    image: Stage,
    compose: dict[str, Any],
    moto_endpoint: str,
    start_service: StartService,
    tmp_path: Path,
) -> None:
    itemstore = compose["services"]["itemstore"]
    environment = {name: str(value) for name, value in itemstore["environment"].items()}
    env = native_env({**image.env, **environment}, image.workdir, tmp_path)
    # The endpoint names the compose service "dynamodb"; here moto stands in for it.
    endpoint = urllib.parse.urlsplit(env["ITEMSTORE_DYNAMODB_ENDPOINT"])
    assert endpoint.hostname in compose["services"]
    env["ITEMSTORE_DYNAMODB_ENDPOINT"] = moto_endpoint
    env["ITEMSTORE_DYNAMODB_TABLE"] += "-compose-" + tmp_path.name[-12:]
    env["ITEMSTORE_PORT"] = str(free_port())

    service = start_service(itemstore.get("command") or image.cmd, env, tmp_path)
    status, body = http_get(service.url + "/readyz")
    assert status == 200, body
    assert json.loads(body)["backend"] == "dynamodb"
    assert run_healthcheck(itemstore["healthcheck"]["test"][1:], env) == 0

    # The table was created at start: items go in and come back.
    assert put(service.url + "/collections/deploy/items/a", {"n": 1}) == 201
    status, body = http_get(service.url + "/collections/deploy/items/a")
    assert (status, json.loads(body)) == (200, {"n": 1})

    # Compose runs several workers on one port; each scrape, whichever worker
    # answers it, counts the requests of all of them.
    workers = int(env["ITEMSTORE_WORKERS"])
    assert workers > 1
    for _ in range(40):
        assert http_get(service.url + "/healthz")[0] == 200
    series = 'itemstore_http_requests_total{method="GET",route="/healthz",status="200"}'
    seen = {metric(http_get(service.url + "/metrics")[1].decode(), series) for _ in range(8)}
    assert len(seen) == 1, f"scrapes disagree: {seen}"
    assert seen.pop() >= 40
