"""The dump format (one record per line) and the progress display of an import."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from itemstore_service.datacli.progress import ProgressLines
from itemstore_service.datacli.records import BadRecord, Record, decode
from itemstore_wire.exactjson import dumps

BIG = -(2**80)


@pytest.mark.parametrize(
    "record",
    [
        Record("users", "ada", {"big": BIG, "f": 0.1}),
        Record("users", 2**64 + 5, [BIG]),
        Record("users", 2.0, None),
        Record("users", False, "false"),
        Record("sessions", "s1", {}, expires_at=1_900_000_000),
    ],
)
def test_a_record_round_trips_with_its_key_type(record: Record) -> None:
    line = record.encode()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    back = decode(line)
    assert back == record
    assert type(back.key) is type(record.key)


def test_the_line_names_the_key_type_and_keeps_every_digit() -> None:
    line = Record("c", 1.0, {"n": BIG}, expires_at=5).encode()
    assert line == (
        b'{"collection":"c","key":1.0,"key_type":"float","value":{"n":%d},"expires_at":5}\n' % BIG
    )


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"key": 2, "key_type": "float"}, 2.0),  # as jq writes 2.0
        ({"key": 2.0, "key_type": "int"}, 2),
        ({"key": 2}, 2),
        ({"key": True}, True),
        ({"key": "2", "key_type": "str"}, "2"),
    ],
)
def test_key_type_decides_the_type_of_a_number_key(fields: dict[str, object], key: object) -> None:
    record = decode(dumps({"collection": "c", "value": 0, **fields}))
    assert record.key == key and type(record.key) is type(key)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"[1]", "not a JSON object"),
        (b'{"collection": "c", "key": "k"}', "no 'value' field"),
        (b'{"key": "k", "value": 1}', "no 'collection' field"),
        (b'{"collection": "c", "value": 1}', "no 'key' field"),
        (b'{"collection": "a/b", "key": "k", "value": 1}', "collection 'a/b' must be 1 to 128"),
        (b'{"collection": "c", "key": null, "value": 1}', "key None must be a string, number"),
        (b'{"collection": "c", "key": [1], "value": 1}', "key [1] must be a string, number"),
        (b'{"collection": "c", "key": "1", "key_type": "int", "value": 1}', "not of key_type int"),
        (b'{"collection": "c", "key": 1, "key_type": "bool", "value": 1}', "not of key_type bool"),
        (b'{"collection": "c", "key": 1, "key_type": "uuid", "value": 1}', "key_type must be one"),
        (b'{"collection": "c", "key": 1.5, "key_type": "int", "value": 1}', "not of key_type int"),
        (b'{"collection": "c", "key": 1, "value": 1, "expires_at": "soon"}', "Unix seconds"),
        (b'{"collection": "c", "key": 1, "value": 1, "expires_at": 1.5}', "an integer"),
        (b'{"collection": "c", "key": 1, "value": 1, "expires_at": -1}', "0 or more"),
        (b'{"collection": "c", "key": 1, "value": 1, "ttl": 5}', "unknown field 'ttl'"),
    ],
)
def test_a_bad_record_says_what_is_wrong(line: bytes, message: str) -> None:
    with pytest.raises(BadRecord, match=message.replace("[", r"\[")):
        decode(line)


def test_plain_progress_lines_come_at_most_once_per_interval() -> None:
    out = io.StringIO()
    lines = ProgressLines(out, total=300, every=0.0)
    lines.advance(100)
    lines.advance(200)
    written = out.getvalue().splitlines()
    assert [line.split(",")[0] for line in written] == ["100 of 300 items", "300 of 300 items"]
    assert all(line.endswith(" items/s") for line in written)

    quiet = io.StringIO()
    slow = ProgressLines(quiet, total=None, every=3600.0)
    slow.advance(5)
    assert quiet.getvalue() == ""


def test_a_terminal_gets_a_progress_bar_with_rate_and_eta(service_url: str, tmp_path: Path) -> None:
    dump = tmp_path / "dump.jsonl"
    dump.write_bytes(b"".join(Record("c", n, n).encode() for n in range(500)))
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    with dump.open("rb") as source:
        process = subprocess.Popen(
            [sys.executable, "-m", "itemstore_service", "import", "--url", service_url],
            stdin=source,
            stdout=subprocess.DEVNULL,
            stderr=terminal,
        )
        os.close(terminal)
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the terminal closed: the process ended
                break
            if not chunk:
                break
            shown += chunk
        assert process.wait(timeout=60) == 0
    os.close(controller)
    assert b"100%" in shown  # the total is known: stdin is a file
    assert b"500/500" in shown
    assert b"items/s" in shown
    assert b"imported 500 items (500 written)" in shown
