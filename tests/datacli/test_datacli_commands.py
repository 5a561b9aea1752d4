"""ls, get, put, rm: JSON on stdin/stdout, typed keys, exit codes 0/1/2 and
one-line errors saying what to do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from itemstore import Client
from tests.datacli.running import itemstore, sqlite_service

BIG = 123456789012345678901234567890


def test_put_get_ls_rm_with_typed_keys_and_exact_numbers(service_url: str) -> None:
    def run(*args: str, stdin: bytes | None = None) -> bytes:
        result = itemstore(*args, url=service_url, stdin=stdin)
        assert result.returncode == 0, result.stderr
        return result.stdout

    run("put", "users", "ada", f'{{"n": {BIG}, "f": 0.1}}')
    run("put", "users", "42", "[1, 2]", "--key-type", "int")  # options after the arguments
    run("put", "--key-type", "float", "users", "1.0", stdin=b'"from stdin"')
    run("put", "users", "true", "null", "--key-type", "bool")
    run("put", "users", "adam", "-", stdin=b"{}")

    assert run("get", "users", "ada") == b'{"n":%d,"f":0.1}\n' % BIG
    assert run("get", "users", "1", "--key-type", "float") == b'"from stdin"\n'
    assert run("get", "users", "42", "--key-type", "int") == b"[1,2]\n"
    with Client(service_url) as client:  # the types went over as given
        keys = list(client.collection("users"))
    assert {(type(k), k) for k in keys} == {
        (str, "ada"),
        (str, "adam"),
        (int, 42),
        (float, 1.0),
        (bool, True),
    }

    assert run("ls") == b"users\t5\n"
    assert run("ls", "users", "--prefix", "ad") == b'"ada"\n"adam"\n'
    assert len(run("ls", "users", "--limit", "2").splitlines()) == 2

    run("rm", "users", "42", "--key-type", "int")
    missing = itemstore("get", "users", "42", "--key-type", "int", url=service_url)
    assert missing.returncode == 1
    assert missing.stdout == b""
    assert (
        missing.stderr == b"itemstore: error: no item '42' (key type int) in collection 'users'\n"
    )
    again = itemstore("rm", "users", "42", "--key-type", "int", url=service_url)
    assert again.returncode == 1
    assert b"no item '42'" in again.stderr


def test_usage_errors_exit_2_with_one_line(service_url: str) -> None:
    cases = {
        ("put", "users", "a", "not json"): b"VALUE is not JSON",
        ("get", "bad name", "a"): b"collection name 'bad name' must be 1 to 128 characters",
        ("get", "users", "x", "--key-type", "int"): b"KEY 'x' is not a number (--key-type int)",
        ("get", "users", "yes", "--key-type", "bool"): b"use true or false",
        ("ls", "--prefix", "a"): b"--prefix lists keys: name a COLLECTION",
        ("get", "users", "a", "--url", "ftp://x"): b"itemstore url must be http(s)://host[:port]",
    }
    for args, message in cases.items():
        result = itemstore(*args, url=service_url)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert result.stderr.count(b"\n") == 1 and b"Traceback" not in result.stderr

    bad_flag = itemstore("import", "--mode", "upsert", url=service_url)
    assert bad_flag.returncode == 2
    assert b"invalid choice: 'upsert'" in bad_flag.stderr


def test_unreachable_service_and_refused_token_exit_1_saying_what_to_do(tmp_path: Path) -> None:
    with sqlite_service(tmp_path) as url:
        port = url.rsplit(":", 1)[1]
    gone = itemstore("ls", url=f"http://127.0.0.1:{port}")
    assert gone.returncode == 1
    assert gone.stderr.startswith(f"itemstore: error: cannot reach itemstore at {url}".encode())
    assert gone.stderr.endswith(b"is it running? Give its address with --url or ITEMSTORE_URL\n")

    (tmp_path / "token").mkdir()
    with sqlite_service(tmp_path / "token", "--token", "s3cret") as url:
        refused = itemstore("export", "--token", "wrong", url=url)
        assert refused.returncode == 1
        assert refused.stderr == (
            b"itemstore: error: the service refused the token: "
            b"give the right one with --token or ITEMSTORE_TOKEN\n"
        )
        assert itemstore("put", "c", "k", "1", "--token", "s3cret", url=url).returncode == 0
        assert itemstore("get", "c", "k", "--token", "s3cret", url=url).stdout == b"1\n"


def test_the_data_commands_need_only_the_base_install(service_url: str) -> None:
    """The server's dependencies are blocked (an import of one fails), and
    neither they nor aiohttp are loaded by a data command."""
    probe = f"""
import sys
server_only = ("aioboto3", "aiobotocore", "botocore", "boto3", "uvloop",
               "prometheus_client", "aiosqlite")
for name in server_only:
    sys.modules[name] = None
from itemstore_service.command import main
try:
    main(["put", "c", "k", "[1]", "--url", "{service_url}"])
except SystemExit as exit:
    assert exit.code == 0, exit.code
loaded = sorted(m for m in sys.modules if m.split(".")[0] in server_only + ("aiohttp",)
                and sys.modules[m] is not None)
print(loaded)
"""
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[]\n"
    with Client(service_url) as client:
        assert client.collection("c")["k"] == [1]


def test_serve_still_runs_through_the_same_command() -> None:
    help_text = itemstore("serve", "--help")
    assert help_text.returncode == 0
    assert b"--sqlite-path" in help_text.stdout
    overview = itemstore("--help")
    for command in (b"serve", b"ls", b"get", b"put", b"rm", b"export", b"import", b"copy"):
        assert b"    " + command + b" " in overview.stdout
