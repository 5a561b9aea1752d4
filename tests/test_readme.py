"""The README says what the service does: its curl tour covers every data
route and runs without a server error against a real `itemstore serve`, and
its Python example runs as written."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from itemstore_service.app import create_app
from itemstore_service.config import Config
from tests.live_service import itemstore_serve

README = Path(__file__).resolve().parents[1] / "README.md"
DOC_URL = "http://127.0.0.1:8080"
OPS_ROUTES = {"/healthz", "/readyz", "/metrics"}  # documented in docs/deploy.md


def blocks(language: str) -> list[str]:
    text = README.read_text(encoding="utf-8")
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def curl_tour() -> str:
    (tour,) = [block for block in blocks("sh") if f"B={DOC_URL}" in block]
    return tour


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with itemstore_serve(tmp_path_factory.mktemp("readme")) as url:
        yield url


def test_the_curl_tour_covers_every_data_route() -> None:
    tour = curl_tour()
    lines = [line for line in tour.splitlines() if "curl" in line]
    app = create_app(Config())
    for route in app.router.routes():
        resource = route.resource
        assert resource is not None
        template = resource.canonical
        if route.method == "HEAD" and template != "/collections/{name}/items/{key}":
            continue  # aiohttp adds HEAD to every GET route
        if template in OPS_ROUTES:
            continue
        pattern = re.escape("$B" + template)
        pattern = re.sub(r"\\\{[a-z]+\\\}", "[^/ ?\"']+", pattern) + r"(?=[ ?\"']|$)"
        method = route.method
        assert any(
            re.search(pattern, line)
            and (
                f"-X {method}" in line
                or (method == "GET" and "-X" not in line and "-sI" not in line)
                or (method == "HEAD" and "-sI" in line)
            )
            for line in lines
        ), f"README's curl tour has no {method} {template}"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_curl_tour_runs_without_server_errors(service: str) -> None:
    script = "set -e\n" + curl_tour().replace(f"B={DOC_URL}", f"B={service}")
    result = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=60, env=dict(os.environ)
    )
    assert result.returncode == 0, result.stderr
    statuses = re.findall(r"HTTP/1\.1 (\d{3})", result.stdout)
    assert statuses and all(int(status) < 500 for status in statuses)
    assert "internal-error" not in result.stdout
    assert '"status":5' not in result.stdout
    assert '{"name":"Ada Lovelace"' not in result.stdout  # the If-Match placeholder fails
    assert '"code":"precondition-failed"' in result.stdout


def test_the_python_example_runs(service: str) -> None:
    (example,) = [block for block in blocks("python") if "from itemstore import" in block]
    namespace: dict[str, object] = {"__name__": "readme"}
    exec(compile(example.replace(DOC_URL, service), str(README), "exec"), namespace)
    from itemstore import Client

    users = Client(service).collection("users")
    assert users["ada"] == {"email": "new@example.com"}
    assert users["eve"] == {"email": "eve@example.com"}
    assert namespace["value"] == {}
    assert "carl" not in users
