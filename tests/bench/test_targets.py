"""Running another source tree of itemstore, and the PUT header of ``--prefer-minimal``."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bench.run import parse_args
from bench.targets import ROOT, check_source, child_env, describe_source, source_paths
from bench.wrk_driver import find_wrk, run_wrk, wrk_command

WRK = find_wrk()


def make_tree(root: Path, with_wire: bool) -> Path:
    """A source tree whose itemstore_service says where it was imported from."""
    package = root / "service" / "itemstore_service"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (root / "client").mkdir()
    if with_wire:
        (root / "wire").mkdir()
    return root


@pytest.mark.parametrize("with_wire", [True, False])
def test_a_source_tree_comes_first_on_the_children_path(tmp_path: Path, with_wire: bool) -> None:
    tree = make_tree(tmp_path / "older", with_wire)
    expected = [tree / "service", tree / "client", *([tree / "wire"] if with_wire else [])]
    assert source_paths(tree) == expected
    env = child_env(tree)
    assert env["PYTHONPATH"].split(":")[: len(expected) + 1] == [*map(str, expected), str(ROOT)]
    assert env["AWS_ACCESS_KEY_ID"] == "testing"
    # This checkout's service is on the path too (installed or in PYTHONPATH): the tree wins.
    done = subprocess.run(
        [sys.executable, "-c", "import itemstore_service; print(itemstore_service.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert Path(done.stdout.strip()) == tree / "service" / "itemstore_service" / "__init__.py"


def test_a_folder_without_the_service_is_refused(tmp_path: Path) -> None:
    problem = check_source(tmp_path)
    assert problem is not None and "service/itemstore_service" in problem
    assert check_source(ROOT) is None
    assert describe_source(tmp_path) == tmp_path.name  # not a git checkout


def test_compare_src_adds_the_compare_target_and_compare_needs_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings, _, _ = parse_args(["--compare-src", str(ROOT)])
    assert settings.targets == ("dict", "itemstore", "nocoalesce", "compare")
    assert settings.source_of("compare") == ROOT and settings.source_of("itemstore") is None
    with pytest.raises(SystemExit):
        parse_args(["--targets", "itemstore,compare"])
    assert "compare needs --compare-src" in capsys.readouterr().err


class PreferRecorder(BaseHTTPRequestHandler):
    """Answers every PUT 204 and records its Prefer header."""

    seen: list[str | None]

    def do_PUT(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append(self.headers.get("Prefer"))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """wrk drops its connections at the end, mid-request: not worth a traceback."""


@pytest.fixture
def recorder() -> Iterator[tuple[int, list[str | None]]]:
    seen: list[str | None] = []
    handler = type("Handler", (PreferRecorder,), {"seen": seen, "protocol_version": "HTTP/1.1"})
    server = QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.mark.skipif(WRK is None, reason="wrk is not installed (apt-get install -y wrk)")
@pytest.mark.parametrize("prefer_minimal", [True, False])
def test_prefer_minimal_puts_send_the_header(
    recorder: tuple[int, list[str | None]], prefer_minimal: bool
) -> None:
    assert WRK is not None
    port, seen = recorder
    argv = wrk_command(
        WRK,
        "write",
        f"http://127.0.0.1:{port}",
        duration_s=1,
        connections=2,
        threads=1,
        collection="bench",
        keys=100,
        value_bytes=100,
        prefer_minimal=prefer_minimal,
    )
    result, _ = run_wrk(argv, 1)
    assert result.requests > 0 and result.errors == 0
    assert seen and set(seen) == {"return=minimal" if prefer_minimal else None}
