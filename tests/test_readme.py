"""The README says what the service does: its curl tour covers every data
route, and each of its examples runs on its own against a real
`itemstore serve`, emptied first and again on what it left, and gets only
the errors it announces; its Python example runs as written, on its own."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from itemstore import Client
from itemstore_service.app import create_app
from itemstore_service.config import Config
from tests.live_service import itemstore_serve, serve

README = Path(__file__).resolve().parents[1] / "README.md"
DOC_URL = "http://127.0.0.1:8080"
OPS_ROUTES = {"/healthz", "/readyz", "/metrics"}  # documented in docs/deploy.md
CONSOLE_ROUTES = {"/console", "/console/", "/console/{file}"}  # docs/console.md
KEY_ROUTES = {"/keys", "/keys/{id}"}  # in the access keys example, on a service with a token
ACCESS_EXAMPLE_URL = "B=${B:-http://127.0.0.1:8080}"


def blocks(language: str) -> list[str]:
    text = README.read_text(encoding="utf-8")
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def curl_tour() -> str:
    (tour,) = [block for block in blocks("sh") if f"B={DOC_URL}" in block]
    return tour


def tour_examples() -> list[str]:
    """The tour's examples: its paragraphs after the one that sets B."""
    first, *examples = curl_tour().strip().split("\n\n")
    assert first == f"B={DOC_URL}"
    return examples


def empty(url: str) -> None:
    """Remove every item of the service at ``url``."""
    with Client(url) as client:
        for name in list(client.collections()):
            client.collection(name).clear()


def access_example() -> str:
    (example,) = [block for block in blocks("sh") if ACCESS_EXAMPLE_URL in block]
    return example


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with itemstore_serve(tmp_path_factory.mktemp("readme")) as url:
        yield url


@pytest.fixture
def service(running: str) -> str:
    """The running service, emptied."""
    empty(running)
    return running


def test_the_curl_tour_covers_every_data_route() -> None:
    tour_lines = [line for line in curl_tour().splitlines() if "curl" in line]
    access_lines = [line for line in access_example().splitlines() if "curl" in line]
    app = create_app(Config())
    for route in app.router.routes():
        resource = route.resource
        assert resource is not None
        template = resource.canonical
        if route.method == "HEAD" and template != "/collections/{name}/items/{key}":
            continue  # aiohttp adds HEAD to every GET route
        if template in OPS_ROUTES | CONSOLE_ROUTES:
            continue
        lines = access_lines if template in KEY_ROUTES else tour_lines
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


# Every curl of an example also prints its answer's status on a line of its own.
CURL_WITH_STATUS = "curl() { command curl -w '\\n<status %{http_code}>\\n' \"$@\"; }\n"


def run_example(example: str, url: str) -> tuple[str, list[int]]:
    """Run one example of the tour against ``url``: its output and the status
    of each answer it got."""
    script = f"set -e\nB={url}\n{CURL_WITH_STATUS}{example}"
    result = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=60, env=dict(os.environ)
    )
    assert result.returncode == 0, (example, result.stderr)
    return result.stdout, [int(s) for s in re.findall(r"<status (\d{3})>", result.stdout)]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("example", tour_examples(), ids=lambda e: e.split("\n")[0][2:40])
def test_each_curl_example_runs_on_its_own(service: str, example: str) -> None:
    for _ in range(2):  # on the emptied service, then on what the example left
        output, statuses = run_example(example, service)
        assert statuses, output
        errors = [status for status in statuses if status >= 400]
        assert all(str(status) in example for status in errors), (errors, output)
        assert all(status < 500 for status in statuses) and '"status":5' not in output


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_compare_and_set_example_sends_the_etag_as_it_came(service: str) -> None:
    (example,) = [e for e in tour_examples() if e.startswith("# compare-and-set")]
    output, statuses = run_example(example, service)
    assert statuses[-2:] == [200, 412], output
    assert '"code":"precondition-failed"' in output
    with Client(service) as client:
        assert client.collection("users")["ada"] == {"name": "Ada Lovelace"}


def test_the_python_example_runs(service: str) -> None:
    (example,) = [block for block in blocks("python") if "from itemstore import" in block]
    code = compile(example.replace(DOC_URL, service), str(README), "exec")
    for _ in range(2):  # on the emptied service, then on what the example left
        namespace: dict[str, object] = {"__name__": "readme"}
        exec(code, namespace)
        with Client(service) as client:
            users = client.collection("users")
            assert users["ada"] == {"email": "new@example.com"}
            assert users["eve"] == {"email": "eve@example.com"}
            assert namespace["value"] == {}
            assert "carl" not in users


def test_the_command_line_examples_run(tmp_path: Path) -> None:
    (example,) = [block for block in blocks("sh") if "itemstore export" in block]
    bin_dir = tmp_path / "bin"  # `itemstore` as installed: this checkout's command
    bin_dir.mkdir()
    shim = bin_dir / "itemstore"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m itemstore_service "$@"\n')
    shim.chmod(0o755)
    (tmp_path / "from").mkdir()
    (tmp_path / "to").mkdir()
    with itemstore_serve(tmp_path / "from") as source, itemstore_serve(tmp_path / "to") as target:
        script = "set -e\n" + example.replace(DOC_URL, source).replace(
            "http://127.0.0.1:8081", target
        )
        env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "ITEMSTORE_URL": source}
        for _ in range(2):  # on empty services, then on what the example left
            result = subprocess.run(
                ["bash", "-c", script],
                capture_output=True,
                text=True,
                timeout=120,
                env=env,
                cwd=tmp_path,
            )
            assert result.returncode == 0, result.stderr
            assert result.stdout.splitlines() == ["Ada", "users\t2", '"ada"']
            assert "users: 2 items at --from, 2 at --to" in result.stderr
        with Client(target) as client:
            users = client.collection("users")
            assert users.to_dict() == {
                "ada": {"name": "Ada", "visits": 12345678901234567890123},
                42: ["the answer"],
            }


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_access_keys_example_runs_as_described(tmp_path: Path) -> None:
    token = "readme-bootstrap-token"
    with serve(tmp_path, env={"ITEMSTORE_TOKEN": token}) as served:
        # Each call that prints its answer also prints its status.
        script = "set -e\n" + re.sub(
            r"^curl -s ", "curl -s -w ' %{http_code}\\n' ", access_example(), flags=re.MULTILINE
        )
        result = subprocess.run(
            ["bash", "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "B": served.url, "ITEMSTORE_TOKEN": token},
        )
    assert result.returncode == 0, result.stderr
    statuses = [line.rsplit(" ", 1)[-1] for line in result.stdout.splitlines()]
    # KEY=$(...) is captured, not printed: the lines are the calls after it.
    assert statuses == ["200", "200", "403", "403", "200", "200", "401"], result.stdout
