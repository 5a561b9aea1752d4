"""The command line: flags, their ITEMSTORE_* variables, and clear refusals."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from itemstore_service.app import create_app
from itemstore_service.backends.registry import BACKENDS
from itemstore_service.cli import build_parser, config_from_args
from itemstore_service.config import Config, ConfigError


@contextmanager
def mock_env(**values: str) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in values.items():
            patch.setenv(name, value)
        yield


def parse(*argv: str) -> Config:
    return config_from_args(build_parser().parse_args(["serve", *argv]))


def test_defaults_are_the_embedded_sqlite_service_on_localhost() -> None:
    config = parse()
    assert (config.host, config.port, config.backend) == ("127.0.0.1", 8080, "sqlite")
    assert config.sqlite_path == "itemstore.sqlite3"
    assert config.coalesce and config.workers == 1
    assert config.console


def test_every_flag_is_read() -> None:
    config = parse(
        *("--host", "0.0.0.0", "--port", "9000", "--backend", "dynamodb"),
        *("--dynamodb-endpoint", "http://127.0.0.1:8000", "--dynamodb-region", "eu-west-1"),
        *("--dynamodb-table", "items", "--dynamodb-create-table", "--dynamodb-shards", "4"),
        *("--workers", "3", "--token", "t", "--no-coalesce", "--max-value-bytes", "1000"),
        *("--log-level", "debug", "--access-log", "--shutdown-timeout", "5", "--no-console"),
    )
    assert config == Config(
        host="0.0.0.0",
        port=9000,
        backend="dynamodb",
        dynamodb_endpoint="http://127.0.0.1:8000",
        dynamodb_region="eu-west-1",
        dynamodb_table="items",
        dynamodb_create_table=True,
        dynamodb_shards=4,
        workers=3,
        token="t",
        coalesce=False,
        log_level="debug",
        access_log=True,
        shutdown_timeout=5.0,
        console=False,
        limits=config.limits,
    )
    assert config.limits.max_value_bytes == 1000


def test_environment_variables_set_flags_and_flags_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ITEMSTORE_PORT", "9100")
    monkeypatch.setenv("ITEMSTORE_BACKEND", "dynamodb")
    monkeypatch.setenv("ITEMSTORE_DYNAMODB_CREATE_TABLE", "true")
    monkeypatch.setenv("ITEMSTORE_WORKERS", "2")
    config = parse("--workers", "4")
    assert (config.port, config.backend, config.dynamodb_create_table) == (9100, "dynamodb", True)
    assert config.workers == 4


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "0"], "--port"),
        (["--workers", "0"], "--workers"),
        (["--dynamodb-shards", "0"], "--dynamodb-shards"),
        (["--max-value-bytes", "500000"], "--max-value-bytes"),
    ],
)
def test_bad_values_are_refused_with_what_to_fix(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(*argv)


def test_a_config_made_in_code_is_refused_as_the_command_line_refuses_it() -> None:
    result = run_cli("serve", "--workers", "0")
    assert result.returncode == 2
    message = "--workers must be at least 1, not 0"
    assert result.stderr.endswith(f"error: {message}\n"), result.stderr
    with pytest.raises(ConfigError) as refused:
        create_app(Config(workers=0))
    assert str(refused.value) == message


def test_the_backend_choices_are_the_registered_backends(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in BACKENDS:
        assert parse("--backend", name).backend == name
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    assert "--backend {" + ",".join(BACKENDS) + "}" in capsys.readouterr().out


def test_bad_flags_exit_2_with_a_message() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "itemstore_service", "serve", "--backend", "postgres"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "invalid choice: 'postgres'" in result.stderr


def test_help_explains_every_flag() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "itemstore_service", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0
    for flag in (
        "--host",
        "--port",
        "--backend",
        "--sqlite-path",
        "--dynamodb-endpoint",
        "--dynamodb-region",
        "--dynamodb-table",
        "--dynamodb-create-table",
        "--workers",
        "ITEMSTORE_",
    ):
        assert flag in result.stdout


def run_cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "itemstore_service", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("ITEMSTORE_PORT", "abc", "argument --port: invalid int value: 'abc'"),
        ("ITEMSTORE_WORKERS", "two", "argument --workers: invalid int value: 'two'"),
        ("ITEMSTORE_BACKEND", "mongo", "--backend must be sqlite or dynamodb, not 'mongo'"),
        ("ITEMSTORE_LOG_LEVEL", "verbose", "--log-level must be debug, info"),
        ("ITEMSTORE_SHUTDOWN_TIMEOUT", "-5", "--shutdown-timeout must be 0 or more"),
    ],
)
def test_bad_environment_values_exit_2_with_a_message(
    variable: str, value: str, message: str, tmp_path: Path
) -> None:
    result = run_cli("serve", env={variable: value, "ITEMSTORE_SQLITE_PATH": str(tmp_path / "db")})
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "db").exists()


def test_a_flag_overrides_a_bad_environment_value() -> None:
    with mock_env(ITEMSTORE_PORT="abc"):
        assert parse("--port", "9000").port == 9000


def test_the_token_stays_out_of_help() -> None:
    result = run_cli("serve", "--help", env={"ITEMSTORE_TOKEN": "s3cret-token"})
    assert result.returncode == 0
    assert "s3cret-token" not in result.stdout
    with mock_env(ITEMSTORE_TOKEN="s3cret-token"):
        assert parse().token == "s3cret-token"
        assert parse("--token", "other").token == "other"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.mark.parametrize("workers", ["1", "2"])
def test_the_start_up_line_is_printed_once_listening(workers: str, tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "itemstore_service", "serve", "--port", str(port)]
    command += ["--workers", workers, "--sqlite-path", str(tmp_path / "db")]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line.startswith("itemstore ") and f"http://127.0.0.1:{port} " in line, line
            socket.create_connection(("127.0.0.1", port), timeout=5).close()  # listening already
        finally:
            process.terminate()
            assert process.wait(timeout=30) == 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_in_use_is_a_one_line_error_naming_the_flag(workers: str, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = run_cli(
            "serve", "--port", port, "--workers", workers, "--sqlite-path", str(tmp_path / "db")
        )
    assert result.returncode == 1
    assert result.stdout == ""  # no start-up line: it is printed once listening
    assert result.stderr == (
        f"itemstore: error: cannot listen on 127.0.0.1:{port}: Address already in use;"
        " choose another port with --port (or ITEMSTORE_PORT)\n"
    )


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_host_of_another_machine_is_a_one_line_error_naming_the_flag(
    workers: str, tmp_path: Path
) -> None:
    host = "203.0.113.1"  # TEST-NET-3: an address of no machine here
    result = run_cli(
        "serve", "--host", host, "--workers", workers, "--sqlite-path", str(tmp_path / "db")
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"itemstore: error: cannot listen on {host}:")
    assert result.stderr.endswith("with --host (or ITEMSTORE_HOST)\n")
    assert result.stderr.count("\n") == 1


def test_an_unusable_sqlite_path_is_a_one_line_error(tmp_path: Path) -> None:
    port = str(free_port())
    result = run_cli("serve", "--port", port, "--sqlite-path", str(tmp_path / "no" / "dir" / "db"))
    assert result.returncode == 1
    assert "cannot start" in result.stderr
    assert "Traceback" not in result.stderr


# -- the bootstrap token ---------------------------------------------------------------


@pytest.mark.parametrize("token", ["", " ", "   ", "s3cret\n", "s3cret ", "two words", "caf\u00e9"])
def test_a_token_that_could_never_be_sent_is_refused_at_start(token: str) -> None:
    # An empty token used to leave the service open without a word; one with
    # a newline or only spaces refused every request forever.
    result = run_cli("serve", env={"ITEMSTORE_TOKEN": token})
    assert result.returncode == 2
    assert "--token must be 1 or more letters" in result.stderr
    with pytest.raises(ConfigError, match="no spaces, newlines"):
        Config(token=token)


def test_the_token_file_is_read_without_its_trailing_newline(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("s3cret-token\n")
    assert parse("--token-file", str(path)).token == "s3cret-token"
    with mock_env(ITEMSTORE_TOKEN_FILE=str(path)):
        assert parse().token == "s3cret-token"
    with pytest.raises(ConfigError, match="not both"):
        parse("--token-file", str(path), "--token", "other")
    with pytest.raises(ConfigError, match="cannot be read"):
        parse("--token-file", str(tmp_path / "missing"))


def start_line(*argv: str, env: dict[str, str] | None = None) -> tuple[str, str]:
    """The first line the service prints and what it wrote on stderr, once
    listening (then stopped)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    process = subprocess.Popen(
        [sys.executable, "-m", "itemstore_service", "serve", "--port", port, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    process.terminate()
    _, stderr = process.communicate(timeout=30)
    return line, stderr


def test_the_start_line_says_whether_auth_is_on(tmp_path: Path) -> None:
    db = ("--sqlite-path", str(tmp_path / "db"))
    line, _ = start_line(*db)
    assert "auth off" in line and "worker(s))" in line
    line, stderr = start_line(*db, env={"ITEMSTORE_TOKEN": "s3cret-token"})
    assert "auth on" in line
    assert "warning" not in stderr and "s3cret-token" not in line + stderr
    # A token on the command line shows in ps: said at start.
    line, stderr = start_line(*db, "--token", "s3cret-token")
    assert "auth on" in line
    assert "--token shows in the process list" in stderr and "--token-file" in stderr
